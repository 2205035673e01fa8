"""The one error tree of the Deepgram-compatible frontend.

Every failure a client or the recogniser can cause is an instance of `SttError`, and every
concrete class has exactly one row in `ERROR_TABLE`, which says how it reaches the client:

* `HandshakeError` subclasses are raised before the WebSocket is accepted. The adapter answers
  with `reply.status`, the JSON body from `HandshakeError.body()` and the headers from
  `HandshakeError.headers()` (`dg-request-id`, `dg-error`), like Deepgram does.
* `StreamError` subclasses happen after accept. The session sends the remaining finals and the
  closing `Metadata`, then closes with `close.code` / `close.reason`; when `close.variant` is set
  it first sends an `Error` frame so that clients that log messages see why.

Programming errors are not part of this tree: they raise `RuntimeError`, `ValueError`, ...
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import IntEnum
from http import HTTPStatus
from typing import Final


class CloseCode(IntEnum):
    """WebSocket close codes the service uses (RFC 6455 section 7.4.1)."""

    NORMAL = 1000
    UNSUPPORTED_DATA = 1003
    POLICY_VIOLATION = 1008
    INTERNAL_ERROR = 1011


@dataclass(frozen=True)
class HttpReply:
    """How a handshake failure is answered: status, Deepgram `err_code` and `err_msg`."""

    status: HTTPStatus
    err_code: str
    err_msg: str


@dataclass(frozen=True)
class WsClose:
    """How a stream failure ends the connection.

    `reason` is the close frame's reason (the short codes clients match on, < 123 bytes);
    `variant` is the `Error` frame's variant, or None for closes that send no `Error` frame.
    """

    code: CloseCode
    reason: str
    variant: str | None


class SttError(Exception):
    """Base of every expected failure; `detail` says what exactly was wrong."""

    def __init__(self, detail: str = "") -> None:
        super().__init__(detail)
        self.detail = detail


class HandshakeError(SttError):
    """A failure answered with an HTTP error instead of the 101 upgrade."""

    @property
    def reply(self) -> HttpReply:
        """This error's row of `ERROR_TABLE`."""
        row = ERROR_TABLE[type(self)]
        assert isinstance(row, HttpReply)
        return row

    @property
    def http_status(self) -> int:
        """The HTTP status of the answer."""
        return int(self.reply.status)

    @property
    def err_code(self) -> str:
        """Deepgram's `err_code`."""
        return self.reply.err_code

    @property
    def err_msg(self) -> str:
        """Deepgram's `err_msg`, also the `dg-error` header."""
        return self.reply.err_msg

    def body(self, request_id: str) -> dict[str, str]:
        """Deepgram's error body; `details` (our addition) only when there is a detail."""
        body = {"err_code": self.err_code, "err_msg": self.err_msg, "request_id": request_id}
        if self.detail:
            body["details"] = self.detail
        return body

    def headers(self, request_id: str) -> dict[str, str]:
        """The headers Deepgram puts on every error response."""
        return {"dg-request-id": request_id, "dg-error": self.err_msg}


class AuthMissing(HandshakeError):
    """No `Authorization` header and no `token`/`bearer` subprotocol."""


class InvalidAuth(HandshakeError):
    """A credential was sent but it is not a configured key."""


class InvalidQuery(HandshakeError):
    """A known query parameter has a malformed value (unknown parameters are ignored)."""


class UnsupportedModel(HandshakeError):
    """`model` names neither a served model nor one of the Deepgram aliases."""


class UnsupportedLanguage(HandshakeError):
    """`language` is not served by the selected model."""


class ServiceUnavailable(HandshakeError):
    """The server cannot take a new stream now (draining for shutdown, recogniser not ready)."""


class UnsupportedSource(HandshakeError):
    """`POST /v1/listen` with a JSON `{"url": ...}` body: this server does not fetch URLs."""


class TooManySessions(HandshakeError):
    """The server already runs `--max-sessions` sessions."""

    RETRY_AFTER_S = 1

    def headers(self, request_id: str) -> dict[str, str]:
        """Deepgram's error headers and when to try again."""
        return {**super().headers(request_id), "Retry-After": str(self.RETRY_AFTER_S)}


class ModelNotFound(HandshakeError):
    """`GET /v1/models/{id}` naming no served model."""


class CallbackRefused(HandshakeError):
    """`POST /v1/listen?callback=URL` naming a host the operator did not allow, or no URL."""


class StreamError(SttError):
    """A failure after accept: ends the session with a WebSocket close."""

    @property
    def close(self) -> WsClose:
        """This error's row of `ERROR_TABLE`."""
        row = ERROR_TABLE[type(self)]
        assert isinstance(row, WsClose)
        return row


class InvalidControl(StreamError):
    """A text frame that is not JSON, has an unknown `type` or fails the control schema."""


class AudioError(StreamError):
    """Raised by the audio normaliser (`frontend/audio/normalize.py`)."""


class UndecodableAudio(AudioError):
    """The payload cannot be decoded as audio in the declared or sniffed encoding."""


class UnsupportedEncoding(AudioError):
    """The encoding (declared or sniffed) is one the normaliser cannot decode."""


class ChannelsTooMany(AudioError):
    """More channels than `DDX_STT_AUDIO_MAX_CHANNELS`."""


class SampleRateTooHigh(AudioError):
    """A sample rate above `DDX_STT_AUDIO_MAX_SAMPLE_RATE`."""


class IdleTimeout(StreamError):
    """Neither binary nor text frames for the idle timeout (10 s)."""


class RecognizerFailure(StreamError):
    """Triton failed, answered malformed output, or another internal failure."""


class ServerShutdown(StreamError):
    """The server is draining (SIGTERM): finals and Metadata, then a normal close."""


ERROR_TABLE: Final[Mapping[type[SttError], HttpReply | WsClose]] = {
    AuthMissing: HttpReply(HTTPStatus.FORBIDDEN, "AUTH_MISSING",
                           "Missing credentials: send 'Authorization: Token <key>' or "
                           "'Sec-WebSocket-Protocol: token, <key>'."),
    InvalidAuth: HttpReply(HTTPStatus.UNAUTHORIZED, "INVALID_AUTH", "Invalid credentials."),
    InvalidQuery: HttpReply(HTTPStatus.BAD_REQUEST, "Bad Request", "Invalid query string."),
    UnsupportedModel: HttpReply(HTTPStatus.BAD_REQUEST, "UNSUPPORTED_MODEL",
                                "The requested model is not served."),
    UnsupportedLanguage: HttpReply(HTTPStatus.BAD_REQUEST, "UNSUPPORTED_LANGUAGE",
                                   "The requested language is not served by this model."),
    ServiceUnavailable: HttpReply(HTTPStatus.SERVICE_UNAVAILABLE, "SERVICE_UNAVAILABLE",
                                  "The service cannot take new streams right now."),
    UnsupportedSource: HttpReply(HTTPStatus.BAD_REQUEST, "UNSUPPORTED_SOURCE",
                                 "Send the audio bytes in the request body."),
    TooManySessions: HttpReply(HTTPStatus.TOO_MANY_REQUESTS, "TOO_MANY_REQUESTS",
                               "Too many concurrent requests; try again shortly."),
    ModelNotFound: HttpReply(HTTPStatus.NOT_FOUND, "NOT_FOUND", "No served model has that id."),
    CallbackRefused: HttpReply(HTTPStatus.BAD_REQUEST, "CALLBACK_NOT_ALLOWED",
                               "This server does not call back to that URL."),
    InvalidControl: WsClose(CloseCode.POLICY_VIOLATION, "DATA-0000", "SchemaError"),
    UndecodableAudio: WsClose(CloseCode.POLICY_VIOLATION, "DATA-0000", "DataError"),
    UnsupportedEncoding: WsClose(CloseCode.UNSUPPORTED_DATA, "unsupported-data", "DataError"),
    ChannelsTooMany: WsClose(CloseCode.POLICY_VIOLATION, "channels-too-many", "DataError"),
    SampleRateTooHigh: WsClose(CloseCode.POLICY_VIOLATION, "sample-rate-too-high", "DataError"),
    # Deepgram sends no Error frame before NET-0001, only the Metadata: keep that.
    IdleTimeout: WsClose(CloseCode.INTERNAL_ERROR, "NET-0001", None),
    RecognizerFailure: WsClose(CloseCode.INTERNAL_ERROR, "NET-0000", "InternalError"),
    ServerShutdown: WsClose(CloseCode.NORMAL, "server-shutdown", None),
}
