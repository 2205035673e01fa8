"""`POST /v1/listen`: Deepgram's pre-recorded API over the same session core."""

from __future__ import annotations

import asyncio
import json
import urllib.error
import urllib.request
from pathlib import Path

from aiohttp import web
from deepgram import DeepgramClient

from tests.integration.conftest import API_KEY, Server, free_port, frontend_only, stop_server
from tests.integration.live_client import FIXTURES, LINEAR16, transcribe
from tests.integration.test_deepgram_sdk import environment


def post(server: Server, query: str, body: bytes, headers: dict[str, str]) -> tuple[int, dict[str, object]]:
    request = urllib.request.Request(f"{server.http}/v1/listen?{query}", data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def test_sdk_transcribe_file_matches_live_route(server: Server) -> None:
    wav = (FIXTURES / "speaker_b.wav").read_bytes()
    client = DeepgramClient(api_key=API_KEY, environment=environment(server))
    response = client.listen.v1.media.transcribe_file(request=wav, model="nova-3", punctuate=True)
    alternative = response.results.channels[0].alternatives[0]
    assert response.metadata.duration > 1.0
    assert response.metadata.sha256 and response.metadata.created

    live = asyncio.run(transcribe(server.ws, wav[44:], f"{LINEAR16}&punctuate=true", token=API_KEY))
    assert alternative.transcript == " ".join(
        f["channel"]["alternatives"][0]["transcript"] for f in live.finals if f["channel"]["alternatives"][0]["transcript"]
    )
    assert [w.word for w in alternative.words] == [w["word"] for w in live.words()]


def test_utterances_and_paragraphs_follow_the_pause(server: Server) -> None:
    # pause.wav: two sentences with 1.5 s of silence between them.
    wav = (FIXTURES / "pause.wav").read_bytes()
    auth = {"Authorization": f"Token {API_KEY}", "Content-Type": "audio/wav"}
    status, body = post(server, "model=nova-3&utterances=true&paragraphs=true", wav, auth)
    assert status == 200, body
    utterances = body["results"]["utterances"]
    alternative = body["results"]["channels"][0]["alternatives"][0]
    assert len(utterances) == 2 and utterances[0]["end"] < 4.0 < utterances[1]["start"]
    assert [w for u in utterances for w in u["words"]] == alternative["words"]
    paragraphs = alternative["paragraphs"]["paragraphs"]
    assert len(paragraphs) == 2  # paragraphs turn punctuation on: each sentence ends with "."
    assert alternative["paragraphs"]["transcript"].count("\n\n") == 1
    # Search for the first heard word and the last: each is found where it was said.
    words = alternative["words"]
    _, searched = post(server, f"model=nova-3&search={words[0]['word']}&search={words[-1]['word']}", wav, auth)
    first, last = searched["results"]["channels"][0]["search"]
    assert words[0]["start"] in [hit["start"] for hit in first["hits"]]
    assert words[-1]["end"] in [hit["end"] for hit in last["hits"]]
    _, joined = post(server, "model=nova-3&utterances=true&utt_split=2", wav, auth)
    assert len(joined["results"]["utterances"]) == 1
    status, refused = post(server, "model=nova-3&utterances=true&utt_split=-1", wav, auth)
    assert status == 400


def test_sdk_reads_utterances_and_paragraphs(server: Server) -> None:
    client = DeepgramClient(api_key=API_KEY, environment=environment(server))
    response = client.listen.v1.media.transcribe_file(
        request=(FIXTURES / "pause.wav").read_bytes(), model="nova-3", utterances=True, paragraphs=True)
    utterances = response.results.utterances
    assert utterances and all(u.transcript and u.words and u.channel == 0 for u in utterances)
    paragraphs = response.results.channels[0].alternatives[0].paragraphs
    assert paragraphs.transcript.startswith("\n")
    assert paragraphs.paragraphs[0].sentences[0].text.endswith(".")


def test_container_upload_is_transcribed(server: Server) -> None:
    status, body = post(server, "model=nova-2", (FIXTURES / "speaker_a.ogg").read_bytes(),
                        {"Authorization": f"Token {API_KEY}", "Content-Type": "audio/ogg"})
    assert status == 200, body
    metadata = body["metadata"]
    assert isinstance(metadata, dict) and abs(metadata["duration"] - 2.5) < 2.5
    assert "request_id" not in body, "a top-level request_id makes the SDK drop the transcript"


def test_garbage_upload_is_400(server: Server) -> None:
    status, body = post(server, "", b"definitely not audio" * 500, {"Authorization": f"Token {API_KEY}"})
    assert status == 400
    assert body["err_msg"] == "failed to process audio: corrupt or unsupported data"


def test_url_source_is_refused_clearly(server: Server) -> None:
    status, body = post(server, "", b'{"url": "https://example.com/a.wav"}',
                        {"Authorization": f"Token {API_KEY}", "Content-Type": "application/json"})
    assert (status, body["err_code"]) == (400, "UNSUPPORTED_SOURCE")


def test_no_credential_is_403(server: Server) -> None:
    status, body = post(server, "", b"\x00" * 3200, {})
    assert status == 403 and body["request_id"]


def test_a_callback_to_a_host_not_allowed_is_refused(server: Server) -> None:
    status, body = post(server, "model=nova-3&callback=http://127.0.0.1:9/hook",
                        (FIXTURES / "speaker_b.wav").read_bytes(),
                        {"Authorization": f"Token {API_KEY}", "Content-Type": "audio/wav"})
    assert (status, body["err_code"]) == (400, "CALLBACK_NOT_ALLOWED")
    assert "--callback-hosts" in body["details"]


async def test_callback_answers_at_once_and_sends_the_result_later(server: Server, tmp_path: Path) -> None:
    received: asyncio.Queue[tuple[str, str | None, dict[str, object]]] = asyncio.Queue()

    async def hook(request: web.Request) -> web.Response:
        received.put_nowait((request.method, request.headers.get("dg-request-id"), await request.json()))
        return web.Response(text="thanks")

    receiver = web.Application()
    receiver.router.add_route("*", "/hook", hook)
    runner = web.AppRunner(receiver)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    extra = await asyncio.to_thread(frontend_only, server, tmp_path, DDX_STT_CALLBACK_HOSTS="127.0.0.1")
    try:
        wav = (FIXTURES / "speaker_b.wav").read_bytes()
        client = DeepgramClient(api_key="any", environment=environment(extra))
        accepted = await asyncio.to_thread(
            client.listen.v1.media.transcribe_file, request=wav, model="nova-3",
            callback=f"http://127.0.0.1:{port}/hook", callback_method="put")
        assert accepted.request_id  # the SDK's "accepted" answer: no transcript in it
        method, request_id, result = await asyncio.wait_for(received.get(), 60)
        assert (method, request_id) == ("PUT", accepted.request_id)
        _, direct = await asyncio.to_thread(post, extra, "model=nova-3", wav, {"Content-Type": "audio/wav",
                                                                              "Authorization": "Token any"})
        assert result["results"] == direct["results"]
    finally:
        await asyncio.to_thread(stop_server, extra)
        await runner.cleanup()
