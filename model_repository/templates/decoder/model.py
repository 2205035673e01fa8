"""Triton Python backend: CTC greedy decoding across a stream's requests.

Per request: the encoder's ``LOGPROBS`` (``ENC_FRAMES`` rows valid), how many of those frames
cover real audio (``VALID_FRAMES``, fewer after a FLUSH padded the last chunk) and ``FLUSH``.
Out: the tokens that start in this request (repeats collapsed against the previous request's
last frame, blanks removed), their frame (clamped into the real audio) and posterior.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import triton_python_backend_utils as pb_utils

sys.path.insert(0, str(Path(__file__).resolve().parent))

from backend import LiveSequencesGauge, answer_each, error_response, input_reader
from model_config import ConfigError, expect_dims, expect_sequence_batching, parameter, tensor_dims
from sequence_state import SequenceStore, UnknownSequence, read_control


@dataclass
class DecoderState:
    """Greedy CTC state of one sequence: the argmax of the last decoded frame."""

    previous: int


@dataclass(frozen=True)
class Decoded:
    """Tokens of one request."""

    tokens: np.ndarray  # int32 [k]
    frames: np.ndarray  # int32 [k]
    confidence: np.ndarray  # float32 [k]


def greedy_ctc(logprobs: np.ndarray, blank: int, state: DecoderState, valid_frames: int) -> Decoded:
    """Collapse the frame-wise argmax: a token is emitted where it differs from the previous
    frame's argmax (carried in ``state`` across requests) and is not blank."""
    best = logprobs.argmax(axis=1)
    previous = np.concatenate([[state.previous], best[:-1]])
    emit = np.flatnonzero((best != blank) & (best != previous))
    if best.size:
        state.previous = int(best[-1])
    # A token found in a flush's padding belongs to the real audio's end.
    frames = np.minimum(emit, max(valid_frames - 1, 0))
    return Decoded(
        tokens=best[emit].astype(np.int32),
        frames=frames.astype(np.int32),
        confidence=np.exp(logprobs[emit, best[emit]]).astype(np.float32),
    )


class TritonPythonModel:
    """Greedy CTC decoder with per-correlation-ID previous token."""

    def initialize(self, args: dict[str, Any]) -> None:
        """Check the config against the blank id."""
        cfg = json.loads(args["model_config"])
        self.name = cfg["name"]
        self.log = pb_utils.Logger
        expect_sequence_batching(cfg)
        self.blank = parameter(cfg, "blank_id", int)
        rows, classes = tensor_dims(cfg, "input", "LOGPROBS", "TYPE_FP32")
        if not 0 <= self.blank < classes:
            raise ConfigError(f"{self.name}: blank_id {self.blank} outside 0..{classes - 1}")
        self.max_rows = rows
        # INT32 from the Python encoder, INT64 (NeMo's encoded_lengths) from ONNX/TensorRT ones.
        expect_dims(cfg, "input", "ENC_FRAMES", ("TYPE_INT32", "TYPE_INT64"), [1])
        for name in ("VALID_FRAMES", "FLUSH"):
            expect_dims(cfg, "input", name, "TYPE_INT32", [1])
        expect_dims(cfg, "output", "TOKENS", "TYPE_INT32", [-1])
        expect_dims(cfg, "output", "TOKEN_FRAMES", "TYPE_INT32", [-1])
        expect_dims(cfg, "output", "TOKEN_CONF", "TYPE_FP32", [-1])
        expect_dims(cfg, "output", "NUM_FRAMES", "TYPE_INT32", [1])
        self.states: SequenceStore[DecoderState] = SequenceStore(
            lambda: DecoderState(previous=self.blank),
            ttl_s=parameter(cfg, "sequence_ttl_s", float),
            log=lambda m: self.log.log_warn(f"{self.name}: {m}"),
        )
        self.live = LiveSequencesGauge(self.name)

    def execute(self, requests: list[Any]) -> list[Any]:
        """One response per request, in order (requests of one sequence arrive in order)."""
        responses = answer_each(requests, self._one, self.name)
        self.states.sweep()
        self.live.set(len(self.states))
        return responses

    def _one(self, request: Any) -> Any:
        tensor = input_reader(request)
        ctl = read_control(tensor)
        try:
            state = self.states.acquire(ctl)
        except UnknownSequence:
            return error_response(f"{self.name}: corrid={ctl.corrid}: no state (START missing or sequence expired)")
        rows = int(tensor("ENC_FRAMES").reshape(-1)[0])
        valid = int(tensor("VALID_FRAMES").reshape(-1)[0])
        if not 0 <= valid <= rows <= self.max_rows:
            self.states.release(ctl.corrid)
            return error_response(
                f"{self.name}: corrid={ctl.corrid}: VALID_FRAMES={valid} ENC_FRAMES={rows} inconsistent"
            )
        out = greedy_ctc(tensor("LOGPROBS")[0, :rows], self.blank, state, valid)
        if ctl.end:
            self.states.release(ctl.corrid)
        elif bool(tensor("FLUSH").reshape(-1)[0]):
            # After a flush the stream restarts: a repeat of the last token is a new token.
            state.previous = self.blank
        return pb_utils.InferenceResponse(
            output_tensors=[
                pb_utils.Tensor("TOKENS", out.tokens[None]),
                pb_utils.Tensor("TOKEN_FRAMES", out.frames[None]),
                pb_utils.Tensor("TOKEN_CONF", out.confidence[None]),
                pb_utils.Tensor("NUM_FRAMES", np.array([[valid]], np.int32)),
            ]
        )

    def finalize(self) -> None:
        """Drop every state."""
        self.log.log_info(f"{self.name}: finalize with {len(self.states)} live sequences")
