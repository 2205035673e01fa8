"""Spelled-out English cardinals -> digits, for `numerals` and `smart_format`.

Handles cardinals up to the trillions ("two thousand and five" -> 2005, "twenty one" -> 21),
"hundred" after 1..99 ("nineteen hundred" -> 1900) and years read in pairs ("nineteen ninety
four" -> 1994, "twenty twenty four" -> 2024). Deliberately left as words: a lone "one" (far
more often a pronoun than a count in speech: "no one", "one of them"; it does become 1 next
to other numbers, "one two three" -> "1 2 3"), ordinals, decimals
("point"), "a hundred", "oh" for zero.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Literal

from frontend.session.transcript import Word

_UNITS = {name: value for value, name in enumerate(
    "zero one two three four five six seven eight nine".split())}
_TEENS = {name: value + 10 for value, name in enumerate(
    "ten eleven twelve thirteen fourteen fifteen sixteen seventeen eighteen nineteen".split())}
_TENS = {name: (value + 2) * 10 for value, name in enumerate(
    "twenty thirty forty fifty sixty seventy eighty ninety".split())}
_SCALES = {"thousand": 10**3, "million": 10**6, "billion": 10**9, "trillion": 10**12}

_Kind = Literal["unit", "teen", "tens", "hundred", "scale"]
_SMALL: tuple[_Kind, ...] = ("unit", "teen", "tens")


@dataclass(frozen=True)
class _Number:
    value: int
    end: int
    """Index after the last word of the number."""
    kinds: tuple[_Kind, ...]


def _parse(texts: Sequence[str], begin: int) -> _Number | None:
    """The longest cardinal that starts at `begin`, or None."""
    total = 0  # completed thousands/millions/... groups
    group = 0  # the part below 1000 being built
    kinds: list[_Kind] = []
    last_scale = 10**15
    index = end = begin
    while index < len(texts):
        text = texts[index]
        last = kinds[-1] if kinds else None
        if text == "zero":
            if kinds:
                break
            return _Number(0, index + 1, ("unit",))
        if text in _UNITS:
            if last in ("unit", "teen"):
                break
            group += _UNITS[text]
            kinds.append("unit")
        elif text in _TEENS:
            if last in _SMALL:
                break
            group += _TEENS[text]
            kinds.append("teen")
        elif text in _TENS:
            if last in _SMALL:
                break
            group += _TENS[text]
            kinds.append("tens")
        elif text == "hundred":
            if not 0 < group < 100 or last not in _SMALL:
                break
            group *= 100
            kinds.append("hundred")
        elif text in _SCALES:
            scale = _SCALES[text]
            if group == 0 or scale >= last_scale:
                break
            total += group * scale
            group = 0
            last_scale = scale
            kinds.append("scale")
        elif (text == "and" and last in ("hundred", "scale") and index + 1 < len(texts)
              and texts[index + 1] in _UNITS.keys() | _TEENS.keys() | _TENS.keys()
              and texts[index + 1] != "zero"):
            # British "one hundred and five": "and" only joins a number to a smaller part.
            index += 1
            continue
        else:
            break
        index += 1
        end = index
    if end == begin:
        return None
    return _Number(total + group, end, tuple(kinds))


def _year_pair(first: _Number, second: _Number | None) -> bool:
    """`nineteen | ninety four`, `twenty | twenty four`: a year read as two pairs."""
    if second is None or not 10 <= second.value <= 99 or second.kinds[0] == "unit":
        return False
    century_teen = first.kinds == ("teen",) and first.value >= 11
    return century_teen or (first.kinds == ("tens",) and first.value == 20)


def _lone_one(texts: Sequence[str], index: int, number: _Number) -> bool:
    """A "one" that is a whole number by itself, with no number word beside it."""
    if number.end - index != 1 or texts[index] != "one":
        return False
    beside = [*texts[index - 1:index], *texts[index + 1:index + 2]]
    return not any(_parse(beside, i) for i in range(len(beside)))


@dataclass(frozen=True)
class NumberRun:
    """Words `begin..end` (exclusive) of a text spell the cardinal `value`."""

    begin: int
    end: int
    value: int


def number_runs(texts: Sequence[str]) -> Iterator[NumberRun]:
    """Each run of lower-cased words that spells a cardinal, in order (the rules above)."""
    index = 0
    while index < len(texts):
        number = _parse(texts, index)
        if number is None or _lone_one(texts, index, number):
            index += 1
            continue
        value, end = number.value, number.end
        following = _parse(texts, end)
        if following is not None and _year_pair(number, following):
            value, end = value * 100 + following.value, following.end
        yield NumberRun(index, end, value)
        index = end


def digits_for_numbers(words: Sequence[Word]) -> list[Word]:
    """Replace each run of words that spells a cardinal by one word holding its digits.

    The merged word spans the run (start of the first, end of the last) with the least
    confidence of the run.
    """
    out: list[Word] = []
    index = 0
    for number in number_runs([word.text.lower() for word in words]):
        run = words[number.begin:number.end]
        out += words[index:number.begin]
        out.append(Word(str(number.value), run[0].start, run[-1].end,
                        min(word.confidence for word in run)))
        index = number.end
    out += words[index:]
    return out
