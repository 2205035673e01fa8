"""Headerless PCM and G.711 decoding with numpy, and the RIFF/WAVE header parser.

This is the per-WebSocket-frame hot path for telephony and browser PCM, so it stays in numpy:
one ``frombuffer`` plus one vectorised conversion per frame, no PyAV objects.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Literal

import numpy as np
from numpy.typing import NDArray

SampleFormat = Literal["u8", "s16", "s24", "s32", "f32", "mulaw", "alaw"]

_WIDTH: dict[SampleFormat, int] = {"u8": 1, "s16": 2, "s24": 3, "s32": 4, "f32": 4, "mulaw": 1, "alaw": 1}


def _mulaw_table() -> NDArray[np.float32]:
    """The 256 G.711 mu-law code words decoded to float32, scaled by 1/32768 (ITU-T G.711)."""
    codes = ~np.arange(256, dtype=np.int32) & 0xFF
    exponent = (codes >> 4) & 0x07
    mantissa = codes & 0x0F
    magnitude = (((mantissa << 3) + 0x84) << exponent) - 0x84
    values = np.where(codes & 0x80, -magnitude, magnitude)
    return (values / 32768.0).astype(np.float32)


def _alaw_table() -> NDArray[np.float32]:
    """The 256 G.711 A-law code words decoded to float32, scaled by 1/32768 (ITU-T G.711)."""
    codes = np.arange(256, dtype=np.int32) ^ 0x55
    exponent = (codes >> 4) & 0x07
    mantissa = codes & 0x0F
    magnitude = np.where(
        exponent == 0,
        (mantissa << 4) + 8,
        ((mantissa << 4) + 0x108) << np.maximum(exponent - 1, 0),
    )
    # A-law stores the sign bit inverted relative to mu-law: bit set means positive.
    values = np.where(codes & 0x80, magnitude, -magnitude)
    return (values / 32768.0).astype(np.float32)


MULAW_TABLE = _mulaw_table()
ALAW_TABLE = _alaw_table()


class PcmDecoder:
    """Decodes interleaved headerless samples to float32 ``(channels, n)`` in [-1, 1].

    WebSocket frames need not be aligned to samples (a linear16 frame may end on an odd byte) or
    to interleaved frames, so the trailing partial frame is carried into the next call.
    """

    def __init__(self, sample_format: SampleFormat, channels: int) -> None:
        self.sample_format: SampleFormat = sample_format
        self.channels = channels
        self._frame_bytes = _WIDTH[sample_format] * channels
        self._carry = b""

    def decode(self, data: bytes) -> NDArray[np.float32]:
        """Decode every complete interleaved frame of ``carry + data``; keep the rest."""
        if self._carry:
            data = self._carry + data
        usable = len(data) - len(data) % self._frame_bytes
        self._carry = bytes(data[usable:])
        samples = _to_float(memoryview(data)[:usable], self.sample_format)
        if self.channels == 1:
            return samples.reshape(1, -1)
        return samples.reshape(-1, self.channels).T


def _to_float(buf: memoryview, fmt: SampleFormat) -> NDArray[np.float32]:
    """Little-endian samples of ``fmt`` to float32, full scale = 1.0."""
    if fmt == "s16":
        return np.frombuffer(buf, dtype="<i2").astype(np.float32) * np.float32(1 / 32768)
    if fmt == "f32":
        # Clients sending linear32 may exceed full scale; clipping keeps the [-1, 1] promise.
        return np.clip(np.frombuffer(buf, dtype="<f4"), -1.0, 1.0).astype(np.float32, copy=False)
    if fmt == "mulaw":
        return MULAW_TABLE[np.frombuffer(buf, dtype=np.uint8)]
    if fmt == "alaw":
        return ALAW_TABLE[np.frombuffer(buf, dtype=np.uint8)]
    if fmt == "s32":
        return (np.frombuffer(buf, dtype="<i4") * (1 / 2**31)).astype(np.float32)
    if fmt == "u8":
        return (np.frombuffer(buf, dtype=np.uint8).astype(np.float32) - 128.0) * np.float32(1 / 128)
    # s24: widen the three little-endian bytes into the top of an int32, which sign-extends.
    triples = np.frombuffer(buf, dtype=np.uint8).reshape(-1, 3).astype(np.int32)
    widened = (triples[:, 0] << 8) | (triples[:, 1] << 16) | (triples[:, 2] << 24)
    return (widened * (1 / 2**31)).astype(np.float32)


# --- RIFF/WAVE -------------------------------------------------------------------------------

RIFF_SNIFF_BYTES = 12
"""Bytes needed to tell whether a stream starts with a RIFF/WAVE header."""

MAX_WAV_HEADER_BYTES = 1 << 20
"""A header without a ``data`` chunk after this many bytes is treated as corrupt, not waited on."""

# Data sizes that mean "length unknown" (streaming writers) rather than a real size.
_UNBOUNDED_SIZES = (0, 0xFFFFFFFF)
_UNBOUNDED_FROM = 0x7FFF0000

_WAVE_TAGS: dict[tuple[int, int], SampleFormat] = {
    (1, 8): "u8",
    (1, 16): "s16",
    (1, 24): "s24",
    (1, 32): "s32",
    (3, 32): "f32",
    (6, 8): "alaw",
    (7, 8): "mulaw",
}
_WAVE_FORMAT_EXTENSIBLE = 0xFFFE


def is_wav(head: bytes) -> bool:
    """True when ``head`` (at least `RIFF_SNIFF_BYTES`) starts a little-endian RIFF or RF64 WAVE."""
    return head[:4] in (b"RIFF", b"RF64") and head[8:12] == b"WAVE"


@dataclass(frozen=True)
class WavHeader:
    """What a WAVE header says about the samples that follow it."""

    sample_format: SampleFormat | None
    """None: a WAVE codec numpy does not decode (ADPCM, MP3-in-WAV...); hand it to PyAV."""
    sample_rate: int
    channels: int
    data_offset: int
    """Offset of the first sample byte from the start of the stream."""
    data_bytes: int | None
    """Size of the data chunk, or None when the writer did not know it (a live stream)."""


class WavHeaderError(ValueError):
    """The bytes start like a WAVE file but the header is malformed."""


def parse_wav_header(buf: bytes) -> WavHeader | None:
    """Parse a WAVE header from the start of ``buf``.

    Returns None while the header is incomplete (more bytes are needed), a `WavHeader` once the
    ``data`` chunk starts, and raises `WavHeaderError` for a malformed header.
    """
    pos = RIFF_SNIFF_BYTES
    fmt: tuple[int, int, int, int] | None = None
    while True:
        if pos + 8 > len(buf):
            if len(buf) > MAX_WAV_HEADER_BYTES:
                raise WavHeaderError("no data chunk in the first MiB of the WAVE stream")
            return None
        chunk_id = buf[pos : pos + 4]
        (size,) = struct.unpack_from("<I", buf, pos + 4)
        body = pos + 8
        if chunk_id == b"data":
            if fmt is None:
                raise WavHeaderError("WAVE data chunk before its fmt chunk")
            tag, channels, rate, bits = fmt
            bounded = size not in _UNBOUNDED_SIZES and size < _UNBOUNDED_FROM
            return WavHeader(
                sample_format=_WAVE_TAGS.get((tag, bits)),
                sample_rate=rate,
                channels=channels,
                data_offset=body,
                data_bytes=size if bounded else None,
            )
        if chunk_id == b"fmt ":
            if size < 16:
                raise WavHeaderError(f"WAVE fmt chunk of {size} bytes")
            if body + size > len(buf):
                return None
            tag, channels, rate, _, _, bits = struct.unpack_from("<HHIIHH", buf, body)
            if tag == _WAVE_FORMAT_EXTENSIBLE and size >= 40:
                # The real format tag is the first two bytes of the SubFormat GUID.
                (tag,) = struct.unpack_from("<H", buf, body + 24)
            if channels < 1 or rate < 1:
                raise WavHeaderError(f"WAVE fmt chunk with {channels} channels at {rate} Hz")
            fmt = (tag, channels, rate, bits)
        # Chunks are padded to an even size.
        pos = body + size + (size & 1)
