"""The buffered window that ``export_nemo.py`` writes into a buffered model's manifest."""

from __future__ import annotations

import pytest

from scripts.buffered_export import (
    DEFAULT_CHUNK_S,
    DEFAULT_LEFT_S,
    DEFAULT_RIGHT_S,
    BufferGeometry,
    profile_facts,
    silence_level,
)

FASTCONFORMER = {"hop_length": 160, "sample_rate": 16000, "subsampling": 8}


def test_defaults_are_nemos_buffered_inference_window() -> None:
    g = BufferGeometry.from_seconds(DEFAULT_CHUNK_S, DEFAULT_LEFT_S, DEFAULT_RIGHT_S, **FASTCONFORMER)
    assert (g.chunk, g.left, g.right, g.window) == (160, 120, 120, 400)  # 4 s buffer
    assert g.profile == "la15"
    facts = profile_facts(
        g, hop_length=160, win_length=400, sample_rate=16000, normalize="per_feature", fill=-16.6,
        att_context_size=[-1, -1],
    )  # fmt: skip
    assert facts["lookahead_ms"] == 1200 and facts["encoder_frames"] == 20 and facts["chunk_samples"] == 25600
    # The first request carries the chunk and its right context (plus the mel window's reach).
    assert facts["first_chunk_samples"] == 280 * 160 - 160 + 200
    assert facts["buffer"]["left_encoder_frames"] == facts["buffer"]["right_encoder_frames"] == 15


@pytest.mark.parametrize("chunk,left,right", [(1.0, 1.2, 1.2), (1.6, 0.1, 1.2), (0.0, 1.2, 1.2), (1.6, -0.08, 0.0)])
def test_lengths_must_be_whole_encoder_frames(chunk: float, left: float, right: float) -> None:
    with pytest.raises(ValueError, match="multiple of the encoder frame shift"):
        BufferGeometry.from_seconds(chunk, left, right, **FASTCONFORMER)


def test_no_context_is_allowed() -> None:
    g = BufferGeometry.from_seconds(0.08, 0.0, 0.0, **FASTCONFORMER)
    assert (g.window, g.profile) == (8, "la0")


def test_the_fill_is_the_log_mel_of_digital_silence() -> None:
    assert silence_level(2.0**-24) == pytest.approx(-16.6355, abs=1e-4)
