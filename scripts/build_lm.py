#!/usr/bin/env python3
"""Build a word n-gram LM (interpolated Kneser-Ney, written as a gzip ARPA file) from
normalised text, one sentence per line, for the CTC beam search decoder.

    python3 scripts/build_lm.py /work/runs/corpus/text/train.txt --model-dir models/embedded \
        --lm-weight 0.3 --word-bonus 2

With ``--model-dir`` the file goes into an exported model folder as ``lm.arpa.gz`` and the
folder's manifest gets an ``lm`` block (file, beam, LM weight, word bonus: tune the last two
with ``scripts/tune_lm.py``); ``build_model_repository.py`` then serves the CTC head with the
beam search. ``--arpa`` adopts an existing ARPA file (KenLM's ``lmplz`` output, say) instead
of building one.

The ARPA stores each n-gram's interpolated probability and each context's backoff weight
(the interpolation mass), the form SRILM and KenLM read and ``word_lm.py`` scores.
N-grams of the highest order seen fewer than ``--min-count`` times are left out (their
probability falls back to the context's backoff: a count cut-off that keeps the file small).
Any ARPA file from another tool works in its place.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import json
import math
import shutil
from collections import Counter, defaultdict
from pathlib import Path

BOS, EOS, UNK = "<s>", "</s>", "<unk>"
LM_FILE = "lm.arpa.gz"


def discount(counts: Counter) -> float:
    """Ney's estimate D = n1 / (n1 + 2 n2) from the count-of-counts."""
    n1 = sum(1 for c in counts.values() if c == 1)
    n2 = sum(1 for c in counts.values() if c == 2)
    return n1 / (n1 + 2 * n2) if n1 + n2 else 0.5


def kneser_ney(sentences: list[list[str]], order: int, min_count: int, unk_mass: float):
    """{n: {ngram: (log10 prob, log10 backoff or None)}} for n = 1..order."""
    raw: list[Counter] = [Counter() for _ in range(order + 1)]
    for words in sentences:
        seq = [BOS, *words, EOS]
        for n in range(1, order + 1):
            for i in range(len(seq) - n + 1):
                raw[n][tuple(seq[i:i + n])] += 1
    # Lower orders use continuation counts (distinct left neighbours), except n-grams that
    # start at <s>, which have no left neighbour and keep their raw count.
    counts: list[Counter] = [Counter() for _ in range(order + 1)]
    counts[order] = raw[order]
    for n in range(order - 1, 0, -1):
        for gram in raw[n + 1]:
            counts[n][gram[1:]] += 1
        for gram, c in raw[n].items():
            if gram[0] == BOS:
                counts[n][gram] = c
    counts[1].pop((BOS,), None)

    probs: list[dict[tuple[str, ...], float]] = [{} for _ in range(order + 1)]
    backoff: list[dict[tuple[str, ...], float]] = [{} for _ in range(order + 1)]
    # Unigrams: continuation counts, with a fixed share reserved for <unk>.
    total1 = sum(counts[1].values())
    for (w,), c in counts[1].items():
        probs[1][(w,)] = (1 - unk_mass) * c / total1
    probs[1][(UNK,)] = unk_mass
    for n in range(2, order + 1):
        d = discount(counts[n])
        ctx_total: dict[tuple[str, ...], int] = defaultdict(int)
        ctx_types: dict[tuple[str, ...], int] = defaultdict(int)
        for gram, c in counts[n].items():
            ctx_total[gram[:-1]] += c
            ctx_types[gram[:-1]] += 1
        for ctx, total in ctx_total.items():
            backoff[n - 1][ctx] = d * ctx_types[ctx] / total
        for gram, c in counts[n].items():
            if n == order and raw[n][gram] < min_count:
                continue
            ctx = gram[:-1]
            lower = lower_prob(probs, backoff, gram[1:])
            probs[n][gram] = (c - d) / ctx_total[ctx] + backoff[n - 1][ctx] * lower
    return probs, backoff


def lower_prob(probs, backoff, gram: tuple[str, ...]) -> float:
    """Interpolated probability of ``gram`` from the orders already computed."""
    p = probs[len(gram)].get(gram)
    if p is not None:
        return p
    if len(gram) == 1:
        return probs[1][(UNK,)]
    return backoff[len(gram) - 1].get(gram[:-1], 1.0) * lower_prob(probs, backoff, gram[1:])


def write_arpa(probs, backoff, order: int, out: Path) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    with gzip.open(out, "wt", encoding="utf-8", compresslevel=9) as f:
        f.write("\\data\\\n")
        for n in range(1, order + 1):
            extra = 1 if n == 1 else 0  # <s> is listed as a unigram with no probability of its own
            f.write(f"ngram {n}={len(probs[n]) + extra}\n")
        for n in range(1, order + 1):
            f.write(f"\n\\{n}-grams:\n")
            if n == 1:
                bo = backoff[1].get((BOS,))
                f.write(f"-99\t{BOS}" + (f"\t{math.log10(bo):.5f}" if bo else "") + "\n")
            for gram in sorted(probs[n]):
                line = f"{math.log10(probs[n][gram]):.5f}\t{' '.join(gram)}"
                bo = backoff[n].get(gram) if n < order else None
                if bo:
                    line += f"\t{math.log10(bo):.5f}"
                f.write(line + "\n")
        f.write("\n\\end\\\n")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("text", type=Path, nargs="*", help="normalised sentences, one per line")
    where = ap.add_mutually_exclusive_group(required=True)
    where.add_argument("--out", type=Path, help="…/lm.arpa.gz")
    where.add_argument("--model-dir", type=Path, help="exported model folder: write lm.arpa.gz and the manifest block")
    ap.add_argument("--arpa", type=Path, default=None, help="use this ARPA file instead of building one")
    ap.add_argument("--beam", type=int, default=16)
    ap.add_argument("--lm-weight", type=float, default=0.5)
    ap.add_argument("--word-bonus", type=float, default=1.0)
    ap.add_argument("--unk-logprob", type=float, default=None,
                    help="ln P charged for a word outside the vocabulary (scripts/tune_lm.py --unk-logprobs "
                         "measures it); default: the file's <unk>")
    ap.add_argument("--keyterm-boost", type=float, default=9.0,
                    help="nats per keyterm word (scripts/tune_keyterms.py measures it); 0 ignores keyterms")
    ap.add_argument("--order", type=int, default=3)
    ap.add_argument("--min-count", type=int, default=2, help="highest-order n-grams seen fewer times are cut")
    ap.add_argument("--unk-mass", type=float, default=1e-4, help="unigram probability of <unk>")
    args = ap.parse_args()
    out = args.out or args.model_dir / LM_FILE
    if args.arpa:
        shutil.copyfile(args.arpa, out)
        about = f"adopted {args.arpa}"
    else:
        if not args.text:
            ap.error("give text files, or --arpa")
        sentences = [line.split() for path in args.text for line in path.read_text().splitlines() if line.strip()]
        probs, backoff = kneser_ney(sentences, args.order, args.min_count, args.unk_mass)
        write_arpa(probs, backoff, args.order, out)
        sizes = ", ".join(f"{n}-grams {len(probs[n])}" for n in range(1, args.order + 1))
        about = f"{len(sentences)} sentences; {sizes}"
    print(f"{out}: {about}; {out.stat().st_size / 1e6:.1f} MB")
    if args.model_dir:
        manifest_path = args.model_dir / "manifest.json"
        manifest = json.loads(manifest_path.read_text())
        if "ctc" not in manifest.get("heads", []):
            raise SystemExit(f"{args.model_dir}: the beam search decodes a CTC head; this model has {manifest.get('heads')}")
        manifest["lm"] = {"file": LM_FILE, "beam": args.beam, "lm_weight": args.lm_weight,
                          "word_bonus": args.word_bonus, "keyterm_boost": args.keyterm_boost, "about": about,
                          "sha256": hashlib.sha256(out.read_bytes()).hexdigest()}
        if args.unk_logprob is not None:
            manifest["lm"]["unk_logprob"] = args.unk_logprob
        manifest_path.write_text(json.dumps(manifest, indent=1, ensure_ascii=False) + "\n")
        print(f"{manifest_path}: lm block {manifest['lm']}")


if __name__ == "__main__":
    main()
