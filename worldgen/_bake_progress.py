"""The bake's progress bar: blocks done, cells per second and the time left, written to a text stream.

On a terminal the line is redrawn in place at most ten times a second; into a file or a pipe (CI logs)
a new line is written only when another tenth of the work is done or half a minute has passed.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TextIO

TTY_INTERVAL = 0.1  # seconds between redraws on a terminal
LOG_INTERVAL = 30.0  # seconds after which a log line is written even without another tenth done
BAR_WIDTH = 24


def si(value: float) -> str:
    """``value`` with a k/M/G prefix and three significant digits: 1.23 M."""
    for factor, prefix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= factor:
            return f"{value / factor:.3g} {prefix}"
    return f"{value:.3g} "


def clock_text(seconds: float) -> str:
    """``seconds`` as h:mm:ss."""
    s = round(seconds)
    return f"{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}"


class Progress:
    """Counts finished blocks and draws the bar; ``tty`` defaults to ``stream.isatty()``."""

    def __init__(
        self,
        stream: TextIO,
        blocks: int,
        cells: int,
        *,
        tty: bool | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.stream = stream
        self.blocks = blocks
        self.cells = cells
        self.tty = stream.isatty() if tty is None else tty
        self.clock = clock
        self.start = clock()
        self.blocks_done = 0
        self.cells_done = 0
        self._last_draw = -float("inf")
        self._last_tenth = 0

    def line(self) -> str:
        """The bar as text: ``12/64 blocks [#####---] 18%  11.2 M cells/s  0:00:42 left``."""
        fraction = self.cells_done / self.cells if self.cells else 1.0
        filled = int(fraction * BAR_WIDTH)
        elapsed = self.clock() - self.start
        rate = self.cells_done / elapsed if elapsed > 0 and self.cells_done else 0.0
        left = clock_text((self.cells - self.cells_done) / rate) if rate else "-:--:--"
        return (
            f"{self.blocks_done}/{self.blocks} blocks [{'#' * filled}{'-' * (BAR_WIDTH - filled)}] "
            f"{fraction:4.0%}  {si(rate)}cells/s  {left} left"
        )

    def advance(self, cells: int) -> None:
        """One more block of ``cells`` cells is baked."""
        self.blocks_done += 1
        self.cells_done += cells
        now = self.clock()
        if self.tty:
            if now - self._last_draw >= TTY_INTERVAL or self.blocks_done == self.blocks:
                self.stream.write("\r" + self.line() + "\x1b[K")
                self.stream.flush()
                self._last_draw = now
            return
        tenth = self.cells_done * 10 // self.cells if self.cells else 10
        if tenth > self._last_tenth or now - self._last_draw >= LOG_INTERVAL:
            self.stream.write(self.line() + "\n")
            self.stream.flush()
            self._last_tenth = tenth
            self._last_draw = now

    def close(self) -> None:
        """End the bar's line on a terminal."""
        if self.tty:
            self.stream.write("\n")
            self.stream.flush()
