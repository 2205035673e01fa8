"""Incremental decoding of containerised or compressed audio (Ogg, WebM, MP3, FLAC, AAC...) via PyAV.

FFmpeg's demuxers pull bytes through a blocking ``read()``, but WebSocket frames arrive one at a
time and may split the container anywhere. Each `ContainerDecoder` therefore runs FFmpeg in its
own thread, reading from a queue, and the two threads hand control back and forth like
coroutines: `feed` queues bytes and waits until the decoder thread has consumed all of them
and blocks for more (or has ended). Decoding is thus synchronous from the caller's view and
its output does not depend on how the stream was split into frames.
"""

from __future__ import annotations

import collections
import threading
from dataclasses import dataclass
from typing import Any

import av
import numpy as np
from numpy.typing import NDArray

from frontend.protocol.errors import UndecodableAudio

# FFmpeg's defaults (5 s of analysis, 5 MB of probing) would hold the first result back for
# seconds of a live stream. Formats with magic bytes are recognised within the first 2 KiB;
# 32 KiB of format probing is where unrecognisable input is declared undecodable (a smaller
# window lets FFmpeg accept weak matches, e.g. random PCM taken for MP3).
_OPEN_OPTIONS = {"probesize": "2048", "analyzeduration": "1", "formatprobesize": "32768"}

_MAX_BAD_PACKETS = 16
"""Consecutive undecodable packets tolerated (a corrupt packet or two is a glitch, not an error)."""

_STALL_TIMEOUT_S = 10.0
"""Longest wait for the decoder thread; a stuck FFmpeg must not freeze the caller for ever.
One 3.5 MB message of 24 kb/s Opus (23 minutes of audio) kept the decoder thread busy 1.5 s."""

_SCALE = {np.dtype(np.int16): 1 / 32768, np.dtype(np.int32): 1 / 2**31, np.dtype(np.int64): 1 / 2**63}


@dataclass(frozen=True)
class DecodedBlock:
    """One decoded frame: float32 ``(channels, n)`` in [-1, 1] at ``sample_rate``."""

    samples: NDArray[np.float32]
    sample_rate: int


class ContainerDecoder:
    """Decodes one container/codec byte stream fed in arbitrary pieces."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._pending: collections.deque[bytes] = collections.deque()
        self._eof = False
        self._starving = False  # decoder thread is blocked in read() with nothing to read
        self._ended = False  # decoder thread has returned
        self._blocks: list[DecodedBlock] = []
        self._error: Exception | None = None
        self._thread: threading.Thread | None = None

    def feed(self, data: bytes) -> list[DecodedBlock]:
        """Queue ``data`` and return every block that could be decoded with it.

        Raises `UndecodableAudio` when FFmpeg cannot recognise or decode the stream.
        """
        return self._exchange(data, eof=False)

    def finish(self) -> list[DecodedBlock]:
        """Signal end of stream and return the last blocks (codec and parser delay)."""
        return self._exchange(b"", eof=True)

    def close(self) -> None:
        """Release the decoder thread without waiting for it (an aborted session)."""
        with self._cond:
            self._eof = True
            self._pending.clear()
            self._cond.notify_all()

    # --- caller side ---------------------------------------------------------------------------

    def _exchange(self, data: bytes, *, eof: bool) -> list[DecodedBlock]:
        with self._cond:
            if self._error is not None:
                raise self._error
            if self._ended:
                return []
            if data:
                self._pending.append(data)
            self._eof = self._eof or eof
            # The thread has new work (bytes or end of stream); it sets this again once it has
            # consumed everything, which is what the wait below is for.
            self._starving = False
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="audio-container-decoder", daemon=True)
                self._thread.start()
            self._cond.notify_all()
            done = self._cond.wait_for(
                lambda: self._ended or (self._starving and not self._pending), timeout=_STALL_TIMEOUT_S
            )
            if not done:
                self._error = UndecodableAudio("audio decoder stalled")
            if self._error is not None:
                raise self._error
            blocks, self._blocks = self._blocks, []
            return blocks

    # --- decoder thread ------------------------------------------------------------------------

    def read(self, size: int) -> bytes:
        """File-like ``read`` for FFmpeg: blocks until bytes arrive; b"" at end of stream."""
        with self._cond:
            while not self._pending and not self._eof:
                self._starving = True
                self._cond.notify_all()
                self._cond.wait()
            self._starving = False
            if not self._pending:
                return b""
            chunk = self._pending.popleft()
            if len(chunk) > size:
                self._pending.appendleft(chunk[size:])
                chunk = chunk[:size]
            return chunk

    def _run(self) -> None:
        try:
            self._demux()
        except av.FFmpegError as exc:
            with self._cond:
                self._error = UndecodableAudio(f"cannot decode audio: {exc.strerror}")
        except Exception as exc:  # noqa: BLE001 - re-raised in the caller's thread, which handles it
            with self._cond:
                self._error = exc
        finally:
            with self._cond:
                self._ended = True
                self._cond.notify_all()

    def _demux(self) -> None:
        with av.open(self, mode="r", options=_OPEN_OPTIONS) as container:
            if not container.streams.audio:
                raise UndecodableAudio(f"no audio stream in the {container.format.name} data")
            stream = container.streams.audio[0]
            bad_packets = 0
            for packet in container.demux(stream):
                try:
                    frames = packet.decode()
                except av.FFmpegError:
                    bad_packets += 1
                    if bad_packets > _MAX_BAD_PACKETS:
                        raise
                    continue
                bad_packets = 0
                blocks = [DecodedBlock(_frame_to_float(frame), frame.sample_rate) for frame in frames]
                if blocks:
                    with self._cond:
                        self._blocks.extend(blocks)


def _frame_to_float(frame: av.AudioFrame) -> NDArray[np.float32]:
    """An audio frame of any sample format to float32 ``(channels, n)``, full scale = 1.0."""
    samples: NDArray[Any] = frame.to_ndarray()
    if not frame.format.is_planar:
        samples = samples.reshape(-1, frame.layout.nb_channels).T
    if samples.dtype == np.uint8:
        return (samples.astype(np.float32) - np.float32(128)) * np.float32(1 / 128)
    scale = _SCALE.get(samples.dtype)
    if scale is None:  # already floating point
        return samples.astype(np.float32, copy=False)
    return (samples * scale).astype(np.float32)
