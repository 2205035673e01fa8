"""Triton Python backend: RNNT (transducer) greedy decoding across a stream's requests.

NeMo's greedy RNNT search, frame-synchronous over every request of the batch: at each encoder
frame the prediction network + joint (``decoder_joint`` ONNX, NeMo's export) scores the
sequence's last token; the argmax is emitted, the prediction network's state advances and the
same frame is scored again, until the argmax is blank or ``max_symbols`` tokens came from the
frame; then the next frame. A token's confidence is its posterior (softmax of the joint).

Per sequence the state is the prediction network's LSTM state and last token, starting from
NeMo's start symbol (the blank, embedded as zeros, with a zero state). Requests, states and
responses: see ``streaming_decoder.py``.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort

sys.path.insert(0, str(Path(__file__).resolve().parent))

from model_config import ConfigError, parameter
from streaming_decoder import Decoded, DecodeJob, StreamingDecoder

GRAPH_INPUTS = ("encoder_outputs", "targets", "target_length", "input_states_1", "input_states_2")
GRAPH_OUTPUTS = ["outputs", "output_states_1", "output_states_2"]


@dataclass
class RnntState:
    """Prediction network state of one sequence."""

    hidden: np.ndarray  # [layers, pred_hidden]
    cell: np.ndarray  # [layers, pred_hidden]
    last: int  # last emitted token; the blank stands for the start symbol


@dataclass
class _Search:
    """Progress of one job through its frames."""

    job: DecodeJob[RnntState]
    frame: int = 0
    symbols: int = 0  # tokens emitted at this frame so far
    tokens: list[int] = field(default_factory=list)
    frames: list[int] = field(default_factory=list)
    confidence: list[float] = field(default_factory=list)

    @property
    def active(self) -> bool:
        return self.frame < self.job.rows.shape[0]

    def next_frame(self) -> None:
        self.frame += 1
        self.symbols = 0


def log_softmax(x: np.ndarray) -> np.ndarray:
    """Along the last axis (the exported joint returns logits)."""
    x = x - x.max(axis=-1, keepdims=True)
    return x - np.log(np.exp(x).sum(axis=-1, keepdims=True))


class TritonPythonModel(StreamingDecoder[RnntState]):
    """Greedy RNNT decoder with per-correlation-ID prediction network state."""

    def setup(self, cfg: dict[str, Any], version_dir: Path, width: int) -> None:
        """Open ``decoder_joint`` and check it against the config with one start-symbol step."""
        self.max_symbols = parameter(cfg, "max_symbols", int)
        self.layers = parameter(cfg, "pred_layers", int)
        self.hidden = parameter(cfg, "pred_hidden", int)
        if self.max_symbols < 1:
            raise ConfigError(f"{self.name}: max_symbols must be >= 1")
        opts = ort.SessionOptions()
        # One step is a few small matrix products: threads would cost more than they save.
        opts.intra_op_num_threads = 1
        opts.inter_op_num_threads = 1
        self.session = ort.InferenceSession(
            str(version_dir / parameter(cfg, "decoder_joint", str)), opts, providers=["CPUExecutionProvider"]
        )
        names = tuple(i.name for i in self.session.get_inputs())
        if names != GRAPH_INPUTS:
            raise ConfigError(f"{self.name}: decoder_joint inputs {names}, expected {GRAPH_INPUTS}")
        logp, _ = self._step(np.zeros((1, width), np.float32), [self.new_state({})])
        if logp.shape != (1, self.blank + 1):
            raise ConfigError(
                f"{self.name}: the joint gives {logp.shape[1]} classes, blank_id {self.blank} needs {self.blank + 1}"
            )

    def new_state(self, options: dict[str, Any]) -> RnntState:
        # Greedy RNNT has no hypotheses to re-rank: keyterms are not applied.
        zeros = np.zeros((self.layers, self.hidden), np.float32)
        return RnntState(hidden=zeros, cell=zeros.copy(), last=self.blank)

    def next_utterance(self, state: RnntState) -> RnntState:
        return self.new_state({})

    def _step(self, rows: np.ndarray, states: list[RnntState]) -> tuple[np.ndarray, list[np.ndarray]]:
        """Joint log-probs [b, classes] of ``rows`` [b, width] after each state's last token,
        and the prediction network states that emitting a token would lead to."""
        logits, hidden, cell = self.session.run(
            GRAPH_OUTPUTS,
            {
                "encoder_outputs": rows[:, :, None],
                "targets": np.array([[s.last] for s in states], np.int32),
                "target_length": np.ones(len(states), np.int32),
                "input_states_1": np.stack([s.hidden for s in states], axis=1),
                "input_states_2": np.stack([s.cell for s in states], axis=1),
            },
        )
        return log_softmax(logits[:, 0, 0, :]), [hidden, cell]

    def decode(self, jobs: list[DecodeJob[RnntState]]) -> list[Decoded]:
        searches = [_Search(job) for job in jobs]
        while active := [s for s in searches if s.active]:
            rows = np.stack([s.job.rows[s.frame] for s in active])
            logp, (hidden, cell) = self._step(rows, [s.job.state for s in active])
            best = logp.argmax(axis=1)
            for j, s in enumerate(active):
                k = int(best[j])
                if k == self.blank:
                    s.next_frame()
                    continue
                s.tokens.append(k)
                s.frames.append(s.frame)
                s.confidence.append(float(np.exp(logp[j, k])))
                state = s.job.state
                state.hidden, state.cell, state.last = hidden[:, j], cell[:, j], k
                s.symbols += 1
                if s.symbols == self.max_symbols:
                    s.next_frame()
        return [
            Decoded(
                tokens=np.array(s.tokens, np.int32),
                frames=np.array(s.frames, np.int32),
                confidence=np.array(s.confidence, np.float32),
            )
            for s in searches
        ]
