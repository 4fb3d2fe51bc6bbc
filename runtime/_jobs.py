"""Jobs: one unit of work for a VM, its arguments encoded for the trip, and its outcome once it ends.

A job is built in the caller's thread (``call_job``, ``source_job``): its arguments are pickled there and
then, so an argument that cannot be pickled raises from the submit call and nothing starts. The manager
(``_manager``) sends it, and records how it ended in it: a value still encoded (``ReceivedValue``,
decoded by whoever takes it) or an error. ``resolve_future`` hands the outcome to a future.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator, Sequence
from concurrent.futures import Future
from concurrent.futures._base import CANCELLED_AND_NOTIFIED as _CANCELLED_AND_NOTIFIED
from concurrent.futures._base import FINISHED as _FINISHED
from concurrent.futures._base import PENDING as _PENDING
from concurrent.futures._base import RUNNING as _RUNNING
from typing import Any, Literal, NamedTuple, Protocol

from . import _payload
from ._errors import JobError, RemoteTraceback
from ._pickling import function_reference
from ._protocol import Call, Eval, Exec

# Where a job's outcome goes: "pocketpy" to ``last_error()``/``last_retval()`` (``submit_*``), "blocking"
# to the caller waiting in ``exec``/``eval``, "future" to a ``concurrent.futures.Future``.
JobKind = Literal["pocketpy", "blocking", "future"]


class ReceivedValue:
    """A value received from the VM and not decoded yet: its payload, descriptors, and the record of
    the VM that sent them (``_segments.ReceivedSegments``)."""

    __slots__ = ("fds", "payload", "peer")

    def __init__(
        self, payload: _payload.Payload, fds: Sequence[int], peer: _payload.ReceivedSegments
    ) -> None:
        self.payload = payload
        self.fds = fds
        self.peer = peer

    def decode(self) -> Any:
        fds, self.fds = self.fds, ()
        return _payload.decode(self.payload, iter(fds), self.peer)

    def discard(self) -> None:
        fds, self.fds = self.fds, ()
        if fds:
            _payload.discard(self.payload, iter(fds), self.peer)


class DroppableValue(ReceivedValue):
    """A received value that may be dropped unread (a pool future nobody asked): then its descriptor is
    closed and its segment handed back. (A ComputeThread's values are always decoded or discarded, and
    skip the cost of a ``__del__``.)"""

    __slots__ = ()

    def __del__(self) -> None:
        # Both are safe wherever the collector runs: a close and a deque append.
        if self.fds:
            self.discard()


class QueuePlace(NamedTuple):
    """Where a job stands in a pool's queue."""

    priority: float
    key: Any  # Hashable or None


NOWHERE = QueuePlace(0.0, None)


class Job:
    """One unit of work for the VM, and, once it ends, its outcome."""

    __slots__ = (
        "abandoned",
        "claimed",
        "done",
        "error",
        "error_text",
        "exit_note",
        "fds",
        "fields",
        "future",
        "kind",
        "progress",
        "queue_entry",
        "queue_place",
        "record",
        "result",
        "segments",
        "sent_segments",
        "seq",
        "skip_requested",
        "small",
    )

    def __init__(
        self,
        kind: JobKind,
        record: type[Exec | Eval | Call],
        fields: tuple[Any, ...],
        future: Future[Any] | None = None,
    ) -> None:
        self.kind = kind
        self.record = record  # the message that carries it, made with its sequence number when sent
        self.fields = fields  # that message's fields after ``seq``
        self.future = future
        # (Tuples: most jobs have no segment, and an empty tuple costs no allocation.)
        self.fds: tuple[int, ...] = ()  # descriptors of the arguments' segments, to send
        self.segments: tuple[int, ...] = ()  # their ids in VM 0's segment pool, while VM 0 owns them
        self.sent_segments: tuple[int, ...] = ()  # the same ids, kept while a VM has them
        self.seq = 0
        self.small = False  # its message is a few KiB at most (more may then be in flight at once)
        self.done = False
        self.abandoned = False  # a blocking caller stopped waiting for it
        self.claimed = False  # its future was set running (it left the queue once)
        self.skip_requested = False  # VM 0 asked its VM not to start it (a pool's cancel)
        self.result: ReceivedValue | None = None  # the return value, still encoded
        self.error: BaseException | None = None  # what to raise in VM 0
        self.error_text: str | None = None  # what last_error() says
        self.exit_note: str | None = None  # why the VM is exiting, if it said so before it died
        self.progress: tuple[float, str] = (0.0, "")  # its latest report_progress
        self.queue_place = NOWHERE  # its priority and key in a pool's queue
        self.queue_entry: list[Any] | None = None  # its entry there (``_priority_queue``), while queued

    def message(self, seq: int) -> Exec | Eval | Call:
        """The message that sends this job as number ``seq``."""
        self.seq = seq
        # tuple.__new__ rather than the record's own __new__ (a Python function), as ``from_wire`` does.
        message: Exec | Eval | Call = tuple.__new__(self.record, (seq, *self.fields))
        return message

    def attach(self, encoded: _payload.Encoded) -> None:
        """Send ``encoded``'s segment, if it has one, with this job's message."""
        if encoded.fd is not None:
            self.fds += (encoded.fd,)
            segment = _payload.segment_id(encoded.payload)
            assert segment is not None
            self.segments += (segment,)

    def reclaim(self) -> None:
        """Take back the argument segments: the VM never got them, or died with them mapped."""
        for segment in self.segments:
            _payload.POOL.release(segment)
        self.segments = ()

    def fail(self, error: BaseException, text: str) -> None:
        """End with ``error``; ``text`` is what ``last_error()`` says (a traceback or a one-line reason)."""
        self.error = error
        self.error_text = text


class JobQueue(Protocol):
    """Where a manager takes its next job from."""

    def first(self) -> Job | None:
        """The next job, left in the queue (so that a lock-free ``idle`` never sees a gap)."""

    def drop_first(self) -> None:
        """Remove the job ``first()`` returned."""

    def give_back(self, jobs: list[Job]) -> None:
        """Put jobs that were sent but never started back at the front, in this order."""

    def take_all(self) -> list[Job]:
        """Take every job out; return them in the order they would have run."""

    def __len__(self) -> int: ...

    def __iter__(self) -> Iterator[Job]: ...


class FifoQueue(deque[Job]):
    """A ComputeThread's queue: first in, first out."""

    def first(self) -> Job | None:
        return self[0] if self else None

    def drop_first(self) -> None:
        self.popleft()

    def give_back(self, jobs: list[Job]) -> None:
        self.extendleft(reversed(jobs))

    def take_all(self) -> list[Job]:
        jobs = list(self)
        self.clear()
        return jobs


class LastOutcome:
    """The last pocketpy job's outcome: what ``last_error()`` and ``last_retval()`` return until the next
    ``submit_*`` job starts. The value stays encoded until ``last_retval()`` asks, then is kept decoded."""

    def __init__(self) -> None:
        self.error_text: str | None = None
        self._encoded: ReceivedValue | None = None
        self._decoded: tuple[Any] | None = None
        self._decode_error: BaseException | None = None

    def clear(self) -> None:
        self.error_text = None
        self._decoded = None
        self._decode_error = None
        if self._encoded is not None:
            self._encoded.discard()
            self._encoded = None

    def record(self, job: Job) -> None:
        self.error_text = job.error_text
        self._encoded = job.result

    def value(self) -> Any:
        """The value (the same object on each call); ``ValueError("no retval available")`` if none."""
        if self._decoded is None:
            if self._decode_error is not None:
                raise self._decode_error  # the same failure on every call, as the value would be
            if self._encoded is None:
                error = ValueError("no retval available")
                error.add_note(
                    "runtime: the last job failed; last_error() has its traceback"
                    if self.error_text is not None
                    else "runtime: no submit_* job has run yet"
                )
                raise error
            encoded, self._encoded = self._encoded, None
            try:
                self._decoded = (encoded.decode(),)
            except BaseException as exc:
                self._decode_error = exc
                raise
        return self._decoded[0]


# Source longer than this (in characters; UTF-8 takes at most 4 bytes each) is sent as a payload, like
# an argument: a big one goes through a segment, so the message never waits for the VM to read it.
INLINE_SOURCE = _payload.INLINE_LIMIT // 4
_SMALL = 4096  # bytes of a call's pickle that make it a small job


def source_job(kind: JobKind, record: type[Exec | Eval], text: str) -> Job:
    """An exec or eval job for the source ``text``."""
    if len(text) <= INLINE_SOURCE:
        return Job(kind, record, (text,))
    encoded = _payload.encode(text)
    job = Job(kind, record, (encoded.payload,))
    job.attach(encoded)
    return job


def call_job(
    kind: JobKind, target: Any, args: tuple[Any, ...], kwargs: dict[str, Any], future: Future[Any] | None
) -> Job:
    """A call job, its arguments (and a callable target) pickled now, in the caller's thread."""
    if not isinstance(target, str) and not callable(target):
        raise TypeError(f"expected a str to evaluate in the VM or a callable, got {type(target).__name__}")
    # A module's function travels as its pickle, made once (the VM unpickles it: ``_worker._run``).
    reference = function_reference(target)
    try:
        encoded = _payload.encode((target if reference is None else reference, args, kwargs))
    except Exception as exc:
        culprit = _unpicklable_part(target, args, kwargs)
        exc.add_note(f"runtime: {culprit} cannot be pickled, so the job was not started")
        raise
    job = Job(kind, Call, (encoded.payload,), future)
    if encoded.fd is not None:
        job.attach(encoded)  # (a payload with a segment is never small)
    else:  # a plain pickle ("p") of a few KiB at most is a small job
        payload = encoded.payload
        job.small = payload[0] == "p" and len(payload[1]) <= _SMALL
    return job


def claim_future(future: Future[Any]) -> bool:
    """Set ``future`` running, as it leaves the queue; False if it was cancelled (waiters then learn it).

    A pool future is notified as soon as it is cancelled (``PoolFuture.cancel``), so it may already be
    past the state ``set_running_or_notify_cancel`` expects; this looks at the state under the future's
    own lock (``concurrent.futures`` internals, unchanged since the module began).
    """
    condition = future._condition
    condition.acquire()
    try:
        state = future._state
        if state == _PENDING:
            # The usual case, as ``set_running_or_notify_cancel`` does it, without entering the lock twice.
            future._state = _RUNNING
            return True
        if state == _CANCELLED_AND_NOTIFIED:
            return False
        return future.set_running_or_notify_cancel()
    finally:
        condition.release()


def finish_future(future: Future[Any], result: Any) -> None:
    """``future.set_result(result)``, entering the future's lock once and notifying its condition only
    when a thread waits on it (the usual pool future has none yet): the steps of ``set_result``, which
    have been these since ``concurrent.futures`` began; any other state is left to it (it raises)."""
    condition = future._condition
    condition.acquire()
    try:
        running = future._state == _RUNNING
        if running:
            future._result = result
            future._state = _FINISHED
            for waiter in future._waiters:
                waiter.add_result(future)
            if condition._waiters:  # type: ignore[attr-defined]
                condition.notify_all()
    finally:
        condition.release()
    if running:
        if future._done_callbacks:  # type: ignore[attr-defined]
            future._invoke_callbacks()  # type: ignore[attr-defined]
    else:
        future.set_result(result)  # (raises, unless it was pending)


def resolve_future(job: Job) -> None:
    """Hand ``job``'s outcome to its future (decoding the value here, in the caller's thread)."""
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


def rebuild_exception(value: ReceivedValue | None, text: str) -> BaseException:
    """The VM's exception as itself when it unpickles, with the remote traceback as ``__cause__``."""
    exc: BaseException | None = None
    if value is not None:
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
