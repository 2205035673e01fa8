"""Triton equals NeMo: the same audio streamed through the served ensemble (the real
``tritonserver``, embedded target) and through NeMo's own cache-aware streaming
(``nemo_reference.py stream``: ``CacheAwareStreamingAudioBuffer`` with
``pad_and_drop_preencoded``, ``conformer_stream_step``), for

* a CTC model, and a hybrid RNNT+CTC model served through its CTC head (``head="ctc"``):
  per-chunk log-probs, greedy tokens and their frames;
* the hybrid served through its RNNT head (the builder's default for it): per-chunk encoder
  output, greedy RNNT tokens and their frames;

at every look-ahead profile, one stream at a time (batch 1) and eight streams at once
(batched by the sequence batcher, which must keep their states apart). Two of the streams
carry a FLUSH: after it the service starts a new feature segment and a new decoding (fresh
RNNT hypothesis, CTC collapse restarted) while the encoder caches carry on, which the NeMo side
reproduces with per-segment features and a reset hypothesis.

Each request follows the frontend's plan (``first_chunk_samples``, then ``chunk_samples``, END
on the last) and every segment is a whole number of chunks, so response ``i`` decodes exactly
NeMo's chunk ``i``: the service pads a segment's last chunk with zero audio, NeMo's buffer runs
a shorter one, and the two are only comparable on whole chunks. Differences come from the mel
front end (numpy against torch, under 2e-4 in the log domain) and float summation order.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest
from tritonclient.grpc import aio as grpc_aio

from frontend.triton.server import EmbeddedTriton
from scripts.build_model_repository import build_repository
from tests.parity.conftest import REFERENCE, ExportedModel, nemo_run, wait_ok
from tests.triton.helpers import Response, live_sequences, load_wav, plan, stream

pytestmark = [pytest.mark.nemo, pytest.mark.asyncio(loop_scope="session")]
log = logging.getLogger(__name__)

TOLERANCE = 1e-4
STREAMS = 8
_ids = itertools.count(1)


@dataclass(frozen=True)
class Case:
    """A model served through one of its heads."""

    model: str  # key of the ``exported`` fixture
    head: str

    def __str__(self) -> str:
        return f"{self.model}-{self.head}"


CASES = [Case("ctc", "ctc"), Case("hybrid", "ctc"), Case("hybrid", "rnnt")]
PROFILES = ["la3", "la1"]


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


def whole_chunks(audio: np.ndarray, chunk_samples: int) -> np.ndarray:
    return np.clip(audio[: len(audio) // chunk_samples * chunk_samples], -1.0, 1.0).astype(np.float32)


@pytest.fixture(scope="module")
def audio(exported: dict[str, ExportedModel]) -> dict[str, list[list[np.ndarray]]]:
    """Per profile, the eight streams, every segment cut to whole chunks (both models share
    the geometry)."""
    facts = exported["ctc"].manifest["profiles"]
    return {
        p: [[whole_chunks(seg, facts[p]["chunk_samples"]) for seg in stream] for stream in signals()] for p in PROFILES
    }


@pytest.fixture(scope="module")
def references(
    exported: dict[str, ExportedModel],
    audio: dict[str, list[list[np.ndarray]]],
    tmp_path_factory: pytest.TempPathFactory,
) -> dict[str, dict[str, np.ndarray]]:
    """NeMo's results per model: ``<head>/<profile>/<stream>/{rows,tokens,token_frames}``."""
    tmp = tmp_path_factory.mktemp("nemo_reference")
    inputs = tmp / "audio.npz"
    segments = {
        f"{p}/{i}/{j}": seg
        for p, streams in audio.items()
        for i, stream_ in enumerate(streams)
        for j, seg in enumerate(stream_)
    }
    np.savez(inputs, **segments)
    procs = {name: nemo_run(REFERENCE, "stream", m.nemo, inputs, tmp / f"{name}.npz") for name, m in exported.items()}
    wait_ok(*procs.values())
    out = {}
    for name in procs:
        with np.load(tmp / f"{name}.npz") as z:
            out[name] = {k: z[k] for k in z.files}
    return out


@dataclass
class Served:
    server: EmbeddedTriton
    client: grpc_aio.InferenceServerClient


@pytest.fixture(scope="module")
async def served(
    exported: dict[str, ExportedModel], tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[dict[str, Served]]:
    """One server per head choice: ``auto`` serves the CTC model and the hybrid through RNNT,
    ``ctc`` the hybrid through its CTC head."""
    out: dict[str, Served] = {}
    try:
        for head, models in (("auto", ["ctc", "hybrid"]), ("ctc", ["hybrid"])):
            repo = tmp_path_factory.mktemp(f"repo_{head}") / "repo"
            names = build_repository(
                "embedded",
                [exported[m].folder for m in models],
                repo,
                head=head,
                max_batch_size=STREAMS,
                preferred_batch_sizes=(STREAMS,),
            )
            server = EmbeddedTriton(repo, models=names)
            await server.start(timeout=300)
            out[head] = Served(server, grpc_aio.InferenceServerClient(server.grpc_url))
        yield out
    finally:
        for s in out.values():
            await s.client.close()
            await s.server.stop()


def served_for(case: Case, served: dict[str, Served]) -> Served:
    return served["ctc" if case.model == "hybrid" and case.head == "ctc" else "auto"]


def ensemble(case: Case, exported: dict[str, ExportedModel], profile: str) -> str:
    return f"asr_{exported[case.model].manifest['model']}_{profile}"


async def run_stream(
    client: grpc_aio.InferenceServerClient, model: str, facts: dict, segments: list[np.ndarray]
) -> list[Response]:
    """The frontend's request plan, FLUSH at the end of the first of two segments."""
    flush = len(segments[0]) if len(segments) > 1 else None
    steps = plan(np.concatenate(segments), facts, flush_after=flush)
    return await stream(client, model, next(_ids), facts["first_chunk_samples"], steps, diagnostics=True)


def compare(got: list[Response], ref: dict[str, np.ndarray], case: Case, facts: dict, where: str) -> float:
    """Assert NeMo's tokens and frames; returns the largest per-chunk difference of the rows."""
    frames = facts["encoder_frames"]
    assert len(got) == len(ref["rows"]) // frames, where
    assert all(r.num_frames == frames and r.encoder_out is not None for r in got), where
    rows = np.concatenate([r.encoder_out for r in got])  # type: ignore[misc]
    assert rows.shape == ref["rows"].shape, where
    tokens = [t for r in got for t in r.tokens]
    token_frames = [i * frames + f for i, r in enumerate(got) for f in r.token_frames]
    assert tokens == ref["tokens"].tolist(), where
    assert token_frames == ref["token_frames"].tolist(), where
    confidence = np.array([c for r in got for c in r.token_conf])
    assert np.all((confidence > 0) & (confidence <= 1)), where
    if case.head == "ctc":
        # A CTC token's confidence is the posterior of its frame.
        posterior = np.exp(ref["rows"][ref["token_frames"], ref["tokens"]])
        np.testing.assert_allclose(confidence, posterior, rtol=0, atol=TOLERANCE, err_msg=where)
    return float(np.abs(rows - ref["rows"]).max())


def reference(references: dict[str, dict[str, np.ndarray]], case: Case, profile: str, i: int) -> dict[str, np.ndarray]:
    prefix = f"{case.head}/{profile}/{i}/"
    return {k[len(prefix) :]: v for k, v in references[case.model].items() if k.startswith(prefix)}


@pytest.mark.parametrize("profile", PROFILES)
@pytest.mark.parametrize("case", CASES, ids=str)
async def test_one_stream_at_a_time_equals_nemo(
    case: Case,
    profile: str,
    exported: dict[str, ExportedModel],
    audio: dict[str, list[list[np.ndarray]]],
    references: dict[str, dict[str, np.ndarray]],
    served: dict[str, Served],
) -> None:
    facts = exported[case.model].manifest["profiles"][profile]
    client = served_for(case, served).client
    model = ensemble(case, exported, profile)
    worst = 0.0
    for i, signal in enumerate(audio[profile]):
        got = await run_stream(client, model, facts, signal)
        worst = max(worst, compare(got, reference(references, case, profile, i), case, facts, f"{case} stream {i}"))
    log.info("%s %s batch 1: max abs diff %.3g", case, profile, worst)
    assert worst <= TOLERANCE


@pytest.mark.parametrize("profile", PROFILES)
@pytest.mark.parametrize("case", CASES, ids=str)
async def test_eight_concurrent_streams_equal_nemo(
    case: Case,
    profile: str,
    exported: dict[str, ExportedModel],
    audio: dict[str, list[list[np.ndarray]]],
    references: dict[str, dict[str, np.ndarray]],
    served: dict[str, Served],
) -> None:
    facts = exported[case.model].manifest["profiles"][profile]
    target = served_for(case, served)
    model = ensemble(case, exported, profile)
    encoder = f"{exported[case.model].manifest['model']}_{profile}_encoder"
    before = await execution_stats(target.client, encoder)
    # One client (one gRPC channel) per stream, as separate frontend sessions would have.
    clients = [grpc_aio.InferenceServerClient(target.server.grpc_url) for _ in audio[profile]]
    try:
        results = await asyncio.gather(
            *(run_stream(c, model, facts, a) for c, a in zip(clients, audio[profile], strict=True))
        )
    finally:
        await asyncio.gather(*(c.close() for c in clients))
    after = await execution_stats(target.client, encoder)
    worst = max(
        compare(got, reference(references, case, profile, i), case, facts, f"{case} stream {i} of {STREAMS}")
        for i, got in enumerate(results)
    )
    inferences, executions = after[0] - before[0], after[1] - before[1]
    log.info("%s %s batch %d: max abs diff %.3g (%d requests in %d encoder runs)",
             case, profile, STREAMS, worst, inferences, executions)  # fmt: skip
    assert worst <= TOLERANCE
    # The sequence batcher did put several streams into one encoder run.
    assert executions < inferences, (inferences, executions)
    # Every stream ended: no model keeps a state for any of them.
    prefix = f"{exported[case.model].manifest['model']}_{profile}_"
    gauges = {k: v for k, v in live_sequences(target.server).items() if k.startswith(prefix)}
    assert len(gauges) == 3 and not any(gauges.values()), gauges


async def execution_stats(client: grpc_aio.InferenceServerClient, model: str) -> tuple[int, int]:
    stats: dict[str, Any] = await client.get_inference_statistics(model, as_json=True)
    s = stats["model_stats"][0]
    return int(s.get("inference_count", 0)), int(s.get("execution_count", 0))
