"""`--max-sessions`: admission control shared by the live and pre-recorded routes."""

from __future__ import annotations

from typing import Callable

from frontend.protocol.errors import TooManySessions


class SessionLimit:
    """`--max-sessions`: how many sessions run now (live and pre-recorded), against the cap."""

    def __init__(self, cap: int) -> None:
        self.cap = cap
        self.running = 0

    def take(self) -> Callable[[], None]:
        """Hold a slot, or raise `TooManySessions`; returns the slot's release (safe to call
        twice). Check and take happen without an await between them, so concurrent handshakes
        cannot both pass for the last slot."""
        if self.cap and self.running >= self.cap:
            raise TooManySessions(f"{self.running} sessions running; --max-sessions {self.cap}")
        self.running += 1
        released = False

        def release() -> None:
            nonlocal released
            if not released:
                released = True
                self.running -= 1

        return release
