"""`ddx-stt`: the service's command line.

`ddx-stt serve` without `--triton-url` generates the embedded model repository, starts the
`tritonserver` shipped in the nvidia-pytriton wheel as a supervised child, waits for its models,
then serves. SIGTERM/SIGINT drain: sessions flush finals, send Metadata and close 1000, then
Triton stops.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from typing import Any

from aiohttp import web

from frontend import config as config_module
from frontend.app import drain, make_app, make_runtime
from frontend.config import REPO_ROOT, Config

log = logging.getLogger("ddx_stt")


async def serve(cfg: Config) -> None:
    """Run until SIGTERM/SIGINT, then drain and stop."""
    triton = None
    triton_url = cfg.triton_url
    if cfg.embedded:
        # The builder is `scripts/build_model_repository.py`, which model-ops teams also run by
        # hand; like the templates and models it reads, it comes from the checkout this editable
        # install points at, whatever the working directory. Imported here so `--triton-url`
        # deployments never touch it.
        if str(REPO_ROOT) not in sys.path:
            sys.path.insert(0, str(REPO_ROOT))
        from frontend.triton.server import EmbeddedTriton
        from scripts.build_model_repository import build_repository

        names = build_repository("embedded", list(cfg.model_dirs), cfg.repository_dir,
                                 encoder_threads=cfg.encoder_threads, precision=cfg.precision,
                                 head=cfg.head, decoding=cfg.decoding)
        log.info("generated %s with %s", cfg.repository_dir, ", ".join(names))
        triton = EmbeddedTriton(cfg.repository_dir, grpc_port=cfg.triton_grpc_port)
        await triton.start(timeout=cfg.triton_start_timeout_s)
        triton_url = triton.grpc_url

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)

    runner: web.AppRunner | None = None
    runtime = None
    try:
        runtime = await make_runtime(cfg, triton_url)
        runner = web.AppRunner(make_app(runtime), handle_signals=False, shutdown_timeout=1.0)
        await runner.setup()
        site = web.TCPSite(runner, cfg.host, cfg.port, reuse_port=True)
        await site.start()
        log.info(
            "serving on http://%s:%d (triton %s, models %s)",
            cfg.host, cfg.port, triton_url, ", ".join(sorted(runtime.models.ensembles)),
        )
        waiters: list[asyncio.Task[Any]] = [asyncio.create_task(stop.wait())]
        if triton is not None:
            waiters.append(asyncio.create_task(triton.wait_exit()))
        done, pending = await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
        for task in pending:
            task.cancel()
        if not stop.is_set():
            log.error("embedded Triton exited unexpectedly; shutting down")
        log.info("shutting down")
        await drain(runtime, cfg.drain_timeout_s)
    finally:
        if runner is not None:
            await runner.cleanup()
        if runtime is not None:
            await runtime.client.close()
        if triton is not None:
            await triton.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="ddx-stt", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    serve_parser = commands.add_parser("serve", help="serve the Deepgram-compatible API")
    config_module.add_arguments(serve_parser)
    commands.add_parser("config-table", help="print the configuration table (Markdown)")
    args = parser.parse_args(argv)

    if args.command == "config-table":
        sys.stdout.write(config_module.markdown_table() + "\n")
        return 0

    cfg = config_module.resolve(args)
    logging.basicConfig(
        level=cfg.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    asyncio.run(serve(cfg))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
