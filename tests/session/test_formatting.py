"""Words -> the alternative clients read."""

from __future__ import annotations

import pytest

from frontend.protocol.params import ListenParams
from frontend.session.formatting import TextStyle, format_words
from frontend.session.transcript import Word


def words(text: str) -> list[Word]:
    return [Word(t, float(i), i + 0.5, 0.5 + i / 10) for i, t in enumerate(text.split())]


def test_plain_words_stay_lower_case_without_punctuation() -> None:
    alt = format_words(words("hello world"), TextStyle(), sentence_start=True, sentence_end=True)
    assert alt.transcript == "hello world"
    assert [w.punctuated_word for w in alt.words] == ["hello", "world"]
    assert all(w.speaker is None for w in alt.words)
    assert alt.confidence == pytest.approx(0.55)


def test_punctuation_capitalises_sentence_starts_and_i_and_ends_utterances() -> None:
    style = TextStyle(punctuate=True)
    alt = format_words(words("so i'm here"), style, sentence_start=True, sentence_end=True)
    assert alt.transcript == "So I'm here."
    assert [w.word for w in alt.words] == ["so", "i'm", "here"]
    mid = format_words(words("and then"), style, sentence_start=False, sentence_end=False)
    assert mid.transcript == "and then"


def test_fillers_are_dropped_unless_asked_for() -> None:
    alt = format_words(words("um hello uh"), TextStyle(), sentence_start=True, sentence_end=False)
    assert alt.transcript == "hello"
    kept = format_words(words("um hello"), TextStyle(filler_words=True), sentence_start=True,
                        sentence_end=False)
    assert kept.transcript == "um hello"


def test_smart_format_means_punctuation_and_digits() -> None:
    style = TextStyle.from_params(ListenParams(smart_format=True))
    alt = format_words(words("i owe you twenty dollars"), style, sentence_start=True,
                       sentence_end=True)
    assert alt.transcript == "I owe you 20 dollars."


def test_empty_segment_has_zero_confidence() -> None:
    alt = format_words([], TextStyle(punctuate=True), sentence_start=True, sentence_end=True)
    assert (alt.transcript, alt.confidence, alt.words) == ("", 0.0, ())


def test_diarize_labels_every_word_speaker_zero() -> None:
    alt = format_words(words("hi there"), TextStyle(diarize=True), sentence_start=True,
                       sentence_end=False)
    assert [w.speaker for w in alt.words] == [0, 0]
