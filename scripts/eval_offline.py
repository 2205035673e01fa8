#!/usr/bin/env python3
"""Offline (NeMo, full-utterance) counterpart of `eval_service.py`: same sets, same utterances,
same scoring, same report shape, so `eval_common.py compare` can put the two side by side.

The forward pass and greedy CTC decoding are `eval_wer.py`'s (`load_model`, `transcribe`); the
attention context is the one of the served profile named by `--latency` (`la13` -> [left, 13]),
so streaming and offline differ only by the serving path (feature extraction, chunking and
caches, resampling, mu-law decoding, endpointing), which is what the comparison measures.

    .venv-nemo/bin/python scripts/eval_offline.py --model /work/runs/embedded/best.nemo \
        --set all --limit 40 --latency la13 --report /tmp/offline.json
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from eval_common import (  # noqa: E402
    DEFAULT_CORPUS,
    SET_CHOICES,
    add_set,
    examples,
    load_set,
    markdown_table,
    new_report,
    resolve_sets,
    utterance_record,
    write_report,
)
from eval_wer import load_model, transcribe  # noqa: E402


def att_context_for(model, latency: str | None) -> list[int] | None:
    """`la<N>` -> the model's att_context_size entry with right context N."""
    if not latency:
        return None
    if not latency.startswith("la") or not latency[2:].isdigit():
        raise SystemExit(f"--latency {latency!r}: expected la<N>")
    right = int(latency[2:])
    for ctx in model.encoder.att_context_size_all:
        if int(ctx[1]) == right:
            return [int(ctx[0]), int(ctx[1])]
    raise SystemExit(f"--latency {latency}: the model's contexts are {model.encoder.att_context_size_all}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", type=Path, required=True, help=".nemo, or last.pt/best.pt with --init")
    ap.add_argument("--init", type=Path, default=None)
    ap.add_argument("--set", action="append", default=None, help=SET_CHOICES)
    ap.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS)
    ap.add_argument("--limit", type=int, default=None, help="N utterances per set, spread evenly (as eval_service.py)")
    ap.add_argument("--latency", default=None, help="la13 | la6 | la1: attention context of that profile")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--report", type=Path, default=None)
    ap.add_argument("--show", type=int, default=2)
    args = ap.parse_args()
    sets = resolve_sets(args.set or ["all"])

    torch.set_num_threads(args.threads)
    model = load_model(args.model, args.init)
    ctx = att_context_for(model, args.latency)
    if ctx:
        model.encoder.set_default_att_context_size(ctx)
    report = new_report("offline", source=str(args.model.resolve()), latency=args.latency,
                        att_context=ctx or [int(x) for x in model.encoder.att_context_size],
                        limit=args.limit, corpus=str(args.corpus))
    for es in sets:
        rows = load_set(es, args.corpus, args.limit)
        t0 = time.monotonic()
        hyps = transcribe(model, [r for _, r in rows])
        add_set(report, es, [utterance_record(i, r, h, error=None) for (i, r), h in zip(rows, hyps)])
        s = report["sets"][es.name]["summary"]
        print(f"{es.name}: n={s['n']} WER={100 * s['wer']:.1f}% CER={100 * s['cer']:.1f}% "
              f"exact={100 * s['exact']:.1f}% ({time.monotonic() - t0:.0f} s)", file=sys.stderr, flush=True)
    write_report(report, args.report)
    if args.show:
        print(examples(report, args.show), file=sys.stderr)
    print(f"\nOffline {report['source']} (att_context {report['att_context']}); limit {args.limit or 'none'} per set\n")
    print(markdown_table(report))


if __name__ == "__main__":
    main()
