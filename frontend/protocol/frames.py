"""Every frame the server sends, as frozen dataclasses: the one module that builds them.

`to_dict()` gives the Deepgram-shaped JSON object (validated by
`schemas/asr-frame.schema.json` in the tests), `to_json()` the text frame. Times are seconds of
audio from the connection's first byte, rounded to milliseconds; confidences to 4 decimals.
"""

from __future__ import annotations

import difflib
import json
import logging
import uuid
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Any, ClassVar, Literal

logger = logging.getLogger(__name__)

MAX_FRAME_BYTES = 1 << 20
"""The Deepgram Python SDK (websockets' default `max_size`) drops the connection on a bigger
message, so no frame may reach 1 MiB."""

ConfigureFailureCode = Literal[
    "CONFIGURE_KEYTERMS_NOT_SUPPORTED", "CONFIGURE_KEYTERM_LIMIT_EXCEEDED",
    "CONFIGURE_ALREADY_PENDING", "CONFIGURE_INTERNAL_ERROR",
]


def _seconds(value: float) -> float:
    return max(0.0, round(value, 3))


def _probability(value: float) -> float:
    return round(value, 4)


def _dumps(payload: Mapping[str, Any]) -> str:
    # allow_nan=False: NaN is not JSON; a NaN here is a bug to surface, not to send.
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":"), allow_nan=False)


def iso_timestamp(moment: datetime) -> str:
    """`2025-01-01T00:00:00.123Z`: UTC, milliseconds, `Z` (the SDK parses it as datetime)."""
    if moment.tzinfo is None:
        raise ValueError("created must be timezone-aware")
    utc = moment.astimezone(UTC)
    return utc.strftime("%Y-%m-%dT%H:%M:%S") + f".{utc.microsecond // 1000:03d}Z"


@dataclass(frozen=True)
class ModelInfo:
    """The identity of the model that produced a transcript (Deepgram `model_info`)."""

    uuid: str
    name: str
    version: str
    arch: str

    def info(self) -> dict[str, str]:
        """`{name, version, arch}`."""
        return {"name": self.name, "version": self.version, "arch": self.arch}


class _Frame(ABC):
    type: ClassVar[str]
    """The frame's `type` field (also handy as a metrics label)."""

    @abstractmethod
    def to_dict(self) -> dict[str, Any]:
        """The JSON object of the frame."""

    def to_json(self) -> str:
        """The text frame (compact JSON, UTF-8, always < `MAX_FRAME_BYTES`)."""
        return _dumps(self.to_dict())


@dataclass(frozen=True)
class MetadataFrame(_Frame):
    """`Metadata`: sent at open (duration 0, hash of nothing) and as the last frame."""

    type: ClassVar[str] = "Metadata"

    request_id: str
    created: datetime
    duration: float
    channels: int
    sha256: str
    model: ModelInfo

    def to_dict(self) -> dict[str, Any]:
        """The Deepgram `Metadata` object."""
        return {
            "type": self.type,
            "transaction_key": "deprecated",
            "request_id": self.request_id,
            "sha256": self.sha256,
            "created": iso_timestamp(self.created),
            "duration": _seconds(self.duration),
            "channels": self.channels,
            "models": [self.model.uuid],
            "model_info": {self.model.uuid: self.model.info()},
        }


@dataclass(frozen=True)
class ResultWord:
    """One word of a `Results` alternative."""

    word: str
    start: float
    end: float
    confidence: float
    punctuated_word: str
    speaker: int | None = None

    def to_dict(self) -> dict[str, Any]:
        """The Deepgram word object (`speaker` only with diarize)."""
        out: dict[str, Any] = {
            "word": self.word,
            "start": _seconds(self.start),
            "end": _seconds(self.end),
            "confidence": _probability(self.confidence),
            "punctuated_word": self.punctuated_word,
        }
        if self.speaker is not None:
            out["speaker"] = self.speaker
        return out


@dataclass(frozen=True)
class ResultsFrame(_Frame):
    """`Results` for the span [start, start + duration) of one channel."""

    type: ClassVar[str] = "Results"

    request_id: str
    model: ModelInfo
    channel: int
    channels: int
    start: float
    duration: float
    is_final: bool
    speech_final: bool
    from_finalize: bool
    transcript: str
    confidence: float
    words: tuple[ResultWord, ...]
    extra: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))

    def to_dict(self) -> dict[str, Any]:
        """The Deepgram `Results` object.

        `start` and `start + duration` are rounded separately (duration is their difference),
        so a final's rounded end equals the next segment's rounded start exactly.
        """
        start = _seconds(self.start)
        end = _seconds(self.start + self.duration)
        metadata: dict[str, Any] = {
            "request_id": self.request_id,
            "model_info": self.model.info(),
            "model_uuid": self.model.uuid,
        }
        if self.extra:
            metadata["extra"] = dict(self.extra)
        return {
            "type": self.type,
            "channel_index": [self.channel, self.channels],
            "duration": _seconds(end - start),
            "start": start,
            "is_final": self.is_final,
            "speech_final": self.speech_final,
            "from_finalize": self.from_finalize,
            "channel": {"alternatives": [{
                "transcript": self.transcript,
                "confidence": _probability(self.confidence),
                "words": [word.to_dict() for word in self.words],
            }]},
            "metadata": metadata,
        }

    def to_json(self) -> str:
        """The text frame; drops trailing words (logged) in the unlikely case of >= 1 MiB."""
        text = _dumps(self.to_dict())
        if len(text.encode("utf-8")) < MAX_FRAME_BYTES:
            return text
        frame = self
        while len(text.encode("utf-8")) >= MAX_FRAME_BYTES:
            if frame.words:
                frame = replace(frame, words=frame.words[: len(frame.words) // 2])
            else:
                frame = replace(frame, transcript=frame.transcript[: len(frame.transcript) // 2])
            text = _dumps(frame.to_dict())
        logger.warning("request %s: Results frame over 1 MiB, kept %d of %d words",
                       self.request_id, len(frame.words), len(self.words))
        return text


@dataclass(frozen=True)
class SpeechStartedFrame(_Frame):
    """`SpeechStarted` (vad_events): speech onset detected at `timestamp`."""

    type: ClassVar[str] = "SpeechStarted"

    channel: int
    channels: int
    timestamp: float

    def to_dict(self) -> dict[str, Any]:
        """The Deepgram `SpeechStarted` object."""
        return {"type": self.type, "channel": [self.channel, self.channels],
                "timestamp": _seconds(self.timestamp)}


@dataclass(frozen=True)
class UtteranceEndFrame(_Frame):
    """`UtteranceEnd` (utterance_end_ms + interim_results): a word gap after `last_word_end`."""

    type: ClassVar[str] = "UtteranceEnd"

    channel: int
    channels: int
    last_word_end: float

    def to_dict(self) -> dict[str, Any]:
        """The Deepgram `UtteranceEnd` object."""
        return {"type": self.type, "channel": [self.channel, self.channels],
                "last_word_end": _seconds(self.last_word_end)}


@dataclass(frozen=True)
class ErrorFrame(_Frame):
    """`Error`, sent before an error close; `message` echoes a rejected client text."""

    type: ClassVar[str] = "Error"

    variant: str
    description: str
    message: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """The Deepgram SDK 7 `Error` object."""
        out: dict[str, Any] = {"type": self.type, "variant": self.variant,
                               "description": self.description}
        if self.message is not None:
            out["message"] = self.message
        return out


@dataclass(frozen=True)
class ConfigureFailureFrame(_Frame):
    """`ConfigureFailure`: the answer to a `Configure` control message."""

    type: ClassVar[str] = "ConfigureFailure"

    request_id: str
    code: ConfigureFailureCode
    description: str

    def to_dict(self) -> dict[str, Any]:
        """The Deepgram SDK 7 `ConfigureFailure` object."""
        return {"type": self.type, "request_id": self.request_id, "code": self.code,
                "description": self.description}


@dataclass(frozen=True)
class ConfigureSuccessFrame(_Frame):
    """`ConfigureSuccess`: a `Configure` was applied; `keyterms` only when it replaced them."""

    type: ClassVar[str] = "ConfigureSuccess"

    request_id: str
    keyterms: tuple[str, ...] | None = None

    def to_dict(self) -> dict[str, Any]:
        """The Deepgram SDK 7 `ConfigureSuccess` object."""
        out: dict[str, Any] = {"type": self.type, "request_id": self.request_id}
        if self.keyterms is not None:
            out["keyterms"] = list(self.keyterms)
        return out


Frame = (MetadataFrame | ResultsFrame | SpeechStartedFrame | UtteranceEndFrame | ErrorFrame
         | ConfigureSuccessFrame | ConfigureFailureFrame)


PARAGRAPH_PAUSE_S = 1.0
"""A sentence that starts this long after the one before opens a new paragraph."""
_SENTENCE_MARKS = (".", "?", "!")


def _text(words: Sequence[ResultWord]) -> str:
    return " ".join(word.punctuated_word.strip("\n") for word in words)


def _runs(words: Sequence[ResultWord], split_s: float) -> list[list[ResultWord]]:
    """`words` cut wherever the pause between two words is at least `split_s`."""
    runs: list[list[ResultWord]] = []
    for word in words:
        if not runs or word.start - runs[-1][-1].end >= split_s:
            runs.append([])
        runs[-1].append(word)
    return runs


def _utterance(channel: int, words: Sequence[ResultWord]) -> dict[str, Any]:
    out: dict[str, Any] = {
        "start": _seconds(words[0].start), "end": _seconds(words[-1].end),
        "confidence": _probability(sum(w.confidence for w in words) / len(words)),
        "channel": channel, "transcript": _text(words), "words": [w.to_dict() for w in words],
        "id": str(uuid.uuid4()),
    }
    if words[0].speaker is not None:
        out["speaker"] = words[0].speaker
    return out


def _paragraphs(words: Sequence[ResultWord]) -> dict[str, Any]:
    """Deepgram's `paragraphs` object: sentences end at a sentence mark; a paragraph ends at a
    pause of `PARAGRAPH_PAUSE_S` or a dictated new paragraph."""
    sentences: list[list[ResultWord]] = [[]]
    for word in words:
        sentences[-1].append(word)
        if word.punctuated_word.rstrip('"\n').endswith(_SENTENCE_MARKS):
            sentences.append([])
    paragraphs: list[list[list[ResultWord]]] = []
    for sentence in filter(None, sentences):
        if (not paragraphs or sentence[0].start - paragraphs[-1][-1][-1].end >= PARAGRAPH_PAUSE_S
                or paragraphs[-1][-1][-1].punctuated_word.endswith("\n\n")
                or sentence[0].punctuated_word.startswith("\n\n")):
            paragraphs.append([])
        paragraphs[-1].append(sentence)
    speaker = words[0].speaker if words else None
    label = "" if speaker is None else f"Speaker {speaker}: "
    built = []
    for paragraph in paragraphs:
        item: dict[str, Any] = {
            "sentences": [{"text": _text(s), "start": _seconds(s[0].start), "end": _seconds(s[-1].end)}
                          for s in paragraph],
            "num_words": sum(len(s) for s in paragraph),
            "start": _seconds(paragraph[0][0].start), "end": _seconds(paragraph[-1][-1].end),
        }
        if speaker is not None:
            item["speaker"] = speaker
        built.append(item)
    # Deepgram's layout: each paragraph on its own, after a blank line ("\nFirst.\n\nSecond.").
    transcript = "\n\n".join(label + " ".join(_text(s) for s in p) for p in paragraphs)
    return {"transcript": "\n" + transcript if transcript else "", "paragraphs": built}


SEARCH_MIN_SIMILARITY = 0.7
"""Spellings further from the query are not hits."""


def _search(words: Sequence[ResultWord], query: str) -> dict[str, Any]:
    """Deepgram's `search` result for one query: spans of as many words as the query has whose
    spelling is close to it (difflib's similarity ratio at least `SEARCH_MIN_SIMILARITY`),
    best first by confidence (the similarity times the span's least word confidence),
    overlapping spans resolved to the better one."""
    wanted = " ".join(query.lower().split())
    size = len(wanted.split())
    if not size:
        return {"query": query, "hits": []}
    scored = []
    for i in range(len(words) - size + 1):
        span = words[i:i + size]
        spelled = " ".join(w.word.lower() for w in span)
        similarity = difflib.SequenceMatcher(None, wanted, spelled).ratio()
        if similarity >= SEARCH_MIN_SIMILARITY:
            scored.append((similarity * min(w.confidence for w in span), i, span))
    hits, taken = [], set()
    for confidence, i, span in sorted(scored, key=lambda hit: -hit[0]):
        if taken.isdisjoint(range(i, i + size)):
            taken.update(range(i, i + size))
            hits.append({"confidence": _probability(confidence), "start": _seconds(span[0].start),
                         "end": _seconds(span[-1].end), "snippet": _text(span)})
    return {"query": query, "hits": hits}


@dataclass(frozen=True)
class PrerecordedResponse:
    """The body of `POST /v1/listen`: the closing Metadata plus every channel's finals joined.

    Built from the same frames the live route sends, so both routes agree word for word. No
    top-level `request_id`: the Python SDK would then parse the body as an "accepted" callback
    response and drop the transcript. `utterances_split_s` (`utterances=true`, `utt_split`)
    adds `results.utterances`: each channel's words cut at pauses of at least that long, in
    time order. `paragraphs` adds each alternative's `paragraphs`, `search` each channel's
    `search` (`_search`).
    """

    metadata: MetadataFrame
    finals: tuple[ResultsFrame, ...]
    utterances_split_s: float | None = None
    paragraphs: bool = False
    search: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """The Deepgram pre-recorded response object."""
        meta = self.metadata.to_dict()
        del meta["type"]
        channels = []
        utterances = []
        for index in range(self.metadata.channels):
            frames = [frame for frame in self.finals if frame.channel == index]
            words = [word for frame in frames for word in frame.words]
            confidence = sum(word.confidence for word in words) / len(words) if words else 0.0
            alternative: dict[str, Any] = {
                "transcript": " ".join(frame.transcript for frame in frames if frame.transcript),
                "confidence": _probability(confidence),
                "words": [word.to_dict() for word in words],
            }
            if self.paragraphs:
                alternative["paragraphs"] = _paragraphs(words)
            channel: dict[str, Any] = {"alternatives": [alternative]}
            if self.search:
                channel["search"] = [_search(words, query) for query in self.search]
            channels.append(channel)
            if self.utterances_split_s is not None:
                utterances += [_utterance(index, run) for run in _runs(words, self.utterances_split_s)]
        results: dict[str, Any] = {"channels": channels}
        if self.utterances_split_s is not None:
            results["utterances"] = sorted(utterances, key=lambda u: (u["start"], u["channel"]))
        return {"metadata": meta, "results": results}
