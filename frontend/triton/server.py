"""Supervise the ``tritonserver`` binary of the nvidia-pytriton wheel as an asyncio child.

The wheel ships Triton 2.51 with the Python backend and one backend stub per Python
version. ``EmbeddedTriton`` prepares a backend folder holding the stub of the *running*
interpreter, starts the server on a generated model repository (``--model-control-mode
none``: every model in it loads at start), waits until the server and every model are
ready, and stops it with SIGTERM, then SIGKILL. The child's Python models import numpy and
onnxruntime from this process's environment (``PYTHONPATH``) and embed this interpreter's
``libpython`` (``LD_LIBRARY_PATH``), so the serving environment is the one that runs us.

If the child dies unexpectedly it is restarted (same ports) up to ``max_restarts`` times;
after that ``wait_exit()`` returns so the owner can shut down. Nothing here blocks the
event loop: the child runs under ``asyncio.create_subprocess_exec`` and readiness is
polled over HTTP with asyncio streams.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import os
import signal
import socket
import sys
import sysconfig
import tempfile
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

log = logging.getLogger(__name__)

_LOG_TAIL_LINES = 200
_EXIT_POLL_S = 0.5


class TritonStartError(RuntimeError):
    """Triton could not be started or did not become ready; the message ends with its log tail."""


@dataclass(frozen=True)
class TritonDistribution:
    """Where the wheel keeps the server binary, its libraries and the Python backend."""

    binary: Path
    libs: Path
    python_backend: Path
    stub: Path

    @classmethod
    def find(cls, python_version: str | None = None) -> TritonDistribution:
        """Locate the files inside the installed ``pytriton`` package.

        Raises ``TritonStartError`` when the wheel or the stub for ``python_version``
        (default: the running interpreter's ``X.Y``) is missing.
        """
        import importlib.util

        spec = importlib.util.find_spec("pytriton")
        if spec is None or not spec.submodule_search_locations:
            raise TritonStartError("nvidia-pytriton is not installed (pip install nvidia-pytriton)")
        root = Path(next(iter(spec.submodule_search_locations)))
        version = python_version or f"{sys.version_info.major}.{sys.version_info.minor}"
        dist = cls(
            binary=root / "tritonserver" / "bin" / "tritonserver",
            libs=root.parent / "nvidia_pytriton.libs",
            python_backend=root / "tritonserver" / "backends" / "python",
            stub=root / "tritonserver" / "python_backend_stubs" / version / "triton_python_backend_stub",
        )
        for path in (dist.binary, dist.python_backend / "libtriton_python.so", dist.stub):
            if not path.exists():
                raise TritonStartError(f"{path} not found in the nvidia-pytriton wheel (Python {version})")
        return dist


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that nothing listens on right now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def prepare_backends(dist: TritonDistribution, folder: Path) -> Path:
    """A ``--backend-directory`` whose ``python/`` holds the backend and this Python's stub.

    Everything is symlinked: the backend finds the stub next to ``libtriton_python.so`` in
    the folder Triton loaded it from.
    """
    python_dir = folder / "python"
    python_dir.mkdir(parents=True, exist_ok=True)
    links = {
        "libtriton_python.so": dist.python_backend / "libtriton_python.so",
        "triton_python_backend_utils.py": dist.python_backend / "triton_python_backend_utils.py",
        "triton_python_backend_stub": dist.stub,
    }
    for name, target in links.items():
        link = python_dir / name
        if link.is_symlink() or link.exists():
            link.unlink()
        link.symlink_to(target.resolve())
    return folder


def child_environment(dist: TritonDistribution, base: dict[str, str] | None = None) -> dict[str, str]:
    """Environment for ``tritonserver`` and its Python stubs.

    * ``LD_LIBRARY_PATH``: this interpreter's ``libpython`` first (the stub links
      ``libpython3.X.so.1.0`` and would otherwise pick the system's), then the wheel's libs.
    * ``PYTHONPATH``: this interpreter's non-stdlib ``sys.path`` (site-packages of the venv,
      .pth additions), so model.py imports the same numpy and onnxruntime.
    * One BLAS/OpenMP thread: numpy runs small matrices and each model is its own process;
      the encoder's onnxruntime threads are configured in its model config.
    """
    env = dict(os.environ if base is None else base)
    lib_dirs = []
    if sysconfig.get_config_var("Py_ENABLE_SHARED"):
        lib_dirs.append(str(sysconfig.get_config_var("LIBDIR")))
    lib_dirs.append(str(dist.libs))
    if env.get("LD_LIBRARY_PATH"):
        lib_dirs.append(env["LD_LIBRARY_PATH"])
    env["LD_LIBRARY_PATH"] = os.pathsep.join(lib_dirs)

    stdlib = {Path(sysconfig.get_path(k)).resolve() for k in ("stdlib", "platstdlib")}
    paths = []
    for entry in sys.path:
        if not entry or not Path(entry).is_dir():
            continue
        resolved = Path(entry).resolve()
        if resolved in stdlib or any(parent in stdlib for parent in resolved.parents):
            continue  # the stub's own interpreter brings its stdlib (lib-dynload included)
        paths.append(str(resolved))
    if env.get("PYTHONPATH"):
        paths.append(env["PYTHONPATH"])
    env["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(paths))
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        env.setdefault(var, "1")
    return env


async def http_get_status(host: str, port: int, path: str, timeout: float = 2.0) -> int:
    """Status code of ``GET path`` (0 when nothing answers)."""
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), timeout)
    except (TimeoutError, OSError):
        return 0
    try:
        writer.write(f"GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode())
        await writer.drain()
        line = await asyncio.wait_for(reader.readline(), timeout)
        parts = line.split()
        return int(parts[1]) if len(parts) >= 2 and parts[1].isdigit() else 0
    except (TimeoutError, OSError, ValueError):
        return 0
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()


class EmbeddedTriton:
    """One supervised ``tritonserver`` child serving ``model_repository`` on localhost.

    ``grpc_port``/``http_port``/``metrics_port``: 0 or None picks a free port. ``models``:
    names that must be ready before ``start`` returns (default: whatever the repository
    holds, through Triton's strict readiness). Use ``async with`` or ``start``/``stop``.
    """

    def __init__(
        self,
        model_repository: str | os.PathLike[str],
        *,
        grpc_port: int | None = None,
        http_port: int | None = None,
        metrics_port: int | None = None,
        host: str = "127.0.0.1",
        models: list[str] | None = None,
        workdir: str | os.PathLike[str] | None = None,
        max_restarts: int = 3,
        log_verbose: int = 0,
        stop_timeout_s: float = 15.0,
        extra_args: tuple[str, ...] = (),
    ) -> None:
        self.model_repository = Path(model_repository).resolve()
        self.host = host
        self._fixed_ports = (grpc_port or 0, http_port or 0, metrics_port or 0)
        self.grpc_port, self.http_port, self.metrics_port = self._pick_ports()
        self.models = list(models or [])
        self.max_restarts = max_restarts
        self.log_verbose = log_verbose
        self.stop_timeout_s = stop_timeout_s
        self.extra_args = extra_args
        self._workdir_arg = Path(workdir) if workdir else None
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        self._proc: asyncio.subprocess.Process | None = None
        self._pump: asyncio.Task[None] | None = None
        self._watch: asyncio.Task[None] | None = None
        self._tail: collections.deque[str] = collections.deque(maxlen=_LOG_TAIL_LINES)
        self._stopping = False
        self._exited = asyncio.Event()
        self._start_timeout = 180.0
        self.restarts = 0
        self.exit_code: int | None = None

    # ------------------------------------------------------------------ public surface

    @property
    def grpc_url(self) -> str:
        """``host:port`` for ``tritonclient.grpc.aio.InferenceServerClient(url=...)``."""
        return f"{self.host}:{self.grpc_port}"

    @property
    def http_url(self) -> str:
        """``http://host:port`` of Triton's HTTP/REST endpoint."""
        return f"http://{self.host}:{self.http_port}"

    @property
    def metrics_url(self) -> str:
        """Prometheus metrics (includes the models' ``ddx_live_sequences`` gauge)."""
        return f"http://{self.host}:{self.metrics_port}/metrics"

    @property
    def running(self) -> bool:
        """True while the child process is alive."""
        return self._proc is not None and self._proc.returncode is None

    @property
    def pid(self) -> int | None:
        """Process id of the current child, if any."""
        return self._proc.pid if self._proc else None

    def _pick_ports(self) -> tuple[int, int, int]:
        """The given ports, and free ones where none was given."""
        grpc, http, metrics = (p or free_port(self.host) for p in self._fixed_ports)
        return grpc, http, metrics

    def log_tail(self, lines: int = 60) -> str:
        """The last lines Triton wrote (stdout and stderr merged)."""
        return "".join(list(self._tail)[-lines:])

    async def start(self, timeout: float = 180.0) -> None:
        """Start the child and wait until it and every model are ready.

        Raises ``TritonStartError`` (with Triton's log tail) on failure or timeout; the
        child is stopped in that case.
        """
        if self.running:
            raise RuntimeError("already running")
        self._start_timeout = timeout
        for attempt in range(3):
            self._stopping = False
            self._exited.clear()
            try:
                await self._spawn()
                await self._wait_ready(timeout)
                break
            except TritonStartError:
                await self.stop()
                # A port picked free a moment ago can be taken before Triton binds it.
                auto_ports = not all(self._fixed_ports)
                if attempt == 2 or not auto_ports or "already in use" not in self.log_tail(200):
                    raise
                log.warning("a Triton port was taken meanwhile; retrying with other free ports")
                self.grpc_port, self.http_port, self.metrics_port = self._pick_ports()
            except BaseException:
                await self.stop()
                raise
        self._watch = asyncio.create_task(self._supervise(), name="triton-supervisor")

    async def stop(self) -> None:
        """SIGTERM, wait ``stop_timeout_s``, then SIGKILL the child's process group."""
        self._stopping = True
        if self._watch is not None and self._watch is not asyncio.current_task():
            self._watch.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watch
            self._watch = None
        await self._terminate()
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None
        self._exited.set()

    async def wait_exit(self) -> int | None:
        """Return when the server is gone for good (stopped, or restarts exhausted)."""
        await self._exited.wait()
        return self.exit_code

    async def __aenter__(self) -> EmbeddedTriton:
        await self.start(self._start_timeout)
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()

    # ------------------------------------------------------------------ internals

    def _workdir(self) -> Path:
        if self._workdir_arg is not None:
            self._workdir_arg.mkdir(parents=True, exist_ok=True)
            return self._workdir_arg
        if self._tmp is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="ddx-triton-")
        return Path(self._tmp.name)

    def command(self, dist: TritonDistribution, backend_dir: Path) -> list[str]:
        """The ``tritonserver`` command line."""
        return [
            str(dist.binary),
            f"--model-repository={self.model_repository}",
            f"--backend-directory={backend_dir}",
            "--model-control-mode=none",
            # Our configs are complete; Triton must not guess missing fields.
            "--disable-auto-complete-config",
            "--strict-readiness=true",
            "--exit-on-error=true",
            f"--grpc-address={self.host}",
            f"--grpc-port={self.grpc_port}",
            f"--http-address={self.host}",
            f"--http-port={self.http_port}",
            "--allow-metrics=true",
            "--allow-gpu-metrics=false",
            f"--metrics-address={self.host}",
            f"--metrics-port={self.metrics_port}",
            # No GPU here: do not try to allocate CUDA pinned memory.
            "--pinned-memory-pool-byte-size=0",
            f"--log-verbose={self.log_verbose}",
            "--exit-timeout-secs=5",
            *self.extra_args,
        ]

    async def _spawn(self) -> None:
        dist = TritonDistribution.find()
        if not self.model_repository.is_dir():
            raise TritonStartError(f"model repository {self.model_repository} does not exist")
        backend_dir = prepare_backends(dist, self._workdir() / "backends")
        cmd = self.command(dist, backend_dir)
        log.info("starting %s (grpc %s)", dist.binary, self.grpc_url)
        log.debug("command: %s", " ".join(cmd))
        self._tail.clear()
        self._proc = await asyncio.create_subprocess_exec(
            *cmd,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            env=child_environment(dist),
            # Own process group: stubs die with the server, and a terminal's Ctrl-C reaches
            # our handler (which drains sessions first) rather than Triton directly.
            start_new_session=True,
        )
        self._pump = asyncio.create_task(self._read_output(self._proc), name="triton-log")

    async def _read_output(self, proc: asyncio.subprocess.Process) -> None:
        """Keep the pipe drained (a full pipe would block Triton) and the last lines at hand.

        Reads blocks, not lines: Triton's tables make lines long, and a line past the
        StreamReader limit must not stop the reader.
        """
        assert proc.stdout is not None
        pending = b""
        while block := await proc.stdout.read(1 << 16):
            *lines, pending = (pending + block).split(b"\n")
            for raw in lines:
                line = raw.decode(errors="replace")
                self._tail.append(line + "\n")
                log.debug("triton: %s", line)
        if pending:
            self._tail.append(pending.decode(errors="replace") + "\n")

    async def _wait_ready(self, timeout: float) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        paths = ["/v2/health/ready", *(f"/v2/models/{name}/ready" for name in self.models)]
        pending = list(paths)
        while pending:
            if not self.running:
                await self._drain_output()
                raise TritonStartError(
                    f"tritonserver exited with code {self._proc.returncode if self._proc else None} "
                    f"before it was ready; log tail:\n{self.log_tail()}"
                )
            if loop.time() > deadline:
                raise TritonStartError(
                    f"tritonserver not ready after {timeout:.0f} s (waiting for {pending[0]}); "
                    f"log tail:\n{self.log_tail()}"
                )
            if await http_get_status(self.host, self.http_port, pending[0]) == 200:
                pending.pop(0)
                continue
            await asyncio.sleep(0.25)
        log.info("tritonserver ready on %s (pid %s)", self.grpc_url, self.pid)

    async def _drain_output(self) -> None:
        if self._pump is not None:
            with contextlib.suppress(asyncio.TimeoutError, asyncio.CancelledError):
                await asyncio.wait_for(asyncio.shield(self._pump), 2.0)

    async def _supervise(self) -> None:
        """Restart the child when it dies on its own; give up after ``max_restarts``."""
        while True:
            assert self._proc is not None
            # Not `await proc.wait()`: asyncio resolves it only once every pipe is closed, and
            # the Python-backend stubs of a killed server inherit its stdout and may keep it
            # open for a long while. `returncode` is set as soon as the child itself exits.
            while self._proc.returncode is None:
                await asyncio.sleep(_EXIT_POLL_S)
            code = self._proc.returncode
            if not self._stopping:
                # Stubs of the dead server must not linger next to the new one's.
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(self._proc.pid, signal.SIGKILL)
            await self._drain_output()
            if self._stopping:
                return
            self.exit_code = code
            log.error("tritonserver exited unexpectedly with code %s; log tail:\n%s", code, self.log_tail(30))
            if self.restarts >= self.max_restarts:
                log.error("tritonserver restarted %d times already; giving up", self.restarts)
                self._exited.set()
                return
            self.restarts += 1
            await asyncio.sleep(min(2.0**self.restarts, 30.0))
            try:
                await self._spawn()
                await self._wait_ready(self._start_timeout)
            except TritonStartError as exc:
                log.error("restart %d failed: %s", self.restarts, exc)
                await self._terminate()
                self._exited.set()
                return
            log.warning("tritonserver restarted (%d/%d); open sequences were lost", self.restarts, self.max_restarts)

    async def _terminate(self) -> None:
        proc = self._proc
        if proc is None:
            return
        if proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(proc.wait(), self.stop_timeout_s)
            except TimeoutError:
                log.warning("tritonserver ignored SIGTERM for %.0f s; killing it", self.stop_timeout_s)
        # The process group holds the Python backend stubs: make sure none outlives us.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
        if proc.returncode is None:
            await proc.wait()
        await self._drain_output()
        if self.exit_code is None:
            self.exit_code = proc.returncode
        self._proc = None
