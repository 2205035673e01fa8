"""SIGTERM drains: open sessions get their finals, the closing Metadata and close 1000."""

from __future__ import annotations

import asyncio
import signal
import urllib.error
import urllib.request
from pathlib import Path

from tests.integration.conftest import Server, frontend_only, stop_server
from tests.integration.live_client import connect, wav_pcm


async def test_sigterm_flushes_finals_then_closes_1000(server: Server, tmp_path: Path) -> None:
    extra = frontend_only(server, tmp_path)
    try:
        session = await connect(extra.ws, token="dummy")
        await session.send_audio(wav_pcm("speaker_a.wav"))
        await asyncio.sleep(0.5)
        extra.process.send_signal(signal.SIGTERM)
        result = await session.finish(timeout=30)
        assert result.close_code == 1000
        assert result.finals, "audio accepted before SIGTERM must get its final"
        assert result.frames[-1]["type"] == "Metadata"
        assert await asyncio.to_thread(extra.process.wait, 30) == 0
    finally:
        stop_server(extra)
    # The shared Triton is untouched by the frontend's exit.
    assert server.health()["status"] == "ok"


def test_not_a_websocket_upgrade_is_refused(server: Server) -> None:
    try:
        urllib.request.urlopen(f"{server.http}/v1/listen?encoding=linear16", timeout=5)
    except urllib.error.HTTPError as error:
        assert error.code in (401, 403, 426)
    else:
        raise AssertionError("plain GET on the live route must not succeed")
