"""Isolated worker VMs for games: a CPython take on pocketpy's ``pkpy.ComputeThread``.

VM 0 is your program. ``ComputeThread(i)`` owns VM *i* (1..15): a separate, fresh Python process that
runs jobs in parallel with VM 0, in its own ``__main__`` namespace. Arguments and results cross by pickle
(big numpy arrays copied once, by the sender, into shared memory that the receiver maps; memory from
``shared_buffer`` crosses with no copy at all, as a reference). A crash, an ``exit()`` or a runaway job
in a VM ends that job with an error; VM 0 carries on and the next job gets a fresh VM::

    VM 0 (your game loop)                          VM 1 (worker process)
    t.submit_call("gen", seed) ──pickled args──▶   gen(seed) runs; report_progress(0.5, "terrain")
    each frame: t.is_done? t.progress  ◀──────────  progress (coalesced, ~60/s)
    t.last_retval()            ◀──pickled value──  the return value (big buffers: shared memory)

``ComputePool(vms)`` runs many jobs over several VMs (a ``concurrent.futures.Executor``): by priority,
cancellable by key, with an ``intake(budget_ms)`` for the frame loop. ``_manager`` draws a job's whole
trip; ``_protocol`` lists every message.

The public API: ``ComputeThread``, ``ComputePool`` (and what it returns: ``PoolFuture``,
``MapResults``, ``PoolStats``, ``VMStats``), ``currentvm``, ``report_progress``, ``shared_buffer``,
``is_shared``, ``configure``, ``shutdown`` and the error classes. This package depends on the standard
library and cloudpickle only.
"""

import collections.abc as _abc
import importlib as _importlib
import typing as _typing

if _typing.TYPE_CHECKING:
    from ._compute_thread import ComputeThread
    from ._context import currentvm, report_progress
    from ._errors import (
        ComputeThreadError,
        JobCancelledError,
        JobError,
        RemoteTraceback,
        VMClosedError,
        VMDiedError,
    )
    from ._pool import ComputePool
    from ._pool_results import MapResults, PoolFuture, PoolStats, VMStats
    from ._shared import is_shared, shared_buffer

# Where each public name lives. They are imported on first use (PEP 562), so that a process that needs
# only part of the runtime imports only that part: the template that forks VMs imports just the worker's
# modules, and starts tens of milliseconds sooner than it would with the pool and the managers.
_HOMES = {
    "ComputePool": "_pool",
    "ComputeThread": "_compute_thread",
    "ComputeThreadError": "_errors",
    "JobCancelledError": "_errors",
    "JobError": "_errors",
    "MapResults": "_pool_results",
    "PoolFuture": "_pool_results",
    "PoolStats": "_pool_results",
    "RemoteTraceback": "_errors",
    "VMClosedError": "_errors",
    "VMDiedError": "_errors",
    "VMStats": "_pool_results",
    "currentvm": "_context",
    "is_shared": "_shared",
    "report_progress": "_context",
    "shared_buffer": "_shared",
}

__all__ = [
    "ComputePool",
    "ComputeThread",
    "ComputeThreadError",
    "JobCancelledError",
    "JobError",
    "MapResults",
    "PoolFuture",
    "PoolStats",
    "RemoteTraceback",
    "VMClosedError",
    "VMDiedError",
    "VMStats",
    "configure",
    "currentvm",
    "is_shared",
    "report_progress",
    "shared_buffer",
    "shutdown",
]


def configure(
    *,
    preload: _abc.Iterable[str] | None = None,
    start_method: str | None = None,
    nice: int | str | None = None,
) -> None:
    """Set how VMs start. ``preload`` and ``start_method`` must be set before the first ``ComputeThread``
    (or after ``shutdown()``); ``nice`` applies to every VM started after the call.

    ``preload``: module names imported once in the template process that forks the VMs, so that every
    VM starts with them imported (each VM still has its own copy of their state), e.g.
    ``configure(preload=["numpy", "worldgen"])``; they are in ``sys.modules``, and a job still imports
    them to bind a name. ``start_method``: ``"template"`` (fork from a clean
    template process; the default on Linux) or ``"spawn"`` (a fresh interpreter per VM; the default
    elsewhere). ``nice``: how much lower than VM 0's the VMs' CPU priority is (an ``os.nice`` increment,
    0..19, default 10), so that when VM 0 and busy VMs share a core, the game's frame wins it; 0 keeps
    them equal. ``nice="idle"`` (Linux: ``SCHED_IDLE``) goes further: the VMs run only on CPU time that
    no ordinary process wants, so VM 0 never waits for a VM's time slice (a nice VM can hold a core
    for a few ms); the price is that any other busy program on the machine slows the VMs down a lot.
    """
    from ._launcher import LAUNCHER

    LAUNCHER.configure(preload, start_method, nice)


def shutdown() -> None:
    """Close every ComputeThread and stop the template process; VMs start afresh on next use."""
    from ._launcher import LAUNCHER
    from ._payload import POOL
    from ._reaper import REAPER
    from ._registry import close_all

    close_all()
    REAPER.drain(2.0)
    LAUNCHER.shutdown()
    POOL.trim()


if not _typing.TYPE_CHECKING:  # (type checkers see the imports above, and report a misspelt name)

    def __getattr__(name: str) -> _typing.Any:
        home = _HOMES.get(name)
        if home is None:
            raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
        value = getattr(_importlib.import_module(f".{home}", __name__), name)
        globals()[name] = value  # found directly from now on
        return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
