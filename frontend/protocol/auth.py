"""Deepgram-style authentication of the WebSocket handshake.

Clients send the key either as `Authorization: Token <key>` / `Bearer <key>` (SDKs, servers;
the Python SDK writes `bearer` in lower case) or, from browsers that cannot set headers, as the
subprotocol list `Sec-WebSocket-Protocol: token, <key>` (or `bearer, <key>`), possibly followed
by `x-deepgram-session-id, <uuid>`. A browser aborts the handshake unless the 101 response
selects one of the offered protocols, so `Credential.subprotocol` is what the adapter must
echo.
"""

from __future__ import annotations

import hmac
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from frontend.protocol.errors import AuthMissing, InvalidAuth



@dataclass(frozen=True)
class Credential:
    """An accepted key and how it came."""

    key: str
    scheme: Literal["token", "bearer"]
    subprotocol: str | None
    """The offered `token`/`bearer` entry, spelled as offered, to select in the 101
    response; None when the client offered no such subprotocol."""


class KeyStore:
    """The configured API keys; compares in constant time.

    With no key configured the store is in open mode: any non-empty key is accepted (for
    local development; the app should log a warning at start when `open_mode` is true).
    """

    def __init__(self, keys: Iterable[str]) -> None:
        self._keys = tuple(k.encode() for k in (key.strip() for key in keys) if k)

    @classmethod
    def from_sources(cls, api_keys: str | Iterable[str] | None = None,
                     key_file: Path | None = None) -> KeyStore:
        """Keys from `DDX_STT_API_KEYS` (the raw comma list, or already split) and/or a file.

        The file holds one key per line; blank lines and `#` comments are skipped. A missing
        or unreadable file raises OSError: a configured file that cannot be read must not
        silently turn the server into open mode.
        """
        # A bare string is the comma list; iterating it would make every character a key.
        keys = (api_keys or "").split(",") if isinstance(api_keys, str) else list(api_keys or ())
        if key_file is not None:
            for line in key_file.read_text(encoding="utf-8").splitlines():
                keys.append(line.split("#", 1)[0])
        return cls(keys)

    @property
    def open_mode(self) -> bool:
        """True when no key is configured and every non-empty key is accepted."""
        return not self._keys

    def accepts(self, key: str) -> bool:
        """Whether `key` is configured (any non-empty key in open mode).

        Compares against every configured key without stopping at a match, so the time taken
        says nothing about which key, or which prefix, matched.
        """
        if not key:
            return False
        if self.open_mode:
            return True
        candidate = key.encode()
        matched = False
        for configured in self._keys:
            matched |= hmac.compare_digest(candidate, configured)
        return matched


def _header(headers: Mapping[str, str], name: str) -> str | None:
    # aiohttp's CIMultiDictProxy is case-insensitive and may repeat a header; plain dicts
    # (tests, other servers) are not, so look the name up case-insensitively by hand.
    getall = getattr(headers, "getall", None)
    if getall is not None:
        values = [str(v) for v in getall(name, [])]
    else:
        values = [v for k, v in headers.items() if k.lower() == name.lower()]
    return ", ".join(values) if values else None


def _from_authorization(value: str) -> tuple[Literal["token", "bearer"], str] | None:
    scheme, _, key = value.strip().partition(" ")
    lowered = scheme.lower()
    if lowered == "token":
        return "token", key.strip()
    if lowered == "bearer":
        return "bearer", key.strip()
    return None


def _from_subprotocols(value: str) -> tuple[Literal["token", "bearer"], str, str] | None:
    offered = [entry.strip() for entry in value.split(",")]
    for index, entry in enumerate(offered[:-1]):
        lowered = entry.lower()
        if lowered == "token":
            return "token", offered[index + 1], entry
        if lowered == "bearer":
            return "bearer", offered[index + 1], entry
    return None


def authenticate(headers: Mapping[str, str], keys: KeyStore) -> Credential:
    """Find the client's key in the handshake headers and check it against `keys`.

    The `Authorization` header wins over the subprotocol form; the subprotocol is still
    reported when offered, because the browser needs it selected. Raises `AuthMissing` (403)
    when no credential was sent (or the key is empty), `InvalidAuth` (401) when one was sent
    but is not a configured key, or when `Authorization` uses another scheme (e.g. `Basic`).
    """
    authorization = _header(headers, "Authorization")
    protocols = _header(headers, "Sec-WebSocket-Protocol")
    offered = _from_subprotocols(protocols) if protocols else None
    subprotocol = offered[2] if offered else None

    if authorization is not None and authorization.strip():
        parsed = _from_authorization(authorization)
        if parsed is None:
            raise InvalidAuth("Authorization scheme must be Token or Bearer")
        scheme, key = parsed
    elif offered is not None:
        scheme, key, _ = offered
    else:
        raise AuthMissing()
    if not key:
        raise AuthMissing(f"empty {scheme} credential")
    if not keys.accepts(key):
        raise InvalidAuth()
    return Credential(key=key, scheme=scheme, subprotocol=subprotocol)
