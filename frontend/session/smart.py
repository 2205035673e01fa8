"""What `smart_format` adds to `numerals` (English): decimals, currency, percentages, phone
numbers and clock times, written the way a reader expects.

Runs on words whose cardinals are already digits (`frontend.session.numerals`):
- "3 point 1 4" -> "3.14";
- "20 dollars" -> "$20", "20 dollars and 50 cents" -> "$20.50", "one dollar" -> "$1",
  "5 euros" -> "€5";
- "50 percent" -> "50%";
- seven, ten or eleven (a leading 1) digits said one by one ("5 5 5 1 2 1 2", "oh" counting
  as zero between digits) -> "555-1212", "800-555-1212", "1-800-555-1212";
- an hour with "a m" / "p m" -> "10:30 AM", "9:05 PM", "7 AM".
Each rewrite is one word spanning the words it replaces, as confident as the least of them.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from frontend.session.transcript import Word

_ZERO = {"oh": "0", "o": "0", "zero": "0"}
_CURRENCY = {"dollar": "$", "dollars": "$", "bucks": "$", "euro": "€", "euros": "€"}
_MERIDIEM = {("a", "m"): "AM", ("am",): "AM", ("p", "m"): "PM", ("pm",): "PM"}
_PHONE_GROUPS = {7: (3, 4), 10: (3, 3, 4), 11: (1, 3, 3, 4)}

# A rule looks at the lower-cased texts from an index; it returns the rewritten text and how
# many words it consumed, or None.
_Rule = Callable[[Sequence[str], int], tuple[str, int] | None]


def _number(text: str) -> str | None:
    """Digits as written ("20"), also a lone "one" that numerals left as a word."""
    return text if text.isdigit() else "1" if text == "one" else None


def _digit(text: str) -> str | None:
    return text if len(text) == 1 and text.isdigit() else _ZERO.get(text)


def _decimal(texts: Sequence[str], i: int) -> tuple[str, int] | None:
    whole = _number(texts[i])
    if whole is None or texts[i + 1:i + 2] != ["point"]:
        return None
    end = i + 2
    while end < len(texts) and _digit(texts[end]) is not None:
        end += 1
    fraction = "".join(_digit(t) or "" for t in texts[i + 2:end])
    return (f"{whole}.{fraction}", end - i) if fraction else None


def _amount(texts: Sequence[str], i: int) -> tuple[str, int] | None:
    """A number, a decimal when one starts here, and how many words it took."""
    decimal = _decimal(texts, i)
    if decimal is not None:
        return decimal
    number = _number(texts[i])
    return (number, 1) if number is not None else None


def _currency(texts: Sequence[str], i: int) -> tuple[str, int] | None:
    amount = _amount(texts, i)
    if amount is None or i + amount[1] >= len(texts) or texts[i + amount[1]] not in _CURRENCY:
        return None
    value, used = amount
    symbol = _CURRENCY[texts[i + used]]
    used += 1
    cents = texts[i + used:i + used + 3]
    if (symbol == "$" and "." not in value and len(cents) == 3 and cents[0] == "and"
            and cents[1].isdigit() and int(cents[1]) < 100 and cents[2] in ("cents", "cent")):
        return f"${value}.{int(cents[1]):02d}", used + 3
    return f"{symbol}{value}", used


def _percent(texts: Sequence[str], i: int) -> tuple[str, int] | None:
    amount = _amount(texts, i)
    if amount is None:
        return None
    value, used = amount
    if texts[i + used:i + used + 1] == ["percent"]:
        return f"{value}%", used + 1
    if texts[i + used:i + used + 2] == ["per", "cent"]:
        return f"{value}%", used + 2
    return None


def _phone(texts: Sequence[str], i: int) -> tuple[str, int] | None:
    if i > 0 and _digit(texts[i - 1]) is not None:
        return None  # only a whole run of digits is a phone number
    end = i
    while end < len(texts) and _digit(texts[end]) is not None:
        end += 1
    digits = "".join(_digit(t) or "" for t in texts[i:end])
    groups = _PHONE_GROUPS.get(len(digits))
    if groups is None or texts[i] in _ZERO or (len(digits) == 11 and digits[0] != "1"):
        return None
    parts, at = [], 0
    for size in groups:
        parts.append(digits[at:at + size])
        at += size
    return "-".join(parts), end - i


def _time(texts: Sequence[str], i: int) -> tuple[str, int] | None:
    if not texts[i].isdigit() or not 1 <= int(texts[i]) <= 12:
        return None
    used, minutes = 1, "00"
    following = texts[i + 1:i + 3]
    if following[:1] and following[0].isdigit() and 10 <= int(following[0]) <= 59:
        used, minutes = 2, following[0]
    elif len(following) == 2 and following[0] in ("oh", "o") and following[1].isdigit() and len(following[1]) == 1:
        used, minutes = 3, "0" + following[1]
    for words, label in _MERIDIEM.items():
        if tuple(texts[i + used:i + used + len(words)]) == words:
            clock = texts[i] if minutes == "00" and used == 1 else f"{texts[i]}:{minutes}"
            return f"{clock} {label}", used + len(words)
    return None


_RULES: tuple[_Rule, ...] = (_currency, _percent, _time, _phone, _decimal)


def smart_format(words: Sequence[Word]) -> list[Word]:
    """`words` with every decimal, amount, percentage, phone number and time rewritten."""
    texts = [word.text.lower() for word in words]
    out: list[Word] = []
    i = 0
    while i < len(words):
        found = next((hit for rule in _RULES if (hit := rule(texts, i)) is not None), None)
        if found is None:
            out.append(words[i])
            i += 1
            continue
        text, used = found
        run = words[i:i + used]
        out.append(Word(text, run[0].start, run[-1].end, min(w.confidence for w in run)))
        i += used
    return out
