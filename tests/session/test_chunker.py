"""Fixed-size requests out of arbitrary sample runs."""

from __future__ import annotations

import numpy as np
import pytest

from frontend.session.chunker import Chunker


def test_first_then_steady_sizes_and_nothing_lost() -> None:
    chunker = Chunker(first_request_samples=5, chunk_samples=4)
    signal = np.arange(20, dtype=np.float32)
    ready = chunker.push(signal[:3]) + chunker.push(signal[3:14])
    assert [len(c) for c in ready] == [5, 4, 4]
    assert chunker.buffered == 1
    rest = chunker.drain()
    assert np.array_equal(np.concatenate([*ready, rest]), signal[:14])


def test_drain_can_keep_the_newest_samples_for_the_next_utterance() -> None:
    chunker = Chunker(first_request_samples=5, chunk_samples=4)
    chunker.push(np.arange(4, dtype=np.float32))
    assert list(chunker.drain(keep=1)) == [0, 1, 2]
    assert [list(c) for c in chunker.push(np.arange(4, 8, dtype=np.float32))] == [[3, 4, 5, 6, 7]]
    with pytest.raises(ValueError):
        chunker.drain(keep=5)


def test_after_drain_the_first_size_applies_again() -> None:
    chunker = Chunker(first_request_samples=5, chunk_samples=4)
    chunker.push(np.zeros(7, np.float32))
    assert len(chunker.drain()) == 2
    assert [len(c) for c in chunker.push(np.zeros(9, np.float32))] == [5, 4]
    assert len(chunker.drain()) == 0
