"""What a greedy decoder model does whatever its head (Python backend): the CTC and RNNT
decoders subclass ``StreamingDecoder`` and only implement ``setup``, ``new_state`` and
``decode``.

Per request: the encoder's ``ENCODED`` rows (``ENC_FRAMES`` valid), how many of those frames
cover real audio (``VALID_FRAMES``, fewer after a FLUSH padded the last chunk) and ``FLUSH``.
Out: the tokens this request decides, their frame (0-based in the request, clamped into
the real audio: a token found in a flush's padding belongs to the real audio's end; negative
for a token a beam search decided late, which belongs to an earlier request), their
posterior, and ``NUM_FRAMES`` = ``VALID_FRAMES``; and ``PARTIAL_*``, the same for the tokens a
decoder holds back (a beam search's best hypothesis beyond what every hypothesis shares):
provisional, for interim results only, superseded by the next response.

One decoder state per correlation ID: created on START, dropped on END and after
``sequence_ttl_s`` idle, and renewed after a FLUSH, where the stream goes on as a new
utterance (a CTC repeat is not merged across it, an RNNT prediction network starts again
from its start symbol). All requests of one ``execute`` call are decoded together.

Request parameters (an ensemble forwards its own to every step) configure the sequence from
that request on, FLUSHes included: ``keyterms``, a JSON list of ``[term, weight]`` pairs, for a
decoder that can boost words (sent on START, and again when a client replaces them).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generic, TypeVar

import numpy as np
import triton_python_backend_utils as pb_utils
from backend import LiveSequencesGauge, error_response, input_reader
from model_config import ConfigError, expect_dims, load_sequence_model, parameter, tensor_dims
from sequence_state import Control, SequenceStore, UnknownSequence, read_control

S = TypeVar("S")


def _none(dtype: type) -> np.ndarray:
    return np.zeros(0, dtype)


@dataclass(frozen=True)
class Decoded:
    """Tokens of one request, and the provisional ones after them."""

    tokens: np.ndarray  # int32 [k]
    frames: np.ndarray  # int32 [k], row of ENCODED where each token was emitted
    confidence: np.ndarray  # float32 [k], posterior of each token
    partial: tuple[np.ndarray, np.ndarray, np.ndarray] = field(
        default_factory=lambda: (_none(np.int32), _none(np.int32), _none(np.float32)))


@dataclass(frozen=True)
class DecodeJob(Generic[S]):
    """One request to decode: its rows, its sequence's state (updated in place) and whether
    the utterance ends with it (FLUSH or END: a decoder holding tokens back emits them all)."""

    rows: np.ndarray  # [ENC_FRAMES, width]
    state: S
    final: bool = False


@dataclass(frozen=True)
class _Request:
    control: Control
    rows: np.ndarray
    valid: int
    flush: bool
    options: dict[str, Any] = field(default_factory=dict)  # request parameters


class StreamingDecoder(Generic[S]):
    """Config checks, request parsing, per-sequence states and responses of a decoder."""

    name: str
    blank: int

    def setup(self, cfg: dict[str, Any], version_dir: Path, width: int) -> None:
        """Head-specific initialisation (``ENCODED`` rows have ``width`` values)."""
        raise NotImplementedError

    def new_state(self, options: dict[str, Any]) -> S:
        """The state of a sequence at its START, configured by that request's parameters."""
        raise NotImplementedError

    def next_utterance(self, state: S) -> S:
        """The state after a FLUSH: what the START configured, decoding afresh (a decoder may
        carry context that is not decoding state, as the CTC beam search's last words)."""
        raise NotImplementedError

    def configure(self, state: S, options: dict[str, Any]) -> None:
        """A later request's parameters (keyterms replaced mid-stream); by default ignored."""

    def decode(self, jobs: list[DecodeJob[S]]) -> list[Decoded]:
        """Decode every job, advancing its state; one ``Decoded`` per job, in order."""
        raise NotImplementedError

    def initialize(self, args: dict[str, Any]) -> None:
        """Check the config (inputs, outputs, blank id), then the head's own setup."""
        cfg, version_dir = load_sequence_model(args)
        self.name = cfg["name"]
        self.log = pb_utils.Logger
        self.blank = parameter(cfg, "blank_id", int)
        self.max_rows, width = tensor_dims(cfg, "input", "ENCODED", "TYPE_FP32")
        for name in ("ENC_FRAMES", "VALID_FRAMES", "FLUSH"):
            expect_dims(cfg, "input", name, "TYPE_INT32", [1])
        expect_dims(cfg, "output", "TOKENS", "TYPE_INT32", [-1])
        expect_dims(cfg, "output", "TOKEN_FRAMES", "TYPE_INT32", [-1])
        expect_dims(cfg, "output", "TOKEN_CONF", "TYPE_FP32", [-1])
        expect_dims(cfg, "output", "NUM_FRAMES", "TYPE_INT32", [1])
        expect_dims(cfg, "output", "PARTIAL_TOKENS", "TYPE_INT32", [-1])
        expect_dims(cfg, "output", "PARTIAL_FRAMES", "TYPE_INT32", [-1])
        expect_dims(cfg, "output", "PARTIAL_CONF", "TYPE_FP32", [-1])
        if self.blank < 0:
            raise ConfigError(f"{self.name}: blank_id {self.blank} is negative")
        self.setup(cfg, version_dir, width)
        self.states: SequenceStore[S] = SequenceStore(
            lambda: self.new_state({}),
            ttl_s=parameter(cfg, "sequence_ttl_s", float),
            log=lambda m: self.log.log_warn(f"{self.name}: {m}"),
        )
        self.live = LiveSequencesGauge(self.name)

    def execute(self, requests: list[Any]) -> list[Any]:
        """One response per request, in order; a failed request gets an error response."""
        responses: list[Any] = [None] * len(requests)
        parsed: dict[int, _Request] = {}
        for i, request in enumerate(requests):
            try:
                parsed[i] = self._parse(request)
            except ValueError as exc:
                responses[i] = error_response(f"{self.name}: {exc}")
        # Two requests of one sequence in one batch (which the ``oldest`` batcher does not
        # form) are decoded one after the other, so that the second sees the first's state.
        while parsed:
            seen: set[int] = set()
            batch = {}
            for i, req in parsed.items():
                if req.control.corrid not in seen:
                    seen.add(req.control.corrid)
                    batch[i] = req
            for i in batch:
                del parsed[i]
            self._decode_batch(batch, responses)
        self.states.sweep()
        self.live.set(len(self.states))
        return responses

    def _parse(self, request: Any) -> _Request:
        tensor = input_reader(request)
        ctl = read_control(tensor)
        rows = int(tensor("ENC_FRAMES").reshape(-1)[0])
        valid = int(tensor("VALID_FRAMES").reshape(-1)[0])
        if not 0 <= valid <= rows <= self.max_rows:
            raise ValueError(f"corrid={ctl.corrid}: VALID_FRAMES={valid} ENC_FRAMES={rows} inconsistent")
        flush = bool(tensor("FLUSH").reshape(-1)[0])
        options = _parameters(request)
        return _Request(ctl, tensor("ENCODED")[0, :rows], valid, flush, options)

    def _decode_batch(self, batch: dict[int, _Request], responses: list[Any]) -> None:
        jobs: dict[int, DecodeJob[S]] = {}
        for i, req in batch.items():
            try:
                state = self.states.acquire(req.control, lambda req=req: self.new_state(req.options))
                if req.options and not req.control.start:
                    self.configure(state, req.options)
                jobs[i] = DecodeJob(req.rows, state, req.flush or req.control.end)
            except UnknownSequence:
                responses[i] = error_response(
                    f"{self.name}: corrid={req.control.corrid}: no state (START missing or sequence expired)"
                )
        try:
            decoded = dict(zip(jobs, self.decode(list(jobs.values())), strict=True))
        except Exception as exc:  # a decoding failure fails these requests, never the server
            for i in jobs:
                self.states.release(batch[i].control.corrid)
                responses[i] = error_response(f"{self.name}: corrid={batch[i].control.corrid}: {exc!r}")
            return
        for i, out in decoded.items():
            req = batch[i]
            if req.control.end:
                self.states.release(req.control.corrid)
            elif req.flush:
                self.states.renew(req.control.corrid, self.next_utterance)
            last = max(req.valid - 1, 0)
            p_tokens, p_frames, p_conf = out.partial
            responses[i] = pb_utils.InferenceResponse(
                output_tensors=[
                    pb_utils.Tensor("TOKENS", out.tokens.astype(np.int32)[None]),
                    pb_utils.Tensor("TOKEN_FRAMES", np.minimum(out.frames, last).astype(np.int32)[None]),
                    pb_utils.Tensor("TOKEN_CONF", out.confidence.astype(np.float32)[None]),
                    pb_utils.Tensor("NUM_FRAMES", np.array([[req.valid]], np.int32)),
                    pb_utils.Tensor("PARTIAL_TOKENS", p_tokens.astype(np.int32)[None]),
                    pb_utils.Tensor("PARTIAL_FRAMES", np.minimum(p_frames, last).astype(np.int32)[None]),
                    pb_utils.Tensor("PARTIAL_CONF", p_conf.astype(np.float32)[None]),
                ]
            )

    def finalize(self) -> None:
        """Drop every state."""
        self.log.log_info(f"{self.name}: finalize with {len(self.states)} live sequences")


def _parameters(request: Any) -> dict[str, Any]:
    """A request's parameters (``request.parameters()`` is a JSON object as text)."""
    try:
        params = json.loads(request.parameters() or "{}")
    except ValueError as exc:
        raise ValueError(f"request parameters are not JSON: {exc}") from exc
    return params if isinstance(params, dict) else {}
