"""The guard: one lock over one or more managers, and the futures to resolve once it is released.

A ComputeThread's manager has a guard of its own; a pool's managers share one, so that its queue and
its VMs change together. Resolving a future runs its done-callbacks, so it never happens under the lock.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Callable
from typing import Protocol

from ._jobs import Job


class Guard:
    """The lock over one or more managers (a pool's VMs share one), and the futures to resolve after it.

    Futures of ended jobs are resolved once the lock is released, so that a done-callback may submit to
    any ComputeThread (this one too) without two locks ever being held in reverse order.
    """

    def __init__(self, resolve: Callable[[Job], None]) -> None:
        self.lock = threading.RLock()
        self.depth = 0  # how deeply the owning thread holds ``lock`` through ``with guard:``
        self.to_resolve: deque[Job] = deque()  # jobs that ended, their futures not resolved yet
        self.resolve = resolve

    def __enter__(self) -> Guard:
        self.lock.acquire()
        self.depth += 1
        return self

    def try_enter(self) -> bool:
        """``__enter__`` if no other thread holds the lock; return whether it did."""
        if not self.lock.acquire(blocking=False):
            return False
        self.depth += 1
        return True

    def __exit__(self, *exc_info: object) -> None:
        self.depth -= 1
        outermost = self.depth == 0
        self.lock.release()
        if outermost and self.to_resolve:
            self.resolve_ended()

    def resolve_ended(self) -> None:
        """Resolve the futures of ended jobs; called without the lock (callbacks run here)."""
        to_resolve = self.to_resolve
        while to_resolve:  # (checked first: raising IndexError at the end of every call costs more)
            try:
                job = to_resolve.popleft()
            except IndexError:
                return  # another thread took the last one
            try:
                self.resolve(job)
            except Exception:  # a bug of ours must not strand the futures behind it
                logging.getLogger(__name__).exception("runtime: could not resolve a future")

    def forget(self) -> None:
        """In a forked child: a fresh lock (another thread may have held this one at the fork)."""
        self.lock = threading.RLock()
        self.depth = 0
        self.to_resolve.clear()


class Closable(Protocol):
    """What the garbage collector closes: a ComputeThread's manager, or a pool's core."""

    guard: Guard

    def close(self, *, wait: bool = True, resolve_futures: bool = True) -> None: ...


def close_collected(owner: Closable) -> None:
    """Close what a collected ComputeThread or pool owned, in the reaper thread; its futures' callbacks
    run in a thread of their own (the reaper must not run user code)."""
    owner.close(wait=False, resolve_futures=False)
    if owner.guard.to_resolve:
        threading.Thread(target=owner.guard.resolve_ended, name="runtime-callbacks", daemon=True).start()
