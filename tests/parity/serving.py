"""What the Triton-vs-NeMo tests share: the test streams, the embedded server they start, the
frontend's request plan, and Triton's execution counts."""

from __future__ import annotations

import asyncio
import itertools
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from tritonclient.grpc import aio as grpc_aio

from frontend.triton.server import EmbeddedTriton
from scripts.build_model_repository import build_repository
from tests.parity.conftest import REFERENCE, ExportedModel, nemo_run, wait_ok
from tests.triton.helpers import Response, Step, live_sequences, load_wav, plan, stream

STREAMS = 8
# Served log-probs / encoder rows against NeMo's (measured: under 1e-5).
TOLERANCE = 1e-4
_ids = itertools.count(1)


def signals() -> list[list[np.ndarray]]:
    """Eight different streams of 3 to 7 s (speech, a pause, shifted, scaled, joined), as
    segments with a FLUSH between two."""
    a, b, pause = load_wav("speaker_a.wav"), load_wav("speaker_b.wav"), load_wav("pause.wav")
    return [
        [a],
        [b],
        [pause],
        [b, a],
        [np.roll(a, 12_345) * 0.5],
        [np.roll(b, 3_001) * 1.5],
        [np.concatenate([a[:20_000], b[10_000:]])],
        [np.roll(pause, 40_000) * 0.8, a[:24_000]],
    ]


def segment_npz(audio: dict[str, list[list[np.ndarray]]], path: Path) -> None:
    """Write ``<profile>/<stream>/<segment>`` arrays, the NeMo reference's input."""
    np.savez(
        path,
        **{
            f"{p}/{i}/{j}": seg
            for p, streams in audio.items()
            for i, stream_ in enumerate(streams)
            for j, seg in enumerate(stream_)
        },
    )


def nemo_results(
    command: str, models: dict[str, ExportedModel], inputs: Path, tmp: Path, *, manifest: bool = False
) -> dict[str, dict[str, np.ndarray]]:
    """``nemo_reference.py COMMAND MODEL.nemo [MANIFEST.json] INPUTS OUT.npz`` for every model
    at once; returns each model's arrays."""
    procs = [
        nemo_run(REFERENCE, command, m.nemo, *([m.folder / "manifest.json"] if manifest else []), inputs, tmp / name)
        for name, m in models.items()
    ]
    wait_ok(*procs)
    out = {}
    for name in models:
        with np.load(tmp / f"{name}.npz") as z:
            out[name] = {k: z[k] for k in z.files}
    return out


@dataclass(frozen=True)
class Case:
    """A model served through one of its heads."""

    model: str  # key of an ``exported*`` fixture
    head: str

    def __str__(self) -> str:
        return f"{self.model}-{self.head}"


@dataclass
class Served:
    server: EmbeddedTriton
    client: grpc_aio.InferenceServerClient


async def serve(folders: list[Path], repo: Path, head: str) -> Served:
    """The embedded target of ``folders`` under the real ``tritonserver``, batching up to
    ``STREAMS`` requests."""
    names = build_repository(
        "embedded", folders, repo, head=head, max_batch_size=STREAMS, preferred_batch_sizes=(STREAMS,)
    )
    server = EmbeddedTriton(repo, models=names)
    await server.start(timeout=300)
    return Served(server, grpc_aio.InferenceServerClient(server.grpc_url))


async def run_stream(
    client: grpc_aio.InferenceServerClient, model: str, facts: dict, segments: list[np.ndarray]
) -> list[Response]:
    """Send ``stream_plan``; responses in request order, diagnostics included."""
    steps = stream_plan(facts, segments)
    return await stream(client, model, next(_ids), facts["first_chunk_samples"], steps, diagnostics=True)


def stream_plan(facts: dict, segments: list[np.ndarray]) -> list[Step]:
    """The frontend's request plan, FLUSH at the end of the first of two segments."""
    flush = len(segments[0]) if len(segments) > 1 else None
    return plan(np.concatenate(segments), facts, flush_after=flush)


async def execution_stats(client: grpc_aio.InferenceServerClient, model: str) -> tuple[int, int]:
    """Requests a model has served, and in how many executions."""
    stats: dict[str, Any] = await client.get_inference_statistics(model, as_json=True)
    s = stats["model_stats"][0]
    return int(s.get("inference_count", 0)), int(s.get("execution_count", 0))


@dataclass(frozen=True)
class Concurrent:
    """Streams run at once, and what the encoder did meanwhile."""

    results: list[list[Response]]
    inferences: int  # requests the encoder served
    executions: int  # in that many runs


async def run_concurrently(target: Served, model: str, profile: str, facts: dict, streams: list) -> Concurrent:
    """Every stream of ``streams`` at once on ``asr_<model>_<profile>``, one client (one gRPC
    channel) each, as separate frontend sessions would have."""
    encoder = f"{model}_{profile}_encoder"
    before = await execution_stats(target.client, encoder)
    clients = [grpc_aio.InferenceServerClient(target.server.grpc_url) for _ in streams]
    try:
        results = await asyncio.gather(
            *(run_stream(c, f"asr_{model}_{profile}", facts, a) for c, a in zip(clients, streams, strict=True))
        )
    finally:
        await asyncio.gather(*(c.close() for c in clients))
    after = await execution_stats(target.client, encoder)
    return Concurrent(list(results), after[0] - before[0], after[1] - before[1])


def live_states(target: Served, model: str, profile: str) -> dict[str, float]:
    """The ``ddx_live_sequences`` gauges of the ensemble's three composing models."""
    prefix = f"{model}_{profile}_"
    return {k: v for k, v in live_sequences(target.server).items() if k.startswith(prefix)}


def assert_same_tokens(
    got: list[Response],
    token_frames: list[int],
    ref: dict[str, np.ndarray],
    want_frames: np.ndarray,
    head: str,
    where: str,
) -> None:
    """The responses carry NeMo's tokens (``token_frames``: their frames counted from the stream
    start, to be ``want_frames``); every confidence is a probability, for CTC its frame's posterior."""
    assert [token for r in got for token in r.tokens] == ref["tokens"].tolist(), where
    assert token_frames == want_frames.tolist(), where
    confidence = np.array([c for r in got for c in r.token_conf])
    assert np.all((confidence > 0) & (confidence <= 1)), where
    if head == "ctc":
        posterior = np.exp(ref["rows"][ref["token_frames"], ref["tokens"]])
        np.testing.assert_allclose(confidence, posterior, rtol=0, atol=TOLERANCE, err_msg=where)
