"""Triton Python backend: streaming log-mel front end of one look-ahead profile.

Per request (one Triton sequence per audio stream): ``AUDIO``/``AUDIO_LEN`` samples and the
``FLUSH`` flag in; out come 0..``max_chunks`` encoder-ready windows (``FEATURES`` padded to a
fixed shape so the sequence batcher can batch every request, ``NUM_CHUNKS`` valid), the
stream time of their first encoder frame (``CHUNK_START``) and how many of their encoder
frames cover real audio (``VALID_FRAMES``). END flushes, then frees the sequence's state.
A window is the chunk with its left context (a cache-aware encoder's pre-encode cache) and,
for a buffered model, its right context (see ``chunker.py``).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import numpy as np
import triton_python_backend_utils as pb_utils

sys.path.insert(0, str(Path(__file__).resolve().parent))

from backend import LiveSequencesGauge, answer_each, error_response, input_reader
from chunker import ChunkGeometry, FeatureStream
from model_config import ConfigError, expect_dims, load_sequence_model, parameter, tensor_dims
from sequence_state import SequenceStore, UnknownSequence, read_control
from streaming_mel import MelConfig


class TritonPythonModel:
    """Streaming feature extractor with per-correlation-ID state."""

    def initialize(self, args: dict[str, Any]) -> None:
        """Load ``features.npz`` and check that the config matches it."""
        cfg, version_dir = load_sequence_model(args)
        self.name = cfg["name"]
        self.log = pb_utils.Logger
        self.mel_cfg = MelConfig.from_npz(version_dir / parameter(cfg, "features_npz", str))
        geometry = {
            "chunk_frames": parameter(cfg, "chunk_frames", int),
            "left_frames": parameter(cfg, "left_frames", int),
            "subsampling": parameter(cfg, "subsampling", int),
            "fill": parameter(cfg, "context_fill", float),
            "right_frames": parameter(cfg, "right_frames", int),
            "normalize": parameter(cfg, "normalize", str),
            "lead_frames": parameter(cfg, "lead_frames", int),
        }
        try:
            self.geometry = ChunkGeometry(**geometry)
        except ValueError as exc:
            raise ConfigError(f"{self.name}: {exc}") from None
        hop = self.mel_cfg.hop_length
        # Enough audio for a whole window (its right context included) and no more; with lead
        # frames the first window needs fewer, and the rest waits for the next one.
        self.first_chunk_samples = self.geometry.ready_frames * hop - hop + self.mel_cfg.lookahead_samples
        expect_dims(cfg, "input", "AUDIO", "TYPE_FP32", [self.first_chunk_samples])
        expect_dims(cfg, "input", "AUDIO_LEN", "TYPE_INT32", [1])
        expect_dims(cfg, "input", "FLUSH", "TYPE_INT32", [1])
        feats = tensor_dims(cfg, "output", "FEATURES", "TYPE_FP32")
        if feats[1:] != [self.mel_cfg.n_mels, self.geometry.window] or feats[0] < 1:
            raise ConfigError(
                f"{self.name}: FEATURES dims {feats}, expected [max_chunks, {self.mel_cfg.n_mels}, "
                f"{self.geometry.window}]"
            )
        self.max_chunks = feats[0]
        for out, dtype in (("NUM_CHUNKS", "TYPE_INT32"), ("CHUNK_START", "TYPE_FP32"), ("VALID_FRAMES", "TYPE_INT32")):
            expect_dims(cfg, "output", out, dtype, [1])
        self.streams: SequenceStore[FeatureStream] = SequenceStore(
            lambda: FeatureStream(self.mel_cfg, self.geometry),
            ttl_s=parameter(cfg, "sequence_ttl_s", float),
            log=lambda m: self.log.log_warn(f"{self.name}: {m}"),
        )
        self.live = LiveSequencesGauge(self.name)
        self.log.log_info(
            f"{self.name}: chunk {self.geometry.chunk_frames} frames, first request "
            f"{self.first_chunk_samples} samples, up to {self.max_chunks} chunks per request"
        )

    def execute(self, requests: list[Any]) -> list[Any]:
        """One response per request, in order; a failed request gets an error response."""
        responses = answer_each(requests, self._one, self.name)
        self.streams.sweep()
        self.live.set(len(self.streams))
        return responses

    def _one(self, request: Any) -> Any:
        tensor = input_reader(request)
        ctl = read_control(tensor)
        try:
            stream = self.streams.acquire(ctl)
        except UnknownSequence:
            return error_response(f"{self.name}: corrid={ctl.corrid}: no state (START missing or sequence expired)")
        n = int(tensor("AUDIO_LEN").reshape(-1)[0])
        if not 0 <= n <= self.first_chunk_samples:
            self.streams.release(ctl.corrid)
            return error_response(
                f"{self.name}: corrid={ctl.corrid}: AUDIO_LEN={n} outside 0..{self.first_chunk_samples}"
            )
        flush = bool(tensor("FLUSH").reshape(-1)[0]) or ctl.end
        chunks = stream.process(tensor("AUDIO").reshape(-1)[:n], flush)
        if ctl.end:
            self.streams.release(ctl.corrid)
        k = chunks.features.shape[0]
        if k > self.max_chunks:
            # Cannot happen with AUDIO_LEN <= first_chunk_samples (see the builder); the state
            # is no longer in step with the encoder, so the sequence must restart.
            self.streams.release(ctl.corrid)
            return error_response(f"{self.name}: corrid={ctl.corrid}: {k} chunks > max_chunks={self.max_chunks}")
        feats = np.zeros((1, self.max_chunks, *chunks.features.shape[1:]), np.float32)
        feats[0, :k] = chunks.features
        return pb_utils.InferenceResponse(
            output_tensors=[
                pb_utils.Tensor("FEATURES", feats),
                pb_utils.Tensor("NUM_CHUNKS", np.array([[k]], np.int32)),
                pb_utils.Tensor("CHUNK_START", np.array([[chunks.start_s]], np.float32)),
                pb_utils.Tensor("VALID_FRAMES", np.array([[chunks.valid_frames]], np.int32)),
            ]
        )

    def finalize(self) -> None:
        """Drop every state."""
        self.log.log_info(f"{self.name}: finalize with {len(self.streams)} live sequences")
