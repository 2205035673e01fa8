"""Every frame builder against schemas/asr-frame.schema.json, and the schemas themselves."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from frontend.protocol.frames import (
    MAX_FRAME_BYTES, ConfigureFailureFrame, ConfigureSuccessFrame, ErrorFrame, Frame, MetadataFrame, ModelInfo,
    ResultsFrame, ResultWord, SpeechStartedFrame, UtteranceEndFrame,
)
from frontend.protocol.schemas import SCHEMA_DIR, validator

EMPTY_SHA256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
MODEL = ModelInfo(uuid="6cc5d67a-4cb5-413c-9336-519017c4f856", name="embedded-la13",
                  version="2025-01-01", arch="fastconformer-ctc")
WORDS = (ResultWord("another", 0.2971, 0.7969, 0.95812, "Another"),
         ResultWord("big", 0.8514, 1.0391, 0.96, "big.", speaker=0))


def results(**overrides: Any) -> ResultsFrame:
    fields: dict[str, Any] = dict(
        request_id="5dabdd14", model=MODEL, channel=0, channels=1, start=0.0, duration=1.04,
        is_final=True, speech_final=True, from_finalize=False, transcript="Another big.",
        confidence=0.959, words=WORDS)
    fields.update(overrides)
    return ResultsFrame(**fields)


BUILDERS: dict[str, Frame] = {
    "metadata-open": MetadataFrame("r", datetime(2024, 8, 29, 22, 37, 55, 202000, UTC),
                                   0.0, 1, EMPTY_SHA256, MODEL),
    "metadata-close": MetadataFrame("r", datetime.now(timezone(timedelta(hours=2))), 25.9, 2,
                                    "a" * 64, MODEL),
    "results-final": results(),
    "results-interim-extra": results(is_final=False, speech_final=False, extra={"k": "v"}),
    "results-empty": results(transcript="", confidence=0.0, words=()),
    "speech-started": SpeechStartedFrame(channel=1, channels=2, timestamp=9.54),
    "utterance-end": UtteranceEndFrame(channel=0, channels=1, last_word_end=2.395),
    "error": ErrorFrame(variant="SchemaError", description="bad", message="{"),
    "error-no-message": ErrorFrame(variant="InternalError", description="boom"),
    "configure-failure": ConfigureFailureFrame("r", "CONFIGURE_KEYTERMS_NOT_SUPPORTED", "no"),
    "configure-success": ConfigureSuccessFrame("r", keyterms=("Riva", "Nova three")),
    "configure-success-features-only": ConfigureSuccessFrame("r"),
}


@pytest.mark.parametrize("name", sorted(BUILDERS))
def test_every_builder_validates_against_the_schema(name: str) -> None:
    payload = json.loads(BUILDERS[name].to_json())
    assert list(validator("asr-frame").iter_errors(payload)) == []
    assert payload == BUILDERS[name].to_dict()
    assert payload["type"] == BUILDERS[name].type


def test_results_has_the_deepgram_shape() -> None:
    data = results(extra={"k": "v"}).to_dict()
    assert set(data) == {"type", "channel_index", "duration", "start", "is_final",
                         "speech_final", "from_finalize", "channel", "metadata"}
    assert data["channel_index"] == [0, 1]
    alternative = data["channel"]["alternatives"][0]
    assert alternative["words"][0] == {"word": "another", "start": 0.297, "end": 0.797,
                                       "confidence": 0.9581, "punctuated_word": "Another"}
    assert alternative["words"][1]["speaker"] == 0
    assert data["metadata"] == {"request_id": "5dabdd14",
                                "model_info": {"name": "embedded-la13", "version": "2025-01-01",
                                               "arch": "fastconformer-ctc"},
                                "model_uuid": MODEL.uuid, "extra": {"k": "v"}}


def test_metadata_has_the_deepgram_shape() -> None:
    data = BUILDERS["metadata-open"].to_dict()
    assert data == {
        "type": "Metadata", "transaction_key": "deprecated", "request_id": "r",
        "sha256": EMPTY_SHA256,
        "created": "2024-08-29T22:37:55.202Z", "duration": 0.0, "channels": 1,
        "models": [MODEL.uuid], "model_info": {MODEL.uuid: MODEL.info()}}


def test_created_is_utc_with_milliseconds_and_z() -> None:
    local = datetime(2025, 1, 1, 2, 0, 0, 999999, tzinfo=timezone(timedelta(hours=2)))
    frame = MetadataFrame("r", local, 0.0, 1, "0" * 64, MODEL)
    assert frame.to_dict()["created"] == "2025-01-01T00:00:00.999Z"
    with pytest.raises(ValueError):
        MetadataFrame("r", datetime(2025, 1, 1), 0.0, 1, "0" * 64, MODEL).to_dict()


def test_consecutive_segments_stay_contiguous_after_rounding() -> None:
    # 0.1 + 0.2 style float noise must not open a 1 ms gap between finals.
    first = results(start=0.0, duration=1.0004999).to_dict()
    second = results(start=1.0004999, duration=0.3336).to_dict()
    assert round(first["start"] + first["duration"], 3) == second["start"]


@pytest.mark.parametrize(("payload", "why"), [
    ({"type": "Results"}, "required fields"),
    ({**results().to_dict(), "channel_index": [0]}, "channel_index pair"),
    ({**results().to_dict(), "is_final": False, "speech_final": True}, "speech_final => final"),
    ({**BUILDERS["metadata-open"].to_dict(), "created": "2024-08-29 22:37:55"}, "created"),
    ({**BUILDERS["metadata-open"].to_dict(), "sha256": "xyz"}, "sha256"),
    ({**BUILDERS["metadata-open"].to_dict(), "transaction_key": "abc"}, "transaction_key"),
    ({"type": "UtteranceEnd", "channel": [0, 1]}, "last_word_end"),
    ({"type": "Transcript"}, "unknown type"),
])
def test_the_schema_rejects_broken_frames(payload: dict[str, Any], why: str) -> None:
    assert list(validator("asr-frame").iter_errors(payload)), why


def test_frames_may_grow_optional_fields() -> None:
    payload = {**results().to_dict(), "entities": []}
    assert list(validator("asr-frame").iter_errors(payload)) == []


def test_an_oversized_results_frame_is_cut_below_1_mib(caplog: pytest.LogCaptureFixture) -> None:
    word = ResultWord("w" * 200, 0.0, 0.1, 0.9, "w" * 200)
    huge = results(words=(word,) * 6000, transcript="w " * 10)
    text = huge.to_json()
    assert len(text.encode()) < MAX_FRAME_BYTES
    payload = json.loads(text)
    assert 0 < len(payload["channel"]["alternatives"][0]["words"]) < 6000
    assert list(validator("asr-frame").iter_errors(payload)) == []
    assert "over 1 MiB" in caplog.text


@pytest.mark.parametrize("name", ["asr-frame", "control-messages"])
def test_schemas_are_versioned_draft_2020_12(name: str) -> None:
    schema = json.loads((SCHEMA_DIR / f"{name}.schema.json").read_text())
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert "/1.0.0/" in schema["$id"]
