#!/usr/bin/env python3
"""Offline greedy CTC evaluation of the embedded model on NeMo manifests.

Full-utterance forward pass with the encoder's chunked_limited attention mask at the chosen
look-ahead, greedy CTC decoding, and WER / CER / exact-match against normalised references.
(Streaming evaluation through the running service is separate; this is the training-side
yardstick.) Accepts a `.nemo` file or a training checkpoint (`last.pt` / `best.pt`, which
needs the `.nemo` it was initialised from via --init).

    python scripts/eval_wer.py --model /work/runs/embedded/best.nemo \
        --manifest /work/runs/corpus/eval_festival16k.jsonl /work/runs/corpus/eval_fsdd.jsonl
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import augment  # noqa: E402
# Metrics and manifest reading are shared with eval_service.py / eval_offline.py (and re-exported
# here for train_embedded.py).
from wer import Scores, edit_distance, read_manifest, score  # noqa: E402,F401


def load_audio(path: str) -> np.ndarray:
    """Any wav (PCM, mu-law, 8 kHz...) to 16 kHz mono float32, as the service's decoder does."""
    audio, sr = sf.read(path, dtype="float32", always_2d=True)
    return augment.resample(audio[:, 0], sr, augment.SR)


def greedy_ids(log_probs: np.ndarray, blank: int) -> list[int]:
    """Collapse repeats of the frame-wise argmax, drop blanks: the service's greedy CTC rule."""
    best = log_probs.argmax(axis=1)
    previous = np.concatenate([[blank], best[:-1]])
    return [int(t) for t in best[(best != blank) & (best != previous)]]


@torch.inference_mode()
def log_probs(model, rows: list[dict], batch_seconds: float = 120.0) -> list[np.ndarray]:
    """Full-utterance CTC log-probs [frames, classes] for manifest rows, batched by similar
    duration to limit padding."""
    was_training = model.training
    model.eval()
    order = sorted(range(len(rows)), key=lambda i: rows[i]["duration"])
    out: list[np.ndarray] = [np.zeros(0)] * len(rows)
    start = 0
    while start < len(order):
        end = start + 1
        while end < len(order) and rows[order[end]]["duration"] * (end - start + 1) <= batch_seconds:
            end += 1
        idx = order[start:end]
        audios = [load_audio(rows[i]["audio_filepath"]) for i in idx]
        lens = torch.tensor([len(a) for a in audios])
        batch = torch.zeros(len(audios), int(lens.max()))
        for k, a in enumerate(audios):
            batch[k, : len(a)] = torch.from_numpy(a)
        dev = next(model.parameters()).device
        lp, enc_len, _ = model.forward(input_signal=batch.to(dev), input_signal_length=lens.to(dev))
        for k, i in enumerate(idx):
            out[i] = lp[k, : int(enc_len[k])].float().cpu().numpy()
        start = end
    model.train(was_training)
    return out


def transcribe(model, rows: list[dict], batch_seconds: float = 120.0) -> list[str]:
    """Greedy transcripts for manifest rows."""
    blank = model.decoder.num_classes_with_blank - 1
    return [ids_text(model, greedy_ids(lp, blank)) for lp in log_probs(model, rows, batch_seconds)]


def ids_text(model, ids: list[int]) -> str:
    return model.tokenizer.ids_to_text(ids) if ids else ""


def load_model(model_path: Path, init: Path | None):
    from nemo.collections.asr.models import EncDecCTCModelBPE

    if model_path.suffix == ".nemo":
        return EncDecCTCModelBPE.restore_from(str(model_path), map_location="cpu")
    if init is None:
        raise SystemExit("a .pt checkpoint needs --init (the .nemo it was trained from)")
    model = EncDecCTCModelBPE.restore_from(str(init), map_location="cpu")
    model.load_state_dict(torch.load(model_path, map_location="cpu", weights_only=False)["model"])
    return model


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", type=Path, required=True, help=".nemo, or last.pt/best.pt with --init")
    ap.add_argument("--init", type=Path, default=None)
    ap.add_argument("--manifest", type=Path, nargs="+", required=True)
    ap.add_argument("--att-context", default=None, help="look-ahead profile, e.g. 70,13 / 70,6 / 70,1")
    ap.add_argument("--limit", type=int, default=None, help="first N rows of each manifest")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--show", type=int, default=3, help="example transcripts to print per manifest")
    ap.add_argument("--json", type=Path, default=None, help="append results as JSON lines here")
    args = ap.parse_args()

    torch.set_num_threads(args.threads)
    model = load_model(args.model, args.init)
    if args.att_context:
        model.encoder.set_default_att_context_size([int(x) for x in args.att_context.split(",")])
    for manifest in args.manifest:
        rows = read_manifest(manifest, args.limit)
        hyps = transcribe(model, rows)
        s = score([r["text"] for r in rows], hyps)
        print(f"{manifest.stem}: {s}", flush=True)
        for r, h in list(zip(rows, hyps))[: args.show]:
            print(f"   ref: {r['text']}\n   hyp: {h}")
        if args.json:
            with args.json.open("a") as f:
                f.write(json.dumps({"model": str(args.model), "manifest": manifest.stem,
                                    "att_context": args.att_context, **s.__dict__}) + "\n")


if __name__ == "__main__":
    main()
