"""A word n-gram language model read from an ARPA file (plain or gzip), for the CTC beam search.

Scores are natural logs. Backoff follows the ARPA convention: an n-gram missing from the
file scores its context's backoff weight plus the score of the shorter n-gram. Words the
model does not know score ``<unk>`` (the file's, or ``unk_logprob``).
"""

from __future__ import annotations

import gzip
import math
from pathlib import Path

LN10 = math.log(10.0)
BOS, EOS, UNK = "<s>", "</s>", "<unk>"


class WordLM:
    """Backoff n-gram model; ``score(history, word)`` is ln P(word | history)."""

    def __init__(self, path: str | Path, unk_logprob: float = -10.0) -> None:
        self.order = 0
        # Keyed by the n-gram's words joined with spaces: a string per entry costs about half
        # of a tuple of strings (the embedded LM: ~70 MB instead of ~125 MB per decoder).
        self._prob: dict[str, float] = {}
        self._backoff: dict[str, float] = {}
        self._read(Path(path))
        if self.order < 1:
            raise ValueError(f"{path}: no n-grams")
        self.unk_logprob = self._prob.get(UNK, unk_logprob)
        self.words = frozenset(k for k in self._prob if " " not in k) - {BOS, EOS, UNK}
        # What a word the user vouches for (a keyterm) but the model never saw is charged:
        # as likely as the rarest word it knows, rather than as an unknown.
        self.rare_logprob = min((self._prob[w] for w in self.words), default=self.unk_logprob)
        # Every prefix of a known word: a partial word outside this set can only end as <unk>.
        self.prefixes = frozenset(w[:i] for w in self.words for i in range(1, len(w) + 1))

    def _read(self, path: Path) -> None:
        opener = gzip.open if path.suffix == ".gz" else open
        section = 0
        with opener(path, "rt", encoding="utf-8") as f:
            for raw in f:
                line = raw.strip()
                if not line or line.startswith("\\data\\") or line.startswith("ngram "):
                    continue
                if line.startswith("\\") and line.endswith("-grams:"):
                    section = int(line[1:line.index("-")])
                    self.order = max(self.order, section)
                    continue
                if line == "\\end\\":
                    break
                if not section:
                    continue
                fields = line.split()
                words = fields[1:1 + section]
                if len(words) != section:
                    raise ValueError(f"{path}: bad {section}-gram line {line!r}")
                key = " ".join(words)
                self._prob[key] = float(fields[0]) * LN10
                if len(fields) > 1 + section:
                    self._backoff[key] = float(fields[1 + section]) * LN10

    def score(self, history: tuple[str, ...], word: str) -> float:
        """ln P(word | the last ``order - 1`` words of history)."""
        if word not in self.words and word != EOS:
            word = UNK
        context = history[len(history) - self.order + 1:] if self.order > 1 else ()
        penalty = 0.0
        while True:
            p = self._prob.get(" ".join((*context, word)))
            if p is not None:
                return penalty + p
            if not context:
                return penalty + self.unk_logprob
            penalty += self._backoff.get(" ".join(context), 0.0)
            context = context[1:]

    def state(self, history: tuple[str, ...], word: str) -> tuple[str, ...]:
        """The history after ``word``, cut to what the model can use."""
        keep = self.order - 1
        if keep <= 0:
            return ()
        known = word if word in self.words else UNK
        return (*history, known)[-keep:]
