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


def style_replacing(*rules: str, **options: bool) -> TextStyle:
    return TextStyle.from_params(ListenParams(replace=rules, **options))


def test_replace_rewrites_words_and_phrases_keeping_the_replacements_case() -> None:
    style = style_replacing("kitchen light:KL-1", "Door:gate", "very much:")
    alt = format_words(words("open the door and the kitchen light thank you very much"), style,
                       sentence_start=True, sentence_end=False)
    assert alt.transcript == "open the gate and the KL-1 thank you"
    kl = alt.words[5]
    assert (kl.word, kl.punctuated_word, kl.start, kl.end) == ("kl-1", "KL-1", 5.0, 6.5)
    assert kl.confidence == pytest.approx(0.1 * 5 + 0.5)  # the least sure of the words it replaced


def test_replace_spreads_a_longer_replacement_over_the_span_and_runs_after_numerals() -> None:
    style = style_replacing("21:twenty-one dollars", numerals=True, punctuate=True)
    alt = format_words(words("i paid twenty one"), style, sentence_start=True, sentence_end=True)
    assert alt.transcript == "I paid twenty-one dollars."
    assert [(w.start, w.end) for w in alt.words[2:]] == [(2.0, 2.75), (2.75, 3.5)]


def test_replaced_text_is_not_matched_again() -> None:
    alt = format_words(words("a b"), style_replacing("a:b", "b:c"), sentence_start=True, sentence_end=False)
    assert alt.transcript == "b c"
