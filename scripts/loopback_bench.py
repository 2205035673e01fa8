#!/usr/bin/env python3
"""Loopback load test of the live route: can the server keep N concurrent streams real time?

Streams a WAV file (looped to ``--duration``) over N WebSocket sessions, paced in real time, and
measures what a voice agent feels:

* result lag: audio sent so far minus the audio covered by results (``start + duration`` of
  the latest interim or final), sampled at every ``Results``; a stream keeps real time when
  its 95th percentile stays within ``--lag-budget``;
* Finalize latency: ``Finalize`` is sent where each speech span of the WAV ends (found by
  energy), as a client-side endpointer would; latency runs until the next ``from_finalize``
  final (p50/p95/p99), no answer within ``--finalize-timeout`` counts as a timeout;
* first-result latency: first audio byte sent to first ``Results`` (and to the first word);
* word latency (paced streams): for every word of the finals, the wall time from its end in
  the audio to the first ``Results`` (interim or final) showing it (same text, start within
  0.3 s): how soon a voice agent can see what was said;
* the closing handshake: ``CloseStream`` must end with ``Metadata`` then close 1000.

``--upload FILE`` adds ``--uploads`` connections (1) that each send FILE (any container the
server decodes) as one binary message, then ``CloseStream``, the guide's "full-frame input",
while the streams run: the load a batch job puts on live callers. The report gives each
upload's close code and seconds, and always the server's event-loop lag over the run (its
``ddx_stt_event_loop_lag_seconds`` histogram on ``/metrics``): the share of 100 ms probes that
fired more than 10, 50 and 100 ms late, which is how long some task held every connection up.

``--broadcast`` runs one long stream of speech with the pauses cut out and sends ``Finalize``
every ``--finalize-every`` seconds (30): without it such a stream never pauses, so only
Finalize produces finals.

Bounded: at most 1000 streams, 500 at once, 3600 s each, and every stream has a deadline.
Only loopback URLs are accepted: this is a load generator, not a client for remote hosts.

Exit status: 0 every stream passed, 1 some stream failed (see the table) or an upload did not
close 1000, 2 no stream could run (bad arguments, server not listening).
"""

from __future__ import annotations

import argparse
import asyncio
import io
import ipaddress
import json
import os
import socket
import sys
import time
import urllib.parse
import urllib.request
import wave
from collections import Counter, deque
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import av
import numpy as np
import websockets
from numpy.typing import NDArray
from websockets.exceptions import ConnectionClosed, InvalidStatus

REPO = Path(__file__).resolve().parent.parent
DEFAULT_WAV = REPO / "tests" / "fixtures" / "pause.wav"
DEFAULT_URL = "ws://127.0.0.1:4600/v1/listen/dg"

MAX_STREAMS = 1000
MAX_CONCURRENT = 500
MAX_DURATION_S = 3600.0
WORD_MATCH_S = 0.3  # an interim word and a final word are the same word within this start gap

# encoding -> (FFmpeg codec, sample rate sent, FFmpeg container format or None for raw).
RAW_ENCODINGS = {
    "linear16": ("pcm_s16le", None),
    "linear32": ("pcm_f32le", None),
    "mulaw": ("pcm_mulaw", 8000),
    "alaw": ("pcm_alaw", 8000),
}
CONTAINER_ENCODINGS = {
    "ogg-opus": ("libopus", 48000, "ogg"),
    "webm-opus": ("libopus", 48000, "webm"),
    "mp3": ("libmp3lame", None, "mp3"),
    "flac": ("flac", None, "flac"),
    "aac": ("aac", None, "adts"),
}


# --- audio -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Payload:
    """The bytes every stream sends, and where in them to send Finalize."""

    data: bytes
    seconds: float
    query: dict[str, str]
    finalize_at_s: tuple[float, ...]


def read_wav(path: Path) -> tuple[NDArray[np.float32], int]:
    """A 16-bit PCM WAV as float32 mono (channels averaged) and its sample rate."""
    with wave.open(str(path), "rb") as w:
        if w.getsampwidth() != 2:
            raise SystemExit(f"{path}: only 16-bit PCM WAV files are supported")
        rate, channels = w.getframerate(), w.getnchannels()
        pcm = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2").astype(np.float32) / 32768
    return pcm.reshape(-1, channels).mean(axis=1).astype(np.float32), rate


def speech_spans(samples: NDArray[np.float32], rate: int) -> list[tuple[int, int]]:
    """Speech spans by energy: 20 ms frames above -40 dBFS, gaps under 300 ms bridged."""
    frame = rate // 50
    n = len(samples) // frame
    rms = np.sqrt(np.mean(samples[: n * frame].reshape(n, frame) ** 2, axis=1) + 1e-12)
    active = np.flatnonzero(rms > 0.01)
    spans: list[tuple[int, int]] = []
    for i in active:
        if spans and i - spans[-1][1] <= 15:
            spans[-1] = (spans[-1][0], int(i) + 1)
        else:
            spans.append((int(i), int(i) + 1))
    return [(a * frame, b * frame) for a, b in spans]


def build_payload(args: argparse.Namespace) -> Payload:
    """Loop the WAV to the requested duration and encode it as the stream will send it."""
    samples, rate = read_wav(args.wav)
    spans = speech_spans(samples, rate)
    if not spans:
        raise SystemExit(f"{args.wav}: no speech found (all frames below -40 dBFS)")
    total = int(args.duration * rate)
    if args.broadcast:
        # Speech with no pause longer than 300 ms: cut the leading/trailing silence and loop.
        speech = samples[spans[0][0] : spans[-1][1]]
        looped = np.resize(speech, total)
        step = args.finalize_every
        finalize_at = tuple(np.arange(step, args.duration, step))
    else:
        looped = np.resize(samples, total)
        passes = int(np.ceil(total / len(samples)))
        ends = [(p * len(samples) + end) / rate for p in range(passes) for _, end in spans]
        finalize_at = tuple(t for t in ends if t < args.duration)
    data, query = encode(looped, rate, args.encoding)
    query.update(model=args.model, language=args.language, interim_results="true", punctuate="true")
    for item in args.param:
        key, _, value = item.partition("=")
        query[key] = value
    return Payload(data=data, seconds=total / rate, query=query, finalize_at_s=finalize_at)


def encode(samples: NDArray[np.float32], rate: int, encoding: str) -> tuple[bytes, dict[str, str]]:
    """Encode mono float samples with FFmpeg (PyAV); return the bytes and the query they need."""
    if encoding in RAW_ENCODINGS:
        codec, out_rate = RAW_ENCODINGS[encoding]
        out_rate = out_rate or rate
        context = av.CodecContext.create(codec, "w")
        assert isinstance(context, av.AudioCodecContext)
        context.sample_rate = out_rate
        context.layout = "mono"
        formats = context.codec.audio_formats
        assert formats, codec
        context.format = formats[0]
        frames = _convert(samples, rate, out_rate, context.format.name)
        data = b"".join(bytes(p) for f in frames + [None] for p in context.encode(f))
        return data, {"encoding": encoding, "sample_rate": str(out_rate), "channels": "1"}
    codec, out_rate, container_format = CONTAINER_ENCODINGS[encoding]
    out_rate = out_rate or rate
    buf = io.BytesIO()
    with av.open(buf, "w", format=container_format) as container:
        stream = container.add_stream(codec, rate=out_rate, layout="mono")
        assert isinstance(stream, av.AudioStream)
        fmt = stream.codec_context.format.name
        frame_size = stream.codec_context.frame_size or 1024
        for frame in _convert(samples, rate, out_rate, fmt, frame_size):
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    # Containerised audio is sniffed, so no encoding parameter (as Deepgram advises).
    return buf.getvalue(), {}


def _convert(
    samples: NDArray[np.float32], rate: int, out_rate: int, fmt: str, frame_size: int = 0
) -> list[av.AudioFrame]:
    frame = av.AudioFrame.from_ndarray(samples[np.newaxis, :], format="fltp", layout="mono")
    frame.sample_rate = rate
    resampler = av.AudioResampler(format=fmt, layout="mono", rate=out_rate, frame_size=frame_size or None)
    return resampler.resample(frame) + resampler.resample(None)


# --- one stream --------------------------------------------------------------------------------


@dataclass
class StreamResult:
    """Everything measured on one connection."""

    index: int
    request_id: str | None = None
    error: str | None = None
    close_code: int | None = None
    close_reason: str = ""
    audio_sent_s: float = 0.0
    first_result_s: float | None = None
    first_word_s: float | None = None
    lags_s: list[float] = field(default_factory=list)
    word_latencies_s: list[float] = field(default_factory=list)
    finalize_latencies_s: list[float] = field(default_factory=list)
    finalize_timeouts: int = 0
    interims: int = 0
    finals: int = 0
    metadata_last: bool = False
    client_behind_s: float = 0.0
    transcript: str = ""
    violations: list[str] = field(default_factory=list)

    def passed(self, lag_budget_s: float | None) -> bool:
        return not self.failures(lag_budget_s)

    def failures(self, lag_budget_s: float | None) -> list[str]:
        """Why this stream failed, in words; empty when it passed. No budget: lag is not judged."""
        reasons = []
        if self.error:
            reasons.append(self.error)
        elif self.close_code != 1000:
            reasons.append(f"close {self.close_code} {self.close_reason!r}")
        if self.error is None and not self.metadata_last:
            reasons.append("no Metadata before the close")
        if self.error is None and self.finals == 0:
            reasons.append("no final Results")
        lag_p95 = percentile(self.lags_s, 95)
        if lag_budget_s and lag_p95 is not None and lag_p95 > lag_budget_s:
            reasons.append(f"lag p95 {lag_p95:.2f}s > {lag_budget_s}s")
        if self.finalize_timeouts:
            reasons.append(f"{self.finalize_timeouts} Finalize without from_finalize final")
        return reasons + self.violations


class StreamClient:
    """Sends one paced stream and records what comes back."""

    def __init__(self, index: int, args: argparse.Namespace, payload: Payload, url: str) -> None:
        self.args = args
        self.payload = payload
        self.url = url
        self.result = StreamResult(index=index)
        self._sent_s = 0.0
        self._t0 = 0.0
        self._pending_finalize: deque[float] = deque()
        # word -> (start in the audio, arrival) of each time it was first shown
        self._first_shown: dict[str, list[tuple[float, float]]] = {}
        self._phase = "connecting"  # for error messages: what the stream was doing

    async def run(self, start_delay: float) -> StreamResult:
        await asyncio.sleep(start_delay)
        deadline = self.payload.seconds * (1 if self.args.realtime else 0) + self.args.finalize_timeout + 60
        try:
            await asyncio.wait_for(self._session(), timeout=deadline)
        except TimeoutError:
            self.result.error = f"timed out {self._phase} (stream deadline {deadline:.0f}s)"
        except InvalidStatus as exc:
            body = exc.response.body.decode(errors="replace")[:200] if exc.response.body else ""
            self.result.error = f"handshake rejected: HTTP {exc.response.status_code} {body}".strip()
        except (OSError, websockets.InvalidHandshake) as exc:
            self.result.error = f"cannot connect: {exc}"
        except Exception as exc:  # noqa: BLE001 - one broken stream must not hide the others' results
            self.result.error = f"client error {self._phase}: {exc!r}"
        return self.result

    async def _session(self) -> None:
        headers = {"Authorization": f"Token {self.args.token}"}
        async with websockets.connect(self.url, additional_headers=headers, max_size=2**24, open_timeout=10) as ws:
            self.result.request_id = ws.response.headers.get("dg-request-id") if ws.response else None
            receiver = asyncio.create_task(self._receive(ws))
            self._phase = "streaming"
            try:
                await self._send(ws)
                await ws.send(json.dumps({"type": "CloseStream"}))
            except ConnectionClosed:
                pass  # the receiver records the close
            self._phase = "waiting for Metadata and the close after CloseStream"
            await asyncio.wait_for(receiver, timeout=self.args.finalize_timeout + 30)
            self.result.close_code = ws.close_code
            self.result.close_reason = ws.close_reason or ""
        self.result.finalize_timeouts += len(self._pending_finalize)
        self._pending_finalize.clear()

    async def _send(self, ws: websockets.ClientConnection) -> None:
        data, seconds = self.payload.data, self.payload.seconds
        frame_s = self.args.frame_ms / 1000
        # Byte pacing at the average rate also covers variable-bitrate containers.
        step = max(1, int(len(data) * frame_s / seconds))
        finalize_at = deque(self.payload.finalize_at_s)
        self._t0 = time.monotonic()
        for k, pos in enumerate(range(0, len(data), step)):
            if self.args.realtime:
                due = self._t0 + k * frame_s
                delay = due - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
                else:
                    self.result.client_behind_s = max(self.result.client_behind_s, -delay)
            await ws.send(data[pos : pos + step])
            self._sent_s = min(seconds, (pos + step) / len(data) * seconds)
            self.result.audio_sent_s = self._sent_s
            while finalize_at and finalize_at[0] <= self._sent_s:
                finalize_at.popleft()
                self._expire_finalizes()
                self._pending_finalize.append(time.monotonic())
                await ws.send(json.dumps({"type": "Finalize"}))

    def _expire_finalizes(self) -> None:
        now = time.monotonic()
        while self._pending_finalize and now - self._pending_finalize[0] > self.args.finalize_timeout:
            self._pending_finalize.popleft()
            self.result.finalize_timeouts += 1

    async def _receive(self, ws: websockets.ClientConnection) -> None:
        texts: list[str] = []
        last_type = None
        try:
            async for message in ws:
                if isinstance(message, bytes):
                    self.result.violations.append("binary frame from the server")
                    continue
                frame = json.loads(message)
                last_type = frame.get("type")
                if last_type == "Results":
                    self._on_results(frame, texts)
                elif last_type not in ("Metadata", "SpeechStarted", "UtteranceEnd"):
                    self.result.violations.append(f"unexpected frame {message[:120]}")
        except ConnectionClosed:
            pass
        except json.JSONDecodeError as exc:
            self.result.violations.append(f"text frame is not JSON: {exc}")
        self.result.metadata_last = last_type == "Metadata"
        self.result.transcript = " ".join(texts)

    def _on_results(self, frame: dict[str, Any], texts: list[str]) -> None:
        now = time.monotonic()
        try:
            covered = float(frame["start"]) + float(frame["duration"])
            transcript = frame["channel"]["alternatives"][0]["transcript"]
            words = [(str(w["word"]), float(w["start"]), float(w["end"]))
                     for w in frame["channel"]["alternatives"][0]["words"]]
        except (KeyError, IndexError, TypeError, ValueError) as exc:
            self.result.violations.append(f"malformed Results ({exc!r})")
            return
        if self.result.first_result_s is None:
            self.result.first_result_s = now - self._t0
        if transcript and self.result.first_word_s is None:
            self.result.first_word_s = now - self._t0
        self.result.lags_s.append(self._sent_s - covered)
        self._word_latencies(words, now, final=bool(frame.get("is_final")))
        if not frame.get("is_final"):
            self.result.interims += 1
            return
        self.result.finals += 1
        if transcript:
            texts.append(transcript)
        if frame.get("from_finalize"):
            self._expire_finalizes()
            if self._pending_finalize:
                self.result.finalize_latencies_s.append(now - self._pending_finalize.popleft())

    def _word_latencies(self, words: list[tuple[str, float, float]], now: float, *, final: bool) -> None:
        for word, start, end in words:
            shown = self._first_shown.setdefault(word, [])
            first = next((t for s, t in shown if abs(s - start) < WORD_MATCH_S), None)
            if first is None:
                shown.append((start, now))
                first = now
            if final and self.args.realtime:
                self.result.word_latencies_s.append(first - (self._t0 + end))


# --- the run -----------------------------------------------------------------------------------


def percentile(values: list[float], q: float) -> float | None:
    """The q-th percentile, or None without samples (JSON has no NaN)."""
    return float(np.percentile(values, q)) if values else None


def require_loopback(url: str) -> None:
    """Refuse anything but a loopback host: the bench opens hundreds of connections."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("ws", "wss") or not parts.hostname:
        raise SystemExit(f"--url must be ws://HOST:PORT/PATH, got {url!r}")
    try:
        infos = socket.getaddrinfo(parts.hostname, parts.port or 80, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise SystemExit(f"cannot resolve {parts.hostname!r}: {exc}") from exc
    addresses = {ipaddress.ip_address(info[4][0]) for info in infos}
    if not all(address.is_loopback for address in addresses):
        raise SystemExit(f"refusing non-loopback target {parts.hostname} ({', '.join(map(str, addresses))})")


LAG_LATE_S = (0.01, 0.05, 0.1)


def metrics_url(ws_url: str) -> str:
    parts = urllib.parse.urlsplit(ws_url)
    return f"http://{parts.netloc}/metrics"


def loop_lag_buckets(url: str) -> dict[float, float] | None:
    """The server's cumulative event-loop lag histogram (`le` -> probes), None if unreadable."""
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            text = response.read().decode()
    except OSError:
        return None
    prefix = 'ddx_stt_event_loop_lag_seconds_bucket{le="'
    buckets = {}
    for line in text.splitlines():
        if line.startswith(prefix):
            bound, _, count = line[len(prefix):].partition('"} ')
            buckets[float(bound)] = float(count)
    return buckets or None


def loop_lag_summary(before: dict[float, float] | None, after: dict[float, float] | None) -> dict[str, Any] | None:
    """Probes during the run, and the share of them later than each of `LAG_LATE_S`."""
    if before is None or after is None:
        return None
    probes = after[float("inf")] - before.get(float("inf"), 0.0)
    late = {f"over_{int(bound * 1000)}ms": (probes - (after[bound] - before.get(bound, 0.0))) / probes
            if probes else None for bound in LAG_LATE_S if bound in after}
    return {"probes": probes, **late}


async def upload(url: str, token: str, data: bytes) -> dict[str, Any]:
    """One whole file as one message, CloseStream, read until the close."""
    started = time.monotonic()
    try:
        async with websockets.connect(url, additional_headers={"Authorization": f"Token {token}"},
                                      max_size=2**24, open_timeout=10) as ws:
            await ws.send(data)
            await ws.send(json.dumps({"type": "CloseStream"}))
            async for _ in ws:
                pass
            code = ws.close_code
    except (OSError, ConnectionClosed, InvalidStatus) as exc:
        return {"close_code": None, "error": str(exc)[:200], "seconds": time.monotonic() - started}
    return {"close_code": code, "seconds": time.monotonic() - started}


def with_query(url: str, query: dict[str, str]) -> str:
    return url + ("&" if "?" in url else "?") + urllib.parse.urlencode(query)


async def run_all(args: argparse.Namespace, payload: Payload) -> tuple[list[StreamResult], list[dict[str, Any]]]:
    """The streams' results and the uploads' outcomes."""
    url = with_query(args.url, payload.query)
    gate = asyncio.Semaphore(args.concurrent)

    async def one(index: int) -> StreamResult:
        async with gate:
            # Spread the first wave over --ramp seconds so chunks do not all arrive in lockstep.
            delay = args.ramp * index / args.concurrent if index < args.concurrent else 0.0
            return await StreamClient(index, args, payload, url).run(delay)

    uploads = []
    if args.upload:
        data = args.upload.read_bytes()
        upload_url = with_query(args.url, {k: v for k, v in payload.query.items() if k in ("model", "language")})
        uploads = [upload(upload_url, args.token, data) for _ in range(args.uploads)]
    outcomes = await asyncio.gather(*(one(i) for i in range(args.n)), *uploads)
    return list(outcomes[:args.n]), list(outcomes[args.n:])


def lag_budget(args: argparse.Namespace) -> float | None:
    """The lag budget, or None when audio is not paced (lag then only measures throughput)."""
    return args.lag_budget if args.realtime else None


def _kept_realtime(result: StreamResult, lag_budget_s: float) -> bool:
    lag_p95 = percentile(result.lags_s, 95)
    return lag_p95 is not None and lag_p95 <= lag_budget_s


def summarize(args: argparse.Namespace, payload: Payload, results: list[StreamResult],
              uploads: list[dict[str, Any]], loop_lag: dict[str, Any] | None) -> dict[str, Any]:
    lags = [lag for r in results for lag in r.lags_s]
    finalize = [x for r in results for x in r.finalize_latencies_s]
    first = [r.first_result_s for r in results if r.first_result_s is not None]
    first_word = [r.first_word_s for r in results if r.first_word_s is not None]
    word_latency = [x for r in results for x in r.word_latencies_s]
    budget = lag_budget(args)
    failures = {r.index: r.failures(budget) for r in results}
    return {
        "streams": len(results),
        "passed": sum(not f for f in failures.values()),
        "kept_realtime": sum(_kept_realtime(r, budget) for r in results) if budget else None,
        "audio_seconds_per_stream": round(payload.seconds, 3),
        "lag_s": {"p50": percentile(lags, 50), "p95": percentile(lags, 95), "max": max(lags, default=None)},
        "finalize_latency_s": {
            "count": len(finalize),
            "p50": percentile(finalize, 50),
            "p95": percentile(finalize, 95),
            "p99": percentile(finalize, 99),
            "timeouts": sum(r.finalize_timeouts for r in results),
        },
        "first_result_s": {"p50": percentile(first, 50), "p95": percentile(first, 95)},
        "first_word_s": {"p50": percentile(first_word, 50), "p95": percentile(first_word, 95)},
        "word_latency_s": {"count": len(word_latency), "p50": percentile(word_latency, 50),
                           "p95": percentile(word_latency, 95)},
        "close_codes": dict(Counter(str(r.close_code) for r in results)),
        "errors": dict(Counter(r.error for r in results if r.error).most_common(10)),
        "client_behind_max_s": max((r.client_behind_s for r in results), default=0.0),
        "failures": {str(i): f for i, f in failures.items() if f},
        "uploads": uploads,
        "server_loop_lag": loop_lag,
    }


def markdown(args: argparse.Namespace, summary: dict[str, Any], results: list[StreamResult]) -> str:
    def ms(value: float | None) -> str:
        return "-" if value is None else f"{value * 1000:.0f} ms"

    fin = summary["finalize_latency_s"]
    rows = [
        ("mode", "broadcast" if args.broadcast else f"{args.concurrent} concurrent, {args.n} total"),
        ("audio", f"{args.encoding}, {summary['audio_seconds_per_stream']:.1f} s per stream"),
        ("streams passed", f"{summary['passed']} / {summary['streams']}"),
        (
            "kept real time (lag p95 <= budget)",
            "n/a (--no-realtime)"
            if summary["kept_realtime"] is None
            else f"{summary['kept_realtime']} / {summary['streams']}",
        ),
        ("result lag p50 / p95 / max", " / ".join(ms(summary["lag_s"][k]) for k in ("p50", "p95", "max"))),
        ("word latency p50 / p95", " / ".join(ms(summary["word_latency_s"][k]) for k in ("p50", "p95"))),
        ("Finalize -> from_finalize p50 / p95 / p99", " / ".join(ms(fin[k]) for k in ("p50", "p95", "p99"))),
        ("Finalize answered / timed out", f"{fin['count']} / {fin['timeouts']}"),
        ("first Results p50 / p95", " / ".join(ms(summary["first_result_s"][k]) for k in ("p50", "p95"))),
        ("first word p50 / p95", " / ".join(ms(summary["first_word_s"][k]) for k in ("p50", "p95"))),
        ("close codes", ", ".join(f"{code}: {count}" for code, count in summary["close_codes"].items())),
        ("bench client fell behind by (max)", ms(summary["client_behind_max_s"])),
    ]
    lag = summary["server_loop_lag"]
    if lag is not None and lag["probes"]:
        rows.append(("server loop lag: probes late by > 10 / 50 / 100 ms",
                     " / ".join(f"{lag[f'over_{int(b * 1000)}ms']:.1%}" for b in LAG_LATE_S)
                     + f" of {lag['probes']:.0f}"))
    for i, outcome in enumerate(summary["uploads"]):
        rows.append((f"upload {i}: close code, seconds", f"{outcome['close_code']}, {outcome['seconds']:.1f} s"))
    lines = ["| metric | value |", "|---|---|"] + [f"| {k} | {v} |" for k, v in rows]
    if summary["errors"]:
        lines += ["", "| error | streams |", "|---|---|"]
        lines += [f"| {error} | {count} |" for error, count in summary["errors"].items()]
    budget = lag_budget(args)
    failed = [r for r in results if not r.passed(budget)]
    if failed:
        lines += ["", "| stream | request_id | why it failed |", "|---|---|---|"]
        lines += [f"| {r.index} | {r.request_id or '-'} | {'; '.join(r.failures(budget))} |" for r in failed[:20]]
        if len(failed) > 20:
            lines.append(f"| ... | | {len(failed) - 20} more in the JSON report |")
    return "\n".join(lines)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", default=DEFAULT_URL, help="live route on loopback (default: %(default)s)")
    parser.add_argument("--wav", type=Path, default=DEFAULT_WAV, help="16-bit PCM WAV to stream (default: %(default)s)")
    parser.add_argument("--concurrent", type=int, default=4, help="streams open at once (default: %(default)s)")
    parser.add_argument("--n", type=int, help="streams in total (default: --concurrent)")
    parser.add_argument("--duration", type=float, help="seconds of audio per stream (default: 30, broadcast 120)")
    parser.add_argument(
        "--encoding",
        default="linear16",
        choices=sorted(RAW_ENCODINGS) + sorted(CONTAINER_ENCODINGS),
        help="what to send; mulaw/alaw at 8 kHz, containers without an encoding parameter (default: %(default)s)",
    )
    parser.add_argument("--broadcast", action="store_true", help="one long stream, no pauses, Finalize on a timer")
    parser.add_argument("--finalize-every", type=float, default=30.0, help="broadcast Finalize period in seconds")
    parser.add_argument(
        "--realtime", action=argparse.BooleanOptionalAction, default=True, help="pace audio in real time"
    )
    parser.add_argument(
        "--frame-ms", type=float, default=100.0, help="audio per WebSocket frame (default: %(default)s)"
    )
    parser.add_argument("--ramp", type=float, default=1.0, help="seconds over which the first wave starts")
    parser.add_argument("--lag-budget", type=float, default=3.0, help="max p95 result lag in s to count as real time")
    parser.add_argument("--finalize-timeout", type=float, default=5.0, help="s to wait for a from_finalize final")
    parser.add_argument("--model", default="nova-3", help="model query parameter (default: %(default)s)")
    parser.add_argument("--language", default="en", help="language query parameter (default: %(default)s)")
    parser.add_argument("--param", action="append", default=[], metavar="KEY=VALUE", help="extra query parameter")
    parser.add_argument("--token", default=os.environ.get("DDX_STT_TOKEN", "dummy"), help="API key ($DDX_STT_TOKEN)")
    parser.add_argument("--report", type=Path, help="write the JSON report here")
    parser.add_argument("--upload", type=Path, help="also send this file as one message per upload connection")
    parser.add_argument("--uploads", type=int, default=1, help="upload connections with --upload (default: %(default)s)")
    args = parser.parse_args(argv)
    if args.broadcast:
        args.concurrent, args.n = 1, 1
        args.duration = args.duration or 120.0
    args.n = args.n or args.concurrent
    args.concurrent = min(args.concurrent, args.n)
    args.duration = args.duration or 30.0
    if not 1 <= args.concurrent <= MAX_CONCURRENT or not 1 <= args.n <= MAX_STREAMS:
        parser.error(f"--concurrent must be 1..{MAX_CONCURRENT} and --n 1..{MAX_STREAMS}")
    if not 0 < args.duration <= MAX_DURATION_S:
        parser.error(f"--duration must be in (0, {MAX_DURATION_S:.0f}] seconds")
    if args.upload and not (args.upload.is_file() and 1 <= args.uploads <= MAX_CONCURRENT):
        parser.error(f"--upload must be a file and --uploads 1..{MAX_CONCURRENT}")
    if args.frame_ms < 5 or args.finalize_every <= 0:
        parser.error("--frame-ms must be >= 5 and --finalize-every > 0")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    require_loopback(args.url)
    payload = build_payload(args)
    started = time.time()
    lag_before = loop_lag_buckets(metrics_url(args.url))
    results, uploads = asyncio.run(run_all(args, payload))
    loop_lag = loop_lag_summary(lag_before, loop_lag_buckets(metrics_url(args.url)))
    summary = summarize(args, payload, results, uploads, loop_lag)
    print(markdown(args, summary, results))
    if args.report:
        config = {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items() if k != "token"}
        report = {
            "started": started,
            "wall_s": time.time() - started,
            "config": config,
            "query": payload.query,
            "summary": summary,
            "streams": [asdict(r) for r in results],
        }
        args.report.write_text(json.dumps(report, indent=2, default=str) + "\n")
        print(f"\nreport: {args.report}")
    if all(r.error and r.error.startswith("cannot connect") for r in results):
        print(f"\nno stream could connect to {args.url}: is the server running (ddx-stt serve)?", file=sys.stderr)
        return 2
    uploads_ok = all(outcome["close_code"] == 1000 for outcome in uploads)
    return 0 if summary["passed"] == summary["streams"] and uploads_ok else 1


if __name__ == "__main__":
    sys.exit(main())
