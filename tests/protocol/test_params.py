"""Query string -> ListenParams."""

from __future__ import annotations

import pytest
from multidict import MultiDict, MultiDictProxy

from frontend.protocol.errors import InvalidQuery
from frontend.protocol.params import ListenParams, parse_listen_params


def test_an_empty_query_gives_deepgram_defaults() -> None:
    params = parse_listen_params({})
    assert params == ListenParams()
    assert (params.language, params.channels, params.endpointing) == ("en", 1, 10)
    assert params.encoding is None and params.model is None and params.utterance_end_ms is None
    assert not (params.interim_results or params.punctuate or params.multichannel)


def test_what_the_python_sdk_sends_is_understood() -> None:
    # The URL deepgram-sdk 7.17 builds (spec section 3.1), as aiohttp hands it over.
    query = MultiDictProxy(MultiDict([
        ("channels", "1"), ("encoding", "linear16"), ("endpointing", "300"),
        ("extra", "k:v"), ("interim_results", "true"), ("keyterm", "Deepgram"),
        ("keyterm", "Nova three"), ("language", "en-US"), ("model", "nova-3"),
        ("punctuate", "true"), ("sample_rate", "16000"), ("smart_format", "true"),
        ("tag", "a"), ("tag", "b"), ("utterance_end_ms", "1000"), ("vad_events", "true"),
        ("filler_words", "true"), ("no_delay", "true"),
    ]))
    params = parse_listen_params(query)
    assert params.model == "nova-3" and params.language == "en-US"
    assert (params.encoding, params.sample_rate, params.channels) == ("linear16", 16000, 1)
    assert params.endpointing == 300 and params.utterance_end_ms == 1000
    assert params.interim_results and params.punctuate and params.smart_format
    assert params.vad_events and params.filler_words and params.no_delay
    assert params.keyterm == ("Deepgram", "Nova three")
    assert params.tag == ("a", "b")
    assert dict(params.extra) == {"k": "v"}


@pytest.mark.parametrize(("raw", "value"), [
    ("true", True), ("True", True), ("TRUE", True), ("1", True), ("yes", True),
    ("false", False), ("False", False), ("0", False), ("no", False), ("", False),
])
def test_booleans_are_case_insensitive(raw: str, value: bool) -> None:
    assert parse_listen_params({"punctuate": raw}).punctuate is value


def test_repeated_keys_are_all_kept() -> None:
    query = MultiDict([("keywords", "a:2"), ("keywords", "b"), ("search", "x"), ("search", "y"),
                       ("replace", "a:b"), ("redact", "pci"), ("redact", "SSN,numbers"),
                       ("language_hint", "en"), ("language_hint", "de"),
                       ("extra", "a:1"), ("extra", "b:2:3")])
    params = parse_listen_params(query)
    assert params.keywords == (("a", 2.0), ("b", 1.0))
    assert params.search == ("x", "y")
    assert params.redact == ("pci", "ssn", "numbers")
    assert params.language_hint == ("en", "de")
    assert dict(params.extra) == {"a": "1", "b": "2:3"}


def test_keyterms_and_keywords_become_weighted_terms_for_the_decoder() -> None:
    query = MultiDict([("keyterm", "Dudoxx  Omni"), ("keywords", "triton:3.5"), ("keywords", "um:-2"),
                       ("keyterm", "riva")])
    params = parse_listen_params(query)
    assert params.boosted_terms == (("Dudoxx Omni", 1.0), ("riva", 1.0), ("triton", 3.5), ("um", -2.0))


@pytest.mark.parametrize("query", [
    [("keywords", "triton:loud")],
    [("keywords", "triton:nan")],
    [("keyterm", "x" * 101)],
    [("keyterm", f"t{i}") for i in range(60)] + [("keywords", f"k{i}") for i in range(41)],
])
def test_malformed_or_too_many_terms_are_refused(query: list[tuple[str, str]]) -> None:
    with pytest.raises(InvalidQuery):
        parse_listen_params(MultiDict(query))


def test_unknown_parameters_are_ignored() -> None:
    params = parse_listen_params({"words": "true", "mip_opt_out": "maybe", "summarize": "v2"})
    assert params == ListenParams()


@pytest.mark.parametrize(("raw", "value"), [
    ("false", None), ("FALSE", None), ("0", None), ("true", 10), ("300", 300), ("1", 1),
])
def test_endpointing_takes_milliseconds_or_false(raw: str, value: int | None) -> None:
    assert parse_listen_params({"endpointing": raw}).endpointing == value


@pytest.mark.parametrize(("raw", "value"), [
    ("la6", "la6"), ("LA13", "la13"), ("low", "low"), ("Balanced", "balanced"),
    ("accurate", "accurate"),
])
def test_latency_selector(raw: str, value: str) -> None:
    assert parse_listen_params({"ddx_latency": raw}).ddx_latency == value


def test_pre_recorded_options() -> None:
    assert parse_listen_params({}).utt_split == 0.8
    params = parse_listen_params({"utterances": "true", "utt_split": "1.25", "paragraphs": "true"})
    assert (params.utterances, params.utt_split, params.paragraphs) == (True, 1.25, True)


def test_formatting_shortcuts() -> None:
    smart = parse_listen_params({"smart_format": "true"})
    assert smart.punctuates and smart.formats_numbers
    assert parse_listen_params({"numerals": "true"}).formats_numbers
    assert not parse_listen_params({"numerals": "true"}).punctuates


@pytest.mark.parametrize(("name", "raw"), [
    ("sample_rate", "abc"), ("sample_rate", "0"), ("sample_rate", "16k"),
    ("channels", "0"), ("channels", "-1"), ("channels", "two"),
    ("endpointing", "-5"), ("endpointing", "soon"),
    ("utterance_end_ms", "xyz"), ("utterance_end_ms", "-1"),
    ("punctuate", "maybe"), ("interim_results", "2"),
    ("ddx_latency", "fast"), ("ddx_latency", "la"),
    ("extra", "novalue"), ("extra", ":v"),
    ("callback_method", "get"),
    ("utt_split", "0"), ("utt_split", "-1"), ("utt_split", "inf"), ("utt_split", "nan"), ("utt_split", "soon"),
])
def test_malformed_known_values_are_a_400_invalid_query_string(name: str, raw: str) -> None:
    with pytest.raises(InvalidQuery) as caught:
        parse_listen_params({name: raw})
    error = caught.value
    assert error.reply.status == 400
    assert error.body("rid") == {"err_code": "Bad Request", "err_msg": "Invalid query string.",
                                 "request_id": "rid", "details": error.detail}
    assert name in error.detail


def test_the_first_of_repeated_single_valued_keys_wins() -> None:
    params = parse_listen_params(MultiDict([("model", "nova-2"), ("model", "nova-3")]))
    assert params.model == "nova-2"


def test_empty_values_mean_defaults() -> None:
    params = parse_listen_params({"model": "", "language": "", "encoding": "", "channels": ""})
    assert (params.model, params.language, params.encoding, params.channels) == (None, "en",
                                                                                  None, 1)


def test_encoding_is_lower_cased() -> None:
    assert parse_listen_params({"encoding": "LINEAR16"}).encoding == "linear16"
