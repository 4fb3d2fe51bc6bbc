"""``ComputePool``: many jobs over VMs 1..N, by priority, as a ``concurrent.futures.Executor``.

The pool owns several VM indices. Each VM has a manager (``_manager``, the same as a ComputeThread's);
they share one guard and take their jobs from one priority queue (``_priority_queue``)::

    submit(fn, *args, priority=, key=) ──▶ PriorityQueue ──▶ Manager(VM 1) ──Call──▶ VM 1
                                                        └──▶ Manager(VM 2) ──Call──▶ VM 2
    intake(budget_ms) / future.result() ◀── finished jobs ◀── Ok | Err (read by the pump thread or intake)

Each manager keeps a few jobs in flight (``window``): one runs, the next already waits in the VM's socket,
so a VM never idles between two jobs. How many: enough to cover ~2 ms of work at the pool's recent job
length (2 for long jobs, up to 64 for tiny ones), so that tiny jobs travel in bursts while long ones stay
in the queue where they can still be re-prioritised or cancelled. A job already sent counts as running
(as in ``ProcessPoolExecutor``): ``future.cancel()`` and ``cancel(key)`` leave it be.
"""

from __future__ import annotations

import functools
import math
import numbers
import os
import sys
import time
import weakref
from collections.abc import Callable, Hashable, Iterable, Sequence
from concurrent.futures import Executor
from typing import Any, cast

from . import _payload, _registry
from ._errors import VMClosedError
from ._guard import close_collected
from ._jobs import Job, QueuePlace, call_job
from ._pool_core import PoolCore
from ._pool_results import MapResults, PoolFuture, PoolStats, VMStats, run_batch
from ._reaper import REAPER

_FLOAT_MAX = sys.float_info.max
SUBMIT_SERVICE_INTERVAL = 0.0005  # seconds between a submit loop's own reads of the replies
_SHUT = "cannot schedule new futures after the ComputePool was shut down or closed"


class ComputePool(Executor):
    """Owns VMs 1..N and runs many jobs over them: by priority, cancellable by key, with futures.

    ``vms``: how many VMs (the lowest free indices), or which indices; default one per core, at most 15.
    ``setup``: source every fresh VM runs first (imports, definitions), as for ``ComputeThread``.
    ``intake``: keep finished jobs for ``intake()``, the frame loop's way to take results (else only
    futures tell). A ``concurrent.futures.Executor``: ``submit``, ``map``, ``shutdown``, ``with``.
    """

    def __init__(
        self, vms: int | Iterable[int] | None = None, *, setup: str | None = None, intake: bool = False
    ) -> None:
        indices = _indices(vms)
        if setup is not None:
            if not isinstance(setup, str):
                raise TypeError(f"setup must be a str, got {type(setup).__name__}")
            compile(setup, "<setup>", "exec")  # a syntax error shows here, not in the first job
        core = PoolCore(indices, setup, bool(intake), _release_and_close)
        try:
            _registry.claim(indices, core, "ComputePool")
        except BaseException:
            with core.guard:
                core.close_wake_pipe()
            raise
        self._core = core
        self._forget_cancelled = core.forget_cancelled  # one bound method for every future, made once
        REAPER.start()
        self._finalizer = weakref.finalize(
            self, _registry.collected, core, functools.partial(close_collected, core)
        )
        self._finalizer.atexit = False

    # -- submitting -------------------------------------------------------------------------------------

    def submit(  # type: ignore[override]
        self,
        fn: Callable[..., Any] | str,
        /,
        *args: Any,
        priority: float = 0.0,
        key: Hashable | None = None,
        **kwargs: Any,
    ) -> PoolFuture:
        """Queue ``fn(*args, **kwargs)`` (``fn`` a callable, or source naming one in the VM); a future.

        Higher ``priority`` runs first, first in first out within one. ``key`` names the job for
        ``cancel(key)`` and ``reprioritize``. The arguments are pickled now: one that cannot be pickled
        raises here, and nothing is queued.
        """
        if priority.__class__ is not float or priority != priority:  # (a float needs no more checks)
            priority = _priority(priority)
        if key is not None:
            _check_key(key)
        future = PoolFuture(key, priority, self._forget_cancelled)  # (``_job`` written out: once a submit)
        future._job = job = call_job("future", fn, args, kwargs, future)
        job.queue_place = tuple.__new__(QueuePlace, (priority, key))  # (its __new__ is a Python function)
        # ``_enqueue`` for one job, which goes straight to a VM when none is queued (and the guard entered
        # by its methods: a ``with`` binds two methods each time).
        core = self._core
        guard = core.guard
        guard.__enter__()
        try:
            if core.shutting_down:
                job.reclaim()
                raise VMClosedError(_SHUT)
            if time.perf_counter() - core.serviced_at > SUBMIT_SERVICE_INTERVAL:
                core.service()  # (see ``_enqueue``)
            if not core.send_fresh(job):
                core.queue.push(job, priority, key)
                core.dispatch()
            if core.pump is None:
                core.ensure_pump()
        finally:
            guard.__exit__()
        return future

    def _job(
        self,
        fn: Callable[..., Any] | str,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        priority: float,
        key: Hashable | None,
        *,
        internal: bool = False,
    ) -> Job:
        """A job and its future, the arguments pickled now (one that cannot be pickled raises here)."""
        future = PoolFuture(key, priority, self._forget_cancelled, internal=internal)
        job = call_job("future", fn, args, kwargs, future)
        future._job = job
        return job

    def _enqueue(self, jobs: Sequence[Job], priority: float, key: Hashable | None) -> None:
        """Queue ``jobs`` (all or none) and send what the VMs have room for."""
        core = self._core
        with core.guard:
            if core.shutting_down:
                for job in jobs:
                    job.reclaim()
                raise VMClosedError(_SHUT)
            push = core.queue.push
            for job in jobs:
                push(job, priority, key)
            # Read the replies that have come now and then, so that a VM never waits for the pump thread
            # while it waits for the GIL that this thread, submitting in a loop, holds for milliseconds.
            if time.perf_counter() - core.serviced_at > SUBMIT_SERVICE_INTERVAL:
                core.service()
            else:
                core.dispatch()
            if core.pump is None:
                core.ensure_pump()

    def map(
        self,
        fn: Callable[..., Any] | str,
        *iterables: Iterable[Any],
        timeout: float | None = None,
        chunksize: int | None = None,
        priority: float = 0,
    ) -> MapResults:
        """``fn`` over the items, spread over the VMs in batches; results in item order.

        ``chunksize``: items per batch (default: enough batches to keep every VM busy, four per VM). The
        iterator's ``done`` and ``total`` count items, for a loading bar.
        """
        if timeout is not None and (isinstance(timeout, bool) or not isinstance(timeout, int | float)):
            raise TypeError(f"timeout must be None or a number of seconds, got {type(timeout).__name__}")
        if timeout is not None and not timeout >= 0:
            raise ValueError(f"timeout must be None or >= 0, got {timeout!r}")
        items = list(zip(*iterables, strict=False))  # as Executor.map: the shortest iterable ends it
        if chunksize is None:
            chunksize = max(1, math.ceil(len(items) / (4 * len(self._core.managers))))
        elif type(chunksize) is not int or chunksize < 1:
            raise ValueError(f"chunksize must be an int >= 1, got {chunksize!r}")
        priority = _priority(priority)
        batches = [items[i : i + chunksize] for i in range(0, len(items), chunksize)]
        jobs = []
        try:
            for number, batch in enumerate(batches):
                try:
                    jobs.append(self._job(run_batch, (fn, batch), {}, priority, None, internal=True))
                except Exception as exc:
                    _name_the_item(exc, fn, batch, number * chunksize)
                    raise
        except BaseException:
            for job in jobs:  # none was queued: map() is all or nothing
                job.reclaim()
            raise
        self._enqueue(jobs, priority, None)
        futures = [job.future for job in jobs]
        return MapResults(cast(list[PoolFuture], futures), [len(batch) for batch in batches], timeout)

    # -- stale work -------------------------------------------------------------------------------------

    def cancel(self, key: Hashable, *, running: bool = False) -> int:
        """Cancel the queued jobs of ``key`` (their futures read cancelled); return how many jobs it
        stopped or asked to stop. With ``running``, also stop that key's jobs already sent to a VM: one
        that runs is killed (its VM restarts), one waiting behind it is skipped by the VM (if it starts
        meanwhile, it ends as it ends); their futures raise ``JobCancelledError``."""
        core = self._core
        count = 0
        with core.guard:
            taken = core.queue.remove(key)
            if running:
                for manager in core.managers:
                    waiting = [job for job in list(manager.inflight)[1:] if job.queue_place.key == key]
                    core.skip(manager, waiting)
                    count += len(waiting)
                    # Checked after the manager reads the VM's news: the job may have just ended,
                    # and then the one running is another key's.
                    if manager.cancel(only=lambda job: job.queue_place.key == key):
                        count += 1
                taken += core.queue.remove(key)  # given back by the VMs just restarted
        return count + core.cancel_jobs(taken)

    def reprioritize(self, new_priority: Callable[[Any], float | None]) -> int:
        """Call ``new_priority(key)`` for each key of the queued jobs: a number is its jobs' new priority,
        None cancels them. About a microsecond per job. Return how many were cancelled."""
        core = self._core

        def checked(key: Any) -> float | None:
            priority = new_priority(key)
            return None if priority is None else _priority(priority)

        with core.guard:
            taken = core.queue.reprioritize(checked)
        return core.cancel_jobs(taken)

    # -- results ----------------------------------------------------------------------------------------

    def intake(self, budget_ms: float | None = None) -> list[PoolFuture]:
        """The futures finished since the last call, their values decoded here; never blocks.

        With ``budget_ms``, stops decoding once that much time has passed (at least one is taken); the
        rest come with the next call. Needs ``ComputePool(..., intake=True)``.
        """
        core = self._core
        if not core.keep_finished:
            raise ValueError("intake() needs a pool made with ComputePool(..., intake=True)")
        if budget_ms is not None:
            if isinstance(budget_ms, bool) or not isinstance(budget_ms, int | float):
                raise TypeError(
                    f"budget_ms must be None or a number of milliseconds, got {type(budget_ms).__name__}"
                )
            if not budget_ms >= 0:
                raise ValueError(f"budget_ms must be None or >= 0, got {budget_ms!r}")
        if core.guard.try_enter():
            try:
                core.service()
            finally:
                core.guard.__exit__()
        deadline = None if budget_ms is None else time.perf_counter() + budget_ms / 1000
        taken = []
        while core.finished:
            future = core.finished.popleft()
            if not future.cancelled():
                future.exception()  # decodes it now, within the budget (a failure to decode fails it)
            taken.append(future)
            if deadline is not None and time.perf_counter() >= deadline:
                break
        return taken

    def stats(self) -> PoolStats:
        """Queue length, jobs in flight and done, jobs per second (last second) and each VM's state."""
        core = self._core
        with core.guard:
            now = time.perf_counter()
            vms = tuple(
                VMStats(
                    m.vm_index,
                    bool(m.inflight),
                    m.jobs_done,
                    m.busy_seconds + (now - m.busy_since if m.inflight else 0.0),  # (the stretch so far too)
                )
                for m in core.managers
            )
            rate = sum(ended for t, ended in core.recent if t >= now - 1.0)
            return PoolStats(
                len(core.queue),
                sum(len(m.inflight) for m in core.managers),
                sum(v.jobs_done for v in vms),
                rate,
                vms,
            )

    @property
    def vm_indices(self) -> tuple[int, ...]:
        return tuple(manager.vm_index for manager in self._core.managers)

    @property
    def closed(self) -> bool:
        return self._core.closed

    # -- ending -----------------------------------------------------------------------------------------

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        """Take no new jobs; with ``cancel_futures``, cancel the queued ones. With ``wait``, return once
        every job has ended and the VMs are stopped; else they stop by themselves when the work is done."""
        core = self._core
        with core.guard:
            core.shutting_down = True
            taken = core.queue.take_all() if cancel_futures else []
            idle = not core.busy()
        core.cancel_jobs(taken)
        if wait:
            core.wait_idle()
            self.close()
        elif idle:
            self.close()
        else:
            with core.guard.lock:  # (the pump may close the pool, and its wake pipe, at any moment)
                if not core.closed:
                    core.ensure_pump()  # it closes the pool after the last job
                    core.wake()

    def close(self) -> None:
        """Stop every VM now (within ~1 s); running and queued jobs end with ``VMClosedError``. Idempotent."""
        if self._finalizer.detach() is not None:
            _registry.release(self._core)
            self._core.close()

    def __repr__(self) -> str:
        core = self._core
        state = "closed" if core.closed else f"{len(core.queue)} queued"
        return f"<ComputePool vms={list(self.vm_indices)} {state}>"


def _indices(vms: object) -> list[int]:
    """The VM indices ``vms`` asks for, checked (the lowest free ones for a count)."""
    top = _registry.MAX_VM_INDEX
    rule = f"vms must be an int in 1..{top} or an iterable of VM indices in 1..{top}"
    if vms is None:
        vms = max(1, min(_cores(), top))
    if isinstance(vms, bool | str):
        raise TypeError(f"{rule}, got {type(vms).__name__}")
    if isinstance(vms, int):
        if not 1 <= vms <= top:
            raise ValueError(f"{rule}, got {vms}")
        free = _registry.free_indices()
        if len(free) < vms:
            raise ValueError(f"vms={vms} asks for more VMs than are free ({len(free)}: {free})")
        return free[:vms]
    if not isinstance(vms, Iterable):
        raise TypeError(f"{rule}, got {type(vms).__name__}")
    indices = list(vms)
    if not indices:
        raise ValueError(f"{rule}, got an empty {type(vms).__name__}")
    for index in indices:
        if type(index) is not int or not 1 <= index <= top:
            raise ValueError(f"{rule}, got {index!r} among them")
        if indices.count(index) > 1:
            raise ValueError(f"vms lists VM index {index} twice")
    return indices


def _priority(priority: object) -> float:
    if priority.__class__ is float and priority == priority:  # not NaN (the usual cases first)
        return priority
    if priority.__class__ is int and -_FLOAT_MAX <= priority <= _FLOAT_MAX:
        return float(priority)
    if isinstance(priority, bool) or not isinstance(priority, numbers.Real):
        raise TypeError(f"priority must be a number (higher runs first), got {type(priority).__name__}")
    try:
        value = float(priority)
    except OverflowError:
        raise ValueError(
            f"priority must be a number (higher runs first) that fits a float, got {priority!r:.40}"
        ) from None
    if math.isnan(value):
        raise ValueError("priority must be a number (higher runs first), got nan")
    return value


def _check_key(key: object) -> None:
    try:
        hash(key)
    except TypeError:
        raise TypeError(
            f"key must be hashable (it finds the job for cancel() and reprioritize()), "
            f"got {type(key).__name__}"
        ) from None


def _name_the_item(error: Exception, fn: object, batch: list[tuple[Any, ...]], first: int) -> None:
    """Say which item of a map() could not be pickled, rather than the batch it travels in."""
    for offset, item in enumerate(batch):
        try:
            _payload.dumps(item)
        except Exception:
            error.__notes__ = [
                f"runtime: item {first + offset} of map() ({_describe(item)}) cannot be pickled, "
                "so no item was started"
            ]
            return
    try:
        _payload.dumps(fn)
    except Exception:
        error.__notes__ = ["runtime: the function given to map() cannot be pickled, so no item was started"]


def _describe(item: tuple[Any, ...]) -> str:
    return ", ".join(type(value).__name__ for value in item) or "no arguments"


def _cores() -> int:
    """The cores this process may run on (fewer than the machine's under taskset or a container's cpuset)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def _release_and_close(core: PoolCore) -> None:
    """A pool shut down with ``wait=False`` has finished its last job: free its indices, stop its VMs."""
    _registry.release(core)
    core.close()
