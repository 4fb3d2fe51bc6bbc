"""Letting go of a replaced world off the frame loop.

A 4096x4096 world is ~250 MiB of arrays that VM 1 handed over in shared memory. Dropping the last
reference unmaps all of it, which measured 4-8 ms here: on the frame that swaps in a new world (already
the busiest frame) that could push it past 20 ms. :func:`release_later` hands the old objects to a
daemon thread that drops them; CPython releases the GIL around ``munmap``, so the frame loop never waits.
"""

from __future__ import annotations

import queue
import threading

_queue: queue.SimpleQueue[tuple[object, ...]] = queue.SimpleQueue()
_lock = threading.Lock()
_thread: threading.Thread | None = None


def _drop_forever() -> None:
    while True:
        batch = _queue.get()
        # The only reference is ours now; dropping it frees the arrays (and unmaps their memory) here.
        del batch


def release_later(*objects: object) -> None:
    """Drop ``objects`` on the release thread. The caller must hold no other reference to them."""
    global _thread
    with _lock:
        if _thread is None or not _thread.is_alive():
            _thread = threading.Thread(target=_drop_forever, name="game-release", daemon=True)
            _thread.start()
    _queue.put(objects)
