"""How VM 0 waits on one ComputeThread's VM: in the caller's thread, or in a pump thread for futures.

``wait_until`` services the VM (reads what it said, ends jobs, sends the next) until a condition holds,
spinning ~50 us before it sleeps in the kernel; the pump thread does the same while futures are pending,
so they resolve with nobody polling. (A pool has a pump of its own, in ``_pool_core``.)
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from ._manager import PUMP_INTERVAL, Manager


def wait_until(manager: Manager, done: Callable[[], bool], timeout: float | None) -> bool:
    """Service the VM until ``done()`` is true or ``timeout`` passes; return ``done()``."""
    deadline = None if timeout is None else time.monotonic() + timeout
    spin = True
    while True:
        with manager.guard:
            manager.service()
            finished = done()
            proc = manager.proc
        if finished:
            return True
        remaining = None if deadline is None else deadline - time.monotonic()
        if remaining is not None and remaining <= 0:
            return False
        if proc is None:
            return bool(done())
        # Short slices: another thread may replace the VM meanwhile; then look again.
        proc.wait(PUMP_INTERVAL if remaining is None else min(remaining, PUMP_INTERVAL), spin=spin)
        spin = False


def check_idle(manager: Manager) -> None:
    """Raise pocketpy's ``OSError`` if a job runs or waits: the pocketpy calls need an idle VM."""
    if manager.idle:
        return  # (what the VM said meanwhile, a release or its exit, is read by the next look)
    manager.service()
    if not manager.idle:
        error = OSError("thread is not done yet")  # pocketpy's words, kept exactly
        error.add_note(
            f"runtime: ComputeThread({manager.vm_index}) has a job running or queued (futures count "
            "too); poll is_done or call wait_for_done() first"
        )
        raise error


def ensure_pump(manager: Manager) -> None:
    """Start the pump thread if it is not running: it services the VM while futures are pending."""
    if manager.pump is None or not manager.pump.is_alive():
        manager.pump = threading.Thread(
            target=_pump, args=(manager,), name=f"ComputeThread({manager.vm_index}) pump", daemon=True
        )
        manager.pump.start()


def _pump(manager: Manager) -> None:
    """Service the VM while futures are pending, so they resolve without anyone polling."""
    while True:
        with manager.guard:
            manager.service()
            if manager.closed or not _has_futures(manager):
                manager.pump = None
                return
            proc = manager.proc
        if proc is not None:
            proc.wait(PUMP_INTERVAL, spin=False)


def _has_futures(manager: Manager) -> bool:
    return any(job.future is not None for job in manager.inflight) or any(
        job.future is not None for job in manager.queue
    )
