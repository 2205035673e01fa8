"""Token ids -> timed words -> segments."""

from __future__ import annotations

import pytest

from frontend.protocol.errors import RecognizerFailure
from frontend.session.transcript import Transcript

SPM = ["<unk>", "▁hel", "lo", "▁world", "▁", "s"]
CHARS = ["h", "i", " ", "y", "o", "<unk>"]


def texts(transcript: Transcript) -> list[str]:
    return [w.text for w in transcript.words]


def test_a_preview_continues_the_open_word_and_changes_nothing() -> None:
    t = Transcript(SPM, "▁", 0.08)
    t.add(1.0, [1], [0], [0.9], decoded_until=1.08)  # "▁hel", the word still open
    preview = t.preview(1.08, [2, 3], [0, 2], [0.4, 0.8], decoded_until=1.4)
    assert [(w.text, w.confidence) for w in preview] == [("hello", 0.4), ("world", 0.8)]
    assert [(w.text, w.confidence) for w in t.words] == [("hel", 0.9)] and t.cursor == 1.08


def test_sentencepiece_pieces_join_into_words_with_frame_times() -> None:
    t = Transcript(SPM, "▁", 0.08)
    t.add(1.0, [1, 2, 3], [0, 1, 3], [0.9, 0.5, 0.8], decoded_until=1.32)
    hello, world = t.words
    assert (hello.text, hello.start, hello.end) == ("hello", 1.0, pytest.approx(1.16))
    assert hello.confidence == 0.5  # the least confident piece
    assert (world.start, world.end) == (pytest.approx(1.24), pytest.approx(1.32))
    assert t.cursor == 1.32 and t.last_word_end == pytest.approx(1.32)


def test_a_word_continues_across_responses() -> None:
    t = Transcript(SPM, "▁", 0.08)
    t.add(0.0, [1], [3], [0.9], decoded_until=0.32)
    t.add(0.32, [2], [0], [0.9], decoded_until=0.64)
    assert texts(t) == ["hello"]
    assert t.words[0].end == pytest.approx(0.40)


def test_after_a_take_a_piece_starts_a_new_word() -> None:
    t = Transcript(SPM, "▁", 0.08)
    t.add(0.0, [1], [0], [0.9], decoded_until=0.32)
    t.take()
    t.add(0.32, [2], [0], [0.9], decoded_until=0.64)
    assert texts(t) == ["lo"]


def test_character_vocabulary_uses_the_space_token_as_boundary() -> None:
    t = Transcript(CHARS, " ", 0.04)
    t.add(0.0, [0, 1, 2, 3, 4], [0, 1, 2, 3, 4], [1.0] * 5, decoded_until=0.2)
    assert texts(t) == ["hi", "yo"]


def test_special_pieces_are_dropped_and_output_never_ends_past_the_decoded_audio() -> None:
    t = Transcript(SPM, "▁", 0.08)
    t.add(0.0, [0, 3], [0, 1], [0.9, 0.9], decoded_until=0.10)
    assert texts(t) == ["world"]
    assert t.words[0].end == pytest.approx(0.10)


def test_nan_and_out_of_range_confidences_are_clamped() -> None:
    t = Transcript(SPM, "▁", 0.08)
    t.add(0.0, [1, 3], [0, 1], [float("nan"), 1.7], decoded_until=0.2)
    assert [w.confidence for w in t.words] == [0.0, 1.0]


@pytest.mark.parametrize(("tokens", "frames", "confs"), [
    ([6], [0], [0.9]),     # outside the vocabulary (the blank id)
    ([-1], [0], [0.9]),
    ([1], [-2], [0.9]),
    ([1, 2], [0], [0.9]),  # lengths disagree
])
def test_output_that_breaks_the_contract_is_a_recognizer_failure(
        tokens: list[int], frames: list[int], confs: list[float]) -> None:
    with pytest.raises(RecognizerFailure):
        Transcript(SPM, "▁", 0.08).add(0.0, tokens, frames, confs, decoded_until=1.0)


def test_take_closes_the_segment_at_the_cursor() -> None:
    t = Transcript(SPM, "▁", 0.08)
    t.add(0.0, [3], [1], [0.9], decoded_until=1.0)
    segment = t.take()
    assert (segment.start, segment.end, [w.text for w in segment.words]) == (0.0, 1.0, ["world"])
    assert t.segment_start == 1.0 and t.words == ()
    assert t.take().words == ()


def test_cut_keeps_a_word_that_may_still_grow() -> None:
    t = Transcript(SPM, "▁", 0.08)
    t.add(0.0, [3, 1], [1, 5], [0.9, 0.9], decoded_until=0.48)
    segment = t.cut_at_word_boundary()
    assert segment is not None
    assert [w.text for w in segment.words] == ["world"]
    assert segment.end == pytest.approx(0.40)
    t.add(0.48, [2], [0], [0.9], decoded_until=0.56)
    assert texts(t) == ["hello"]
    assert t.segment_start == pytest.approx(0.40)


def test_cut_after_a_boundary_takes_everything() -> None:
    t = Transcript(SPM, "▁", 0.08)
    t.add(0.0, [3, 4], [1, 2], [0.9, 0.9], decoded_until=0.48)
    segment = t.cut_at_word_boundary()
    assert segment is not None and segment.end == 0.48
    assert [w.text for w in segment.words] == ["world"]


def test_a_token_decided_late_keeps_its_earlier_time_but_never_leaves_the_open_segment() -> None:
    t = Transcript(SPM, "▁", 0.08)
    t.add(1.0, [3], [-5], [0.9], decoded_until=1.5)  # a beam search settled it a request late
    assert t.words[0].start == pytest.approx(0.6)
    t.take()
    t.add(2.0, [1], [-15], [0.9], decoded_until=2.5)  # after a cut at 1.5 s: stays in the new segment
    assert t.words[0].start == pytest.approx(1.5)
