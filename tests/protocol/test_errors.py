"""The error tree and its one table, against the integration guide's failure modes."""

from __future__ import annotations

import pytest

from frontend.protocol import errors
from frontend.protocol.errors import ERROR_TABLE, HandshakeError, StreamError, SttError


def _concrete(cls: type[SttError]) -> list[type[SttError]]:
    out: list[type[SttError]] = []
    for sub in cls.__subclasses__():
        out += _concrete(sub) or [sub]
    return out


def test_every_concrete_error_has_exactly_one_row() -> None:
    assert set(_concrete(SttError)) == set(ERROR_TABLE)


@pytest.mark.parametrize(("cls", "code", "reason"), [
    (errors.InvalidControl, 1008, "DATA-0000"),
    (errors.UndecodableAudio, 1008, "DATA-0000"),
    (errors.UnsupportedEncoding, 1003, "unsupported-data"),
    (errors.ChannelsTooMany, 1008, "channels-too-many"),
    (errors.SampleRateTooHigh, 1008, "sample-rate-too-high"),
    (errors.IdleTimeout, 1011, "NET-0001"),
    (errors.RecognizerFailure, 1011, "NET-0000"),
    (errors.ServerShutdown, 1000, "server-shutdown"),
])
def test_stream_errors_close_as_the_integration_guide_says(cls: type[StreamError], code: int,
                                                           reason: str) -> None:
    close = cls("detail").close
    assert (close.code, close.reason) == (code, reason)
    assert len(close.reason.encode()) <= 123  # the close frame's limit


@pytest.mark.parametrize(("cls", "status", "err_code"), [
    (errors.AuthMissing, 403, "AUTH_MISSING"),
    (errors.InvalidAuth, 401, "INVALID_AUTH"),
    (errors.InvalidQuery, 400, "Bad Request"),
    (errors.UnsupportedModel, 400, "UNSUPPORTED_MODEL"),
    (errors.UnsupportedLanguage, 400, "UNSUPPORTED_LANGUAGE"),
    (errors.ServiceUnavailable, 503, "SERVICE_UNAVAILABLE"),
])
def test_handshake_errors_answer_with_deepgram_bodies(cls: type[HandshakeError], status: int,
                                                      err_code: str) -> None:
    error = cls()
    assert error.reply.status == error.http_status == status
    assert (error.err_code, error.err_msg) == (err_code, error.reply.err_msg)
    assert error.body("rid") == {"err_code": err_code, "err_msg": error.reply.err_msg,
                                 "request_id": "rid"}
    assert error.headers("rid") == {"dg-request-id": "rid", "dg-error": error.reply.err_msg}
    assert error.reply.err_msg.isascii() and "\n" not in error.reply.err_msg


def test_audio_errors_share_a_base_the_normaliser_raises() -> None:
    for cls in (errors.UnsupportedEncoding, errors.UndecodableAudio, errors.ChannelsTooMany,
                errors.SampleRateTooHigh):
        assert issubclass(cls, errors.AudioError)
