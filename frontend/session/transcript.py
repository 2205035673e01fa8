"""One channel's recognised text: token ids -> timed words -> segments.

The recogniser is cache-aware: what a decoded chunk emits never changes afterwards. So a
"segment" here is only grouping: the words since the last final, from `segment_start` to the
decoded audio `cursor`. Finals close a segment; the next one starts where it ended.
"""

from __future__ import annotations

import copy
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, replace

from frontend.protocol.errors import RecognizerFailure

# SentencePiece / NeMo control pieces; never part of a transcript.
_SPECIAL_PIECE = re.compile(r"<[^<>\s]*>")


@dataclass(frozen=True)
class Word:
    """A recognised word as the model spelled it (boundary mark removed), in stream seconds."""

    text: str
    start: float
    end: float
    confidence: float


@dataclass(frozen=True)
class Segment:
    """The words of the span [start, end) that a final publishes."""

    start: float
    end: float
    words: tuple[Word, ...]


@dataclass
class _OpenWord:
    text: str
    start: float
    end: float
    confidences: list[float]

    def freeze(self) -> Word:
        # Word confidence = the least confident token, NeMo's default aggregation: one
        # doubtful piece makes the whole word doubtful.
        return Word(self.text, self.start, self.end, min(self.confidences))


def _probability(value: float) -> float:
    return 0.0 if math.isnan(value) else min(1.0, max(0.0, value))


class Transcript:
    """Assembles one channel's tokens into words and keeps the open segment."""

    def __init__(self, vocabulary: Sequence[str], word_boundary: str,
                 frame_shift_s: float) -> None:
        self._vocabulary = vocabulary
        self._boundary = word_boundary
        self._frame_shift = frame_shift_s
        self._words: list[_OpenWord] = []
        # Whether the next piece without a boundary mark continues the last word: false at
        # the start, after a boundary-only piece (" " in character vocabularies) and once the
        # segment is taken (a flush, where the decoder starts a new utterance, or a pause).
        self._word_open = False
        self.segment_start = 0.0
        """Start of the open segment: where the previous final ended."""
        self.cursor = 0.0
        """Audio decoded so far, in stream seconds."""
        self.last_word_end: float | None = None
        """End of the newest word, finalised or not; None before the first word."""

    @property
    def words(self) -> tuple[Word, ...]:
        """The open segment's words."""
        return tuple(word.freeze() for word in self._words)

    def add(self, chunk_start: float, tokens: Sequence[int], token_frames: Sequence[int],
            token_conf: Sequence[float], *, decoded_until: float) -> None:
        """Append one response's tokens and advance the cursor to `decoded_until`.

        Token time = `chunk_start + frame * frame_shift_s` (a frame may be negative: a token
        decided after the request it belongs to); a word ends one frame after its
        last token, never past the decoded audio. Raises `RecognizerFailure` on output that
        breaks the contract.
        """
        if not len(tokens) == len(token_frames) == len(token_conf):
            raise RecognizerFailure(f"{len(tokens)} tokens, {len(token_frames)} frames, "
                                    f"{len(token_conf)} confidences")
        for token, frame, confidence in zip(tokens, token_frames, token_conf, strict=True):
            start = chunk_start + frame * self._frame_shift
            # Half a frame of slack: a late token's time is float32 arithmetic on the server.
            if not 0 <= token < len(self._vocabulary) or start < -self._frame_shift / 2:
                raise RecognizerFailure(f"token {token} at frame {frame} is outside the "
                                        f"vocabulary of {len(self._vocabulary)} or before the stream")
            piece = self._vocabulary[token]
            if _SPECIAL_PIECE.fullmatch(piece):
                continue
            starts_word = piece.startswith(self._boundary)
            text = piece[len(self._boundary):] if starts_word else piece
            if not text:
                self._word_open = False
                continue
            # A beam search decides some tokens a request late (negative frames); one that
            # falls before a segment already closed belongs to the open one.
            start = max(start, self.segment_start)
            end = max(start, min(start + self._frame_shift, decoded_until))
            probability = _probability(float(confidence))
            if starts_word or not self._word_open:
                self._words.append(_OpenWord(text, start, end, [probability]))
            else:
                word = self._words[-1]
                word.text += text
                word.end = end
                word.confidences.append(probability)
            self._word_open = True
            self.last_word_end = end
        self.cursor = max(self.cursor, decoded_until)

    def preview(self, chunk_start: float, tokens: Sequence[int], token_frames: Sequence[int],
                token_conf: Sequence[float], *, decoded_until: float) -> tuple[Word, ...]:
        """The open segment's words with provisional tokens appended (as `add` would), leaving
        the transcript as it is."""
        if not tokens:
            return self.words
        shadow = copy.copy(self)
        shadow._words = [replace(word, confidences=list(word.confidences)) for word in self._words]
        shadow.add(chunk_start, tokens, token_frames, token_conf, decoded_until=decoded_until)
        return shadow.words

    def take(self) -> Segment:
        """Close the open segment at the cursor, with all its words."""
        segment = Segment(self.segment_start, max(self.segment_start, self.cursor), self.words)
        self._words = []
        self._word_open = False
        self.segment_start = segment.end
        return segment

    def cut_at_word_boundary(self) -> Segment | None:
        """Close the open segment before a word that may still grow; None if nothing to cut.

        The newest word can continue in the next response (a SentencePiece piece without
        `▁`), so it stays in the open segment and the cut falls on its start; when it cannot
        continue, everything up to the cursor is taken.
        """
        if not self._word_open:
            return self.take() if self.cursor > self.segment_start else None
        cut = self._words[-1].start
        if cut <= self.segment_start:
            return None
        complete, self._words = self._words[:-1], self._words[-1:]
        segment = Segment(self.segment_start, cut, tuple(word.freeze() for word in complete))
        self.segment_start = cut
        return segment
