"""Triton Python backend: CTC decoding across a stream's requests, greedy or beam search.

Greedy: a token is emitted where a frame's argmax differs from the previous frame's (carried
per sequence across requests) and is not blank; its confidence is that frame's posterior.
Beam search (``beam_size`` > 1, with the word LM ``lm_file``): ``ctc_beam.py``; a token is
emitted once every hypothesis agrees on it, so it may belong to an earlier request than the
one that emits it (a negative ``TOKEN_FRAMES``); a FLUSH or END emits the best hypothesis. After
a FLUSH the next utterance's first word is scored after the stream's last words or as a sentence
start, whichever the LM finds likelier: an endpoint often falls inside a sentence.
A request's ``keyterms`` parameter (on START, and whenever a client replaces them) boosts those
words (``keyterm_boost`` nats per word at weight 1) from then on; greedy decoding ignores it.
Requests, states and responses: see ``streaming_decoder.py``.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from ctc_beam import BeamConfig, CtcBeamSearch, Emitted, Keyterms, Pieces
from model_config import ConfigError, parameter
from streaming_decoder import Decoded, DecodeJob, StreamingDecoder
from word_lm import WordLM


@dataclass
class CtcState:
    """Greedy CTC state of one sequence: the argmax of the last decoded frame."""

    previous: int


def greedy_ctc(logprobs: np.ndarray, blank: int, state: CtcState) -> Decoded:
    """Collapse the frame-wise argmax of ``logprobs`` [frames, classes], advancing ``state``."""
    best = logprobs.argmax(axis=1)
    previous = np.concatenate([[state.previous], best[:-1]])
    emit = np.flatnonzero((best != blank) & (best != previous))
    if best.size:
        state.previous = int(best[-1])
    return Decoded(
        tokens=best[emit].astype(np.int32),
        frames=emit.astype(np.int32),
        confidence=np.exp(logprobs[emit, best[emit]]).astype(np.float32),
    )


def beam_step(rows: np.ndarray, search: CtcBeamSearch, final: bool) -> Decoded:
    """Advance one sequence's beam by a request's rows; frames relative to the request."""
    first = search.t
    out = search.advance(rows)
    if final:
        rest = search.finish()
        out = Emitted(out.tokens + rest.tokens, out.frames + rest.frames, out.conf + rest.conf)
    tail = Emitted() if final else search.partial()
    return Decoded(
        tokens=np.asarray(out.tokens, np.int32),
        frames=np.asarray(out.frames, np.int32) - first,
        confidence=np.asarray(out.conf, np.float32),
        partial=(np.asarray(tail.tokens, np.int32), np.asarray(tail.frames, np.int32) - first,
                 np.asarray(tail.conf, np.float32)),
    )


class TritonPythonModel(StreamingDecoder[CtcState | CtcBeamSearch]):
    """CTC decoder with a per-correlation-ID greedy state or beam."""

    def setup(self, cfg: dict[str, Any], version_dir: Path, width: int) -> None:
        """``ENCODED`` rows are log-probs over the vocabulary and the blank."""
        if self.blank >= width:
            raise ConfigError(f"{self.name}: blank_id {self.blank} outside 0..{width - 1}")
        beam = parameter(cfg, "beam_size", int)
        self.beam: BeamConfig | None = None
        if beam <= 1:
            return
        vocabulary = json.loads((version_dir / parameter(cfg, "vocabulary_file", str)).read_text())
        lm_file = parameter(cfg, "lm_file", str)
        unk = parameter(cfg, "unk_logprob", str)
        self.lm = WordLM(version_dir / lm_file, float(unk) if unk else None) if lm_file else None
        self.pieces = Pieces(vocabulary, self.blank)
        self.beam = BeamConfig(beam=beam, lm_weight=parameter(cfg, "lm_weight", float),
                               word_bonus=parameter(cfg, "word_bonus", float))
        self.keyterm_boost = parameter(cfg, "keyterm_boost", float)
        self.log.log_info(f"{self.name}: beam search {self.beam}, LM {lm_file or 'none'}")

    def new_state(self, options: dict[str, Any]) -> CtcState | CtcBeamSearch:
        return self._fresh(self._keyterms(options) if self.beam is not None else None)

    def configure(self, state: CtcState | CtcBeamSearch, options: dict[str, Any]) -> None:
        if isinstance(state, CtcBeamSearch) and "keyterms" in options:
            state.keyterms = self._keyterms(options)

    def _keyterms(self, options: dict[str, Any]) -> Keyterms | None:
        return Keyterms.parse(json.loads(options.get("keyterms", "[]")), self.pieces, self.keyterm_boost)

    def next_utterance(self, state: CtcState | CtcBeamSearch) -> CtcState | CtcBeamSearch:
        if isinstance(state, CtcBeamSearch):
            return self._fresh(state.keyterms, state.context)
        return self._fresh(None)

    def _fresh(self, keyterms: Keyterms | None, context: tuple[str, ...] = ()) -> CtcState | CtcBeamSearch:
        """An utterance's start: greedy state, or an empty beam keeping the stream's keyterms
        and its last words."""
        if self.beam is None:
            return CtcState(previous=self.blank)
        return CtcBeamSearch(self.pieces, self.lm, self.beam, keyterms, context)

    def decode(self, jobs: list[DecodeJob[CtcState | CtcBeamSearch]]) -> list[Decoded]:
        return [
            beam_step(job.rows, job.state, job.final) if isinstance(job.state, CtcBeamSearch)
            else greedy_ctc(job.rows, self.blank, job.state)
            for job in jobs
        ]
