"""``EmbeddedTriton``: start errors carry Triton's log, a dead child is restarted or reported."""

from __future__ import annotations

import asyncio
import os
import signal
from pathlib import Path

import pytest

from frontend.triton.server import EmbeddedTriton, TritonStartError, http_get_status
from scripts.build_model_repository import build_repository
from tests.triton.helpers import MODEL_DIR

pytestmark = pytest.mark.asyncio(loop_scope="session")


@pytest.fixture(scope="module")
def small_repo(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[str]]:
    repo = tmp_path_factory.mktemp("sup") / "repo"
    return repo, build_repository("embedded", [MODEL_DIR], repo, profiles=["la1"])


async def test_a_broken_model_fails_start_with_the_log_tail(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    build_repository("embedded", [MODEL_DIR], repo, profiles=["la1"])
    config = repo / "embedded_la1_decoder" / "config.pbtxt"
    # A blank id outside the vocabulary: the decoder's initialize must refuse it.
    config.write_text(config.read_text().replace('string_value: "256"', 'string_value: "9999"'))
    triton = EmbeddedTriton(repo)
    with pytest.raises(TritonStartError, match="blank_id 9999"):
        await triton.start(timeout=120)
    assert not triton.running


async def test_dead_child_is_restarted_then_reported(small_repo: tuple[Path, list[str]]) -> None:
    repo, names = small_repo
    triton = EmbeddedTriton(repo, models=names, max_restarts=1)
    await triton.start(timeout=120)
    try:
        url = triton.grpc_url
        first = triton.pid
        assert first is not None
        os.kill(first, signal.SIGKILL)
        for _ in range(240):
            await asyncio.sleep(0.25)
            restarted = triton.restarts == 1 and triton.running and triton.pid != first
            ready = f"/v2/models/{names[0]}/ready"
            if restarted and await http_get_status(triton.host, triton.http_port, ready) == 200:
                break
        else:
            pytest.fail(f"not restarted; log:\n{triton.log_tail()}")
        assert triton.grpc_url == url  # same ports after a restart
        second = triton.pid
        assert second is not None
        os.kill(second, signal.SIGKILL)
        code = await asyncio.wait_for(triton.wait_exit(), 60)
        assert code == -signal.SIGKILL
    finally:
        await triton.stop()
    assert not triton.running


async def test_stop_is_clean_and_idempotent(small_repo: tuple[Path, list[str]]) -> None:
    repo, names = small_repo
    async with EmbeddedTriton(repo, models=names) as triton:
        assert triton.running
        assert await http_get_status(triton.host, triton.http_port, "/v2/health/ready") == 200
        pid = triton.pid
    assert not triton.running and triton.exit_code == 0
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)  # type: ignore[arg-type]
    await triton.stop()
