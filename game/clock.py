"""A frame clock that keeps a steady 60 FPS cadence on a busy machine.

``pygame.time.Clock.tick`` sleeps "frame period minus the time since the last tick" with millisecond
``SDL_Delay``; every oversleep adds to that frame and is never won back, so on a loaded machine frames of
19-21 ms are common. :class:`FrameClock` instead aims at fixed deadlines (``start + n * period``): it
sleeps until just before the deadline and spins the last fraction of a millisecond, and an oversleep in
one frame shortens the next wait. If the loop falls more than a frame behind it resynchronises rather
than rushing frames out.
"""

from __future__ import annotations

import time
from collections.abc import Callable

SPIN_S = 0.0008  # spin at most this long before a deadline: sleep() may wake a little late


class FrameClock:
    """Drop-in for ``pygame.time.Clock`` in the loop: ``tick(fps)`` waits, returns ms since last tick."""

    def __init__(
        self,
        now: Callable[[], float] = time.perf_counter,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._now = now
        self._sleep = sleep
        self._deadline: float | None = None
        self._last = now()

    def tick(self, framerate: float = 0, /) -> float:
        """Wait for the next frame deadline (no wait when ``framerate`` is 0); return elapsed ms."""
        now = self._now()
        if framerate > 0:
            period = 1.0 / framerate
            deadline = (self._deadline if self._deadline is not None else self._last) + period
            if now > deadline + period:
                deadline = now  # a long stall: start a fresh cadence instead of bursting to catch up
            remaining = deadline - now
            if remaining > SPIN_S:
                self._sleep(remaining - SPIN_S)
            while self._now() < deadline:
                pass
            self._deadline = deadline
            now = self._now()
        elapsed = now - self._last
        self._last = now
        return elapsed * 1000
