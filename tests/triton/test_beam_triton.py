"""The CTC beam search with the shipped word LM, served by the real ``tritonserver``: what
the stream emits request by request is what the same search finds over the whole utterance,
with times inside the audio, and concurrent sequences do not share beams."""

from __future__ import annotations

import asyncio
import itertools
import sys
from collections.abc import AsyncIterator

import numpy as np
import pytest
from tritonclient.grpc import aio as grpc_aio

from frontend.triton.server import EmbeddedTriton
from scripts.build_model_repository import build_repository
from tests.triton.helpers import MODEL_DIR, TEMPLATES, Response, Step, load_wav, model_manifest, plan, stream

sys.path.insert(0, str(TEMPLATES / "ctc_decoder"))
from ctc_beam import BeamConfig, CtcBeamSearch, Pieces  # noqa: E402
from word_lm import WordLM  # noqa: E402

pytestmark = pytest.mark.asyncio(loop_scope="session")
PROFILE = "la6"
_ids = itertools.count(5000)


@pytest.fixture(scope="module")
async def client(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[grpc_aio.InferenceServerClient]:
    assert "lm" in model_manifest(), "the shipped model decodes with its word LM"
    repo = tmp_path_factory.mktemp("triton") / "repo"
    names = build_repository("embedded", [MODEL_DIR], repo, profiles=[PROFILE], max_batch_size=8)
    server = EmbeddedTriton(repo, models=names)
    await server.start(timeout=180)
    c = grpc_aio.InferenceServerClient(server.grpc_url)
    try:
        yield c
    finally:
        await c.close()
        await server.stop()


def served_search() -> tuple[Pieces, WordLM, BeamConfig]:
    manifest = model_manifest()
    lm = manifest["lm"]
    cfg = BeamConfig(beam=lm["beam"], lm_weight=lm["lm_weight"], word_bonus=lm["word_bonus"])
    model = WordLM(MODEL_DIR / lm["file"], lm.get("unk_logprob"))
    return Pieces(manifest["vocabulary"], manifest["blank_id"]), model, cfg


def offline_tokens(responses: list[Response], steps: list[Step]) -> list[int]:
    """The search over each utterance's encoder rows at once (an utterance ends at a FLUSH and
    hands its last words to the next one)."""
    pieces, model, cfg = served_search()
    tokens: list[int] = []
    rows: list[np.ndarray] = []
    context: tuple[str, ...] = ()
    for i, (r, step) in enumerate(zip(responses, steps, strict=True)):
        assert r.encoder_out is not None
        rows.append(r.encoder_out)
        if step.flush or i == len(steps) - 1:
            search = CtcBeamSearch(pieces, model, cfg, context=context)
            tokens += search.advance(np.concatenate(rows)).tokens + search.finish().tokens
            context, rows = search.context, []
    return tokens


def provisional_tails(responses: list[Response], steps: list[Step]) -> list[list[int]]:
    """What each response should hold back: the best hypothesis's tail after its rows."""
    pieces, model, cfg = served_search()
    search = CtcBeamSearch(pieces, model, cfg)
    tails = []
    for i, (r, step) in enumerate(zip(responses, steps, strict=True)):
        search.advance(r.encoder_out)
        final = step.flush or i == len(steps) - 1
        tails.append([] if final else search.partial().tokens)
        if final:
            search.finish()
            search = CtcBeamSearch(pieces, model, cfg, context=search.context)
    return tails


async def test_streamed_beam_equals_the_whole_utterance_search(client: grpc_aio.InferenceServerClient) -> None:
    facts = model_manifest()["profiles"][PROFILE]
    audio = np.concatenate([load_wav("speaker_a.wav"), load_wav("pause.wav"), load_wav("speaker_b.wav")])
    steps = plan(audio, facts, flush_after=len(audio) // 2)
    got = await stream(client, f"asr_embedded_{PROFILE}", next(_ids), facts["first_chunk_samples"], steps,
                       diagnostics=True)
    streamed = [t for r in got for t in r.tokens]
    assert streamed, "the model hears words in the fixtures"
    assert streamed == offline_tokens(got, steps)
    # Interims may show the tail the beam holds back: the served one is the search's own.
    assert [r.partial_tokens for r in got] == provisional_tails(got, steps)
    assert any(r.partial_tokens for r in got)
    # Words reach the client while the stream runs, not only at its flushes.
    assert any(r.tokens for r, s in zip(got, steps, strict=True) if not s.flush and s is not steps[-1])
    shift = model_manifest()["frame_shift_s"]
    times = [r.chunk_start + f * shift for r in got for f in r.token_frames]
    assert times == sorted(times)
    assert -1e-6 <= times[0] and times[-1] < len(audio) / 16000  # float32 clock


async def test_concurrent_sequences_keep_their_own_beams(client: grpc_aio.InferenceServerClient) -> None:
    facts = model_manifest()["profiles"][PROFILE]
    width = facts["first_chunk_samples"]
    base = np.concatenate([load_wav("speaker_a.wav"), load_wav("speaker_b.wav")])
    plans = [plan(np.roll(base, i * 7001) * (0.6 + 0.1 * i), facts) for i in range(6)]
    model = f"asr_embedded_{PROFILE}"
    alone = [await stream(client, model, next(_ids), width, p) for p in plans]
    together = await asyncio.gather(*(stream(client, model, next(_ids), width, p) for p in plans))
    for a, t in zip(alone, together, strict=True):
        assert [r.tokens for r in t] == [r.tokens for r in a]
