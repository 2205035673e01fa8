"""Which callback URLs the server will call."""

from __future__ import annotations

import pytest

from frontend.callback import allowed_callback
from frontend.protocol.errors import CallbackRefused


@pytest.mark.parametrize(("url", "hosts"), [
    ("http://hooks.example.com/stt", ("hooks.example.com",)),
    ("https://HOOKS.example.com:8443/stt", ("hooks.example.com:8443",)),
    ("https://hooks.example.com:8443/stt", ("hooks.example.com",)),
    ("http://10.0.0.5/x", ("*",)),
])
def test_allowed_hosts_are_called(url: str, hosts: tuple[str, ...]) -> None:
    assert allowed_callback(url, hosts) == url


@pytest.mark.parametrize(("url", "hosts"), [
    ("http://169.254.169.254/latest/meta-data", ()),
    ("http://hooks.example.com.evil.net/x", ("hooks.example.com",)),
    ("http://hooks.example.com:9000/x", ("hooks.example.com:8443",)),
    ("ftp://hooks.example.com/x", ("*",)),
    ("file:///etc/passwd", ("*",)),
    ("http://hooks.example.com:port/x", ("*",)),
    ("not a url", ("*",)),
])
def test_other_urls_are_refused(url: str, hosts: tuple[str, ...]) -> None:
    with pytest.raises(CallbackRefused):
        allowed_callback(url, hosts)
