"""The Triton models' pure parts, without Triton: streaming mel, chunker, sequence store."""

from __future__ import annotations

import math
import sys

import numpy as np
import pytest

from tests.triton.helpers import MODEL_DIR, TEMPLATES, ChunkGeometry, FeatureStream, MelConfig, chunk_geometry, model_manifest

# helpers put features/ on sys.path
from streaming_mel import StreamingMel, offline_log_mel  # noqa: E402  isort: skip

sys.path.insert(0, str(TEMPLATES / "common"))
from sequence_state import Control, SequenceStore, UnknownSequence  # noqa: E402


@pytest.fixture(scope="module")
def mel_cfg() -> MelConfig:
    return MelConfig.from_npz(MODEL_DIR / "features.npz")


def _geometry(profile: str) -> ChunkGeometry:
    return chunk_geometry(model_manifest(), profile)


def _audio(n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(n) / 16000
    return (0.2 * np.sin(2 * np.pi * 300 * t) + 0.05 * rng.standard_normal(n)).astype(np.float32)


@pytest.mark.parametrize("piece", [1, 159, 160, 161, 2600, 17960])
def test_streaming_mel_is_cut_independent(mel_cfg: MelConfig, piece: int) -> None:
    audio = _audio(12_345)
    want = offline_log_mel(mel_cfg, audio)
    assert want.shape == (mel_cfg.n_mels, len(audio) // mel_cfg.hop_length)
    mel = StreamingMel(mel_cfg)
    got = [mel.push(audio[i : i + piece]) for i in range(0, len(audio), piece)]
    got.append(mel.finish())
    np.testing.assert_allclose(np.concatenate(got, axis=1), want, atol=2e-6)


def test_frames_come_out_as_soon_as_their_window_is_complete(mel_cfg: MelConfig) -> None:
    first = 112 * 160 - 160 + 200  # first_chunk_samples of la13
    mel = StreamingMel(mel_cfg)
    assert mel.push(np.zeros(first - 1, np.float32)).shape[1] == 111
    assert mel.push(np.zeros(1, np.float32)).shape[1] == 1
    assert mel.push(np.zeros(17920, np.float32)).shape[1] == 112


@pytest.mark.parametrize("profile", ["la13", "la6", "la1"])
def test_request_plan_gives_one_chunk_per_request(mel_cfg: MelConfig, profile: str) -> None:
    facts = model_manifest()["profiles"][profile]
    fs = FeatureStream(mel_cfg, _geometry(profile))
    audio = _audio(facts["first_chunk_samples"] + 5 * facts["chunk_samples"])
    out = [fs.process(audio[: facts["first_chunk_samples"]], flush=False)]
    for i in range(5):
        start = facts["first_chunk_samples"] + i * facts["chunk_samples"]
        out.append(fs.process(audio[start : start + facts["chunk_samples"]], flush=False))
    assert [c.features.shape[0] for c in out] == [1] * 6
    shift = facts["chunk_frames"] * 160 / 16000
    assert [c.start_s for c in out] == pytest.approx([i * shift for i in range(6)])


def test_chunks_are_the_offline_features_with_context(mel_cfg: MelConfig) -> None:
    g = _geometry("la6")
    audio = _audio(40_000, seed=3)
    offline = offline_log_mel(mel_cfg, audio)
    fs = FeatureStream(mel_cfg, g)
    chunks = np.concatenate(
        [fs.process(audio[i : i + 7000], flush=i + 7000 >= len(audio)).features for i in range(0, len(audio), 7000)]
    )
    n_real = offline.shape[1]
    assert g.lead_frames == g.subsampling - 1
    assert chunks.shape[0] == math.ceil((g.lead_frames + n_real) / g.chunk_frames)
    flat = np.concatenate(list(chunks[:, :, g.left_frames :]), axis=1)
    np.testing.assert_allclose(flat[:, g.lead_frames : g.lead_frames + n_real], offline, atol=2e-6)
    # Context: zeros before the first chunk and as its lead, then the previous chunk's last frames.
    assert not chunks[0, :, : g.left_frames + g.lead_frames].any()
    np.testing.assert_array_equal(chunks[1, :, : g.left_frames], chunks[0, :, -g.left_frames :])


def test_flush_pads_counts_real_frames_and_restarts_the_clock(mel_cfg: MelConfig) -> None:
    g = _geometry("la13")
    fs = FeatureStream(mel_cfg, g)
    n = 17960 + 5000
    a = fs.process(_audio(17960), flush=False)
    b = fs.process(_audio(5000, seed=1), flush=True)
    assert a.features.shape[0] == 1 and b.features.shape[0] == 1
    assert b.valid_frames == math.ceil((n // 160 - g.chunk_frames) / g.subsampling)
    assert b.start_s == pytest.approx(g.chunk_frames * 160 / 16000)
    c = fs.process(_audio(17960, seed=2), flush=False)
    assert c.start_s == pytest.approx(n / 16000)  # real audio only, padding excluded
    # The encoder context carries over the flush: it is the padded chunk's tail.
    np.testing.assert_array_equal(c.features[0, :, : g.left_frames], b.features[0, :, -g.left_frames :])
    # 17960 samples make 112 frames, the first chunk takes 105 of them after its lead: the
    # flush decodes the other 7, in a chunk none of whose encoder frames ends on real audio.
    rest = fs.process(np.zeros(0, np.float32), flush=True)
    assert rest.features.shape[0] == 1 and rest.valid_frames == 0
    nothing = fs.process(np.zeros(0, np.float32), flush=True)
    assert nothing.features.shape[0] == 0 and nothing.valid_frames == 0
    assert fs.process(np.zeros(0, np.float32), flush=False).start_s == pytest.approx((n + 17960) / 16000)


def test_sequence_store_life_cycle() -> None:
    now = [0.0]
    logs: list[str] = []
    store: SequenceStore[list[int]] = SequenceStore(list, ttl_s=10, log=logs.append, clock=lambda: now[0])
    with pytest.raises(UnknownSequence):
        store.acquire(Control(corrid=1, start=False, end=False))
    a = store.acquire(Control(corrid=1, start=True, end=False))
    a.append(1)
    assert store.acquire(Control(corrid=1, start=False, end=False)) is a
    b = store.acquire(Control(corrid=1, start=True, end=False))  # repeated START: fresh state
    assert b == [] and b is not a and "reset" in logs[-1]
    store.acquire(Control(corrid=2, start=True, end=False))
    now[0] = 8.0
    store.acquire(Control(corrid=2, start=False, end=False))
    now[0] = 12.0
    assert store.sweep() == [1] and 2 in store and 1 not in store
    store.release(2)
    store.release(2)  # unknown ids are ignored
    assert len(store) == 0


def test_what_a_start_configures_outlives_a_flush() -> None:
    store: SequenceStore[list[str]] = SequenceStore(list, ttl_s=10, log=lambda _: None)
    state = store.acquire(Control(corrid=7, start=True, end=False), lambda: ["keyterm"])
    state.append("decoded word")
    store.renew(7, lambda old: old[:1])  # a FLUSH: decoding starts afresh, the configuration stays
    assert store.acquire(Control(corrid=7, start=False, end=False)) == ["keyterm"]
    store.renew(7)  # without a successor: the factory's plain state
    assert store.acquire(Control(corrid=7, start=False, end=False)) == []
