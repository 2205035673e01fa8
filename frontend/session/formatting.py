"""Recognised words -> the `words`, `transcript` and `confidence` of a Results alternative.

Applies, in order: filler removal (unless `filler_words`), digits for spelled-out numbers
(`numerals`/`smart_format`), currency, percentages, phone numbers and times (`smart_format`),
`replace` rules, spoken punctuation (`dictation`, with punctuation on), `redact`,
`profanity_filter`, and light punctuation (`punctuate`/`smart_format`): a capital at the start
of a sentence, on "I" and on weekdays and months ("may" and "march" excepted: they are words as
often as months), a period at the end of a segment that ends an utterance.
The served models emit neither case nor punctuation, so this is all the punctuation there is.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from frontend.protocol.frames import ResultWord
from frontend.protocol.params import ListenParams
from frontend.session.dictation import SENTENCE_MARKS, dictate
from frontend.session.numerals import digits_for_numbers
from frontend.session.profanity import mask_profanity
from frontend.session.redact import redact
from frontend.session.replace import Replacement, apply_replacements
from frontend.session.smart import smart_format
from frontend.session.tokens import Token
from frontend.session.transcript import Word

FILLER_WORDS = frozenset({"uh", "um", "mhmm", "mm-mm", "uh-uh", "uh-huh", "nuh-uh"})
"""Deepgram's disfluencies: dropped unless `filler_words=true`."""
PROPER_NAMES = frozenset(
    "monday tuesday wednesday thursday friday saturday sunday january february april june july "
    "august september october november december".split())


@dataclass(frozen=True)
class TextStyle:
    """The formatting options of a connection."""

    punctuate: bool = False
    numerals: bool = False
    smart: bool = False
    """`smart_format`: currency, percentages, phone numbers, times (`frontend.session.smart`)."""
    filler_words: bool = False
    diarize: bool = False
    replacements: tuple[Replacement, ...] = ()
    dictation: bool = False
    """Only with `punctuate` (Deepgram's rule)."""
    redact: frozenset[str] = frozenset()
    profanity_filter: bool = False

    @classmethod
    def from_params(cls, params: ListenParams) -> TextStyle:
        """The style the query asks for (`smart_format` implies punctuate and numerals)."""
        rules = tuple(r for raw in params.replace if (r := Replacement.parse(raw)) is not None)
        return cls(punctuate=params.punctuates, numerals=params.formats_numbers, smart=params.smart_format,
                   filler_words=params.filler_words, diarize=params.diarize, replacements=rules,
                   dictation=params.dictation and params.punctuates,
                   redact=frozenset(params.redact) - {"false"},
                   profanity_filter=params.profanity_filter)


@dataclass(frozen=True)
class Alternative:
    """What goes into `channel.alternatives[0]`."""

    transcript: str
    confidence: float
    words: tuple[ResultWord, ...]
    ends_sentence: bool = False
    """A mark dictated after the last word closes a sentence."""


def _capitalised(text: str) -> str:
    return text[:1].upper() + text[1:]


def _shown(token: Token, style: TextStyle, *, capital: bool, period: bool) -> str:
    text = token.word.text if token.verbatim or style.punctuate else token.word.text.lower()
    if not style.punctuate:
        return text
    plain = text.lower()
    if not token.verbatim and (capital or plain == "i" or plain.startswith("i'") or plain in PROPER_NAMES):
        text = _capitalised(text)
    if period and not token.after and not text.endswith(SENTENCE_MARKS):
        text += "."
    return token.before + text + token.after


def _closes_sentence(dictated: str) -> bool:
    """Marks dictated after a word end its sentence (only dictation does: a replacement that
    ends in "." is an abbreviation as often as not)."""
    return dictated.rstrip('"').endswith(SENTENCE_MARKS) or dictated.endswith("\n")


def _joined(shown: Sequence[str]) -> str:
    # Dictated line breaks are the separator themselves.
    return "".join(("" if i == 0 or text.startswith("\n") or shown[i - 1].endswith("\n") else " ") + text
                   for i, text in enumerate(shown))


def format_words(words: Sequence[Word], style: TextStyle, *, sentence_start: bool,
                 sentence_end: bool, interim: bool = False) -> Alternative:
    """Format one segment's words.

    `sentence_start`: the segment's first word begins a sentence (start of stream, or the
    previous final ended one). `sentence_end`: the segment ends an utterance (endpoint,
    Finalize, utterance gap, close), so it gets a period. `interim`: more words may follow
    the last (redaction then hides a number that may be growing). `word` is lower case; with
    punctuation off, `punctuated_word` equals `word` except for verbatim text (replacements,
    redaction labels, masks). Transcript confidence is the mean word confidence (0 for no
    words).
    """
    kept = [w for w in words if style.filler_words or w.text.lower() not in FILLER_WORDS]
    if style.numerals:
        kept = digits_for_numbers(kept)
    if style.smart:
        kept = smart_format(kept)
    tokens = apply_replacements(kept, style.replacements)
    if style.dictation:
        tokens, sentence_start = dictate(tokens, sentence_start)
    if style.redact:
        tokens = redact(tokens, style.redact, open_end=interim)
    if style.profanity_filter:
        tokens = mask_profanity(tokens)
    out: list[ResultWord] = []
    capital = sentence_start
    for index, token in enumerate(tokens):
        word = token.word
        shown = _shown(token, style, capital=capital or "\n" in token.before,
                       period=sentence_end and index == len(tokens) - 1)
        capital = _closes_sentence(token.after)
        out.append(ResultWord(word=word.text.lower(), start=word.start, end=word.end,
                              confidence=word.confidence, punctuated_word=shown,
                              speaker=0 if style.diarize else None))
    confidence = sum(w.confidence for w in out) / len(out) if out else 0.0
    return Alternative(transcript=_joined([w.punctuated_word for w in out]),
                       confidence=confidence, words=tuple(out),
                       ends_sentence=bool(tokens) and style.punctuate and capital)
