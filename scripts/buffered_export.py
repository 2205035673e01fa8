"""Buffered serving of an offline (not cache-aware) encoder: the window geometry that
``export_nemo.py`` writes into the manifest, and the window runs it checks the export with.

The service cuts a stream's log-mel frames into chunks and encodes each chunk with the offline
encoder inside a window of ``left`` frames before it and ``right`` frames after it, keeping only
the chunk's own encoder frames (``docs/model-operations.md``). The right context delays every
result by that much; the left context only costs compute. The defaults are those of NeMo's
buffered inference scripts (``speech_to_text_buffered_infer_ctc.py``: ``chunk_len_in_secs``
1.6, ``total_buffer_in_secs`` 4.0, the rest split evenly before and after the chunk).

Torch and NeMo are imported by the functions that run them, so the geometry is usable (and
testable) without them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

DEFAULT_CHUNK_S = 1.6
DEFAULT_LEFT_S = 1.2
DEFAULT_RIGHT_S = 1.2
# What the serving features model can do to a window before the encoder sees it: nothing, or
# what NeMo's FeatureFrameBufferer does to each buffer of a per_feature model (every band by the
# window's own mean and standard deviation).
WINDOW_NORMALIZATION = {None: "none", False: "none", "NA": "none", "None": "none", "per_feature": "per_feature"}


@dataclass(frozen=True)
class BufferGeometry:
    """One chunk and its context, in mel frames (each a multiple of the subsampling)."""

    chunk: int
    left: int
    right: int
    subsampling: int

    @classmethod
    def from_seconds(
        cls, chunk_s: float, left_s: float, right_s: float, *, hop_length: int, sample_rate: int, subsampling: int
    ) -> BufferGeometry:
        """Raises ``ValueError`` unless every length is a whole number of encoder frames (the
        window then lines up with the offline encoder's own frames) and the chunk is not empty."""
        step_s = subsampling * hop_length / sample_rate

        def frames(name: str, seconds: float, minimum: int) -> int:
            n = round(seconds / step_s)
            if n < minimum or not math.isclose(n * step_s, seconds, abs_tol=1e-6):
                raise ValueError(
                    f"buffer {name} {seconds:g} s: must be a multiple of the encoder frame shift {step_s:g} s"
                    + (" and positive" if minimum else "")
                )
            return n * subsampling

        return cls(
            chunk=frames("chunk", chunk_s, 1),
            left=frames("left context", left_s, 0),
            right=frames("right context", right_s, 0),
            subsampling=subsampling,
        )

    @property
    def window(self) -> int:
        """Mel frames the encoder reads per chunk."""
        return self.left + self.chunk + self.right

    @property
    def profile(self) -> str:
        """Latency profile name: ``la<N>``, N the right context in encoder frames (as for a
        cache-aware model, whose look-ahead it is too)."""
        return f"la{self.right // self.subsampling}"


def silence_level(log_guard: float) -> float:
    """A log-mel bin of digital silence: ``log(0 + guard)`` (or ``log(max(0, guard))``), in the
    extractor's float32. It fills the left context before a stream's first frame, as NeMo's
    buffered inference fills its buffer with the zero-signal level."""
    return float(np.log(np.float32(log_guard)))


def profile_facts(
    g: BufferGeometry,
    *,
    hop_length: int,
    win_length: int,
    sample_rate: int,
    normalize: str,
    fill: float,
    att_context_size: list[int],
) -> dict[str, Any]:
    """The manifest entry of the buffered profile (graphs and checks are added by the caller)."""
    hop_s = hop_length / sample_rate
    sub = g.subsampling
    return {
        "att_context_size": att_context_size,
        "lookahead_ms": round(g.right * hop_s * 1000),
        "chunk_frames": g.chunk,
        "encoder_frames": g.chunk // sub,
        "chunk_samples": g.chunk * hop_length,
        # A chunk is encoded once its right context has arrived: the first request carries the
        # right context too (plus the mel window's reach past the last frame), so that every
        # later request of chunk_samples completes exactly one window.
        "first_chunk_samples": (g.chunk + g.right) * hop_length - hop_length + win_length // 2,
        "buffer": {
            "chunk_s": round(g.chunk * hop_s, 6),
            "left_s": round(g.left * hop_s, 6),
            "right_s": round(g.right * hop_s, 6),
            "chunk_frames": g.chunk,
            "left_frames": g.left,
            "right_frames": g.right,
            "chunk_encoder_frames": g.chunk // sub,
            "left_encoder_frames": g.left // sub,
            "right_encoder_frames": g.right // sub,
            "fill": fill,
            "normalize": normalize,
        },
    }


def random_windows(n_mels: int, g: BufferGeometry, seed: int) -> list[np.ndarray]:
    """Log-mel-like windows: a batch of two at the served length, and one a few encoder frames
    longer (the graph's time axis must be dynamic)."""
    rng = np.random.default_rng(seed)
    return [
        rng.normal(-6.0, 3.0, size=(2, n_mels, g.window)).astype(np.float32),
        rng.normal(-6.0, 3.0, size=(1, n_mels, g.window + 3 * g.subsampling)).astype(np.float32),
    ]


def run_onnx_windows(path: Path, windows: list[np.ndarray]) -> np.ndarray:
    """Every window through the offline ONNX graph: all rows (one per encoder frame, CTC
    log-probs or the head-less encoder output) of all windows, stacked."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    sess = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    rows = []
    for w in windows:
        out = sess.run(None, {"audio_signal": w, "length": np.full(w.shape[0], w.shape[2], np.int64)})[0]
        rows.append(out if sess.get_outputs()[0].name == "logprobs" else out.transpose(0, 2, 1))
    return np.concatenate([r.reshape(-1, r.shape[-1]) for r in rows])


def run_nemo_windows(model: Any, windows: list[np.ndarray], ctc: Any | None) -> np.ndarray:
    """The same windows through NeMo's encoder (and ``ctc``, the CTC head, when given)."""
    import torch

    rows = []
    with torch.no_grad():
        for w in windows:
            x = torch.from_numpy(w)
            encoded, _ = model.encoder(audio_signal=x, length=torch.full((w.shape[0],), w.shape[2]))
            out = ctc(encoder_output=encoded) if ctc is not None else encoded.transpose(1, 2)
            rows.append(out.numpy())
    return np.concatenate([r.reshape(-1, r.shape[-1]) for r in rows])
