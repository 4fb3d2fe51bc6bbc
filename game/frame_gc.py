"""Garbage collection for the frame loop: no full collection in the middle of play.

Python's collector runs its young generations every few hundred allocations (a millisecond or two at
most here) and, now and then, a full collection that walks every tracked object. With a few thousand
chunks cached (about ten tracked objects each: tile, data, buffers, finalizers) a full collection took
25 ms, measured during a 4,800 cells/s flight with 56,000 tracked objects: a frame and a half, in the
middle of a frame. That collection found 9 objects to free; what the game drops is freed by reference
counting, not by the collector.

So :class:`FrameGC` leaves the young collections to Python, and at the end of each frame in which one of
them promoted survivors to the old generation, it freezes the old generation (``gc.freeze``: the objects
move to a permanent generation that no collection walks). A full collection then only ever walks what
arrived since the last frame's freeze: a fraction of a millisecond. The cost is that a reference cycle
among frozen objects is not freed until :meth:`FrameGC.close` unfreezes them (the game makes next to no
cycles: the measure above). The scheme is process-wide, so it is the game's (the frame loop's owner),
never the runtime's.
"""

from __future__ import annotations

import gc


class FrameGC:
    """Freeze what survived the young collections, once per frame that had one (see the module doc)."""

    def __init__(self) -> None:
        self._promotions = gc.get_count()[2]  # how many times the middle generation has been collected
        self.frozen = 0
        """How many times the loop froze the old generation (for tests and the curious)."""

    def after_frame(self) -> None:
        """Call at the end of every frame: freezes the old generation if a collection promoted to it."""
        promotions = gc.get_count()[2]
        if promotions != self._promotions:
            gc.freeze()
            self.frozen += 1
            self._promotions = gc.get_count()[2]

    def close(self) -> None:
        """Give the frozen objects back to the collector (the game is over: a pause costs nothing now)."""
        gc.unfreeze()
