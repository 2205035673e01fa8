"""What the session needs from its collaborators, as structural types.

The real implementations live in `frontend/audio/normalize.py` (`AudioNormalizer`) and
`frontend/vad/` (Silero VAD); tests use small fakes with the same shape.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal, Protocol

import numpy as np
import numpy.typing as npt

Samples = npt.NDArray[np.float32]


class AudioNormalizerLike(Protocol):
    """Client bytes in any supported encoding -> float32 16 kHz, one row per output channel.

    `feed` and `flush` raise the `AudioError` subclasses of `frontend.protocol.errors`
    (`UnsupportedEncoding`, `UndecodableAudio`, `ChannelsTooMany`, `SampleRateTooHigh`).
    """

    @property
    def out_channels(self) -> int | None:
        """Output channels (1 unless multichannel); None until the stream's header is decoded."""
        ...

    def feed(self, data: bytes) -> Samples:
        """Decode a chunk; shape (out_channels, n), n may be 0 while a container header fills."""
        ...

    def flush(self) -> Samples:
        """Decode what is still buffered at end of stream; same shape as `feed`."""
        ...


class VadEventLike(Protocol):
    """A speech onset or a speech end (after the endpointing silence), in stream seconds."""

    @property
    def kind(self) -> Literal["speech_start", "speech_end"]: ...

    @property
    def time_s(self) -> float: ...

    @property
    def decided_s(self) -> float:
        """Where the detector decided the event: for a speech end, where the silence run
        reached the endpointing length (``time_s`` is where that silence began)."""
        ...


class VadLike(Protocol):
    """One channel's voice activity detector, fed with every 16 kHz sample of that channel."""

    def process(self, samples: Samples) -> Sequence[VadEventLike]:
        """Consume samples, return the events they completed, in time order."""
        ...
