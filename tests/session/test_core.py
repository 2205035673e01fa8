"""The Deepgram session state machine, driven with bytes, text, results and ticks."""

from __future__ import annotations

import hashlib
import json
from dataclasses import replace
from itertools import pairwise

import numpy as np
import pytest
from session_fakes import TOKEN, Harness, silence, speech, words_at

from frontend.protocol.errors import (
    AudioError, ChannelsTooMany, SampleRateTooHigh, UndecodableAudio, UnsupportedEncoding,
)
from frontend.protocol.frames import (
    ConfigureFailureFrame, ErrorFrame, MetadataFrame, ResultsFrame, SpeechStartedFrame,
    UtteranceEndFrame,
)
from frontend.protocol.params import ListenParams
from frontend.session.core import ChunkResult, Infer, SessionState

HELLO_WORLD = {0: words_at(0.32, "hello", "world", step=0.32)}


def closed_with(h: Harness) -> tuple[int, str]:
    assert len(h.closes) == 1
    return h.closes[0].code, h.closes[0].reason


# -- frame order and closing --------------------------------------------------------------------


def test_close_stream_sends_final_then_metadata_then_1000() -> None:
    h = Harness(script=HELLO_WORLD).open()
    audio = speech(1.0)
    h.send(audio)
    h.text({"type": "CloseStream"})

    assert h.types == ["Metadata", "Results", "Metadata"]
    final = h.finals[-1]
    assert final.transcript == "hello world"
    assert (final.start, final.duration) == (0.0, 1.0)
    assert [w.word for w in final.words] == ["hello", "world"]
    closing = h.frames[-1]
    assert isinstance(closing, MetadataFrame)
    assert closing.sha256 == hashlib.sha256(audio).hexdigest()
    assert closing.duration == pytest.approx(1.0) == h.session.audio_seconds
    assert closing.channels == 1
    assert closed_with(h) == (1000, "")
    assert h.session.state is SessionState.CLOSED
    assert h.session.open_sequences == ()
    assert h.infers[-1].end and h.infers[-1].flush


def test_opening_metadata_comes_first_and_describes_an_empty_stream() -> None:
    h = Harness().open()
    opening = h.frames[0]
    assert isinstance(opening, MetadataFrame)
    data = opening.to_dict()
    assert data["duration"] == 0.0
    assert data["sha256"] == hashlib.sha256(b"").hexdigest()
    assert data["created"] == "2025-01-02T03:04:05.678Z"
    assert data["models"] == [h.route.uuid]
    assert data["model_info"][h.route.uuid]["name"] == "embedded-la13"


def test_legacy_empty_binary_frame_closes_like_close_stream() -> None:
    h = Harness(script=HELLO_WORLD).open()
    h.send(speech(1.0))
    h.handle(h.session.receive_bytes(b"", h.now))
    assert h.types[-2:] == ["Results", "Metadata"]
    assert h.finals[-1].transcript == "hello world"
    assert closed_with(h) == (1000, "")


def test_legacy_close_type_closes_like_close_stream() -> None:
    h = Harness(script=HELLO_WORLD).open()
    h.send(speech(1.0))
    h.text({"type": "Close"})
    assert h.finals[-1].transcript == "hello world"
    assert closed_with(h) == (1000, "")


def test_input_after_close_stream_is_ignored() -> None:
    h = Harness(script=HELLO_WORLD, auto_answer=False).open()
    h.send(speech(0.5))
    h.text({"type": "CloseStream"})
    sent = len(h.infers)
    h.send(speech(1.0))
    h.text({"type": "Finalize"})
    h.text("not json")  # would close 1008 while streaming
    assert len(h.infers) == sent
    h.answer_held()
    assert closed_with(h) == (1000, "")
    closing = h.frames[-1]
    assert isinstance(closing, MetadataFrame)
    assert closing.sha256 == hashlib.sha256(speech(0.5)).hexdigest()


def test_audio_bytes_before_open_are_a_programming_error() -> None:
    h = Harness()
    with pytest.raises(RuntimeError):
        h.session.receive_bytes(speech(0.1), 0.0)


def test_shutdown_drains_finals_then_metadata_then_1000() -> None:
    h = Harness(script=HELLO_WORLD).open()
    h.send(speech(1.0))
    h.handle(h.session.shutdown(h.now))
    assert h.types[-2:] == ["Results", "Metadata"]
    assert h.finals[-1].transcript == "hello world"
    assert h.closes[0].code == 1000
    assert h.session.open_sequences == ()


# -- idle timeout and keep-alive ------------------------------------------------------------------


def test_idle_for_ten_seconds_flushes_finals_and_closes_net_0001() -> None:
    h = Harness(script=HELLO_WORLD).open()
    h.send(speech(1.0))
    h.tick(h.now + 9.9)
    assert h.session.state is SessionState.STREAMING
    h.tick(h.now + 0.2)
    assert h.types[-2:] == ["Results", "Metadata"]
    assert h.finals[-1].transcript == "hello world"
    assert not any(isinstance(f, ErrorFrame) for f in h.frames)
    assert closed_with(h) == (1011, "NET-0001")
    assert h.session.open_sequences == ()


def test_idle_without_any_audio_closes_with_metadata_of_nothing() -> None:
    h = Harness().open()
    h.tick(10.0)
    assert h.types == ["Metadata", "Metadata"]
    closing = h.frames[-1].to_dict()
    assert (closing["duration"], closing["channels"]) == (0.0, 0)
    assert closed_with(h) == (1011, "NET-0001")


def test_keepalive_resets_the_idle_timer_without_reply() -> None:
    h = Harness().open()
    for at in (5.0, 10.0, 15.0):
        h.now = at
        h.text({"type": "KeepAlive"})
        h.tick(at + 0.5)
    assert h.types == ["Metadata"]
    assert h.session.state is SessionState.STREAMING
    h.tick(25.0)
    assert closed_with(h) == (1011, "NET-0001")


def test_quiet_triton_sequence_gets_an_empty_keepalive_request() -> None:
    h = Harness().open()
    h.send(speech(0.3))
    sent = len(h.infers)
    for at in range(5, 30, 5):
        h.now = float(at)
        h.text({"type": "KeepAlive"})
        h.tick(float(at))
    keepalives = h.infers[sent:]
    assert len(keepalives) == 1
    assert keepalives[0].audio.size == 0
    assert not (keepalives[0].start or keepalives[0].end or keepalives[0].flush)
    assert h.session.state is SessionState.STREAMING


def test_deadline_tells_when_to_tick() -> None:
    h = Harness().open()
    assert h.session.deadline == pytest.approx(10.0)
    h.now = 4.0
    h.text({"type": "KeepAlive"})
    assert h.session.deadline == pytest.approx(14.0)


# -- chunking -------------------------------------------------------------------------------------


def test_first_request_is_a_first_chunk_then_steady_chunks_with_one_start() -> None:
    h = Harness().open()
    h.send(speech(1.0))
    sizes = [infer.audio.size for infer in h.infers]
    assert sizes == [3240, 3200, 3200, 3200]
    assert [infer.start for infer in h.infers] == [True, False, False, False]
    assert [infer.seq for infer in h.infers] == [0, 1, 2, 3]
    assert all(infer.audio.dtype == np.float32 for infer in h.infers)


def test_after_a_flush_the_next_request_is_a_first_chunk_again() -> None:
    h = Harness().open()
    h.send(speech(0.5))
    h.text({"type": "Finalize"})
    flush = h.infers[-1]
    assert flush.flush and not flush.end and flush.audio.size == 8000 - 3240 - 3200
    h.send(speech(0.5))
    after = h.infers[h.infers.index(flush) + 1:]
    assert [infer.audio.size for infer in after] == [3240, 3200]
    assert not any(infer.start for infer in after)


# -- Finalize -------------------------------------------------------------------------------------


def test_finalize_sends_a_from_finalize_final_and_keeps_the_session_open() -> None:
    h = Harness(script=HELLO_WORLD).open()
    h.send(speech(1.0))
    h.text({"type": "Finalize"})
    final = h.finals[-1]
    assert final.from_finalize and final.is_final and not final.speech_final
    assert final.transcript == "hello world"
    assert final.duration == pytest.approx(1.0)
    assert h.session.state is SessionState.STREAMING
    assert h.closes == []


def test_finalize_with_nothing_new_still_answers_with_an_empty_final() -> None:
    h = Harness(script=HELLO_WORLD).open()
    h.send(speech(1.0))
    h.text({"type": "Finalize"})
    h.text({"type": "Finalize"})
    empty = h.finals[-1]
    assert empty.from_finalize and empty.transcript == "" and empty.words == ()
    assert empty.start == pytest.approx(1.0)


def test_finalize_before_any_audio_answers_at_once() -> None:
    h = Harness(auto_answer=False).open()
    h.text({"type": "Finalize"})
    assert h.infers == []
    assert h.finals[-1].from_finalize
    assert h.finals[-1].to_dict()["channel_index"] == [0, 1]


def test_finalize_of_a_channel_that_does_not_exist_closes_1008() -> None:
    h = Harness().open()
    h.send(speech(0.3))
    h.text({"type": "Finalize", "channel": 3})
    assert closed_with(h) == (1008, "DATA-0000")


# -- endpointing ----------------------------------------------------------------------------------


def test_endpoint_after_silence_sends_a_speech_final() -> None:
    params = ListenParams(endpointing=300, punctuate=True)
    h = Harness(params=params, script=HELLO_WORLD).open()
    h.send(speech(1.0) + silence(1.0))
    flushes = [infer for infer in h.infers if infer.flush]
    assert len(flushes) == 1
    final = h.finals[0]
    assert final.speech_final and final.is_final and not final.from_finalize
    assert final.transcript == "Hello world."
    # Cut where the VAD decided (1.0 s of speech + 300 ms of silence), not where the silence
    # began: the segment keeps the word's tail and the silence after it.
    assert final.start + final.duration == pytest.approx(1.3, abs=1e-3)


@pytest.mark.parametrize("frame_bytes", [320, 2048, 6400, 40000])
def test_endpoints_do_not_depend_on_how_the_client_frames_its_audio(frame_bytes: int) -> None:
    # 1 s chunks, so that no chunk boundary falls between a silence start and the VAD's
    # decision 300 ms later: the flush then lands exactly where the VAD decided.
    params = ListenParams(endpointing=300)
    script = {0: words_at(0.16, "hello", "world", step=0.16) + words_at(1.6, "good", "bye")}
    audio = speech(0.5) + silence(1.0) + speech(0.5) + silence(1.0)
    one_second = {"chunk_samples": 16000, "first_chunk_samples": 16040}
    reference = Harness(params=params, script=script, manifest_overrides=one_second).open()
    reference.send(audio, frame_bytes=1024)
    h = Harness(params=params, script=script, manifest_overrides=one_second).open()
    h.send(audio, frame_bytes=frame_bytes)
    assert ([(i.audio.size, i.flush) for i in h.infers]
            == [(i.audio.size, i.flush) for i in reference.infers])
    ends = [(f.start, f.start + f.duration) for f in h.finals]
    assert ends == [(0.0, pytest.approx(0.8, abs=1e-3)), (pytest.approx(0.8, abs=1e-3), pytest.approx(2.3, abs=1e-3))]
    assert [f.transcript for f in h.finals] == ["hello world", "goodbye"]


def test_each_utterance_is_a_capitalised_sentence() -> None:
    params = ListenParams(endpointing=300, punctuate=True)
    script = {0: words_at(0.32, "hello", "world", step=0.32) + words_at(2.4, "good", "bye")}
    h = Harness(params=params, script=script).open()
    h.send(speech(1.0) + silence(1.0) + speech(1.0) + silence(1.0))
    assert [f.transcript for f in h.finals] == ["Hello world.", "Goodbye."]
    assert all(f.speech_final for f in h.finals)


def test_no_speech_final_when_endpointing_is_disabled() -> None:
    h = Harness(params=ListenParams(endpointing=None), script=HELLO_WORLD).open()
    h.send(speech(1.0) + silence(2.0))
    assert not any(infer.flush for infer in h.infers)
    h.text({"type": "CloseStream"})
    assert [f.speech_final for f in h.finals] == [False]
    assert h.transcript() == "hello world"


def test_finals_cover_the_stream_without_gaps_or_overlap() -> None:
    params = ListenParams(endpointing=300)
    script = {0: words_at(0.32, "hello", "world", step=0.32) + words_at(2.4, "good", "bye")}
    h = Harness(params=params, script=script).open()
    h.send(speech(1.0) + silence(1.0) + speech(1.0) + silence(1.0))
    h.text({"type": "CloseStream"})
    spans = [(f.to_dict()["start"], f.to_dict()["duration"]) for f in h.finals]
    for (start, duration), (next_start, _) in pairwise(spans):
        assert round(start + duration, 3) == next_start
    assert spans[0][0] == 0.0
    assert round(spans[-1][0] + spans[-1][1], 3) == 4.0
    assert h.transcript() == "hello world goodbye"


# -- interim results, long segments, utterance end ------------------------------------------------


def test_interims_only_with_interim_results_and_only_when_the_text_changes() -> None:
    script = {0: words_at(0.32, "hello", "world", step=0.32)}
    quiet = Harness(params=ListenParams(endpointing=None), script=script).open()
    quiet.send(speech(2.0))
    assert [f for f in quiet.results if not f.is_final] == []

    h = Harness(params=ListenParams(endpointing=None, interim_results=True),
                script=script).open()
    h.send(speech(2.0))
    interims = [f for f in h.results if not f.is_final]
    assert [f.transcript for f in interims] == ["hello", "hello world"]
    assert all(f.start == 0.0 for f in interims)
    assert len(h.infers) == 9  # 9 decoded chunks, only 2 changed the text


def test_a_long_segment_is_cut_before_its_last_word() -> None:
    # "good" + "bye" straddle the cut: the word must not be split across two finals.
    script = {0: [(t, "hello", 0.9) for t in np.arange(0.16, 2.9, 0.4)]
              + [(2.88, "good", 0.9), (3.28, "bye", 0.9)]}
    h = Harness(params=ListenParams(endpointing=None, punctuate=True), script=script,
                max_segment_s=3.0).open()
    h.send(speech(4.0))
    assert len(h.finals) == 1
    cut = h.finals[0]
    assert not cut.speech_final and not cut.from_finalize
    assert cut.transcript == "Hello" + " hello" * 6  # mid-sentence: no period
    assert cut.start + cut.duration == pytest.approx(2.88)  # the start of "goodbye"
    h.text({"type": "CloseStream"})
    assert h.finals[-1].transcript == "goodbye."  # the sentence goes on: no capital
    assert h.finals[-1].start == pytest.approx(2.88)


def test_a_dictated_period_before_a_length_cut_starts_the_next_sentence() -> None:
    script = {0: [(t, "hello", 0.9) for t in np.arange(0.16, 2.6, 0.4)]
              + [(2.72, "period", 0.9), (2.88, "good", 0.9), (3.28, "bye", 0.9)]}
    h = Harness(params=ListenParams(endpointing=None, punctuate=True, dictation=True),
                script=script, max_segment_s=3.0).open()
    h.send(speech(4.0))
    h.text({"type": "CloseStream"})
    assert [f.transcript for f in h.finals if f.transcript] == ["Hello" + " hello" * 6 + ".",
                                                                 "Goodbye."]


@pytest.mark.parametrize("vad", [True, False])
def test_a_word_the_model_places_before_speech_starts_where_the_vad_heard_it(vad: bool) -> None:
    # Look-ahead lets a CTC model emit a word at frame 0 that is spoken 0.3 s in.
    params = ListenParams(endpointing=300 if vad else None, utterance_end_ms=1000, interim_results=True)
    h = Harness(params=params, script={0: words_at(0.0, "hello")}, vad=vad).open()
    h.send(silence(0.3) + speech(0.6) + silence(2.0))
    h.text({"type": "CloseStream"})
    word = next(w for f in h.finals for w in f.words)
    if vad:
        # Starts where speech did and lasts until it stopped.
        assert (word.start, word.end) == (pytest.approx(0.3), pytest.approx(0.9))
        ends = [f.last_word_end for f in h.frames if isinstance(f, UtteranceEndFrame)]
        assert ends == [pytest.approx(0.9)]  # the end the final showed
    else:
        assert word.start == 0.0 and word.end < 0.3  # no VAD: the model's time


def test_utterance_end_once_per_gap_after_the_final() -> None:
    params = ListenParams(endpointing=None, interim_results=True, utterance_end_ms=1000)
    script = {0: words_at(0.32, "hello", "world", step=0.32) + words_at(3.2, "good")}
    h = Harness(params=params, script=script).open()
    h.send(speech(5.0))
    ends = [f for f in h.frames if isinstance(f, UtteranceEndFrame)]
    assert [e.last_word_end for e in ends] == [pytest.approx(0.68), pytest.approx(3.24)]
    before = h.frames[h.frames.index(ends[0]) - 1]
    assert isinstance(before, ResultsFrame) and before.is_final
    assert before.transcript == "hello world"
    assert ends[0].to_dict()["channel"] == [0, 1]


def test_interims_show_the_decoders_provisional_tail_and_finals_only_what_it_decided() -> None:
    h = Harness(params=ListenParams(endpointing=None, interim_results=True), auto_answer=False).open()

    def reply(infer: Infer, decided: tuple[str, ...] = (), provisional: tuple[str, ...] = ()) -> None:
        result = replace(h.recognizer.answer(infer),
                         tokens=[TOKEN[t] for t in decided], token_frames=[0] * len(decided),
                         token_conf=[0.9] * len(decided),
                         partial_tokens=[TOKEN[t] for t in provisional],
                         partial_frames=[2] * len(provisional), partial_conf=[0.5] * len(provisional))
        h.handle(h.session.receive_result(infer.channel, infer.seq, result, h.now))

    h.send(speech(1.0))
    first, second, *rest = h.held
    reply(first, ("hello",), ("world",))
    reply(second, (), ("good", "bye"))  # the beam changed its mind about the tail
    for infer in rest:
        reply(infer)
    h.held = []
    h.text({"type": "CloseStream"})
    for infer in h.held:
        reply(infer)
    interims = [r.transcript for r in h.results if not r.is_final]
    assert interims[:2] == ["hello world", "hello goodbye"]
    assert h.transcript() == "hello"


def test_stream_ending_mid_speech_still_ends_the_utterance() -> None:
    params = ListenParams(endpointing=None, interim_results=True, utterance_end_ms=1000)
    h = Harness(params=params, script=HELLO_WORLD).open()
    h.send(speech(1.2))  # the audio stops 0.5 s after "world": no gap of 1000 ms
    assert "UtteranceEnd" not in h.types
    h.text({"type": "CloseStream"})
    assert h.types[-3:] == ["Results", "UtteranceEnd", "Metadata"]
    assert h.finals[-1].transcript == "hello world"
    assert h.frames[-2].last_word_end == pytest.approx(0.68)


def test_close_owes_no_second_utterance_end_for_the_same_words() -> None:
    params = ListenParams(endpointing=None, interim_results=True, utterance_end_ms=1000)
    h = Harness(params=params, script=HELLO_WORLD).open()
    h.send(speech(3.0))
    h.text({"type": "CloseStream"})
    assert h.types.count("UtteranceEnd") == 1
    assert h.types[-2:] == ["Results", "Metadata"]


def test_no_utterance_end_without_interim_results() -> None:
    params = ListenParams(endpointing=None, utterance_end_ms=1000)
    h = Harness(params=params, script=HELLO_WORLD).open()
    h.send(speech(3.0))
    h.text({"type": "CloseStream"})
    assert "UtteranceEnd" not in h.types


def test_utterance_end_does_not_fire_while_words_keep_coming() -> None:
    params = ListenParams(endpointing=None, interim_results=True, utterance_end_ms=1000)
    script = {0: [(t, "hello", 0.9) for t in np.arange(0.16, 3.0, 0.6)]}
    h = Harness(params=params, script=script).open()
    h.send(speech(3.0))
    assert "UtteranceEnd" not in h.types


# -- VAD events -----------------------------------------------------------------------------------


def test_speech_started_with_vad_events() -> None:
    h = Harness(params=ListenParams(vad_events=True)).open()
    h.send(silence(0.5) + speech(0.5))
    started = [f for f in h.frames if isinstance(f, SpeechStartedFrame)]
    assert len(started) == 1
    assert started[0].timestamp == pytest.approx(0.5)
    assert started[0].to_dict()["channel"] == [0, 1]


def test_no_speech_started_without_vad_events() -> None:
    h = Harness().open()
    h.send(silence(0.5) + speech(0.5))
    assert "SpeechStarted" not in h.types


# -- control errors, audio errors, recogniser failures --------------------------------------------


@pytest.mark.parametrize("text", ["not json", '{"type": "Bogus"}',
                                  '{"type": "Finalize", "channel": "0"}', "[1, 2]"])
def test_bad_control_flushes_finals_then_closes_1008(text: str) -> None:
    h = Harness(script=HELLO_WORLD).open()
    h.send(speech(1.0))
    h.text(text)
    error = next(f for f in h.frames if isinstance(f, ErrorFrame))
    assert error.variant == "SchemaError" and error.message == text
    assert h.types[-3:] == ["Error", "Results", "Metadata"]
    assert h.finals[-1].transcript == "hello world"
    assert closed_with(h) == (1008, "DATA-0000")
    assert h.session.open_sequences == ()


@pytest.mark.parametrize(("error", "code", "reason"), [
    (UndecodableAudio("garbage"), 1008, "DATA-0000"),
    (UnsupportedEncoding("speex"), 1003, "unsupported-data"),
    (ChannelsTooMany("9 channels"), 1008, "channels-too-many"),
    (SampleRateTooHigh("384000 Hz"), 1008, "sample-rate-too-high"),
])
def test_audio_errors_close_with_their_code_after_the_finals(error: AudioError, code: int,
                                                             reason: str) -> None:
    h = Harness(script=HELLO_WORLD).open()
    h.send(speech(1.0))
    h.audio.fail = error
    h.send(speech(0.1))
    assert closed_with(h) == (code, reason)
    assert h.finals[-1].transcript == "hello world"
    assert h.types[-1] == "Metadata"
    assert not h.audio.flushed  # a broken decoder is not asked for its tail
    assert h.session.open_sequences == ()


def test_undecodable_tail_at_close_still_closes_normally() -> None:
    h = Harness(script=HELLO_WORLD).open()
    h.send(speech(1.0))
    h.audio.fail_on_flush = UndecodableAudio("truncated frame")
    h.text({"type": "CloseStream"})
    assert closed_with(h) == (1000, "")
    assert h.finals[-1].transcript == "hello world"


def test_recognizer_failure_sends_what_was_recognised_and_closes_1011() -> None:
    h = Harness(script=HELLO_WORLD).open()
    h.send(speech(1.0))
    h.handle(h.session.recognizer_failed(0, "stream broke", h.now))
    assert h.types[-3:] == ["Error", "Results", "Metadata"]
    assert h.finals[-1].transcript == "hello world"
    assert closed_with(h) == (1011, "NET-0000")
    assert h.infers[-1].end
    assert h.session.open_sequences == ()


def test_malformed_recognizer_output_is_a_recognizer_failure() -> None:
    h = Harness(auto_answer=False).open()
    h.send(speech(0.3))
    infer = h.held.pop(0)
    bad = ChunkResult(0.0, 5, tokens=[999], token_frames=[0], token_conf=[0.9])
    h.handle(h.session.receive_result(infer.channel, infer.seq, bad, h.now))
    assert closed_with(h) == (1011, "NET-0000")
    assert h.session.open_sequences == ()


def test_finalize_deadline_closes_even_if_triton_never_answers() -> None:
    h = Harness(script=HELLO_WORLD, auto_answer=False).open()
    h.send(speech(1.0))
    h.answer_held()  # the four full chunks are decoded: "hello world"
    h.text({"type": "CloseStream"})  # its flush + END is never answered
    assert h.closes == []
    h.tick(h.now + 9.9)
    assert h.closes == []
    h.tick(h.now + 0.2)
    assert h.finals[-1].transcript == "hello world"
    assert h.types[-1] == "Metadata"
    assert closed_with(h) == (1000, "")


def test_connection_lost_ends_every_sequence_and_sends_nothing() -> None:
    h = Harness(params=ListenParams(channels=2, multichannel=True), auto_answer=False).open()
    h.send(speech(0.5, channels=2))
    frames = len(h.frames)
    actions = h.session.connection_lost(h.now)
    assert sorted(a.channel for a in actions if isinstance(a, Infer) and a.end) == [0, 1]
    assert all(isinstance(a, Infer) and a.audio.size == 0 for a in actions)
    assert len(h.frames) == frames
    assert h.session.state is SessionState.CLOSED
    assert h.session.open_sequences == ()


@pytest.mark.parametrize("close", ["CloseStream", "idle", "bad control", "audio error",
                                   "shutdown", "failure"])
def test_no_triton_sequence_is_left_open_after_any_close(close: str) -> None:
    h = Harness(params=ListenParams(channels=2, multichannel=True)).open()
    h.send(speech(0.5, channels=2))
    assert list(h.session.open_sequences) == [0, 1]
    if close == "CloseStream":
        h.text({"type": "CloseStream"})
    elif close == "idle":
        h.tick(h.now + 10)
    elif close == "bad control":
        h.text("{")
    elif close == "audio error":
        h.audio.fail = UndecodableAudio("x")
        h.send(b"xx" * 10)
    elif close == "shutdown":
        h.handle(h.session.shutdown(h.now))
    else:
        h.handle(h.session.recognizer_failed(1, "boom", h.now))
    assert h.session.open_sequences == ()
    assert sorted(h.recognizer.ended) == [0, 1]
    assert len(h.closes) == 1


# -- multichannel ---------------------------------------------------------------------------------


def test_multichannel_channels_are_independent() -> None:
    script = {0: words_at(0.32, "hello"), 1: words_at(0.64, "good", "bye")}
    params = ListenParams(channels=2, multichannel=True, endpointing=None)
    h = Harness(params=params, script=script, auto_answer=False).open()
    h.send(speech(1.0, channels=2))
    assert {infer.channel for infer in h.held} == {0, 1}
    for channel in (0, 1):
        seqs = [i.seq for i in h.held if i.channel == channel]
        assert seqs == list(range(len(seqs)))
    h.answer_held()
    h.text({"type": "Finalize", "channel": 1})
    h.answer_held()
    assert [(f.channel, f.transcript) for f in h.finals] == [(1, "goodbye")]
    assert h.finals[0].to_dict()["channel_index"] == [1, 2]
    h.text({"type": "CloseStream"})
    h.answer_held()
    assert h.transcript(0) == "hello" and h.transcript(1) == "goodbye"
    assert h.frames[-1].to_dict()["channels"] == 2


def test_without_multichannel_channels_are_mixed_into_one() -> None:
    h = Harness(params=ListenParams(channels=2), script=HELLO_WORLD).open()
    h.send(speech(1.0, channels=2))
    h.text({"type": "CloseStream"})
    assert {infer.channel for infer in h.infers} == {0}
    assert h.finals[-1].to_dict()["channel_index"] == [0, 1]


# -- results content ------------------------------------------------------------------------------


def test_results_out_of_order_are_decoded_in_request_order() -> None:
    h = Harness(script=HELLO_WORLD, auto_answer=False).open()
    h.send(speech(1.0))
    h.text({"type": "Finalize"})
    answers = [(i, h.recognizer.answer(i)) for i in h.held]
    for infer, result in reversed(answers):
        h.handle(h.session.receive_result(infer.channel, infer.seq, result, h.now))
    assert [f.transcript for f in h.finals] == ["hello world"]


def test_word_times_come_from_chunk_start_and_frames() -> None:
    h = Harness(script={0: [(0.32, "hello", 0.8), (0.36, "s", 0.6), (0.64, "world", 0.9)]}).open()
    h.send(speech(1.0))
    h.text({"type": "CloseStream"})
    words = [(w.word, w.start, w.end, w.confidence) for w in h.finals[-1].words]
    assert words == [("hellos", pytest.approx(0.32), pytest.approx(0.40), 0.6),
                     ("world", pytest.approx(0.64), pytest.approx(0.68), 0.9)]
    assert h.finals[-1].confidence == pytest.approx(0.75)


def test_formatting_options_reach_the_words() -> None:
    script = {0: words_at(0.16, "i", "am", "twenty", "one", "um", step=0.16)}
    params = ListenParams(smart_format=True, diarize=True, extra={"team": "blue"})
    h = Harness(params=params, script=script).open()
    h.send(speech(1.0))
    h.text({"type": "CloseStream"})
    final = h.finals[-1].to_dict()
    alternative = final["channel"]["alternatives"][0]
    assert alternative["transcript"] == "I am 21."
    assert [w["speaker"] for w in alternative["words"]] == [0, 0, 0]
    assert final["metadata"]["extra"] == {"team": "blue"}
    assert final["metadata"]["model_uuid"] == h.route.uuid


def test_configure_keyterms_on_a_model_without_boosting_is_refused_and_the_session_stays_open() -> None:
    h = Harness().open()
    h.text({"type": "Configure", "keyterms": ["Dudoxx"]})
    failure = h.frames[-1]
    assert isinstance(failure, ConfigureFailureFrame)
    assert failure.code == "CONFIGURE_KEYTERMS_NOT_SUPPORTED"
    assert json.loads(failure.to_json())["request_id"] == "req-1"
    assert h.session.state is SessionState.STREAMING


def test_keyterms_ride_on_the_start_and_on_the_first_request_after_configure() -> None:
    params = ListenParams(keyterm=("Dudoxx",), keywords=(("triton", 2.0),))
    h = Harness(params=params, manifest_overrides={"keyterms": True}).open()
    h.send(speech(0.6))
    assert [i.keyterms for i in h.infers[:2]] == [(("Dudoxx", 1.0), ("triton", 2.0)), None]
    sent = len(h.infers)
    h.text({"type": "Configure", "keyterms": ["Riva", "Nova three"]})
    assert h.frames[-1].to_dict() == {"type": "ConfigureSuccess", "request_id": "req-1",
                                      "keyterms": ["Riva", "Nova three"]}
    h.send(speech(0.6))
    # The keywords stay: Configure replaces the keyterm list only.
    assert h.infers[sent].keyterms == (("Riva", 1.0), ("Nova three", 1.0), ("triton", 2.0))
    assert all(i.keyterms is None for i in h.infers[sent + 1:])


def test_configure_over_the_keyterm_limit_changes_nothing() -> None:
    h = Harness(params=ListenParams(keyterm=("Dudoxx",)), manifest_overrides={"keyterms": True}).open()
    h.text({"type": "Configure", "keyterms": [f"t{i}" for i in range(101)], "features": {"numerals": True}})
    assert h.frames[-1].code == "CONFIGURE_KEYTERM_LIMIT_EXCEEDED"
    h.send(speech(0.6))
    assert h.infers[0].keyterms == (("Dudoxx", 1.0),)
    assert not h.session.params.numerals


def test_configure_features_switch_formatting_mid_stream() -> None:
    script = {0: words_at(0.16, "twenty", "one", step=0.16) + words_at(2.16, "twenty", "one", step=0.16)}
    h = Harness(params=ListenParams(endpointing=None), script=script).open()
    h.send(speech(1.0))
    h.text({"type": "Finalize"})
    h.text({"type": "Configure", "features": {"numerals": True, "sentiment": True}})
    assert h.frames[-1].to_dict() == {"type": "ConfigureSuccess", "request_id": "req-1"}
    h.send(speech(2.0))
    h.text({"type": "CloseStream"})
    assert [f.transcript for f in h.finals if f.transcript] == ["twenty one", "21"]
