"""The evaluation scripts' metrics: edit distance, normalisation, WER/CER, utterance selection.

Pure Python, milliseconds: `scripts/wer.py` is what every WER figure of the project is computed
with (training validation, offline and streaming evaluation).
"""

from __future__ import annotations

import struct

import pytest

from scripts.eval_common import SETS, select_rows, summarise, utterance_record
from scripts.eval_service import read_wav
from scripts.wer import edit_distance, normalize, score


@pytest.mark.parametrize(
    ("ref", "hyp", "distance"),
    [
        ("", "", 0),
        ("abc", "abc", 0),
        ("abc", "", 3),
        ("", "abc", 3),
        ("kitten", "sitting", 3),
        ("flaw", "lawn", 2),
        ("intention", "execution", 5),
        (["a", "b", "c"], ["a", "c"], 1),  # deletion
        (["a", "c"], ["a", "b", "c"], 1),  # insertion
        (["the", "cat", "sat"], ["the", "hat", "sat"], 1),  # substitution
        (["one", "two"], ["two", "one"], 2),  # no transpositions
    ],
)
def test_edit_distance(ref, hyp, distance):
    assert edit_distance(ref, hyp) == distance
    assert edit_distance(hyp, ref) == distance


@pytest.mark.parametrize(
    ("text", "normal"),
    [
        ("Hello, World!", "hello world"),
        ("  Don't   STOP.  ", "don't stop"),
        ("'quoted' words", "quoted words"),
        ("7", "seven"),
        ("I have 21 apples", "i have twenty one apples"),
        ("the 3rd of 21,500", "the third of twenty one thousand five hundred"),
        ("in 1204", "in twelve oh four"),  # four digits in 1100..2099 read as a year
        ("in 1999", "in nineteen ninety nine"),
        ("50%", "fifty percent"),
        ("python 3.12", "python three point one two"),
        ("C++ & co", "c plus plus and co"),
        ("it’s", "it's"),
    ],
)
def test_normalize(text, normal):
    assert normalize(text) == normal


def test_score_counts_words_and_chars_over_the_corpus():
    s = score(["the cat sat", "zero"], ["The cat, sat!", "0"])  # formatting and digits do not count
    assert (s.n, s.wer, s.cer, s.exact) == (2, 0.0, 0.0, 1.0)

    s = score(["a b c d", "x y"], ["a c d e", ""])  # 1 del + 1 ins, then 2 del: 4 errors / 6 words
    assert (s.words, s.word_errors) == (6, 4)
    assert s.wer == pytest.approx(4 / 6)
    assert s.exact == 0.0
    assert (s.chars, s.char_errors) == (len("a b c d") + len("x y"), edit_distance("a b c d", "a c d e") + 3)

    s = score(["one"], ["one two three"])  # insertions can push WER over 100 %
    assert s.wer == pytest.approx(2.0)

    assert score([], []).wer == 0.0
    with pytest.raises(ValueError):
        score(["a"], [])


def test_summary_groups_and_target():
    fsdd = SETS["fsdd"]
    rows = [{"audio_filepath": f"{i}.wav", "text": t, "voice": v}
            for i, (t, v) in enumerate([("zero", "fsdd/nicolas"), ("one", "fsdd/nicolas"), ("two", "fsdd/theo")])]
    utts = [utterance_record(i, r, h) for i, (r, h) in enumerate(zip(rows, ["Zero.", "won", "2"]))]
    s = summarise(fsdd, utts)
    assert s["exact"] == pytest.approx(2 / 3) and not s["met"]
    assert s["groups"]["fsdd/nicolas"]["exact"] == 0.5 and s["groups"]["fsdd/theo"]["exact"] == 1.0
    assert SETS["tts"].met(score(["a b c d e f g h i j"], ["a b c d e f g h i x"]))  # 10 % <= 10 %


def test_select_rows_spreads_evenly_and_is_deterministic():
    rows = [{"i": i} for i in range(1000)]
    picked = select_rows(rows, 40)
    assert [i for i, _ in picked] == list(range(0, 1000, 25))
    assert all(r["i"] == i for i, r in picked)
    assert select_rows(rows, 40) == picked
    assert len(select_rows(rows, None)) == 1000 and len(select_rows(rows, 5000)) == 1000


def _wav(tag: int, rate: int, bits: int, data: bytes) -> bytes:
    fmt = struct.pack("<HHIIHH", tag, 1, rate, rate * bits // 8, bits // 8, bits)
    if tag != 1:
        fmt += b"\x00\x00"  # cbSize, as non-PCM writers emit
    chunks = b"fmt " + struct.pack("<I", len(fmt)) + fmt
    chunks += b"fact" + struct.pack("<I", 4) + struct.pack("<I", len(data))
    chunks += b"data" + struct.pack("<I", len(data)) + data + (b"\x00" if len(data) & 1 else b"")
    return b"RIFF" + struct.pack("<I", 4 + len(chunks)) + b"WAVE" + chunks


def test_read_wav_keeps_the_stored_samples(tmp_path):
    mulaw = tmp_path / "mulaw.wav"
    mulaw.write_bytes(_wav(7, 8000, 8, bytes(range(255))))  # odd length: padded chunk
    audio = read_wav(mulaw)
    assert (audio.encoding, audio.sample_rate, audio.data) == ("mulaw", 8000, bytes(range(255)))
    assert audio.duration == pytest.approx(255 / 8000)

    pcm = tmp_path / "pcm.wav"
    pcm.write_bytes(_wav(1, 16000, 16, b"\x01\x00" * 1600))
    audio = read_wav(pcm)
    assert (audio.encoding, audio.sample_rate, audio.duration) == ("linear16", 16000, pytest.approx(0.1))

    bad = tmp_path / "float.wav"
    bad.write_bytes(_wav(3, 16000, 32, b"\x00" * 8))
    with pytest.raises(ValueError):
        read_wav(bad)
