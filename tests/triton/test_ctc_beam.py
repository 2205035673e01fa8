"""The CTC decoder's beam search and word LM (``model_repository/templates/ctc_decoder``),
on synthetic log-probs where the right answer is known, and the LM builder's output."""

from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.triton.helpers import REPO, TEMPLATES

sys.path.insert(0, str(TEMPLATES / "ctc_decoder"))

from ctc_beam import BeamConfig, CtcBeamSearch, Keyterms, Pieces, decode_utterance  # noqa: E402
from word_lm import BOS, EOS, WordLM  # noqa: E402

VOCAB = ["<unk>", "▁the", "▁ca", "t", "▁a", "r", "▁dog", "s"]
BLANK = len(VOCAB)
PIECES = Pieces(VOCAB, BLANK)


def frames(*spec: dict[int, float] | int, floor: float = 1e-4) -> np.ndarray:
    """Log-probs, one row per spec: {token: prob} (the rest of the mass on blank) or a token id."""
    rows = []
    for s in spec:
        p = np.full(BLANK + 1, floor)
        probs = {s: 0.95} if isinstance(s, int) else s
        for token, value in probs.items():
            p[token] = value
        if BLANK not in probs:
            p[BLANK] = max(0.0, 1.0 - sum(probs.values()))
        rows.append(np.log(p / p.sum()))
    return np.array(rows)


@pytest.fixture(scope="module")
def lm_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    text = tmp_path_factory.mktemp("lm") / "text.txt"
    text.write_text("the cat\nthe cat sat\na cat\nthe dog\n" * 20 + "the car\n")
    out = text.with_name("lm.arpa.gz")
    subprocess.run([sys.executable, str(REPO / "scripts" / "build_lm.py"), str(text), "--out", str(out)], check=True)
    return out


@pytest.fixture(scope="module")
def lm(lm_file: Path) -> WordLM:
    return WordLM(lm_file)


def greedy(lp: np.ndarray) -> list[int]:
    best = lp.argmax(1)
    prev = np.concatenate([[BLANK], best[:-1]])
    return [int(t) for t in best[(best != BLANK) & (best != prev)]]


def test_without_lm_the_beam_finds_what_greedy_finds_on_clear_audio() -> None:
    rng = np.random.default_rng(0)
    ids = rng.integers(1, len(VOCAB), 40)
    lp = frames(*[int(t) if k % 3 else BLANK for k, t in enumerate(ids)])
    assert decode_utterance(lp, PIECES, None, BeamConfig(lm_weight=0, word_bonus=0)) == greedy(lp)


def test_a_repeat_needs_a_blank_between() -> None:
    lp = frames(3, 3, BLANK, 3)
    assert decode_utterance(lp, PIECES, None, BeamConfig(lm_weight=0, word_bonus=0)) == [3, 3]


def test_the_lm_turns_an_acoustic_near_tie_into_the_known_word(lm: WordLM) -> None:
    # "▁the ▁ca t|r": acoustics slightly prefer "r" (car: once in the text), the LM "cat".
    lp = frames(1, BLANK, 2, BLANK, {5: 0.5, 3: 0.45}, BLANK)
    assert greedy(lp) == [1, 2, 5]
    assert decode_utterance(lp, PIECES, lm, BeamConfig(lm_weight=1.0, word_bonus=0)) == [1, 2, 3]
    assert decode_utterance(lp, PIECES, None, BeamConfig(lm_weight=0, word_bonus=0)) == [1, 2, 5]


def test_the_unknown_word_charge_decides_between_a_known_word_and_a_new_spelling(lm_file: Path) -> None:
    # "▁the ▁dog s": acoustics prefer the "s" of "dogs", a word the LM never saw.
    lp = frames(1, BLANK, 6, BLANK, {7: 0.9}, BLANK)
    cfg = BeamConfig(lm_weight=1.0, word_bonus=0)
    assert decode_utterance(lp, PIECES, WordLM(lm_file, unk_logprob=-0.5), cfg) == [1, 6, 7]
    assert decode_utterance(lp, PIECES, WordLM(lm_file, unk_logprob=-20.0), cfg) == [1, 6]


def test_streaming_in_blocks_equals_one_pass_and_tokens_keep_their_frames(lm: WordLM) -> None:
    rng = np.random.default_rng(1)
    spec: list[dict[int, float] | int] = []
    for _ in range(30):
        a, b = rng.choice(np.arange(1, len(VOCAB)), 2, replace=False)
        spec += [{int(a): 0.6, int(b): 0.3}, BLANK, BLANK]
    lp = frames(*spec)
    cfg = BeamConfig(lm_weight=0.5, word_bonus=1.0)
    whole = decode_utterance(lp, PIECES, lm, cfg)
    search = CtcBeamSearch(PIECES, lm, cfg)
    tokens, token_frames = [], []
    for start in range(0, len(lp), 7):
        out = search.advance(lp[start:start + 7])
        tokens += out.tokens
        token_frames += out.frames
    assert tokens, "a stable prefix is emitted before the end"
    rest = search.finish()
    tokens += rest.tokens
    token_frames += rest.frames
    assert tokens == whole
    assert token_frames == sorted(token_frames)
    # Each token sits on a frame where it had real probability, never on a blank-only frame.
    assert all(lp[f, t] > math.log(0.2) for t, f in zip(tokens, token_frames))


def test_a_pause_settles_the_beam_so_words_are_not_held_back(lm: WordLM) -> None:
    lp = frames(1, BLANK, 2, {5: 0.5, 3: 0.45}, *[BLANK] * 6)
    search = CtcBeamSearch(PIECES, lm, BeamConfig(lm_weight=1.0, word_bonus=0))
    assert search.advance(lp).tokens == [1, 2, 3]
    assert search.finish().tokens == []


LM_ON = BeamConfig(lm_weight=1.0, word_bonus=0)
CAT_OR_CAR = frames(1, BLANK, 2, BLANK, {5: 0.45, 3: 0.5}, BLANK)  # "the ca t|r", t slightly ahead


def keyterms(*terms: tuple[str, float], boost: float = 9.0) -> Keyterms | None:
    return Keyterms.parse([list(t) for t in terms], PIECES, boost)


def test_a_keyterm_wins_an_acoustic_near_tie_against_the_lm(lm: WordLM) -> None:
    assert decode_utterance(CAT_OR_CAR, PIECES, lm, LM_ON) == [1, 2, 3]  # "the cat"
    assert decode_utterance(CAT_OR_CAR, PIECES, lm, LM_ON, keyterms(("Car", 1.0))) == [1, 2, 5]


def test_a_keyterm_the_lm_never_saw_survives_the_beam(lm: WordLM) -> None:
    # "the dog s": the LM knows "dog", not "dogs", so the plural loses without the keyterm.
    lp = frames(1, BLANK, 6, BLANK, {7: 0.4}, BLANK)
    assert decode_utterance(lp, PIECES, lm, LM_ON) == [1, 6]
    assert decode_utterance(lp, PIECES, lm, LM_ON, keyterms(("dogs", 1.0))) == [1, 6, 7]


def test_a_keyterm_does_not_replace_what_was_clearly_said(lm: WordLM) -> None:
    clear = frames(1, BLANK, 2, BLANK, 3, BLANK)  # "the cat", t at 0.95
    assert decode_utterance(clear, PIECES, lm, LM_ON, keyterms(("car", 1.0), ("dogs", 1.0))) == [1, 2, 3]


def test_a_negative_weight_suppresses_a_word(lm: WordLM) -> None:
    assert decode_utterance(CAT_OR_CAR, PIECES, lm, LM_ON, keyterms(("cat", -1.0))) == [1, 2, 5]


def test_keyterm_text_is_reduced_to_what_the_vocabulary_spells() -> None:
    kt = keyterms(("The  DOG!", 1.0), ("zz9", 2.0), ("dog", 0.5))
    # z and 9 are no pieces' letters; "dog" after "the" (the phrase) and anywhere (its own term).
    assert kt is not None and kt.boosts == {("", "the"): 9.0, ("the", "dog"): 9.0, ("", "dog"): 4.5}
    assert kt.credit("do", "the") == pytest.approx(6.0) and kt.credit("do", "a") == pytest.approx(3.0)
    assert kt.credit("x", "the") == 0.0
    assert keyterms(("!!!", 1.0)) is None


def test_a_phrase_boosts_its_later_words_only_after_the_earlier_ones(lm: WordLM) -> None:
    # "the ca t|r" and "a ca t|r": the phrase "the car" boosts "car" after "the" only.
    a_cat_or_car = frames(4, BLANK, 2, BLANK, {5: 0.45, 3: 0.5}, BLANK)
    phrase = keyterms(("the car", 1.0))
    assert decode_utterance(CAT_OR_CAR, PIECES, lm, LM_ON, phrase) == [1, 2, 5]
    assert decode_utterance(a_cat_or_car, PIECES, lm, LM_ON, phrase) == [4, 2, 3]
    assert decode_utterance(a_cat_or_car, PIECES, lm, LM_ON, keyterms(("car", 1.0))) == [4, 2, 5]


def test_hashed_ngram_keys_score_like_exact_ones(lm: WordLM, lm_file: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Orders x word-id bits beyond 64 (a big 4- or 5-gram) are keyed by a hash instead.
    import word_lm

    monkeypatch.setattr(word_lm, "_KEY_BITS", 4)
    hashed = WordLM(lm_file)
    assert not hashed._exact and lm._exact
    for history in [(BOS,), (BOS, "the"), ("a", "cat"), ("unseen", "words")]:
        for word in [*sorted(lm.words), EOS, "zebra"]:
            assert hashed.score(history, word) == lm.score(history, word)


def test_arpa_backoff_and_normalisation(lm: WordLM) -> None:
    assert lm.order == 3
    assert lm.score((BOS, "the"), "cat") > lm.score((BOS, "the"), "car") > lm.score((BOS, "the"), "zebra")
    for history in [(BOS,), (BOS, "the"), ("a", "cat"), ("unseen", "words")]:
        total = sum(math.exp(lm.score(history, w)) for w in [*lm.words, EOS])
        assert total == pytest.approx(1.0, abs=0.1)
    assert "ca" in lm.prefixes and "cx" not in lm.prefixes


@pytest.mark.parametrize("terms, later", [
    (None, None),
    ([["dogs", 1.0], ["the car", 2.0]], [["dogs", 1.0], ["the car", 2.0]]),
    (None, [["cat", 5.0], ["dogs", 5.0]]),  # keyterms arriving mid-utterance, with larger boosts
])
def test_working_out_only_prefixes_that_can_reach_the_beam_changes_nothing(lm: WordLM, terms, later) -> None:
    # Noisy frames where many prefixes compete: the search that skips the LM work of hopeless
    # prefixes must keep exactly the beam, the emitted tokens and their frames of the search
    # that works every prefix out.
    rng = np.random.default_rng(7)
    lp = np.log(rng.dirichlet(np.full(BLANK + 1, 0.3), size=120))

    def run(exhaustive: bool) -> tuple[list[int], list[int], list[int]]:
        search = CtcBeamSearch(PIECES, lm, BeamConfig(beam=6, lm_weight=0.8, word_bonus=1.0,
                                                     blank_skip=0.0, prune_margin=20.0),
                               Keyterms.parse(terms, PIECES, 4.0) if terms else None)
        if exhaustive:
            search._boost_cap = math.inf
        out = search.advance(lp[:60])
        # A client replacing its keyterms mid-stream (the decoder's ``configure``).
        search.keyterms = Keyterms.parse(later, PIECES, 4.0) if later else None
        if exhaustive:
            search._boost_cap = math.inf
        rest = search.advance(lp[60:])
        end = search.finish()
        return out.tokens + rest.tokens + end.tokens, out.frames + rest.frames + end.frames, sorted(search.beams)

    assert run(False) == run(True)


def test_the_next_utterance_hears_the_words_before_an_endpoint(tmp_path: Path) -> None:
    # An endpoint can fall inside a sentence: the first word after it is scored after the
    # stream's last words or as a sentence start, whichever is likelier. Here "car" starts
    # sentences and "cat" follows "the"; the acoustics slightly prefer "car".
    text = tmp_path / "text.txt"
    text.write_text("car is red\n" * 20 + "the cat\n" * 20)
    out = tmp_path / "lm.arpa.gz"
    subprocess.run([sys.executable, str(REPO / "scripts" / "build_lm.py"), str(text), "--out", str(out)], check=True)
    lm = WordLM(out)
    cfg = BeamConfig(lm_weight=1.0, word_bonus=8.0)
    first = CtcBeamSearch(PIECES, lm, cfg)
    assert first.advance(frames(1, BLANK)).tokens + first.finish().tokens == [1]
    ambiguous = frames(2, BLANK, {5: 0.5, 3: 0.45}, BLANK)
    after_the = CtcBeamSearch(PIECES, lm, cfg, context=first.context)
    assert after_the.advance(ambiguous).tokens + after_the.finish().tokens == [2, 3]
    fresh = CtcBeamSearch(PIECES, lm, cfg)
    assert fresh.advance(ambiguous).tokens + fresh.finish().tokens == [2, 5]
    # A sentence start stays as likely as it was: "car" alone after "the" is still "car".
    clear = frames(2, BLANK, {5: 0.9, 3: 0.05}, BLANK)
    again = CtcBeamSearch(PIECES, lm, cfg, context=first.context)
    assert again.advance(clear).tokens + again.finish().tokens == [2, 5]
