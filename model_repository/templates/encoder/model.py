"""Triton Python backend: FastConformer encoder on onnxruntime, cache-aware or buffered.

The graph is NeMo's export (``encoder_graphs.py``): a cache-aware encoder, or an offline one
that runs on buffered windows. Either way ``ENCODED`` holds one row per encoder frame of the
request's chunks: CTC log-probs, or the encoder output the RNNT decoder reads.

Each sequence's state (a cache-aware graph's caches; nothing for a buffered graph, whose
context travels in its windows) lives in a dict keyed by correlation ID (created on START,
freed on END, swept after ``sequence_ttl_s`` idle): the Python backend cannot use Triton's
implicit state. All requests of one ``execute`` call run as one batched ONNX inference with
their states stacked; a request carrying several chunks takes one such round per chunk.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
import triton_python_backend_utils as pb_utils

sys.path.insert(0, str(Path(__file__).resolve().parent))

from backend import LiveSequencesGauge, error_response, input_reader
from encoder_graphs import CacheAwareGraph, WindowGraph
from model_config import (
    ConfigError,
    expect_dims,
    load_sequence_model,
    parameter,
    tensor_dims,
)
from sequence_state import Control, SequenceStore, UnknownSequence, read_control


def _ints(text: str) -> tuple[int, ...]:
    return tuple(int(v) for v in text.split(","))


def open_graph(cfg: dict[str, Any], session: Any) -> CacheAwareGraph | WindowGraph:
    """The graph of the config's ``mode`` (the builder renders each mode's parameters)."""
    name, mode = cfg["name"], parameter(cfg, "mode", str)
    if mode == "cache_aware":
        channel, time = (_ints(parameter(cfg, key, str)) for key in ("cache_last_channel", "cache_last_time"))
        return CacheAwareGraph(name, session, channel, time)
    if mode == "buffered":
        left, right = _ints(parameter(cfg, "context_frames", str))
        return WindowGraph(name, session, left, right)
    raise ConfigError(f"{name}: mode {mode!r}, expected cache_aware or buffered")


@dataclass
class _Job:
    """One request being served."""

    index: int
    control: Control
    features: np.ndarray  # [max_chunks, n_mels, window]
    n_chunks: int


class TritonPythonModel:
    """Batched streaming encoder with per-correlation-ID state."""

    def initialize(self, args: dict[str, Any]) -> None:
        """Open the ONNX session, check config and graph agree, warm up."""
        cfg, version_dir = load_sequence_model(args)
        self.name = cfg["name"]
        self.log = pb_utils.Logger
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = parameter(cfg, "intra_op_threads", int)
        opts.inter_op_num_threads = 1
        opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        # Spinning worker threads burn CPU between requests that other models need.
        opts.add_session_config_entry("session.intra_op.allow_spinning", parameter(cfg, "allow_spinning", str))
        session = ort.InferenceSession(
            str(version_dir / parameter(cfg, "onnx_file", str)), opts, providers=["CPUExecutionProvider"]
        )
        self.graph = open_graph(cfg, session)

        feats = tensor_dims(cfg, "input", "FEATURES", "TYPE_FP32")
        expect_dims(cfg, "input", "NUM_CHUNKS", "TYPE_INT32", [1])
        expect_dims(cfg, "output", "ENC_FRAMES", "TYPE_INT32", [1])
        expect_dims(cfg, "output", "ENCODER_FRAMES", "TYPE_INT32", [1])
        encoded = tensor_dims(cfg, "output", "ENCODED", "TYPE_FP32")
        expect_dims(cfg, "output", "ENCODER_OUT", "TYPE_FP32", encoded)
        self.max_chunks, self.window = feats[0], feats[2]
        if encoded[0] % self.max_chunks:
            raise ConfigError(f"{self.name}: ENCODED rows {encoded[0]} not a multiple of {self.max_chunks} chunks")
        self.encoder_frames = encoded[0] // self.max_chunks
        self.width = encoded[1]
        self._check_graph(feats)
        self.states: SequenceStore[Any] = SequenceStore(
            self.graph.new_state,
            ttl_s=parameter(cfg, "sequence_ttl_s", float),
            log=lambda m: self.log.log_warn(f"{self.name}: {m}"),
        )
        self.live = LiveSequencesGauge(self.name)

    def _check_graph(self, feats: list[int]) -> None:
        """Run one zero window: the graph must take the configured window and return
        ``encoder_frames`` rows of ``width``."""
        rows = self.graph.run(np.zeros((1, feats[1], self.window), np.float32), [self.graph.new_state()])
        if rows.shape[1:] != (self.encoder_frames, self.width):
            raise ConfigError(
                f"{self.name}: ONNX gives {rows.shape[1:]} per chunk, config expects "
                f"{(self.encoder_frames, self.width)}"
            )

    def execute(self, requests: list[Any]) -> list[Any]:
        """One response per request, in order; a failed request gets an error response."""
        responses: list[Any] = [None] * len(requests)
        jobs: list[_Job] = []
        for i, request in enumerate(requests):
            try:
                jobs.append(self._job(i, request))
            except (UnknownSequence, ValueError) as exc:
                responses[i] = error_response(f"{self.name}: {exc}")
        outputs: dict[int, np.ndarray] = {}
        errors: dict[int, str] = {}
        try:
            self._serve(jobs, outputs, errors)
        except Exception as exc:  # an ONNX failure fails the batch, never the server
            for job in jobs:
                self.states.release(job.control.corrid)
                errors[job.index] = f"corrid={job.control.corrid}: {type(exc).__name__}: {exc}"
        for job in jobs:
            if job.index in errors:
                responses[job.index] = error_response(f"{self.name}: {errors[job.index]}")
                continue
            encoded = outputs[job.index][None]
            frames = np.array([[job.n_chunks * self.encoder_frames]], np.int32)
            # The ensemble asks a step for every output it maps, so the diagnostic copies are
            # always sent; Triton drops them unless the ensemble's client asked for them.
            responses[job.index] = pb_utils.InferenceResponse(
                output_tensors=[
                    pb_utils.Tensor("ENCODED", encoded),
                    pb_utils.Tensor("ENC_FRAMES", frames),
                    pb_utils.Tensor("ENCODER_OUT", encoded),
                    pb_utils.Tensor("ENCODER_FRAMES", frames),
                ]
            )
        self.states.sweep()
        self.live.set(len(self.states))
        return responses

    def _job(self, index: int, request: Any) -> _Job:
        tensor = input_reader(request)
        control = read_control(tensor)
        n_chunks = int(tensor("NUM_CHUNKS").reshape(-1)[0])
        if not 0 <= n_chunks <= self.max_chunks:
            raise ValueError(f"corrid={control.corrid}: NUM_CHUNKS={n_chunks} outside 0..{self.max_chunks}")
        return _Job(index=index, control=control, features=tensor("FEATURES")[0], n_chunks=n_chunks)

    def _serve(self, jobs: list[_Job], outputs: dict[int, np.ndarray], errors: dict[int, str]) -> None:
        """Run every chunk of every job, chunk-synchronously across jobs.

        Two requests of one sequence in one batch (which the ``oldest`` batcher should never
        form) are served one after the other, so their states stay in order.
        """
        first: list[_Job] = []
        later: list[_Job] = []
        seen: set[int] = set()
        for job in jobs:
            (later if job.control.corrid in seen else first).append(job)
            seen.add(job.control.corrid)
        ready: list[tuple[_Job, Any]] = []
        for job in first:
            try:
                state = self.states.acquire(job.control)
            except UnknownSequence:
                errors[job.index] = f"corrid={job.control.corrid}: no state (START missing or sequence expired)"
                continue
            outputs[job.index] = np.zeros((self.max_chunks * self.encoder_frames, self.width), np.float32)
            ready.append((job, state))
        for r in range(self.max_chunks):
            active = [(job, state) for job, state in ready if job.n_chunks > r]
            if not active:
                break
            feats = np.stack([job.features[r] for job, _ in active])
            encoded = self.graph.run(feats, [state for _, state in active])
            rows = slice(r * self.encoder_frames, (r + 1) * self.encoder_frames)
            for (job, _), e in zip(active, encoded, strict=True):
                outputs[job.index][rows] = e
        for job in first:
            if job.control.end:
                self.states.release(job.control.corrid)
        if later:
            self._serve(later, outputs, errors)

    def finalize(self) -> None:
        """Drop every state."""
        self.log.log_info(f"{self.name}: finalize with {len(self.states)} live sequences")
