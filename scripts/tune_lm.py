#!/usr/bin/env python3
"""Measure the CTC beam search + word LM against greedy decoding, offline, on the model's
full-utterance log-probs (computed once per set and cached), and pick the LM weight, word
bonus and unknown-word charge on the validation set only; the evaluation sets are then decoded
with that choice.

The decoder is the served one (``model_repository/templates/ctc_decoder/ctc_beam.py``).

    .venv-nemo/bin/python scripts/tune_lm.py --model /work/runs/embedded/best.nemo \
        --lm models/embedded/lm.arpa.gz --latency la13 --limit 200 --report /tmp/lm.json
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "model_repository" / "templates" / "ctc_decoder"))
from ctc_beam import BeamConfig, Pieces, decode_utterance  # noqa: E402
from eval_common import DEFAULT_CORPUS, load_set, resolve_sets, select_rows  # noqa: E402
from eval_offline import att_context_for  # noqa: E402
from eval_wer import greedy_ids, ids_text, load_model, log_probs, read_manifest, score  # noqa: E402
from word_lm import WordLM  # noqa: E402


def floats(text: str) -> list[float]:
    return [float(x) for x in text.split(",")]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", type=Path, required=True)
    ap.add_argument("--init", type=Path, default=None)
    ap.add_argument("--lm", type=Path, required=True)
    ap.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS)
    ap.add_argument("--latency", default="la13")
    ap.add_argument("--limit", type=int, default=200, help="utterances per set")
    ap.add_argument("--set", action="append", default=None, help="evaluation sets (eval_common names)")
    ap.add_argument("--weights", type=floats, default=floats("0.3,0.5,0.8,1.2"))
    ap.add_argument("--bonuses", type=floats, default=floats("0,1,2,3"))
    ap.add_argument("--unk-logprobs", type=floats, default=None,
                    help="ln P charged for a word outside the LM's vocabulary (default: the file's <unk>)")
    ap.add_argument("--beam", type=int, default=16)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--report", type=Path, default=None)
    ap.add_argument("--cache", type=Path, default=None, help="keep the log-probs here (.npz per set) for reruns")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    model = load_model(args.model, args.init)
    ctx = att_context_for(model, args.latency)
    if ctx:
        model.encoder.set_default_att_context_size(ctx)
    vocab = [model.tokenizer.ids_to_tokens([i])[0] for i in range(model.tokenizer.vocab_size)]
    pieces = Pieces(vocab, blank=len(vocab))
    lms = {u: WordLM(args.lm, u) for u in args.unk_logprobs or [None]}

    def run(lps, refs, cfg: BeamConfig | None, unk: float | None = None):
        lm = lms.get(unk)
        hyps = [ids_text(model, greedy_ids(lp, pieces.blank) if cfg is None else decode_utterance(lp, pieces, lm, cfg))
                for lp in lps]
        return score(refs, hyps), hyps

    def cached_log_probs(name: str, rows: list[dict]) -> list[np.ndarray]:
        path = args.cache / f"{args.model.stem}_{args.latency}_{name}_{args.limit}.npz" if args.cache else None
        if path and path.is_file():
            with np.load(path) as z:
                return [z[str(i)] for i in range(len(rows))]
        lps = log_probs(model, rows)
        if path:
            path.parent.mkdir(parents=True, exist_ok=True)
            np.savez(path, **{str(i): lp for i, lp in enumerate(lps)})
        return lps

    val = [r for _, r in select_rows(read_manifest(args.corpus / "val.jsonl"), args.limit)]
    val_lp = cached_log_probs("val", val)
    val_refs = [r["text"] for r in val]
    s0, _ = run(val_lp, val_refs, None)
    print(f"val greedy: WER {100 * s0.wer:.1f}% CER {100 * s0.cer:.1f}%", flush=True)
    grid = []
    combos = list(itertools.product(lms, args.weights, args.bonuses))
    for u, w, b in combos:
        t0 = time.monotonic()
        cfg = BeamConfig(beam=args.beam, lm_weight=w, word_bonus=b)
        s, _ = run(val_lp, val_refs, cfg, u)
        grid.append({"unk_logprob": lms[u].unk_logprob, "lm_weight": w, "word_bonus": b, "wer": s.wer, "cer": s.cer})
        print(f"val beam {args.beam} unk={lms[u].unk_logprob:.2f} w={w} b={b}: WER {100 * s.wer:.1f}% "
              f"CER {100 * s.cer:.1f}% ({time.monotonic() - t0:.1f} s)", flush=True)
    best_i = min(range(len(grid)), key=lambda i: grid[i]["wer"])
    best = grid[best_i]
    unk = combos[best_i][0]
    cfg = BeamConfig(beam=args.beam, lm_weight=best["lm_weight"], word_bonus=best["word_bonus"])
    report = {"model": str(args.model), "lm": str(args.lm), "latency": args.latency, "beam": args.beam,
              "val_greedy": {"wer": s0.wer, "cer": s0.cer}, "grid": grid, "chosen": best, "sets": {}}
    for es in resolve_sets(args.set or ["all"]):
        rows = [r for _, r in load_set(es, args.corpus, args.limit)]
        lps = cached_log_probs(es.name, rows)
        refs = [r["text"] for r in rows]
        g, _ = run(lps, refs, None)
        t0 = time.monotonic()
        b, hyps = run(lps, refs, cfg, unk)
        secs = time.monotonic() - t0
        audio = sum(r["duration"] for r in rows)
        report["sets"][es.name] = {"n": len(rows), "greedy": vars(g), "beam": vars(b), "decode_rtf": secs / audio}
        print(f"{es.name}: greedy WER {100 * g.wer:.1f}% CER {100 * g.cer:.1f}% exact {100 * g.exact:.1f}% | "
              f"beam+LM WER {100 * b.wer:.1f}% CER {100 * b.cer:.1f}% exact {100 * b.exact:.1f}% "
              f"(decode RTF {secs / audio:.4f})", flush=True)
    if args.report:
        args.report.write_text(json.dumps(report, indent=1, default=float) + "\n")


if __name__ == "__main__":
    main()
