"""The implicit-state encoder of the ``onnxruntime`` and ``tensorrt`` targets
(``scripts/state_encoder.py``), run with onnxruntime the way Triton runs it: the caches go
from one request's outputs to the next request's inputs, whatever the request brings (no
chunk, one, or two when a FLUSH completes one and pads another), and several sequences share
one run. It must give what the exported graph gives chunk by chunk (the embedded target's
encoder), and leave the caches of a request without a chunk exactly as they were.
"""

from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pytest

from scripts.build_model_repository import build_repository
from tests.triton.helpers import MODEL_DIR, model_manifest
from tests.triton.state_harness import (
    RTOL,
    TOLERANCE,
    Caches,
    assert_plans_equal_the_export,
    request_features,
    run_original,
    run_wrapped,
    session,
)

PROFILE = "la1"


@pytest.fixture(scope="module")
def facts() -> dict:
    return model_manifest()["profiles"][PROFILE]


@pytest.fixture(scope="module")
def wrapped(tmp_path_factory: pytest.TempPathFactory) -> ort.InferenceSession:
    repo = tmp_path_factory.mktemp("state") / "repo"
    build_repository("onnxruntime", [MODEL_DIR], repo, profiles=[PROFILE])
    return session(repo / f"embedded_{PROFILE}_encoder" / "1" / "model.onnx")


@pytest.fixture(scope="module")
def original(facts: dict) -> ort.InferenceSession:
    return session(MODEL_DIR / facts["onnx"]["ctc"])


def test_every_request_plan_equals_the_chunk_by_chunk_encoder(
    wrapped: ort.InferenceSession, original: ort.InferenceSession, facts: dict
) -> None:
    kinds = assert_plans_equal_the_export(wrapped, original, MODEL_DIR, PROFILE, facts)
    # The plans exercised keep-alives, steady requests and two-chunk flushes.
    assert {0, 1, 2} <= set(kinds), kinds


def test_sequences_batched_together_stay_apart(
    wrapped: ort.InferenceSession, original: ort.InferenceSession, facts: dict
) -> None:
    plans = [request_features(MODEL_DIR, PROFILE, seed) for seed in range(10, 14)]
    rounds = min(len(p) for p in plans)
    together = [Caches.zeros(facts) for _ in plans]
    alone = [Caches.zeros(facts) for _ in plans]
    mixed = 0
    for r in range(rounds):
        batch = [p[r] for p in plans]
        mixed += len({len(f) for f in batch}) > 1
        encoded, _ = run_wrapped(wrapped, batch, together)
        for i, features in enumerate(batch):
            if len(features):
                want = run_original(original, features, alone[i])
                np.testing.assert_allclose(encoded[i, : len(want)], want, atol=TOLERANCE, rtol=RTOL)
    for t, a in zip(together, alone, strict=True):
        np.testing.assert_allclose(t.channel, a.channel, atol=TOLERANCE, rtol=RTOL)
        np.testing.assert_array_equal(t.length, a.length)
    assert mixed > rounds // 2  # most batches mixed items with different chunk counts
