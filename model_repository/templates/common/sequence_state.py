"""Per-correlation-ID state for the Python backend models of one Triton sequence batcher.

Triton routes every request of a sequence to the same model instance and tells the model
about START and END through control inputs, but never that a sequence timed out. A
``SequenceStore`` keeps one state object per correlation ID: created on START (a repeated
START replaces it), dropped on END, and dropped by ``sweep`` after ``ttl_s`` without a
request, so abandoned sequences cannot leak.

No Triton imports: model.py files read the control tensors and hand plain values here.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

import numpy as np

S = TypeVar("S")


@dataclass(frozen=True)
class Control:
    """Sequence control values of one request."""

    corrid: int
    start: bool
    end: bool


def read_control(tensor: Callable[[str], np.ndarray]) -> Control:
    """Control values from the ``CORRID``/``START``/``END`` inputs (``tensor(name)`` → array)."""
    return Control(
        corrid=int(tensor("CORRID").reshape(-1)[0]),
        start=bool(tensor("START").reshape(-1)[0]),
        end=bool(tensor("END").reshape(-1)[0]),
    )


class UnknownSequence(KeyError):
    """A request for a correlation ID that has no state (no START, or swept)."""


class SequenceStore(Generic[S]):
    """Correlation ID → state, with START/END/TTL life cycle.

    ``log`` receives human-readable lines (already carrying the correlation ID).
    """

    def __init__(
        self,
        factory: Callable[[], S],
        ttl_s: float,
        log: Callable[[str], None],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._factory = factory
        self._ttl_s = ttl_s
        self._log = log
        self._clock = clock
        self._states: dict[int, S] = {}
        self._seen: dict[int, float] = {}

    def __len__(self) -> int:
        return len(self._states)

    def __contains__(self, corrid: object) -> bool:
        return corrid in self._states

    def acquire(self, control: Control, create: Callable[[], S] | None = None) -> S:
        """The state for this request: a fresh one on START (from ``create`` when the START
        request itself says how, else the factory), else the live one.

        Raises ``UnknownSequence`` when a non-START request has no state.
        """
        cid = control.corrid
        if control.start:
            if cid in self._states:
                self._log(f"corrid={cid}: START on a live sequence, state reset")
            self._states[cid] = (create or self._factory)()
        elif cid not in self._states:
            raise UnknownSequence(cid)
        self._seen[cid] = self._clock()
        return self._states[cid]

    def renew(self, corrid: int, successor: Callable[[S], S] | None = None) -> None:
        """Give a live sequence a fresh state (its stream goes on as a new utterance);
        ``successor`` derives it from the old one (what the START set up, kept)."""
        if corrid in self._states:
            old = self._states[corrid]
            self._states[corrid] = successor(old) if successor else self._factory()

    def release(self, corrid: int) -> None:
        """Drop the state of a sequence (on END); unknown IDs are ignored."""
        self._states.pop(corrid, None)
        self._seen.pop(corrid, None)

    def sweep(self) -> list[int]:
        """Drop every state idle for more than the TTL; returns their correlation IDs."""
        limit = self._clock() - self._ttl_s
        stale = [cid for cid, seen in self._seen.items() if seen < limit]
        for cid in stale:
            self.release(cid)
            self._log(f"corrid={cid}: idle for more than {self._ttl_s:g} s, state dropped")
        return stale
