"""Deepgram's `redact`: sensitive numbers in the recognised words become a label.

- `numbers` or `true`: a number of three digits or more, read digit by digit ("four one one",
  "oh" between digits counting as zero), as a cardinal ("three hundred") or already written
  with digits ("555-1212", "$300") -> `[NUMBER]`;
- `aggressive_numbers`: every number -> `[NUMBER]`;
- `pci`: 13 to 19 digits -> `[CREDIT_CARD]`; 3 or 4 digits said at most two words after
  "cvv", "cvc", "csc" or "security code" -> `[CVV]`;
- `ssn`: 9 digits -> `[SSN]`.

Adjacent numbers count as one ("four one one one one one ..."). The most specific label wins
when several values are given. Interims hide a number still being said, whatever its length.
A number split by a final is judged part by part, so a card number read in groups with pauses
between them is caught by `numbers`, not by `pci` alone.
Other values (`pii`, `phi`, entity names) are accepted without effect: no entity recogniser is
served.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Sequence
from dataclasses import dataclass, replace

from frontend.session.numerals import number_runs
from frontend.session.replace import spread
from frontend.session.tokens import Token

_ZEROS = frozenset({"oh", "o"})
_WRITTEN_NUMBER = re.compile(r"[$€]?\d[\d.,-]*%?")
"""A number already written with digits (`numerals`, `smart_format`, a replacement)."""
_CVV_CUES = (("cvv",), ("cvc",), ("csc",), ("security", "code"))


@dataclass
class _Span:
    begin: int
    end: int
    digits: int


def _spans(texts: Sequence[str]) -> list[_Span]:
    """Maximal runs of adjacent numbers: spelled-out cardinals, digit words, and "oh" between
    two of them."""
    runs = [_Span(n.begin, n.end, len(str(n.value))) for n in number_runs(texts)]
    runs += [_Span(i, i + 1, sum(c.isdigit() for c in text)) for i, text in enumerate(texts)
             if _WRITTEN_NUMBER.fullmatch(text)]
    spans: list[_Span] = []
    for run in sorted(runs, key=lambda r: r.begin):
        last = spans[-1] if spans else None
        if last is not None and run.begin == last.end:
            last.end, last.digits = run.end, last.digits + run.digits
        elif last is not None and run.begin == last.end + 1 and texts[last.end] in _ZEROS:
            last.end, last.digits = run.end, last.digits + 1 + run.digits
        else:
            spans.append(run)
    return spans


def _after_cvv_cue(texts: Sequence[str], begin: int) -> bool:
    """A CVV cue ends at most two words before the number ("cvv is", "security code is")."""
    return any(end >= len(cue) and tuple(texts[end - len(cue):end]) == cue
               for end in range(begin - 2, begin + 1) for cue in _CVV_CUES)


def _label(span: _Span, texts: Sequence[str], kinds: Collection[str]) -> str | None:
    if "pci" in kinds and 13 <= span.digits <= 19:
        return "[CREDIT_CARD]"
    if "pci" in kinds and span.digits in (3, 4) and _after_cvv_cue(texts, span.begin):
        return "[CVV]"
    if "ssn" in kinds and span.digits == 9:
        return "[SSN]"
    if "aggressive_numbers" in kinds or ({"numbers", "true"} & set(kinds) and span.digits >= 3):
        return "[NUMBER]"
    return None


def redact(tokens: Sequence[Token], kinds: Collection[str], *, open_end: bool = False) -> list[Token]:
    """`tokens` with each sensitive number replaced by one verbatim label token spanning it
    (marks dictated around the number stay around the label).

    `open_end`: the words may still go on (an interim). A number that reaches the end may then
    be the start of a longer one, the first digits of a card number say, so it is hidden as
    `[NUMBER]` whatever its length: the next result shows it again if it was harmless.
    """
    texts = [t.word.text.lower() if not t.verbatim or _WRITTEN_NUMBER.fullmatch(t.word.text) else ""
             for t in tokens]
    out: list[Token] = []
    index = 0
    for span in _spans(texts):
        label = _label(span, texts, kinds)
        if label is None and open_end and span.end == len(tokens):
            label = "[NUMBER]"
        if label is None:
            continue
        covered = tokens[span.begin:span.end]
        out += tokens[index:span.begin]
        out.append(replace(spread([label], [t.word for t in covered])[0],
                           before=covered[0].before, after=covered[-1].after))
        index = span.end
    out += tokens[index:]
    return out
