"""Handshake authentication."""

from __future__ import annotations

import hmac
from pathlib import Path

import pytest
from multidict import CIMultiDict, CIMultiDictProxy

from frontend.protocol.auth import KeyStore, authenticate
from frontend.protocol.errors import AuthMissing, InvalidAuth

KEYS = KeyStore(["secret-1", "secret-2"])


@pytest.mark.parametrize("value", ["Token secret-1", "token secret-1", "TOKEN  secret-1",
                                   "Bearer secret-2", "bearer secret-2"])
def test_authorization_header_schemes_are_case_insensitive(value: str) -> None:
    credential = authenticate({"Authorization": value}, KEYS)
    assert credential.key in ("secret-1", "secret-2")
    assert credential.scheme == value.split()[0].lower()
    assert credential.subprotocol is None


def test_browser_subprotocol_form_selects_the_offered_token_entry() -> None:
    headers = {"Sec-WebSocket-Protocol": "token, secret-1, x-deepgram-session-id, 3f2a"}
    credential = authenticate(headers, KEYS)
    assert (credential.key, credential.scheme, credential.subprotocol) == ("secret-1", "token",
                                                                           "token")


def test_bearer_subprotocol_keeps_the_spelling_the_browser_offered() -> None:
    credential = authenticate({"sec-websocket-protocol": "Bearer,secret-2"}, KEYS)
    assert credential.subprotocol == "Bearer"


def test_headers_are_case_insensitive_in_aiohttp_and_in_plain_dicts() -> None:
    proxy = CIMultiDictProxy(CIMultiDict([("authorization", "Token secret-1")]))
    assert authenticate(proxy, KEYS).key == "secret-1"
    assert authenticate({"AUTHORIZATION": "Token secret-1"}, KEYS).key == "secret-1"


def test_header_wins_but_the_offered_subprotocol_is_still_selected() -> None:
    headers = {"Authorization": "Token secret-1", "Sec-WebSocket-Protocol": "token, other"}
    credential = authenticate(headers, KEYS)
    assert (credential.key, credential.subprotocol) == ("secret-1", "token")


@pytest.mark.parametrize("headers", [
    {},
    {"Sec-WebSocket-Protocol": "x-deepgram-session-id, 3f2a"},
    {"Sec-WebSocket-Protocol": "token"},
    {"Authorization": "Token "},
    {"Authorization": ""},
])
def test_no_credential_is_403(headers: dict[str, str]) -> None:
    with pytest.raises(AuthMissing) as caught:
        authenticate(headers, KEYS)
    assert caught.value.reply.status == 403


@pytest.mark.parametrize("headers", [
    {"Authorization": "Token wrong"},
    {"Authorization": "Basic c2VjcmV0LTE="},
    {"Authorization": "secret-1"},
    {"Sec-WebSocket-Protocol": "token, wrong"},
])
def test_a_wrong_credential_is_401_invalid_auth(headers: dict[str, str]) -> None:
    with pytest.raises(InvalidAuth) as caught:
        authenticate(headers, KEYS)
    assert caught.value.reply.status == 401
    body = caught.value.body("r")
    assert (body["err_code"], body["err_msg"], body["request_id"]) == (
        "INVALID_AUTH", "Invalid credentials.", "r")
    assert caught.value.headers("r") == {"dg-request-id": "r", "dg-error": "Invalid credentials."}


def test_open_mode_accepts_any_non_empty_key() -> None:
    store = KeyStore.from_sources(None, None)
    assert store.open_mode
    assert authenticate({"Authorization": "Token anything"}, store).key == "anything"
    with pytest.raises(AuthMissing):
        authenticate({}, store)


def test_keys_come_from_the_comma_list_and_the_key_file(tmp_path: Path) -> None:
    key_file = tmp_path / "keys"
    key_file.write_text("# service keys\nfile-key\n\n  spaced-key  # staging\n")
    store = KeyStore.from_sources(" env-a , env-b,", key_file)
    assert not store.open_mode
    for key in ("env-a", "env-b", "file-key", "spaced-key"):
        assert store.accepts(key)
    for key in ("", "# service keys", "env-", "file-key\n", "e"):
        assert not store.accepts(key)


def test_keys_already_split_by_the_config_are_taken_whole() -> None:
    store = KeyStore.from_sources(("alpha", "beta"))
    assert store.accepts("alpha") and store.accepts("beta")
    assert not store.accepts("a")


def test_an_unreadable_key_file_fails_instead_of_opening_the_server(tmp_path: Path) -> None:
    with pytest.raises(OSError):
        KeyStore.from_sources(None, tmp_path / "missing")


def test_every_key_is_compared_in_constant_time_even_after_a_match(
        monkeypatch: pytest.MonkeyPatch) -> None:
    # Stopping at the first match would tell an attacker, by timing, how early a key sits.
    calls: list[tuple[bytes, bytes]] = []
    real = hmac.compare_digest

    def spy(a: bytes, b: bytes) -> bool:
        calls.append((a, b))
        return real(a, b)

    monkeypatch.setattr("frontend.protocol.auth.hmac.compare_digest", spy)
    store = KeyStore(["k1", "k2", "k3"])
    assert store.accepts("k1")
    assert len(calls) == 3
    assert not store.accepts("nope")
    assert len(calls) == 6
