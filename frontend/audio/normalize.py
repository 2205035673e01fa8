"""Client audio in any accepted encoding -> float32 16 kHz blocks, one row per output channel.

Paths, cheapest first:

* raw ``linear16`` / ``linear32`` / ``mulaw`` / ``alaw``: numpy only (`frontend.audio.pcm`);
* a RIFF/WAVE header at the start of the stream (with or without ``encoding``): the header is
  parsed and its samples take the numpy path (Deepgram tolerates a header before linear16);
* everything else (``encoding`` unset, ``opus``, ``ogg-opus``, ``webm``, ``flac``, ``mp3``,
  ``aac``, ``amr-nb``, ``amr-wb``): FFmpeg through PyAV, fed incrementally (`frontend.audio.container`). The container is
  sniffed, not trusted from ``encoding``: browsers label WebM/Opus as ``opus`` and Safari's AAC
  arrives as MP4.

Then: downmix to mono (mean of the channels) unless ``multichannel``, resample to
``target_rate`` (`frontend.audio.resample`), and remove any DC offset (`frontend.audio.dc`).
Downmixing before resampling resamples one channel instead of n.

Client errors surface as exceptions from `AudioNormalizer.feed` / `AudioNormalizer.flush`, also
those known at construction (unknown encoding, declared channels or rate over the caps): the
session maps exceptions from feeding audio to close codes, so they are raised there.
"""

from __future__ import annotations

import weakref
from typing import Literal

import numpy as np
from numpy.typing import NDArray

from frontend.audio.container import ContainerDecoder, DecodedBlock
from frontend.audio.dc import DcBlocker
from frontend.audio.pcm import (
    RIFF_SNIFF_BYTES,
    PcmDecoder,
    SampleFormat,
    WavHeader,
    WavHeaderError,
    is_wav,
    parse_wav_header,
)
from frontend.audio.resample import StreamResampler
from frontend.protocol.errors import ChannelsTooMany, SampleRateTooHigh, UndecodableAudio, UnsupportedEncoding

RAW_ENCODINGS: dict[str, SampleFormat] = {"linear16": "s16", "linear32": "f32", "mulaw": "mulaw", "alaw": "alaw"}
"""Deepgram ``encoding`` values decoded with numpy, and their sample format."""

CONTAINER_ENCODINGS = frozenset({"opus", "ogg-opus", "webm", "flac", "mp3", "aac", "amr-nb", "amr-wb"})
"""Deepgram ``encoding`` values decoded by FFmpeg (the container is sniffed from the bytes)."""

AMR_MAGIC = {"amr-nb": b"#!AMR\n", "amr-wb": b"#!AMR-WB\n"}
"""Deepgram takes AMR as bare frames. Each frame names its own size, so with the storage
format's magic (RFC 4867) in front FFmpeg's AMR demuxer reads them; a stream that already has
the magic is left as it is."""

# Deepgram requires sample_rate with a raw encoding; when a client omits it, assume the rate
# that encoding is nearly always used at (wideband PCM, narrowband telephony G.711).
_DEFAULT_RAW_RATE = {"linear16": 16000, "linear32": 16000, "mulaw": 8000, "alaw": 8000}

_Stage = Literal["sniff", "wav_header", "pcm", "container", "done"]


class AudioNormalizer:
    """Streaming decoder for one client stream: bytes in, float32 ``(out_channels, n)`` at 16 kHz out.

    ``encoding``/``sample_rate``/``channels``/``multichannel`` are the Deepgram query values;
    ``sample_rate`` and ``channels`` only apply to raw encodings (containers describe themselves).
    Not thread-safe: one instance per stream, fed from one thread.
    """

    def __init__(
        self,
        encoding: str | None,
        sample_rate: int | None,
        channels: int,
        multichannel: bool,
        *,
        max_channels: int,
        max_sample_rate: int,
        target_rate: int = 16000,
    ) -> None:
        self.target_rate = target_rate
        self.received_seconds = 0.0
        """Seconds of input audio decoded so far (at the input's own rate)."""
        self.out_channels: int | None = None if multichannel else 1
        """Rows of every returned array; None until a multichannel container reveals its layout."""
        self._multichannel = multichannel
        self._max_channels = max_channels
        self._max_sample_rate = max_sample_rate
        self._encoding = encoding.lower() if encoding else None
        self._raw_format = RAW_ENCODINGS.get(self._encoding or "")
        self._stage: _Stage = "sniff"
        self._head = b""
        self._pcm: PcmDecoder | None = None
        self._pcm_rate = 0
        self._wav_remaining: int | None = None
        self._container: ContainerDecoder | None = None
        self._resampler: StreamResampler | None = None
        self._dc: DcBlocker | None = None
        self._input_channels = 0
        self._pending_error: Exception | None = None
        if self._encoding is not None and self._raw_format is None and self._encoding not in CONTAINER_ENCODINGS:
            self._pending_error = UnsupportedEncoding(f"encoding {encoding!r} is not supported")
        elif self._raw_format is not None:
            rate = sample_rate if sample_rate is not None else _DEFAULT_RAW_RATE[self._encoding or ""]
            try:
                self._start_pcm(self._raw_format, rate, channels)
            except (ChannelsTooMany, SampleRateTooHigh, UndecodableAudio) as exc:
                self._pending_error = exc

    def feed(self, data: bytes) -> NDArray[np.float32]:
        """Decode one WebSocket frame of audio.

        Returns float32 ``(out_channels, n)`` at ``target_rate`` in [-1, 1]; ``n`` may be 0 while
        a header is incomplete or a codec is buffering, and the shape is ``(0, 0)`` while a
        multichannel container's channel count is unknown. Raises `UnsupportedEncoding`,
        `UndecodableAudio`, `ChannelsTooMany` or `SampleRateTooHigh`.
        """
        if self._pending_error is not None:
            raise self._pending_error
        if self._stage == "done":
            raise RuntimeError("AudioNormalizer.feed() after flush() or close()")
        if self._stage == "sniff":
            self._head += data
            if len(self._head) < RIFF_SNIFF_BYTES:
                return self._empty()
            data, self._head = self._head, b""
            if is_wav(data):
                self._stage = "wav_header"
            elif self._raw_format is not None:
                self._stage = "pcm"
            else:
                data = self._start_container(data)
        if self._stage == "wav_header":
            self._head += data
            data = self._read_wav_header()
        if self._stage == "pcm":
            return self._decode_pcm(data)
        if self._stage == "container":
            assert self._container is not None
            return self._emit_blocks(self._container.feed(data))
        return self._empty()

    def flush(self) -> NDArray[np.float32]:
        """End of stream: decode what is still buffered and drain the resampler."""
        if self._pending_error is not None:
            raise self._pending_error
        if self._stage == "done":
            return self._empty()
        outputs = []
        if self._stage == "sniff" and self._head:
            # A stream shorter than a RIFF header: decode it as what was declared.
            head, self._head = self._head, b""
            if self._raw_format is not None:
                self._stage = "pcm"
                outputs.append(self._decode_pcm(head))
            else:
                head = self._start_container(head)
                assert self._container is not None
                outputs.append(self._emit_blocks(self._container.feed(head)))
        if self._stage == "container":
            assert self._container is not None
            outputs.append(self._emit_blocks(self._container.finish()))
        if self._resampler is not None:
            outputs.append(self._remove_dc(self._resampler.flush()))
        self._stage = "done"
        return _concat(outputs, self._empty())

    def close(self) -> None:
        """Release decoder resources of a stream that ends without `flush` (aborted session).

        Safe to call more than once; an unreferenced normalizer is closed by the garbage
        collector too, so this only makes the release prompt.
        """
        if self._container is not None:
            self._container.close()
        self._stage = "done"

    # --- stages ------------------------------------------------------------------------------

    def _start_pcm(self, sample_format: SampleFormat, rate: int, channels: int) -> None:
        self._check_format(rate, channels)
        self._pcm = PcmDecoder(sample_format, channels)
        self._pcm_rate = rate
        if self._multichannel:
            self.out_channels = channels

    def _start_container(self, first: bytes) -> bytes:
        """Start FFmpeg; returns `first`, the stream's first bytes, as FFmpeg should read them."""
        self._container = ContainerDecoder()
        # The decoder thread blocks in read() until fed or closed; make sure a normalizer that
        # is dropped without flush/close does not leave it waiting for ever.
        weakref.finalize(self, self._container.close)
        self._stage = "container"
        magic = AMR_MAGIC.get(self._encoding or "")
        bare = magic is not None and not first.startswith(b"#!AMR") and not is_wav(first)
        return magic + first if bare else first

    def _read_wav_header(self) -> bytes:
        """Consume the buffered WAVE header once complete; return the sample bytes after it."""
        try:
            header = parse_wav_header(self._head)
        except WavHeaderError as exc:
            raise UndecodableAudio(str(exc)) from exc
        if header is None:
            return b""
        buffered, self._head = self._head, b""
        if header.sample_format is None:
            # A WAVE codec numpy does not decode (ADPCM, GSM, MP3-in-WAV): FFmpeg reads the file.
            return self._start_container(buffered)
        self._start_wav_pcm(header)
        return buffered[header.data_offset :]

    def _start_wav_pcm(self, header: WavHeader) -> None:
        assert header.sample_format is not None
        # The header describes the samples better than the query string does.
        self._start_pcm(header.sample_format, header.sample_rate, header.channels)
        self._wav_remaining = header.data_bytes
        self._stage = "pcm"

    def _decode_pcm(self, data: bytes) -> NDArray[np.float32]:
        assert self._pcm is not None
        if self._wav_remaining is not None:
            # Chunks after the data chunk (LIST, id3) are metadata, not samples.
            data = data[: self._wav_remaining]
            self._wav_remaining -= len(data)
        return self._emit(self._pcm.decode(data), self._pcm_rate)

    def _emit_blocks(self, blocks: list[DecodedBlock]) -> NDArray[np.float32]:
        """Resample decoded container blocks, batching runs of the same format into one call."""
        outputs = []
        run: list[NDArray[np.float32]] = []
        for i, block in enumerate(blocks):
            run.append(block.samples)
            following = blocks[i + 1] if i + 1 < len(blocks) else None
            if (
                following is None
                or following.sample_rate != block.sample_rate
                or following.samples.shape[0] != block.samples.shape[0]
            ):
                outputs.append(self._emit(np.concatenate(run, axis=1), block.sample_rate))
                run = []
        return _concat(outputs, self._empty())

    def _emit(self, samples: NDArray[np.float32], rate: int) -> NDArray[np.float32]:
        """Downmix and resample one block of decoded input at ``rate``."""
        channels = samples.shape[0]
        if self._resampler is None or self._resampler.in_rate != rate or self._input_channels != channels:
            return self._emit_new_format(samples, rate)
        self.received_seconds += samples.shape[1] / rate
        if channels > 1 and not self._multichannel:
            samples = samples.mean(axis=0, keepdims=True, dtype=np.float32)
        return self._remove_dc(self._resampler.process(samples))

    def _emit_new_format(self, samples: NDArray[np.float32], rate: int) -> NDArray[np.float32]:
        """First block, or a container that changed rate/layout mid-stream (chained Ogg)."""
        channels = samples.shape[0]
        self._check_format(rate, channels)
        if self._multichannel:
            if self.out_channels is not None and self.out_channels != channels:
                raise UndecodableAudio(f"channel count changed from {self.out_channels} to {channels} mid-stream")
            self.out_channels = channels
        tail = self._remove_dc(self._resampler.flush()) if self._resampler is not None else self._empty()
        self._input_channels = channels
        self._resampler = StreamResampler(rate, self.out_channels or 1, self.target_rate)
        return _concat([tail, self._emit(samples, rate)], self._empty())

    def _remove_dc(self, samples: NDArray[np.float32]) -> NDArray[np.float32]:
        if self._dc is None or self._dc.channels != samples.shape[0]:
            self._dc = DcBlocker(samples.shape[0], self.target_rate)
        return self._dc.process(samples)

    def _check_format(self, rate: int, channels: int) -> None:
        if channels > self._max_channels:
            raise ChannelsTooMany(f"{channels} channels, at most {self._max_channels} are accepted")
        if rate > self._max_sample_rate:
            raise SampleRateTooHigh(f"sample rate {rate} Hz, at most {self._max_sample_rate} Hz is accepted")
        if channels < 1 or rate < 1:
            raise UndecodableAudio(f"invalid audio format: {channels} channels at {rate} Hz")

    def _empty(self) -> NDArray[np.float32]:
        return np.zeros((self.out_channels or 0, 0), dtype=np.float32)


def _concat(arrays: list[NDArray[np.float32]], empty: NDArray[np.float32]) -> NDArray[np.float32]:
    non_empty = [a for a in arrays if a.shape[1]]
    if not non_empty:
        return empty
    return non_empty[0] if len(non_empty) == 1 else np.concatenate(non_empty, axis=1)
