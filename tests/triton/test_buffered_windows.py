"""The features model's buffered windows, without Triton: left context + chunk + right context
of the offline features, digital silence before the stream, zero audio after a FLUSH, every
window normalised on its own, and never more windows per request than the builder's
``max_chunks`` makes room for."""

from __future__ import annotations

import math

import numpy as np
import pytest

from scripts.build_model_repository import Window
from tests.triton.helpers import MODEL_DIR, ChunkGeometry, FeatureStream, MelConfig, load_wav

# The features model's modules, on the path that tests.triton.helpers adds.
from chunker import normalize_windows  # noqa: E402  isort: skip
from streaming_mel import offline_log_mel  # noqa: E402  isort: skip

HOP = 160
# NeMo's default buffered window (1.6 s chunk, 1.2 s each side) and an asymmetric one.
GEOMETRIES = {"default": (160, 120, 120), "asymmetric": (80, 96, 48)}


@pytest.fixture(scope="module")
def mel_cfg() -> MelConfig:
    return MelConfig.from_npz(MODEL_DIR / "features.npz")


def geometry(name: str, normalize: str = "none") -> ChunkGeometry:
    chunk, left, right = GEOMETRIES[name]
    return ChunkGeometry(chunk, left, 8, fill=-16.6, right_frames=right, normalize=normalize)


def first_chunk_samples(g: ChunkGeometry) -> int:
    return g.ready_frames * HOP - HOP + 200


def speech() -> np.ndarray:
    return np.concatenate([load_wav("speaker_a.wav"), load_wav("speaker_b.wav")])


@pytest.mark.parametrize("name", GEOMETRIES)
def test_windows_are_the_offline_features_around_each_chunk(mel_cfg: MelConfig, name: str) -> None:
    g = geometry(name)
    audio = speech()
    fs = FeatureStream(mel_cfg, g)
    first = first_chunk_samples(g)
    step = g.chunk_frames * HOP
    pieces = [audio[:first]] + [audio[i : i + step] for i in range(first, len(audio), step)]
    out = [fs.process(p, flush=i == len(pieces) - 1) for i, p in enumerate(pieces)]
    # One window per request (the first brings the right context along), the rest at the end.
    assert [len(c.features) for c in out[:-1]] == [1] * (len(out) - 1)
    windows = np.concatenate([c.features for c in out])
    real = len(audio) // HOP
    assert len(windows) == math.ceil(real / g.chunk_frames)
    # The padded stream: silence before, the offline features, then their zero-audio tail.
    padded = np.concatenate(
        [np.full((mel_cfg.n_mels, g.left_frames), g.fill, np.float32), offline_log_mel(mel_cfg, audio)], axis=1
    )
    for k, w in enumerate(windows):
        want = padded[:, k * g.chunk_frames : k * g.chunk_frames + g.window]
        np.testing.assert_allclose(w[:, : want.shape[1]], want, atol=2e-6, err_msg=f"window {k}")
    assert [c.start_s for c in out[:-1]] == pytest.approx([k * step / 16000 for k in range(len(out) - 1)])
    assert sum(c.valid_frames for c in out) == math.ceil(real / g.subsampling)


def test_per_feature_windows_are_normalised_on_their_own(mel_cfg: MelConfig) -> None:
    audio = speech()
    plain = FeatureStream(mel_cfg, geometry("asymmetric")).process(audio, flush=True).features
    normalised = FeatureStream(mel_cfg, geometry("asymmetric", "per_feature")).process(audio, flush=True).features
    # NeMo's FeatureFrameBufferer: (x - mean) / (std + 1e-5) per band over the window, in float64 here.
    x = plain.astype(np.float64)
    want = (x - x.mean(axis=2, keepdims=True)) / (x.std(axis=2, keepdims=True) + 1e-5)
    np.testing.assert_allclose(normalised, want, atol=1e-5)
    copy = plain.copy()
    normalize_windows(copy)
    np.testing.assert_array_equal(copy, normalised)


def test_a_flush_pads_with_right_context_and_the_left_context_carries_on(mel_cfg: MelConfig) -> None:
    g = geometry("asymmetric")
    fs = FeatureStream(mel_cfg, g)
    a = fs.process(speech()[: first_chunk_samples(g)], flush=False)
    n = 5000
    b = fs.process(load_wav("speaker_a.wav")[:n], flush=True)
    real = (first_chunk_samples(g) + n) // HOP - g.chunk_frames  # frames after the first chunk
    assert len(a.features) == 1 and len(b.features) == math.ceil(real / g.chunk_frames)
    assert b.valid_frames == math.ceil(real / g.subsampling)
    c = fs.process(load_wav("speaker_b.wav")[: first_chunk_samples(g)], flush=False)
    assert c.start_s == pytest.approx((first_chunk_samples(g) + n) / 16000)
    # The new segment's left context is the end of the last flushed chunk (its padding included).
    chunk_end = g.window - g.right_frames
    carried = b.features[-1, :, chunk_end - g.left_frames : chunk_end]
    np.testing.assert_array_equal(c.features[0, :, : g.left_frames], carried)
    # The frames c's window read as right context are still to be decoded: a FLUSH makes them a
    # chunk of their own; a second FLUSH has nothing left.
    d = fs.process(np.zeros(0, np.float32), flush=True)
    assert len(d.features) == 1 and d.valid_frames == math.ceil(g.right_frames / g.subsampling)
    assert fs.process(np.zeros(0, np.float32), flush=True).features.shape[0] == 0


@pytest.mark.parametrize("name", GEOMETRIES)
@pytest.mark.parametrize("seed", range(4))
def test_no_request_completes_more_windows_than_the_builder_allows(mel_cfg: MelConfig, name: str, seed: int) -> None:
    g = geometry(name)
    limit = Window(g.chunk_frames, g.left_frames, g.right_frames, g.fill, "none", lookahead=2).max_chunks
    rng = np.random.default_rng(seed)
    audio = np.roll(speech(), seed * 997)
    fs = FeatureStream(mel_cfg, g)
    pos, most = 0, 0
    while pos < len(audio):
        # Any legal AUDIO_LEN, mostly the largest (the worst case), FLUSH now and then.
        n = first_chunk_samples(g) if rng.random() < 0.6 else int(rng.integers(0, first_chunk_samples(g) + 1))
        most = max(most, len(fs.process(audio[pos : pos + n], flush=rng.random() < 0.2).features))
        pos += n
    assert 1 <= most <= limit == 4


def test_cache_aware_profiles_keep_three_chunks() -> None:
    for chunk in (8, 16, 56, 112):
        assert Window(chunk, 9, 0, 0.0, "none", lookahead=2).max_chunks == 3
