"""Client control messages (text frames) of the live API, parsed and validated."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from jsonschema.exceptions import best_match

from frontend.protocol.errors import InvalidControl
from frontend.protocol.schemas import validator

# Descriptions quote the client's values: keep an Error frame small whatever was sent.
_MAX_DETAIL = 300


@dataclass(frozen=True)
class KeepAlive:
    """Resets the idle timer; the server does not answer."""


@dataclass(frozen=True)
class Finalize:
    """Flush buffered audio and send a `from_finalize` final; None = every channel."""

    channel: int | None = None


@dataclass(frozen=True)
class CloseStream:
    """End of stream (also the legacy `{"type": "Close"}`)."""


@dataclass(frozen=True)
class Configure:
    """Mid-stream reconfiguration (Deepgram SDK 7); `raw` is the whole message."""

    raw: Mapping[str, Any]

    @property
    def keyterms(self) -> list[str] | None:
        """The new keyterm list (empty clears it); None keeps the current one."""
        return self.raw.get("keyterms")

    @property
    def features(self) -> Mapping[str, bool] | None:
        """Formatting features to switch on or off, by name."""
        return self.raw.get("features")


Control = KeepAlive | Finalize | CloseStream | Configure


def parse_control(text: str) -> Control:
    """Parse one text frame; raise `InvalidControl` (close 1008 DATA-0000) when it is not
    JSON, not an object, has an unknown `type` or breaks `schemas/control-messages.schema.json`.
    """
    try:
        message = json.loads(text)
    except (ValueError, RecursionError) as exc:  # RecursionError: "[[[[..." nested too deep
        raise InvalidControl(f"control message is not JSON: {exc}"[:_MAX_DETAIL]) from None
    if not isinstance(message, dict):
        raise InvalidControl("control message must be a JSON object with a `type`")
    error = best_match(validator("control-messages").iter_errors(message))
    if error is not None:
        kind = message.get("type")
        raise InvalidControl(
            f"invalid control message (type {kind!r}): {error.message}"[:_MAX_DETAIL])
    kind = message["type"]
    if kind == "KeepAlive":
        return KeepAlive()
    if kind == "Finalize":
        return Finalize(channel=message.get("channel"))
    if kind in ("CloseStream", "Close"):
        return CloseStream()
    return Configure(raw=message)
