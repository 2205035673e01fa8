"""Recognised words -> the `words`, `transcript` and `confidence` of a Results alternative.

Applies, in order: filler removal (unless `filler_words`), digits for spelled-out numbers
(`numerals`/`smart_format`), `replace` rules, and light punctuation (`punctuate`/`smart_format`):
a capital at the start of a sentence and on "I", a period at the end of a segment that ends an
utterance.
The served models emit neither case nor punctuation, so this is all the punctuation there is.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from frontend.protocol.frames import ResultWord
from frontend.protocol.params import ListenParams
from frontend.session.numerals import digits_for_numbers
from frontend.session.replace import Replacement, apply_replacements
from frontend.session.transcript import Word

FILLER_WORDS = frozenset({"uh", "um", "mhmm", "mm-mm", "uh-uh", "uh-huh", "nuh-uh"})
"""Deepgram's disfluencies: dropped unless `filler_words=true`."""
_SENTENCE_MARKS = (".", "?", "!")


@dataclass(frozen=True)
class TextStyle:
    """The formatting options of a connection."""

    punctuate: bool = False
    numerals: bool = False
    filler_words: bool = False
    diarize: bool = False
    replacements: tuple[Replacement, ...] = ()

    @classmethod
    def from_params(cls, params: ListenParams) -> TextStyle:
        """The style the query asks for (`smart_format` implies punctuate and numerals)."""
        rules = tuple(r for raw in params.replace if (r := Replacement.parse(raw)) is not None)
        return cls(punctuate=params.punctuates, numerals=params.formats_numbers,
                   filler_words=params.filler_words, diarize=params.diarize, replacements=rules)


@dataclass(frozen=True)
class Alternative:
    """What goes into `channel.alternatives[0]`."""

    transcript: str
    confidence: float
    words: tuple[ResultWord, ...]


def _capitalised(text: str) -> str:
    return text[:1].upper() + text[1:]


def format_words(words: Sequence[Word], style: TextStyle, *, sentence_start: bool,
                 sentence_end: bool) -> Alternative:
    """Format one segment's words.

    `sentence_start`: the segment's first word begins a sentence (start of stream, or the
    previous final ended one). `sentence_end`: the segment ends an utterance (endpoint,
    Finalize, utterance gap, close), so it gets a period. `word` is lower case; with
    punctuation off, `punctuated_word` equals `word`. Transcript confidence is the mean word
    confidence (0 for no words).
    """
    kept = [w for w in words if style.filler_words or w.text.lower() not in FILLER_WORDS]
    if style.numerals:
        kept = digits_for_numbers(kept)
    final = apply_replacements(kept, style.replacements)
    out: list[ResultWord] = []
    for index, (word, verbatim) in enumerate(final):
        plain = word.text.lower()
        shown = word.text if verbatim else plain
        if style.punctuate:
            shown = word.text
            if not verbatim and ((index == 0 and sentence_start) or plain == "i" or plain.startswith("i'")):
                shown = _capitalised(shown)
            if sentence_end and index == len(final) - 1 and not shown.endswith(_SENTENCE_MARKS):
                shown += "."
        out.append(ResultWord(word=plain, start=word.start, end=word.end,
                              confidence=word.confidence, punctuated_word=shown,
                              speaker=0 if style.diarize else None))
    confidence = sum(w.confidence for w in out) / len(out) if out else 0.0
    return Alternative(transcript=" ".join(w.punctuated_word for w in out),
                       confidence=confidence, words=tuple(out))
