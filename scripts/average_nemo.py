#!/usr/bin/env python3
"""Average the weights of NeMo checkpoints of one model into a new ``.nemo``.

    .venv-nemo/bin/python scripts/average_nemo.py A.nemo B.nemo --out AVG.nemo

Checkpoints of one lineage (a model and its fine-tunes, or points along one run) lie in one
basin of the loss, and their mean is often better than either: the shipped embedded model is
the average of the GPU run's best step and a CPU fine-tune of it (``models/README.md``). Models
that did not start from the same weights do not average into anything useful; the script only
checks that they are the same network (class, tensor names and shapes, vocabulary).

Floating-point tensors are averaged (``--weights``: a weighted mean); integer buffers (batch
counters) are taken from the first checkpoint. The output keeps the first checkpoint's config,
tokenizer and preprocessor, and goes through ``export_nemo.py`` like any model.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("models", type=Path, nargs="+", help=".nemo checkpoints of one model")
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--weights", default=None, help="comma-separated, one per model (default: equal)")
    args = ap.parse_args()
    if len(args.models) < 2:
        ap.error("give at least two checkpoints")
    if args.weights is not None:
        args.weights = [float(x) for x in args.weights.split(",")]
    if args.weights is not None and (len(args.weights) != len(args.models) or min(args.weights) < 0
                                     or sum(args.weights) <= 0):
        ap.error("--weights: one non-negative number per model, not all zero")

    from nemo.collections.asr.models import ASRModel

    models = [ASRModel.restore_from(str(p), map_location="cpu") for p in args.models]
    first = models[0]
    states = [m.state_dict() for m in models]
    vocab = first.tokenizer.vocab_size if hasattr(first, "tokenizer") else None
    for path, model, state in zip(args.models[1:], models[1:], states[1:], strict=True):
        if type(model) is not type(first):
            raise SystemExit(f"{path}: {type(model).__name__}, not {type(first).__name__}")
        shapes = {k: tuple(v.shape) for k, v in state.items()}
        if shapes != {k: tuple(v.shape) for k, v in states[0].items()}:
            raise SystemExit(f"{path}: not the same network as {args.models[0]} (tensor names or shapes differ)")
        if vocab is not None and model.tokenizer.vocab_size != vocab:
            raise SystemExit(f"{path}: vocabulary of {model.tokenizer.vocab_size}, not {vocab}")

    averaged = {}
    for key, value in states[0].items():
        if not value.is_floating_point():
            averaged[key] = value
        elif args.weights is None:
            averaged[key] = sum(state[key] for state in states) / len(states)
        else:
            total = sum(w * state[key].double() for w, state in zip(args.weights, states, strict=True))
            averaged[key] = (total / sum(args.weights)).to(value.dtype)
    first.load_state_dict(averaged)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    first.save_to(str(args.out))
    print(f"wrote {args.out}: mean of {len(states)} checkpoints"
          + (f" weighted {args.weights}" if args.weights else ""))


if __name__ == "__main__":
    with torch.no_grad():
        main()
