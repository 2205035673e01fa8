"""Deepgram's asynchronous pre-recorded mode: with `callback=URL` the request is answered at
once with `{"request_id": ...}`, and the response body (the transcript, or the error body) goes
to the URL when the transcription is done, by POST or, with `callback_method=put`, PUT.

Only hosts the operator lists in `--callback-hosts` are called: a server that sends requests to
any URL its clients name can be turned against the network it runs in. A delivery is tried
three times, 1 s and 2 s apart, after a connection failure or a 5xx; a 4xx is final.
"""

from __future__ import annotations

import asyncio
import logging
import urllib.parse
from collections.abc import Sequence
from typing import Any, Literal

import aiohttp

from frontend.protocol.errors import CallbackRefused

log = logging.getLogger(__name__)

ATTEMPTS = 3
RETRY_BASE_S = 1.0
"""The wait before the second attempt; it doubles for each one after."""
TIMEOUT_S = 30.0
Outcome = Literal["delivered", "rejected", "failed"]


def allowed_callback(raw: str, allowed_hosts: Sequence[str]) -> str:
    """`raw` if it is an http(s) URL to an allowed host; else raise `CallbackRefused`."""
    parts = urllib.parse.urlsplit(raw)
    try:
        port = parts.port
    except ValueError:  # a port that is not a number
        port = -1
    if parts.scheme not in ("http", "https") or not parts.hostname or port == -1:
        raise CallbackRefused(f"callback={raw[:200]!r} is not an http(s) URL")
    host = parts.hostname.lower()
    names = {host, f"{host}:{port}"} if port else {host}
    if "*" not in allowed_hosts and not names & {h.lower() for h in allowed_hosts}:
        raise CallbackRefused(f"callback host {host!r} is not in --callback-hosts")
    return raw


async def deliver(url: str, method: str, body: dict[str, Any], request_id: str) -> Outcome:
    """Send `body` as JSON to `url`; how it went."""
    timeout = aiohttp.ClientTimeout(total=TIMEOUT_S)
    async with aiohttp.ClientSession(timeout=timeout) as http:
        for attempt in range(ATTEMPTS):
            if attempt:
                await asyncio.sleep(RETRY_BASE_S * 2 ** (attempt - 1))
            try:
                async with http.request(method.upper(), url, json=body,
                                        headers={"dg-request-id": request_id}) as reply:
                    if reply.status < 400:
                        return "delivered"
                    if reply.status < 500:
                        log.warning("request %s: callback refused with HTTP %d", request_id, reply.status)
                        return "rejected"
                    log.warning("request %s: callback answered HTTP %d (attempt %d)", request_id,
                                reply.status, attempt + 1)
            except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
                log.warning("request %s: callback failed (attempt %d): %r", request_id, attempt + 1, exc)
    return "failed"
