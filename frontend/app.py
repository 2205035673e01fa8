"""The aiohttp adapter: HTTP handshake, WebSocket I/O and Triton streams around the session core.

Everything protocol-shaped is decided by `frontend.session.core.Session`; this module only moves
bytes, frames and chunks, runs the timers, and guarantees cleanup (every Triton sequence ended,
every session removed from the registry) however a connection ends.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field, replace
from typing import Any

from aiohttp import WSMsgType, web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from tritonclient.grpc import aio as grpc_aio

from frontend.callback import allowed_callback, deliver
from frontend.config import Config
from frontend.driver import SessionDriver, new_session, now
from frontend.metrics import Metrics
from frontend.protocol.auth import Credential, KeyStore, authenticate
from frontend.protocol.errors import HandshakeError, ModelNotFound, ServiceUnavailable, UnsupportedSource
from frontend.protocol.frames import MetadataFrame, PrerecordedResponse, ResultsFrame
from frontend.protocol.models import ModelRoute, ModelTable
from frontend.protocol.params import ListenParams, parse_listen_params
from frontend.session.core import CloseConnection, SendFrame
from frontend.session_limit import SessionLimit
from frontend.triton.catalog import load_manifests, ready_ensembles

log = logging.getLogger(__name__)


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
    callbacks: set["asyncio.Task[None]"] = field(default_factory=set)
    """Pre-recorded requests answered at once, their results still to be sent."""
    draining: bool = False
    limit: SessionLimit = field(init=False)

    def __post_init__(self) -> None:
        self.limit = SessionLimit(self.config.max_sessions)


RUNTIME = web.AppKey("runtime", Runtime)


def _error_response(error: HandshakeError, request_id: str) -> web.Response:
    return web.json_response(error.body(request_id), status=error.http_status, headers=error.headers(request_id))


class Connection:
    """One accepted WebSocket: frames from the session's driver go out through one writer task."""

    def __init__(
        self, runtime: Runtime, ws: web.WebSocketResponse, params: ListenParams, route: ModelRoute, request_id: str
    ) -> None:
        self.runtime = runtime
        self.ws = ws
        self.request_id = request_id
        self.log = logging.LoggerAdapter(log, {"request_id": request_id})
        self._out: asyncio.Queue[SendFrame | CloseConnection] = asyncio.Queue()
        session, audio = new_session(runtime.config, params, route, request_id)
        self.driver = SessionDriver(
            session, audio, route, request_id,
            client=runtime.client, config=runtime.config, metrics=runtime.metrics, emit=self._out.put_nowait,
        )
        self._closed_by_server = False

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

    async def run(self) -> None:
        """Serve the connection until either side closes; always clean up."""
        writer = asyncio.create_task(self._write_loop(), name=f"ws-writer-{self.request_id}")
        session = self.driver.session
        try:
            await self.driver.start()
            async for msg in self.ws:
                if msg.type == WSMsgType.BINARY:
                    await self.driver.receive_audio(msg.data)
                elif msg.type == WSMsgType.TEXT:
                    await self.driver.apply(session.receive_text(msg.data, now()))
                elif msg.type == WSMsgType.ERROR:
                    self.log.info("websocket error: %s", self.ws.exception())
                    break
        finally:
            if self._closed_by_server:
                await asyncio.gather(writer, return_exceptions=True)
            else:
                # The peer left first: nothing more can be sent, but Triton must hear END.
                writer.cancel()
                await asyncio.gather(writer, return_exceptions=True)
            await self.driver.stop(peer_lost=not self._closed_by_server)

    async def drain(self) -> None:
        """Server shutdown: flush finals, send Metadata, close 1000."""
        await self.driver.apply(self.driver.session.shutdown(now()))


def _admit(runtime: Runtime, request: web.Request) -> tuple[Credential, ListenParams, ModelRoute]:
    """The checks both routes share, in Deepgram's order: service up, auth, query, model."""
    if runtime.draining:
        raise ServiceUnavailable("The server is shutting down.")
    credential = authenticate(request.headers, runtime.keystore)
    params = parse_listen_params(request.query)
    return credential, params, runtime.models.resolve(params)


def _refused(runtime: Runtime, error: HandshakeError, request_id: str) -> web.Response:
    runtime.metrics.handshake_rejections.labels(status=str(error.http_status)).inc()
    log.info("request %s refused %s: %s", request_id, error.http_status, error.err_msg)
    return _error_response(error, request_id)


async def listen(request: web.Request) -> web.StreamResponse:
    """`GET /v1/listen` and `/v1/listen/dg`: the Deepgram live protocol."""
    runtime = request.app[RUNTIME]
    request_id = str(uuid.uuid4())
    try:
        credential, params, route = _admit(runtime, request)
        release = runtime.limit.take()
    except HandshakeError as error:
        return _refused(runtime, error, request_id)
    try:
        return await _serve_live(runtime, request, credential, params, route, request_id)
    finally:
        release()


async def _serve_live(runtime: Runtime, request: web.Request, credential: Credential, params: ListenParams,
                      route: ModelRoute, request_id: str) -> web.StreamResponse:
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


# What Deepgram answers for audio it cannot use; the close reason says which failure it was.
_AUDIO_REFUSED = "failed to process audio: corrupt or unsupported data"


async def transcribe(request: web.Request) -> web.Response:
    """`POST /v1/listen`: Deepgram's pre-recorded API, run through the same session core.

    The body is fed to a live session as fast as Triton takes it, closed with CloseStream, and
    the finals are joined into the pre-recorded response, so both routes agree word for word.
    With `callback`, the answer is `{"request_id"}` and the response goes to the URL later
    (`frontend.callback`).
    """
    runtime = request.app[RUNTIME]
    request_id = str(uuid.uuid4())
    try:
        _, params, route = _admit(runtime, request)
        if request.content_type == "application/json":
            raise UnsupportedSource("This server transcribes uploaded audio only, not URLs.")
        callback = (allowed_callback(params.callback, runtime.config.callback_hosts)
                    if params.callback is not None else None)
        release = runtime.limit.take()
    except HandshakeError as error:
        return _refused(runtime, error, request_id)
    try:
        body = await request.read()
    except BaseException:
        release()
        raise
    if callback is None:
        try:
            status, payload, headers = await _prerecorded(runtime, params, route, request_id, body)
        finally:
            release()
        return web.json_response(payload, status=status, headers=headers)

    async def call_back() -> None:
        try:
            _, payload, _ = await _prerecorded(runtime, params, route, request_id, body)
            outcome = await deliver(callback, params.callback_method, payload, request_id)
        except Exception:  # noqa: BLE001 - nobody awaits this task: log, count, keep serving
            log.exception("request %s: callback transcription failed", request_id)
            outcome = "failed"
        finally:
            release()
        runtime.metrics.callbacks.labels(outcome=outcome).inc()

    task = asyncio.create_task(call_back(), name=f"callback-{request_id}")
    runtime.callbacks.add(task)
    task.add_done_callback(runtime.callbacks.discard)
    return web.json_response({"request_id": request_id}, headers={"dg-request-id": request_id})


async def _prerecorded(
    runtime: Runtime, params: ListenParams, route: ModelRoute, request_id: str, body: bytes
) -> tuple[int, dict[str, Any], dict[str, str]]:
    """Transcribe one upload: the status, JSON body and headers of the pre-recorded answer."""
    frames: list[ResultsFrame | MetadataFrame] = []
    closed: list[CloseConnection] = []
    done = asyncio.Event()

    def collect(item: SendFrame | CloseConnection) -> None:
        if isinstance(item, CloseConnection):
            closed.append(item)
            done.set()
        elif isinstance(item.frame, (ResultsFrame, MetadataFrame)):
            frames.append(item.frame)

    # Paragraphs are made of sentences, so they need the punctuation that ends them; Deepgram's
    # smart_format includes paragraphs.
    paragraphs = params.paragraphs or params.smart_format
    params = replace(params, interim_results=False, punctuate=params.punctuate or paragraphs)
    session, audio = new_session(runtime.config, params, route, request_id)
    driver = SessionDriver(
        session, audio, route, request_id,
        client=runtime.client, config=runtime.config, metrics=runtime.metrics, emit=collect,
    )
    try:
        await driver.start()
        if body:
            await driver.receive_audio(body)
        if not done.is_set():
            await driver.receive_audio(b"")  # the legacy CloseStream
        await done.wait()  # the session's finalize deadline bounds this wait
    finally:
        await driver.stop(peer_lost=not done.is_set())

    code, reason = closed[0].code, closed[0].reason
    headers = {"dg-request-id": request_id}
    if code != 1000 or not body:
        status = 503 if code == 1011 else 400
        message = _AUDIO_REFUSED if status == 400 else "The recogniser failed; try again."
        error_body = {"err_code": "Bad Request" if status == 400 else "SERVICE_UNAVAILABLE",
                      "err_msg": message, "request_id": request_id, "details": reason or "empty body"}
        return status, error_body, {**headers, "dg-error": message}
    metadata = [f for f in frames if isinstance(f, MetadataFrame)][-1]
    finals = tuple(f for f in frames if isinstance(f, ResultsFrame) and f.is_final)
    response = PrerecordedResponse(metadata, finals, paragraphs=paragraphs, search=params.search,
                                   utterances_split_s=params.utt_split if params.utterances else None)
    return 200, response.to_dict(), headers


async def models(request: web.Request) -> web.Response:
    """`GET /v1/models` (Deepgram's list: every served ensemble under `stt`) and
    `GET /v1/models/{model_id}` (one, by uuid or name); the same keys as the listen routes."""
    runtime = request.app[RUNTIME]
    request_id = str(uuid.uuid4())
    model_id = request.match_info.get("model_id")
    try:
        authenticate(request.headers, runtime.keystore)
        described = [route.describe() for route in runtime.models.routes]
        if model_id is None:
            return web.json_response({"stt": described, "tts": []}, headers={"dg-request-id": request_id})
        # Profiles of one model share its name: by name, the default profile answers.
        found = sorted((d for d in described if model_id in (d["uuid"], d["name"])),
                       key=lambda d: not d["ddx_default"])
        if not found:
            raise ModelNotFound(f"model {model_id!r}; served: {', '.join(d['name'] for d in described)}")
    except HandshakeError as error:
        return _refused(runtime, error, request_id)
    return web.json_response(found[0], headers={"dg-request-id": request_id})


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


LAG_PROBE_S = 0.1


async def _probe_loop_lag(app: web.Application) -> AsyncIterator[None]:
    """Time a 100 ms sleep over and over while the app runs: what it oversleeps is how long
    some task held the event loop, the delay every connection felt (`/metrics`)."""
    lag = app[RUNTIME].metrics.event_loop_lag

    async def probe() -> None:
        while True:
            started = time.monotonic()
            await asyncio.sleep(LAG_PROBE_S)
            lag.observe(max(0.0, time.monotonic() - started - LAG_PROBE_S))

    task = asyncio.create_task(probe(), name="event-loop-lag-probe")
    yield
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)


def make_app(runtime: Runtime) -> web.Application:
    """The aiohttp application; routes as in the integration guide."""
    app = web.Application(client_max_size=runtime.config.max_upload_bytes)
    app[RUNTIME] = runtime
    app.cleanup_ctx.append(_probe_loop_lag)
    app.router.add_get("/v1/listen", listen)
    app.router.add_get("/v1/listen/dg", listen)
    app.router.add_post("/v1/listen", transcribe)
    app.router.add_post("/v1/listen/dg", transcribe)
    app.router.add_get("/v1/models", models)
    app.router.add_get("/v1/models/{model_id}", models)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/metrics", metrics)
    return app


async def drain(runtime: Runtime, timeout: float) -> None:
    """Stop accepting, let every session flush and close and every callback go out; give up
    after `timeout`."""
    runtime.draining = True
    connections = list(runtime.connections)
    log.info("draining %d sessions", len(connections))
    for connection in connections:
        await connection.drain()
    deadline = time.monotonic() + timeout
    while (runtime.connections or runtime.callbacks) and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    if runtime.connections:
        log.warning("%d sessions still open after %.1fs drain", len(runtime.connections), timeout)
    if runtime.callbacks:
        log.warning("%d callbacks not sent after %.1fs drain", len(runtime.callbacks), timeout)
        for task in list(runtime.callbacks):
            task.cancel()
