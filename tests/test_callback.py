"""Which callback URLs the server will call."""

from __future__ import annotations

import pytest
from aiohttp import web

from frontend import callback
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


async def test_a_delivery_is_retried_after_a_5xx_and_not_after_a_4xx(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(callback, "RETRY_BASE_S", 0.01)
    answers = {"/flaky": [503, 200], "/refusing": [404, 200], "/down": [503, 503, 503]}
    seen: list[tuple[str, str, object]] = []

    async def hook(request: web.Request) -> web.Response:
        seen.append((request.path, request.method, await request.json()))
        return web.Response(status=answers[request.path].pop(0))

    app = web.Application()
    app.router.add_route("*", "/{name}", hook)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        base = f"http://127.0.0.1:{port}"
        assert await callback.deliver(f"{base}/flaky", "put", {"a": 1}, "r1") == "delivered"
        assert await callback.deliver(f"{base}/refusing", "post", {"a": 2}, "r2") == "rejected"
        assert await callback.deliver(f"{base}/down", "post", {"a": 3}, "r3") == "failed"
        assert await callback.deliver("http://127.0.0.1:9/nobody", "post", {}, "r4") == "failed"
    finally:
        await runner.cleanup()
    assert [(path, method) for path, method, _ in seen] == [
        ("/flaky", "PUT"), ("/flaky", "PUT"), ("/refusing", "POST"), ("/down", "POST"), ("/down", "POST"),
        ("/down", "POST")]
    assert seen[0][2] == {"a": 1}
