"""Deepgram's `replace=find:replacement`: find-and-replace on recognised words.

`find` is one or more words, matched case-insensitively against consecutive words of one
Results frame (a phrase split by a final is not matched); the replacement is written as given
(its case kept, also without `punctuate`), spread over the matched words' time span; no
replacement (`replace=um` or `replace=um:`) removes the match. Rules apply in query order at
each position, and replaced text is never matched again.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from frontend.session.tokens import Token
from frontend.session.transcript import Word


@dataclass(frozen=True)
class Replacement:
    find: tuple[str, ...]
    """Lower-cased words to match."""
    words: tuple[str, ...]
    """What they become (none: removed)."""

    @classmethod
    def parse(cls, raw: str) -> Replacement | None:
        """`find:replacement` (the last colon splits); None when `find` is blank."""
        find, _, replacement = raw.rpartition(":") if ":" in raw else (raw, "", "")
        words = tuple(find.lower().split())
        return cls(words, tuple(replacement.split())) if words else None


def spread(texts: Sequence[str], span: Sequence[Word]) -> list[Token]:
    """`texts` as verbatim tokens sharing the time of `span` evenly, each as confident as the
    least confident word of the span."""
    start, end = span[0].start, span[-1].end
    confidence = min(w.confidence for w in span)
    step = (end - start) / len(texts) if texts else 0.0
    return [Token(Word(text, start + k * step, start + (k + 1) * step, confidence), verbatim=True)
            for k, text in enumerate(texts)]


def apply_replacements(words: Sequence[Word], rules: Sequence[Replacement]) -> list[Token]:
    """`words` with every match replaced by verbatim tokens."""
    out: list[Token] = []
    texts = [w.text.lower() for w in words]
    i = 0
    while i < len(words):
        rule = next((r for r in rules if tuple(texts[i:i + len(r.find)]) == r.find), None)
        if rule is None:
            out.append(Token(words[i]))
            i += 1
            continue
        out += spread(rule.words, words[i:i + len(rule.find)])
        i += len(rule.find)
    return out
