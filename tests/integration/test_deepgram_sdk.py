"""The official `deepgram-sdk` (7.x) works unchanged against the server."""

from __future__ import annotations

import asyncio

import pytest
from deepgram import AsyncDeepgramClient, DeepgramClient, DeepgramClientEnvironment

from tests.integration.conftest import API_KEY, Server
from tests.integration.live_client import wav_pcm


def environment(server: Server) -> DeepgramClientEnvironment:
    return DeepgramClientEnvironment(base=server.http, production=server.ws, agent=server.ws, agent_rest=server.http)


async def test_async_sdk_stream_finalize_close(server: Server) -> None:
    client = AsyncDeepgramClient(api_key=API_KEY, environment=environment(server))
    pcm = wav_pcm("speaker_a.wav")
    received: list[object] = []
    async with client.listen.v1.connect(
        model="nova-3",
        encoding="linear16",
        sample_rate="16000",
        channels="1",
        interim_results="true",
        punctuate="true",
        language="en-US",
    ) as connection:

        async def reader() -> None:
            async for message in connection:
                received.append(message)

        task = asyncio.create_task(reader())
        for i in range(0, len(pcm), 3200):
            await connection.send_media(pcm[i : i + 3200])
        await connection.send_finalize()
        await connection.send_close_stream()
        await asyncio.wait_for(task, 60)

    kinds = [type(m).__name__ for m in received]
    assert kinds[0].endswith("Metadata") and kinds[-1].endswith("Metadata"), kinds
    results = [m for m in received if type(m).__name__.endswith("Results")]
    assert results, kinds
    # The SDK parsed our frames into its own models: the fields users dereference are there.
    finals = [r for r in results if r.is_final]  # type: ignore[attr-defined]
    assert any(r.from_finalize for r in finals)  # type: ignore[attr-defined]
    for r in results:
        alt = r.channel.alternatives[0]  # type: ignore[attr-defined]
        assert isinstance(alt.transcript, str) and 0 <= alt.confidence <= 1
        assert r.metadata.model_info.name and r.metadata.model_uuid  # type: ignore[attr-defined]
    closing = received[-1]
    assert closing.duration == pytest.approx(len(pcm) / 32000, abs=0.01)  # type: ignore[attr-defined]


async def test_async_sdk_configure_is_acknowledged(server: Server) -> None:
    from deepgram.listen.v1.types.listen_v1configure import ListenV1Configure

    client = AsyncDeepgramClient(api_key=API_KEY, environment=environment(server))
    received: list[object] = []
    async with client.listen.v1.connect(model="nova-3", encoding="linear16", sample_rate="16000",
                                        keyterm="Triton") as connection:

        async def reader() -> None:
            async for message in connection:
                received.append(message)

        task = asyncio.create_task(reader())
        await connection.send_configure(ListenV1Configure(keyterms=["Riva", "Nova three"],
                                                          features={"numerals": True}))
        await connection.send_media(wav_pcm("speaker_a.wav"))
        await connection.send_close_stream()
        await asyncio.wait_for(task, 60)

    acks = [m for m in received if type(m).__name__ == "ListenV1ConfigureSuccess"]
    assert len(acks) == 1 and acks[0].keyterms == ["Riva", "Nova three"], received  # type: ignore[attr-defined]


def test_sync_sdk_bad_key_is_rejected(server: Server) -> None:
    client = DeepgramClient(api_key="wrong", environment=environment(server))
    with pytest.raises(Exception) as info:
        with client.listen.v1.connect(model="nova-3", encoding="linear16", sample_rate="16000"):
            pass
    assert "401" in str(info.value)


async def test_async_sdk_redact_list_reaches_the_words(server: Server) -> None:
    # The SDK sends a list as repeated `redact` keys; "seven green apples" has a number to hide.
    client = AsyncDeepgramClient(api_key=API_KEY, environment=environment(server))
    received: list[object] = []
    async with client.listen.v1.connect(model="nova-3", encoding="linear16", sample_rate="16000",
                                        redact=["pci", "aggressive_numbers"]) as connection:

        async def reader() -> None:
            async for message in connection:
                received.append(message)

        task = asyncio.create_task(reader())
        await connection.send_media(wav_pcm("speaker_b.wav"))
        await connection.send_close_stream()
        await asyncio.wait_for(task, 60)

    words = [w.punctuated_word for m in received if type(m).__name__.endswith("Results")  # type: ignore[attr-defined]
             for w in m.channel.alternatives[0].words]  # type: ignore[attr-defined]
    assert "[NUMBER]" in words and "seven" not in words, words


def test_sdk_lists_the_served_models_and_each_one_streams(server: Server) -> None:
    client = DeepgramClient(api_key=API_KEY, environment=environment(server))
    listed = client.manage.v1.models.list()
    served = sorted(route for route in server.health()["models"])  # type: ignore[union-attr]
    assert len(listed.stt) == len(served) and listed.tts == []  # type: ignore[arg-type]
    by_profile = {m.ddx_latency: m for m in listed.stt}  # type: ignore[union-attr, attr-defined]
    assert sum(m.ddx_default for m in by_profile.values()) == 1  # type: ignore[attr-defined]
    one = client.manage.v1.models.get(model_id=by_profile["la1"].uuid_)
    assert one.name == by_profile["la1"].name and one.streaming
    by_name = client.manage.v1.models.get(model_id=one.name)
    assert by_name.ddx_default  # type: ignore[attr-defined]
    # What the listing says is what a stream gets: its canonical name and profile route to it.
    with client.listen.v1.connect(model=one.canonical_name, encoding="linear16", sample_rate="16000",
                                  request_options={"additional_query_parameters": {"ddx_latency": "la1"}}) as conn:
        opening = next(iter(conn))
    assert opening.models == [one.uuid_]  # type: ignore[attr-defined]
    with pytest.raises(Exception) as info:
        client.manage.v1.models.get(model_id="nova-9")
    assert "404" in str(info.value)
    with pytest.raises(Exception) as refused:
        DeepgramClient(api_key="wrong", environment=environment(server)).manage.v1.models.list()
    assert "401" in str(refused.value)
