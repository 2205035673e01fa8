#!/usr/bin/env python3
"""Smoke test of the live route with the OFFICIAL Deepgram Python SDK (deepgram-sdk 7.x).

Points ``DeepgramClient`` at the server through ``DeepgramClientEnvironment`` (7.x has no other
host override), streams a 16-bit PCM WAV as linear16 with ``client.listen.v1.connect``, prints
every final and checks what SDK users rely on:

* every ``Results`` carries the fields the SDK declares required, with one ``request_id``
  (equal to the ``dg-request-id`` handshake header);
* at least one final arrives, and after ``CloseStream`` a ``Metadata`` is the last message,
  its ``duration`` matches the audio sent, then the server closes with 1000.

``--probe-control`` opens a second stream: half the audio, ``KeepAlive`` and a pause (the
connection must stay open), ``Finalize`` (a ``from_finalize`` final must follow), the rest,
``CloseStream``. ``--no-auth`` checks that a handshake without a credential gets HTTP 403,
once without an ``Authorization`` header and once through the SDK with an empty one.

Exit status: 0 all checks passed, 1 a protocol violation (listed), 2 the server is unreachable.
"""

from __future__ import annotations

import argparse
import datetime
import os
import sys
import threading
import time
import urllib.parse
import wave
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import websockets.sync.client
from deepgram import DeepgramClient, DeepgramClientEnvironment
from deepgram.core.api_error import ApiError
from deepgram.core.events import EventType
from websockets.exceptions import ConnectionClosed, InvalidStatus

REPO = Path(__file__).resolve().parent.parent
DEFAULT_WAV = REPO / "tests" / "fixtures" / "speaker_a.wav"
CHUNK_S = 0.1
CLOSE_WAIT_S = 30.0
FINALIZE_WAIT_S = 5.0
KEEPALIVE_PAUSE_S = 3.0
DURATION_TOLERANCE_S = 0.25

# Fields the SDK's pydantic models declare required (deepgram/listen/v1/types).
RESULTS_FIELDS = ("channel_index", "duration", "start", "channel", "metadata")
RESULTS_METADATA_FIELDS = ("request_id", "model_info", "model_uuid")
METADATA_FIELDS = ("transaction_key", "request_id", "sha256", "created", "duration", "channels")


class Unreachable(Exception):
    """The server did not accept a TCP connection."""


@dataclass
class Audio:
    pcm: bytes
    sample_rate: int
    channels: int

    @property
    def seconds(self) -> float:
        return len(self.pcm) / (2 * self.channels * self.sample_rate)

    def chunks(self, start_s: float = 0.0, end_s: float | None = None) -> list[bytes]:
        """100 ms pieces of the audio between two times, cut on sample frames."""
        frame = 2 * self.channels
        step = int(self.sample_rate * CHUNK_S) * frame
        start = int(start_s * self.sample_rate) * frame
        end = len(self.pcm) if end_s is None else int(end_s * self.sample_rate) * frame
        return [self.pcm[i : min(i + step, end)] for i in range(start, end, step)]


@dataclass
class Stream:
    """What one SDK connection received, filled in by the SDK's listener thread."""

    messages: list[Any] = field(default_factory=list)
    errors: list[BaseException] = field(default_factory=list)
    finalized: threading.Event = field(default_factory=threading.Event)
    closed: threading.Event = field(default_factory=threading.Event)
    close_code: int | None = None
    close_reason: str = ""
    header_request_id: str | None = None

    def on_message(self, message: Any) -> None:
        self.messages.append(message)
        if getattr(message, "type", None) != "Results" or not message.is_final:
            return
        start, duration = message.start or 0.0, message.duration or 0.0
        alternatives = message.channel.alternatives if message.channel else []
        text = alternatives[0].transcript if alternatives else ""
        tag = " (from_finalize)" if message.from_finalize else ""
        print(f"  final [{start:6.2f}-{start + duration:6.2f}]{tag} {text}")
        if message.from_finalize:
            self.finalized.set()

    def of_type(self, kind: str) -> list[Any]:
        return [m for m in self.messages if getattr(m, "type", None) == kind]


def load_wav(path: Path) -> Audio:
    with wave.open(str(path), "rb") as w:
        if w.getsampwidth() != 2:
            raise SystemExit(f"{path}: only 16-bit PCM WAV files are supported")
        return Audio(w.readframes(w.getnframes()), w.getframerate(), w.getnchannels())


def websocket_url(http_url: str) -> str:
    """The ws:// (wss://) twin of an http:// (https://) base URL, as the SDK's ``production``."""
    parts = urllib.parse.urlsplit(http_url)
    return parts._replace(scheme="wss" if parts.scheme == "https" else "ws").geturl()


def make_client(args: argparse.Namespace) -> DeepgramClient:
    base = args.url.rstrip("/")
    ws_base = websocket_url(base)
    environment = DeepgramClientEnvironment(base=base, production=ws_base, agent=ws_base, agent_rest=base)
    return DeepgramClient(api_key=args.token, environment=environment)


def stream_audio(
    args: argparse.Namespace, audio: Audio, *, probe_control: bool, authorization: str | None = None
) -> Stream:
    """Run one SDK connection; raise `Unreachable`, `InvalidStatus` or `ApiError` on handshake failure."""
    stream = Stream()
    options: dict[str, Any] = {
        "model": "nova-3",
        "language": "en",
        "encoding": "linear16",
        "sample_rate": audio.sample_rate,
        "channels": audio.channels,
        "interim_results": "true",
        "punctuate": "true",
    }
    if authorization is not None:
        options["authorization"] = authorization
    try:
        with make_client(args).listen.v1.connect(**options) as connection:
            # The SDK exposes neither the handshake headers nor the close code; its websocket does.
            socket = connection._websocket
            stream.header_request_id = socket.response.headers.get("dg-request-id") if socket.response else None
            connection.on(EventType.MESSAGE, stream.on_message)
            connection.on(EventType.ERROR, stream.errors.append)
            connection.on(EventType.CLOSE, lambda _: stream.closed.set())
            listener = threading.Thread(target=connection.start_listening, name="dg-listener", daemon=True)
            listener.start()
            try:
                if probe_control:
                    _control_sequence(args, audio, connection, stream)
                else:
                    _send(args, connection, audio.chunks())
                connection.send_close_stream()
            except ConnectionClosed:
                pass  # the server closed first: its close code tells why
            listener.join(timeout=CLOSE_WAIT_S)
            stream.close_code = socket.close_code
            stream.close_reason = socket.close_reason or ""
    except ConnectionRefusedError as exc:
        raise Unreachable(str(exc)) from exc
    except OSError as exc:
        if not stream.closed.is_set() and not stream.messages:
            raise Unreachable(str(exc)) from exc
        stream.errors.append(exc)
    return stream


def _send(args: argparse.Namespace, connection: Any, chunks: list[bytes]) -> None:
    start = time.monotonic()
    for k, chunk in enumerate(chunks):
        if args.realtime:
            time.sleep(max(0.0, start + k * CHUNK_S - time.monotonic()))
        connection.send_media(chunk)


def _control_sequence(args: argparse.Namespace, audio: Audio, connection: Any, stream: Stream) -> None:
    half = audio.seconds / 2
    _send(args, connection, audio.chunks(0.0, half))
    connection.send_keep_alive()
    time.sleep(KEEPALIVE_PAUSE_S)
    if stream.closed.is_set():
        return  # reported by check_control
    sent = time.monotonic()
    connection.send_finalize()
    if stream.finalized.wait(FINALIZE_WAIT_S):
        print(f"  Finalize answered in {(time.monotonic() - sent) * 1000:.0f} ms")
    _send(args, connection, audio.chunks(half))


# --- checks ------------------------------------------------------------------------------------


def check_stream(stream: Stream, audio: Audio) -> list[str]:
    """Protocol violations of one finished stream, in words."""
    # A non-1000 close reaches the SDK as a ConnectionClosedError event; the close code says it better.
    problems = [f"SDK error event: {exc!r}" for exc in stream.errors if not isinstance(exc, ConnectionClosed)]
    if not stream.closed.is_set():
        problems.append(f"the server did not close the connection within {CLOSE_WAIT_S:.0f}s of CloseStream")
    elif stream.close_code != 1000:
        problems.append(f"closed with {stream.close_code} {stream.close_reason!r}, expected 1000 after CloseStream")
    unknown = [m for m in stream.messages if m is None or isinstance(m, bytes)]
    if unknown:
        problems.append(f"{len(unknown)} messages the SDK could not parse (no known type, or binary)")
    results = stream.of_type("Results")
    problems += _missing_fields(results, RESULTS_FIELDS, "Results")
    problems += _missing_fields(
        [r.metadata for r in results if r.metadata], RESULTS_METADATA_FIELDS, "Results.metadata"
    )
    if not any(r.is_final for r in results):
        problems.append("no final Results (is_final=true)")
    metadata = stream.of_type("Metadata")
    if not metadata:
        problems.append("no Metadata after CloseStream")
    else:
        problems += _check_metadata(metadata[-1], audio)
        if stream.messages[-1] is not metadata[-1]:
            problems.append(f"Metadata is not the last message (last: {getattr(stream.messages[-1], 'type', None)})")
    ids = {r.metadata.request_id for r in results if r.metadata} | {m.request_id for m in metadata}
    ids.discard(None)  # reported as a missing field
    if len(ids) > 1:
        problems.append(f"several request_ids in one connection: {sorted(map(str, ids))}")
    if stream.header_request_id is None:
        problems.append("no dg-request-id header on the 101 response")
    elif ids and ids != {stream.header_request_id}:
        problems.append(f"request_id {sorted(map(str, ids))} differs from dg-request-id {stream.header_request_id}")
    return problems


def _missing_fields(messages: list[Any], names: tuple[str, ...], what: str) -> list[str]:
    missing = sorted({name for m in messages for name in names if getattr(m, name, None) is None})
    return [f"{what} without required field(s) {', '.join(missing)}"] if missing else []


def _check_metadata(metadata: Any, audio: Audio) -> list[str]:
    problems = _missing_fields([metadata], METADATA_FIELDS, "Metadata")
    if metadata.duration is not None and abs(metadata.duration - audio.seconds) > DURATION_TOLERANCE_S:
        problems.append(f"Metadata.duration {metadata.duration:.3f}s but {audio.seconds:.3f}s of audio were sent")
    if metadata.channels is not None and metadata.channels != audio.channels:
        problems.append(f"Metadata.channels {metadata.channels} but {audio.channels} channel(s) were sent")
    if metadata.created is not None:
        try:
            datetime.datetime.fromisoformat(str(metadata.created))  # 3.11+ reads a trailing "Z"
        except ValueError:
            problems.append(f"Metadata.created {metadata.created!r} is not ISO-8601")
    return problems


def check_control(stream: Stream, audio: Audio) -> list[str]:
    problems = check_stream(stream, audio)
    if not stream.finalized.is_set():
        problems.append(f"no from_finalize final within {FINALIZE_WAIT_S:.0f}s of Finalize (audio was buffered)")
    return problems


def check_no_auth(args: argparse.Namespace, audio: Audio) -> list[str]:
    """A handshake without credentials must be refused with 403, before any WebSocket exists."""
    problems = []
    url = f"{websocket_url(args.url.rstrip('/'))}/v1/listen?model=nova-3&encoding=linear16&sample_rate={audio.sample_rate}"
    try:
        with websockets.sync.client.connect(url, open_timeout=10):
            problems.append("no Authorization header: the WebSocket was accepted, expected HTTP 403")
    except InvalidStatus as exc:
        if exc.response.status_code != 403:
            problems.append(f"no Authorization header: HTTP {exc.response.status_code}, expected 403")
        else:
            print("  no Authorization header: HTTP 403")
    try:
        stream_audio(args, audio, probe_control=False, authorization="")
        problems.append("SDK with an empty Authorization: the WebSocket was accepted, expected HTTP 403")
    except (InvalidStatus, ApiError) as exc:
        status = exc.response.status_code if isinstance(exc, InvalidStatus) else exc.status_code
        if status != 403:
            problems.append(f"SDK with an empty Authorization: HTTP {status}, expected 403")
        else:
            print("  SDK with an empty Authorization: HTTP 403")
    return problems


def run_check(name: str, check: Any) -> list[str]:
    """Run one check; a refused handshake is a violation too."""
    print(f"{name}:")
    try:
        problems: list[str] = check()
    except InvalidStatus as exc:
        body = exc.response.body.decode(errors="replace")[:200] if exc.response.body else ""
        problems = [f"handshake rejected: HTTP {exc.response.status_code} {body}".strip()]
    except ApiError as exc:
        problems = [f"handshake rejected: HTTP {exc.status_code} {exc.body}"]
    for problem in problems:
        print(f"  VIOLATION: {problem}")
    print(f"  {'FAIL' if problems else 'PASS'}")
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", default="http://127.0.0.1:4600", help="server base URL (default: %(default)s)")
    parser.add_argument("--corpus-wav", type=Path, default=DEFAULT_WAV, help="16-bit PCM WAV (default: %(default)s)")
    parser.add_argument("--probe-control", action="store_true", help="also exercise KeepAlive/Finalize/CloseStream")
    parser.add_argument("--no-auth", action="store_true", help="also check that no credential gives HTTP 403")
    parser.add_argument("--realtime", action=argparse.BooleanOptionalAction, default=True, help="pace in real time")
    parser.add_argument(
        "--token",
        default=os.environ.get("DEEPGRAM_API_KEY") or os.environ.get("DDX_STT_TOKEN") or "dummy",
        help="API key ($DEEPGRAM_API_KEY, $DDX_STT_TOKEN)",
    )
    args = parser.parse_args(argv)
    audio = load_wav(args.corpus_wav)
    print(
        f"server {args.url}, {args.corpus_wav.name}: {audio.seconds:.2f}s, {audio.sample_rate} Hz, {audio.channels} ch"
    )
    checks = [("SDK stream", lambda: check_stream(stream_audio(args, audio, probe_control=False), audio))]
    if args.probe_control:
        checks.append(
            (
                "KeepAlive / Finalize / CloseStream",
                lambda: check_control(stream_audio(args, audio, probe_control=True), audio),
            )
        )
    if args.no_auth:
        checks.append(("no credential -> 403", lambda: check_no_auth(args, audio)))
    failed = 0
    try:
        for name, check in checks:
            failed += bool(run_check(name, check))
    except Unreachable as exc:
        print(f"cannot connect to {args.url}: {exc}. Is the server running (ddx-stt serve)?", file=sys.stderr)
        return 2
    print(f"{len(checks) - failed}/{len(checks)} checks passed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
