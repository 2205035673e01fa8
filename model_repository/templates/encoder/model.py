"""Triton Python backend: cache-aware FastConformer encoder on onnxruntime.

The graph is NeMo's export: with the CTC head (first output ``logprobs`` [B, T, V]) or
without a head for the RNNT decoder (``outputs`` [B, d_model, T], transposed here). Either
way ``ENCODED`` holds one row per encoder frame.

Each sequence's encoder caches live in a dict keyed by correlation ID (created on START,
freed on END, swept after ``sequence_ttl_s`` idle): the Python backend cannot use Triton's
implicit state. All requests of one ``execute`` call run as one batched ONNX inference with
their caches stacked; a request carrying several chunks takes one such round per chunk.
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
from model_config import (
    ConfigError,
    expect_dims,
    load_sequence_model,
    parameter,
    tensor_dims,
)
from sequence_state import Control, SequenceStore, UnknownSequence, read_control


def _shape(text: str) -> tuple[int, ...]:
    return tuple(int(v) for v in text.split(","))


@dataclass
class EncoderCache:
    """Encoder caches of one sequence (batch dimension excluded)."""

    channel: np.ndarray  # [layers, left context, d_model]
    time: np.ndarray  # [layers, d_model, conv context]
    channel_len: np.int64


@dataclass
class _Job:
    """One request being served."""

    index: int
    control: Control
    features: np.ndarray  # [max_chunks, n_mels, window]
    n_chunks: int


class TritonPythonModel:
    """Batched streaming encoder with per-correlation-ID caches."""

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
        self.session = ort.InferenceSession(
            str(version_dir / parameter(cfg, "onnx_file", str)), opts, providers=["CPUExecutionProvider"]
        )
        self.channel_shape = _shape(parameter(cfg, "cache_last_channel", str))
        self.time_shape = _shape(parameter(cfg, "cache_last_time", str))

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
        self.head_output = self.session.get_outputs()[0].name
        self._check_graph(feats)
        self.caches: SequenceStore[EncoderCache] = SequenceStore(
            self._zero_cache,
            ttl_s=parameter(cfg, "sequence_ttl_s", float),
            log=lambda m: self.log.log_warn(f"{self.name}: {m}"),
        )
        self.live = LiveSequencesGauge(self.name)

    def _zero_cache(self) -> EncoderCache:
        # Zero caches with length 0 are NeMo's initial streaming state.
        return EncoderCache(
            channel=np.zeros(self.channel_shape, np.float32),
            time=np.zeros(self.time_shape, np.float32),
            channel_len=np.int64(0),
        )

    def _check_graph(self, feats: list[int]) -> None:
        """Run one zero chunk: the graph must take the configured window and caches and
        return ``encoder_frames`` rows of ``width``."""
        names = {i.name for i in self.session.get_inputs()}
        expected = {"audio_signal", "length", "cache_last_channel", "cache_last_time", "cache_last_channel_len"}
        if names != expected:
            raise ConfigError(f"{self.name}: ONNX inputs {sorted(names)}, expected {sorted(expected)}")
        if self.head_output not in ("logprobs", "outputs"):
            raise ConfigError(f"{self.name}: ONNX output {self.head_output!r}, expected logprobs or outputs")
        zero = self._zero_cache()
        rows = self._run(np.zeros((1, feats[1], self.window), np.float32), [zero])
        if rows.shape[1:] != (self.encoder_frames, self.width):
            raise ConfigError(
                f"{self.name}: ONNX gives {rows.shape[1:]} per chunk, config expects "
                f"{(self.encoder_frames, self.width)}"
            )

    def _run(self, features: np.ndarray, caches: list[EncoderCache]) -> np.ndarray:
        """One batched step; updates ``caches`` in place, returns rows [b, frames, width]."""
        b = features.shape[0]
        head, channel, time, channel_len = self.session.run(
            [self.head_output, "cache_last_channel_next", "cache_last_time_next", "cache_last_channel_next_len"],
            {
                "audio_signal": features,
                "length": np.full((b,), features.shape[2], np.int64),
                "cache_last_channel": np.stack([c.channel for c in caches]),
                "cache_last_time": np.stack([c.time for c in caches]),
                "cache_last_channel_len": np.array([c.channel_len for c in caches], np.int64),
            },
        )
        for i, c in enumerate(caches):
            c.channel, c.time, c.channel_len = channel[i], time[i], channel_len[i]
        # The head-less (RNNT) encoder returns [b, d_model, frames].
        return head if self.head_output == "logprobs" else head.transpose(0, 2, 1)

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
                self.caches.release(job.control.corrid)
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
        self.caches.sweep()
        self.live.set(len(self.caches))
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
        form) are served one after the other, so their caches stay in order.
        """
        first: list[_Job] = []
        later: list[_Job] = []
        seen: set[int] = set()
        for job in jobs:
            (later if job.control.corrid in seen else first).append(job)
            seen.add(job.control.corrid)
        ready: list[tuple[_Job, EncoderCache]] = []
        for job in first:
            try:
                cache = self.caches.acquire(job.control)
            except UnknownSequence:
                errors[job.index] = f"corrid={job.control.corrid}: no cache (START missing or sequence expired)"
                continue
            outputs[job.index] = np.zeros((self.max_chunks * self.encoder_frames, self.width), np.float32)
            ready.append((job, cache))
        for r in range(self.max_chunks):
            active = [(job, cache) for job, cache in ready if job.n_chunks > r]
            if not active:
                break
            feats = np.stack([job.features[r] for job, _ in active])
            encoded = self._run(feats, [cache for _, cache in active])
            rows = slice(r * self.encoder_frames, (r + 1) * self.encoder_frames)
            for (job, _), e in zip(active, encoded, strict=True):
                outputs[job.index][rows] = e
        for job in first:
            if job.control.end:
                self.caches.release(job.control.corrid)
        if later:
            self._serve(later, outputs, errors)

    def finalize(self) -> None:
        """Drop every cache."""
        self.log.log_info(f"{self.name}: finalize with {len(self.caches)} live sequences")
