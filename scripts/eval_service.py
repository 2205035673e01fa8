#!/usr/bin/env python3
"""WER / CER / exact match of the *running service*: eval manifests streamed over the live route.

Each utterance is one connection to `/v1/listen`: the audio file's samples are sent as they are
stored, in ~100 ms binary frames (16 kHz PCM wav as `encoding=linear16&sample_rate=16000`,
8 kHz mu-law wav as raw G.711 bytes with `encoding=mulaw&sample_rate=8000`, FSDD's 8 kHz PCM as
`encoding=linear16&sample_rate=8000`), then `{"type": "CloseStream"}`; the transcripts of the
`Results` frames with `is_final: true` are joined. No formatting options are sent (no
`punctuate`, `smart_format`, `numerals`); hypothesis and reference are normalised alike anyway
(`wer.py`). Frames go out as fast as the socket takes them unless `--realtime`.

    .venv/bin/python scripts/eval_service.py --url ws://127.0.0.1:4600/v1/listen --set all --limit 40
    .venv/bin/python scripts/eval_service.py --serve /tmp/export --set fsdd --report /tmp/fsdd.json

`--serve DIR` starts `frontend.cli serve --model-dir DIR` itself (127.0.0.1, a free port, a
temporary model repository), waits for /healthz, evaluates, then stops it with SIGTERM.

Targets (issue): festival16k WER <= 20 %, festival8k_mulaw WER <= 25 %, tts (held-out espeak /
flite voices) WER <= 10 %, fsdd exact >= 95 %; the two-sentence streams (tts_stream,
festival16k_stream) are held to their single sentences' targets. Exit status 0 whether or not
they are met; 2 when utterances failed (connection refused, close code other than 1000, timeout).
`--limit N` takes N utterances spread evenly over each manifest (see `eval_common.select_rows`),
the same ones `eval_offline.py --limit N` scores.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from eval_common import (  # noqa: E402
    DEFAULT_CORPUS,
    SET_CHOICES,
    EvalSet,
    add_set,
    examples,
    load_set,
    markdown_table,
    new_report,
    resolve_sets,
    utterance_record,
    write_report,
)

REPO = Path(__file__).resolve().parent.parent

# --------------------------------------------------------------------------- audio files

_WAVE_PCM, _WAVE_MULAW, _WAVE_EXTENSIBLE = 1, 7, 0xFFFE


@dataclass(frozen=True)
class StreamAudio:
    """The bytes to send and the query that describes them."""

    encoding: str  # linear16 | mulaw
    sample_rate: int
    data: bytes

    @property
    def bytes_per_second(self) -> int:
        return self.sample_rate * (2 if self.encoding == "linear16" else 1)

    @property
    def duration(self) -> float:
        return len(self.data) / self.bytes_per_second


def read_wav(path: str | Path) -> StreamAudio:
    """Mono RIFF/WAVE, 16-bit PCM or G.711 mu-law, to its raw sample bytes (no conversion)."""
    raw = Path(path).read_bytes()
    if raw[:4] != b"RIFF" or raw[8:12] != b"WAVE":
        raise ValueError(f"{path}: not a RIFF/WAVE file")
    fmt: tuple[int, int, int, int] | None = None
    data: bytes | None = None
    pos = 12
    while pos + 8 <= len(raw):
        cid, size = raw[pos:pos + 4], struct.unpack("<I", raw[pos + 4:pos + 8])[0]
        body = raw[pos + 8:pos + 8 + size]
        if cid == b"fmt ":
            tag, channels, rate = struct.unpack("<HHI", body[:8])
            bits = struct.unpack("<H", body[14:16])[0]
            if tag == _WAVE_EXTENSIBLE and len(body) >= 26:
                tag = struct.unpack("<H", body[24:26])[0]  # first two bytes of the sub-format GUID
            fmt = (tag, channels, rate, bits)
        elif cid == b"data":
            data = body
        pos += 8 + size + (size & 1)
    if fmt is None or data is None:
        raise ValueError(f"{path}: no fmt or data chunk")
    tag, channels, rate, bits = fmt
    if channels != 1:
        raise ValueError(f"{path}: {channels} channels, expected mono")
    if tag == _WAVE_PCM and bits == 16:
        return StreamAudio("linear16", rate, data[: len(data) // 2 * 2])
    if tag == _WAVE_MULAW and bits == 8:
        return StreamAudio("mulaw", rate, data)
    raise ValueError(f"{path}: unsupported wav format tag {tag} / {bits} bits")


# --------------------------------------------------------------------------- one connection


class Refused(Exception):
    """The service refused the connection with a 4xx: a configuration error, not a score."""


@dataclass
class StreamResult:
    transcript: str
    finals: int
    close_code: int | None
    close_reason: str
    error: str | None
    wall_s: float
    finalize_s: float | None  # CloseStream sent -> connection closed
    metadata: dict[str, Any] | None


async def stream_utterance(url: str, token: str, audio: StreamAudio, frame_ms: int, realtime: bool,
                           timeout: float, extra_query: dict[str, str]) -> StreamResult:
    from websockets.asyncio.client import connect
    from websockets.exceptions import ConnectionClosed, InvalidStatus

    query = {"encoding": audio.encoding, "sample_rate": str(audio.sample_rate), "channels": "1", **extra_query}
    full_url = f"{url}{'&' if '?' in url else '?'}{urllib.parse.urlencode(query)}"
    frame = max(1, audio.bytes_per_second * frame_ms // 1000)
    frames: list[dict[str, Any]] = []
    t0 = time.monotonic()
    t_close: float | None = None
    error: str | None = None
    code: int | None = None
    reason = ""
    try:
        async with asyncio.timeout(timeout):
            async with connect(full_url, additional_headers={"Authorization": f"Token {token}"},
                               max_size=None, open_timeout=30, close_timeout=10) as ws:

                async def read() -> None:
                    try:
                        async for message in ws:
                            if isinstance(message, str):
                                frames.append(json.loads(message))
                    except ConnectionClosed:
                        pass

                reader = asyncio.create_task(read())
                try:
                    start = time.monotonic()
                    for k, i in enumerate(range(0, len(audio.data), frame)):
                        await ws.send(audio.data[i:i + frame])
                        if realtime:
                            delay = start + (k + 1) * frame_ms / 1000 - time.monotonic()
                            if delay > 0:
                                await asyncio.sleep(delay)
                    await ws.send(json.dumps({"type": "CloseStream"}))
                    t_close = time.monotonic()
                except ConnectionClosed as exc:
                    error = f"closed while sending: {exc}"
                await reader
                code, reason = ws.close_code, ws.close_reason or ""
    except TimeoutError:
        error = f"timed out after {timeout:.0f} s"
    except InvalidStatus as exc:
        status, body = exc.response.status_code, (exc.response.body or b"")[:300].decode(errors="replace")
        if 400 <= status < 500:  # bad query, token or route: every utterance would fail alike
            raise Refused(f"{full_url}: HTTP {status} {body}") from None
        error = f"handshake refused: HTTP {status} {body}"
    except (OSError, ConnectionClosed) as exc:
        error = f"{type(exc).__name__}: {exc}"
    t_end = time.monotonic()
    if error is None and code != 1000:
        error = f"close {code} {reason!r}"
    finals = [f for f in frames if f.get("type") == "Results" and f.get("is_final")]
    texts = (f["channel"]["alternatives"][0]["transcript"] for f in finals if f["channel"]["alternatives"])
    metadata = next((f for f in frames if f.get("type") == "Metadata"), None)
    return StreamResult(
        transcript=" ".join(t for t in texts if t),
        finals=len(finals),
        close_code=code,
        close_reason=reason,
        error=error,
        wall_s=round(t_end - t0, 3),
        finalize_s=round(t_end - t_close, 3) if t_close is not None and error is None else None,
        metadata=metadata,
    )


async def evaluate_set(es: EvalSet, rows: list[tuple[int, dict]], args: argparse.Namespace,
                       extra_query: dict[str, str], provenance: dict[str, Any]) -> list[dict]:
    sem = asyncio.Semaphore(args.concurrency)
    done = 0

    async def one(index: int, row: dict) -> dict:
        nonlocal done
        async with sem:
            try:
                audio = read_wav(row["audio_filepath"])
            except (OSError, ValueError) as exc:
                result = StreamResult("", 0, None, "", f"audio: {exc}", 0.0, None, None)
                audio = None
            else:
                timeout = args.timeout + (audio.duration * 1.5 if args.realtime else audio.duration)
                result = await stream_utterance(args.url, args.token, audio, args.frame_ms, args.realtime,
                                                timeout, extra_query)
        if result.metadata and "metadata" not in provenance:
            provenance["metadata"] = {k: result.metadata.get(k) for k in ("models", "model_info") if k in result.metadata}
        done += 1
        if result.error:
            print(f"  {es.name} #{index}: {result.error}", file=sys.stderr, flush=True)
        if done % 20 == 0 or done == len(rows):
            print(f"  {es.name}: {done}/{len(rows)}", file=sys.stderr, flush=True)
        return utterance_record(
            index, row, result.transcript,
            encoding=audio.encoding if audio else None, sample_rate=audio.sample_rate if audio else None,
            finals=result.finals, close_code=result.close_code, error=result.error,
            wall_s=result.wall_s, finalize_s=result.finalize_s,
        )

    return list(await asyncio.gather(*(one(i, r) for i, r in rows)))


# --------------------------------------------------------------------------- --serve


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ServedService:
    """`frontend.cli serve` as a child process with a temporary model repository."""

    def __init__(self, model_dir: Path, port: int, timeout: float, encoder_threads: int | None) -> None:
        self.model_dir = model_dir.resolve()
        self.port = port or _free_port()
        self.timeout = timeout
        self.encoder_threads = encoder_threads
        self.tmp = Path(tempfile.mkdtemp(prefix="ddx_eval_serve_"))
        self.log_path = self.tmp / "server.log"
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/v1/listen"

    def start(self) -> None:
        env = dict(os.environ)
        env["DDX_STT_REPOSITORY_DIR"] = str(self.tmp / "repository")
        env.pop("DDX_STT_API_KEYS", None)  # open mode: the evaluation's token is accepted
        env.pop("DDX_STT_API_KEY_FILE", None)
        cmd = [sys.executable, "-m", "frontend.cli", "serve", "--host", "127.0.0.1",
               "--port", str(self.port), "--model-dir", str(self.model_dir)]
        if self.encoder_threads:
            cmd += ["--encoder-threads", str(self.encoder_threads)]
        print(f"serving {self.model_dir} on port {self.port} (log {self.log_path})", file=sys.stderr, flush=True)
        with self.log_path.open("wb") as log:
            self.proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT,
                                         start_new_session=True)
        deadline = time.monotonic() + self.timeout
        health = f"http://127.0.0.1:{self.port}/healthz"
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise SystemExit(f"server exited with {self.proc.returncode}:\n{self.log_tail()}")
            try:
                with urllib.request.urlopen(health, timeout=2) as r:
                    if r.status == 200:
                        print(f"healthy after {self.timeout - (deadline - time.monotonic()):.0f} s",
                              file=sys.stderr, flush=True)
                        return
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(1.0)
        self.stop()
        raise SystemExit(f"server not healthy after {self.timeout:.0f} s:\n{self.log_tail()}")

    def log_tail(self, n: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return "(no log)"

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                print("server ignored SIGTERM for 60 s; killing its process group", file=sys.stderr)
                os.killpg(self.proc.pid, signal.SIGKILL)  # our own child's session
                self.proc.wait()
        if self.proc is not None and self.proc.returncode not in (0, -signal.SIGTERM):
            print(f"server exited with {self.proc.returncode}:\n{self.log_tail()}", file=sys.stderr)
        shutil.rmtree(self.tmp, ignore_errors=True)


# --------------------------------------------------------------------------- main


async def run(args: argparse.Namespace, report: dict[str, Any]) -> int:
    extra_query: dict[str, str] = {}
    if args.latency:
        extra_query["ddx_latency"] = args.latency
    for item in args.param:
        key, sep, value = item.partition("=")
        if not sep:
            raise SystemExit(f"--param {item!r}: expected NAME=VALUE")
        extra_query[key] = value
    failed = 0
    for es in resolve_sets(args.set):
        rows = load_set(es, args.corpus, args.limit)
        t0 = time.monotonic()
        utts = await evaluate_set(es, rows, args, extra_query, report)
        failed += sum(1 for u in utts if u["error"])
        add_set(report, es, utts)
        audio_s = sum(u["duration"] or 0 for u in utts)
        s = report["sets"][es.name]["summary"]
        print(f"{es.name}: n={s['n']} WER={100 * s['wer']:.1f}% CER={100 * s['cer']:.1f}% "
              f"exact={100 * s['exact']:.1f}% ({audio_s:.0f} s audio in {time.monotonic() - t0:.0f} s)",
              file=sys.stderr, flush=True)
    return failed


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--url", default="ws://127.0.0.1:4600/v1/listen", help="live route of a running service")
    ap.add_argument("--serve", type=Path, metavar="MODEL_DIR",
                    help="start the service on this exported model folder instead of using --url")
    ap.add_argument("--port", type=int, default=0, help="with --serve: port (0: a free one)")
    ap.add_argument("--serve-timeout", type=float, default=300.0, help="with --serve: seconds to wait for /healthz")
    ap.add_argument("--encoder-threads", type=int, default=None, help="with --serve: onnxruntime threads")
    ap.add_argument("--set", action="append", default=None,
                    help=f"{SET_CHOICES} (repeatable, comma list; default all)")
    ap.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS, help="folder of the eval_*.jsonl manifests")
    ap.add_argument("--limit", type=int, default=None, help="N utterances per set, spread evenly over the manifest")
    ap.add_argument("--concurrency", type=int, default=4, help="connections at once")
    ap.add_argument("--latency", default=None, help="ddx_latency profile: la13 | la6 | la1 (default: served default)")
    ap.add_argument("--param", action="append", default=[], metavar="NAME=VALUE", help="extra query parameter")
    ap.add_argument("--token", default=os.environ.get("DDX_STT_EVAL_TOKEN", "dummy"),
                    help="API key sent as `Authorization: Token ...` (env DDX_STT_EVAL_TOKEN)")
    ap.add_argument("--frame-ms", type=int, default=100, help="audio per binary frame")
    ap.add_argument("--realtime", action="store_true", help="pace frames at real time")
    ap.add_argument("--timeout", type=float, default=60.0, help="seconds per utterance on top of its duration")
    ap.add_argument("--report", type=Path, default=None, help="write the JSON report (with every utterance) here")
    ap.add_argument("--show", type=int, default=2, help="worst utterances printed per set")
    args = ap.parse_args()
    args.set = args.set or ["all"]
    resolve_sets(args.set)  # fail on a bad name before starting anything

    server = ServedService(args.serve, args.port, args.serve_timeout, args.encoder_threads) if args.serve else None
    try:
        if server is not None:
            server.start()
            args.url = server.url
        report = new_report(
            "streaming", source=str(args.serve.resolve()) if args.serve else args.url, url=args.url,
            latency=args.latency, limit=args.limit, concurrency=args.concurrency, realtime=args.realtime,
            frame_ms=args.frame_ms, params=args.param, corpus=str(args.corpus),
        )
        try:
            failed = asyncio.run(run(args, report))
        except Refused as exc:
            raise SystemExit(f"the service refused the connection: {exc}") from None
    finally:
        if server is not None:
            server.stop()
    report["failed_utterances"] = failed
    write_report(report, args.report)
    if args.show:
        print(examples(report, args.show), file=sys.stderr)
    print(f"\nStreaming through {report['source']} ({args.latency or 'default profile'}"
          f"{', real-time' if args.realtime else ''}); limit {args.limit or 'none'} per set\n")
    print(markdown_table(report))
    if failed:
        print(f"\n{failed} utterance(s) failed (scored with what arrived; see the report's `error` fields)")
    sys.exit(2 if failed else 0)


if __name__ == "__main__":
    main()
