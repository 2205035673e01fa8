"""The Triton front end's streaming log-mel equals NeMo's offline preprocessor.

NeMo runs in its own environment (``.venv-nemo``, torch): the test calls it in a subprocess
and compares, in this process, with the numpy extractor shipped in the ``features`` model,
fed in request-sized pieces and cut into encoder chunks exactly as Triton does. Skipped when
the NeMo environment is missing.

Tolerance: 1e-4 (log domain) on every bin within 50 dB of its frame's peak (measured: under
3e-5). Far below the peak NeMo's own float32 STFT is the noisier side: on ``speaker_b.wav`` a
bin 60 dB down differs by 1.4e-4 from ours, and by 1.45e-4 from a float64 reference (ours:
8e-5, numpy's FFT is double precision). Those bins are held to 2e-4.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import numpy as np
import pytest

from tests.triton.helpers import MODEL_DIR, REPO, FeatureStream, MelConfig, chunk_geometry, load_wav, model_manifest

NEMO_PYTHON = REPO / ".venv-nemo" / "bin" / "python"
TOLERANCE = 1e-4
# Bins further below their frame's peak only have to be within NeMo's own float32 noise.
NEAR_PEAK_DB = 50.0
FAR_TOLERANCE = 2e-4

pytestmark = pytest.mark.nemo


def _nemo_available() -> bool:
    if not NEMO_PYTHON.exists():
        return False
    probe = subprocess.run([str(NEMO_PYTHON), "-c", "import nemo.collections.asr"], capture_output=True, timeout=300)
    return probe.returncode == 0


@pytest.fixture(scope="module")
def signals() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(7)
    t = np.arange(40_000) / 16000
    return {
        "speaker_a": load_wav("speaker_a.wav"),
        "speaker_b": load_wav("speaker_b.wav"),
        "pause": load_wav("pause.wav"),
        "tone_noise": (0.3 * np.sin(2 * np.pi * 440 * t) + 0.05 * rng.standard_normal(t.size)).astype(np.float32),
        "short_odd": rng.uniform(-0.5, 0.5, 12_345).astype(np.float32),
    }


@pytest.fixture(scope="module")
def nemo(signals: dict[str, np.ndarray], tmp_path_factory: pytest.TempPathFactory) -> dict[str, np.ndarray]:
    if not _nemo_available():
        pytest.skip(f"NeMo environment not available at {NEMO_PYTHON}")
    tmp = tmp_path_factory.mktemp("nemo")
    np.savez(tmp / "in.npz", **signals)
    settings = model_manifest()["features"]
    subprocess.run(
        [
            str(NEMO_PYTHON),
            str(Path(__file__).with_name("nemo_features.py")),
            str(tmp / "in.npz"),
            str(tmp / "out.npz"),
            json.dumps(settings),
        ],
        check=True,
        capture_output=True,
        timeout=600,
    )
    with np.load(tmp / "out.npz") as z:
        return {k: z[k] for k in z.files}


def _streamed_mel(audio: np.ndarray, profile: str, piece: int) -> np.ndarray:
    """Frames the features model sends to the encoder (context stripped), in stream order."""
    geometry = chunk_geometry(model_manifest(), profile)
    fs = FeatureStream(MelConfig.from_npz(MODEL_DIR / "features.npz"), geometry)
    chunks = []
    for start in range(0, len(audio), piece):
        end = start + piece >= len(audio)
        chunks.append(fs.process(audio[start : start + piece], flush=end).features)
    feats = np.concatenate(chunks)
    return np.concatenate(list(feats[:, :, geometry.left_frames :]), axis=1)[:, geometry.lead_frames :]


def test_exported_filterbank_is_nemos(nemo: dict[str, np.ndarray]) -> None:
    cfg = MelConfig.from_npz(MODEL_DIR / "features.npz")
    np.testing.assert_array_equal(cfg.filterbank, nemo["__filterbank"])
    np.testing.assert_array_equal(cfg.window, nemo["__window"])


@pytest.mark.parametrize("profile,piece", [("la13", 17920), ("la1", 2560), ("la6", 1000)])
def test_streaming_mel_equals_nemo_offline(
    nemo: dict[str, np.ndarray], signals: dict[str, np.ndarray], profile: str, piece: int
) -> None:
    near_worst = far_worst = 0.0
    for name, audio in signals.items():
        want = nemo[name]
        got = _streamed_mel(audio, profile, piece)
        # The stream pads its last chunk; the frames NeMo returns come first and match.
        assert got.shape[1] >= want.shape[1]
        diff = np.abs(got[:, : want.shape[1]] - want)
        near = want >= want.max(axis=0, keepdims=True) - NEAR_PEAK_DB / 10 * np.log(10)
        near_worst = max(near_worst, float(diff[near].max()))
        far_worst = max(far_worst, float(diff.max()))
    assert near_worst < TOLERANCE, near_worst
    assert far_worst < FAR_TOLERANCE, far_worst


def test_exported_encoders_match_nemo_streaming() -> None:
    """export_nemo.py ran each ONNX encoder against NeMo's conformer_stream_step."""
    for name, facts in model_manifest()["profiles"].items():
        assert facts["export_check"]["onnx_vs_nemo_max_abs"] < TOLERANCE, name
