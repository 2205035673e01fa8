"""Streaming voice activity detection with the Silero VAD ONNX model, on onnxruntime.

The model (``silero_vad.onnx``, MIT, see ``SILERO_LICENSE``) is ``silero_vad/data/silero_vad.onnx``
from the ``silero-vad`` 6.2.3 wheel (sha256 1a153a22...8788e3). Its contract, as the package's
own ONNX wrapper uses it: one call per 512-sample window at 16 kHz, each window prefixed with
the last 64 samples of the previous one as context (zeros at stream start); inputs ``input``
float32 [1, 64 + 512], ``state`` float32 [2, 1, 128] (zeros at start, then the previous call's
``stateN``), ``sr`` int64 scalar; output ``output`` [1, 1] = speech probability. The model also
has an 8 kHz mode, not offered here: the audio normaliser always delivers 16 kHz, and on the
8 kHz telephony fixture that mode placed the speech end 30 ms later.

Speech starts once ``min_speech_ms`` of consecutive windows are at or above ``threshold``. It
ends once ``min_silence_ms`` of consecutive windows are below ``threshold`` and at least one of
them is below ``threshold - 0.15`` (Silero's hysteresis, so a probability hovering at the
threshold does not toggle); the end time is the first of those windows. Event times are padded
outwards by ``speech_pad_ms`` like Silero's own iterator. The model reacts about 50 ms late to
the end of speech, so ``speech_end`` times run ~60 ms late, ``speech_start`` ~20 ms early.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import onnxruntime as ort
from numpy.typing import NDArray

MODEL_PATH = Path(__file__).with_name("silero_vad.onnx")

SAMPLE_RATE = 16000
_WINDOW = 512
_CONTEXT = 64
_STATE_SHAPE = (2, 1, 128)
_HYSTERESIS = 0.15
# Silero's speech probability falls with the level: a talker at -40 dBFS (FSDD's quieter
# speaker, a soft telephone line) reads as silence inside his own words, so endpoints land
# mid-word and the word's tail is heard again as a new utterance. The model therefore hears
# the stream with a gain that brings the loudest recent window to _TARGET_DB: the ratio of
# speech to noise is what it judges, not the level. At most _MAX_GAIN_DB, so a quiet room is
# not raised to speech level; the reference level decays slowly to follow a talker change.
_TARGET_DB = -12.0
_MAX_GAIN_DB = 24.0
_LEVEL_DECAY_DB_PER_S = 2.0


@dataclass(frozen=True)
class VadEvent:
    """A speech boundary; ``time_s`` is seconds from the start of the stream, ``decided_s``
    the end of the audio that decided it (the window completing the silence or speech run)."""

    kind: Literal["speech_start", "speech_end"]
    time_s: float
    decided_s: float


@functools.cache
def shared_session() -> ort.InferenceSession:
    """The process-wide Silero session (``run`` is thread-safe; per-stream state is an input).

    One intra-op thread: a call (32 ms of audio) is ~70 us of work, less than a thread
    hand-off would save, and the cores belong to the event loop and the recogniser.
    """
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    return ort.InferenceSession(str(MODEL_PATH), sess_options=options, providers=["CPUExecutionProvider"])


class SileroVad:
    """Speech start/end detector for one mono stream fed in arbitrary-length pieces."""

    def __init__(
        self,
        *,
        threshold: float = 0.5,
        min_silence_ms: int,
        min_speech_ms: int = 64,
        speech_pad_ms: int = 30,
        sample_rate: int = 16000,
    ) -> None:
        if sample_rate != SAMPLE_RATE:
            raise ValueError(f"SileroVad takes {SAMPLE_RATE} Hz audio, not {sample_rate} Hz")
        self.sample_rate = sample_rate
        self.threshold = threshold
        self._neg_threshold = max(threshold - _HYSTERESIS, 0.01)
        self._window = _WINDOW
        self._min_silence = sample_rate * min_silence_ms // 1000
        self._min_speech = sample_rate * min_speech_ms // 1000
        self._pad = sample_rate * speech_pad_ms // 1000
        self._session = shared_session()
        self._sr = np.array(sample_rate, dtype=np.int64)
        self._state = np.zeros(_STATE_SHAPE, dtype=np.float32)
        self._context = np.zeros(_CONTEXT, dtype=np.float32)
        self._pending = np.zeros(0, dtype=np.float32)
        self._cursor = 0  # samples already run through the model
        self._in_speech = False
        self._run_start: int | None = None  # first sample of a run of speech windows (not yet speech)
        self._silence_start: int | None = None  # first sample of a run of sub-threshold windows in speech
        self._silence_confirmed = False  # that run has dipped below the hysteresis threshold
        self._last_end = 0  # sample of the last speech_end, so a start never precedes it
        self._level_db = -120.0  # loudest recent window (RMS, dBFS), decaying
        self._decay_db = _LEVEL_DECAY_DB_PER_S * _WINDOW / sample_rate

    def process(self, samples: NDArray[np.float32]) -> list[VadEvent]:
        """Feed 1-D float32 samples; return the boundaries decided by them, in order."""
        if self._pending.size:
            samples = np.concatenate([self._pending, samples.astype(np.float32, copy=False)])
        else:
            samples = samples.astype(np.float32, copy=False)
        windows = samples.size // self._window
        events: list[VadEvent] = []
        for i in range(windows):
            window = samples[i * self._window : (i + 1) * self._window]
            event = self._step(self._probability(window))
            if event is not None:
                events.append(event)
        self._pending = samples[windows * self._window :].copy()
        return events

    def flush(self) -> list[VadEvent]:
        """End of stream: close an open speech span at the end of the audio."""
        end = decided = self._cursor + self._pending.size
        self._pending = np.zeros(0, dtype=np.float32)
        self._run_start = None
        if not self._in_speech:
            return []
        self._in_speech = False
        if self._silence_start is not None and self._silence_confirmed:
            end = min(self._silence_start + self._pad, end)
        self._silence_start = None
        self._silence_confirmed = False
        return [VadEvent("speech_end", end / self.sample_rate, decided / self.sample_rate)]

    def _probability(self, window: NDArray[np.float32]) -> float:
        rms_db = 10 * np.log10(float(np.mean(np.square(window, dtype=np.float64))) + 1e-12)
        self._level_db = max(rms_db, self._level_db - self._decay_db)
        gain = 10 ** (min(max(_TARGET_DB - self._level_db, 0.0), _MAX_GAIN_DB) / 20)
        model_input = (gain * np.concatenate([self._context, window]))[np.newaxis, :].astype(np.float32)
        output, self._state = self._session.run(None, {"input": model_input, "state": self._state, "sr": self._sr})
        self._context = window[-self._context.size :].copy()
        return float(output[0, 0])

    def _step(self, probability: float) -> VadEvent | None:
        """Advance the state machine by one window that starts at ``self._cursor``."""
        start = self._cursor
        self._cursor += self._window
        if not self._in_speech:
            if probability < self.threshold:
                self._run_start = None
                return None
            if self._run_start is None:
                self._run_start = start
            if self._cursor - self._run_start < self._min_speech:
                return None
            self._in_speech = True
            self._silence_start = None
            onset = max(self._run_start - self._pad, self._last_end, 0)
            self._run_start = None
            return VadEvent("speech_start", onset / self.sample_rate, self._cursor / self.sample_rate)
        if probability >= self.threshold:
            self._silence_start = None
            self._silence_confirmed = False
            return None
        # The boundary is where the probability first fell below the threshold; the lower
        # hysteresis threshold only confirms that this dip is silence and not a soft consonant.
        if self._silence_start is None:
            self._silence_start = start
        if probability < self._neg_threshold:
            self._silence_confirmed = True
        if not self._silence_confirmed or self._cursor - self._silence_start < self._min_silence:
            return None
        self._in_speech = False
        self._last_end = min(self._silence_start + self._pad, self._cursor)
        self._silence_start = None
        self._silence_confirmed = False
        return VadEvent("speech_end", self._last_end / self.sample_rate, self._cursor / self.sample_rate)
