"""Model, language and latency-profile routing."""

from __future__ import annotations

from typing import Any

import pytest

from frontend.protocol.errors import InvalidQuery, UnsupportedLanguage, UnsupportedModel
from frontend.protocol.models import ModelTable
from frontend.protocol.params import ListenParams


def manifest(model: str, profile: str, lookahead_ms: int, *, default: bool = False,
             languages: tuple[str, ...] = ("en",), **extra: Any) -> dict[str, Any]:
    return {"model": model, "profile": profile, "lookahead_ms": lookahead_ms,
            "languages": list(languages), "chunk_samples": 1280 * (1 + lookahead_ms // 80),
            "first_chunk_samples": 1280 * (1 + lookahead_ms // 80) + 40, "frame_shift_s": 0.08,
            "vocabulary": ["<unk>", "▁a"], "blank_id": 2, "word_boundary": "▁",
            "default": default, "uuid": f"uuid-{model}-{profile}", "display_name": model,
            "version": "1", "arch": "fastconformer", **extra}


TABLE = ModelTable([
    manifest("embedded", "la13", 1040, default=True),
    manifest("embedded", "la1", 80),
    manifest("embedded", "la6", 480),
    manifest("german", "la6", 480, default=True, languages=("de",)),
])


def resolve(**params: Any) -> Any:
    return TABLE.resolve(ListenParams(**params))


@pytest.mark.parametrize("name", [None, "nova-3", "nova-3-general", "nova-2", "nova-2-meeting",
                                  "nova-2-phonecall", "nova", "general", "base", "enhanced",
                                  "phonecall", "meeting", "conversationalai", "Nova-3"])
def test_deepgram_aliases_route_to_the_default_model(name: str | None) -> None:
    route = resolve(model=name)
    assert (route.model, route.profile, route.ensemble) == ("embedded", "la13",
                                                            "asr_embedded_la13")


def test_an_exact_model_id_routes_to_itself() -> None:
    assert resolve(model="german", language="de").model == "german"


@pytest.mark.parametrize("name", ["whisper", "nova-3-medical", "embedded-la13", "asr_embedded"])
def test_other_models_are_a_400(name: str) -> None:
    with pytest.raises(UnsupportedModel) as caught:
        resolve(model=name)
    assert caught.value.reply.status == 400
    assert caught.value.reply.err_code == "UNSUPPORTED_MODEL"


@pytest.mark.parametrize("language", ["en", "en-US", "EN-gb", "en_AU"])
def test_language_matches_on_the_primary_subtag(language: str) -> None:
    assert resolve(language=language).language == "en"


def test_an_alias_with_a_language_the_default_model_lacks_finds_a_model_that_has_it() -> None:
    route = resolve(model="nova-2", language="de-DE")
    assert (route.model, route.language) == ("german", "de")


@pytest.mark.parametrize(("model", "language"), [("embedded", "de"), (None, "multi"),
                                                 (None, "fr"), ("nova-3", "english")])
def test_a_language_not_served_is_a_400(model: str | None, language: str) -> None:
    with pytest.raises(UnsupportedLanguage) as caught:
        resolve(model=model, language=language)
    assert caught.value.reply.err_code == "UNSUPPORTED_LANGUAGE"


def test_multi_is_served_when_a_manifest_lists_it() -> None:
    table = ModelTable([manifest("poly", "la6", 480, languages=("multi", "en"))])
    assert table.resolve(ListenParams(language="multi")).language == "multi"


@pytest.mark.parametrize(("params", "profile"), [
    ({}, "la13"),
    ({"no_delay": True}, "la1"),
    ({"ddx_latency": "low"}, "la1"),
    ({"ddx_latency": "balanced"}, "la6"),
    ({"ddx_latency": "accurate"}, "la13"),
    ({"ddx_latency": "la6"}, "la6"),
    ({"ddx_latency": "accurate", "no_delay": True}, "la13"),
])
def test_latency_profile_selection(params: dict[str, Any], profile: str) -> None:
    assert resolve(**params).profile == profile


def test_an_unserved_profile_is_an_invalid_query() -> None:
    with pytest.raises(InvalidQuery) as caught:
        resolve(ddx_latency="la2")
    assert "la1, la6, la13" in caught.value.detail


def test_without_a_default_mark_the_largest_look_ahead_is_used() -> None:
    table = ModelTable([manifest("m", "la1", 80), manifest("m", "la6", 480)])
    assert table.resolve(ListenParams()).profile == "la6"


def test_the_table_lists_every_served_ensemble() -> None:
    assert sorted(TABLE.ensembles) == ["asr_embedded_la1", "asr_embedded_la13",
                                       "asr_embedded_la6", "asr_german_la6"]


def test_the_route_carries_what_the_session_needs() -> None:
    route = resolve()
    assert (route.chunk_samples, route.first_chunk_samples) == (17920, 17960)
    assert route.frame_shift_s == 0.08 and route.vocabulary == ("<unk>", "▁a")
    assert (route.uuid, route.display_name, route.version, route.arch) == (
        "uuid-embedded-la13", "embedded", "1", "fastconformer")


def test_identity_defaults_are_stable_when_the_manifest_has_none() -> None:
    bare = manifest("m", "la1", 80)
    for key in ("uuid", "display_name", "version", "arch"):
        del bare[key]
    first = ModelTable([bare]).resolve(ListenParams())
    second = ModelTable([dict(bare)]).resolve(ListenParams())
    assert first.uuid == second.uuid and len(first.uuid) == 36
    assert first.display_name == "m-la1"


@pytest.mark.parametrize(("broken", "message"), [
    ({"chunk_samples": None}, "chunk_samples"),
    ({"chunk_samples": True}, "chunk_samples"),
    ({"vocabulary": "abc"}, "vocabulary"),
    ({"languages": []}, "no language"),
    ({"sample_rate": 8000}, "16 kHz"),
    ({"first_chunk_samples": 10}, "first_chunk_samples"),
])
def test_a_broken_manifest_stops_the_server_at_start(broken: dict[str, Any],
                                                     message: str) -> None:
    with pytest.raises(ValueError, match=message):
        ModelTable([{**manifest("m", "la1", 80), **broken}])


def test_inconsistent_tables_are_refused() -> None:
    with pytest.raises(ValueError, match="served twice"):
        ModelTable([manifest("m", "la1", 80), manifest("m", "la1", 80)])
    with pytest.raises(ValueError, match="more than one default"):
        ModelTable([manifest("m", "la1", 80, default=True),
                    manifest("m", "la6", 480, default=True)])
    with pytest.raises(ValueError, match="no model"):
        ModelTable([])
    with pytest.raises(ValueError, match="not served"):
        ModelTable([manifest("m", "la1", 80)], default_model="x")
