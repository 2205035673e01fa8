"""The two kinds of exported encoder graph the encoder model runs, behind one interface:
``new_state()`` for a new sequence and ``run(windows, states)`` for one batched step.

* ``CacheAwareGraph``: NeMo's cache-aware export. One chunk (with its pre-encode context) and
  the sequence's caches in; the chunk's rows and the next caches out. The state of a sequence
  is its caches.
* ``WindowGraph``: NeMo's offline export, run on one buffered window per chunk (left context,
  chunk, right context). It keeps only the chunk's own rows: the context frames exist to give
  them the attention and convolution context they would have offline. It has no state: the
  features model keeps the context in its windows.

Either graph returns its head's output first: CTC log-probs ``logprobs`` [B, T, V], or the
head-less encoder output ``outputs`` [B, d_model, T] for the RNNT decoder (transposed here), so
``run`` gives one row per encoder frame. No Triton imports.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from model_config import ConfigError

HEAD_OUTPUTS = ("logprobs", "outputs")
CACHE_AWARE_INPUTS = {"audio_signal", "length", "cache_last_channel", "cache_last_time", "cache_last_channel_len"}
OFFLINE_INPUTS = {"audio_signal", "length"}


@dataclass
class EncoderCache:
    """Encoder caches of one sequence (batch dimension excluded)."""

    channel: np.ndarray  # [layers, left context, d_model]
    time: np.ndarray  # [layers, d_model, conv context]
    channel_len: np.int64


def _head_output(model: str, session: Any, inputs: set[str], kind: str) -> str:
    """The graph's head output name, after checking its inputs are ``inputs``."""
    names = {i.name for i in session.get_inputs()}
    if names != inputs:
        raise ConfigError(f"{model}: ONNX inputs {sorted(names)}, expected {sorted(inputs)} ({kind} encoder)")
    head = session.get_outputs()[0].name
    if head not in HEAD_OUTPUTS:
        raise ConfigError(f"{model}: ONNX output {head!r}, expected one of {HEAD_OUTPUTS}")
    return str(head)


def _rows(head: str, out: np.ndarray) -> np.ndarray:
    """[b, frames, width] whichever head the graph has."""
    return out if head == "logprobs" else out.transpose(0, 2, 1)


class CacheAwareGraph:
    """NeMo's cache-aware encoder export; the caches are each sequence's state."""

    def __init__(self, model: str, session: Any, channel_shape: tuple[int, ...], time_shape: tuple[int, ...]) -> None:
        self.session = session
        self.channel_shape = channel_shape
        self.time_shape = time_shape
        self.head = _head_output(model, session, CACHE_AWARE_INPUTS, "cache-aware")

    def new_state(self) -> EncoderCache:
        # Zero caches with length 0 are NeMo's initial streaming state.
        return EncoderCache(
            channel=np.zeros(self.channel_shape, np.float32),
            time=np.zeros(self.time_shape, np.float32),
            channel_len=np.int64(0),
        )

    def run(self, features: np.ndarray, states: list[EncoderCache]) -> np.ndarray:
        """One batched step; updates ``states`` in place, returns rows [b, frames, width]."""
        b = features.shape[0]
        head, channel, time, channel_len = self.session.run(
            [self.head, "cache_last_channel_next", "cache_last_time_next", "cache_last_channel_next_len"],
            {
                "audio_signal": features,
                "length": np.full((b,), features.shape[2], np.int64),
                "cache_last_channel": np.stack([c.channel for c in states]),
                "cache_last_time": np.stack([c.time for c in states]),
                "cache_last_channel_len": np.array([c.channel_len for c in states], np.int64),
            },
        )
        for i, c in enumerate(states):
            c.channel, c.time, c.channel_len = channel[i], time[i], channel_len[i]
        return _rows(self.head, head)


class WindowGraph:
    """NeMo's offline encoder export on buffered windows; keeps each window's chunk rows."""

    def __init__(self, model: str, session: Any, left_frames: int, right_frames: int) -> None:
        """``left_frames`` and ``right_frames``: encoder frames of context in every window."""
        self.session = session
        self.left = left_frames
        self.right = right_frames
        self.head = _head_output(model, session, OFFLINE_INPUTS, "offline")

    def new_state(self) -> None:
        return None

    def run(self, features: np.ndarray, states: list[None]) -> np.ndarray:
        """Rows [b, frames, width] of the chunk in the middle of each window."""
        b = features.shape[0]
        (out,) = self.session.run(
            [self.head], {"audio_signal": features, "length": np.full((b,), features.shape[2], np.int64)}
        )
        rows = _rows(self.head, out)
        return rows[:, self.left : rows.shape[1] - self.right]
