"""Run an implicit-state encoder (``scripts/state_encoder.py``) on onnxruntime the way Triton
runs it, next to the exported graph run chunk by chunk (what the embedded encoder does).

Triton hands each request's state outputs to the sequence's next request; ``Caches`` plays
that part. Requests come from a random but legal plan through the features model's chunker.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort

from tests.triton.helpers import FeatureStream, MelConfig, chunk_geometry, load_wav

# Batched runs may differ from batch 1 in the last float bits (onnxruntime picks other kernels).
TOLERANCE = 1e-5
# float32 noise grows with the values: a trained model's log-probs reach -40.
RTOL = 1e-6


@dataclass
class Caches:
    """One sequence's encoder state, as Triton keeps it (batch dimension 1)."""

    channel: np.ndarray
    time: np.ndarray
    length: np.ndarray

    @classmethod
    def zeros(cls, facts: dict[str, Any]) -> Caches:
        return cls(
            np.zeros([1, *facts["cache_last_channel"]], np.float32),
            np.zeros([1, *facts["cache_last_time"]], np.float32),
            np.zeros([1, 1], np.int64),
        )


def session(path: Path) -> ort.InferenceSession:
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])


def request_features(model_dir: Path, profile: str, seed: int) -> list[np.ndarray]:
    """Features of a random but legal request plan (any AUDIO_LEN in 0..first_chunk_samples,
    some FLUSHes, END on the last), one [k, n_mels, window] array per request."""
    manifest = json.loads((model_dir / "manifest.json").read_text())
    facts = manifest["profiles"][profile]
    rng = np.random.default_rng(seed)
    audio = np.roll(load_wav("speaker_a.wav"), seed * 997)[:40_000]
    geometry = chunk_geometry(manifest, profile)
    stream = FeatureStream(MelConfig.from_npz(model_dir / "features.npz"), geometry)
    out, pos = [], 0
    while pos < len(audio):
        n = 0 if rng.random() < 0.15 else int(rng.integers(1, facts["first_chunk_samples"] + 1))
        flush = rng.random() < 0.25
        out.append(stream.process(audio[pos : pos + n], flush or pos + n >= len(audio)).features)
        pos += n
    return out


def run_wrapped(
    wrapped: ort.InferenceSession, features: list[np.ndarray], caches: list[Caches]
) -> tuple[np.ndarray, np.ndarray]:
    """One run over a batch (one request per sequence); updates ``caches``, returns
    (ENCODED [b, rows, width], ENC_FRAMES [b, 1])."""
    shape = wrapped.get_inputs()[0].shape  # ["batch", max_chunks, n_mels, window]
    feats = np.zeros((len(features), *shape[1:]), np.float32)
    for i, f in enumerate(features):
        feats[i, : len(f)] = f
    names = ["ENCODED", "ENC_FRAMES", "cache_last_channel_next", "cache_last_time_next", "cache_last_chan_len_next"]
    encoded, frames, channel, time, length = wrapped.run(
        names,
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


def run_original(original: ort.InferenceSession, features: np.ndarray, caches: Caches) -> np.ndarray:
    """The exported graph chunk by chunk; updates ``caches``, returns one row per frame."""
    rows = []
    for chunk in features:
        head, _, caches.channel, caches.time, length = original.run(
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
        # A head-less (RNNT) encoder returns [1, d_model, frames].
        rows.append(head[0] if original.get_outputs()[0].name == "logprobs" else head[0].T)
    return np.concatenate(rows)


def assert_plans_equal_the_export(
    wrapped: ort.InferenceSession, original: ort.InferenceSession, model_dir: Path, profile: str, facts: dict
) -> Counter[int]:
    """Three random request plans through both; returns how often each chunk count came."""
    frames = facts["encoder_frames"]
    kinds: Counter[int] = Counter()
    for seed in range(3):
        mine, theirs = Caches.zeros(facts), Caches.zeros(facts)
        for features in request_features(model_dir, profile, seed):
            k = len(features)
            kinds[k] += 1
            before = (mine.channel, mine.time, mine.length)
            encoded, enc_frames = run_wrapped(wrapped, [features], [mine])
            assert enc_frames.tolist() == [[k * frames]]
            np.testing.assert_array_equal(encoded[0, k * frames :], 0.0)
            if k == 0:
                # Nothing to encode: the state is handed back untouched.
                for got, want in zip((mine.channel, mine.time, mine.length), before, strict=True):
                    np.testing.assert_array_equal(got, want)
                continue
            want = run_original(original, features, theirs)
            np.testing.assert_allclose(encoded[0, : k * frames], want, atol=TOLERANCE, rtol=RTOL)
            np.testing.assert_allclose(mine.channel, theirs.channel, atol=TOLERANCE, rtol=RTOL)
            np.testing.assert_array_equal(mine.length, theirs.length)
    return kinds
