"""CPU cost per second of audio: raw PCM and the VAD run on the event loop, so they must stay cheap.

The limits are 20-30x above what was measured on the 2-core development machine (noted next to
each), so they catch an accidental quadratic copy or a per-call model load, not noise.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np

from frontend.vad.silero import SileroVad
from tests.audio.audio_helpers import RATE, fixture_bytes, normalizer, wav_float, wav_pcm

REPEAT = 10  # ~30 s of audio per measurement


def cpu_per_audio_second(run: Callable[[], float]) -> float:
    """Best of three runs: CPU seconds spent per second of audio processed."""
    best = float("inf")
    for _ in range(3):
        start = time.process_time()
        audio_seconds = run()
        best = min(best, (time.process_time() - start) / audio_seconds)
    return best


def test_raw_pcm_costs() -> None:
    pcm16 = wav_pcm("speaker_a.wav") * REPEAT
    mulaw = fixture_bytes("speaker_a_8k.mulaw") * REPEAT

    def linear16() -> float:
        norm = normalizer("linear16", 16000)
        for i in range(0, len(pcm16), 640):  # 20 ms frames
            norm.feed(pcm16[i : i + 640])
        norm.flush()
        return norm.received_seconds

    def mulaw_8k() -> float:
        norm = normalizer("mulaw", 8000)
        for i in range(0, len(mulaw), 160):  # 20 ms telephony frames, resampled to 16 kHz
            norm.feed(mulaw[i : i + 160])
        norm.flush()
        return norm.received_seconds

    assert cpu_per_audio_second(linear16) < 0.003  # measured 0.00014
    assert cpu_per_audio_second(mulaw_8k) < 0.02  # measured 0.00085


def test_container_cost() -> None:
    ogg = fixture_bytes("speaker_a.ogg")

    def opus() -> float:
        seconds = 0.0
        for _ in range(REPEAT):
            norm = normalizer(None)
            for i in range(0, len(ogg), 250):
                norm.feed(ogg[i : i + 250])
            norm.flush()
            seconds += norm.received_seconds
        return seconds

    assert cpu_per_audio_second(opus) < 0.04  # measured 0.0014 (48 kHz Opus -> 16 kHz)


def test_vad_cost() -> None:
    samples = np.tile(wav_float("pause.wav"), 4)

    def vad() -> float:
        detector = SileroVad(min_silence_ms=300)
        for i in range(0, len(samples), 320):
            detector.process(samples[i : i + 320])
        detector.flush()
        return len(samples) / RATE

    assert cpu_per_audio_second(vad) < 0.05  # measured 0.0022
