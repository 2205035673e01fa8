"""Runs one sans-I/O `Session` against Triton: Infer actions to gRPC streams, results back.

Both the live WebSocket route and the pre-recorded POST route use it; they differ only in where
frames and the close go (the `emit` sink). The driver owns the session's timer and guarantees
that every Triton sequence it opened is ended, whatever ends the session.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Callable

from frontend.audio.normalize import AudioNormalizer
from frontend.config import Config
from frontend.metrics import Metrics
from frontend.protocol.models import ModelRoute
from frontend.protocol.params import ListenParams
from frontend.session.core import Action, ChunkResult, CloseConnection, Infer, SendFrame, Session
from frontend.triton.stream import SequenceStream
from frontend.vad.silero import SileroVad
from tritonclient.grpc import aio as grpc_aio

log = logging.getLogger(__name__)

TICK_S = 0.25
# Silero decides in 32 ms windows; below ~200 ms of silence it ends "utterances" between words,
# so Deepgram's 10 ms default endpointing is honoured as this floor.
ENDPOINTING_FLOOR_MS = 200

AUDIO_PIECE_BUDGET_S = 0.005
"""How long one piece of a client message may hold the event loop. Whole files may come as one
message (the guide's "full-frame inputs"), and decoding plus VAD cost follows the audio's
duration, not its bytes: 8 KiB is a quarter second of linear16 but eleven seconds of 6 kb/s
Opus (about 80 ms of work on this machine). So the piece size adapts to what the last piece
cost. Decoding does not depend on how the bytes are split: pieces change nothing but who waits."""
AUDIO_PIECE_BYTES = (256, 8 * 1024, 64 * 1024)
"""Smallest, first and largest piece."""


def next_piece_bytes(size: int, took_s: float) -> int:
    """The piece size that would have taken `AUDIO_PIECE_BUDGET_S` at the last piece's rate,
    growing at most twofold: a container decoder may buffer a piece without decoding any of it,
    and that cheap piece says nothing about the next one."""
    smallest, _, largest = AUDIO_PIECE_BYTES
    fitted = int(size * AUDIO_PIECE_BUDGET_S / max(took_s, 1e-6))
    return max(smallest, min(largest, 2 * size, fitted))


Emit = Callable[[SendFrame | CloseConnection], None]


def now() -> float:
    """The session clock: monotonic seconds."""
    return time.monotonic()


def new_session(
    config: Config, params: ListenParams, route: ModelRoute, request_id: str
) -> tuple[Session, AudioNormalizer]:
    """A session with its audio normaliser and, when endpointing or VAD events need it, a VAD."""
    vad_factory = None
    if params.endpointing is not None or params.vad_events:
        silence_ms = max(params.endpointing or 0, ENDPOINTING_FLOOR_MS)

        def vad_factory() -> SileroVad:
            return SileroVad(min_silence_ms=silence_ms)

    audio = AudioNormalizer(
        params.encoding,
        params.sample_rate,
        params.channels,
        params.multichannel,
        max_channels=config.max_channels,
        max_sample_rate=config.max_sample_rate,
    )
    session = Session(
        params,
        route,
        request_id,
        audio=audio,
        vad_factory=vad_factory,
        now=now(),
        idle_timeout_s=config.idle_timeout_s,
        finalize_timeout_s=config.finalize_timeout_s,
        max_segment_s=config.max_segment_s,
    )
    return session, audio


class SessionDriver:
    """One session's Triton streams and timer; frames and the close go to `emit`."""

    def __init__(
        self,
        session: Session,
        audio: AudioNormalizer,
        route: ModelRoute,
        request_id: str,
        *,
        client: grpc_aio.InferenceServerClient,
        config: Config,
        metrics: Metrics,
        emit: Emit,
    ) -> None:
        self.session = session
        self.audio = audio
        self.route = route
        self.request_id = request_id
        self._client = client
        self._config = config
        self._metrics = metrics
        self._emit = emit
        self._streams: dict[int, SequenceStream] = {}
        self._sent_at: dict[tuple[int, int], float] = {}
        self._ticker: asyncio.Task[None] | None = None
        self._piece_bytes = AUDIO_PIECE_BYTES[1]

    def _stream(self, channel: int) -> SequenceStream:
        stream = self._streams.get(channel)
        if stream is None:

            async def on_result(seq: int, result: ChunkResult) -> None:
                sent = self._sent_at.pop((channel, seq), None)
                if sent is not None:
                    self._metrics.chunk_latency.observe(now() - sent)
                await self.apply(self.session.receive_result(channel, seq, result, now()))

            async def on_error(message: str) -> None:
                self._metrics.triton_errors.inc()
                await self.apply(self.session.recognizer_failed(channel, message, now()))

            stream = SequenceStream(
                self._client,
                self.route.ensemble,
                self.route.first_chunk_samples,
                on_result=on_result,
                on_error=on_error,
                max_pending=self._config.max_pending_chunks,
                partial_outputs=self.route.partial_outputs,
                log_extra={"request_id": self.request_id, "channel": channel},
            )
            self._streams[channel] = stream
            self._metrics.triton_sequences_open.inc()
        return stream

    async def apply(self, actions: list[Action]) -> None:
        """Carry out actions in order; an Infer may wait for queue space (backpressure)."""
        for action in actions:
            if isinstance(action, Infer):
                if not action.end:
                    self._sent_at[(action.channel, action.seq)] = now()
                await self._stream(action.channel).send(action)
            else:
                self._emit(action)

    async def receive_audio(self, data: bytes) -> None:
        """A client's binary message, decoded piece by piece; empty is the legacy end of stream."""
        if not data:
            await self.apply(self.session.receive_bytes(b"", now()))
            return
        offset = 0
        while offset < len(data):
            if offset:
                await asyncio.sleep(0)  # let other connections run between pieces
            piece = data[offset : offset + self._piece_bytes]
            started = time.perf_counter()
            actions = self.session.receive_bytes(piece, now())
            # A short last piece says little about the rate: keep the size for the next message.
            if len(piece) == self._piece_bytes:
                self._piece_bytes = next_piece_bytes(len(piece), time.perf_counter() - started)
            offset += len(piece)
            await self.apply(actions)

    async def _tick_loop(self) -> None:
        while True:
            await asyncio.sleep(TICK_S)
            await self.apply(self.session.tick(now()))

    async def start(self) -> None:
        """Open the session (its opening Metadata goes to `emit`) and start its timer."""
        self._ticker = asyncio.create_task(self._tick_loop(), name=f"ticker-{self.request_id}")
        await self.apply(self.session.open(now()))

    async def stop(self, *, peer_lost: bool) -> None:
        """Stop the timer, end every Triton sequence, release the decoder."""
        if peer_lost:
            await self.apply(self.session.connection_lost(now()))
        if self._ticker is not None:
            self._ticker.cancel()
            await asyncio.gather(self._ticker, return_exceptions=True)
        timeout = self._config.finalize_timeout_s
        await asyncio.gather(*(s.close(timeout) for s in self._streams.values()), return_exceptions=True)
        self._metrics.triton_sequences_open.dec(len(self._streams))
        self._metrics.audio_seconds.inc(self.session.audio_seconds)
        self.audio.close()
