"""What a pool hands back: futures that decode on demand, ``map``'s iterator, and statistics.

A ``PoolFuture`` is resolved as soon as its VM replies, with the value still encoded; the value is
decoded (its segment mapped, the pickle loaded) by the first ``result()`` call, in that caller's thread,
or by ``ComputePool.intake()`` within its time budget. So the pool's background thread never spends a
frame's time unpickling a big result.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Hashable, Iterator
from concurrent.futures import Future, TimeoutError
from typing import Any, NamedTuple

from ._jobs import Job, ReceivedValue


class PoolFuture(Future[Any]):
    """A ``concurrent.futures.Future`` for a pool job, with its ``key``, ``priority`` and ``progress``."""

    def __init__(
        self,
        key: Hashable | None,
        priority: float,
        on_cancel: Callable[[Job], None] | None = None,
        *,
        internal: bool = False,
    ) -> None:
        Future.__init__(self)  # (not super(), whose object every submit would pay for)
        self.key = key
        self._priority = priority
        self._job: Job | None = None  # until the job ends
        self._progress: tuple[float, str] = (0.0, "")
        self._on_cancel = on_cancel  # takes the job out of the pool's queue
        self.internal = internal  # one batch of a map(): its results come through the map's iterator

    @property
    def priority(self) -> float:
        """The job's priority: as submitted, or as ``reprioritize`` last set it."""
        job = self._job
        return self._priority if job is None else job.queue_place.priority

    def let_go_of_job(self) -> None:
        """The job has ended: keep its last priority and progress, and drop it. (Future and job refer to
        each other until then; a cycle left in place would hold the job's value, shared memory
        included, until a full garbage collection, whose pause grows with every job a game has run.)"""
        job = self._job
        if job is not None:
            self._priority, self._progress = job.queue_place.priority, job.progress
            self._job = None

    def cancel(self) -> bool:
        """Cancel the job if it has not been sent to a VM yet; ``wait()`` and ``as_completed()`` see it
        at once (a ``ProcessPoolExecutor`` future is only seen once its executor gets round to it), and
        it leaves the pool's queue at once (``stats().queued`` no longer counts it)."""
        if not super().cancel():
            return False
        with self._condition:
            if self._state == "CANCELLED":  # not notified yet (the pool may have done it meanwhile)
                self.set_running_or_notify_cancel()
        job = self._job  # (read once: pool.cancel() in another thread may let go of it meanwhile)
        if self._on_cancel is not None and job is not None:
            self._on_cancel(job)
        self.let_go_of_job()
        return True

    @property
    def progress(self) -> tuple[float, str]:
        """``(fraction, message)`` last reported by the job (``report_progress``); ``(0.0, "")`` before."""
        job = self._job
        return self._progress if job is None else job.progress

    def result(self, timeout: float | None = None) -> Any:
        super().result(timeout)  # waits; raises the job's error, or CancelledError
        self._decode()
        if self._exception is not None:
            raise self._exception
        return self._result

    def exception(self, timeout: float | None = None) -> BaseException | None:
        """The job's error, or one met decoding its value here (then ``result()`` raises it too)."""
        error = super().exception(timeout)
        if error is None:
            self._decode()
            error = self._exception
        return error

    def _decode(self) -> None:
        """Decode the value in place, once, by whichever thread asks first; a value that cannot be
        decoded makes the future fail with that error (so ``exception()``, ``asyncio`` and ``intake()``
        all see it). This reaches into Future's own state (its condition, ``_result`` and
        ``_exception``), which has been stable since concurrent.futures began."""
        with self._condition:
            received = self._result
            if not isinstance(received, ReceivedValue):
                return
            try:
                self._result = received.decode()
            except BaseException as exc:
                self._result = None
                self._exception = exc

    def decoded(self) -> bool:
        """Whether ``result()`` would return without decoding (it is done, and decoded or failed)."""
        return self.done() and (self.cancelled() or not isinstance(self._result, ReceivedValue))


class MapResults(Iterator[Any]):
    """``ComputePool.map``'s iterator: the results in item order, and how far the items have come.

    ``done`` and ``total`` count items (not batches), for a loading bar; closing the iterator (or
    dropping it) cancels the batches that have not started.
    """

    def __init__(self, futures: list[PoolFuture], sizes: list[int], timeout: float | None) -> None:
        self.total = sum(sizes)
        self._sizes = sizes
        self._consumed = 0  # items of the batches already taken by the iteration
        self._futures: list[PoolFuture | None] = list(futures)
        self._deadline = None if timeout is None else time.monotonic() + timeout
        self._batch: list[Any] = []
        self._next = 0
        self._closed = False

    @property
    def done(self) -> int:
        """How many items have been computed (cancelled and failed batches count as done)."""
        rest = zip(self._futures[self._next :], self._sizes[self._next :], strict=True)
        return self._consumed + sum(size for future, size in rest if future is not None and future.done())

    def __iter__(self) -> MapResults:
        return self

    def __next__(self) -> Any:
        while not self._batch:
            if self._closed or self._next >= len(self._futures):
                raise StopIteration
            future = self._futures[self._next]
            assert future is not None
            remaining = None if self._deadline is None else self._deadline - time.monotonic()
            if remaining is not None and remaining <= 0 and not future.done():
                self.close()
                raise TimeoutError(
                    f"map() did not finish within its timeout ({self.done} of {self.total} done)"
                )
            try:
                self._batch = list(reversed(future.result(remaining)))
            except TimeoutError:
                self.close()
                raise TimeoutError(
                    f"map() did not finish within its timeout ({self.done} of {self.total} items done)"
                ) from None
            except BaseException:
                self.close()
                raise
            self._futures[self._next] = None  # let its values go
            self._consumed += self._sizes[self._next]
            self._next += 1
        return self._batch.pop()

    def close(self) -> None:
        """Cancel the batches that have not started (the ones running finish)."""
        for future in self._futures[self._next :]:
            if future is not None:
                future.cancel()
        self._batch = []
        self._closed = True

    def __del__(self) -> None:
        self.close()


def run_batch(function: Any, items: list[tuple[Any, ...]]) -> list[Any]:
    """In the VM: call ``function`` (or the source that evaluates to it) on each item; a ``map`` batch."""
    if isinstance(function, str):
        import __main__

        function = eval(function, vars(__main__))
    return [function(*item) for item in items]


class VMStats(NamedTuple):
    """One VM of a pool, for a HUD: busy (a job in flight), jobs done and busy seconds so far."""

    vm_index: int
    busy: bool
    jobs_done: int
    busy_seconds: float


class PoolStats(NamedTuple):
    """A pool at a glance: jobs queued, in flight and done, the rate over the last second, and its VMs."""

    queued: int
    in_flight: int
    jobs_done: int
    jobs_per_second: float
    vms: tuple[VMStats, ...]
