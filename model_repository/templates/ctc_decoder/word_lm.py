"""A word n-gram language model read from an ARPA file (plain or gzip), for the CTC beam search.

Scores are natural logs. Backoff follows the ARPA convention: an n-gram missing from the
file scores its context's backoff weight plus the score of the shorter n-gram. A word the
model does not know scores ``unk_logprob`` whatever its context: a decoding setting (how much
the search distrusts a spelling outside the vocabulary), by default the file's ``<unk>`` unigram
(else -10).

Every profile's decoder is its own process with its own copy, so the n-grams live in sorted
numpy arrays (a 64-bit key per n-gram, float32 scores: about 16 bytes each) rather than dicts:
the shipped trigram takes about 10 MB instead of about 80 MB per decoder.
"""

from __future__ import annotations

import functools
import gzip
import math
from bisect import bisect_left
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np

LN10 = math.log(10.0)
BOS, EOS, UNK = "<s>", "</s>", "<unk>"
_MASK = (1 << 64) - 1
_KEY_BITS = 64
SCORE_CACHE = 16384


class _Prefixes:
    """``partial in prefixes``: whether some known word starts with ``partial``."""

    def __init__(self, words: Iterable[str]) -> None:
        self._sorted = sorted(words)

    def __contains__(self, partial: object) -> bool:
        if not isinstance(partial, str):
            return False
        i = bisect_left(self._sorted, partial)
        return i < len(self._sorted) and self._sorted[i].startswith(partial)


class _Table:
    """The n-grams of one order: sorted keys, ln probability, ln backoff (0 when absent)."""

    def __init__(self, count: int) -> None:
        self.keys = np.zeros(count, np.uint64)
        self.prob = np.zeros(count, np.float32)
        self.backoff = np.zeros(count, np.float32)
        self.filled = 0

    def add(self, key: int, prob: float, backoff: float) -> None:
        if self.filled == len(self.keys):
            raise ValueError("more n-grams than the ARPA header announced")
        self.keys[self.filled], self.prob[self.filled], self.backoff[self.filled] = key, prob, backoff
        self.filled += 1

    def seal(self) -> None:
        order = np.argsort(self.keys[: self.filled], kind="stable")
        self.keys, self.prob, self.backoff = self.keys[order], self.prob[order], self.backoff[order]
        if len(self.keys) > 1 and bool((self.keys[1:] == self.keys[:-1]).any()):
            raise ValueError("two n-grams share a key (repeated n-gram, or a hash collision)")

    def find(self, key: int) -> int:
        i = int(self.keys.searchsorted(np.uint64(key)))
        return i if i < len(self.keys) and int(self.keys[i]) == key else -1


class WordLM:
    """Backoff n-gram model; ``score(history, word)`` is ln P(word | history)."""

    def __init__(self, path: str | Path, unk_logprob: float | None = None) -> None:
        self.order = 0
        self._ids: dict[str, int] = {}
        self._tables: dict[int, _Table] = {}
        self._read(Path(path))
        if self.order < 1 or not self._tables.get(1):
            raise ValueError(f"{path}: no n-grams")
        self.words = frozenset(self._ids) - {BOS, EOS, UNK}
        unigrams = self._tables[1]
        unk = unigrams.find(self._key((UNK,))) if UNK in self._ids else -1
        self.unk_logprob = unk_logprob if unk_logprob is not None else (
            float(unigrams.prob[unk]) if unk >= 0 else -10.0)
        # What a word the user vouches for (a keyterm) but the model never saw is charged:
        # as likely as the rarest word it knows, rather than as an unknown.
        known = [unigrams.find(self._key((w,))) for w in self.words]
        self.rare_logprob = float(min((unigrams.prob[i] for i in known if i >= 0), default=self.unk_logprob))
        # Every prefix of a known word: a partial word outside them can only end as <unk>.
        # The beam asks about the same partial words frame after frame: answers are cached.
        self.prefixes = _Prefixes(self.words)
        self.is_prefix = functools.lru_cache(maxsize=SCORE_CACHE)(self.prefixes.__contains__)
        # A beam asks for the same few (history, word) pairs over and over; an array lookup
        # costs ~7 us against ~2 for a dict, so the recent answers are kept (a few MB).
        self.score = functools.lru_cache(maxsize=SCORE_CACHE)(self._score)

    def _key(self, ngram: Sequence[str]) -> int:
        """The n-gram's key: its word ids packed exactly when they fit in 64 bits, else a
        polynomial hash (a collision is caught when the table is sealed)."""
        key = 0
        for word in ngram:
            key = (key << self._bits) | self._ids[word] if self._exact else (key * 1_000_003 + self._ids[word] + 1) & _MASK
        return key

    def _read(self, path: Path) -> None:
        opener = gzip.open if path.suffix == ".gz" else open
        counts: dict[int, int] = {}
        section = 0
        pending: list[tuple[list[str], float, float]] = []  # unigrams, read before ids exist
        with opener(path, "rt", encoding="utf-8") as f:
            for raw in f:
                line = raw.strip()
                if not line or line.startswith("\\data\\"):
                    continue
                if line.startswith("ngram "):
                    n, count = line[len("ngram "):].split("=")
                    counts[int(n)] = int(count)
                    continue
                if line.startswith("\\") and line.endswith("-grams:"):
                    section = int(line[1:line.index("-")])
                    self.order = max(self.order, section)
                    if section == 2:
                        self._index_unigrams(pending, counts)
                    self._tables[section] = _Table(counts.get(section, 0))
                    continue
                if line == "\\end\\":
                    break
                if not section:
                    continue
                fields = line.split()
                words = fields[1:1 + section]
                if len(words) != section:
                    raise ValueError(f"{path}: bad {section}-gram line {line!r}")
                prob = float(fields[0]) * LN10
                backoff = float(fields[1 + section]) * LN10 if len(fields) > 1 + section else 0.0
                if section == 1:
                    pending.append((words, prob, backoff))
                elif all(w in self._ids for w in words):  # an n-gram over unlisted words is unusable
                    self._tables[section].add(self._key(words), prob, backoff)
        if self.order == 1:
            self._index_unigrams(pending, counts)
        for table in self._tables.values():
            table.seal()

    def _index_unigrams(self, unigrams: list[tuple[list[str], float, float]], counts: dict[int, int]) -> None:
        self._ids = {words[0]: i for i, (words, _, _) in enumerate(unigrams)}
        self._bits = max(1, len(self._ids).bit_length())
        self._exact = self._bits * max(counts, default=1) <= _KEY_BITS
        table = self._tables[1] = _Table(len(unigrams))
        for words, prob, backoff in unigrams:
            table.add(self._key(words), prob, backoff)
        unigrams.clear()

    def _find(self, ngram: Sequence[str]) -> int:
        table = self._tables.get(len(ngram))
        if table is None or any(w not in self._ids for w in ngram):
            return -1
        return table.find(self._key(ngram))

    def _score(self, history: tuple[str, ...], word: str) -> float:
        """ln P(word | the last ``order - 1`` words of history): ``score``, uncached."""
        if word not in self.words and word != EOS:
            return self.unk_logprob
        context = history[len(history) - self.order + 1:] if self.order > 1 else ()
        penalty = 0.0
        while True:
            ngram = (*context, word)
            i = self._find(ngram)
            if i >= 0:
                return penalty + float(self._tables[len(ngram)].prob[i])
            if not context:
                return penalty + self.unk_logprob
            j = self._find(context)
            if j >= 0:
                penalty += float(self._tables[len(context)].backoff[j])
            context = context[1:]

    def state(self, history: tuple[str, ...], word: str) -> tuple[str, ...]:
        """The history after ``word``, cut to what the model can use."""
        keep = self.order - 1
        if keep <= 0:
            return ()
        known = word if word in self.words else UNK
        return (*history, known)[-keep:]
