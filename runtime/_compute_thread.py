"""``ComputeThread``: VM 0's handle on worker VM *i*, with pocketpy's API and a job queue.

Every job is a ``_Job``; one runs at a time in the VM, the rest wait in a FIFO queue::

    submit_call / exec / submit / call          (VM 0, the caller's thread)
        │ args pickled now; an unpicklable argument raises here and starts nothing
        ▼
    queue ──▶ running job ──("call", seq, ...)──▶ VM i ──▶ ("ok" | "err", seq, ...)
                  ▲                                             │
                  └── _service(): reads replies, progress and end-of-file without blocking;
                      run by whoever looks (is_done, wait_for_done, a blocking call) and, while
                      futures are pending, by a pump thread so that they resolve on their own.

The pocketpy calls (``submit_*``, ``last_error``, ``last_retval``, ``exec``, ``eval``) need the VM to be
idle: they raise ``OSError("thread is not done yet")`` while any job runs or waits. ``submit()``/``call()``
queue behind whatever runs and never touch ``last_error``/``last_retval``.
"""

from __future__ import annotations

import atexit
import functools
import logging
import math
import numbers
import os
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future
from types import TracebackType
from typing import Any, Literal

from . import _launcher, _payload
from ._errors import JobCancelledError, JobError, RemoteTraceback, VMClosedError, VMDiedError
from ._launcher import LAUNCHER, REAPER, VMProcess, describe_exit

MAX_VM_INDEX = 15
CLOSE_TIMEOUT = 1.0
_PUMP_INTERVAL = 0.05

_registry_lock = threading.RLock()
_owners: dict[int, _Core] = {}

JobKind = Literal["slot", "blocking", "future"]


class _Value:
    """A value received from the VM and not decoded yet: its payload, descriptors, and release hook."""

    __slots__ = ("fds", "payload", "release_to")

    def __init__(
        self, payload: _payload.Payload, fds: list[int], release_to: Callable[[int], object]
    ) -> None:
        self.payload = payload
        self.fds = fds
        self.release_to = release_to

    def decode(self) -> Any:
        fds, self.fds = self.fds, []
        return _payload.decode(self.payload, iter(fds), self.release_to)

    def discard(self) -> None:
        fds, self.fds = self.fds, []
        if fds:
            _payload.discard(self.payload, iter(fds), self.release_to)


class _Job:
    """One unit of work for the VM, and, once it ends, its outcome."""

    __slots__ = (
        "abandoned",
        "done",
        "error",
        "error_text",
        "exit_note",
        "fds",
        "future",
        "kind",
        "message",
        "result",
        "segments",
        "seq",
    )

    def __init__(self, kind: JobKind, message: list[Any], future: Future[Any] | None = None) -> None:
        self.kind = kind
        self.message = message  # ["exec" | "eval" | "call", seq (set when it starts), ...]
        self.future = future
        self.fds: list[int] = []  # descriptors of the arguments' segments, to send
        self.segments: list[int] = []  # their ids in VM 0's segment pool
        self.seq = 0
        self.done = False
        self.abandoned = False  # a blocking caller stopped waiting for it
        self.result: _Value | None = None  # the return value, still encoded
        self.error: BaseException | None = None  # what to raise in VM 0
        self.error_text: str | None = None  # what last_error() says
        self.exit_note: str | None = None  # why the VM is exiting, if it said so before it died

    def attach(self, encoded: _payload.Encoded) -> None:
        """Send ``encoded``'s segment, if it has one, with this job's message."""
        if encoded.fd is not None:
            self.fds.append(encoded.fd)
            self.segments.append(encoded.payload[1])


class _Core:
    """All state of one ComputeThread; it holds no reference to the ComputeThread, so GC can close it."""

    def __init__(self, vm_index: int, setup: str | None) -> None:
        self.vm_index = vm_index
        self.setup = setup
        self.lock = threading.RLock()
        self._depth = 0  # how deeply the owning thread holds ``lock`` through ``with core:``
        # Future jobs that have ended, resolved once the lock is released: a done-callback may then
        # submit to another ComputeThread (or this one) without two locks being held in reverse order.
        self.ended: deque[_Job] = deque()
        self.proc: VMProcess | None = None
        self.current: _Job | None = None
        self.queue: deque[_Job] = deque()
        self.closed = False
        # Set as close() begins, before it kills a busy VM without the lock: whoever then sees that VM
        # exit ends the job as closed (not died), and no queued job starts on a new VM meanwhile.
        self.closing = False
        self.seq = 0
        self.last_error: str | None = None
        self.retval_value: _Value | None = None  # the last slot job's value, until decoded
        self.retval: tuple[Any] | None = None  # the decoded value, once last_retval() has run
        self.retval_error: BaseException | None = None  # why it could not be decoded, if it could not
        self.progress: tuple[float, str] = (0.0, "")
        self.pump: threading.Thread | None = None
        self.started_at = 0.0
        self.last_job_seconds: float | None = None

    # -- locking ---------------------------------------------------------------------------------

    def __enter__(self) -> _Core:
        self.lock.acquire()
        self._depth += 1
        return self

    def try_enter(self) -> bool:
        """``__enter__`` if no other thread holds the lock; return whether it did."""
        if not self.lock.acquire(blocking=False):
            return False
        self._depth += 1
        return True

    def __exit__(self, *exc_info: object) -> None:
        self._depth -= 1
        outermost = self._depth == 0
        self.lock.release()
        if outermost and self.ended:
            self.resolve_ended()

    def resolve_ended(self) -> None:
        """Resolve the futures of ended jobs; called without the lock (callbacks run here)."""
        while True:
            try:
                job = self.ended.popleft()
            except IndexError:
                return
            try:
                _resolve(job)
            except Exception:  # a bug of ours must not strand the futures behind it
                logging.getLogger(__name__).exception("runtime: could not resolve a future")

    # -- state ---------------------------------------------------------------------------------

    @property
    def idle(self) -> bool:
        return self.current is None and not self.queue

    def check_open(self) -> None:
        if self.closed:
            raise VMClosedError(f"ComputeThread({self.vm_index}) is closed")

    def check_idle(self) -> None:
        self.service()
        if not self.idle:
            error = OSError("thread is not done yet")  # pocketpy's words, kept exactly
            error.add_note(
                f"runtime: ComputeThread({self.vm_index}) has a job running or queued (futures count "
                "too); poll is_done or call wait_for_done() first"
            )
            raise error

    # -- starting jobs -------------------------------------------------------------------------

    def enqueue(self, job: _Job) -> None:
        self.queue.append(job)
        if self.current is None:
            self.dispatch()

    def dispatch(self) -> None:
        """Start the next queued job, if the VM is free."""
        while self.current is None and self.queue and not self.closing:
            job = self.queue[0]
            if job.future is not None and not job.future.set_running_or_notify_cancel():
                self.queue.popleft()
                _reclaim(job)
                continue  # cancelled while it waited
            self.seq += 1
            job.seq = job.message[1] = self.seq
            if job.kind == "slot":
                self.clear_retval()
            self.progress = (0.0, "")
            # Current before it leaves the queue: a lock-free ``is_done`` never sees a gap.
            self.current = job
            self.queue.popleft()
            self.started_at = time.perf_counter()
            try:
                self.send(job)
            except BaseException as exc:
                # No VM could be started or reached: the job fails, the next one may have more luck.
                self.current = None
                job.done = True
                _reclaim(job)
                if job.future is None:
                    raise
                job.error = exc
                self.ended.append(job)

    def send(self, job: _Job) -> None:
        message = tuple(job.message)
        for attempt in (1, 2):
            if self.proc is None:
                self.proc = LAUNCHER.launch(self.vm_index, self.setup)
            try:
                self.flush_releases()
                self.proc.channel.send(message, job.fds)
            except OSError:
                # The VM died while idle (nobody was watching): replace it and send again.
                self.drop_proc(kill=True)
                if attempt == 2:
                    raise
            else:
                # The VM has the segments now; they come back when it says so, or when it ends.
                self.proc.outstanding.update(job.segments)
                job.segments = []
                return

    def clear_retval(self) -> None:
        self.last_error = None
        self.retval = None
        self.retval_error = None
        if self.retval_value is not None:
            self.retval_value.discard()
            self.retval_value = None

    def flush_releases(self) -> None:
        """Hand back the VM's segments that VM 0 no longer maps (never blocks: retried next time)."""
        proc = self.proc
        if proc is None or not proc.releases:
            return
        ids = []
        while proc.releases:
            ids.append(proc.releases.popleft())
        try:
            sent = proc.channel.try_send(("release", ids))
        except OSError:
            return  # the VM is gone, and its segments with it
        if not sent:
            proc.releases.extend(ids)

    def drop_proc(self, *, kill: bool) -> None:
        proc, self.proc = self.proc, None
        if proc is not None:
            REAPER.adopt(proc, kill=kill)

    # -- reading what the VM says ----------------------------------------------------------------

    def service(self) -> None:
        """Handle every message, end-of-file and exit that has arrived, without blocking."""
        while True:
            proc = self.proc
            if proc is None:
                return
            if proc.releases and not proc.eof:
                self.flush_releases()
            if not proc.ready():
                return
            if not proc.eof:
                try:
                    received = proc.channel.recv_nowait()
                except (EOFError, OSError):
                    proc.eof = True
                    continue
                if received is not None:
                    message, fds = received
                    self.on_message(proc, message, _Value(message[2], fds, proc.releases.append))
                    continue
            # Nothing (complete) to read: the VM may have ended. Its messages were read first; a
            # process the job forked may hold the channel open, so the exit code decides.
            code = proc.poll_exit()
            if code is None:
                return
            self.on_exit(code)

    def on_message(self, proc: VMProcess, message: tuple[Any, ...], value: _Value) -> None:
        """Handle one message; ``value`` wraps its third field and the descriptors that came with it."""
        kind, seq = message[0], message[1]
        if kind == "release":
            for segment in message[2]:
                if segment in proc.outstanding:  # only what was sent to this VM, once
                    proc.outstanding.discard(segment)
                    _payload.POOL.release(segment)
            return
        job = self.current
        if job is None or seq != job.seq:
            if kind in ("ok", "err") and value.payload is not None:
                value.discard()  # the reply of a job that ended otherwise meanwhile
            return
        if kind == "progress":
            self.progress = (message[2], message[3])
        elif kind == "exiting":
            job.exit_note = message[2]
        elif kind == "ok":
            job.result = value
            self.finish(job)
        elif kind == "err":
            job.error_text = message[3]
            job.error = _rebuild_exception(value, message[3])
            if message[4:] == ("retire",):
                _reclaim(job)  # it never looked at the arguments
                self.drop_proc(kill=False)  # the VM exits by itself; the next job gets a fresh one
            self.finish(job)

    def on_exit(self, code: int) -> None:
        proc = self.proc
        self.proc = None
        if proc is not None:
            REAPER.adopt(proc, kill=False)
        job = self.current
        if job is None:
            return
        if self.closing:
            self.end_as_closed(job)  # close() killed it
        else:
            text = f"VM {self.vm_index} died during the job: {describe_exit(code)}"
            if job.exit_note:
                text += f" ({job.exit_note})"
            job.error_text = f"VMDiedError: {text}\n"
            job.error = VMDiedError(text)
        _reclaim(job)
        self.finish(job)

    def end_as_closed(self, job: _Job) -> None:
        text = f"ComputeThread({self.vm_index}) was closed before the job finished"
        job.error_text = f"VMClosedError: {text}\n"
        job.error = VMClosedError(text)

    def finish(self, job: _Job) -> None:
        """Record ``job``'s outcome where its caller will look, then start the next job."""
        job.done = True
        self.current = None
        self.last_job_seconds = time.perf_counter() - self.started_at
        if job.kind == "slot":
            self.last_error = job.error_text
            self.retval_value = job.result
        elif job.abandoned and job.result is not None:
            job.result.discard()
        elif job.future is not None:
            self.ended.append(job)  # resolved when the lock is released
        self.dispatch()

    # -- waiting ---------------------------------------------------------------------------------

    def wait_until(self, done: Any, timeout: float | None) -> bool:
        """Service the VM until ``done()`` is true or ``timeout`` passes; return ``done()``."""
        deadline = None if timeout is None else time.monotonic() + timeout
        spin = True
        while True:
            with self:
                self.service()
                finished = done()
                proc = self.proc
            if finished:
                return True
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                return False
            if proc is None:
                return bool(done())
            # Short slices: another thread may replace the VM meanwhile; then look again.
            proc.wait(_PUMP_INTERVAL if remaining is None else min(remaining, _PUMP_INTERVAL), spin=spin)
            spin = False

    def ensure_pump(self) -> None:
        if self.pump is None or not self.pump.is_alive():
            self.pump = threading.Thread(
                target=_pump, args=(self,), name=f"ComputeThread({self.vm_index}) pump", daemon=True
            )
            self.pump.start()

    def has_futures(self) -> bool:
        return (self.current is not None and self.current.future is not None) or any(
            job.future is not None for job in self.queue
        )

    # -- ending ------------------------------------------------------------------------------------

    def cancel(self) -> bool:
        with self:
            self.service()
            job = self.current
            if job is None:
                return False
            self.drop_proc(kill=True)
            text = f"the job was cancelled: VM {self.vm_index} was stopped by cancel() and will be replaced"
            job.error_text = f"JobCancelledError: {text}\n"
            job.error = JobCancelledError(text)
            _reclaim(job)
            self.finish(job)
            return True

    def close(self, *, wait: bool = True, resolve_futures: bool = True) -> None:
        """Stop the VM and end every job; with ``wait``, until the VM has exited (at most ~1 s).

        The futures of the jobs that end are resolved here, unless ``resolve_futures`` is False: then
        they wait in ``ended`` for the caller to resolve.
        """
        # Kill a busy VM before taking the lock, which a thread in the middle of a call may hold.
        self.closing = True
        proc, busy = self.proc, self.current is not None
        if proc is not None and busy and not self.closed:
            proc.kill()
        with self if resolve_futures else self.lock:
            if self.closed:
                return
            self.closed = True
            with _registry_lock:
                if _owners.get(self.vm_index) is self:
                    del _owners[self.vm_index]
                _payload.POOL.retain = bool(_owners)  # no VM left to send big values to: keep none
            busy_job = self.current
            busy = busy_job is not None
            jobs = [busy_job, *self.queue] if busy_job is not None else list(self.queue)
            self.current = None
            self.queue.clear()
            self.clear_retval()
            proc, self.proc = self.proc, None
            for job in jobs:
                # A queued future runs from now on, so nobody can cancel it before its resolution.
                future = job.future
                if job is not busy_job and future is not None and not future.set_running_or_notify_cancel():
                    _reclaim(job)
                    continue  # cancelled while it waited: nothing to resolve
                self.end_as_closed(job)
                job.done = True
                _reclaim(job)
                if job.future is not None:
                    self.ended.append(job)
        if proc is None:
            return
        if busy:
            proc.kill()
        else:
            try:
                proc.channel.try_send(("quit",))  # never blocks; a VM that misses it sees end-of-file
            except OSError:
                pass
        if not wait:
            REAPER.adopt(proc, kill=False)
        elif not REAPER.finish(proc, CLOSE_TIMEOUT):
            REAPER.adopt(proc, kill=True)


def _collected(core: _Core) -> None:
    """The ComputeThread of ``core`` was garbage collected: free its index now, close it soon.

    Runs wherever the collector ran. Freeing the index is one dict operation (no lock: the collector
    may have struck while this thread held one), so the index can be owned again at once; the rest of
    closing happens in the reaper thread.
    """
    if _owners.get(core.vm_index) is core:
        _owners.pop(core.vm_index, None)
    REAPER.call_soon(functools.partial(_close_collected, core))


def _close_collected(core: _Core) -> None:
    """Close a collected core in the reaper thread; its futures' callbacks run in a thread of their own."""
    core.close(wait=False, resolve_futures=False)
    if core.ended:
        threading.Thread(target=core.resolve_ended, name="runtime-callbacks", daemon=True).start()


def _pump(core: _Core) -> None:
    """Service the VM while futures are pending, so they resolve without anyone polling."""
    while True:
        with core:
            core.service()
            if core.closed or not core.has_futures():
                core.pump = None
                return
            proc = core.proc
        if proc is not None:
            proc.wait(_PUMP_INTERVAL, spin=False)


def _resolve(job: _Job) -> None:
    future = job.future
    assert future is not None
    if job.error is not None:
        future.set_exception(job.error)
        return
    try:
        assert job.result is not None
        value = job.result.decode()
    except BaseException as exc:
        future.set_exception(exc)
    else:
        future.set_result(value)


def _reclaim(job: _Job) -> None:
    """Take back the job's argument segments: the VM never got them, or died with them mapped."""
    for segment in job.segments:
        _payload.POOL.release(segment)
    job.segments = []


def _rebuild_exception(value: _Value, text: str) -> BaseException:
    """The VM's exception as itself when it unpickles, with the remote traceback as ``__cause__``."""
    exc: BaseException | None = None
    if value.payload is not None:
        try:
            exc = value.decode()
        except Exception:
            exc = None
    # Only an Exception is re-raised as itself: a KeyboardInterrupt the job raised must not look like
    # Ctrl+C in VM 0.
    if not isinstance(exc, Exception):
        exc = JobError(text)
    exc.__cause__ = RemoteTraceback(text)
    return exc


def _unpicklable_part(target: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> str:
    """Name the first part of a call that does not pickle: an argument, a keyword argument, the callable."""
    parts: list[tuple[str, Any]] = [(f"argument {i}", value) for i, value in enumerate(args, 1)]
    parts += [(f"keyword argument {name!r}", value) for name, value in kwargs.items()]
    if not isinstance(target, str):
        parts.append(("the callable", target))
    for what, value in parts:
        try:
            _payload.dumps(value)
        except Exception:
            return f"{what} (of type {type(value).__name__})"
    return "an argument of this call"


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


# Source longer than this (in characters; UTF-8 takes at most 4 bytes each) is sent as a payload, like
# an argument: a big one goes through a segment, so the message never waits for the VM to read it.
_INLINE_SOURCE = _payload.INLINE_LIMIT // 4


def _source_job(kind: JobKind, op: str, source: object) -> _Job:
    """An exec or eval job for ``source``."""
    text = _check_source(source)
    job = _Job(kind, [op, 0, text])
    if len(text) > _INLINE_SOURCE:
        encoded = _payload.encode(text)
        job.message[2] = encoded.payload
        job.attach(encoded)
    return job


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
        core = _Core(vm_index, setup)
        with _registry_lock:
            if vm_index in _owners:
                raise ValueError(f"vm_index {vm_index} is already in use by a live ComputeThread")
            _owners[vm_index] = core
            _payload.POOL.retain = True
        self._core = core
        # Garbage collection closes the VM too, in the reaper thread: the collector may run in any
        # thread, in the middle of a frame or of this runtime's own code, holding any lock. At exit,
        # ``close_all`` closes what is left and waits.
        REAPER.start()
        self._finalizer = weakref.finalize(self, _collected, core)
        self._finalizer.atexit = False
        try:
            with core:
                core.proc = LAUNCHER.launch(vm_index, setup)  # warm the VM now; this does not block
        except BaseException:
            self.close()
            raise

    # -- pocketpy's API ------------------------------------------------------------------------------

    @property
    def is_done(self) -> bool:
        """True when no job is running or queued. Costs microseconds and never blocks: poll it each frame."""
        core = self._core
        if not core.try_enter():
            return core.idle  # another thread is servicing the VM right now
        try:
            core.service()
            return core.idle
        finally:
            core.__exit__()

    def wait_for_done(self, timeout: float | None = None) -> bool:
        """Block until no job is running or queued, at most ``timeout`` seconds; return ``is_done``.

        Sleeps in the kernel after a spin of at most ~50 us, so a long wait costs no CPU.
        """
        core = self._core
        return core.wait_until(lambda: core.idle, _seconds(timeout))

    def last_error(self) -> str | None:
        """The formatted traceback (str) of the last ``submit_*`` job's failure, or None if it succeeded."""
        with self._core:
            self._core.check_idle()
            return self._core.last_error

    def last_retval(self) -> Any:
        """The last ``submit_*`` job's return value, unpickled in VM 0 (the same object on each call).

        Raises ``ValueError("no retval available")`` before any job and after a failed one. Numpy
        arrays arrive as writable views of shared memory, without a copy.
        """
        core = self._core
        with core:
            core.check_idle()
            if core.retval is None:
                if core.retval_error is not None:
                    raise core.retval_error  # the same failure on every call, as the value would be
                if core.retval_value is None:
                    error = ValueError("no retval available")
                    error.add_note(
                        "runtime: the last job failed; last_error() has its traceback"
                        if core.last_error is not None
                        else "runtime: no submit_* job has run yet"
                    )
                    raise error
                value, core.retval_value = core.retval_value, None
                try:
                    core.retval = (value.decode(),)
                except BaseException as exc:
                    core.retval_error = exc
                    raise
            return core.retval[0]

    def submit_exec(self, source: str) -> None:
        """Run ``source`` (statements) in the VM's ``__main__``; returns at once; the retval is None."""
        self._submit_slot("exec", source)

    def submit_eval(self, source: str) -> None:
        """Evaluate ``source`` (an expression) in the VM's ``__main__``; returns at once."""
        self._submit_slot("eval", source)

    def submit_call(self, eval_src: str | Any, *args: Any, **kwargs: Any) -> None:
        """Call ``eval_src`` (evaluated in the VM to a callable, or a callable) with the arguments.

        Returns at once. The arguments are pickled now (cloudpickle when plain pickle cannot: lambdas,
        closures, functions of your main script); one that cannot be pickled raises here and nothing starts.
        """
        core = self._core
        with core:
            core.check_open()
            core.check_idle()
            core.enqueue(self._call_job("slot", eval_src, args, kwargs))

    def exec(self, source: str) -> None:
        """Run ``source`` in the VM's ``__main__`` and wait; raises ``RuntimeError`` with the VM's traceback.

        Does not change ``last_error()``/``last_retval()`` (as in pocketpy).
        """
        self._blocking("exec", source)

    def eval(self, source: str) -> Any:
        """Evaluate ``source`` in the VM's ``__main__`` and return its value (unpickled in VM 0)."""
        return self._blocking("eval", source)

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
        core = self._core
        with core:
            core.check_open()
            job = self._call_job("future", fn_or_eval_src, args, kwargs)
            core.enqueue(job)
            core.ensure_pump()
        assert job.future is not None
        return job.future

    def call(self, fn_or_eval_src: str | Any, /, *args: Any, **kwargs: Any) -> Any:
        """Queue a call and wait for its value: ``submit(...).result()``, driven by the calling thread."""
        core = self._core
        with core:
            core.check_open()
            job = self._call_job("future", fn_or_eval_src, args, kwargs)
            core.enqueue(job)
        core.wait_until(lambda: job.done, None)
        assert job.future is not None
        return job.future.result()

    @property
    def progress(self) -> tuple[float, str]:
        """``(fraction, message)`` last reported by the running job via ``report_progress``; never blocks."""
        core = self._core
        if core.try_enter():
            try:
                core.service()
            finally:
                core.__exit__()
        return core.progress

    def cancel(self) -> bool:
        """Stop the running job at once, even one stuck in C code; return whether a job was running.

        The VM is killed and replaced on the next job (a fresh namespace; ``setup`` runs again). The job
        ends with ``JobCancelledError``; ``last_error()`` says it was cancelled. Queued jobs still run.
        """
        return self._core.cancel()

    def close(self) -> None:
        """Stop the VM (within 1 s, even mid-job) and free ``vm_index``. Idempotent.

        Jobs still running or queued end with ``VMClosedError``.
        """
        if self._finalizer.detach() is not None:
            self._core.close()

    def __enter__(self) -> ComputeThread:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    @property
    def vm_index(self) -> int:
        """The index of the VM this ComputeThread owns (1..15)."""
        return self._core.vm_index

    @property
    def pid(self) -> int | None:
        """The process id of the current VM, or None when none runs (closed, died and not yet replaced,
        or not started by the template within 5 s)."""
        proc = self._core.proc
        if proc is None:
            return None
        pid = proc.wait_pid(5.0)
        return None if pid < 0 else pid  # -1: the template died before it could start this VM

    @property
    def closed(self) -> bool:
        """Whether ``close()`` has run."""
        return self._core.closed

    @property
    def last_job_seconds(self) -> float | None:
        """How long the last finished job took, as seen from VM 0, or None before the first one.

        The first job of a fresh VM includes the VM's start and its ``setup``.
        """
        return self._core.last_job_seconds

    def __repr__(self) -> str:
        core = self._core
        state = "closed" if core.closed else "idle" if core.idle else "busy"
        return f"<ComputeThread vm_index={core.vm_index} {state}>"

    # -- helpers -------------------------------------------------------------------------------------

    def _submit_slot(self, op: str, source: str) -> None:
        core = self._core
        with core:
            core.check_open()
            core.check_idle()
            core.enqueue(_source_job("slot", op, source))

    def _blocking(self, op: str, source: str) -> Any:
        core = self._core
        with core:
            core.check_open()
            core.check_idle()
            job = _source_job("blocking", op, source)
            core.enqueue(job)
        try:
            core.wait_until(lambda: job.done, None)
        except BaseException:
            # Interrupted (Ctrl+C): nobody will take the value, so let its segment go when it comes.
            with core:
                job.abandoned = True
                if job.result is not None:
                    job.result.discard()
            raise
        if job.error is not None:
            if isinstance(job.error, VMDiedError | VMClosedError | JobCancelledError):
                raise job.error
            raise JobError(f"{op}() failed in VM {core.vm_index}:\n{job.error_text}")
        assert job.result is not None
        return job.result.decode()

    def _call_job(self, kind: JobKind, target: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> _Job:
        """A call job, its arguments (and a callable target) pickled now, in the caller's thread."""
        if not isinstance(target, str) and not callable(target):
            raise TypeError(
                f"expected a str to evaluate in the VM or a callable, got {type(target).__name__}"
            )
        encoded: list[_payload.Encoded] = []
        try:
            encoded.append(_payload.encode((args, kwargs)))
            if not isinstance(target, str) or len(target) > _INLINE_SOURCE:
                encoded.append(_payload.encode(target))
        except BaseException as exc:
            for item in encoded:
                if (segment := _payload.segment_id(item.payload)) is not None:
                    _payload.POOL.release(segment)
            if isinstance(exc, Exception):
                culprit = _unpicklable_part(target, args, kwargs)
                exc.add_note(f"runtime: {culprit} cannot be pickled, so the job was not started")
            raise
        message = ["call", 0, encoded[1].payload if len(encoded) > 1 else target, encoded[0].payload]
        job = _Job(kind, message, future=Future() if kind == "future" else None)
        for item in encoded:  # in the order the worker decodes them: arguments, then the target
            job.attach(item)
        return job


def close_all() -> None:
    """Close every live ComputeThread's VM (``runtime.shutdown()``, and at interpreter exit)."""
    with _registry_lock:
        cores = list(_owners.values())
    for core in cores:
        core.close()


atexit.register(close_all)


def _forget_after_fork() -> None:
    """In a child that the game forked from VM 0: the VMs, the template and the segments are the
    parent's. The child owns no VM (its ComputeThreads read as closed) and must not touch theirs.

    Futures that were pending at the fork belong to the parent too: in the child they never resolve
    (resolving them could deadlock on a lock another thread held at the fork).
    """
    global _registry_lock
    _registry_lock = threading.RLock()  # another thread may have held it at the fork
    for core in _owners.values():
        core.lock = threading.RLock()
        core._depth = 0
        core.closed = core.closing = True
        core.proc = None
        core.current = None
        core.queue.clear()
        core.pump = None
    _owners.clear()
    _launcher.forget_after_fork()
    _payload.POOL.forget()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_after_fork)
