"""Cut one channel's 16 kHz samples into the fixed-size requests the recogniser expects."""

from __future__ import annotations

import numpy as np

from frontend.session.ports import Samples

_EMPTY: Samples = np.zeros(0, dtype=np.float32)


class Chunker:
    """Buffers samples and hands out whole requests.

    The first request of a Triton sequence, and the first after a flush, carries
    `first_request_samples` (the mel window's extra reach less the lead frames, see
    docs/triton-contract.md); later ones carry `chunk_samples`, so every request ends on an
    encoder chunk boundary.
    """

    def __init__(self, first_request_samples: int, chunk_samples: int) -> None:
        self._first = first_request_samples
        self._steady = chunk_samples
        self._buffer = _EMPTY
        self._at_first = True

    @property
    def buffered(self) -> int:
        """Samples waiting for a full request."""
        return len(self._buffer)

    def push(self, samples: Samples) -> list[Samples]:
        """Add samples; return the full requests now ready (possibly none)."""
        self._buffer = np.concatenate((self._buffer, samples.astype(np.float32, copy=False)))
        ready: list[Samples] = []
        size = self._first if self._at_first else self._steady
        while len(self._buffer) >= size:
            ready.append(self._buffer[:size].copy())
            self._buffer = self._buffer[size:]
            self._at_first = False
            size = self._steady
        return ready

    def drain(self, keep: int = 0) -> Samples:
        """Everything buffered but the newest `keep` samples, for a flush request.

        The kept samples begin the next utterance: its first request is a first chunk again.
        """
        if not 0 <= keep <= len(self._buffer):
            raise ValueError(f"cannot keep {keep} of {len(self._buffer)} buffered samples")
        cut = len(self._buffer) - keep
        flushed, self._buffer = self._buffer[:cut].copy(), self._buffer[cut:]
        self._at_first = True
        return flushed
