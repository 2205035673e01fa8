"""Run by ``.venv-nemo/bin/python``: NeMo's own preprocessor on the given audio.

Usage: ``nemo_features.py IN.npz OUT.npz SETTINGS_JSON``. ``IN.npz`` holds float32 audio
arrays; ``OUT.npz`` gets, under the same keys, the features NeMo returns (valid frames only),
plus ``__filterbank`` and ``__window`` of the preprocessor built from the settings.
"""

from __future__ import annotations

import json
import sys

import numpy as np
import torch


def main() -> None:
    """Entry point (runs in the NeMo environment)."""
    from nemo.collections.asr.modules import AudioToMelSpectrogramPreprocessor

    src, dst, settings = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
    sr = settings["sample_rate"]
    pre = AudioToMelSpectrogramPreprocessor(
        sample_rate=sr,
        window_size=settings["win_length"] / sr,
        window_stride=settings["hop_length"] / sr,
        n_fft=settings["n_fft"],
        features=settings["n_mels"],
        preemph=settings["preemph"],
        normalize="NA",
        dither=0.0,
        pad_to=0,
        log=True,
        mag_power=settings["mag_power"],
    )
    pre.eval()
    out: dict[str, np.ndarray] = {}
    with np.load(src) as audio, torch.no_grad():
        for key in audio.files:
            x = torch.from_numpy(audio[key].astype(np.float32))[None]
            feats, length = pre(input_signal=x, length=torch.tensor([x.shape[1]]))
            out[key] = feats[0, :, : int(length[0])].numpy()
    out["__filterbank"] = pre.featurizer.fb[0].numpy()
    out["__window"] = pre.featurizer.window.numpy()
    np.savez(dst, **out)


if __name__ == "__main__":
    main()
