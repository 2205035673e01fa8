"""How the driver cuts a big client message into pieces for the event loop."""

from __future__ import annotations

from frontend.driver import AUDIO_PIECE_BUDGET_S, AUDIO_PIECE_BYTES, next_piece_bytes

SMALLEST, FIRST, LARGEST = AUDIO_PIECE_BYTES


def test_an_expensive_piece_shrinks_the_next_to_the_budget() -> None:
    # 8 KiB of 6 kb/s Opus is eleven seconds of audio: about 80 ms to decode and VAD.
    assert next_piece_bytes(FIRST, 16 * AUDIO_PIECE_BUDGET_S) == FIRST // 16
    assert next_piece_bytes(FIRST, 10.0) == SMALLEST


def test_a_cheap_piece_grows_the_next_at_most_twofold_and_never_past_the_largest() -> None:
    assert next_piece_bytes(FIRST, AUDIO_PIECE_BUDGET_S / 100) == 2 * FIRST
    assert next_piece_bytes(FIRST, 0.0) == 2 * FIRST
    assert next_piece_bytes(LARGEST, 0.0) == LARGEST
    assert next_piece_bytes(FIRST, AUDIO_PIECE_BUDGET_S) == FIRST
