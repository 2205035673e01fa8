"""Normalise English text to the embedded model's character set.

The model emits lower-case letters, apostrophe and space only, so transcripts must be written
the way they are spoken: numbers spelled out, symbols read aloud or dropped. Used by the corpus
builder (training and evaluation references) and by the WER evaluation (hypotheses and
references go through the same function, so scoring is symmetric).
"""

from __future__ import annotations

import re

ALPHABET = "abcdefghijklmnopqrstuvwxyz' "

_ONES = (
    "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen "
    "fifteen sixteen seventeen eighteen nineteen"
).split()
_TENS = "_ _ twenty thirty forty fifty sixty seventy eighty ninety".split()
_SCALES = ((10**12, "trillion"), (10**9, "billion"), (10**6, "million"), (1000, "thousand"))
_ORDINAL_IRREGULAR = {
    "one": "first", "two": "second", "three": "third", "five": "fifth", "eight": "eighth",
    "nine": "ninth", "twelve": "twelfth",
}
# Symbols that a reader pronounces; everything else outside the alphabet becomes a space.
_SYMBOLS = {
    "&": " and ", "%": " percent ", "+": " plus ", "=": " equals ", "@": " at ",
    "$": " dollars ", "#": " number ", "°": " degrees ",
}
_NUMBER = re.compile(r"(\d+)(st|nd|rd|th)?\b|\d+")
_DECIMAL = re.compile(r"(\d+)\.(\d+)")
_VERSIONISH = re.compile(r"(\d+(?:\.\d+){2,})")  # 1.2.3 is read digit group by group


def int_to_words(n: int) -> str:
    """Cardinal number in words ("1204" -> "one thousand two hundred four")."""
    if n < 20:
        return _ONES[n]
    if n < 100:
        tens, ones = divmod(n, 10)
        return _TENS[tens] + ("" if ones == 0 else " " + _ONES[ones])
    if n < 1000:
        hundreds, rest = divmod(n, 100)
        return _ONES[hundreds] + " hundred" + ("" if rest == 0 else " " + int_to_words(rest))
    for value, name in _SCALES:
        if n >= value:
            high, rest = divmod(n, value)
            return int_to_words(high) + " " + name + ("" if rest == 0 else " " + int_to_words(rest))
    raise AssertionError("unreachable")


def _year_or_cardinal(digits: str) -> str:
    n = int(digits)
    if len(digits) > 15:  # serial numbers and hashes: read digit by digit
        return " ".join(_ONES[int(d)] for d in digits)
    if len(digits) > 1 and digits.startswith("0"):  # "007", zip codes: digit by digit
        return " ".join(_ONES[int(d)] for d in digits)
    if 1100 <= n <= 2099 and n % 100 != 0 and not 2000 <= n <= 2009:  # years: "nineteen ninety"
        high, low = divmod(n, 100)
        return int_to_words(high) + " " + (int_to_words(low) if low >= 10 else "oh " + _ONES[low])
    return int_to_words(n)


def _ordinal(words: str) -> str:
    *head, last = words.split()
    if last in _ORDINAL_IRREGULAR:
        last = _ORDINAL_IRREGULAR[last]
    elif last.endswith("y"):
        last = last[:-1] + "ieth"
    else:
        last += "th"
    return " ".join([*head, last])


def _number_match(m: re.Match[str]) -> str:
    digits, suffix = m.group(1), m.group(2)
    if digits is None:
        return " " + _year_or_cardinal(m.group(0)) + " "
    words = _year_or_cardinal(digits)
    return " " + (_ordinal(words) if suffix else words) + " "


def normalize(text: str) -> str:
    """Lower-case, spell out numbers, keep only ALPHABET, collapse spaces."""
    text = text.lower().replace("’", "'").replace("‘", "'")
    text = _VERSIONISH.sub(lambda m: " point ".join(m.group(1).split(".")), text)
    text = _DECIMAL.sub(lambda m: f"{m.group(1)} point " + " ".join(m.group(2)), text)
    text = re.sub(r"(?<=\d),(?=\d{3}\b)", "", text)  # thousands separators
    for symbol, spoken in _SYMBOLS.items():
        text = text.replace(symbol, spoken)
    text = _NUMBER.sub(_number_match, text)
    text = re.sub(r"[^a-z' ]+", " ", text)
    # Apostrophes survive only inside words ("don't"), not as quotes.
    text = re.sub(r"(?<![a-z])'|'(?![a-z])", " ", text)
    return re.sub(r" +", " ", text).strip()


if __name__ == "__main__":
    import sys

    for line in sys.stdin:
        print(normalize(line))
