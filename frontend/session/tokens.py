"""A word on its way from the recogniser to a Results frame, with what formatting added."""

from __future__ import annotations

from dataclasses import dataclass

from frontend.session.transcript import Word


@dataclass(frozen=True)
class Token:
    word: Word
    verbatim: bool = False
    """Text the client wrote or the server substitutes (a `replace` replacement, a redaction
    label): shown as written, never re-cased, never matched again."""
    before: str = ""
    """Punctuation dictated in front of the word (an opening quote, a line break)."""
    after: str = ""
    """Punctuation dictated after the word (",", ".", a closing quote)."""
