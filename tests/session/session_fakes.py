"""Small stand-ins for the session's collaborators, and a harness that drives a Session.

The fakes follow the real contracts closely enough for the session to notice mistakes: the
normaliser decodes real linear16, the VAD is an energy detector with a silence timer, and the
recogniser answers like the ensemble (frames of real audio only, START/END/FLUSH honoured),
emitting scripted tokens at the frame that covers their time.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

import numpy as np

from frontend.protocol.errors import AudioError
from frontend.protocol.frames import Frame, ResultsFrame
from frontend.protocol.models import ModelRoute, ModelTable
from frontend.protocol.params import ListenParams
from frontend.protocol.schemas import validator
from frontend.session.core import (
    Action, ChunkResult, CloseConnection, Infer, SendFrame, Session,
)
from frontend.session.ports import Samples

SR = 16000
VOCAB = ["<unk>", "▁hello", "▁world", "▁good", "bye", "▁twenty", "▁one", "▁um", "▁i",
         "▁am", "▁here", "▁", "s", "▁nine", "▁hundred", "▁period"]
TOKEN = {piece.lstrip("▁") or "▁": index for index, piece in enumerate(VOCAB)}
CREATED = datetime(2025, 1, 2, 3, 4, 5, 678000, tzinfo=UTC)


def manifest(**overrides: Any) -> dict[str, Any]:
    """A small model: 0.2 s chunks (+40 samples first), 40 ms frames, SentencePiece vocab."""
    base: dict[str, Any] = {
        "model": "embedded", "profile": "la13", "lookahead_ms": 1040,
        "display_name": "embedded-la13", "version": "2025-01-01", "arch": "fastconformer-ctc",
        "uuid": "0b9e7a52-5d6c-4c55-9d4e-6a1f3e2b7c10", "languages": ["en"],
        "sample_rate": SR, "chunk_samples": 3200, "first_chunk_samples": 3240,
        "frame_shift_s": 0.04, "vocabulary": VOCAB, "blank_id": len(VOCAB),
        "word_boundary": "▁", "default": True,
    }
    base.update(overrides)
    return base


def route(params: ListenParams | None = None, **overrides: Any) -> ModelRoute:
    return ModelTable([manifest(**overrides)]).resolve(params or ListenParams())


def pcm(seconds: float, amplitude: float = 0.0, channels: int = 1) -> bytes:
    """Interleaved s16le: a constant-level signal (0 = silence), same on every channel."""
    n = round(seconds * SR)
    samples = np.full((n, channels), int(amplitude * 32767), dtype="<i2")
    return samples.tobytes()


def speech(seconds: float, channels: int = 1) -> bytes:
    return pcm(seconds, 0.5, channels)


def silence(seconds: float, channels: int = 1) -> bytes:
    return pcm(seconds, 0.0, channels)


class FakeNormalizer:
    """linear16 16 kHz, interleaved; downmixes unless multichannel. `fail` raises on feed."""

    def __init__(self, channels: int = 1, multichannel: bool = False) -> None:
        self.channels = channels
        self.multichannel = multichannel
        self.out_channels: int | None = None
        self.fail: AudioError | None = None
        self.fail_on_flush: AudioError | None = None
        self.flushed = False
        self._partial = b""

    def _empty(self) -> Samples:
        return np.zeros((self.out_channels or 1, 0), np.float32)

    def feed(self, data: bytes) -> Samples:
        if self.fail is not None:
            raise self.fail
        data = self._partial + data
        frame = 2 * self.channels
        usable = len(data) - len(data) % frame
        self._partial = data[usable:]
        ints = np.frombuffer(data[:usable], dtype="<i2").reshape(-1, self.channels)
        samples = (ints.astype(np.float32) / 32768.0).T
        if not self.multichannel:
            samples = samples.mean(axis=0, keepdims=True)
        self.out_channels = samples.shape[0]
        return np.ascontiguousarray(samples, dtype=np.float32)

    def flush(self) -> Samples:
        self.flushed = True
        if self.fail_on_flush is not None:
            raise self.fail_on_flush
        return self._empty()


@dataclass(frozen=True)
class VadEvent:
    kind: Literal["speech_start", "speech_end"]
    time_s: float
    decided_s: float


class EnergyVad:
    """Speech while |x| > 0.1; `speech_end` once `silence_ms` of quiet follow speech."""

    def __init__(self, silence_ms: int) -> None:
        self.silence = silence_ms / 1000
        self.samples = 0
        self.in_speech = False
        self.quiet_since: float | None = None

    def process(self, samples: Samples) -> list[VadEvent]:
        events: list[VadEvent] = []
        for value in np.abs(samples):
            t = self.samples / SR
            self.samples += 1
            if value > 0.1:
                self.quiet_since = None
                if not self.in_speech:
                    self.in_speech = True
                    events.append(VadEvent("speech_start", t, t))
            elif self.in_speech:
                if self.quiet_since is None:
                    self.quiet_since = t
                elif t - self.quiet_since >= self.silence:
                    # Like Silero: decided after the silence, stamped where the silence began.
                    self.in_speech = False
                    events.append(VadEvent("speech_end", self.quiet_since, t))
        return events


@dataclass
class _Stream:
    received: int = 0
    decoded_frames: int = 0
    open: bool = False


class FakeRecognizer:
    """Answers like the ensemble; `script[channel]` = [(time_s, piece, confidence), ...]."""

    def __init__(self, script: Mapping[int, Sequence[tuple[float, str, float]]] | None = None,
                 frame_shift_s: float = 0.04, first_chunk_samples: int = 3240) -> None:
        self.first_chunk_samples = first_chunk_samples
        self.script = {ch: sorted(items) for ch, items in (script or {}).items()}
        self.shift = frame_shift_s
        self.streams: dict[int, _Stream] = {}
        self.ended: list[int] = []

    def answer(self, infer: Infer) -> ChunkResult:
        stream = self.streams.setdefault(infer.channel, _Stream())
        assert infer.start != stream.open, "START must open exactly one sequence"
        assert len(infer.audio) <= self.first_chunk_samples
        stream.open = True
        stream.received += len(infer.audio)
        frame_samples = round(self.shift * SR)
        if infer.flush or infer.end:
            available = math.ceil(stream.received / frame_samples)
        else:
            available = stream.received // frame_samples
        chunk_start = stream.decoded_frames * self.shift
        num_frames = available - stream.decoded_frames
        stream.decoded_frames = available
        if infer.end:
            stream.open = False
            self.ended.append(infer.channel)
        tokens, frames, confs = [], [], []
        pending = self.script.get(infer.channel, [])
        while pending and pending[0][0] < chunk_start + num_frames * self.shift - 1e-9:
            time_s, piece, conf = pending.pop(0)
            tokens.append(TOKEN[piece])
            frames.append(int((time_s - chunk_start) / self.shift + 1e-9))
            confs.append(conf)
        return ChunkResult(chunk_start, num_frames, tokens, frames, confs)


def words_at(start: float, *pieces: str, step: float = 0.2,
             conf: float = 0.9) -> list[tuple[float, str, float]]:
    """Script pieces every `step` seconds from `start`."""
    return [(start + i * step, piece, conf) for i, piece in enumerate(pieces)]


@dataclass
class Harness:
    """Drives a Session like the adapter would, with a synchronous fake Triton."""

    params: ListenParams = field(default_factory=ListenParams)
    script: Mapping[int, Sequence[tuple[float, str, float]]] | None = None
    vad: bool = True
    auto_answer: bool = True
    max_segment_s: float = 8.0
    manifest_overrides: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.route = route(self.params, **self.manifest_overrides)
        self.audio = FakeNormalizer(self.params.channels, self.params.multichannel)
        endpointing = self.params.endpointing or 300
        self.session = Session(
            self.params, self.route, "req-1", audio=self.audio,
            vad_factory=(lambda: EnergyVad(endpointing)) if self.vad else None, now=0.0,
            max_segment_s=self.max_segment_s, created=CREATED)
        self.recognizer = FakeRecognizer(self.script,
                                         first_chunk_samples=self.route.first_chunk_samples)
        self.now = 0.0
        self.frames: list[Frame] = []
        self.closes: list[CloseConnection] = []
        self.infers: list[Infer] = []
        self.held: list[Infer] = []

    def handle(self, actions: Iterable[Action]) -> None:
        for action in actions:
            if isinstance(action, SendFrame):
                payload = json.loads(action.frame.to_json())
                errors = list(validator("asr-frame").iter_errors(payload))
                assert not errors, errors
                assert not self.closes, "frame after close"
                self.frames.append(action.frame)
            elif isinstance(action, CloseConnection):
                assert not self.closes, "closed twice"
                self.closes.append(action)
            else:
                self.infers.append(action)
                if self.auto_answer:
                    self.answer(action)
                else:
                    self.held.append(action)

    def answer(self, infer: Infer) -> None:
        result = self.recognizer.answer(infer)
        self.handle(self.session.receive_result(infer.channel, infer.seq, result, self.now))

    def answer_held(self) -> None:
        held, self.held = self.held, []
        for infer in held:
            self.answer(infer)

    def open(self) -> Harness:
        self.handle(self.session.open(self.now))
        return self

    def send(self, data: bytes, frame_bytes: int = 2048) -> None:
        """Stream `data` in ~64 ms binary frames, advancing the clock in real time."""
        step = frame_bytes - frame_bytes % (2 * self.params.channels)
        for offset in range(0, len(data), step):
            piece = data[offset:offset + step]
            self.now += len(piece) / (2 * self.params.channels * SR)
            self.handle(self.session.receive_bytes(piece, self.now))

    def text(self, message: str | dict[str, Any]) -> None:
        raw = message if isinstance(message, str) else json.dumps(message)
        self.handle(self.session.receive_text(raw, self.now))

    def tick(self, at: float) -> None:
        self.now = at
        self.handle(self.session.tick(at))

    @property
    def types(self) -> list[str]:
        return [frame.to_dict()["type"] for frame in self.frames]

    @property
    def results(self) -> list[ResultsFrame]:
        return [f for f in self.frames if isinstance(f, ResultsFrame)]

    @property
    def finals(self) -> list[ResultsFrame]:
        return [f for f in self.results if f.is_final]

    def transcript(self, channel: int = 0) -> str:
        return " ".join(f.transcript for f in self.finals
                        if f.channel == channel and f.transcript)
