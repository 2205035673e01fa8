"""Triton dies under a live session: the client gets a documented close, the server recovers."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import time
from pathlib import Path

from websockets.exceptions import ConnectionClosed

from tests.integration.conftest import start_server, stop_server
from tests.integration.live_client import connect, transcribe, wav_pcm


def triton_child(server_pid: int) -> int:
    out = subprocess.run(["pgrep", "-P", str(server_pid), "-f", "tritonserver"], capture_output=True, text=True)
    pids = [int(p) for p in out.stdout.split()]
    assert len(pids) == 1, f"expected one tritonserver child, got {pids}"
    return pids[0]


async def test_triton_crash_closes_net0000_then_service_recovers(tmp_path: Path) -> None:
    env = {"DDX_STT_REPOSITORY_DIR": str(tmp_path / "repo"), "DDX_STT_API_KEYS": ""}
    server = start_server(tmp_path, "crash", [], env, timeout=300)
    try:
        session = await connect(server.ws, token="dummy")
        await session.send_audio(wav_pcm("speaker_a.wav")[:40000])
        await session.wait_for(lambda f: f.get("type") == "Metadata")
        first = triton_child(server.process.pid)
        os.kill(first, signal.SIGKILL)
        # Keep streaming: the next chunk meets the dead server, which closes the session.
        with contextlib.suppress(ConnectionClosed):
            await session.send_audio(wav_pcm("speaker_a.wav"), pace_s=0.01)
        result = await session.finish(timeout=60)
        assert (result.close_code, result.close_reason) == (1011, "NET-0000")
        assert result.frames[-1]["type"] == "Metadata"

        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                if server.health().get("status") == "ok" and triton_child(server.process.pid) != first:
                    break
            except (OSError, AssertionError):
                pass
            await asyncio.sleep(0.5)
        else:
            raise AssertionError("Triton was not restarted:\n" + server.log_tail())
        after = await transcribe(server.ws, wav_pcm("speaker_b.wav"), token="dummy")
        assert after.close_code == 1000 and after.finals
    finally:
        assert stop_server(server) == 0, server.log_tail()
