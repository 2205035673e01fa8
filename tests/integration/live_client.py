"""A plain `websockets` client of the live route that records everything a user would see."""

from __future__ import annotations

import asyncio
import json
import wave
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import jsonschema
import websockets
from websockets.exceptions import ConnectionClosed

REPO = Path(__file__).resolve().parents[2]
FIXTURES = REPO / "tests" / "fixtures"
LINEAR16 = "encoding=linear16&sample_rate=16000&channels=1"


@lru_cache(maxsize=1)
def frame_validator() -> jsonschema.protocols.Validator:
    schema = json.loads((REPO / "schemas" / "asr-frame.schema.json").read_text())
    return jsonschema.Draft202012Validator(schema)


def wav_pcm(name: str) -> bytes:
    """Raw s16le samples of a 16 kHz mono fixture."""
    with wave.open(str(FIXTURES / name), "rb") as wav:
        assert wav.getframerate() == 16000 and wav.getnchannels() == 1 and wav.getsampwidth() == 2
        return wav.readframes(wav.getnframes())


@dataclass
class Transcript:
    """What one connection produced."""

    frames: list[dict[str, Any]] = field(default_factory=list)
    close_code: int | None = None
    close_reason: str = ""
    response_headers: dict[str, str] = field(default_factory=dict)
    subprotocol: str | None = None

    def of_type(self, kind: str) -> list[dict[str, Any]]:
        return [f for f in self.frames if f.get("type") == kind]

    @property
    def finals(self) -> list[dict[str, Any]]:
        return [f for f in self.of_type("Results") if f.get("is_final")]

    @property
    def final_text(self) -> str:
        texts = (f["channel"]["alternatives"][0]["transcript"] for f in self.finals)
        return " ".join(t for t in texts if t)

    def words(self) -> list[dict[str, Any]]:
        return [w for f in self.finals for w in f["channel"]["alternatives"][0]["words"]]


class LiveSession:
    """An open connection: send audio and controls, then `finish()` to collect the transcript."""

    def __init__(self, ws: websockets.ClientConnection, transcript: Transcript) -> None:
        self.ws = ws
        self.transcript = transcript
        self._reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        try:
            async for message in self.ws:
                assert isinstance(message, str), "server sent a binary frame"
                frame = json.loads(message)
                frame_validator().validate(frame)
                self.transcript.frames.append(frame)
        except ConnectionClosed:
            pass
        self.transcript.close_code = self.ws.close_code
        self.transcript.close_reason = self.ws.close_reason or ""

    async def send_audio(self, pcm: bytes, chunk: int = 3200, pace_s: float = 0.0) -> None:
        for i in range(0, len(pcm), chunk):
            await self.ws.send(pcm[i : i + chunk])
            if pace_s:
                await asyncio.sleep(pace_s)

    async def send_json(self, message: dict[str, Any]) -> None:
        await self.ws.send(json.dumps(message))

    async def wait_for(self, predicate: Any, timeout: float = 30.0) -> dict[str, Any]:
        """Wait until a received frame satisfies `predicate`; returns it."""
        deadline = asyncio.get_running_loop().time() + timeout
        seen = 0
        while asyncio.get_running_loop().time() < deadline:
            for frame in self.transcript.frames[seen:]:
                if predicate(frame):
                    return frame
            seen = len(self.transcript.frames)
            if self._reader.done():
                break
            await asyncio.sleep(0.05)
        raise AssertionError(f"no matching frame; got {[f.get('type') for f in self.transcript.frames]}")

    async def finish(self, timeout: float = 60.0) -> Transcript:
        """Wait for the server to close the connection."""
        await asyncio.wait_for(self._reader, timeout)
        return self.transcript


async def connect(
    base: str,
    query: str = LINEAR16,
    *,
    token: str | None = None,
    path: str = "/v1/listen/dg",
    headers: dict[str, str] | None = None,
    subprotocols: list[str] | None = None,
) -> LiveSession:
    all_headers = dict(headers or {})
    if token is not None:
        all_headers["Authorization"] = f"Token {token}"
    ws = await websockets.connect(
        f"{base}{path}?{query}",
        additional_headers=all_headers,
        subprotocols=subprotocols,  # type: ignore[arg-type]
        max_size=2**20,
        open_timeout=30,
    )
    transcript = Transcript(
        response_headers={k.lower(): v for k, v in ws.response.headers.raw_items()} if ws.response else {},
        subprotocol=ws.subprotocol,
    )
    return LiveSession(ws, transcript)


async def transcribe(base: str, pcm: bytes, query: str = LINEAR16, *, token: str, chunk: int = 3200,
                     **kwargs: Any) -> Transcript:
    """Stream a whole utterance in `chunk`-byte messages, CloseStream, and collect everything
    until the close."""
    session = await connect(base, query, token=token, **kwargs)
    await session.send_audio(pcm, chunk)
    await session.send_json({"type": "CloseStream"})
    return await session.finish()
