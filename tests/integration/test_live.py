"""The Deepgram live protocol end to end: real server, real Triton, real WebSocket clients."""

from __future__ import annotations

import asyncio
import io
import json
import math
import struct
import urllib.error
import urllib.request

import pytest

from tests.integration.conftest import API_KEY, IDLE_TIMEOUT_S, Server
from tests.integration.live_client import FIXTURES, LINEAR16, connect, transcribe, wav_pcm

SPEECH_A = "speaker_a.wav"
SPEECH_B = "speaker_b.wav"


def http_error(url: str, headers: dict[str, str]) -> tuple[int, dict[str, str], dict[str, object]]:
    """Status, headers and JSON body of a refused WebSocket handshake."""
    request = urllib.request.Request(
        url,
        headers={
            "Connection": "Upgrade",
            "Upgrade": "websocket",
            "Sec-WebSocket-Version": "13",
            "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
            **headers,
        },
    )
    try:
        urllib.request.urlopen(request, timeout=10)
    except urllib.error.HTTPError as error:
        return error.code, {k.lower(): v for k, v in error.headers.items()}, json.loads(error.read())
    raise AssertionError("handshake was not refused")


# --- handshake ---------------------------------------------------------------------------------


def test_healthz_names_triton_and_models(server: Server) -> None:
    health = server.health()
    assert health["status"] == "ok"
    assert ":" in str(health["triton_url"])
    assert any(str(name).startswith("asr_") for name in health["models"])  # type: ignore[union-attr]


def test_no_credential_is_403_before_accept(server: Server) -> None:
    status, headers, body = http_error(f"{server.http}/v1/listen/dg?{LINEAR16}", {})
    assert status == 403
    assert headers["dg-request-id"] == body["request_id"]
    assert body["err_code"] and body["err_msg"]


def test_wrong_key_is_401(server: Server) -> None:
    status, _, body = http_error(f"{server.http}/v1/listen?{LINEAR16}", {"Authorization": "Token nope"})
    assert status == 401
    assert body["err_code"] == "INVALID_AUTH"


@pytest.mark.parametrize(
    ("query", "code"),
    [("language=tlh", "UNSUPPORTED_LANGUAGE"), ("model=whisper-large", "UNSUPPORTED_MODEL"), ("sample_rate=fast", "Bad Request")],
)
def test_unserved_model_language_or_bad_value_is_400(server: Server, query: str, code: str) -> None:
    url = f"{server.http}/v1/listen/dg?encoding=linear16&{query}"
    status, headers, body = http_error(url, {"Authorization": f"Token {API_KEY}"})
    assert status == 400
    assert body["err_code"] == code
    assert headers["dg-request-id"] == body["request_id"]


@pytest.mark.parametrize("scheme", ["Token", "token", "Bearer", "bearer"])
async def test_authorization_schemes(server: Server, scheme: str) -> None:
    pcm = wav_pcm(SPEECH_A)[: 16000 * 2]
    result = await transcribe(server.ws, pcm, token=None, headers={"Authorization": f"{scheme} {API_KEY}"})  # type: ignore[arg-type]
    assert result.close_code == 1000


async def test_subprotocol_auth_selects_token(server: Server) -> None:
    session = await connect(server.ws, subprotocols=["token", API_KEY, "x-deepgram-session-id", "abc"])
    assert session.transcript.subprotocol == "token"
    assert session.transcript.response_headers.get("dg-request-id")
    await session.send_json({"type": "CloseStream"})
    result = await session.finish()
    assert result.close_code == 1000


async def test_unknown_params_and_aliases_are_accepted(open_server: Server) -> None:
    query = f"{LINEAR16}&model=nova-3&language=en-US&filler_words=TRUE&no_delay=true&keyterm=a&keyterm=b&foo=bar"
    result = await transcribe(open_server.ws, wav_pcm(SPEECH_A)[:32000], query, token="dummy", path="/v1/listen")
    assert result.close_code == 1000


# --- frames ------------------------------------------------------------------------------------


async def test_frame_order_and_schema(server: Server) -> None:
    query = f"{LINEAR16}&interim_results=true&punctuate=true&model=nova-2"
    result = await transcribe(server.ws, wav_pcm(SPEECH_A), query, token=API_KEY)
    kinds = [f["type"] for f in result.frames]
    assert kinds[0] == "Metadata" and kinds[-1] == "Metadata", kinds
    assert result.close_code == 1000
    results = result.of_type("Results")
    assert results and results[-1]["is_final"]
    request_ids = {f["request_id"] for f in result.of_type("Metadata")} | {r["metadata"]["request_id"] for r in results}
    assert len(request_ids) == 1
    closing = result.frames[-1]
    assert closing["duration"] == pytest.approx(len(wav_pcm(SPEECH_A)) / 32000, abs=0.01)
    assert closing["channels"] == 1
    # Finals tile the audio: each starts where the previous one ended, times never go backwards.
    finals = result.finals
    for prev, nxt in zip(finals, finals[1:]):
        assert nxt["start"] == pytest.approx(prev["start"] + prev["duration"], abs=1e-3)
    for word in result.words():
        assert 0 <= word["start"] <= word["end"] <= closing["duration"] + 0.1
        assert 0 <= word["confidence"] <= 1


async def test_interim_results_only_when_asked(server: Server) -> None:
    pcm = wav_pcm(SPEECH_A)
    without = await transcribe(server.ws, pcm, token=API_KEY)
    assert all(r["is_final"] for r in without.of_type("Results"))


async def test_legacy_empty_binary_frame_closes_like_closestream(server: Server) -> None:
    session = await connect(server.ws, token=API_KEY)
    await session.send_audio(wav_pcm(SPEECH_A)[:64000])
    await session.ws.send(b"")
    result = await session.finish()
    assert result.close_code == 1000
    assert result.frames[-1]["type"] == "Metadata"


# --- controls ----------------------------------------------------------------------------------


async def test_finalize_gives_from_finalize_final_and_stays_open(server: Server) -> None:
    session = await connect(server.ws, token=API_KEY)
    await session.send_audio(wav_pcm(SPEECH_A)[:40000])
    await session.send_json({"type": "Finalize"})
    final = await session.wait_for(lambda f: f.get("type") == "Results" and f.get("from_finalize"))
    assert final["is_final"] is True
    # Still open: more audio and a second Finalize work.
    await session.send_audio(wav_pcm(SPEECH_B)[:40000])
    await session.send_json({"type": "Finalize"})
    await session.wait_for(
        lambda f: f.get("type") == "Results" and f.get("from_finalize") and f["start"] > final["start"]
    )
    await session.send_json({"type": "CloseStream"})
    assert (await session.finish()).close_code == 1000


async def test_idle_connection_closes_net0001_after_metadata(server: Server) -> None:
    session = await connect(server.ws, token=API_KEY)
    await session.send_audio(wav_pcm(SPEECH_A)[:16000])
    result = await session.finish(timeout=IDLE_TIMEOUT_S + 20)
    assert (result.close_code, result.close_reason) == (1011, "NET-0001")
    assert result.frames[-1]["type"] == "Metadata"


async def test_keepalive_resets_idle_timer(server: Server) -> None:
    session = await connect(server.ws, token=API_KEY)
    for _ in range(int(IDLE_TIMEOUT_S * 2 / 0.5)):
        await session.send_json({"type": "KeepAlive"})
        await asyncio.sleep(0.5)
    assert session.transcript.close_code is None
    assert not [f for f in session.transcript.frames if f["type"] != "Metadata"], "KeepAlive must get no reply"
    await session.send_json({"type": "CloseStream"})
    assert (await session.finish()).close_code == 1000


@pytest.mark.parametrize("text", ['{"type": "Explode"}', "not json", '{"no_type": 1}', "[1, 2]"])
async def test_bad_control_closes_1008_data0000_after_finals(server: Server, text: str) -> None:
    session = await connect(server.ws, token=API_KEY)
    await session.send_audio(wav_pcm(SPEECH_A)[:48000])
    await session.ws.send(text)
    result = await session.finish()
    assert (result.close_code, result.close_reason) == (1008, "DATA-0000")
    assert result.finals, "audio accepted before the bad message must still get its final"
    assert result.frames[-1]["type"] == "Metadata"


async def test_ping_is_answered(server: Server) -> None:
    session = await connect(server.ws, token=API_KEY)
    pong = await session.ws.ping()
    await asyncio.wait_for(pong, 5)
    await session.send_json({"type": "CloseStream"})
    await session.finish()


# --- keyterms and replace ----------------------------------------------------------------------


def spoken_words(transcript_text: str) -> list[str]:
    return [w.strip(".,?!").lower() for w in transcript_text.split()]


async def test_replace_rewrites_what_the_model_heard(server: Server) -> None:
    pcm = wav_pcm(SPEECH_A)
    heard = spoken_words((await transcribe(server.ws, pcm, token=API_KEY)).final_text)
    assert heard
    target = max(heard, key=len)
    replaced = (await transcribe(server.ws, pcm, f"{LINEAR16}&replace={target}:Dudoxx", token=API_KEY)).final_text
    assert "Dudoxx" in replaced.split() and target not in spoken_words(replaced)


async def test_redact_hides_the_numbers_the_model_heard(server: Server) -> None:
    pcm = wav_pcm(SPEECH_B)  # "seven green apples ..."
    heard = spoken_words((await transcribe(server.ws, pcm, token=API_KEY)).final_text)
    assert "seven" in heard
    redacted = (await transcribe(server.ws, pcm, f"{LINEAR16}&redact=aggressive_numbers",
                                 token=API_KEY)).final_text
    assert "[NUMBER]" in redacted.split() and "seven" not in spoken_words(redacted)


async def test_keyterms_hold_for_the_whole_stream_flushes_included(server: Server) -> None:
    # pause.wav is two utterances: the endpoint between them flushes the decoder, and what the
    # stream's START configured must hold for the second utterance too.
    pcm = wav_pcm("pause.wav")
    plain = await transcribe(server.ws, pcm, token=API_KEY)
    utterances = [f["channel"]["alternatives"][0]["transcript"] for f in plain.finals]
    second = spoken_words(utterances[-1] or utterances[-2])
    assert len([u for u in utterances if u]) >= 2 and second
    target = max(second, key=len)
    suppressed = await transcribe(server.ws, pcm, f"{LINEAR16}&keywords={target}:-5", token=API_KEY)
    assert target not in spoken_words(suppressed.final_text)
    assert suppressed.close_code == 1000


async def test_keyterms_recover_words_the_model_missed(server: Server) -> None:
    pcm = wav_pcm(SPEECH_B)
    reference = json.loads((FIXTURES / "manifest.json").read_text())[SPEECH_B]["text"].split()
    plain = spoken_words((await transcribe(server.ws, pcm, token=API_KEY)).final_text)
    missed = [w for w in reference if len(w) >= 4 and w not in plain]
    if not missed:
        pytest.skip("the model already gets every word of the fixture")
    query = LINEAR16 + "".join(f"&keyterm={w}" for w in missed)
    boosted = spoken_words((await transcribe(server.ws, pcm, query, token=API_KEY)).final_text)
    assert sum(w in boosted for w in missed) > 0


# --- audio errors ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("query", "payload", "code", "reason"),
    [
        ("encoding=speex&sample_rate=16000", b"\x00" * 640, 1003, "unsupported-data"),
        ("encoding=linear16&sample_rate=16000&channels=64", b"\x00" * 1280, 1008, "channels-too-many"),
        ("encoding=linear16&sample_rate=384000", b"\x00" * 640, 1008, "sample-rate-too-high"),
        ("", b"this is not audio at all" * 400, 1008, "DATA-0000"),
    ],
)
async def test_audio_errors_close_with_documented_code(
    server: Server, query: str, payload: bytes, code: int, reason: str
) -> None:
    session = await connect(server.ws, query, token=API_KEY)
    await session.ws.send(payload)
    await session.send_json({"type": "CloseStream"})
    result = await session.finish()
    assert (result.close_code, result.close_reason) == (code, reason)


async def test_server_keeps_serving_after_errors(server: Server) -> None:
    bad = await connect(server.ws, "encoding=speex", token=API_KEY)
    good = await connect(server.ws, token=API_KEY)
    await bad.ws.send(b"\x01" * 100)
    await good.send_audio(wav_pcm(SPEECH_A))
    await good.send_json({"type": "CloseStream"})
    assert (await good.finish()).close_code == 1000
    await bad.finish()


# --- concurrency -------------------------------------------------------------------------------


async def test_concurrent_sessions_do_not_see_each_others_words(server: Server) -> None:
    a_pcm, b_pcm = wav_pcm(SPEECH_A), wav_pcm(SPEECH_B)
    alone_a = await transcribe(server.ws, a_pcm, token=API_KEY)
    alone_b = await transcribe(server.ws, b_pcm, token=API_KEY)
    assert alone_a.final_text != alone_b.final_text

    async def paced(pcm: bytes):  # type: ignore[no-untyped-def]
        session = await connect(server.ws, token=API_KEY)
        await session.send_audio(pcm, chunk=3200, pace_s=0.01)
        await session.send_json({"type": "CloseStream"})
        return await session.finish()

    together_a, together_b = await asyncio.gather(paced(a_pcm), paced(b_pcm))
    assert together_a.final_text == alone_a.final_text
    assert together_b.final_text == alone_b.final_text


async def test_amr_nb_frames_read_as_the_pcm_they_decode_to(server: Server) -> None:
    import av

    from tests.audio.test_normalize import amr_nb

    stored = amr_nb(SPEECH_B)
    to_s16 = av.AudioResampler(format="s16", layout="mono", rate=8000)
    with av.open(io.BytesIO(stored)) as container:
        pcm = b"".join(out.to_ndarray().tobytes() for frame in container.decode(audio=0)
                       for out in to_s16.resample(frame))
    as_pcm = await transcribe(server.ws, pcm, "encoding=linear16&sample_rate=8000", token=API_KEY)
    frames = stored[len(b"#!AMR\n"):]  # Deepgram's amr-nb: bare codec frames
    as_amr = await transcribe(server.ws, frames, "encoding=amr-nb&sample_rate=8000", token=API_KEY, chunk=320)
    assert as_amr.close_code == 1000 and as_amr.final_text
    assert as_amr.final_text == as_pcm.final_text


async def test_a_file_in_one_message_reads_as_it_does_streamed(server: Server) -> None:
    # The server cuts big messages into pieces sized by what decoding them costs; the cut must
    # not change what is heard, and the other connections' loop lag is being measured meanwhile.
    audio = (FIXTURES / "stereo_a_left_b_right.ogg").read_bytes()
    query = "model=nova-3&multichannel=true"
    heard = []
    for chunk in (len(audio), 700):
        result = await transcribe(server.ws, audio, query, token=API_KEY, chunk=chunk)
        heard.append({channel: " ".join(f["channel"]["alternatives"][0]["transcript"]
                                        for f in result.finals if f["channel_index"][0] == channel)
                      for channel in (0, 1)})
    assert all(heard[0].values()) and heard[0] == heard[1]
    with urllib.request.urlopen(server.http + "/metrics", timeout=5) as response:
        probes = [line for line in response.read().decode().splitlines()
                  if line.startswith("ddx_stt_event_loop_lag_seconds_count ")]
    assert probes and float(probes[0].split()[1]) > 0


async def test_disconnect_mid_stream_does_not_leak_sequences(server: Server) -> None:
    for _ in range(3):
        session = await connect(server.ws, token=API_KEY)
        await session.send_audio(wav_pcm(SPEECH_A)[:50000])
        await session.ws.close()
    await asyncio.sleep(1.0)
    with urllib.request.urlopen(server.http + "/metrics", timeout=5) as response:
        text = response.read().decode()
    open_line = [line for line in text.splitlines() if line.startswith("ddx_stt_triton_sequences_open ")]
    assert open_line and float(open_line[0].split()[1]) == 0.0


async def test_multichannel_results_carry_channel_index(server: Server) -> None:
    a = wav_pcm(SPEECH_A)
    b = wav_pcm(SPEECH_B)
    n = min(len(a), len(b)) // 2
    left = struct.unpack(f"<{n}h", a[: 2 * n])
    right = struct.unpack(f"<{n}h", b[: 2 * n])
    stereo = struct.pack(f"<{2 * n}h", *(s for pair in zip(left, right) for s in pair))
    query = "encoding=linear16&sample_rate=16000&channels=2&multichannel=true"
    result = await transcribe(server.ws, stereo, query, token=API_KEY)
    indices = {tuple(r["channel_index"]) for r in result.of_type("Results")}
    assert indices == {(0, 2), (1, 2)}
    assert result.frames[-1]["channels"] == 2
    assert not math.isnan(result.frames[-1]["duration"])



async def test_oversized_message_closes_1009_and_server_keeps_serving(server: Server) -> None:
    session = await connect(server.ws, token=API_KEY)
    await session.ws.send(b"\x00" * (5 * 1024 * 1024))
    result = await session.finish()
    assert result.close_code == 1009
    assert (await transcribe(server.ws, wav_pcm(SPEECH_A)[:32000], token=API_KEY)).close_code == 1000


async def test_configure_replaces_keyterms_mid_stream(server: Server) -> None:
    reference = json.loads((FIXTURES / "manifest.json").read_text())[SPEECH_B]["text"].split()

    async def a_then_b(keyterms: list[str] | None) -> list[str]:
        """speaker_a, Finalize, (Configure), speaker_b: the words of speaker_b's part."""
        session = await connect(server.ws, token=API_KEY)
        await session.send_audio(wav_pcm(SPEECH_A))
        await session.send_json({"type": "Finalize"})
        await session.wait_for(lambda f: f.get("from_finalize"))
        if keyterms is not None:
            await session.send_json({"type": "Configure", "keyterms": keyterms})
            reply = await session.wait_for(lambda f: f.get("type", "").startswith("Configure"))
            assert reply == {"type": "ConfigureSuccess", "request_id": reply["request_id"], "keyterms": keyterms}
        await session.send_audio(wav_pcm(SPEECH_B))
        await session.send_json({"type": "CloseStream"})
        result = await session.finish()
        assert result.close_code == 1000
        return spoken_words(" ".join(f["channel"]["alternatives"][0]["transcript"] for f in result.finals
                                     if not f.get("from_finalize")))

    plain = await a_then_b(None)
    missed = [w for w in reference if len(w) >= 4 and w not in plain]
    if not missed:
        pytest.skip("the model already gets every word of the fixture")
    boosted = await a_then_b(missed)
    assert sum(w in boosted for w in missed) > 0
