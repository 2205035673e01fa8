"""SileroVad with the shipped Silero ONNX model on synthetic speech with known speech spans."""

from __future__ import annotations

import numpy as np
import pytest
from numpy.typing import NDArray

from frontend.vad.silero import SileroVad, VadEvent, shared_session
from tests.audio.audio_helpers import RATE, manifest, random_sizes, wav_float

TOLERANCE_S = 0.1


def run(vad: SileroVad, samples: NDArray[np.float32], sizes: list[int] | int = 320) -> list[tuple[VadEvent, float]]:
    """Feed in pieces; each event with the stream position (s) at which it was reported."""
    size_list = [sizes] if isinstance(sizes, int) else sizes
    reported: list[tuple[VadEvent, float]] = []
    pos = 0
    i = 0
    while pos < len(samples):
        step = size_list[i % len(size_list)]
        chunk = samples[pos : pos + step]
        pos += len(chunk)
        i += 1
        reported += [(event, pos / vad.sample_rate) for event in vad.process(chunk)]
    reported += [(event, pos / vad.sample_rate) for event in vad.flush()]
    return reported


def expected_events(name: str) -> list[tuple[str, float]]:
    spans = manifest()[name]["speech"]
    return [(kind, t) for start, end in spans for kind, t in (("speech_start", start), ("speech_end", end))]


def assert_events_match(events: list[VadEvent], expected: list[tuple[str, float]]) -> None:
    assert [e.kind for e in events] == [kind for kind, _ in expected]
    for event, (_, t) in zip(events, expected):
        assert event.time_s == pytest.approx(t, abs=TOLERANCE_S), event


@pytest.mark.parametrize("name", ["pause.wav", "speaker_a.wav", "speaker_b.wav"])
def test_speech_spans_found_within_100_ms(name: str) -> None:
    reported = run(SileroVad(min_silence_ms=300), wav_float(name))
    assert_events_match([event for event, _ in reported], expected_events(name))


def test_speech_end_is_decided_after_min_silence() -> None:
    for min_silence_ms in (300, 800):
        reported = run(SileroVad(min_silence_ms=min_silence_ms), wav_float("pause.wav"))
        (first_end, decided_at) = next((e, at) for e, at in reported if e.kind == "speech_end")
        true_end = manifest()["pause.wav"]["speech"][0][1]
        # Not before min_silence_ms of silence, and without dawdling after it.
        assert decided_at >= true_end + min_silence_ms / 1000
        assert decided_at <= true_end + min_silence_ms / 1000 + 0.2
        assert first_end.time_s < decided_at
        # The event says where it was decided: the end of the window that completed the
        # silence run, within one window of the piece that reported it.
        assert first_end.decided_s >= first_end.time_s + min_silence_ms / 1000 - 0.05
        assert decided_at - 512 / RATE < first_end.decided_s <= decided_at


def test_pause_shorter_than_min_silence_does_not_split_speech() -> None:
    reported = run(SileroVad(min_silence_ms=2000), wav_float("pause.wav"))
    spans = manifest()["pause.wav"]["speech"]
    # The 1.5 s pause is kept inside one span; the 1 s of trailing silence ends it at flush.
    assert_events_match([e for e, _ in reported], [("speech_start", spans[0][0]), ("speech_end", spans[1][1])])


def test_flush_closes_speech_that_runs_to_the_end() -> None:
    samples = wav_float("speaker_a.wav")
    end = manifest()["speaker_a.wav"]["speech"][0][1]
    cut = samples[: int((end - 0.2) * RATE)]
    reported = run(SileroVad(min_silence_ms=300), cut)
    assert [e.kind for e, _ in reported] == ["speech_start", "speech_end"]
    assert reported[-1][0].time_s == pytest.approx(len(cut) / RATE, abs=0.001)


def test_no_events_on_silence_or_noise() -> None:
    silence = np.tile(wav_float("silence_1s.wav"), 5)
    assert run(SileroVad(min_silence_ms=300), silence) == []
    rng = np.random.default_rng(11)
    for level in (0.001, 0.01, 0.05, 0.2):
        noise = (rng.standard_normal(5 * RATE) * level).astype(np.float32)
        assert run(SileroVad(min_silence_ms=300), noise) == [], level
    hum = (0.1 * np.sin(2 * np.pi * 50 * np.arange(5 * RATE) / RATE)).astype(np.float32)
    assert run(SileroVad(min_silence_ms=300), hum) == []


def test_events_do_not_depend_on_chunking() -> None:
    samples = wav_float("pause.wav")
    whole = [e for e, _ in run(SileroVad(min_silence_ms=300), samples, len(samples))]
    split = [e for e, _ in run(SileroVad(min_silence_ms=300), samples, random_sizes(seed=12, high=2000))]
    assert split == whole


def test_streams_share_the_session_but_not_state() -> None:
    a, b = wav_float("pause.wav"), wav_float("speaker_b.wav")
    alone_a = [e for e, _ in run(SileroVad(min_silence_ms=300), a)]
    alone_b = [e for e, _ in run(SileroVad(min_silence_ms=300), b)]
    vad_a, vad_b = SileroVad(min_silence_ms=300), SileroVad(min_silence_ms=300)
    assert vad_a._session is vad_b._session is shared_session()
    events_a: list[VadEvent] = []
    events_b: list[VadEvent] = []
    for i in range(0, max(len(a), len(b)), 640):  # interleaved, like two sessions on one loop
        events_a += vad_a.process(a[i : i + 640])
        events_b += vad_b.process(b[i : i + 640])
    assert events_a + vad_a.flush() == alone_a
    assert events_b + vad_b.flush() == alone_b


def test_only_16_khz_is_accepted() -> None:
    with pytest.raises(ValueError):
        SileroVad(min_silence_ms=300, sample_rate=8000)


@pytest.mark.parametrize("name", ["pause.wav", "speaker_a.wav", "speaker_b.wav"])
def test_a_quiet_talker_is_endpointed_like_a_loud_one(name: str) -> None:
    # 30 dB down (peaks near -40 dBFS: a soft telephone line): the same speech spans, not
    # endpoints inside words where the model's probability sags with the level.
    quiet = wav_float(name) * np.float32(10 ** (-30 / 20))
    reported = run(SileroVad(min_silence_ms=200), quiet)
    assert_events_match([event for event, _ in reported], expected_events(name))
