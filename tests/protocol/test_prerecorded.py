"""The pre-recorded response: channels, and `utterances` / `paragraphs` when asked for."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from frontend.protocol.frames import MetadataFrame, ModelInfo, PrerecordedResponse, ResultsFrame, ResultWord

MODEL = ModelInfo(uuid="6cc5d67a-4cb5-413c-9336-519017c4f856", name="embedded-la13",
                  version="2025-01-01", arch="fastconformer-ctc")


def final(channel: int, *timed: tuple[str, float], speaker: int | None = None) -> ResultsFrame:
    """A final of words (punctuated text, start); each word lasts 0.3 s."""
    words = tuple(ResultWord(text.strip(".?!").lower(), start, start + 0.3, 0.8 + 0.01 * i, text,
                             speaker=speaker) for i, (text, start) in enumerate(timed))
    return ResultsFrame(request_id="r", model=MODEL, channel=channel, channels=2, start=timed[0][1],
                        duration=1.0, is_final=True, speech_final=True, from_finalize=False,
                        transcript=" ".join(t for t, _ in timed), confidence=0.8, words=words)


def response(*finals: ResultsFrame, **options: Any) -> dict[str, Any]:
    metadata = MetadataFrame("r", datetime(2025, 1, 1, tzinfo=UTC), 9.0, 2, "a" * 64, MODEL)
    return PrerecordedResponse(metadata, finals, **options).to_dict()


FINALS = (final(0, ("Hello", 0.0), ("there.", 0.4)), final(1, ("Yes.", 0.5)),
          final(0, ("How", 1.0), ("are", 1.4), ("you?", 1.8)), final(0, ("Fine.", 4.0)))


def test_no_utterances_or_paragraphs_unless_asked() -> None:
    body = response(*FINALS)
    assert "utterances" not in body["results"]
    assert "paragraphs" not in body["results"]["channels"][0]["alternatives"][0]
    assert body["results"]["channels"][0]["alternatives"][0]["transcript"] == "Hello there. How are you? Fine."


def test_utterances_cut_each_channel_at_pauses_and_come_in_time_order() -> None:
    utterances = response(*FINALS, utterances_split_s=0.8)["results"]["utterances"]
    assert [(u["channel"], u["transcript"], u["start"], u["end"]) for u in utterances] == [
        (0, "Hello there. How are you?", 0.0, 2.1), (1, "Yes.", 0.5, 0.8), (0, "Fine.", 4.0, 4.3)]
    first = utterances[0]
    assert len(first["words"]) == 5 and first["confidence"] == 0.808  # mean of its words
    assert len({u["id"] for u in utterances}) == 3 and "speaker" not in first
    # A shorter split cuts at the 0.1 s gaps between words too.
    assert len(response(*FINALS, utterances_split_s=0.05)["results"]["utterances"]) == 7


def test_paragraphs_group_sentences_between_long_pauses() -> None:
    paragraphs = response(*FINALS, paragraphs=True)["results"]["channels"][0]["alternatives"][0]["paragraphs"]
    assert paragraphs["transcript"] == "\nHello there. How are you?\n\nFine."
    first, second = paragraphs["paragraphs"]
    assert first["sentences"] == [{"text": "Hello there.", "start": 0.0, "end": 0.7},
                                  {"text": "How are you?", "start": 1.0, "end": 2.1}]
    assert (first["num_words"], first["start"], first["end"]) == (5, 0.0, 2.1)
    assert second["num_words"] == 1 and "speaker" not in second


def test_diarized_paragraphs_and_utterances_name_the_speaker() -> None:
    body = response(final(0, ("Hi.", 0.0), speaker=0), paragraphs=True, utterances_split_s=0.8)
    paragraphs = body["results"]["channels"][0]["alternatives"][0]["paragraphs"]
    assert paragraphs["transcript"] == "\nSpeaker 0: Hi."
    assert paragraphs["paragraphs"][0]["speaker"] == 0
    assert body["results"]["utterances"][0]["speaker"] == 0


def test_an_empty_channel_has_empty_paragraphs() -> None:
    paragraphs = response(paragraphs=True)["results"]["channels"][1]["alternatives"][0]["paragraphs"]
    assert paragraphs == {"transcript": "", "paragraphs": []}


def test_search_finds_close_spellings_best_first() -> None:
    body = response(*FINALS, final(0, ("hollow", 5.0), ("there", 5.4)), search=("hello there", "zebra"))
    found, missing = body["results"]["channels"][0]["search"]
    assert found["query"] == "hello there" and missing == {"query": "zebra", "hits": []}
    assert [(h["snippet"], h["start"], h["end"]) for h in found["hits"]] == [
        ("Hello there.", 0.0, 0.7), ("hollow there", 5.0, 5.7)]
    assert found["hits"][0]["confidence"] > found["hits"][1]["confidence"] > 0
    assert "search" not in response(*FINALS)["results"]["channels"][0]
