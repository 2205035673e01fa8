"""AudioNormalizer with real codecs through PyAV: what a client would notice.

Duration and content must survive decoding and resampling, the result must not depend on how
the stream was cut into WebSocket frames, and each kind of bad input must raise the error that
becomes its close code.
"""

from __future__ import annotations

import gc
import io
import threading

import av
import numpy as np
import pytest
from numpy.typing import NDArray

from frontend.audio.pcm import ALAW_TABLE, MULAW_TABLE
from frontend.protocol.errors import ChannelsTooMany, SampleRateTooHigh, UndecodableAudio, UnsupportedEncoding
from tests.audio.audio_helpers import (
    RATE,
    best_alignment,
    dc_blocked,
    encode_wav,
    feed_all,
    fixture_bytes,
    manifest,
    normalizer,
    random_sizes,
    wav_float,
    wav_pcm,
)

CONTAINERS = ["speaker_a.ogg", "speaker_a.webm", "speaker_a.mp3", "speaker_a.flac", "speaker_a.aac"]
# What a client would declare for each fixture (None: let the server sniff it).
DECLARED = {
    "speaker_a.ogg": "ogg-opus",
    "speaker_a.webm": "opus",
    "speaker_a.mp3": "mp3",
    "speaker_a.flac": "flac",
    "speaker_a.aac": "aac",
}


def interleave(*channels: NDArray[np.float32]) -> bytes:
    """Interleaved s16le frames of equally long float channels."""
    n = min(len(c) for c in channels)
    stacked = np.stack([c[:n] for c in channels], axis=1)
    return bytes(np.round(stacked * 32767).astype("<i2").tobytes())


def g711_encode(samples: NDArray[np.float32], codec: str) -> bytes:
    """Encode float mono 16 kHz samples with FFmpeg's own G.711 encoder (an independent coder)."""
    ctx = av.CodecContext.create(codec, "w")
    assert isinstance(ctx, av.AudioCodecContext)
    ctx.sample_rate = RATE
    ctx.layout = "mono"
    ctx.format = "s16"
    frame = av.AudioFrame.from_ndarray((samples * 32767).astype(np.int16)[np.newaxis, :], format="s16", layout="mono")
    frame.sample_rate = RATE
    return b"".join(bytes(p) for p in ctx.encode(frame) + ctx.encode(None))


# --- raw PCM -----------------------------------------------------------------------------------


def test_linear16_16k_decodes_every_sample_and_reports_duration() -> None:
    pcm = wav_pcm("speaker_a.wav")
    norm = normalizer("linear16", 16000)
    out = feed_all(norm, pcm, 2048)
    assert out.dtype == np.float32 and out.shape == (1, len(pcm) // 2)
    np.testing.assert_allclose(out[0], dc_blocked(wav_float("speaker_a.wav")), atol=1e-6)
    assert norm.received_seconds == pytest.approx(len(pcm) / 2 / RATE)
    assert norm.out_channels == 1


def test_linear16_frames_ending_mid_sample_give_the_same_samples() -> None:
    pcm = wav_pcm("speaker_b.wav")
    whole = feed_all(normalizer("linear16", 16000), pcm, len(pcm))
    split = feed_all(normalizer("linear16", 16000), pcm, random_sizes(seed=1, high=301))
    np.testing.assert_array_equal(split, whole)


def test_dc_offset_is_removed_and_speech_kept() -> None:
    speech = wav_float("speaker_a.wav")
    clean = feed_all(normalizer("linear16", 16000), wav_pcm("speaker_a.wav"), 3200)
    # A cheap microphone's offset (FSDD's speaker nicolas records with 0.7 % of full scale).
    offset = np.round((speech + 0.05) * 32768).clip(-32768, 32767).astype("<i2").tobytes()
    out = feed_all(normalizer("linear16", 16000), offset, random_sizes(seed=8))
    np.testing.assert_allclose(out, clean, atol=3 / 32768)
    assert abs(float(out.mean())) < 1e-3 < abs(float(speech.mean()) + 0.05)

    # Speech frequencies pass: a 120 Hz tone (a low voice's pitch) keeps its level within 0.1 dB.
    t = np.arange(RATE) / RATE
    tone = (0.5 * np.sin(2 * np.pi * 120 * t)).astype("<f4")
    passed = feed_all(normalizer("linear32", 16000), tone.tobytes(), 1600)[0, RATE // 2 :]
    gain_db = 20 * np.log10(np.sqrt(np.mean(passed**2)) / np.sqrt(np.mean(tone[RATE // 2 :] ** 2)))
    assert abs(gain_db) < 0.1


def test_linear32_is_float_little_endian() -> None:
    reference = wav_float("speaker_a.wav")
    out = feed_all(normalizer("linear32", 16000), reference.astype("<f4").tobytes(), random_sizes(seed=2))
    np.testing.assert_allclose(out[0], dc_blocked(reference), atol=1e-6)


def test_g711_tables_match_ffmpeg_decoders() -> None:
    for codec, table in (("pcm_mulaw", MULAW_TABLE), ("pcm_alaw", ALAW_TABLE)):
        ctx = av.CodecContext.create(codec, "r")
        assert isinstance(ctx, av.AudioCodecContext)
        ctx.sample_rate = 8000
        ctx.layout = "mono"
        (frame,) = ctx.decode(av.Packet(bytes(range(256))))
        np.testing.assert_array_equal(table * 32768, frame.to_ndarray()[0].astype(np.float32))


@pytest.mark.parametrize(("encoding", "codec"), [("mulaw", "pcm_mulaw"), ("alaw", "pcm_alaw")])
def test_g711_round_trip_keeps_speech(encoding: str, codec: str) -> None:
    coded = g711_encode(wav_float("speaker_a.wav"), codec)
    reference = dc_blocked(wav_float("speaker_a.wav"))
    out = feed_all(normalizer(encoding, 16000), coded, random_sizes(seed=3, high=200))
    assert out.shape == (1, len(reference))
    snr = 10 * np.log10(np.sum(reference**2) / np.sum((out[0] - reference) ** 2))
    assert snr > 30  # G.711 gives ~38 dB on speech


def test_mulaw_8k_telephony_is_resampled_to_16k() -> None:
    reference = wav_float("speaker_a.wav")
    norm = normalizer("mulaw", 8000)
    out = feed_all(norm, fixture_bytes("speaker_a_8k.mulaw"), 160)  # 20 ms RTP-sized frames
    assert abs(out.shape[1] - len(reference)) <= 2
    assert norm.received_seconds == pytest.approx(len(reference) / RATE, abs=1e-3)
    correlation, lag = best_alignment(out[0], reference)
    assert abs(lag) <= 2 and correlation > 0.98


def test_raw_sample_rate_defaults_when_omitted() -> None:
    norm = normalizer("mulaw", None)
    out = feed_all(norm, fixture_bytes("speaker_a_8k.mulaw"), 4000)
    assert out.shape[1] == pytest.approx(manifest()["speaker_a.wav"]["duration_s"] * RATE, abs=2)


def test_resampling_splits_do_not_change_the_output() -> None:
    data = fixture_bytes("speaker_a_8k.mulaw")
    whole = feed_all(normalizer("mulaw", 8000), data, len(data))
    split = feed_all(normalizer("mulaw", 8000), data, random_sizes(seed=4, high=97))
    np.testing.assert_allclose(split, whole, atol=1e-6)


# --- channels ----------------------------------------------------------------------------------


def test_raw_stereo_downmix_and_multichannel() -> None:
    a, b = wav_float("speaker_a.wav"), wav_float("speaker_b.wav")
    stereo = interleave(a, b)
    sizes = random_sizes(seed=5, high=777)  # odd sizes split interleaved frames too

    separate = feed_all(normalizer("linear16", 16000, channels=2, multichannel=True), stereo, sizes)
    assert separate.shape[0] == 2
    n = separate.shape[1]
    np.testing.assert_allclose(separate[0], dc_blocked(a[:n]), atol=2 / 32768)
    np.testing.assert_allclose(separate[1], dc_blocked(b[:n]), atol=2 / 32768)

    mixed = feed_all(normalizer("linear16", 16000, channels=2, multichannel=False), stereo, sizes)
    assert mixed.shape == (1, n)
    np.testing.assert_allclose(mixed[0], separate.mean(axis=0), atol=1e-6)


def test_raw_multichannel_with_resampling_keeps_channels_apart() -> None:
    a, b = wav_float("speaker_a.wav"), wav_float("speaker_b.wav")
    # Left and right at 8 kHz (every other sample), as a stereo telephony recording would be.
    stereo = interleave(a[::2], b[::2])
    out = feed_all(normalizer("linear16", 8000, channels=2, multichannel=True), stereo, 640)
    assert out.shape[0] == 2
    assert best_alignment(out[0], a)[0] > 0.9 > best_alignment(out[0], b)[0] + 0.5
    assert best_alignment(out[1], b)[0] > 0.9 > best_alignment(out[1], a)[0] + 0.5


def test_container_stereo_downmix_and_multichannel() -> None:
    a, b = wav_float("speaker_a.wav"), wav_float("speaker_b.wav")
    data = fixture_bytes("stereo_a_left_b_right.ogg")

    norm = normalizer(None, multichannel=True)
    assert norm.out_channels is None
    first = norm.feed(data[:10])
    assert first.shape == (0, 0)  # channel count unknown until the header is decoded
    separate = feed_all(norm, data[10:], 500)
    assert norm.out_channels == 2 and separate.shape[0] == 2
    assert best_alignment(separate[0], a)[0] > 0.9 and best_alignment(separate[0], b)[0] < 0.3
    assert best_alignment(separate[1], b)[0] > 0.9 and best_alignment(separate[1], a)[0] < 0.3

    mixed = feed_all(normalizer(None, multichannel=False), data, 500)
    assert mixed.shape == (1, separate.shape[1])
    np.testing.assert_allclose(mixed[0], separate.mean(axis=0), atol=1e-5)


# --- WAVE headers ------------------------------------------------------------------------------


@pytest.mark.parametrize("encoding", ["linear16", None])
def test_wav_header_is_parsed_not_played(encoding: str | None) -> None:
    wav = fixture_bytes("speaker_a.wav")
    reference = dc_blocked(wav_float("speaker_a.wav"))
    # The first frames split the 44-byte header itself.
    out = feed_all(normalizer(encoding, 16000), wav, [1, 3, 7, 20, 50] + random_sizes(seed=6))
    np.testing.assert_allclose(out[0], reference, atol=1e-6)


def test_wav_header_overrides_declared_rate_and_channels() -> None:
    a, b = wav_float("speaker_a.wav"), wav_float("speaker_b.wav")
    n = min(len(a), len(b))
    wav = encode_wav(np.stack([a[:n:2], b[:n:2]]), 8000, "pcm_s16le")
    norm = normalizer("linear16", 16000, channels=1, multichannel=True)
    out = feed_all(norm, wav, 1000)
    assert norm.out_channels == 2
    assert out.shape[1] == pytest.approx(n, abs=4)
    assert best_alignment(out[0], a)[0] > 0.9 and best_alignment(out[1], b)[0] > 0.9


@pytest.mark.parametrize("codec", ["pcm_u8", "pcm_s24le", "pcm_s32le", "pcm_f32le", "pcm_mulaw", "pcm_alaw"])
def test_wav_sample_formats(codec: str) -> None:
    reference = wav_float("speaker_b.wav")
    wav = encode_wav(reference[np.newaxis, :], RATE, codec)
    out = feed_all(normalizer(None), wav, random_sizes(seed=7))
    assert out.shape == (1, len(reference))
    assert best_alignment(out[0], reference, max_lag=0)[0] > 0.99


def test_wav_with_a_codec_numpy_does_not_decode_goes_to_ffmpeg() -> None:
    reference = wav_float("speaker_b.wav")
    wav = encode_wav(reference[np.newaxis, :], RATE, "adpcm_ima_wav")
    out = feed_all(normalizer(None), wav, 700)
    # The last ADPCM block (2041 samples at this rate) is padded with silence.
    assert len(reference) <= out.shape[1] <= len(reference) + 2041
    assert best_alignment(out[0], reference)[0] > 0.95


# --- containers --------------------------------------------------------------------------------


@pytest.mark.parametrize("name", CONTAINERS)
@pytest.mark.parametrize("declared", [False, True])
def test_container_keeps_duration_and_content(name: str, declared: bool) -> None:
    reference = wav_float("speaker_a.wav")
    norm = normalizer(DECLARED[name] if declared else None)
    out = feed_all(norm, fixture_bytes(name), random_sizes(seed=8))
    assert out.shape[0] == 1
    # Lossy codecs add priming and block padding (AAC: 1024 samples each) but never drop audio.
    assert len(reference) - 160 <= out.shape[1] <= len(reference) + 2200
    assert norm.received_seconds == pytest.approx(out.shape[1] / RATE, abs=0.01)
    correlation, lag = best_alignment(out[0], reference)
    assert correlation > 0.95 and 0 <= lag <= 1100


def amr_nb(name: str) -> bytes:
    """A 16 kHz fixture as an AMR-NB file at 12.2 kb/s (PyAV's encoder; ffmpeg's CLI has none)."""
    pcm = np.frombuffer(wav_pcm(name), np.int16)
    out = io.BytesIO()
    with av.open(out, "w", format="amr") as amr:
        stream = amr.add_stream("libopencore_amrnb", rate=8000)
        stream.bit_rate = 12200
        stream.layout = "mono"
        frame = av.AudioFrame.from_ndarray(pcm[None, :], format="s16", layout="mono")
        frame.sample_rate = RATE
        resampler = av.AudioResampler(format="s16", layout="mono", rate=8000)
        for block in [*resampler.resample(frame), *resampler.resample(None), None]:
            for packet in stream.encode(block):
                amr.mux(packet)
    return out.getvalue()


def test_amr_nb_as_bare_frames_or_a_file() -> None:
    # Deepgram's encoding=amr-nb takes the codec's frames without the file's "#!AMR" magic.
    stored = amr_nb("speaker_a.wav")
    assert stored.startswith(b"#!AMR\n")
    reference = wav_float("speaker_a.wav")
    bare = feed_all(normalizer("amr-nb"), stored[6:], random_sizes(seed=10, high=97))
    np.testing.assert_allclose(bare, feed_all(normalizer("amr-nb"), stored, len(stored)), atol=1e-6)
    assert len(reference) - 160 <= bare.shape[1] <= len(reference) + 800
    correlation, _ = best_alignment(bare[0], reference)
    assert correlation > 0.8  # a narrowband speech codec: the waveform is only roughly kept


@pytest.mark.parametrize("name", CONTAINERS + ["stereo_a_left_b_right.ogg"])
def test_container_split_anywhere_equals_one_feed(name: str) -> None:
    data = fixture_bytes(name)
    whole = feed_all(normalizer(None, multichannel=True), data, len(data))
    split = feed_all(normalizer(None, multichannel=True), data, random_sizes(seed=9, high=257))
    np.testing.assert_allclose(split, whole, atol=1e-6)


@pytest.mark.parametrize("name", ["speaker_a.ogg", "speaker_a.webm", "speaker_a.mp3", "speaker_a.aac"])
def test_container_audio_flows_before_the_stream_ends(name: str) -> None:
    data = fixture_bytes(name)
    norm = normalizer(None)
    half = len(data) // 2
    early = np.concatenate([norm.feed(data[i : i + 400]) for i in range(0, half, 400)], axis=1)
    assert early.shape[1] > 0.3 * manifest()["speaker_a.wav"]["duration_s"] * RATE
    norm.close()


def test_abandoned_container_stream_releases_its_decoder_thread() -> None:
    def decoder_threads() -> set[threading.Thread]:
        return {t for t in threading.enumerate() if t.name == "audio-container-decoder"}

    before = decoder_threads()
    closed = normalizer(None)
    closed.feed(fixture_bytes("speaker_a.ogg")[:3000])
    dropped = normalizer(None)
    dropped.feed(fixture_bytes("speaker_a.webm")[:3000])
    ours = decoder_threads() - before
    assert len(ours) == 2
    closed.close()
    del dropped
    gc.collect()
    for thread in ours:
        thread.join(timeout=5)
        assert not thread.is_alive()


# --- errors ------------------------------------------------------------------------------------


@pytest.mark.parametrize("encoding", ["g729", "speex", "pcm_s16le", "nonsense"])
def test_unknown_or_unsupported_encoding(encoding: str) -> None:
    norm = normalizer(encoding, 16000)
    with pytest.raises(UnsupportedEncoding):
        norm.feed(b"\x00" * 320)


@pytest.mark.parametrize("encoding", [None, "opus", "mp3"])
def test_garbage_bytes_in_a_container_stream(encoding: str | None) -> None:
    garbage = np.random.default_rng(10).integers(0, 256, size=64 * 1024, dtype=np.uint8).tobytes()
    norm = normalizer(encoding)
    with pytest.raises(UndecodableAudio):
        feed_all(norm, garbage, 1000)


def test_headerless_pcm_sent_without_encoding_is_undecodable() -> None:
    pcm = wav_pcm("speaker_a.wav")
    with pytest.raises(UndecodableAudio):
        feed_all(normalizer(None), pcm, 3200)


def test_corrupt_wav_header() -> None:
    bad = b"RIFF\x00\x00\x00\x00WAVEdata\x10\x00\x00\x00" + bytes(16)  # data before fmt
    with pytest.raises(UndecodableAudio):
        feed_all(normalizer("linear16", 16000), bad, 8)


def test_too_many_declared_channels() -> None:
    norm = normalizer("linear16", 16000, channels=9, max_channels=8)
    with pytest.raises(ChannelsTooMany):
        norm.feed(b"\x00" * 36)


def test_too_many_channels_in_a_container() -> None:
    norm = normalizer(None, max_channels=1)
    with pytest.raises(ChannelsTooMany):
        feed_all(norm, fixture_bytes("stereo_a_left_b_right.ogg"), 1000)


def test_sample_rate_too_high_declared() -> None:
    norm = normalizer("linear16", 96000, max_sample_rate=48000)
    with pytest.raises(SampleRateTooHigh):
        norm.feed(b"\x00" * 32)


def test_sample_rate_too_high_in_a_container() -> None:
    norm = normalizer(None, max_sample_rate=16000)  # Opus always decodes at 48 kHz
    with pytest.raises(SampleRateTooHigh):
        feed_all(norm, fixture_bytes("speaker_a.ogg"), 1000)


def test_sample_rate_too_high_in_a_wav_header() -> None:
    wav = encode_wav(np.zeros((1, 9600), dtype=np.float32), 96000, "pcm_s16le")
    with pytest.raises(SampleRateTooHigh):
        feed_all(normalizer("linear16", 16000), wav, 1000)
