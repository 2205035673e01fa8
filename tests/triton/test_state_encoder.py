"""The implicit-state encoder of the ``onnxruntime`` and ``tensorrt`` targets
(``scripts/state_encoder.py``), run with onnxruntime the way Triton runs it: the caches go
from one request's outputs to the next request's inputs, whatever the request brings (no
chunk, one, or two when a FLUSH completes one and pads another), and several sequences share
one run. It must give what the exported graph gives chunk by chunk (the embedded target's
encoder), and leave the caches of a request without a chunk exactly as they were.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest

from scripts.build_model_repository import MAX_CHUNKS, build_repository
from tests.triton.helpers import MODEL_DIR, ChunkGeometry, FeatureStream, MelConfig, load_wav, model_manifest

PROFILE = "la1"
# Batched runs may differ from batch 1 in the last float bits (onnxruntime picks other kernels).
TOLERANCE = 1e-5


@dataclass
class Caches:
    """One sequence's encoder state, as Triton keeps it (batch dimension 1)."""

    channel: np.ndarray
    time: np.ndarray
    length: np.ndarray

    @classmethod
    def zeros(cls, facts: dict) -> Caches:
        return cls(
            np.zeros([1, *facts["cache_last_channel"]], np.float32),
            np.zeros([1, *facts["cache_last_time"]], np.float32),
            np.zeros([1, 1], np.int64),
        )


@pytest.fixture(scope="module")
def facts() -> dict:
    return model_manifest()["profiles"][PROFILE]


@pytest.fixture(scope="module")
def wrapped(tmp_path_factory: pytest.TempPathFactory) -> ort.InferenceSession:
    repo = tmp_path_factory.mktemp("state") / "repo"
    build_repository("onnxruntime", [MODEL_DIR], repo, profiles=[PROFILE])
    return _session(repo / f"embedded_{PROFILE}_encoder" / "1" / "model.onnx")


@pytest.fixture(scope="module")
def original(facts: dict) -> ort.InferenceSession:
    return _session(MODEL_DIR / facts["onnx"]["ctc"])


def _session(path: Path) -> ort.InferenceSession:
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])


def request_features(seed: int, facts: dict) -> list[np.ndarray]:
    """Features of a random but legal request plan (any AUDIO_LEN in 0..first_chunk_samples,
    some FLUSHes, END on the last), one [k, n_mels, window] array per request."""
    manifest = model_manifest()
    rng = np.random.default_rng(seed)
    audio = np.roll(load_wav("speaker_a.wav"), seed * 997)[:40_000]
    geometry = ChunkGeometry(facts["chunk_frames"], facts["pre_encode_cache_size"], manifest["subsampling_factor"])
    stream = FeatureStream(MelConfig.from_npz(MODEL_DIR / "features.npz"), geometry)
    out, pos = [], 0
    while pos < len(audio):
        n = 0 if rng.random() < 0.15 else int(rng.integers(1, facts["first_chunk_samples"] + 1))
        flush = rng.random() < 0.25
        out.append(stream.process(audio[pos : pos + n], flush or pos + n >= len(audio)).features)
        pos += n
    return out


def run_wrapped(
    session: ort.InferenceSession, features: list[np.ndarray], caches: list[Caches], facts: dict
) -> tuple[np.ndarray, np.ndarray]:
    """One run over a batch (one request per sequence); updates ``caches``, returns
    (ENCODED [b, rows, width], ENC_FRAMES [b, 1])."""
    b = len(features)
    feats = np.zeros((b, MAX_CHUNKS, 80, facts["pre_encode_cache_size"] + facts["chunk_frames"]), np.float32)
    for i, f in enumerate(features):
        feats[i, : len(f)] = f
    encoded, frames, _, _, channel, time, length = session.run(
        None,
        {
            "FEATURES": feats,
            "NUM_CHUNKS": np.array([[len(f)] for f in features], np.int32),
            "cache_last_channel": np.concatenate([c.channel for c in caches]),
            "cache_last_time": np.concatenate([c.time for c in caches]),
            "cache_last_chan_len": np.concatenate([c.length for c in caches]),
        },
    )
    for i, c in enumerate(caches):
        c.channel, c.time, c.length = channel[i : i + 1], time[i : i + 1], length[i : i + 1]
    return encoded, frames


def run_original(session: ort.InferenceSession, features: np.ndarray, caches: Caches) -> np.ndarray:
    """The exported graph chunk by chunk (what the embedded encoder does); updates ``caches``."""
    rows = []
    for chunk in features:
        lp, _, caches.channel, caches.time, length = session.run(
            None,
            {
                "audio_signal": chunk[None],
                "length": np.array([chunk.shape[1]], np.int64),
                "cache_last_channel": caches.channel,
                "cache_last_time": caches.time,
                "cache_last_channel_len": caches.length[:, 0],
            },
        )
        caches.length = length[:, None]
        rows.append(lp[0])
    return np.concatenate(rows) if rows else np.zeros((0, 0), np.float32)


def test_every_request_plan_equals_the_chunk_by_chunk_encoder(
    wrapped: ort.InferenceSession, original: ort.InferenceSession, facts: dict
) -> None:
    frames = facts["encoder_frames"]
    kinds: Counter[int] = Counter()
    for seed in range(3):
        mine, theirs = Caches.zeros(facts), Caches.zeros(facts)
        for features in request_features(seed, facts):
            k = len(features)
            kinds[k] += 1
            before = (mine.channel, mine.time, mine.length)
            encoded, enc_frames = run_wrapped(wrapped, [features], [mine], facts)
            assert enc_frames.tolist() == [[k * frames]]
            np.testing.assert_array_equal(encoded[0, k * frames :], 0.0)
            if k == 0:
                # Nothing to encode: the state is handed back untouched.
                for got, want in zip((mine.channel, mine.time, mine.length), before, strict=True):
                    np.testing.assert_array_equal(got, want)
                continue
            want = run_original(original, features, theirs)
            np.testing.assert_allclose(encoded[0, : k * frames], want, atol=TOLERANCE, rtol=0)
            np.testing.assert_allclose(mine.channel, theirs.channel, atol=TOLERANCE, rtol=0)
            np.testing.assert_array_equal(mine.length, theirs.length)
    # The plans exercised keep-alives, steady requests and two-chunk flushes.
    assert {0, 1, 2} <= set(kinds), kinds


def test_sequences_batched_together_stay_apart(
    wrapped: ort.InferenceSession, original: ort.InferenceSession, facts: dict
) -> None:
    plans = [request_features(seed, facts) for seed in range(10, 14)]
    rounds = min(len(p) for p in plans)
    together = [Caches.zeros(facts) for _ in plans]
    alone = [Caches.zeros(facts) for _ in plans]
    mixed = 0
    for r in range(rounds):
        batch = [p[r] for p in plans]
        mixed += len({len(f) for f in batch}) > 1
        encoded, _ = run_wrapped(wrapped, batch, together, facts)
        for i, features in enumerate(batch):
            if len(features):
                want = run_original(original, features, alone[i])
                np.testing.assert_allclose(encoded[i, : len(want)], want, atol=TOLERANCE, rtol=0)
    for t, a in zip(together, alone, strict=True):
        np.testing.assert_allclose(t.channel, a.channel, atol=TOLERANCE, rtol=0)
        np.testing.assert_array_equal(t.length, a.length)
    assert mixed > rounds // 2  # most batches mixed items with different chunk counts
