"""Spelled-out numbers -> digits."""

from __future__ import annotations

import pytest

from frontend.session.numerals import digits_for_numbers
from frontend.session.transcript import Word


def convert(text: str) -> str:
    words = [Word(t, float(i), i + 0.5, 0.9) for i, t in enumerate(text.split())]
    return " ".join(w.text for w in digits_for_numbers(words))


@pytest.mark.parametrize(("spoken", "written"), [
    ("twenty one", "21"),
    ("nine hundred", "900"),
    ("one hundred and five", "105"),
    ("two thousand twenty four", "2024"),
    ("three million two hundred thousand and one", "3200001"),
    ("twelve hundred", "1200"),
    ("nineteen ninety four", "1994"),
    ("twenty twenty four", "2024"),
    ("zero", "0"),
    ("one two three", "1 2 3"),
    ("seven and eight", "7 and 8"),
    ("call me at five", "call me at 5"),
])
def test_cardinals_become_digits(spoken: str, written: str) -> None:
    assert convert(spoken) == written


@pytest.mark.parametrize("text", ["no one came", "one of them", "and then", "hundred",
                                  "a thousand"])
def test_words_that_are_not_counts_stay_words(text: str) -> None:
    assert convert(text) == text


def test_a_merged_number_spans_its_words_with_their_least_confidence() -> None:
    words = [Word("twenty", 1.0, 1.3, 0.9), Word("one", 1.3, 1.5, 0.6),
             Word("apples", 1.6, 2.0, 0.8)]
    merged, apples = digits_for_numbers(words)
    assert (merged.text, merged.start, merged.end, merged.confidence) == ("21", 1.0, 1.5, 0.6)
    assert apples.text == "apples"
