"""Triton equals NeMo: the same audio streamed through the served ensemble (the real
``tritonserver``, embedded target) and through NeMo's own cache-aware streaming
(``nemo_reference.py stream``: ``CacheAwareStreamingAudioBuffer`` with
``pad_and_drop_preencoded``, ``conformer_stream_step``), for

* a CTC model, and a hybrid RNNT+CTC model served through its CTC head (``head="ctc"``):
  per-chunk log-probs, greedy tokens and their frames;
* the hybrid served through its RNNT head (the builder's default for it), and a pure RNNT
  model: per-chunk encoder output, greedy RNNT tokens and their frames;

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

import logging
from collections.abc import AsyncIterator

import numpy as np
import pytest

from tests.parity.conftest import ExportedModel
from tests.parity.serving import (
    STREAMS,
    TOLERANCE,
    Case,
    Served,
    assert_same_tokens,
    live_states,
    nemo_results,
    run_concurrently,
    run_stream,
    segment_npz,
    serve,
    signals,
)
from tests.triton.helpers import Response

pytestmark = [pytest.mark.nemo, pytest.mark.asyncio(loop_scope="session")]
log = logging.getLogger(__name__)


CASES = [Case("ctc", "ctc"), Case("hybrid", "ctc"), Case("hybrid", "rnnt"), Case("rnnt", "rnnt")]
PROFILES = ["la3", "la1"]


def whole_chunks(audio: np.ndarray, facts: dict) -> np.ndarray:
    """Cut to whole chunks of features: a segment's lead fill frames and its real frames."""
    lead = facts["lead_frames"] * facts["chunk_samples"] // facts["chunk_frames"]
    n = (len(audio) + lead) // facts["chunk_samples"] * facts["chunk_samples"] - lead
    return np.clip(audio[:n], -1.0, 1.0).astype(np.float32)


@pytest.fixture(scope="module")
def audio(exported: dict[str, ExportedModel]) -> dict[str, list[list[np.ndarray]]]:
    """Per profile, the eight streams, every segment cut to whole chunks (both models share
    the geometry)."""
    facts = exported["ctc"].manifest["profiles"]
    return {
        p: [[whole_chunks(seg, facts[p]) for seg in stream] for stream in signals()] for p in PROFILES
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
    segment_npz(audio, inputs)
    return nemo_results("stream", exported, inputs, tmp)


@pytest.fixture(scope="module")
async def served(
    exported: dict[str, ExportedModel], tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[dict[str, Served]]:
    """One server per head choice: ``auto`` serves the CTC model, the hybrid through RNNT and
    the RNNT model, ``ctc`` the hybrid through its CTC head."""
    out: dict[str, Served] = {}
    try:
        for head, models in (("auto", ["ctc", "hybrid", "rnnt"]), ("ctc", ["hybrid"])):
            repo = tmp_path_factory.mktemp(f"repo_{head}") / "repo"
            out[head] = await serve([exported[m].folder for m in models], repo, head)
        yield out
    finally:
        for s in out.values():
            await s.client.close()
            await s.server.stop()


def served_for(case: Case, served: dict[str, Served]) -> Served:
    return served["ctc" if case.model == "hybrid" and case.head == "ctc" else "auto"]


def ensemble(case: Case, exported: dict[str, ExportedModel], profile: str) -> str:
    return f"asr_{exported[case.model].manifest['model']}_{profile}"


def compare(got: list[Response], ref: dict[str, np.ndarray], case: Case, facts: dict, where: str) -> float:
    """Assert NeMo's tokens and frames; returns the largest per-chunk difference of the rows."""
    frames = facts["encoder_frames"]
    assert len(got) == len(ref["rows"]) // frames, where
    assert all(r.num_frames == frames and r.encoder_out is not None for r in got), where
    rows = np.concatenate([r.encoder_out for r in got])  # type: ignore[misc]
    assert rows.shape == ref["rows"].shape, where
    token_frames = [i * frames + f for i, r in enumerate(got) for f in r.token_frames]
    assert_same_tokens(got, token_frames, ref, ref["token_frames"], case.head, where)
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
    name = exported[case.model].manifest["model"]
    run = await run_concurrently(target, name, profile, facts, audio[profile])
    worst = max(
        compare(got, reference(references, case, profile, i), case, facts, f"{case} stream {i} of {STREAMS}")
        for i, got in enumerate(run.results)
    )
    log.info("%s %s batch %d: max abs diff %.3g (%d requests in %d encoder runs)",
             case, profile, STREAMS, worst, run.inferences, run.executions)  # fmt: skip
    assert worst <= TOLERANCE
    # The sequence batcher did put several streams into one encoder run.
    assert run.executions < run.inferences, run
    # Every stream ended: no model keeps a state for any of them.
    gauges = live_states(target, name, profile)
    assert len(gauges) == 3 and not any(gauges.values()), gauges
