"""Words -> the alternative clients read."""

from __future__ import annotations

import random

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
    assert alt.transcript == "I owe you $20."
    numerals_only = TextStyle.from_params(ListenParams(numerals=True, punctuate=True))
    alt = format_words(words("i owe you twenty dollars"), numerals_only, sentence_start=True,
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


def formatted(text: str, *, sentence_start: bool = True, sentence_end: bool = False,
              **options: object) -> str:
    style = TextStyle.from_params(ListenParams(**options))  # type: ignore[arg-type]
    return format_words(words(text), style, sentence_start=sentence_start,
                        sentence_end=sentence_end).transcript


@pytest.mark.parametrize(("spoken", "written"), [
    ("dear sam comma thanks period see you soon", "Dear sam, thanks. See you soon."),
    ("is it done question mark yes exclamation point", "Is it done? Yes!"),
    ("note colon milk semicolon eggs full stop", "Note: milk; eggs."),
    ("hi new paragraph thanks", "Hi\n\nThanks."),
    ("he said open quote go close quote then left", 'He said "go" then left.'),
    ("a period of time and the colon", "A period of time and the colon."),
])
def test_dictation_turns_spoken_punctuation_into_marks(spoken: str, written: str) -> None:
    assert formatted(spoken, sentence_end=True, dictation=True, punctuate=True) == written


def test_dictation_needs_punctuation_and_keeps_word_timings() -> None:
    assert formatted("yes comma please", dictation=True) == "yes comma please"
    style = TextStyle.from_params(ListenParams(dictation=True, punctuate=True))
    alt = format_words(words("yes comma please"), style, sentence_start=True, sentence_end=False)
    assert [(w.word, w.punctuated_word, w.start) for w in alt.words] == [
        ("yes", "Yes,", 0.0), ("please", "please", 2.0)]


def test_a_dictated_sentence_mark_carries_into_the_next_frame() -> None:
    style = TextStyle.from_params(ListenParams(dictation=True, punctuate=True))
    first = format_words(words("that is all period"), style, sentence_start=True, sentence_end=False)
    assert (first.transcript, first.ends_sentence) == ("That is all.", True)
    leading = format_words(words("period and then"), style, sentence_start=False, sentence_end=False)
    assert leading.transcript == "And then"


@pytest.mark.parametrize(("spoken", "kinds", "written"), [
    ("my pin is four one one", ("numbers",), "my pin is [NUMBER]"),
    ("it cost three hundred", ("true",), "it cost [NUMBER]"),
    ("twenty five people", ("numbers",), "twenty five people"),
    ("twenty five people", ("aggressive_numbers",), "[NUMBER] people"),
    ("room four oh two", ("numbers",), "room [NUMBER]"),
    ("card four one one one one one one one one one one one one one one one ok", ("pci",),
     "card [CREDIT_CARD] ok"),
    ("the cvv is one two three", ("pci",), "the cvv is [CVV]"),
    ("call one two three", ("pci",), "call one two three"),
    ("ssn one two three four five six seven eight nine", ("ssn", "numbers"), "ssn [SSN]"),
    ("one two three four five six seven eight nine", ("pii",), "one two three four five six seven eight nine"),
    ("no one came", ("aggressive_numbers",), "no one came"),
])
def test_redact_labels_sensitive_numbers(spoken: str, kinds: tuple[str, ...], written: str) -> None:
    assert formatted(spoken, redact=kinds) == written


def test_redaction_works_on_digits_spans_the_number_and_keeps_dictated_marks() -> None:
    assert formatted("code four one one", redact=("numbers",), numerals=True) == "code [NUMBER]"
    style = TextStyle.from_params(ListenParams(redact=("numbers",), dictation=True, punctuate=True))
    alt = format_words(words("it is five five five comma ok"), style, sentence_start=True,
                       sentence_end=True)
    assert alt.transcript == "It is [NUMBER], ok."
    label = alt.words[2]
    assert (label.word, label.start, label.end) == ("[number]", 2.0, 4.5)
    assert label.confidence == pytest.approx(0.7)  # the least sure of the digits it hides


def test_profanity_is_masked_letter_for_letter_and_innocent_words_are_not() -> None:
    alt = format_words(words("what the fuck is this shit said the ass"),
                       TextStyle.from_params(ListenParams(profanity_filter=True, punctuate=True)),
                       sentence_start=True, sentence_end=True)
    assert alt.transcript == "What the **** is this **** said the ass."
    assert alt.words[2].word == "****"
    assert formatted("fucking hell") == "fucking hell"


def test_a_cvv_needs_its_cue_close_by() -> None:
    assert formatted("security code is four five six", redact=("pci",)) == "security code is [CVV]"
    assert formatted("cvv not yet and then one two three", redact=("pci",)) == \
        "cvv not yet and then one two three"


@pytest.mark.parametrize(("spoken", "written"), [
    ("it costs twenty dollars and fifty cents", "It costs $20.50."),
    ("one dollar or five euros", "$1 or €5."),
    ("fifty percent off", "50% off."),
    ("pi is three point one four", "Pi is 3.14."),
    ("up three point five percent", "Up 3.5%."),
    ("call five five five one two three four five six seven now", "Call 555-123-4567 now."),
    ("dial one eight oh oh five five five one two one two", "Dial 1-800-555-1212."),
    ("see you at ten thirty a m on monday", "See you at 10:30 AM on Monday."),
    ("nine oh five p m in july", "9:05 PM in July."),
    ("seven p m", "7 PM."),
    ("we may march in may", "We may march in may."),
    ("count one two three", "Count 1 2 3."),
])
def test_smart_format_writes_amounts_phone_numbers_and_times(spoken: str, written: str) -> None:
    assert formatted(spoken, sentence_end=True, smart_format=True) == written


def test_smart_formatted_numbers_are_still_redacted() -> None:
    assert formatted("call five five five one two one two", smart_format=True, redact=("numbers",)) \
        == "Call [NUMBER]"
    assert formatted("it is twenty dollars", smart_format=True, redact=("numbers",)) == "It is $20"


def test_an_interim_hides_a_number_that_may_still_grow_into_a_card_number() -> None:
    style = TextStyle.from_params(ListenParams(redact=("pci",)))
    spoken = words("my card is four one one one")
    interim = format_words(spoken, style, sentence_start=True, sentence_end=False, interim=True)
    assert interim.transcript == "my card is [NUMBER]"
    final = format_words(spoken, style, sentence_start=True, sentence_end=False)
    assert final.transcript == "my card is four one one one"  # four digits are no card number
    closed = format_words(words("four one one one is mine"), style, sentence_start=True,
                          sentence_end=False, interim=True)
    assert closed.transcript == "four one one one is mine"


def test_every_option_at_once_survives_any_word_sequence() -> None:
    # A formatting crash would end the session: random mixes of the words every rule looks for.
    vocabulary = ("one two three four five nine ten twenty thirty hundred oh zero point dollars "
                  "and cents percent per cent a m p m comma period new line paragraph open close "
                  "quote the cvv security code fuck um monday may i hello").split()
    style = TextStyle.from_params(ListenParams(
        smart_format=True, dictation=True, redact=("pci", "ssn", "numbers", "aggressive_numbers"),
        profanity_filter=True, replace=("hello:Hi there", "one two:"), diarize=True))
    rng = random.Random(7)
    for _ in range(3000):
        spoken = [rng.choice(vocabulary) for _ in range(rng.randint(0, 14))]
        for interim in (False, True):
            alt = format_words(words(" ".join(spoken)), style, sentence_start=rng.random() < 0.5,
                               sentence_end=rng.random() < 0.5, interim=interim)
            assert all(w.start <= w.end for w in alt.words)
            assert [w.start for w in alt.words] == sorted(w.start for w in alt.words)
            assert "fuck" not in alt.transcript.lower()
