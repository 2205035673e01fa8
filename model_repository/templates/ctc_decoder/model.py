"""Triton Python backend: CTC greedy decoding across a stream's requests.

A token is emitted where a frame's argmax differs from the previous frame's (carried per
sequence across requests) and is not blank; its confidence is that frame's posterior.
Requests, states and responses: see ``streaming_decoder.py``.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from model_config import ConfigError
from streaming_decoder import Decoded, DecodeJob, StreamingDecoder


@dataclass
class CtcState:
    """Greedy CTC state of one sequence: the argmax of the last decoded frame."""

    previous: int


def greedy_ctc(logprobs: np.ndarray, blank: int, state: CtcState) -> Decoded:
    """Collapse the frame-wise argmax of ``logprobs`` [frames, classes], advancing ``state``."""
    best = logprobs.argmax(axis=1)
    previous = np.concatenate([[state.previous], best[:-1]])
    emit = np.flatnonzero((best != blank) & (best != previous))
    if best.size:
        state.previous = int(best[-1])
    return Decoded(
        tokens=best[emit].astype(np.int32),
        frames=emit.astype(np.int32),
        confidence=np.exp(logprobs[emit, best[emit]]).astype(np.float32),
    )


class TritonPythonModel(StreamingDecoder[CtcState]):
    """Greedy CTC decoder with per-correlation-ID previous token."""

    def setup(self, cfg: dict[str, Any], version_dir: Path, width: int) -> None:
        """``ENCODED`` rows are log-probs over the vocabulary and the blank."""
        if self.blank >= width:
            raise ConfigError(f"{self.name}: blank_id {self.blank} outside 0..{width - 1}")

    def new_state(self) -> CtcState:
        return CtcState(previous=self.blank)

    def decode(self, jobs: list[DecodeJob[CtcState]]) -> list[Decoded]:
        return [greedy_ctc(job.rows, self.blank, job.state) for job in jobs]
