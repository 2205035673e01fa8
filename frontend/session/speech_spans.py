"""Word times moved out of silence the VAD heard.

A CTC model with look-ahead may emit a word's first token before the word is spoken: the la13
profile (1.04 s of right context) puts the first word of a stream whose speech starts 0.25 s
in at 0.0 s, since the whole word is already in view at the first encoder frame. The VAD knows
where speech began. So a word that starts in silence, at most one look-ahead before a speech
onset, is moved to start at that onset, and it lasts at least one encoder frame. Words keep
their order. The model gives a word's end as one frame after its last token, which for the
last word of an utterance is often well before the speaker stops: the last word of a speech
span that has ended lasts to the span's end. Without a VAD (`endpointing=false` and no
`vad_events`) times stay the model's.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from dataclasses import replace

from frontend.session.transcript import Word

_KEPT_SPANS = 64
"""Recent speech spans remembered: far more than one open segment holds."""


class SpeechSpans:
    """One channel's speech spans, as its VAD reports them."""

    def __init__(self, max_early_s: float, min_duration_s: float) -> None:
        self._max_early = max_early_s
        self._min_duration = min_duration_s
        self._spans: deque[list[float]] = deque(maxlen=_KEPT_SPANS)  # [start, end]; end inf while open

    def started(self, time_s: float) -> None:
        self._spans.append([time_s, float("inf")])

    def ended(self, time_s: float) -> None:
        if self._spans and self._spans[-1][1] == float("inf"):
            self._spans[-1][1] = time_s

    def _containing(self, time_s: float) -> list[float] | None:
        """The speech span `time_s` lies in, if any."""
        return next((span for span in self._spans if span[0] <= time_s < span[1]), None)

    def _span_end(self, time_s: float) -> float | None:
        """The end of the finished speech span `time_s` lies in, if any."""
        span = self._containing(time_s)
        return span[1] if span is not None and span[1] != float("inf") else None

    def _onset_after(self, time_s: float) -> float | None:
        """The speech onset a word placed at `time_s` in silence belongs to, if any."""
        if self._containing(time_s) is not None:
            return None  # in speech: the model's time stands
        onset = next((start for start, _ in self._spans if time_s < start), None)
        return onset if onset is not None and onset - time_s <= self._max_early else None

    def place(self, words: Sequence[Word]) -> tuple[Word, ...]:
        """`words` with those that start in silence just before an onset moved to it, and the
        last word of a finished speech span lasting to the span's end."""
        out: list[Word] = []
        for word in words:
            onset = self._onset_after(word.start)
            start = max(word.start if onset is None else onset, out[-1].start if out else word.start)
            if start != word.start:
                word = replace(word, start=start, end=max(word.end, start + self._min_duration))
            out.append(word)
        for i, word in enumerate(out):
            span_end = self._span_end(word.start)
            last_in_span = i + 1 == len(out) or (span_end is not None and out[i + 1].start >= span_end)
            if span_end is not None and span_end > word.end and last_in_span:
                out[i] = replace(word, end=span_end)
        return tuple(out)
