"""One Triton sequence per session channel, over one gRPC bidirectional stream.

The session core decides *what* to infer (`Infer` actions); this adapter only moves those chunks
to Triton and the responses back, in order, and guarantees the sequence is ended whatever happens
to the WebSocket: a sequence left open would hold its encoder caches in Triton until the idle
timeout, and a full `oldest` batcher refuses new sequences.
"""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
from collections.abc import Sequence
from typing import AsyncIterator, Awaitable, Callable

import numpy as np
import tritonclient.grpc as grpcclient
from tritonclient.grpc import aio as grpc_aio
from tritonclient.utils import InferenceServerException

from frontend.session.core import ChunkResult, Infer

log = logging.getLogger(__name__)

OUTPUTS = ("CHUNK_START", "NUM_FRAMES", "TOKENS", "TOKEN_FRAMES", "TOKEN_CONF")
PARTIAL_OUTPUTS = ("PARTIAL_TOKENS", "PARTIAL_FRAMES", "PARTIAL_CONF")
"""Asked for when the ensemble's manifest has `partial_outputs` (repositories built before it
lack them)."""

ResultCallback = Callable[[int, ChunkResult], Awaitable[None]]
ErrorCallback = Callable[[str], Awaitable[None]]


def new_sequence_id() -> int:
    """A random non-zero 63-bit correlation ID: unique across frontend processes sharing a Triton."""
    return secrets.randbits(63) | 1


def _request(model: str, sequence_id: int, width: int, infer: Infer,
             outputs: Sequence[str]) -> dict[str, object]:
    audio = np.zeros((1, width), dtype=np.float32)
    n = int(infer.audio.shape[-1])
    if n > width:
        raise ValueError(f"chunk of {n} samples exceeds the model's {width}")
    audio[0, :n] = infer.audio
    inputs = [
        grpcclient.InferInput("AUDIO", [1, width], "FP32"),
        grpcclient.InferInput("AUDIO_LEN", [1, 1], "INT32"),
        grpcclient.InferInput("FLUSH", [1, 1], "INT32"),
    ]
    inputs[0].set_data_from_numpy(audio)
    inputs[1].set_data_from_numpy(np.array([[n]], dtype=np.int32))
    inputs[2].set_data_from_numpy(np.array([[1 if infer.flush else 0]], dtype=np.int32))
    return {
        "model_name": model,
        "inputs": inputs,
        "outputs": [grpcclient.InferRequestedOutput(name) for name in outputs],
        "request_id": str(infer.seq),
        "sequence_id": sequence_id,
        "sequence_start": infer.start,
        "sequence_end": infer.end,
        # docs/triton-contract.md: the ensemble forwards them to the decoder.
        "parameters": None if infer.keyterms is None else {"keyterms": json.dumps([list(t) for t in infer.keyterms])},
    }


def _chunk_result(result: grpcclient.InferResult) -> ChunkResult:
    def out(name: str) -> np.ndarray:
        array = result.as_numpy(name)
        if array is None:
            raise InferenceServerException(f"response lacks output {name}")
        return array.reshape(-1)

    partial = result.as_numpy("PARTIAL_TOKENS") is not None
    return ChunkResult(
        chunk_start=float(out("CHUNK_START")[0]),
        num_frames=int(out("NUM_FRAMES")[0]),
        tokens=out("TOKENS").astype(np.int64).tolist(),
        token_frames=out("TOKEN_FRAMES").astype(np.int64).tolist(),
        token_conf=out("TOKEN_CONF").astype(np.float64).tolist(),
        partial_tokens=out("PARTIAL_TOKENS").astype(np.int64).tolist() if partial else (),
        partial_frames=out("PARTIAL_FRAMES").astype(np.int64).tolist() if partial else (),
        partial_conf=out("PARTIAL_CONF").astype(np.float64).tolist() if partial else (),
    )


class SequenceStream:
    """Sends one channel's chunks to an ensemble and hands results back in order.

    `send` blocks when `max_pending` chunks are waiting: the caller (the WebSocket reader) then
    stops reading, which pushes back on the client through TCP instead of growing memory.
    """

    def __init__(
        self,
        client: grpc_aio.InferenceServerClient,
        model: str,
        audio_width: int,
        *,
        on_result: ResultCallback,
        on_error: ErrorCallback,
        max_pending: int,
        partial_outputs: bool = False,
        log_extra: dict[str, object] | None = None,
    ) -> None:
        self.sequence_id = new_sequence_id()
        self._outputs = OUTPUTS + PARTIAL_OUTPUTS if partial_outputs else OUTPUTS
        self._client = client
        self._model = model
        self._width = audio_width
        self._on_result = on_result
        self._on_error = on_error
        self._queue: asyncio.Queue[Infer | None] = asyncio.Queue(maxsize=max_pending)
        self._in_flight: dict[str, Infer] = {}
        self._opened = False
        self._ended = False
        self._failed = False
        self._reader: asyncio.Task[None] | None = None
        self._done = asyncio.Event()
        self._log = logging.LoggerAdapter(log, {**(log_extra or {}), "corrid": self.sequence_id})

    @property
    def ended(self) -> bool:
        """True once the END request was handed to gRPC (or the stream failed)."""
        return self._ended or self._failed

    async def send(self, infer: Infer) -> None:
        """Queue one chunk; starts the gRPC stream on the first call."""
        if self._ended or self._failed:
            return
        if self._reader is None:
            self._reader = asyncio.create_task(self._run(), name=f"triton-seq-{self.sequence_id}")
        if infer.end:
            self._ended = True
        else:
            self._opened = True
        await self._queue.put(infer)
        if infer.end:
            await self._queue.put(None)

    async def _requests(self) -> AsyncIterator[dict[str, object]]:
        while True:
            infer = await self._queue.get()
            if infer is None:
                return
            self._in_flight[str(infer.seq)] = infer
            yield _request(self._model, self.sequence_id, self._width, infer, self._outputs)

    async def _run(self) -> None:
        responses = None
        try:
            responses = self._client.stream_infer(self._requests())
            async for result, error in responses:
                if error is not None:
                    raise error
                request_id = result.get_response().id
                infer = self._in_flight.pop(request_id, None)
                if infer is None:
                    raise InferenceServerException(f"unexpected response id {request_id!r}")
                if infer.seq >= 0:
                    await self._on_result(infer.seq, _chunk_result(result))
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - any transport or server failure ends this channel only
            self._failed = True
            self._log.warning("triton sequence failed: %s", exc)
            await self._on_error(str(exc))
        finally:
            if responses is not None:
                # Ends gRPC's request-consumer task, which would otherwise wait on our queue.
                responses.cancel()
            # Unblock a reader coroutine waiting in `send` on a stream that will never drain.
            while not self._queue.empty():
                self._queue.get_nowait()
            # And let the request generator return, so gRPC's consumer of it finishes too.
            self._queue.put_nowait(None)
            self._done.set()

    async def close(self, timeout: float) -> None:
        """Make sure Triton sees END, wait for the last responses, then release the stream."""
        if self._reader is None:
            return
        if not self._ended and not self._failed:
            if self._opened:
                # The session never sent END (peer vanished mid-chunk): end the sequence with an
                # empty request so Triton frees its state now rather than at its idle timeout.
                empty = Infer(channel=0, seq=-1, audio=np.zeros(0, np.float32), start=False, end=True, flush=False)
                try:
                    await asyncio.wait_for(self.send(empty), timeout)
                except asyncio.TimeoutError:
                    self._log.warning("could not queue END for the sequence")
            else:
                self._ended = True
                await self._queue.put(None)
        try:
            await asyncio.wait_for(self._done.wait(), timeout)
        except asyncio.TimeoutError:
            self._log.warning("sequence did not finish within %.1fs; cancelling stream", timeout)
            self._reader.cancel()
            await asyncio.gather(self._reader, return_exceptions=True)
