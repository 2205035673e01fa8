"""Streaming CTC prefix beam search with a word n-gram LM (numpy and dicts, no Triton imports,
so the offline tuning script runs the very same code).

Hypotheses are token prefixes of SentencePiece pieces (``▁`` starts a word). A word is
scored by the LM when the next word starts (or the utterance ends); a partial word that is
no prefix of any word the LM knows is charged the ``<unk>`` score at once, so spelling
nonsense loses the beam early instead of at the word's end.

Keyterms (Deepgram's ``keyterm`` and ``keywords``) are boosted word by word, a phrase's later
words only right after the word before them: a finished keyterm word earns its boost, and
while one is being spelled its prefix earns a share of it, so a rare or out-of-vocabulary word
survives the beam until it is complete (the share is taken back as soon as the spelling leaves
every keyterm word). A keyterm word the LM does not know is charged like the rarest word it
knows, not as ``<unk>``.

Output is append-only, as the Triton contract wants: a token is emitted as soon as every
surviving hypothesis contains it (the stable prefix), the rest at the end of the utterance.
A token can therefore be emitted in a later request than the frame it belongs to; its frame
is counted from the start of the utterance, and the caller turns it into a frame of the
request (possibly negative).
"""

from __future__ import annotations

import heapq
import math
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
from word_lm import BOS, EOS, WordLM

NEG_INF = float("-inf")


def _logaddexp(a: float, b: float) -> float:
    # numpy's ufunc costs about a microsecond per call on Python floats; the search makes
    # millions of these calls.
    if a < b:
        a, b = b, a
    return a if b == NEG_INF else a + math.log1p(math.exp(b - a))


@dataclass(frozen=True)
class BeamConfig:
    beam: int = 16  # build_lm.py writes the served value into the model manifest
    lm_weight: float = 0.5
    word_bonus: float = 1.0
    # Candidate tokens per frame: at most ``max_candidates`` within ``prune_margin`` nats of
    # the frame's best token; frames where blank is this sure (log-prob) expand nothing.
    max_candidates: int = 8
    prune_margin: float = 8.0
    blank_skip: float = -1e-3
    # After this many frames of sure blank (a pause) the beam settles on its best
    # hypothesis, so the words before a pause are emitted without waiting for a flush.
    settle_frames: int = 4


@dataclass
class _Hyp:
    """What a prefix means besides its CTC scores (a function of the prefix alone)."""

    last: int  # last token of the whole prefix (emitted part included), blank if none
    lm: float  # ln P of the completed words so far, and <unk> charges of partial words
    words: int  # words started
    history: tuple[str, ...]  # LM state before the partial word
    partial: str  # the word being spelled
    known_prefix: bool  # partial is a prefix of a word the LM knows (or of a keyterm)
    frames: tuple[int, ...]  # utterance frame of each token of the (unemitted) tail
    conf: tuple[float, ...]
    boost: float = 0.0  # keyterm boosts of the completed words
    credit: float = 0.0  # keyterm share of the partial word
    prev: str = ""  # the last finished word (keyterm phrases continue after it)


@dataclass
class Emitted:
    tokens: list[int] = field(default_factory=list)
    frames: list[int] = field(default_factory=list)
    conf: list[float] = field(default_factory=list)


class Pieces:
    """Per-token facts the search needs: word start, text, and which ids it never proposes."""

    def __init__(self, vocabulary: list[str], blank: int, boundary: str = "▁") -> None:
        self.blank = blank
        self.starts_word = [p.startswith(boundary) for p in vocabulary]
        self.text = [p[len(boundary):] if s else p for p, s in zip(vocabulary, self.starts_word)]
        self.letters = frozenset("".join(t for t in self.text if not (t.startswith("<") and t.endswith(">"))))
        # <unk>, <s> and friends carry no text: never worth a beam slot.
        self.allowed = np.array(
            [not (p.startswith("<") and p.endswith(">")) for p in vocabulary] + [False] * (blank + 1 - len(vocabulary)),
            dtype=bool,
        )
        self.allowed[blank] = False


class Keyterms:
    """Words to favour, each with a boost in nats (negative: suppress). A term's first word is
    boosted wherever it is said; each later word only right after the word before it in the
    term, so "customer service" does not boost "service" on its own. Keys are (previous word,
    word), the previous word "" for anywhere."""

    def __init__(self, boosts: dict[tuple[str, str], float]) -> None:
        self.boosts = boosts
        # Prefix credit only for positive boosts: a suppressed word is charged when finished,
        # never while its prefix could still become another word.
        self.prefixes: dict[tuple[str, str], float] = {}
        for (prev, word), boost in boosts.items():
            for i in range(1, len(word) + 1) if boost > 0 else ():
                key = (prev, word[:i])
                self.prefixes[key] = max(boost * i / len(word), self.prefixes.get(key, 0.0))

    @classmethod
    def parse(cls, terms: list[Any], pieces: Pieces, boost: float, max_words: int = 200) -> Keyterms | None:
        """From ``[[term, weight], ...]``: lower-cased words, letters the vocabulary cannot
        spell dropped; a word's boost is ``boost * weight`` (the largest when repeated)."""
        boosts: dict[tuple[str, str], float] = {}
        for term, weight in terms:
            words = [w for raw in str(term).lower().split() if (w := "".join(c for c in raw if c in pieces.letters))]
            for i, word in enumerate(words):
                key = (words[i - 1] if i else "", word)
                if len(boosts) < max_words:
                    value = boost * float(weight)
                    boosts[key] = max(value, boosts.get(key, value))
        return cls(boosts) if boosts else None

    def word(self, word: str, prev: str) -> float:
        """The boost for finishing ``word`` after ``prev``."""
        return max((b for k in (("", word), (prev, word)) if (b := self.boosts.get(k)) is not None), default=0.0)

    def knows(self, word: str, prev: str) -> bool:
        return ("", word) in self.boosts or (prev, word) in self.boosts

    def credit(self, partial: str, prev: str) -> float:
        """The share earned by spelling ``partial`` after ``prev``."""
        return max(self.prefixes.get(("", partial), 0.0), self.prefixes.get((prev, partial), 0.0))

    def spells(self, partial: str, prev: str) -> bool:
        return ("", partial) in self.prefixes or (prev, partial) in self.prefixes


class CtcBeamSearch:
    """The beam of one utterance; ``advance`` per block of frames, ``finish`` at its end."""

    def __init__(self, pieces: Pieces, lm: WordLM | None, cfg: BeamConfig,
                 keyterms: Keyterms | None = None, context: tuple[str, ...] = ()) -> None:
        self.p = pieces
        self.lm = lm
        self.cfg = cfg
        self.keyterms = keyterms
        self.t = 0  # frames consumed in this utterance
        self.quiet = 0  # sure-blank frames in a row
        # The stream's words before this utterance (an endpoint can fall inside a sentence):
        # the first word is scored after them or as a sentence start, whichever is likelier.
        self.context = context
        start = _Hyp(pieces.blank, 0.0, 0, context or (BOS,), "", True, (), ())
        self.beams: dict[tuple[int, ...], tuple[float, float]] = {(): (0.0, NEG_INF)}
        self.info: dict[tuple[int, ...], _Hyp] = {(): start}

    @property
    def keyterms(self) -> Keyterms | None:
        return self._keyterms

    @keyterms.setter
    def keyterms(self, keyterms: Keyterms | None) -> None:
        """Keyterms may be replaced mid-utterance; the upper bound ``_step`` puts on a new
        prefix's total (``_boost_cap``) must then allow for their boosts."""
        self._keyterms = keyterms
        # A finished keyterm word's boost plus a partial one's credit; the bound is only sound for
        # a non-negative LM weight and charge, else every new prefix is worked out.
        sound = self.cfg.lm_weight >= 0 and (self.lm is None or self.lm.unk_logprob <= 0)
        best_boost = max([0.0, *keyterms.boosts.values()]) if keyterms else 0.0
        self._boost_cap = 2 * best_boost if sound else math.inf

    # ----------------------------------------------------------------- scoring

    def _total(self, key: tuple[int, ...]) -> float:
        pb, pnb = self.beams[key]
        return _logaddexp(pb, pnb) + self._rest(self.info[key])

    def _rest(self, h: _Hyp) -> float:
        """Everything in a prefix's total besides its CTC score."""
        return self.cfg.lm_weight * h.lm + self.cfg.word_bonus * h.words + h.boost + h.credit

    def _complete_word(self, h: _Hyp) -> tuple[float, tuple[str, ...]]:
        """LM charge and new history for finishing ``h.partial`` (empty partial: nothing)."""
        if not h.partial or self.lm is None:
            return 0.0, h.history
        if not h.known_prefix:
            charge = 0.0  # <unk> already charged
        elif self.keyterms and self.keyterms.knows(h.partial, h.prev) and h.partial not in self.lm.words:
            charge = self.lm.rare_logprob
        else:
            charge = self.lm.score(h.history, h.partial)
            if h.words == 1 and self.context:
                charge = max(charge, self.lm.score((BOS,), h.partial))
        return charge, self.lm.state(h.history, h.partial)

    def _extend(self, h: _Hyp, token: int, frame: int, conf: float) -> _Hyp:
        lm, history, partial, words, boost, prev = h.lm, h.history, h.partial, h.words, h.boost, h.prev
        kt = self.keyterms
        if self.p.starts_word[token]:
            charge, history = self._complete_word(h)
            lm += charge
            if h.partial:
                boost += kt.word(h.partial, h.prev) if kt else 0.0
                prev = h.partial
            partial, words = self.p.text[token], words + 1
            known = True
        else:
            partial = partial + self.p.text[token]
            known = h.known_prefix
        credit = kt.credit(partial, prev) if kt else 0.0
        if (known and self.lm is not None and partial and not self.lm.is_prefix(partial)
                and not (kt and kt.spells(partial, prev))):
            lm += self.lm.unk_logprob
            known = False
        return _Hyp(token, lm, words, history, partial, known, h.frames + (frame,), h.conf + (conf,),
                    boost, credit, prev)

    # ----------------------------------------------------------------- search

    def advance(self, logprobs: np.ndarray) -> Emitted:
        """Consume ``logprobs`` [frames, classes]; returns the tokens that became stable."""
        blank = self.p.blank
        for row in logprobs:
            lp_blank = float(row[blank])
            if lp_blank > self.cfg.blank_skip:
                candidates: list[int] = []
                self.quiet += 1
            else:
                self.quiet = 0
                masked = np.where(self.p.allowed, row, NEG_INF)
                k = min(self.cfg.max_candidates, masked.size - 1)
                top = np.argpartition(masked, -k)[-k:]
                floor = float(masked[top].max()) - self.cfg.prune_margin
                candidates = [int(c) for c in top if masked[c] > floor]
            self._step(row, lp_blank, candidates)
            self.t += 1
            if self.quiet == self.cfg.settle_frames and len(self.beams) > 1:
                best = max(self.beams, key=lambda k: self._closed_total(k, False))
                self.beams = {best: self.beams[best]}
                self.info = {best: self.info[best]}
        return self._emit_stable()

    def _step(self, row: np.ndarray, lp_blank: float, candidates: list[int]) -> None:
        blank, starts = self.p.blank, self.p.starts_word
        lp = row.tolist()
        nxt: dict[tuple[int, ...], list[float]] = {}
        # New prefixes: (parent, token, upper bound on the total). A new prefix has a single CTC
        # path, so its CTC score is final when it is proposed; its LM facts, which cost most of
        # the search's time, are worked out only if it can still enter the beam.
        born: dict[tuple[int, ...], tuple[_Hyp, int, float]] = {}

        def add(key: tuple[int, ...], b: float, nb: float) -> None:
            cur = nxt.get(key)
            if cur is None:
                nxt[key] = [b, nb]
            else:
                cur[0] = _logaddexp(cur[0], b)
                cur[1] = _logaddexp(cur[1], nb)

        # The prefixes kept from the last frame will score at least their blank and held-token
        # paths, so the beam's last place will score at least the beam-th best of those: a new
        # prefix whose upper bound falls below that can never enter, and is not even proposed.
        floor = NEG_INF
        if len(self.beams) >= self.cfg.beam and candidates:
            floor = heapq.nlargest(self.cfg.beam, (
                _logaddexp(_logaddexp(pb, pnb) + lp_blank, pnb + lp[h.last] if h.last != blank else NEG_INF)
                + self._rest(h) for (pb, pnb), h in ((v, self.info[k]) for k, v in self.beams.items())))[-1]
        dropped = False
        for key, (pb, pnb) in self.beams.items():
            h = self.info[key]
            total = _logaddexp(pb, pnb)
            add(key, total + lp_blank, NEG_INF)
            if h.last != blank and pnb > NEG_INF:
                add(key, NEG_INF, pnb + lp[h.last])  # the last token held
            # What an extension adds to its total besides CTC: LM charges (never positive), the
            # bonus if it starts a word, keyterm boosts of at most ``_boost_cap``.
            ceiling = self.cfg.lm_weight * h.lm + self.cfg.word_bonus * h.words + h.boost + self._boost_cap
            for c in candidates:
                # A repeat needs a blank in between to count as a new token.
                via = pb if c == h.last else total
                if via == NEG_INF:
                    continue
                new = key + (c,)
                score = via + lp[c]
                if new in self.info:
                    add(new, NEG_INF, score)
                    continue
                bound = score + ceiling + (self.cfg.word_bonus if starts[c] else 0.0)
                if bound < floor:
                    dropped = True
                    continue
                born[new] = (h, c, bound)
                nxt[new] = [NEG_INF, score]

        def grow(key: tuple[int, ...]) -> float:
            """The prefix's total, its LM facts worked out first if it is new."""
            if key in born:
                h, c, _ = born.pop(key)
                self.info[key] = self._extend(h, c, self.t, math.exp(lp[c]))
            b, nb = nxt[key]
            return _logaddexp(b, nb) + self._rest(self.info[key])

        if len(nxt) <= self.cfg.beam and not dropped:
            for key in list(born):
                grow(key)
            self.beams = {k: (v[0], v[1]) for k, v in nxt.items()}
        else:
            totals = {k: grow(k) for k in nxt if k not in born}
            bounds = sorted(((bound, k) for k, (_, _, bound) in born.items()), key=lambda x: x[0], reverse=True)
            floor_heap = heapq.nlargest(self.cfg.beam, totals.values())
            heapq.heapify(floor_heap)
            for bound, key in bounds:
                if len(floor_heap) == self.cfg.beam and bound < floor_heap[0]:
                    break
                totals[key] = grow(key)
                (heapq.heappushpop if len(floor_heap) == self.cfg.beam else heapq.heappush)(floor_heap, totals[key])
            # Ties keep the order prefixes were proposed in, as a full sort would.
            keep = sorted((k for k in nxt if k in totals), key=totals.__getitem__, reverse=True)[: self.cfg.beam]
            self.beams = {k: (nxt[k][0], nxt[k][1]) for k in keep}
        self.info = {k: self.info[k] for k in self.beams}

    def _emit_stable(self) -> Emitted:
        keys = list(self.beams)
        n = min(map(len, keys))
        common = 0
        while common < n and all(k[common] == keys[0][common] for k in keys):
            common += 1
        return self._emit(keys[0], common)

    def _emit(self, key: tuple[int, ...], count: int) -> Emitted:
        """Emit the first ``count`` tokens of ``key`` (shared by every beam) and drop them."""
        out = Emitted()
        if not count:
            return out
        h = self.info[key]
        out.tokens, out.frames, out.conf = list(key[:count]), list(h.frames[:count]), list(h.conf[:count])
        beams, info = {}, {}
        for k, v in self.beams.items():
            hk = self.info[k]
            tail = k[count:]
            beams[tail] = v
            info[tail] = replace(hk, frames=hk.frames[count:], conf=hk.conf[count:])
        self.beams, self.info = beams, info
        return out

    def partial(self) -> Emitted:
        """The best hypothesis's tokens not emitted yet: what an interim result may show."""
        best = max(self.beams, key=self._total)
        h = self.info[best]
        return Emitted(list(best), list(h.frames), list(h.conf))

    def _closed_total(self, key: tuple[int, ...], utterance_end: bool) -> float:
        """Score with the partial word taken as complete (a pause or the end), and ``</s>``."""
        h = self.info[key]
        charge, history = self._complete_word(h)
        if utterance_end and self.lm is not None and h.words:
            charge += self.lm.score(history, EOS)
        finished = self.keyterms.word(h.partial, h.prev) - h.credit if self.keyterms else 0.0
        return self._total(key) + self.cfg.lm_weight * charge + finished

    def finish(self) -> Emitted:
        """End of utterance: the best hypothesis, its last word and ``</s>`` scored."""
        best = max(self.beams, key=lambda k: self._closed_total(k, True))
        h = self.info[best]
        if self.lm is not None and h.words:
            self.context = self._complete_word(h)[1]
        return Emitted(list(best), list(h.frames), list(h.conf))


def decode_utterance(logprobs: np.ndarray, pieces: Pieces, lm: WordLM | None, cfg: BeamConfig,
                     keyterms: Keyterms | None = None) -> list[int]:
    """A whole utterance at once (offline evaluation and tuning): its tokens, in order."""
    search = CtcBeamSearch(pieces, lm, cfg, keyterms)
    return search.advance(logprobs).tokens + search.finish().tokens
