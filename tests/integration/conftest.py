"""Real servers for the integration tests.

`server` is `ddx-stt serve` exactly as the README starts it: it generates the embedded model
repository and supervises the real `tritonserver`. `open_server` is a second frontend process in
open-key mode that reuses that Triton through `--triton-url`, which also exercises the
external-Triton deployment. Both are started once per test session.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import pytest

REPO = Path(__file__).resolve().parents[2]
API_KEY = "test-key-1"
IDLE_TIMEOUT_S = 3.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Server:
    """A running `ddx-stt serve` process."""

    process: subprocess.Popen[bytes]
    port: int
    log_path: Path

    @property
    def http(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    def health(self) -> dict[str, object]:
        with urllib.request.urlopen(self.http + "/healthz", timeout=5) as response:
            return json.loads(response.read())

    def log_tail(self, n: int = 60) -> str:
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])


def start_server(tmp: Path, name: str, args: list[str], env: dict[str, str], timeout: float) -> Server:
    port = free_port()
    log_path = tmp / f"{name}.log"
    log_file = open(log_path, "wb")  # noqa: SIM115 - closed with the process
    process = subprocess.Popen(
        [sys.executable, "-m", "frontend.cli", "serve", "--host", "127.0.0.1", "--port", str(port), *args],
        cwd=REPO,
        env={**os.environ, **env},
        stdout=log_file,
        stderr=subprocess.STDOUT,
    )
    server = Server(process, port, log_path)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{name} exited with {process.returncode}:\n{server.log_tail()}")
        try:
            if server.health().get("status") == "ok":
                return server
        except OSError:
            pass
        time.sleep(0.5)
    process.kill()
    raise RuntimeError(f"{name} not healthy after {timeout}s:\n{server.log_tail()}")


def stop_server(server: Server, timeout: float = 30.0) -> int:
    if server.process.poll() is None:
        server.process.send_signal(signal.SIGTERM)
        try:
            server.process.wait(timeout)
        except subprocess.TimeoutExpired:
            server.process.kill()
            server.process.wait()
    return server.process.returncode


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    tmp = tmp_path_factory.mktemp("server")
    env = {
        "DDX_STT_API_KEYS": f"{API_KEY},second-key",
        "DDX_STT_IDLE_TIMEOUT_S": str(IDLE_TIMEOUT_S),
        "DDX_STT_REPOSITORY_DIR": str(tmp / "model_repository"),
        "DDX_STT_LOG_LEVEL": "INFO",
    }
    srv = start_server(tmp, "embedded", [], env, timeout=300)
    yield srv
    assert stop_server(srv) == 0, srv.log_tail()
    log_text = srv.log_path.read_text(errors="replace")
    assert "Traceback" not in log_text, "server logged a traceback:\n" + srv.log_tail(120)


@pytest.fixture(scope="session")
def open_server(server: Server, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    tmp = tmp_path_factory.mktemp("open")
    triton_url = str(server.health()["triton_url"])
    env = {"DDX_STT_API_KEYS": "", "DDX_STT_IDLE_TIMEOUT_S": str(IDLE_TIMEOUT_S)}
    srv = start_server(tmp, "open", ["--triton-url", triton_url], env, timeout=60)
    yield srv
    assert stop_server(srv) == 0, srv.log_tail()


def frontend_only(server: Server, tmp: Path, **env: str) -> Server:
    """Another frontend on the same Triton, for tests that must kill or drain their own process."""
    triton_url = str(server.health()["triton_url"])
    return start_server(tmp, "extra", ["--triton-url", triton_url], {"DDX_STT_API_KEYS": "", **env}, timeout=60)
