"""Deepgram's `dictation` (with punctuation on): spoken punctuation commands become marks.

"comma", "period" / "full stop", "question mark", "exclamation mark" / "exclamation point",
"colon", "semicolon" attach to the word before; "open quote" and the line breaks "new line"
and "new paragraph" go in front of the word after; "close quote" / "end quote" / "unquote"
close the word before. A one-word command said after a determiner stays a word ("a period of
time", "the colon"). A mark with no word to hold it in the frame is dropped, except that a
sentence mark there still makes the next word start a sentence; a line break or opening quote
at the end of a frame goes after its last word.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from frontend.session.tokens import Token

_AFTER = {
    ("comma",): ",", ("period",): ".", ("full", "stop"): ".", ("question", "mark"): "?",
    ("exclamation", "mark"): "!", ("exclamation", "point"): "!", ("colon",): ":",
    ("semicolon",): ";", ("close", "quote"): '"', ("end", "quote"): '"', ("unquote",): '"',
}
_BEFORE = {("open", "quote"): '"', ("new", "line"): "\n", ("new", "paragraph"): "\n\n"}
_COMMANDS = sorted({**_AFTER, **_BEFORE}.items(), key=lambda item: -len(item[0]))
_DETERMINERS = frozenset("a an the this that each every per one no my your his her its our their".split())
SENTENCE_MARKS = (".", "?", "!")


def _command(texts: Sequence[str], index: int) -> tuple[tuple[str, ...], str] | None:
    for words, mark in _COMMANDS:
        if tuple(texts[index:index + len(words)]) != words:
            continue
        if len(words) == 1 and index > 0 and texts[index - 1] in _DETERMINERS:
            return None
        return words, mark
    return None


def dictate(tokens: Sequence[Token], sentence_start: bool) -> tuple[list[Token], bool]:
    """`tokens` with commands turned into marks, and whether the first word now starts a
    sentence (`sentence_start`, or a sentence mark dictated in front of it)."""
    texts = [t.word.text.lower() if not t.verbatim else "" for t in tokens]
    out: list[Token] = []
    pending = ""  # marks waiting for the next word
    index = 0
    while index < len(tokens):
        found = _command(texts, index)
        if found is None:
            out.append(replace(tokens[index], before=pending + tokens[index].before))
            pending = ""
            index += 1
            continue
        words, mark = found
        index += len(words)
        if words in _BEFORE:
            pending += mark
        elif out:
            out[-1] = replace(out[-1], after=out[-1].after + mark)
        elif mark in SENTENCE_MARKS:
            sentence_start = True
    if pending and out:
        out[-1] = replace(out[-1], after=out[-1].after + pending)
    return out, sentence_start
