"""Shared helpers of the audio tests: fixture loading, feeding and signal comparison."""

from __future__ import annotations

import io
import json
import wave
from functools import cache
from pathlib import Path
from typing import Any

import av
import numpy as np
from numpy.typing import NDArray

from frontend.audio.dc import CUTOFF_HZ
from frontend.audio.normalize import AudioNormalizer

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
RATE = 16000


@cache
def manifest() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((FIXTURES / "manifest.json").read_text())
    return loaded


def fixture_bytes(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


def wav_pcm(name: str) -> bytes:
    """The s16le samples of a 16 kHz mono fixture, without the header."""
    with wave.open(str(FIXTURES / name), "rb") as w:
        assert (w.getframerate(), w.getnchannels(), w.getsampwidth()) == (RATE, 1, 2)
        return w.readframes(w.getnframes())


def wav_float(name: str) -> NDArray[np.float32]:
    """A 16 kHz mono fixture as float32 in [-1, 1]."""
    return np.frombuffer(wav_pcm(name), dtype="<i2").astype(np.float32) / 32768


def dc_blocked(samples: NDArray[np.float32], rate: int = RATE) -> NDArray[np.float32]:
    """What the normaliser's DC blocker should make of ``samples`` (one channel): the one-pole
    high-pass, sample by sample, starting from the first sample."""
    r = np.exp(-2 * np.pi * CUTOFF_HZ / rate)
    out = np.empty(len(samples))
    x_prev, y = float(samples[0]), 0.0
    for i, x in enumerate(samples.astype(np.float64).tolist()):
        y = x - x_prev + r * y
        x_prev = x
        out[i] = y
    return out.astype(np.float32)


def normalizer(
    encoding: str | None,
    sample_rate: int | None = None,
    channels: int = 1,
    multichannel: bool = False,
    *,
    max_channels: int = 8,
    max_sample_rate: int = 48000,
    target_rate: int = RATE,
) -> AudioNormalizer:
    return AudioNormalizer(
        encoding,
        sample_rate,
        channels,
        multichannel,
        max_channels=max_channels,
        max_sample_rate=max_sample_rate,
        target_rate=target_rate,
    )


def feed_all(norm: AudioNormalizer, data: bytes, sizes: list[int] | int) -> NDArray[np.float32]:
    """Feed ``data`` split into pieces (a fixed size or a list of sizes, cycled), then flush."""
    size_list = [sizes] if isinstance(sizes, int) else sizes
    outputs = []
    pos = 0
    i = 0
    while pos < len(data):
        step = size_list[i % len(size_list)]
        outputs.append(norm.feed(data[pos : pos + step]))
        pos += step
        i += 1
    outputs.append(norm.flush())
    # (0, 0) arrays come back while a multichannel container's channel count is unknown.
    non_empty = [out for out in outputs if out.shape[1]] or outputs[-1:]
    return np.concatenate(non_empty, axis=1)


def random_sizes(seed: int, count: int = 2000, low: int = 1, high: int = 1500) -> list[int]:
    """Reproducible arbitrary WebSocket frame sizes (odd ones included)."""
    return [int(n) for n in np.random.default_rng(seed).integers(low, high, size=count)]


def best_alignment(
    signal: NDArray[np.float32], reference: NDArray[np.float32], max_lag: int = 4096
) -> tuple[float, int]:
    """Highest normalised cross-correlation of ``signal`` with ``reference`` over lags, and that lag.

    A positive lag means ``signal`` is late (codecs add priming delay).
    """
    n = 1 << int(np.ceil(np.log2(len(signal) + len(reference))))
    spectrum = np.fft.rfft(signal, n) * np.conj(np.fft.rfft(reference, n))
    xcorr = np.fft.irfft(spectrum, n)
    lags = np.concatenate([np.arange(0, max_lag + 1), np.arange(-max_lag, 0)])
    values = np.concatenate([xcorr[: max_lag + 1], xcorr[-max_lag:]])
    best = int(np.argmax(values))
    lag = int(lags[best])
    a = signal[max(lag, 0) :]
    b = reference[max(-lag, 0) :]
    k = min(len(a), len(b))
    return float(np.corrcoef(a[:k], b[:k])[0, 1]), lag


def encode_wav(samples: NDArray[np.float32], rate: int, codec: str) -> bytes:
    """A WAVE file of float32 ``(channels, n)`` samples written by FFmpeg with ``codec``."""
    channels = samples.shape[0]
    layout = f"{channels}c"
    buf = io.BytesIO()
    with av.open(buf, "w", format="wav") as container:
        stream = container.add_stream(codec, rate=rate, layout=layout)
        assert isinstance(stream, av.AudioStream)
        frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(samples), format="fltp", layout=layout)
        frame.sample_rate = rate
        converter = av.AudioResampler(format=stream.codec_context.format.name, layout=layout, rate=rate)
        for converted in converter.resample(frame):
            for packet in stream.encode(converted):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    return buf.getvalue()
