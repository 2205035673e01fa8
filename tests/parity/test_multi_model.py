"""Several models behind one service: ``ddx-stt serve --model-dir EN,FR`` (the real frontend,
repository generated at start, the real ``tritonserver``) routes each connection by its
``language`` to the model that serves it, and by ``ddx_latency`` / ``no_delay`` to a profile.

The three models are the session's random exports: a CTC model (``--name en``), a hybrid
(``--name fr --language fr``), which the embedded repository serves through its RNNT head, and
an offline CTC model served buffered (``--name off --language de``): the frontend serves it
from its manifest alone, with no buffered-specific code.
"""

from __future__ import annotations

import asyncio
import urllib.error
import urllib.request
from collections.abc import Iterator

import pytest
import tritonclient.grpc as grpcclient

from tests.integration.conftest import Server, start_server, stop_server
from tests.integration.live_client import LINEAR16, Transcript, transcribe, wav_pcm
from tests.parity.conftest import ExportedModel

pytestmark = [pytest.mark.nemo, pytest.mark.asyncio(loop_scope="session")]
KEY = "multi-model-key"


@pytest.fixture(scope="module")
def models(
    exported: dict[str, ExportedModel], exported_buffered: dict[str, ExportedModel]
) -> dict[str, ExportedModel]:
    return {"ctc": exported["ctc"], "hybrid": exported["hybrid"], "offline": exported_buffered["offline"]}


@pytest.fixture(scope="module")
def service(models: dict[str, ExportedModel], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    tmp = tmp_path_factory.mktemp("multi")
    folders = ",".join(str(m.folder) for m in models.values())
    env = {"DDX_STT_REPOSITORY_DIR": str(tmp / "model_repository"), "DDX_STT_API_KEYS": KEY}
    server = start_server(tmp, "multi", ["--model-dir", folders], env, timeout=300)
    yield server
    assert stop_server(server) == 0, server.log_tail()
    assert "Traceback" not in server.log_path.read_text(errors="replace"), server.log_tail(120)


def inference_counts(server: Server) -> dict[str, int]:
    """Requests each ensemble of the server's Triton has answered."""
    client = grpcclient.InferenceServerClient(str(server.health()["triton_url"]))
    try:
        stats = client.get_inference_statistics(as_json=True)["model_stats"]
    finally:
        client.close()
    return {s["name"]: int(s.get("inference_count", 0)) for s in stats if s["name"].startswith("asr_")}


async def session(server: Server, query: str) -> tuple[Transcript, set[str]]:
    """Transcribe fixture speech with ``query``; returns it and the ensembles it used."""
    before = inference_counts(server)
    result = await transcribe(server.ws, wav_pcm("speaker_a.wav"), f"{LINEAR16}&{query}", token=KEY)
    after = inference_counts(server)
    assert result.close_code == 1000, (result.close_code, result.close_reason)
    return result, {name for name, count in after.items() if count > before.get(name, 0)}


def model_names(result: Transcript) -> set[str]:
    return {r["metadata"]["model_info"]["name"] for r in result.of_type("Results")}


@pytest.mark.parametrize(
    "query,model,ensemble",
    [
        ("language=en", "ctc", "asr_en_la3"),
        ("language=en-GB&no_delay=true", "ctc", "asr_en_la1"),
        ("language=fr", "hybrid", "asr_fr_la3"),
        ("language=fr&ddx_latency=la1", "hybrid", "asr_fr_la1"),
        ("model=fr&language=fr&ddx_latency=low", "hybrid", "asr_fr_la1"),
        ("language=de", "offline", "asr_off_la6"),
    ],
)
async def test_language_and_latency_pick_the_ensemble(
    service: Server, models: dict[str, ExportedModel], query: str, model: str, ensemble: str
) -> None:
    result, used = await session(service, query)
    assert used == {ensemble}
    manifest = models[model].manifest
    assert model_names(result) == {manifest["display_name"]}
    assert {f["models"][0] for f in result.of_type("Metadata")} == {manifest["uuid"]}
    words = result.words()
    # Whatever the model's latency, words keep their place in the audio (times are rounded to ms).
    duration = round(len(wav_pcm("speaker_a.wav")) / 2 / 16000, 3)
    assert not [w for w in words if not 0 <= w["start"] <= w["end"] <= duration], duration
    assert [w["start"] for w in words] == sorted(w["start"] for w in words)
    for word in words:
        assert 0 <= word["confidence"] <= 1


async def test_the_two_models_are_told_apart(service: Server) -> None:
    en, _ = await session(service, "language=en")
    fr, _ = await session(service, "language=fr")
    assert model_names(en).isdisjoint(model_names(fr))


async def test_a_language_no_model_serves_is_refused(service: Server) -> None:
    req = urllib.request.Request(
        f"{service.http}/v1/listen?language=ja&{LINEAR16}",
        data=wav_pcm("speaker_a.wav"),
        headers={"Authorization": f"Token {KEY}", "Content-Type": "audio/raw"},
    )
    with pytest.raises(urllib.error.HTTPError) as err:
        await asyncio.to_thread(urllib.request.urlopen, req, timeout=30)
    assert err.value.code == 400
