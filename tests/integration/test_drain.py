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


def test_console_script_serves_from_any_directory(tmp_path: Path) -> None:
    """The README's `ddx-stt serve` works outside the checkout and stops its Triton on SIGTERM."""
    import subprocess
    import sys
    import time

    from tests.integration.conftest import free_port

    script = Path(sys.executable).with_name("ddx-stt")
    assert script.exists(), "install with: pip install -e ."
    port = free_port()
    log = (tmp_path / "serve.log").open("wb")
    env = {"DDX_STT_REPOSITORY_DIR": str(tmp_path / "repo"), "PATH": "/usr/bin:/bin"}
    process = subprocess.Popen([str(script), "serve", "--host", "127.0.0.1", "--port", str(port)],
                               cwd=tmp_path, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            assert process.poll() is None, (tmp_path / "serve.log").read_text()
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as response:
                    if response.status == 200:
                        break
            except OSError:
                time.sleep(0.5)
        else:
            raise AssertionError((tmp_path / "serve.log").read_text())
        children = subprocess.run(["pgrep", "-P", str(process.pid)], capture_output=True, text=True).stdout.split()
        assert children, "the embedded tritonserver child should be running"
        process.send_signal(signal.SIGTERM)
        assert process.wait(60) == 0
        for pid in children:
            assert not Path(f"/proc/{pid}").exists() or "zombie" in Path(f"/proc/{pid}/status").read_text().lower()
    finally:
        if process.poll() is None:
            process.kill()
