"""The real ``tritonserver`` (nvidia-pytriton wheel) serving a repository built from
``models/embedded``, driven through ``tritonclient.grpc.aio`` as docs/triton-contract.md says.

Started once for the module; every test uses its own sequence ids.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import math
from collections.abc import AsyncIterator
from typing import Any

import numpy as np
import pytest
from tritonclient.grpc import aio as grpc_aio
from tritonclient.utils import InferenceServerException

from frontend.triton.server import EmbeddedTriton
from scripts.build_model_repository import build_repository
from tests.triton.helpers import (
    CONTRACT_KEYS,
    MODEL_DIR,
    Reference,
    Response,
    Step,
    assert_same,
    live_sequences,
    load_wav,
    model_manifest,
    plan,
    request,
    stream,
)

# Fixtures run on the session loop (pyproject: asyncio_default_fixture_loop_scope); so do tests.
pytestmark = pytest.mark.asyncio(loop_scope="session")

_ids = itertools.count(1000)


def next_id() -> int:
    return next(_ids)


@pytest.fixture(scope="module")
async def triton(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[EmbeddedTriton]:
    repo = tmp_path_factory.mktemp("triton") / "repo"
    # Greedy: ``Reference`` recomputes greedy CTC; test_beam_triton.py covers the beam search.
    names = build_repository("embedded", [MODEL_DIR], repo, max_batch_size=8, preferred_batch_sizes=(4, 8),
                             decoding="greedy")
    server = EmbeddedTriton(repo, models=names)
    await server.start(timeout=180)
    try:
        yield server
    finally:
        await server.stop()


@pytest.fixture(scope="module")
async def client(triton: EmbeddedTriton) -> AsyncIterator[grpc_aio.InferenceServerClient]:
    c = grpc_aio.InferenceServerClient(triton.grpc_url)
    try:
        yield c
    finally:
        await c.close()


@pytest.fixture(scope="module")
def profiles() -> dict[str, Any]:
    return model_manifest()["profiles"]


async def ensemble_manifest(client: grpc_aio.InferenceServerClient, profile: str) -> tuple[dict, dict]:
    config = (await client.get_model_config(f"asr_embedded_{profile}", as_json=True))["config"]
    return config, json.loads(config["parameters"]["manifest"]["string_value"])


async def test_ensembles_carry_the_manifest(client: grpc_aio.InferenceServerClient, profiles: dict) -> None:
    for name, facts in profiles.items():
        config, manifest = await ensemble_manifest(client, name)
        assert CONTRACT_KEYS <= set(manifest)
        assert manifest["profile"] == name and manifest["model"] == "embedded"
        assert manifest["first_chunk_samples"] == facts["first_chunk_samples"]
        audio = next(i for i in config["input"] if i["name"] == "AUDIO")
        assert [int(d) for d in audio["dims"]] == [facts["first_chunk_samples"]]
        assert manifest["lookahead_ms"] == round(facts["att_context_size"][1] * manifest["frame_shift_s"] * 1000)
    defaults = [n for n, f in profiles.items() if f["default"]]
    assert len(defaults) == 1


@pytest.mark.parametrize("profile", ["la13", "la1"])
async def test_stream_follows_the_contract(
    client: grpc_aio.InferenceServerClient, profiles: dict, profile: str
) -> None:
    facts = profiles[profile]
    audio = load_wav("speaker_a.wav")
    first = (await ensemble_manifest(client, profile))[1]["first_request_samples"]
    steps = plan(audio, facts, first=first)
    got = await stream(client, f"asr_embedded_{profile}", next_id(), facts["first_chunk_samples"], steps)
    shift = model_manifest()["frame_shift_s"]
    # Every full request decodes one chunk; the END request flushes the rest.
    for r in got[:-1]:
        assert r.num_frames == facts["encoder_frames"]
    # ...and all the audio it completes is decoded: the last encoder frame so far ends on the
    # mel frame whose window the request's last sample completes, so nothing waits for the
    # next request (a whole first chunk would hold its lead frames' audio, 70 ms, back).
    feats, sub = model_manifest()["features"], model_manifest()["subsampling_factor"]
    decoded = np.cumsum([r.num_frames for r in got])
    sent = np.cumsum([len(s.audio) for s in steps])
    for frames, samples in zip(decoded[:-1], sent[:-1], strict=True):
        assert samples == sub * (frames - 1) * feats["hop_length"] + feats["win_length"] // 2
    for prev, cur in itertools.pairwise(got):
        assert cur.chunk_start == pytest.approx(prev.chunk_start + prev.num_frames * shift, abs=1e-5)
    assert got[0].chunk_start == 0.0
    total_frames = sum(r.num_frames for r in got)
    assert total_frames == math.ceil((len(audio) // 160) / 8)
    last_time = got[-1].chunk_start + (got[-1].num_frames - 1) * shift
    assert last_time < len(audio) / 16000
    for r in got:
        assert all(0 <= f < r.num_frames for f in r.token_frames)
        assert all(0.0 < c <= 1.0 for c in r.token_conf)
    assert_same(got, Reference(profile).run(steps))


async def test_flush_pads_and_keeps_real_time(client: grpc_aio.InferenceServerClient, profiles: dict) -> None:
    facts = profiles["la13"]
    audio = load_wav("pause.wav")
    cut = facts["first_chunk_samples"] + facts["chunk_samples"] // 2 + 123
    steps = plan(audio, facts, flush_after=cut)
    flush_index = next(i for i, s in enumerate(steps) if s.flush)
    got = await stream(client, "asr_embedded_la13", next_id(), facts["first_chunk_samples"], steps)
    flushed = got[flush_index]
    real_frames = math.ceil((cut // 160 - facts["chunk_frames"]) / 8)
    assert flushed.num_frames == real_frames < facts["encoder_frames"]
    # After the flush the clock continues at the real audio, not at the padded chunk's end.
    assert got[flush_index + 1].chunk_start == pytest.approx(cut / 16000, abs=1e-6)
    assert got[flush_index + 1].num_frames == facts["encoder_frames"]
    assert_same(got, Reference("la13").run(steps))


async def test_keepalive_requests_change_nothing(client: grpc_aio.InferenceServerClient, profiles: dict) -> None:
    facts = profiles["la6"]
    audio = load_wav("speaker_b.wav")
    steps = plan(audio, facts)
    empty = Step(np.zeros(0, np.float32))
    with_keepalives = [steps[0], empty, steps[1], empty, empty, *steps[2:]]
    got = await stream(client, "asr_embedded_la6", next_id(), facts["first_chunk_samples"], with_keepalives)
    for i in (1, 3, 4):
        assert got[i].num_frames == 0 and got[i].tokens == []
        assert got[i].chunk_start == got[i + 1].chunk_start
    alone = [r for i, r in enumerate(got) if i not in (1, 3, 4)]
    assert_same(alone, Reference("la6").run(steps))


async def test_end_frees_state_and_the_id_can_be_reused(
    triton: EmbeddedTriton, client: grpc_aio.InferenceServerClient, profiles: dict
) -> None:
    facts = profiles["la13"]
    steps = plan(load_wav("speaker_a.wav"), facts)
    sid = next_id()
    first = await stream(client, "asr_embedded_la13", sid, facts["first_chunk_samples"], steps)
    gauges = live_sequences(triton)
    for role in ("features", "encoder", "decoder"):
        assert gauges[f"embedded_la13_{role}"] == 0.0, gauges
    again = await stream(client, "asr_embedded_la13", sid, facts["first_chunk_samples"], steps)
    assert_same(again, first)


async def test_open_sequence_holds_state_until_end(
    triton: EmbeddedTriton, client: grpc_aio.InferenceServerClient, profiles: dict
) -> None:
    facts = profiles["la1"]
    steps = plan(load_wav("speaker_a.wav"), facts)[:3]
    sid = next_id()
    await stream(client, "asr_embedded_la1", sid, facts["first_chunk_samples"], steps, end=False)
    gauges = live_sequences(triton)
    assert all(gauges[f"embedded_la1_{r}"] >= 1 for r in ("features", "encoder", "decoder")), gauges
    end = await stream(client, "asr_embedded_la1", sid, facts["first_chunk_samples"], [Step(np.zeros(0, np.float32))])
    assert end[0].num_frames >= 0
    # The single request above carried START and END: it opened and closed a fresh state.
    # The earlier sequence (same id) was replaced by that START, so nothing is left over.
    gauges = live_sequences(triton)
    assert all(gauges[f"embedded_la1_{r}"] == 0 for r in ("features", "encoder", "decoder")), gauges


async def test_repeated_start_resets_the_sequence(client: grpc_aio.InferenceServerClient, profiles: dict) -> None:
    facts = profiles["la6"]
    steps = plan(load_wav("speaker_b.wav"), facts)
    sid = next_id()
    await stream(client, "asr_embedded_la6", sid, facts["first_chunk_samples"], steps[:2], end=False)
    got = await stream(client, "asr_embedded_la6", sid, facts["first_chunk_samples"], steps)
    assert_same(got, Reference("la6").run(steps))


async def test_request_without_start_is_refused(client: grpc_aio.InferenceServerClient, profiles: dict) -> None:
    facts = profiles["la13"]
    step = plan(load_wav("speaker_a.wav"), facts)[0]

    async def one() -> AsyncIterator[dict]:
        yield request("asr_embedded_la13", next_id(), facts["first_chunk_samples"], step, False, True, "x")

    async for _result, error in client.stream_infer(one()):
        assert isinstance(error, InferenceServerException)
        break


async def test_bad_audio_len_is_an_error_response(client: grpc_aio.InferenceServerClient, profiles: dict) -> None:
    facts = profiles["la13"]
    width = facts["first_chunk_samples"]
    req = request("asr_embedded_la13", next_id(), width, Step(np.zeros(10, np.float32)), True, True, "bad")
    req["inputs"][1].set_data_from_numpy(np.array([[width + 1]], np.int32))

    async def one() -> AsyncIterator[dict]:
        yield req

    async for _result, error in client.stream_infer(one()):
        assert isinstance(error, InferenceServerException)
        assert "AUDIO_LEN" in str(error)
        break


async def test_concurrent_sequences_do_not_mix(
    triton: EmbeddedTriton, client: grpc_aio.InferenceServerClient, profiles: dict
) -> None:
    facts = profiles["la13"]
    width = facts["first_chunk_samples"]
    base = np.concatenate([load_wav("speaker_a.wav"), load_wav("speaker_b.wav")])
    # Eight different streams: shifted, scaled, two with a flush at different places.
    plans: list[list[Step]] = []
    for i in range(8):
        audio = np.roll(base, i * 3001) * (0.5 + 0.1 * i)
        plans.append(plan(audio, facts, flush_after=width + 5000 * i if i % 3 == 0 else None))
    alone = [await stream(client, "asr_embedded_la13", next_id(), width, p) for p in plans]
    before = await _encoder_stats(client)
    # One client (one gRPC channel) per sequence, as separate frontend sessions would have.
    clients = [grpc_aio.InferenceServerClient(triton.grpc_url) for _ in plans]
    try:
        together = await asyncio.gather(
            *(stream(c, "asr_embedded_la13", next_id(), width, p) for c, p in zip(clients, plans, strict=True))
        )
    finally:
        await asyncio.gather(*(c.close() for c in clients))
    after = await _encoder_stats(client)
    for a, t in zip(alone, together, strict=True):
        _assert_close(t, a)
    # The encoder really batched several sequences per execution.
    inferences = after[0] - before[0]
    executions = after[1] - before[1]
    assert executions < inferences, (inferences, executions)


def _assert_close(got: list[Response], want: list[Response]) -> None:
    """Same as alone. Batched onnxruntime runs can differ from batch 1 in the last float bits,
    so confidences get a tolerance; tokens must match exactly (a flip would need two classes
    tied within float32 rounding, while mixed-up caches change nearly every frame)."""
    assert len(got) == len(want)
    for g, w in zip(got, want, strict=True):
        assert g.num_frames == w.num_frames and g.chunk_start == w.chunk_start
        assert g.token_frames == w.token_frames
        assert g.tokens == w.tokens
        np.testing.assert_allclose(g.token_conf, w.token_conf, rtol=1e-3, atol=1e-5)


async def _encoder_stats(client: grpc_aio.InferenceServerClient) -> tuple[int, int]:
    stats = await client.get_inference_statistics("embedded_la13_encoder", as_json=True)
    s = stats["model_stats"][0]
    return int(s.get("inference_count", 0)), int(s.get("execution_count", 0))
