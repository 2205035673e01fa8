"""`--max-sessions`: the slot count a full server refuses new work with."""

from __future__ import annotations

import pytest

from frontend.session_limit import SessionLimit
from frontend.protocol.errors import TooManySessions


def test_a_full_server_refuses_until_a_slot_is_released() -> None:
    limit = SessionLimit(2)
    first, second = limit.take(), limit.take()
    with pytest.raises(TooManySessions) as refused:
        limit.take()
    assert refused.value.http_status == 429 and refused.value.headers("r")["Retry-After"] == "1"
    first()
    first()  # a second release of the same slot frees nothing more
    third = limit.take()
    with pytest.raises(TooManySessions):
        limit.take()
    second(), third()
    assert limit.running == 0


def test_zero_means_no_limit() -> None:
    limit = SessionLimit(0)
    for _ in range(1000):
        limit.take()
    assert limit.running == 1000
