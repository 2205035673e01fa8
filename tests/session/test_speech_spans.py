"""Word times kept out of the silence the VAD heard."""

from __future__ import annotations

from frontend.session.speech_spans import SpeechSpans
from frontend.session.transcript import Word


def spans(*intervals: tuple[float, float | None]) -> SpeechSpans:
    speech = SpeechSpans(max_early_s=1.12, min_duration_s=0.08)
    for start, end in intervals:
        speech.started(start)
        if end is not None:
            speech.ended(end)
    return speech


def test_a_word_placed_in_silence_before_an_onset_starts_there() -> None:
    placed = spans((0.25, None)).place([Word("seven", 0.0, 0.08, 0.9), Word("green", 0.8, 1.1, 0.9)])
    assert [(w.start, w.end) for w in placed] == [(0.25, 0.33), (0.8, 1.1)]


def test_words_in_speech_or_far_before_an_onset_keep_their_times() -> None:
    words = [Word("a", 0.5, 0.6, 0.9), Word("b", 3.0, 3.1, 0.9)]
    assert spans((0.4, None)).place(words) == tuple(words)  # in speech
    assert spans((5.0, None)).place(words[1:]) == tuple(words[1:])  # 2 s early: not this onset's


def test_the_last_word_of_a_finished_span_lasts_to_its_end() -> None:
    placed = spans((0.3, 0.9), (2.0, None)).place(
        [Word("zero", 0.4, 0.48, 0.9), Word("one", 2.1, 2.2, 0.9)])
    assert [(w.start, w.end) for w in placed] == [(0.4, 0.9), (2.1, 2.2)]  # the open span stays
    inner = spans((0.3, 0.9)).place([Word("a", 0.4, 0.48, 0.9), Word("b", 0.6, 0.7, 0.9)])
    assert [(w.start, w.end) for w in inner] == [(0.4, 0.48), (0.6, 0.9)]


def test_several_early_words_keep_their_order() -> None:
    placed = spans((0.5, None)).place([Word("a", 0.0, 0.08, 0.9), Word("b", 0.1, 0.18, 0.9)])
    starts = [w.start for w in placed]
    assert starts == sorted(starts) and starts[0] == 0.5
