"""Shared pieces of the Triton tests: audio, request plans, a raw contract client, a reference.

The reference runs the same exported files without Triton (feature chunker, onnxruntime,
greedy CTC written out again here) so that the tests can tell the Triton wiring and its
per-sequence state apart from the numerics.
"""

from __future__ import annotations

import json
import re
import sys
import urllib.request
import wave
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[2]
MODEL_DIR = REPO / "models" / "embedded"
FIXTURES = REPO / "tests" / "fixtures"
TEMPLATES = REPO / "model_repository" / "templates"
OUTPUTS = ("CHUNK_START", "NUM_FRAMES", "TOKENS", "TOKEN_FRAMES", "TOKEN_CONF")
# The ensemble's optional outputs: what the encoder produced (docs/triton-contract.md).
DIAGNOSTICS = ("ENCODER_OUT", "ENCODER_FRAMES")

# The feature chunker ships inside the Triton model folder; the tests import it from there.
sys.path.insert(0, str(TEMPLATES / "features"))

from chunker import ChunkGeometry, FeatureStream  # noqa: E402
from streaming_mel import MelConfig  # noqa: E402


def load_wav(name: str) -> np.ndarray:
    """A 16 kHz mono 16-bit fixture as float32 in [-1, 1]."""
    with wave.open(str(FIXTURES / name)) as w:
        assert w.getframerate() == 16000 and w.getnchannels() == 1 and w.getsampwidth() == 2
        return np.frombuffer(w.readframes(w.getnframes()), np.int16).astype(np.float32) / 32768.0


def model_manifest() -> dict[str, Any]:
    """The exported model's manifest."""
    return json.loads((MODEL_DIR / "manifest.json").read_text())


def chunk_geometry(manifest: dict[str, Any], profile: str) -> ChunkGeometry:
    """What the features model cuts for a cache-aware profile of ``manifest``."""
    facts = manifest["profiles"][profile]
    return ChunkGeometry(
        chunk_frames=facts["chunk_frames"],
        left_frames=facts["pre_encode_cache_size"],
        subsampling=manifest["subsampling_factor"],
        fill=manifest["features"]["pre_encode_fill"],
        lead_frames=facts["lead_frames"],
    )


@dataclass(frozen=True)
class Step:
    """One request of a plan."""

    audio: np.ndarray
    flush: bool = False


def plan(audio: np.ndarray, profile: dict[str, Any], flush_after: int | None = None,
         first: int | None = None) -> list[Step]:
    """Requests of ``first`` samples (default ``first_chunk_samples``, the most one may
    carry; the frontend sends the ensemble's ``first_request_samples``), then ``chunk_samples``.

    With ``flush_after`` the request after that many samples carries FLUSH, and the next
    one is a first request again.
    """
    first, size = first or profile["first_chunk_samples"], profile["chunk_samples"]
    steps: list[Step] = []
    pos, width = 0, first
    while pos < len(audio):
        n = width
        flush = False
        if flush_after is not None and pos < flush_after <= pos + n:
            n, flush = flush_after - pos, True
        steps.append(Step(audio[pos : pos + n], flush))
        pos += n
        width = first if flush else size
    return steps


@dataclass(frozen=True)
class Response:
    """One ensemble response (plain Python values)."""

    chunk_start: float
    num_frames: int
    tokens: list[int]
    token_frames: list[int]
    token_conf: list[float]
    encoder_out: np.ndarray | None = None  # [ENCODER_FRAMES, width], when asked for
    partial_tokens: list[int] | None = None  # PARTIAL_TOKENS, asked for with the diagnostics


def request(
    model: str,
    sequence_id: int,
    width: int,
    step: Step,
    start: bool,
    end: bool,
    rid: str,
    diagnostics: bool = False,
) -> dict:
    """A ``stream_infer`` request dict following docs/triton-contract.md (with the encoder's
    output too when ``diagnostics``)."""
    import tritonclient.grpc as grpcclient

    audio = np.zeros((1, width), np.float32)
    audio[0, : len(step.audio)] = step.audio
    inputs = [
        grpcclient.InferInput("AUDIO", [1, width], "FP32"),
        grpcclient.InferInput("AUDIO_LEN", [1, 1], "INT32"),
        grpcclient.InferInput("FLUSH", [1, 1], "INT32"),
    ]
    inputs[0].set_data_from_numpy(audio)
    inputs[1].set_data_from_numpy(np.array([[len(step.audio)]], np.int32))
    inputs[2].set_data_from_numpy(np.array([[int(step.flush)]], np.int32))
    return {
        "model_name": model,
        "inputs": inputs,
        "outputs": [grpcclient.InferRequestedOutput(n)
                    for n in (*OUTPUTS, *(DIAGNOSTICS + ("PARTIAL_TOKENS",) if diagnostics else ()))],
        "request_id": rid,
        "sequence_id": sequence_id,
        "sequence_start": start,
        "sequence_end": end,
    }


def parse(result: Any, diagnostics: bool = False) -> Response:
    """Check output shapes and types, return plain values."""
    out = {n: result.as_numpy(n) for n in OUTPUTS}
    assert out["CHUNK_START"].shape == (1, 1) and out["CHUNK_START"].dtype == np.float32
    assert out["NUM_FRAMES"].shape == (1, 1) and out["NUM_FRAMES"].dtype == np.int32
    k = out["TOKENS"].shape[1]
    assert out["TOKENS"].shape == out["TOKEN_FRAMES"].shape == out["TOKEN_CONF"].shape == (1, k)
    assert out["TOKENS"].dtype == out["TOKEN_FRAMES"].dtype == np.int32
    assert out["TOKEN_CONF"].dtype == np.float32
    encoder_out = partial = None
    if diagnostics:
        frames = result.as_numpy("ENCODER_FRAMES")
        assert frames.shape == (1, 1) and frames.dtype == np.int32
        encoder_out = result.as_numpy("ENCODER_OUT")[0, : int(frames[0, 0])]
        partial = result.as_numpy("PARTIAL_TOKENS")[0].tolist()
    return Response(
        chunk_start=float(out["CHUNK_START"][0, 0]),
        num_frames=int(out["NUM_FRAMES"][0, 0]),
        tokens=out["TOKENS"][0].tolist(),
        token_frames=out["TOKEN_FRAMES"][0].tolist(),
        token_conf=out["TOKEN_CONF"][0].tolist(),
        encoder_out=encoder_out,
        partial_tokens=partial,
    )


async def stream(
    client: Any,
    model: str,
    sequence_id: int,
    width: int,
    steps: list[Step],
    end: bool = True,
    diagnostics: bool = False,
) -> list[Response]:
    """Send ``steps`` as one sequence on one gRPC stream; responses in request order."""

    async def requests():  # type: ignore[no-untyped-def]
        for i, step in enumerate(steps):
            last = end and i == len(steps) - 1
            yield request(model, sequence_id, width, step, i == 0, last, str(i), diagnostics)

    got: dict[str, Response] = {}
    async for result, error in client.stream_infer(requests()):
        if error is not None:
            raise error
        got[result.get_response().id] = parse(result, diagnostics)
        if len(got) == len(steps):
            break
    return [got[str(i)] for i in range(len(steps))]


class Reference:
    """The exported model run without Triton: same chunker, onnxruntime, greedy CTC."""

    def __init__(self, profile_name: str) -> None:
        import onnxruntime as ort

        self.manifest = model_manifest()
        self.profile = self.manifest["profiles"][profile_name]
        p = self.profile
        self.geometry = chunk_geometry(self.manifest, profile_name)
        self.mel_cfg = MelConfig.from_npz(MODEL_DIR / "features.npz")
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = 1
        self.session = ort.InferenceSession(str(MODEL_DIR / p["onnx"]["ctc"]), opts)

    def run(self, steps: list[Step]) -> list[Response]:
        """Responses the ensemble should give for ``steps`` (sequence ended after the last)."""
        p, blank = self.profile, self.manifest["blank_id"]
        features = FeatureStream(self.mel_cfg, self.geometry)
        channel = np.zeros([1, *p["cache_last_channel"]], np.float32)
        time_ = np.zeros([1, *p["cache_last_time"]], np.float32)
        length = np.zeros([1], np.int64)
        previous = blank
        out = []
        for i, step in enumerate(steps):
            chunks = features.process(step.audio, step.flush or i == len(steps) - 1)
            rows = []
            for chunk in chunks.features:
                lp, _, channel, time_, length = self.session.run(
                    None,
                    {
                        "audio_signal": chunk[None],
                        "length": np.array([chunk.shape[1]], np.int64),
                        "cache_last_channel": channel,
                        "cache_last_time": time_,
                        "cache_last_channel_len": length,
                    },
                )
                rows.append(lp[0])
            tokens, frames, conf = [], [], []
            for f, row in enumerate(np.concatenate(rows) if rows else []):
                best = int(row.argmax())
                if best != blank and best != previous:
                    tokens.append(best)
                    frames.append(min(f, max(chunks.valid_frames - 1, 0)))
                    conf.append(float(np.exp(row[best])))
                previous = best
            if step.flush:
                previous = blank
            out.append(Response(chunks.start_s, chunks.valid_frames, tokens, frames, conf))
        return out


def assert_same(got: list[Response], want: list[Response]) -> None:
    """Equal tokens, frames, clocks; confidences within float32 noise."""
    assert len(got) == len(want)
    for i, (g, w) in enumerate(zip(got, want, strict=True)):
        assert g.num_frames == w.num_frames, i
        assert g.chunk_start == np.float32(w.chunk_start), i
        assert g.tokens == w.tokens, i
        assert g.token_frames == w.token_frames, i
        np.testing.assert_allclose(g.token_conf, w.token_conf, rtol=1e-5, atol=1e-6)


def live_sequences(triton: Any) -> dict[str, float]:
    """The models' ``ddx_live_sequences`` gauges from the metrics endpoint of an ``EmbeddedTriton``."""
    with urllib.request.urlopen(triton.metrics_url, timeout=5) as response:
        text = response.read().decode()
    return {
        m.group(1): float(m.group(2))
        for m in re.finditer(r'^ddx_live_sequences\{model="([^"]+)"\} (\S+)$', text, re.MULTILINE)
    }

# The manifest keys docs/triton-contract.md promises the frontend, restated independently of the builder.
CONTRACT_KEYS = {
    "model",
    "profile",
    "lookahead_ms",
    "display_name",
    "version",
    "uuid",
    "arch",
    "languages",
    "sample_rate",
    "chunk_samples",
    "first_chunk_samples",
    "frame_shift_s",
    "vocabulary",
    "blank_id",
    "word_boundary",
    "default",
}
