#!/usr/bin/env python3
"""Measure keyterm boosting (Deepgram's ``keyterm`` / ``keywords``) offline and pick its boost.

On cached full-utterance log-probs of the validation set (``tune_lm.py --cache``), with the
model directory's LM and beam settings, two things a user would notice, for each boost:

* recall: every reference word (4+ letters) that plain beam search gets wrong is given as a
  keyterm of its utterance; how many of them are then recognised (words the LM knows and words
  it does not, apart), and the WER;
* false alarms: three words (4+ letters) from other utterances' references that this one does
  not contain are given as keyterms, once words the LM knows and once words it does not; in how
  many utterances one of them appears, and the WER.

    .venv/bin/python scripts/tune_keyterms.py --model-dir models/embedded \
        --cache /work/runs/gpu1/lmcache/best_gpu1_step2125_la13_val_200.npz --limit 200
"""

from __future__ import annotations

import argparse
import json
import random
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "model_repository" / "templates" / "ctc_decoder"))
from ctc_beam import BeamConfig, Keyterms, Pieces, decode_utterance  # noqa: E402
from eval_common import DEFAULT_CORPUS, select_rows  # noqa: E402
from wer import normalize, read_manifest, score  # noqa: E402
from word_lm import WordLM  # noqa: E402

MIN_LETTERS = 4


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model-dir", type=Path, required=True, help="manifest.json with vocabulary and lm block")
    ap.add_argument("--cache", type=Path, required=True, help="log-probs .npz of the validation rows")
    ap.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS)
    ap.add_argument("--limit", type=int, default=200, help="the --limit the cache was made with")
    ap.add_argument("--boosts", default="0,2,4,6,8,10,12")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--report", type=Path, default=None)
    args = ap.parse_args()

    manifest = json.loads((args.model_dir / "manifest.json").read_text())
    vocab, block = manifest["vocabulary"], manifest["lm"]
    pieces = Pieces(vocab, blank=int(manifest["blank_id"]))
    lm = WordLM(args.model_dir / block["file"], block.get("unk_logprob"))
    cfg = BeamConfig(beam=int(block["beam"]), lm_weight=float(block["lm_weight"]),
                     word_bonus=float(block["word_bonus"]))
    rows = [r for _, r in select_rows(read_manifest(args.corpus / "val.jsonl"), args.limit)]
    with np.load(args.cache) as z:
        lps = [z[str(i)] for i in range(len(rows))]
    refs = [normalize(r["text"]) for r in rows]

    def text(ids: list[int]) -> str:
        return "".join(vocab[i] for i in ids).replace(manifest["word_boundary"], " ").strip()

    def decode(terms: list[list[str]], boost: float) -> list[str]:
        return [text(decode_utterance(lp, pieces, lm, cfg, Keyterms.parse([[w, 1.0] for w in t], pieces, boost)))
                for lp, t in zip(lps, terms)]

    plain = decode([[] for _ in rows], 0.0)
    missed = [sorted({w for w in ref.split() if len(w) >= MIN_LETTERS} - set(hyp.split()))
              for ref, hyp in zip(refs, plain)]
    rng = random.Random(args.seed)
    pool = sorted({w for ref in refs for w in ref.split() if len(w) >= MIN_LETTERS})
    known_pool = [w for w in pool if w in lm.words]
    oov_pool = [w for w in pool if w not in lm.words]
    distractors = {name: [rng.sample([w for w in words if w not in ref.split()], 3) for ref in refs]
                   for name, words in (("known", known_pool), ("oov", oov_pool))}
    n_missed = {k: sum((w in lm.words) == (k == "known") for ws in missed for w in ws) for k in ("known", "oov")}
    print(f"{len(rows)} utterances; plain beam WER {score(refs, plain).wer:.1%}; missed words of 4+ letters: "
          f"{n_missed['known']} the LM knows, {n_missed['oov']} it does not", flush=True)

    results = []
    for boost in (float(b) for b in args.boosts.split(",")):
        hits = decode(missed, boost)
        found = {k: sum(w in hyp.split() for ws, hyp in zip(missed, hits) for w in ws
                        if (w in lm.words) == (k == "known")) for k in n_missed}
        res = {"boost": boost, "wer_keyterms": score(refs, hits).wer,
               **{f"recall_{k}": found[k] / max(1, n_missed[k]) for k in n_missed}}
        for name, terms in distractors.items():
            noisy = decode(terms, boost)
            res[f"false_alarm_utts_{name}"] = sum(any(w in hyp.split() for w in ws)
                                                  for ws, hyp in zip(terms, noisy)) / len(rows)
            res[f"wer_distractors_{name}"] = score(refs, noisy).wer
        results.append(res)
        print(f"boost {boost:5.1f}: missed words recognised {res['recall_known']:.1%} known / "
              f"{res['recall_oov']:.1%} OOV (WER {res['wer_keyterms']:.1%}); a distractor appears in "
              f"{res['false_alarm_utts_known']:.1%} / {res['false_alarm_utts_oov']:.1%} of utterances "
              f"(WER {res['wer_distractors_known']:.1%} / {res['wer_distractors_oov']:.1%})", flush=True)
    if args.report:
        args.report.write_text(json.dumps({"plain_wer": score(refs, plain).wer, "results": results}, indent=1))


if __name__ == "__main__":
    main()
