"""The sans-I/O Deepgram live session: events in, actions out.

A `Session` is fed what happens on one connection (client bytes and text, recogniser results,
timer ticks, shutdown, peer loss) and returns what to do about it (`SendFrame` to the client,
`Infer` to Triton, `CloseConnection`). It owns no socket, task or clock: the aiohttp adapter
moves the bytes, runs the Triton stream and calls `tick` (at `deadline` at the latest).

Frame order on a connection: Metadata (open) -> Results (interim and final) with SpeechStarted
and UtteranceEnd interleaved -> the remaining finals -> Metadata (close) -> close frame. Every
close, whatever its cause, first flushes and ENDs every open Triton sequence, waits (at most
`finalize_timeout_s`) for the finals, and sends the closing Metadata.

Finals: the recogniser is cache-aware, so decoded tokens never change; interim vs final is
only segment grouping. A segment is finalised on an endpoint (VAD `speech_end` ->
`speech_final`), on `Finalize` (`from_finalize`, always answered, even when empty), when
`utterance_end_ms` of decoded audio pass after the last word (then `UtteranceEnd` follows),
when it grows past `max_segment_s` (cut before the last, possibly unfinished, word), and on
close (then an `UtteranceEnd` for words no gap has ended yet).
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from enum import Enum

import numpy as np

from frontend.protocol.controls import CloseStream, Configure, Finalize, KeepAlive, parse_control
from frontend.protocol.errors import (
    AudioError, CloseCode, IdleTimeout, InvalidControl, InvalidQuery, RecognizerFailure,
    ServerShutdown, StreamError,
)
from frontend.protocol.frames import (
    ConfigureFailureCode, ConfigureFailureFrame, ConfigureSuccessFrame, ErrorFrame, Frame,
    MetadataFrame, ModelInfo, ResultsFrame, SpeechStartedFrame, UtteranceEndFrame,
)
from frontend.protocol.models import ModelRoute
from frontend.protocol.params import CONFIGURABLE_FEATURES, ListenParams, checked_keyterms
from frontend.session.chunker import Chunker
from frontend.session.formatting import Alternative, TextStyle, format_words
from frontend.session.ports import AudioNormalizerLike, Samples, VadLike
from frontend.session.speech_spans import SpeechSpans
from frontend.session.transcript import Segment, Transcript, Word

logger = logging.getLogger(__name__)

DEFAULT_MAX_SEGMENT_S = 8.0
"""Longest segment without a final when no endpoint comes (noise, endpointing=false)."""
_MAX_ECHO_CHARS = 1024  # of a rejected control message, echoed in the Error frame
_EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()


class SessionState(Enum):
    """OPEN -> STREAMING (after `open`) -> FINALIZING (closing, waiting for finals) -> CLOSED."""

    OPEN = "open"
    STREAMING = "streaming"
    FINALIZING = "finalizing"
    CLOSED = "closed"


@dataclass(frozen=True)
class SendFrame:
    """Send this frame to the client as a text message."""

    frame: Frame


@dataclass(frozen=True, eq=False)  # eq would compare numpy arrays
class Infer:
    """Send one request on the Triton sequence of `channel`.

    `audio` is float32 16 kHz with at most `route.first_chunk_samples` samples (empty for a
    keep-alive or a bare END). `start`/`end` are the sequence START/END flags; `flush` is the
    ensemble's FLUSH input. Every Infer expects exactly one `receive_result(channel, seq)`,
    except those returned by `connection_lost` and after a recogniser failure, whose answers
    are ignored. `keyterms` (the `[term, weight]` list in force, from this request on) rides on
    a START and on the first request after a `Configure` replaced them; None otherwise.
    """

    channel: int
    seq: int
    audio: Samples
    start: bool
    end: bool
    flush: bool
    keyterms: tuple[tuple[str, float], ...] | None = None


@dataclass(frozen=True)
class CloseConnection:
    """Close the WebSocket with this code and reason; nothing follows."""

    code: int
    reason: str


Action = SendFrame | Infer | CloseConnection


@dataclass(frozen=True)
class ChunkResult:
    """One ensemble response (docs/triton-contract.md): tokens with their encoder frames."""

    chunk_start: float
    num_frames: int
    tokens: Sequence[int]
    token_frames: Sequence[int]
    token_conf: Sequence[float]
    partial_tokens: Sequence[int] = ()
    """Tokens the decoder holds back for now (a beam's best tail): interim results only."""
    partial_frames: Sequence[int] = ()
    partial_conf: Sequence[float] = ()


class _Cut(Enum):
    """Why a final is sent."""

    ENDPOINT = "endpoint"
    FINALIZE = "finalize"
    GAP = "utterance gap"
    LENGTH = "max segment length"
    CLOSE = "close"

    @property
    def ends_sentence(self) -> bool:
        # A length cut falls mid-sentence; every other cut follows a pause or an end.
        return self is not _Cut.LENGTH


@dataclass(frozen=True)
class _Request:
    audio_end: float
    """Seconds of real audio sent on the sequence up to and including this request."""
    flush: _Cut | None
    """ENDPOINT, FINALIZE or CLOSE for a flush request: its result closes a segment."""


@dataclass
class _Channel:
    index: int
    chunker: Chunker
    transcript: Transcript
    vad: VadLike | None
    last_sent_at: float
    samples_in: int = 0
    samples_sent: int = 0
    next_seq: int = 0
    started: bool = False
    ended: bool = False
    closed: bool = False
    """The closing final of this channel has been sent."""
    sentence_start: bool = True
    """The next word begins a sentence (for capitalisation)."""
    utterance_end_for: float | None = None
    """`last_word_end` of the last UtteranceEnd sent: one per gap."""
    shown: tuple[Word, ...] = ()
    """The words of the last interim of the open segment (none since the last final)."""
    keyterms_changed: bool = False
    """A `Configure` replaced the keyterms since this channel's last request."""
    speech: SpeechSpans | None = None
    """What the VAD heard as speech, to keep word times out of silence (with a VAD only)."""
    final_word_end: float = 0.0
    """End of the last word a final showed (after `speech` placed it)."""
    inflight: dict[int, _Request] = field(default_factory=dict)
    arrived: dict[int, ChunkResult] = field(default_factory=dict)
    """Results that came before an earlier request's result, kept until their turn."""

    @property
    def open_sequence(self) -> bool:
        return self.started and not self.ended


class Session:
    """One Deepgram live connection as a state machine; see the module docstring."""

    def __init__(self, params: ListenParams, route: ModelRoute, request_id: str, *,
                 audio: AudioNormalizerLike, vad_factory: Callable[[], VadLike] | None,
                 now: float, idle_timeout_s: float = 10.0, finalize_timeout_s: float = 10.0,
                 max_segment_s: float = DEFAULT_MAX_SEGMENT_S, triton_keepalive_s: float = 20.0,
                 created: datetime | None = None) -> None:
        """Prepare a session; nothing is sent until `open`.

        `vad_factory` builds one VAD per channel, already configured with the `endpointing`
        silence; pass None when neither endpointing nor `vad_events` is wanted. `now` and
        every later `now` are seconds on one monotonic clock. `created` (default: the current
        UTC time) is the Metadata `created` stamp.
        """
        self.params = params
        self.route = route
        self.request_id = request_id
        self._audio = audio
        self._vad_factory = vad_factory
        self._idle_timeout = idle_timeout_s
        self._finalize_timeout = finalize_timeout_s
        self._max_segment = max_segment_s
        self._keepalive = triton_keepalive_s
        self._created = created or datetime.now(UTC)
        self._style = TextStyle.from_params(params)
        self._model = ModelInfo(uuid=route.uuid, name=route.display_name,
                                version=route.version, arch=route.arch)
        self._state = SessionState.OPEN
        self._channels: list[_Channel] = []
        self._sha256 = hashlib.sha256()
        self._last_activity = now
        self._finalize_deadline = now
        self._close_with: tuple[int, str] = (int(CloseCode.NORMAL), "")

    # -- public surface ---------------------------------------------------------------------

    @property
    def _keyterms(self) -> tuple[tuple[str, float], ...]:
        """What the decoder is to boost: the stream's keyterms and keywords, when it boosts any."""
        return self.params.boosted_terms if self.route.keyterms else ()

    @property
    def state(self) -> SessionState:
        """Where the session is in its life."""
        return self._state

    @property
    def open_sequences(self) -> tuple[int, ...]:
        """Channels whose Triton sequence has started and not been ENDed."""
        return tuple(ch.index for ch in self._channels if ch.open_sequence)

    @property
    def audio_seconds(self) -> float:
        """Seconds of audio received so far (the closing Metadata's `duration`)."""
        samples = max((ch.samples_in for ch in self._channels), default=0)
        return samples / self.route.sample_rate

    @property
    def deadline(self) -> float | None:
        """The latest `now` at which `tick` must be called; None when no timer runs."""
        if self._state is SessionState.STREAMING:
            return min([self._last_activity + self._idle_timeout]
                       + [ch.last_sent_at + self._keepalive
                          for ch in self._channels if ch.open_sequence])
        if self._state is SessionState.FINALIZING:
            return self._finalize_deadline
        return None

    def open(self, now: float) -> list[Action]:
        """The connection is accepted: send the opening Metadata."""
        if self._state is not SessionState.OPEN:
            raise RuntimeError("Session.open() called twice")
        self._last_activity = now
        self._set_state(SessionState.STREAMING)
        return [SendFrame(self._metadata(closing=False))]

    def receive_bytes(self, data: bytes, now: float) -> list[Action]:
        """A binary frame: audio, or (empty) the legacy end of stream."""
        if not self._accepting_input():
            return []
        self._last_activity = now
        if not data:
            logger.info("request %s: empty binary frame, closing like CloseStream",
                        self.request_id)
            return self._begin_close(None, now)
        self._sha256.update(data)
        try:
            samples = self._audio.feed(data)
        except AudioError as exc:
            # The decoder is broken now: don't ask it for its tail.
            return self._begin_close(exc, now, decode_tail=False)
        return self._ingest(samples, now)

    def receive_text(self, text: str, now: float) -> list[Action]:
        """A text frame: a control message (anything else closes 1008 DATA-0000)."""
        if not self._accepting_input():
            return []
        self._last_activity = now
        try:
            control = parse_control(text)
        except InvalidControl as exc:
            return self._begin_close(exc, now, echo=text[:_MAX_ECHO_CHARS])
        if isinstance(control, KeepAlive):
            return []
        if isinstance(control, Finalize):
            return self._finalize(control.channel, now)
        if isinstance(control, CloseStream):
            return self._begin_close(None, now)
        assert isinstance(control, Configure)
        return [SendFrame(self._configure(control))]

    def _configure(self, control: Configure) -> ConfigureSuccessFrame | ConfigureFailureFrame:
        """Deepgram SDK 7's mid-stream update: `keyterms` replaces the keyterm list (the
        `keywords` stay), from the next request of each channel on; `features` switch the
        formatting options this server applies (unknown names are ignored, like unknown query
        parameters). All or nothing: a refused update changes nothing."""
        def failure(code: ConfigureFailureCode, description: str) -> ConfigureFailureFrame:
            return ConfigureFailureFrame(request_id=self.request_id, code=code, description=description)

        changes: dict[str, object] = {k: v for k, v in (control.features or {}).items()
                                      if k in CONFIGURABLE_FEATURES}
        if control.keyterms is not None:
            if not self.route.keyterms:
                return failure("CONFIGURE_KEYTERMS_NOT_SUPPORTED",
                               f"Model {self.route.display_name} is decoded without keyterm boosting.")
            try:
                changes["keyterm"] = checked_keyterms(control.keyterms, keywords=len(self.params.keywords))
            except InvalidQuery as exc:
                return failure("CONFIGURE_KEYTERM_LIMIT_EXCEEDED", exc.detail)
            for ch in self._channels:
                ch.keyterms_changed = True
        self.params = replace(self.params, **changes)
        self._style = TextStyle.from_params(self.params)
        return ConfigureSuccessFrame(request_id=self.request_id, keyterms=self.params.keyterm
                                     if control.keyterms is not None else None)

    def receive_result(self, channel: int, seq: int, result: ChunkResult,
                       now: float) -> list[Action]:
        """The recogniser's answer to `Infer(channel, seq)`; may arrive out of order."""
        if self._state is SessionState.CLOSED:
            return []
        ch = self._channels[channel]
        if seq not in ch.inflight or seq in ch.arrived:
            logger.warning("request %s: unexpected result channel %d seq %d, ignored",
                           self.request_id, channel, seq)
            return []
        ch.arrived[seq] = result
        actions: list[Action] = []
        # Results are decoded in request order: words and segments depend on it.
        while ch.inflight and (oldest := next(iter(ch.inflight))) in ch.arrived:
            request = ch.inflight.pop(oldest)
            try:
                actions += self._decoded(ch, request, ch.arrived.pop(oldest))
            except RecognizerFailure as exc:
                return actions + self._fail(exc, now)
        return actions + self._close_if_drained()

    def recognizer_failed(self, channel: int, message: str, now: float) -> list[Action]:
        """Triton failed on `channel`: send what was recognised, then close 1011 NET-0000."""
        return self._fail(RecognizerFailure(f"channel {channel}: {message}"), now)

    def tick(self, now: float) -> list[Action]:
        """Timers: idle timeout (close NET-0001), finalize deadline, Triton keep-alives."""
        if self._state is SessionState.STREAMING:
            if now - self._last_activity >= self._idle_timeout:
                return self._begin_close(IdleTimeout(
                    f"no audio and no text message for {self._idle_timeout:g} s"), now)
            # Triton drops a sequence that stays quiet longer than its idle limit: keep it.
            return [self._infer(ch, np.zeros(0, np.float32), now) for ch in self._channels
                    if ch.open_sequence and now - ch.last_sent_at >= self._keepalive]
        if self._state is SessionState.FINALIZING and now >= self._finalize_deadline:
            silent = [ch.index for ch in self._channels if ch.inflight]
            logger.warning("request %s: no final from the recogniser on channels %s within "
                           "%g s, closing with what was recognised", self.request_id, silent,
                           self._finalize_timeout)
            return self._complete_close()
        return []

    def shutdown(self, now: float) -> list[Action]:
        """The server drains: like CloseStream, but closing 1000 `server-shutdown`."""
        if not self._accepting_input():
            return []
        return self._begin_close(ServerShutdown("the server is shutting down"), now)

    def connection_lost(self, now: float) -> list[Action]:
        """The peer is gone: END every open Triton sequence, send nothing."""
        if self._state is SessionState.CLOSED:
            return []
        actions = self._end_sequences(now)
        self._set_state(SessionState.CLOSED)
        return actions

    # -- input --------------------------------------------------------------------------------

    def _accepting_input(self) -> bool:
        if self._state is SessionState.OPEN:
            raise RuntimeError("Session.open() must be called first")
        # After CloseStream (or any close) further input is ignored.
        return self._state is SessionState.STREAMING

    @property
    def _channel_count(self) -> int:
        return (len(self._channels) or self._audio.out_channels
                or (self.params.channels if self.params.multichannel else 1))

    def _ingest(self, samples: Samples, now: float) -> list[Action]:
        if samples.size == 0:  # e.g. a container header still filling
            return []
        if samples.ndim != 2:
            raise ValueError(f"normaliser returned shape {samples.shape}, expected 2-D")
        if not self._channels:
            self._channels = [self._new_channel(index, now) for index in range(len(samples))]
        elif len(samples) != len(self._channels):
            raise RuntimeError(f"normaliser switched from {len(self._channels)} to "
                               f"{len(samples)} channels")
        actions: list[Action] = []
        for ch, row in zip(self._channels, samples, strict=True):
            actions += self._ingest_channel(ch, row, now)
        return actions

    def _ingest_channel(self, ch: _Channel, row: Samples, now: float) -> list[Action]:
        first = ch.samples_in  # stream index of row[0]
        ch.samples_in += len(row)
        events = ch.vad.process(row) if ch.vad is not None else ()
        actions: list[Action] = []
        pushed = 0  # samples of row handed to the chunker so far
        for event in events:
            if ch.speech is not None:
                (ch.speech.started if event.kind == "speech_start" else ch.speech.ended)(event.time_s)
            if event.kind == "speech_start":
                if self.params.vad_events:
                    actions.append(SendFrame(SpeechStartedFrame(
                        channel=ch.index, channels=len(self._channels), timestamp=event.time_s)))
                continue
            if self.params.endpointing is None:
                continue
            # Flush where the detector decided the endpoint, on its own window grid, rather than
            # where this frame happens to end: unless a chunk was already sent past that point,
            # the utterance boundary (and so what the recogniser hears) then does not depend on
            # how the client frames its audio. Not where the silence began: the VAD's silence
            # often starts inside a word's quiet tail, and a segment that opens on that tail is
            # heard as the word again ("two" -> "two two" on FSDD's quieter speaker).
            cut = round(event.decided_s * self.route.sample_rate)
            upto = min(max(cut - first, pushed), len(row))
            actions += self._push(ch, row[pushed:upto], now)
            pushed = upto
            end = first + pushed  # = samples sent + samples buffered
            keep = end - min(max(cut, ch.samples_sent), end)
            actions.append(self._infer(ch, ch.chunker.drain(keep), now, flush=_Cut.ENDPOINT))
        return actions + self._push(ch, row[pushed:], now)

    def _push(self, ch: _Channel, samples: Samples, now: float) -> list[Action]:
        return [self._infer(ch, chunk, now) for chunk in ch.chunker.push(samples)]

    def _new_channel(self, index: int, now: float) -> _Channel:
        route = self.route
        return _Channel(
            index=index,
            chunker=Chunker(route.first_request_samples, route.chunk_samples),
            transcript=Transcript(route.vocabulary, route.word_boundary, route.frame_shift_s),
            vad=self._vad_factory() if self._vad_factory is not None else None,
            last_sent_at=now,
            # A token may come up to one look-ahead (and the frame it sits on) before its word.
            speech=SpeechSpans(route.lookahead_ms / 1000 + route.frame_shift_s, route.frame_shift_s)
            if self._vad_factory is not None else None,
        )

    def _finalize(self, channel: int | None, now: float) -> list[Action]:
        count = self._channel_count
        if channel is not None and channel >= count:
            return self._begin_close(InvalidControl(
                f"Finalize channel {channel}: the stream has {count} channel(s)"), now)
        actions: list[Action] = []
        for index in range(count) if channel is None else (channel,):
            if self._channels:
                ch = self._channels[index]
                actions.append(self._infer(ch, ch.chunker.drain(), now, flush=_Cut.FINALIZE))
            else:
                # No audio decoded yet, so no sequence to flush: answer at once, as promised.
                empty = Segment(0.0, 0.0, ())
                actions.append(SendFrame(self._results(
                    index, empty, format_words((), self._style, sentence_start=True,
                                               sentence_end=False),
                    is_final=True, cut=_Cut.FINALIZE)))
        return actions

    def _infer(self, ch: _Channel, audio: Samples, now: float, *, flush: _Cut | None = None,
               end: bool = False) -> Infer:
        seq = ch.next_seq
        ch.next_seq += 1
        start = not ch.started
        keyterms = self._keyterms if (start and self._keyterms) or ch.keyterms_changed else None
        ch.keyterms_changed = False
        ch.started = True
        ch.ended = ch.ended or end
        ch.samples_sent += len(audio)
        ch.last_sent_at = now
        ch.inflight[seq] = _Request(audio_end=ch.samples_sent / self.route.sample_rate,
                                    flush=flush)
        return Infer(channel=ch.index, seq=seq, audio=audio, start=start, end=end,
                     flush=flush is not None, keyterms=keyterms)

    # -- recogniser output ---------------------------------------------------------------------

    def _decoded(self, ch: _Channel, request: _Request, result: ChunkResult) -> list[Action]:
        transcript = ch.transcript
        if request.flush is not None:
            decoded_until = request.audio_end  # a flush decodes every real sample sent
        else:
            frames_end = result.chunk_start + result.num_frames * self.route.frame_shift_s
            decoded_until = min(frames_end, request.audio_end)
        transcript.add(result.chunk_start, result.tokens, result.token_frames, result.token_conf,
                       decoded_until=decoded_until)
        if request.flush is _Cut.CLOSE:
            return self._close_channel(ch)
        actions: list[Action] = []
        if request.flush is not None:
            actions.append(SendFrame(self._final(ch, transcript.take(), request.flush)))
        elif transcript.cursor - transcript.segment_start >= self._max_segment:
            segment = transcript.cut_at_word_boundary()
            if segment is not None:
                actions.append(SendFrame(self._final(ch, segment, _Cut.LENGTH)))
        actions += self._utterance_end(ch)
        if self.params.interim_results:
            actions += self._interim(ch, result, decoded_until)
        return actions

    def _interim(self, ch: _Channel, result: ChunkResult, decoded_until: float) -> list[Action]:
        """An interim when the open segment's shown words changed. The decoder's provisional
        tail shows in interims (Deepgram's interims are revisable too); finals only ever carry
        decided tokens."""
        transcript = ch.transcript
        words = transcript.preview(result.chunk_start, result.partial_tokens, result.partial_frames,
                                   result.partial_conf, decoded_until=decoded_until)
        if not words or words == ch.shown:
            return []
        ch.shown = words
        alternative = format_words(self._placed(ch, words), self._style, sentence_start=ch.sentence_start,
                                   sentence_end=False, interim=True)
        segment = Segment(transcript.segment_start, transcript.cursor, ())
        return [SendFrame(self._results(ch.index, segment, alternative, is_final=False, cut=None))]

    def _utterance_end(self, ch: _Channel, *, stream_ended: bool = False) -> list[Action]:
        """UtteranceEnd once `utterance_end_ms` of decoded audio follow the last word, or the
        stream ends after it: a client that commits a turn on UtteranceEnd must not lose the
        last one because the audio stopped mid-speech (the guide's frame order is Results ->
        UtteranceEnd -> closing Metadata)."""
        gap_ms = self.params.utterance_end_ms
        transcript = ch.transcript
        last = transcript.last_word_end
        if (not self.params.interim_results or gap_ms is None or last is None
                or ch.utterance_end_for == last
                or (not stream_ended and transcript.cursor < last + gap_ms / 1000)):
            return []
        actions: list[Action] = []
        if transcript.words:
            # The words before the gap become final first, so the UtteranceEnd refers to
            # finalised words, as Deepgram's does.
            actions.append(SendFrame(self._final(ch, transcript.take(), _Cut.GAP)))
        ch.utterance_end_for = last
        # The end the client saw on that word, which placing it may have moved.
        actions.append(SendFrame(UtteranceEndFrame(channel=ch.index,
                                                   channels=len(self._channels),
                                                   last_word_end=max(last, ch.final_word_end))))
        return actions

    def _final(self, ch: _Channel, segment: Segment, cut: _Cut) -> ResultsFrame:
        ch.shown = ()
        alternative = format_words(self._placed(ch, segment.words), self._style,
                                   sentence_start=ch.sentence_start, sentence_end=cut.ends_sentence)
        if alternative.words:
            ch.sentence_start = cut.ends_sentence or alternative.ends_sentence
            ch.final_word_end = alternative.words[-1].end
        return self._results(ch.index, segment, alternative, is_final=True, cut=cut)

    @staticmethod
    def _placed(ch: _Channel, words: Sequence[Word]) -> Sequence[Word]:
        return words if ch.speech is None else ch.speech.place(words)

    def _results(self, channel: int, segment: Segment, alternative: Alternative, *,
                 is_final: bool, cut: _Cut | None) -> ResultsFrame:
        return ResultsFrame(
            request_id=self.request_id, model=self._model, channel=channel,
            channels=self._channel_count, start=segment.start,
            duration=segment.end - segment.start, is_final=is_final,
            speech_final=cut is _Cut.ENDPOINT, from_finalize=cut is _Cut.FINALIZE,
            transcript=alternative.transcript, confidence=alternative.confidence,
            words=alternative.words, extra=self.params.extra)

    # -- closing ---------------------------------------------------------------------------------

    def _begin_close(self, error: StreamError | None, now: float, *, decode_tail: bool = True,
                     echo: str | None = None) -> list[Action]:
        """Flush and END every sequence; the close completes when their finals are in."""
        actions: list[Action] = []
        tail = None
        if decode_tail:
            try:
                tail = self._audio.flush()
            except AudioError as exc:
                if error is None and not self._channels:
                    # Not one sample ever decoded: the stream was never audio we understand.
                    error = exc
                else:  # e.g. a truncated last container frame: close anyway
                    logger.warning("request %s: audio tail not decodable at close: %s",
                                   self.request_id, exc.detail)
        if error is not None:
            self._close_with = (int(error.close.code), error.close.reason)
            logger.info("request %s: closing %d %s: %s", self.request_id, error.close.code,
                        error.close.reason, error.detail)
            if error.close.variant is not None:
                actions.append(SendFrame(ErrorFrame(variant=error.close.variant,
                                                    description=error.detail or error.close.reason,
                                                    message=echo)))
        self._set_state(SessionState.FINALIZING)
        self._finalize_deadline = now + self._finalize_timeout
        if tail is not None:
            actions += self._ingest(tail, now)
        for ch in self._channels:
            actions.append(self._infer(ch, ch.chunker.drain(), now, flush=_Cut.CLOSE, end=True))
        return actions + self._close_if_drained()

    def _close_channel(self, ch: _Channel) -> list[Action]:
        """The channel's closing final, then its UtteranceEnd if one is owed."""
        ch.closed = True
        return [SendFrame(self._final(ch, ch.transcript.take(), _Cut.CLOSE)),
                *self._utterance_end(ch, stream_ended=True)]

    def _close_if_drained(self) -> list[Action]:
        if self._state is SessionState.FINALIZING and not any(ch.inflight
                                                              for ch in self._channels):
            return self._complete_close()
        return []

    def _complete_close(self) -> list[Action]:
        actions: list[Action] = []
        for ch in self._channels:
            # Channels whose closing final never came (deadline, failure): what we have.
            if not ch.closed:
                actions += self._close_channel(ch)
            ch.inflight.clear()
            ch.arrived.clear()
        actions.append(SendFrame(self._metadata(closing=True)))
        actions.append(CloseConnection(*self._close_with))
        self._set_state(SessionState.CLOSED)
        return actions

    def _fail(self, error: RecognizerFailure, now: float) -> list[Action]:
        if self._state is SessionState.CLOSED:
            return []
        logger.error("request %s: recognizer failure: %s", self.request_id, error.detail)
        self._close_with = (int(error.close.code), error.close.reason)
        # The recogniser will not answer any more: END the sequences without waiting.
        actions: list[Action] = self._end_sequences(now)
        assert error.close.variant is not None
        actions.append(SendFrame(ErrorFrame(variant=error.close.variant,
                                            description=error.detail)))
        if self._state is SessionState.STREAMING:
            self._set_state(SessionState.FINALIZING)
        return actions + self._complete_close()

    def _end_sequences(self, now: float) -> list[Action]:
        actions: list[Action] = []
        for ch in self._channels:
            if ch.open_sequence:
                ch.ended = True
                actions.append(Infer(channel=ch.index, seq=ch.next_seq,
                                     audio=np.zeros(0, np.float32), start=False, end=True,
                                     flush=False))
                ch.next_seq += 1
                ch.last_sent_at = now
        return actions

    def _metadata(self, *, closing: bool) -> MetadataFrame:
        if closing:
            return MetadataFrame(request_id=self.request_id, created=self._created,
                                 duration=self.audio_seconds,
                                 channels=len(self._channels),
                                 sha256=self._sha256.hexdigest(), model=self._model)
        return MetadataFrame(request_id=self.request_id, created=self._created, duration=0.0,
                             channels=self._channel_count, sha256=_EMPTY_SHA256,
                             model=self._model)

    def _set_state(self, state: SessionState) -> None:
        logger.info("request %s: session %s -> %s", self.request_id, self._state.value,
                    state.value, extra={"request_id": self.request_id})
        self._state = state
