"""Word and character error rates: the one scoring rule of every evaluation script.

`eval_wer.py` / `eval_offline.py` (NeMo, offline) and `eval_service.py` (the running service,
streaming) all score with `score()`, so "streaming within 1 point of offline" compares like with
like. References and hypotheses go through the same `text_normalize.normalize` (lower case,
numbers spelled out, punctuation dropped), then words are compared.

No dependencies beyond the standard library and `text_normalize`.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

try:
    from text_normalize import normalize
except ImportError:  # imported as `scripts.wer` (tests), without scripts/ on sys.path
    from scripts.text_normalize import normalize

__all__ = ["Scores", "edit_distance", "normalize", "read_manifest", "score"]


def edit_distance(ref: Sequence[str] | str, hyp: Sequence[str] | str) -> int:
    """Levenshtein distance over words or characters (one DP row at a time)."""
    prev = list(range(len(hyp) + 1))
    for i, r in enumerate(ref, 1):
        cur = [i] + [0] * len(hyp)
        for j, h in enumerate(hyp, 1):
            cur[j] = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (r != h))
        prev = cur
    return prev[-1]


@dataclass
class Scores:
    """Corpus-level rates: errors summed over utterances, divided by the reference length."""

    n: int
    wer: float
    cer: float
    exact: float
    words: int = 0
    word_errors: int = 0
    chars: int = 0
    char_errors: int = 0

    def __str__(self) -> str:
        return f"n={self.n} WER={100 * self.wer:.1f}% CER={100 * self.cer:.1f}% exact={100 * self.exact:.1f}%"


def score(refs: Sequence[str], hyps: Sequence[str]) -> Scores:
    """WER, CER and exact-match rate of normalised hypotheses against normalised references.

    CER counts characters of the normalised text, spaces included. An empty reference set
    scores 0 errors over 0 words (rates are then 0, not NaN).
    """
    if len(refs) != len(hyps):
        raise ValueError(f"{len(refs)} references but {len(hyps)} hypotheses")
    refs = [normalize(r) for r in refs]
    hyps = [normalize(h) for h in hyps]
    w_err = sum(edit_distance(r.split(), h.split()) for r, h in zip(refs, hyps))
    c_err = sum(edit_distance(r, h) for r, h in zip(refs, hyps))
    n_w = sum(len(r.split()) for r in refs)
    n_c = sum(len(r) for r in refs)
    exact = sum(r == h for r, h in zip(refs, hyps)) / max(1, len(refs))
    return Scores(len(refs), w_err / max(1, n_w), c_err / max(1, n_c), exact, n_w, w_err, n_c, c_err)


def read_manifest(path: Path, limit: int | None = None) -> list[dict]:
    """Rows of a NeMo JSON-lines manifest (`audio_filepath`, `duration`, `text`, ...); first `limit`."""
    with Path(path).open() as f:
        rows = [json.loads(line) for line in f if line.strip()]
    return rows[:limit] if limit else rows
