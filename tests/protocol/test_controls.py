"""Client control messages."""

from __future__ import annotations

import pytest

from frontend.protocol.controls import (
    CloseStream, Configure, Finalize, KeepAlive, parse_control,
)
from frontend.protocol.errors import InvalidControl


@pytest.mark.parametrize(("text", "control"), [
    ('{"type": "KeepAlive"}', KeepAlive()),           # Python SDK spacing
    ('{"type":"KeepAlive"}', KeepAlive()),            # JS SDK, compact
    ('{"type":"Finalize"}', Finalize(channel=None)),
    ('{"type":"Finalize","channel":1}', Finalize(channel=1)),
    ('{"type":"CloseStream"}', CloseStream()),
    ('{"type":"Close"}', CloseStream()),              # legacy
    ('{"type":"KeepAlive","ts":123}', KeepAlive()),   # extra fields are tolerated
])
def test_known_controls(text: str, control: object) -> None:
    assert parse_control(text) == control


def test_configure_keeps_the_whole_message() -> None:
    control = parse_control('{"type":"Configure","keyterms":["a"],"features":{"numerals":true}}')
    assert isinstance(control, Configure)
    assert control.raw["keyterms"] == ["a"]


@pytest.mark.parametrize("text", [
    "", "not json", "{", "null", "[]", '"KeepAlive"', "{}",
    '{"type":"Bogus"}', '{"type":"keepalive"}', '{"type":5}',
    '{"type":"Finalize","channel":"0"}', '{"type":"Finalize","channel":-1}',
    '{"type":"Finalize","channel":1.5}',
    '{"type":"Configure","keyterms":"a"}', '{"type":"Configure","features":{"numerals":"yes"}}',
    "[" * 100_000,
])
def test_anything_else_closes_1008_data_0000(text: str) -> None:
    with pytest.raises(InvalidControl) as caught:
        parse_control(text)
    close = caught.value.close
    assert (close.code, close.reason) == (1008, "DATA-0000")
    assert len(caught.value.detail) <= 300
