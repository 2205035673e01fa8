"""Deepgram's `profanity_filter`: recognised profanity is masked with asterisks, one per
letter (`word` and `punctuated_word` alike; dictated marks stay).

The list is English and deliberately narrow: words that are profane in every sense. Words with
an innocent reading ("ass", "cock", "prick", "pussy", "hell", "damn") are left alone, since a
filter that masks a farmer's livestock is worse than none.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from frontend.session.tokens import Token

_FORMS = {
    "fuck": ("", "s", "ed", "er", "ers", "ing", "in", "wit", "wits", "face", "head", "heads"),
    "motherfuck": ("er", "ers", "ing", "in"),
    "shit": ("", "s", "ty", "tier", "tiest", "ting", "ted", "head", "heads", "hole", "holes"),
    "bullshit": ("", "s", "ting", "ter", "ters"),
    "horseshit": ("",),
    "bitch": ("", "es", "ed", "ing", "y"),
    "bastard": ("", "s"),
    "asshole": ("", "s"),
    "arsehole": ("", "s"),
    "cunt": ("", "s"),
    "dickhead": ("", "s"),
    "cocksucker": ("", "s"),
    "twat": ("", "s"),
    "wanker": ("", "s"),
    "slut": ("", "s", "ty"),
    "whore": ("", "s"),
    "goddamn": ("", "ed", "it"),
    "bollocks": ("",),
    "nigger": ("", "s"),
    "faggot": ("", "s"),
}
PROFANITY = frozenset(root + ending for root, endings in _FORMS.items() for ending in endings)


def mask_profanity(tokens: Sequence[Token]) -> list[Token]:
    """`tokens` with every profane word turned into asterisks (a verbatim token)."""
    return [replace(t, word=replace(t.word, text="*" * len(t.word.text)), verbatim=True)
            if t.word.text.lower() in PROFANITY else t for t in tokens]
