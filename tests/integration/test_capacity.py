"""`--max-sessions`: a full server refuses new work with 429 and keeps serving what it runs."""

from __future__ import annotations

import asyncio
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from websockets.exceptions import InvalidStatus

from tests.integration.conftest import Server, frontend_only, stop_server
from tests.integration.live_client import FIXTURES, connect, wav_pcm


def post_wav(server: Server) -> tuple[int, dict[str, str]]:
    request = urllib.request.Request(f"{server.http}/v1/listen?model=nova-3",
                                     data=(FIXTURES / "speaker_b.wav").read_bytes(), method="POST",
                                     headers={"Authorization": "Token any", "Content-Type": "audio/wav"})
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, dict(response.headers)
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers)


async def test_the_session_past_the_limit_gets_429_and_the_running_one_its_finals(
        server: Server, tmp_path: Path) -> None:
    extra = await asyncio.to_thread(frontend_only, server, tmp_path, DDX_STT_MAX_SESSIONS="1")
    try:
        running = await connect(extra.ws, token="any")
        with pytest.raises(InvalidStatus) as refused:
            await connect(extra.ws, token="any")
        assert refused.value.response.status_code == 429
        assert refused.value.response.headers["Retry-After"] == "1"
        status, headers = await asyncio.to_thread(post_wav, extra)
        assert status == 429 and headers["dg-error"].startswith("Too many")

        await running.send_audio(wav_pcm("speaker_a.wav"))
        await running.send_json({"type": "CloseStream"})
        result = await running.finish()
        assert result.close_code == 1000 and result.final_text

        # The slot is free again once the session is over (the server's side of the close may
        # finish a moment after the client's).
        for _ in range(20):
            status, _ = await asyncio.to_thread(post_wav, extra)
            if status != 429:
                break
            await asyncio.sleep(0.1)
        assert status == 200
    finally:
        await asyncio.to_thread(stop_server, extra)
