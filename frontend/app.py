"""The aiohttp adapter: HTTP handshake, WebSocket I/O and Triton streams around the session core.

Everything protocol-shaped is decided by `frontend.session.core.Session`; this module only moves
bytes, frames and chunks, runs the timers, and guarantees cleanup (every Triton sequence ended,
every session removed from the registry) however a connection ends.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from aiohttp import WSMsgType, web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from tritonclient.grpc import aio as grpc_aio

from frontend.audio.normalize import AudioNormalizer
from frontend.config import Config
from frontend.metrics import Metrics
from frontend.protocol.auth import KeyStore, authenticate
from frontend.protocol.errors import HandshakeError, ServiceUnavailable
from frontend.protocol.models import ModelRoute, ModelTable
from frontend.protocol.params import ListenParams, parse_listen_params
from frontend.session.core import Action, ChunkResult, CloseConnection, Infer, SendFrame, Session
from frontend.triton.catalog import load_manifests, ready_ensembles
from frontend.triton.stream import SequenceStream
from frontend.vad.silero import SileroVad

log = logging.getLogger(__name__)

TICK_S = 0.25
# Silero decides in 32 ms windows; below ~200 ms of silence it ends "utterances" between words,
# so Deepgram's 10 ms default endpointing is honoured as this floor.
ENDPOINTING_FLOOR_MS = 200


@dataclass
class Runtime:
    """Process-wide state shared by all connections."""

    config: Config
    triton_url: str
    client: grpc_aio.InferenceServerClient
    models: ModelTable
    keystore: KeyStore
    metrics: Metrics = field(default_factory=Metrics)
    connections: set["Connection"] = field(default_factory=set)
    draining: bool = False


RUNTIME = web.AppKey("runtime", Runtime)


def _error_response(error: HandshakeError, request_id: str) -> web.Response:
    return web.json_response(error.body(request_id), status=error.http_status, headers=error.headers(request_id))


class Connection:
    """One accepted WebSocket: a `Session` plus the tasks and streams that serve it."""

    def __init__(
        self, runtime: Runtime, ws: web.WebSocketResponse, params: ListenParams, route: ModelRoute, request_id: str
    ) -> None:
        cfg = runtime.config
        self.runtime = runtime
        self.ws = ws
        self.route = route
        self.request_id = request_id
        self.log = logging.LoggerAdapter(log, {"request_id": request_id})
        vad_factory = None
        if params.endpointing is not None or params.vad_events:
            silence_ms = max(params.endpointing or 0, ENDPOINTING_FLOOR_MS)

            def vad_factory() -> SileroVad:
                return SileroVad(min_silence_ms=silence_ms)

        self.audio = AudioNormalizer(
            params.encoding,
            params.sample_rate,
            params.channels,
            params.multichannel,
            max_channels=cfg.max_channels,
            max_sample_rate=cfg.max_sample_rate,
        )
        self.session = Session(
            params,
            route,
            request_id,
            audio=self.audio,
            vad_factory=vad_factory,
            now=self.now(),
            idle_timeout_s=cfg.idle_timeout_s,
            finalize_timeout_s=cfg.finalize_timeout_s,
            max_segment_s=cfg.max_segment_s,
        )
        self._streams: dict[int, SequenceStream] = {}
        self._sent_at: dict[tuple[int, int], float] = {}
        self._out: asyncio.Queue[SendFrame | CloseConnection] = asyncio.Queue()
        self._closed_by_server = False

    @staticmethod
    def now() -> float:
        return time.monotonic()

    def _stream(self, channel: int) -> SequenceStream:
        stream = self._streams.get(channel)
        if stream is None:

            async def on_result(seq: int, result: ChunkResult) -> None:
                sent = self._sent_at.pop((channel, seq), None)
                if sent is not None:
                    self.runtime.metrics.chunk_latency.observe(self.now() - sent)
                await self.apply(self.session.receive_result(channel, seq, result, self.now()))

            async def on_error(message: str) -> None:
                self.runtime.metrics.triton_errors.inc()
                await self.apply(self.session.recognizer_failed(channel, message, self.now()))

            stream = SequenceStream(
                self.runtime.client,
                self.route.ensemble,
                self.route.first_chunk_samples,
                on_result=on_result,
                on_error=on_error,
                max_pending=self.runtime.config.max_pending_chunks,
                log_extra={"request_id": self.request_id, "channel": channel},
            )
            self._streams[channel] = stream
            self.runtime.metrics.triton_sequences_open.inc()
        return stream

    async def apply(self, actions: list[Action]) -> None:
        """Carry out the session's actions in order; Infer may wait for queue space (backpressure)."""
        for action in actions:
            if isinstance(action, Infer):
                if not action.end:
                    self._sent_at[(action.channel, action.seq)] = self.now()
                await self._stream(action.channel).send(action)
            else:
                self._out.put_nowait(action)

    async def _write_loop(self) -> None:
        metrics = self.runtime.metrics
        while True:
            item = await self._out.get()
            if isinstance(item, CloseConnection):
                self._closed_by_server = True
                metrics.closes.labels(code=str(item.code), reason=item.reason).inc()
                self.log.info("closing %s %s", item.code, item.reason)
                await self.ws.close(code=item.code, message=item.reason.encode())
                return
            try:
                await self.ws.send_str(item.frame.to_json())
            except (ConnectionError, RuntimeError) as exc:
                self.log.info("peer gone while sending: %s", exc)
                return
            metrics.frames_sent.labels(type=item.frame.type).inc()

    async def _tick_loop(self) -> None:
        while True:
            await asyncio.sleep(TICK_S)
            await self.apply(self.session.tick(self.now()))

    async def run(self) -> None:
        """Serve the connection until either side closes; always clean up."""
        writer = asyncio.create_task(self._write_loop(), name=f"ws-writer-{self.request_id}")
        ticker = asyncio.create_task(self._tick_loop(), name=f"ws-ticker-{self.request_id}")
        try:
            await self.apply(self.session.open(self.now()))
            async for msg in self.ws:
                if msg.type == WSMsgType.BINARY:
                    await self.apply(self.session.receive_bytes(msg.data, self.now()))
                elif msg.type == WSMsgType.TEXT:
                    await self.apply(self.session.receive_text(msg.data, self.now()))
                elif msg.type == WSMsgType.ERROR:
                    self.log.info("websocket error: %s", self.ws.exception())
                    break
        finally:
            if not self._closed_by_server:
                # The peer left first: nothing more can be sent, but Triton must hear END.
                await self.apply(self.session.connection_lost(self.now()))
                writer.cancel()
            else:
                await asyncio.gather(writer, return_exceptions=True)
            ticker.cancel()
            await asyncio.gather(writer, ticker, return_exceptions=True)
            self.audio.close()
            timeout = self.runtime.config.finalize_timeout_s
            await asyncio.gather(*(s.close(timeout) for s in self._streams.values()), return_exceptions=True)
            self.runtime.metrics.triton_sequences_open.dec(len(self._streams))
            self.runtime.metrics.audio_seconds.inc(self.session.audio_seconds)

    async def drain(self) -> None:
        """Server shutdown: flush finals, send Metadata, close 1000."""
        await self.apply(self.session.shutdown(self.now()))


async def listen(request: web.Request) -> web.StreamResponse:
    """`GET /v1/listen` and `/v1/listen/dg`: the Deepgram live protocol."""
    runtime = request.app[RUNTIME]
    request_id = str(uuid.uuid4())
    try:
        if runtime.draining:
            raise ServiceUnavailable("The server is shutting down.")
        credential = authenticate(request.headers, runtime.keystore)
        params = parse_listen_params(request.query)
        route = runtime.models.resolve(params)
    except HandshakeError as error:
        runtime.metrics.handshake_rejections.labels(status=str(error.http_status)).inc()
        log.info("handshake refused %s %s: %s", request_id, error.http_status, error.err_msg)
        return _error_response(error, request_id)

    protocols = (credential.subprotocol,) if credential.subprotocol else ()
    ws = web.WebSocketResponse(
        protocols=protocols,
        autoping=True,
        heartbeat=None,
        max_msg_size=runtime.config.max_message_bytes,
    )
    ready = ws.can_prepare(request)
    if not ready.ok:
        return web.json_response(
            {"err_code": "Bad Request", "err_msg": "Expected a WebSocket upgrade.", "request_id": request_id},
            status=426,
            headers={"dg-request-id": request_id, "Upgrade": "websocket"},
        )
    ws.headers["dg-request-id"] = request_id
    await ws.prepare(request)
    connection = Connection(runtime, ws, params, route, request_id)
    runtime.connections.add(connection)
    runtime.metrics.sessions_total.inc()
    runtime.metrics.sessions_active.inc()
    try:
        await connection.run()
    finally:
        runtime.connections.discard(connection)
        runtime.metrics.sessions_active.dec()
    return ws


async def healthz(request: web.Request) -> web.Response:
    """200 only when Triton and every ASR ensemble are ready."""
    runtime = request.app[RUNTIME]
    body: dict[str, Any] = {"triton_url": runtime.triton_url, "models": [], "draining": runtime.draining}
    try:
        server_ready = await runtime.client.is_server_ready(client_timeout=2.0)
        ensembles = await ready_ensembles(runtime.client)
    except Exception as exc:  # noqa: BLE001 - any failure to reach Triton means not ready
        body.update(status="triton-unreachable", error=str(exc))
        return web.json_response(body, status=503)
    expected = sorted(runtime.models.ensembles)
    body["models"] = ensembles
    ok = server_ready and all(name in ensembles for name in expected) and not runtime.draining
    body["status"] = "ok" if ok else "not-ready"
    return web.json_response(body, status=200 if ok else 503)


async def metrics(request: web.Request) -> web.Response:
    registry = request.app[RUNTIME].metrics.registry
    return web.Response(body=generate_latest(registry), headers={"Content-Type": CONTENT_TYPE_LATEST})


async def make_runtime(config: Config, triton_url: str) -> Runtime:
    """Connect to Triton and build the model table from what it serves."""
    client = grpc_aio.InferenceServerClient(url=triton_url)
    manifests = await load_manifests(client)
    if not manifests:
        await client.close()
        raise RuntimeError(f"Triton at {triton_url} serves no ASR ensemble (asr_*) with a manifest")
    keystore = KeyStore.from_sources(config.api_keys, config.api_key_file)
    if keystore.open_mode:
        log.warning("no API keys configured: any non-empty token is accepted (set DDX_STT_API_KEYS)")
    return Runtime(config=config, triton_url=triton_url, client=client, models=ModelTable(manifests), keystore=keystore)


def make_app(runtime: Runtime) -> web.Application:
    """The aiohttp application; routes as in the integration guide."""
    app = web.Application()
    app[RUNTIME] = runtime
    app.router.add_get("/v1/listen", listen)
    app.router.add_get("/v1/listen/dg", listen)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/metrics", metrics)
    return app


async def drain(runtime: Runtime, timeout: float) -> None:
    """Stop accepting, let every session flush and close, give up after `timeout`."""
    runtime.draining = True
    connections = list(runtime.connections)
    log.info("draining %d sessions", len(connections))
    for connection in connections:
        await connection.drain()
    deadline = time.monotonic() + timeout
    while runtime.connections and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    if runtime.connections:
        log.warning("%d sessions still open after %.1fs drain", len(runtime.connections), timeout)


def describe(runtime: Runtime) -> str:
    return json.dumps({"triton_url": runtime.triton_url, "models": sorted(runtime.models.ensembles)})
