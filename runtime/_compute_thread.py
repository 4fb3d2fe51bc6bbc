"""``ComputeThread``: VM 0's handle on worker VM *i*, with pocketpy's API and a FIFO of futures.

A thin façade: it checks arguments, builds jobs (``_jobs``) and hands them to its manager
(``_manager``, which has the diagram of a job's whole trip); the registry (``_registry``) records that
it owns index *i*. The pocketpy calls (``submit_*``, ``last_error``, ``last_retval``, ``exec``,
``eval``) need the VM to be idle: they raise ``OSError("thread is not done yet")`` while any job runs or
waits. ``submit()``/``call()`` queue behind whatever runs and never touch ``last_error``/``last_retval``.
"""

from __future__ import annotations

import functools
import math
import numbers
import weakref
from concurrent.futures import Future
from types import TracebackType
from typing import Any

from . import _registry
from ._errors import JobCancelledError, JobError, VMClosedError, VMDiedError
from ._guard import Guard, close_collected
from ._jobs import FifoQueue, Job, JobKind, call_job, resolve_future, source_job
from ._launcher import LAUNCHER
from ._manager import Manager
from ._protocol import Eval, Exec
from ._reaper import REAPER
from ._waiting import check_idle, ensure_pump, wait_until

MAX_VM_INDEX = _registry.MAX_VM_INDEX


class ComputeThread:
    """Owns worker VM ``vm_index`` (1..15): a separate Python process that runs jobs in parallel.

    pocketpy-compatible: ``exec``/``eval`` block, ``submit_exec``/``submit_eval``/``submit_call`` return
    at once, ``is_done`` tells when the job has finished, ``last_error()``/``last_retval()`` give its
    outcome. Added for games: ``wait_for_done(timeout)``, ``progress``, ``cancel()``, ``submit()``
    (a ``concurrent.futures.Future``), ``call()``, ``close()`` and crash isolation.

    The VM's ``__main__`` namespace persists between jobs. If the VM dies (a crash, ``exit()``,
    a kill, ``cancel()``), the job ends with an error and the next job starts a fresh VM, whose
    namespace is empty again: pass ``setup`` source (imports, definitions) to have it run in every
    fresh VM, the first and each replacement.
    """

    def __init__(self, vm_index: int, *, setup: str | None = None) -> None:
        if type(vm_index) is not int:
            raise TypeError(f"vm_index must be an int in 1..{MAX_VM_INDEX}, got {type(vm_index).__name__}")
        if not 1 <= vm_index <= MAX_VM_INDEX:
            raise ValueError(f"vm_index {vm_index} is out of range: it must be an int in 1..{MAX_VM_INDEX}")
        if setup is not None:
            # A syntax error shows up here, at once, rather than as the first job's failure.
            compile(_check_source(setup, "setup"), "<setup>", "exec")
        self._queue = FifoQueue()
        manager = Manager(
            vm_index, f"ComputeThread({vm_index})", setup, Guard(resolve_future), self._queue, owns_queue=True
        )
        _registry.claim([vm_index], manager, "ComputeThread")
        self._manager = manager
        # Garbage collection closes the VM too, in the reaper thread: the collector may run in any
        # thread, in the middle of a frame or of this runtime's own code, holding any lock. At exit,
        # ``close_all`` closes what is left and waits.
        REAPER.start()
        self._finalizer = weakref.finalize(
            self, _registry.collected, manager, functools.partial(close_collected, manager)
        )
        self._finalizer.atexit = False
        try:
            with manager.guard:
                manager.proc = LAUNCHER.launch(vm_index, setup)  # warm the VM now; this does not block
        except BaseException:
            self.close()
            raise

    # -- pocketpy's API ------------------------------------------------------------------------------

    @property
    def is_done(self) -> bool:
        """True when no job is running or queued. Costs microseconds and never blocks: poll it each frame."""
        manager = self._manager
        if not manager.guard.try_enter():
            return manager.idle  # another thread is servicing the VM right now
        try:
            manager.service()
            return manager.idle
        finally:
            manager.guard.__exit__()

    def wait_for_done(self, timeout: float | None = None) -> bool:
        """Block until no job is running or queued, at most ``timeout`` seconds; return ``is_done``.

        Sleeps in the kernel after a spin of at most ~50 us, so a long wait costs no CPU.
        """
        manager = self._manager
        return wait_until(manager, lambda: manager.idle, _seconds(timeout))

    def last_error(self) -> str | None:
        """The formatted traceback (str) of the last ``submit_*`` job's failure, or None if it succeeded."""
        with self._manager.guard:
            check_idle(self._manager)
            return self._manager.last.error_text

    def last_retval(self) -> Any:
        """The last ``submit_*`` job's return value, unpickled in VM 0 (the same object on each call).

        Raises ``ValueError("no retval available")`` before any job and after a failed one. Numpy
        arrays arrive as writable views of shared memory, without a copy.
        """
        manager = self._manager
        with manager.guard:
            check_idle(manager)
            return manager.last.value()

    def submit_exec(self, source: str) -> None:
        """Run ``source`` (statements) in the VM's ``__main__``; returns at once; the retval is None."""
        self._submit_pocketpy(Exec, source)

    def submit_eval(self, source: str) -> None:
        """Evaluate ``source`` (an expression) in the VM's ``__main__``; returns at once."""
        self._submit_pocketpy(Eval, source)

    def submit_call(self, eval_src: str | Any, *args: Any, **kwargs: Any) -> None:
        """Call ``eval_src`` (evaluated in the VM to a callable, or a callable) with the arguments.

        Returns at once. The arguments are pickled now (cloudpickle when plain pickle cannot: lambdas,
        closures, functions of your main script); one that cannot be pickled raises here and nothing starts.
        """
        manager = self._manager
        with manager.guard:
            _check_open(manager)
            check_idle(manager)
            self._enqueue(_call_job("pocketpy", eval_src, args, kwargs))

    def exec(self, source: str) -> None:
        """Run ``source`` in the VM's ``__main__`` and wait; raises ``RuntimeError`` with the VM's traceback.

        Does not change ``last_error()``/``last_retval()`` (as in pocketpy).
        """
        self._blocking(Exec, source)

    def eval(self, source: str) -> Any:
        """Evaluate ``source`` in the VM's ``__main__`` and return its value (unpickled in VM 0)."""
        return self._blocking(Eval, source)

    # -- what games need besides ----------------------------------------------------------------------

    def submit(self, fn_or_eval_src: str | Any, /, *args: Any, **kwargs: Any) -> Future[Any]:
        """Queue a call (as ``submit_call``) and return a ``concurrent.futures.Future`` for its value.

        Jobs run one at a time in FIFO order. ``future.result()`` re-raises the VM's exception with its
        own type (a ``JobError`` if it cannot be pickled), the VM's traceback attached as ``__cause__``.
        ``future.cancel()`` works while the job waits; a running job goes on until ``cancel()`` (of this
        ComputeThread) stops it. ``asyncio.wrap_future(future)`` works. While
        futures are pending, ``is_done`` is False and the pocketpy calls raise ``OSError``.

        As with ``concurrent.futures``, a done-callback runs in the thread that completes the future:
        this ComputeThread's pump thread, yours if it was reading the VM at that moment (``is_done``,
        ``wait_for_done``, ``call``, ``close``), or a thread of its own when the garbage collector closed
        the ComputeThread. It runs with no lock held, so it may submit more jobs anywhere.
        """
        manager = self._manager
        with manager.guard:
            _check_open(manager)
            job = _call_job("future", fn_or_eval_src, args, kwargs)
            self._enqueue(job)
            ensure_pump(manager)
        assert job.future is not None
        return job.future

    def call(self, fn_or_eval_src: str | Any, /, *args: Any, **kwargs: Any) -> Any:
        """Queue a call and wait for its value: ``submit(...).result()``, driven by the calling thread."""
        manager = self._manager
        with manager.guard:
            _check_open(manager)
            job = _call_job("future", fn_or_eval_src, args, kwargs)
            self._enqueue(job)
        wait_until(manager, lambda: job.done, None)
        assert job.future is not None
        return job.future.result()

    @property
    def progress(self) -> tuple[float, str]:
        """``(fraction, message)`` last reported by the running job via ``report_progress``; never blocks."""
        manager = self._manager
        if manager.guard.try_enter():
            try:
                manager.service()
            finally:
                manager.guard.__exit__()
        return manager.progress

    def cancel(self) -> bool:
        """Stop the running job at once, even one stuck in C code; return whether a job was running.

        The VM is killed and replaced on the next job (a fresh namespace; ``setup`` runs again). The job
        ends with ``JobCancelledError``; ``last_error()`` says it was cancelled. Queued jobs still run.
        """
        return self._manager.cancel()

    def close(self) -> None:
        """Stop the VM (within 1 s, even mid-job) and free ``vm_index``. Idempotent.

        Jobs still running or queued end with ``VMClosedError``.
        """
        if self._finalizer.detach() is not None:
            _registry.release(self._manager)  # the index is free at once; the VM exits meanwhile
            self._manager.close()

    def __enter__(self) -> ComputeThread:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    @property
    def vm_index(self) -> int:
        """The index of the VM this ComputeThread owns (1..15)."""
        return self._manager.vm_index

    @property
    def pid(self) -> int | None:
        """The process id of the current VM, or None when none runs (closed, died and not yet replaced,
        or not started by the template within 5 s)."""
        proc = self._manager.proc
        if proc is None:
            return None
        pid = proc.wait_pid(5.0)
        return None if pid < 0 else pid  # -1: the template died before it could start this VM

    @property
    def closed(self) -> bool:
        """Whether ``close()`` has run."""
        return self._manager.closed

    @property
    def last_job_seconds(self) -> float | None:
        """How long the last finished job took, as seen from VM 0, or None before the first one.

        The first job of a fresh VM includes the VM's start and its ``setup``.
        """
        return self._manager.last_job_seconds

    def __repr__(self) -> str:
        manager = self._manager
        state = "closed" if manager.closed else "idle" if manager.idle else "busy"
        return f"<ComputeThread vm_index={manager.vm_index} {state}>"

    # -- helpers -------------------------------------------------------------------------------------

    def _enqueue(self, job: Job) -> None:
        """Queue ``job`` (the caller holds the guard) and start it if the VM is free."""
        self._queue.append(job)
        self._manager.dispatch()

    def _submit_pocketpy(self, record: type[Exec | Eval], source: str) -> None:
        manager = self._manager
        with manager.guard:
            _check_open(manager)
            check_idle(manager)
            self._enqueue(source_job("pocketpy", record, _check_source(source)))

    def _blocking(self, record: type[Exec | Eval], source: str) -> Any:
        manager = self._manager
        op = "exec" if record is Exec else "eval"
        with manager.guard:
            _check_open(manager)
            check_idle(manager)
            job = source_job("blocking", record, _check_source(source))
            self._enqueue(job)
        try:
            wait_until(manager, lambda: job.done, None)
        except BaseException:
            # Interrupted (Ctrl+C): nobody will take the value, so let its segment go when it comes.
            with manager.guard:
                job.abandoned = True
                if job.result is not None:
                    job.result.discard()
            raise
        if job.error is not None:
            if isinstance(job.error, VMDiedError | VMClosedError | JobCancelledError):
                raise job.error
            raise JobError(f"{op}() failed in VM {manager.vm_index}:\n{job.error_text}")
        assert job.result is not None
        return job.result.decode()


def _call_job(kind: JobKind, target: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Job:
    return call_job(kind, target, args, kwargs, Future() if kind == "future" else None)


def _check_open(manager: Manager) -> None:
    if manager.closed:
        raise VMClosedError(f"{manager.name} is closed")


def _seconds(timeout: object) -> float | None:
    """``timeout`` checked, as seconds; None (wait as long as it takes) for None and for infinity."""
    if timeout is None:
        return None
    if isinstance(timeout, bool) or not isinstance(timeout, numbers.Real):
        raise TypeError(f"timeout must be None or a number of seconds, got {type(timeout).__name__}")
    try:
        seconds = float(timeout)
    except OverflowError:
        seconds = math.inf  # an int too big for a float: a wait longer than any game runs
    if not seconds >= 0:  # NaN too
        raise ValueError(f"timeout must be None or >= 0, got {timeout!r}")
    return None if seconds == math.inf else seconds


def _check_source(source: object, what: str = "source") -> str:
    if not isinstance(source, str):
        raise TypeError(f"{what} must be a str, got {type(source).__name__}")
    return source
