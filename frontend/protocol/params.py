"""Query parameters of `/v1/listen`: the one place that parses them.

Deepgram SDKs put every option in the query string, as strings. Unknown names are ignored (SDK
users pass extras such as `words=true` or `mip_opt_out`); a malformed value of a known name is
rejected with 400 "Invalid query string." before the upgrade (`InvalidQuery`).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TypeVar

from frontend.protocol.errors import InvalidQuery

DEFAULT_ENDPOINTING_MS = 10
DEFAULT_UTT_SPLIT_S = 0.8
"""Deepgram's default pause between pre-recorded utterances."""
"""Deepgram's default: finalise after 10 ms of VAD silence."""

LATENCY_NAMES = ("low", "balanced", "accurate")
_LATENCY_PROFILE = re.compile(r"la\d+")
_TRUE = frozenset({"true", "1", "yes"})
_FALSE = frozenset({"false", "0", "no"})
_EMPTY_EXTRA: Mapping[str, str] = MappingProxyType({})


@dataclass(frozen=True)
class ListenParams:
    """The options of one live connection, typed.

    Implemented: `model`, `language`, `encoding`, `sample_rate`, `channels`, `multichannel`,
    `interim_results`, `endpointing`, `utterance_end_ms`, `vad_events`, `punctuate`,
    `smart_format` (punctuate + numerals + currency, percentages, phone numbers and times;
    paragraphs on the pre-recorded route), `numerals`, `diarize` (every word gets
    `speaker: 0`: no diarizer is served), `filler_words`, `extra` (echoed in
    `Results.metadata.extra`), `no_delay` and `ddx_latency` (below), `keyterm` and `keywords`
    (boosted by the beam search of models decoded with one; see `boosted_terms`), `replace`
    (`frontend.session.replace`), `dictation`, `redact` (lower-cased, comma-separated values
    split) and `profanity_filter` (`frontend.session.formatting`).

    Accepted and validated but without effect: `version`, `tag`, `language_hint`, and `search`
    on the live route (the pre-recorded route answers it).

    Latency profile: `ddx_latency` picks the look-ahead of the served ensemble, either by name
    (`la1`, `la6`, `la13`: N encoder frames of right context) or by intent: `low` (smallest
    look-ahead served), `accurate` (largest), `balanced` (the middle one; the lower of the
    two middle ones when the count is even). Without `ddx_latency`, `no_delay=true` picks the
    lowest look-ahead; with neither, the profile marked `default` in the manifests is used.
    """

    model: str | None = None
    language: str = "en"
    version: str | None = None
    encoding: str | None = None
    """None = container audio, sniffed by the normaliser."""
    sample_rate: int | None = None
    channels: int = 1
    multichannel: bool = False
    interim_results: bool = False
    endpointing: int | None = DEFAULT_ENDPOINTING_MS
    """Milliseconds of silence that end an utterance; None = disabled (`false`, `0`, `no`)."""
    utterance_end_ms: int | None = None
    vad_events: bool = False
    punctuate: bool = False
    smart_format: bool = False
    numerals: bool = False
    profanity_filter: bool = False
    diarize: bool = False
    filler_words: bool = False
    dictation: bool = False
    no_delay: bool = False
    ddx_latency: str | None = None
    """`la<N>`, `low`, `balanced` or `accurate` (lower-cased); see the class docstring."""
    keywords: tuple[tuple[str, float], ...] = ()
    """`keywords=term[:intensifier]`: the term and its boost multiplier (1 when absent,
    negative to suppress the term)."""
    keyterm: tuple[str, ...] = ()
    tag: tuple[str, ...] = ()
    search: tuple[str, ...] = ()
    replace: tuple[str, ...] = ()
    redact: tuple[str, ...] = ()
    """Lower-cased; `redact=pci,ssn` counts as two values."""
    language_hint: tuple[str, ...] = ()
    extra: Mapping[str, str] = field(default_factory=lambda: _EMPTY_EXTRA)
    utterances: bool = False
    """Pre-recorded only (the live route ignores it): `results.utterances`."""
    utt_split: float = DEFAULT_UTT_SPLIT_S
    """Pre-recorded only: the pause, in seconds, that starts a new utterance."""
    paragraphs: bool = False
    callback: str | None = None
    """Pre-recorded only: answer `{"request_id"}` at once and send the result to this URL."""
    callback_method: str = "post"
    """`post` or `put`."""
    """Pre-recorded only: `alternatives[0].paragraphs` (also with `smart_format`); implies
    `punctuate`."""

    @property
    def boosted_terms(self) -> tuple[tuple[str, float], ...]:
        """`keyterm` (weight 1) then `keywords`, as `(term, weight)` for the decoder."""
        return tuple((term, 1.0) for term in self.keyterm) + self.keywords

    @property
    def formats_numbers(self) -> bool:
        """Spelled-out numbers become digits (`numerals` or `smart_format`)."""
        return self.numerals or self.smart_format

    @property
    def punctuates(self) -> bool:
        """Capitalisation and sentence-final periods (`punctuate` or `smart_format`)."""
        return self.punctuate or self.smart_format


def _values(query: Mapping[str, str], name: str) -> list[str]:
    # aiohttp hands us a MultiDictProxy (repeated keys kept, read with getall); plain
    # mappings hold one value per key.
    getall = getattr(query, "getall", None)
    if getall is not None:
        return [str(v) for v in getall(name, [])]
    return [query[name]] if name in query else []


MAX_BOOSTED_TERMS = 100
"""Keyterms and keywords together, each at most `MAX_TERM_CHARS` (Deepgram allows about 500
tokens of keyterms; this is in the same range and bounds the decoder's per-sequence work)."""
MAX_TERM_CHARS = 100


def _term(name: str, raw: str) -> str:
    term = " ".join(raw.split())
    if len(term) > MAX_TERM_CHARS:
        raise InvalidQuery(f"{name}: a term of {len(term)} characters, at most {MAX_TERM_CHARS}")
    return term


def checked_keyterms(raw_terms: Sequence[str], *, keywords: int) -> tuple[str, ...]:
    """Keyterms (query or `Configure`), blanks dropped; `InvalidQuery` past the limits, which
    count the stream's `keywords` too."""
    terms = tuple(t for raw in raw_terms if (t := _term("keyterm", raw)))
    if len(terms) + keywords > MAX_BOOSTED_TERMS:
        raise InvalidQuery(f"keyterm and keywords: more than {MAX_BOOSTED_TERMS} terms")
    return terms


CONFIGURABLE_FEATURES = frozenset({"punctuate", "smart_format", "numerals", "filler_words", "diarize",
                                   "dictation", "profanity_filter"})
"""`Configure.features` this server applies mid-stream: the formatting it does itself."""


def _keyterms(query: Mapping[str, str]) -> tuple[str, ...]:
    return checked_keyterms(_values(query, "keyterm"), keywords=len(_values(query, "keywords")))


def _keywords(query: Mapping[str, str]) -> tuple[tuple[str, float], ...]:
    out: list[tuple[str, float]] = []
    for raw in _values(query, "keywords"):
        term, sep, intensifier = raw.rpartition(":")
        if not sep:
            term, weight = raw, 1.0
        else:
            try:
                weight = float(intensifier)
            except ValueError:
                raise InvalidQuery(f"keywords={raw!r}: expected term or term:intensifier (a number)") from None
            if not math.isfinite(weight):
                raise InvalidQuery(f"keywords={raw!r}: the intensifier must be finite")
        if term := _term("keywords", term):
            out.append((term, weight))
    return tuple(out)


def _first(query: Mapping[str, str], name: str) -> str | None:
    values = _values(query, name)
    return values[0].strip() if values else None


def _bool(query: Mapping[str, str], name: str, default: bool = False) -> bool:
    raw = _first(query, name)
    if raw is None or raw == "":
        return default
    value = raw.lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise InvalidQuery(f"{name}={raw!r}: expected true or false")


_Number = TypeVar("_Number", int, float)


def _number(query: Mapping[str, str], name: str, convert: Callable[[str], _Number], expected: str,
            valid: Callable[[_Number], bool], rule: str) -> _Number | None:
    """`name` converted, None when absent or empty; `InvalidQuery` when it does not convert
    (`expected` says what was) or breaks `rule`."""
    raw = _first(query, name)
    if raw is None or raw == "":
        return None
    try:
        value = convert(raw)
    except ValueError:
        raise InvalidQuery(f"{name}={raw!r}: expected {expected}") from None
    if not valid(value):
        raise InvalidQuery(f"{name}={raw!r}: {rule}")
    return value


def _int(query: Mapping[str, str], name: str, minimum: int) -> int | None:
    return _number(query, name, int, "an integer", lambda value: value >= minimum, f"must be at least {minimum}")


def _endpointing(query: Mapping[str, str]) -> int | None:
    raw = _first(query, "endpointing")
    if raw is None or raw == "":
        return DEFAULT_ENDPOINTING_MS
    lowered = raw.lower()
    if lowered in _FALSE:  # "0" too: it reads as false, like in every boolean here
        return None
    if lowered in ("true", "yes"):  # not "1": that is one millisecond
        return DEFAULT_ENDPOINTING_MS
    return _int(query, "endpointing", minimum=0)


def _latency(query: Mapping[str, str]) -> str | None:
    raw = _first(query, "ddx_latency")
    if raw is None or raw == "":
        return None
    value = raw.lower()
    if value in LATENCY_NAMES or _LATENCY_PROFILE.fullmatch(value):
        return value
    raise InvalidQuery(f"ddx_latency={raw!r}: expected la<N>, low, balanced or accurate")


def _extra(query: Mapping[str, str]) -> Mapping[str, str]:
    pairs: dict[str, str] = {}
    for raw in _values(query, "extra"):
        key, sep, value = raw.partition(":")
        if not sep or not key:
            raise InvalidQuery(f"extra={raw!r}: expected key:value")
        pairs[key] = value
    return MappingProxyType(pairs) if pairs else _EMPTY_EXTRA


def _positive_seconds(query: Mapping[str, str], name: str, default: float) -> float:
    value = _number(query, name, float, "seconds", lambda seconds: 0 < seconds < math.inf,
                    "must be a positive number of seconds")
    return default if value is None else value


def _callback_method(query: Mapping[str, str]) -> str:
    method = (_first(query, "callback_method") or "post").lower()
    if method not in ("post", "put"):
        raise InvalidQuery(f"callback_method={method!r}: post or put")
    return method


def _text(query: Mapping[str, str], name: str) -> str | None:
    raw = _first(query, name)
    return raw or None


def parse_listen_params(query: Mapping[str, str]) -> ListenParams:
    """Parse the query of a live request; raise `InvalidQuery` for a malformed known value.

    `query` is a plain mapping or aiohttp's `MultiDictProxy` (then repeated `keyterm`,
    `keywords`, `tag`, `search`, `replace`, `extra`, `redact`, `language_hint` are all kept;
    for single-valued names the first occurrence wins, as with `request.query.get`).
    Booleans accept `true/false/1/0/yes/no` in any case; an empty value means the default.
    """
    encoding = _text(query, "encoding")
    return ListenParams(
        model=_text(query, "model"),
        language=_text(query, "language") or "en",
        version=_text(query, "version"),
        encoding=encoding.lower() if encoding else None,
        sample_rate=_int(query, "sample_rate", minimum=1),
        channels=_int(query, "channels", minimum=1) or 1,
        multichannel=_bool(query, "multichannel"),
        interim_results=_bool(query, "interim_results"),
        endpointing=_endpointing(query),
        utterance_end_ms=_int(query, "utterance_end_ms", minimum=0),
        vad_events=_bool(query, "vad_events"),
        punctuate=_bool(query, "punctuate"),
        smart_format=_bool(query, "smart_format"),
        numerals=_bool(query, "numerals"),
        profanity_filter=_bool(query, "profanity_filter"),
        diarize=_bool(query, "diarize"),
        filler_words=_bool(query, "filler_words"),
        dictation=_bool(query, "dictation"),
        no_delay=_bool(query, "no_delay"),
        ddx_latency=_latency(query),
        keywords=_keywords(query),
        keyterm=_keyterms(query),
        tag=tuple(_values(query, "tag")),
        search=tuple(_values(query, "search")),
        replace=tuple(_values(query, "replace")),
        redact=tuple(kind.strip().lower() for raw in _values(query, "redact")
                     for kind in raw.split(",") if kind.strip()),
        language_hint=tuple(_values(query, "language_hint")),
        extra=_extra(query),
        utterances=_bool(query, "utterances"),
        utt_split=_positive_seconds(query, "utt_split", DEFAULT_UTT_SPLIT_S),
        paragraphs=_bool(query, "paragraphs"),
        callback=_text(query, "callback"),
        callback_method=_callback_method(query),
    )
