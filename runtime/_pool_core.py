"""The pool's state in VM 0: its managers, their shared guard and queue, the pump thread, statistics.

``PoolCore`` is what the registry holds for a ``ComputePool`` (never the pool itself, so that garbage
collection can still collect the pool and close this). See ``_pool`` for the picture.
"""

from __future__ import annotations

import contextlib
import os
import select
import threading
import time
from collections import deque
from collections.abc import Callable

from ._channel import READABLE
from ._errors import JobCancelledError, VMClosedError
from ._guard import Guard
from ._jobs import Job, claim_future, finish_future
from ._manager import CLOSE_TIMEOUT, PUMP_INTERVAL, Manager
from ._pool_results import PoolFuture
from ._priority_queue import PriorityQueue
from ._protocol import Skip
from ._reaper import REAPER

WINDOW_SECONDS = 0.002  # how much work, at the recent job length, each VM keeps in flight
MAX_WINDOW = 64
PUMP_LINGER = 0.25  # seconds the pump thread waits for more work before it ends
DEEP_QUEUE = 64  # queued jobs per VM before a VM keeps more than two in flight


def _in_flight(manager: Manager) -> int:
    return len(manager.inflight)


def _poller(fds: list[int]) -> select.poll:
    poller = select.poll()
    for fd in fds:
        poller.register(fd, READABLE)
    return poller


class PoolCore:
    """All VM 0 state of one pool; the registry holds this, never the ComputePool (so GC can close it)."""

    def __init__(
        self,
        indices: list[int],
        setup: str | None,
        keep_finished: bool,
        on_finished: Callable[[PoolCore], None],
    ) -> None:
        # What the pump calls when the last job after shutdown(wait=False) has ended: the pool releases
        # the indices (only the pool touches the registry) and closes this.
        self.on_finished = on_finished
        self.guard = Guard(self.resolve)
        self.queue = PriorityQueue()
        self.managers = [
            Manager(i, f"ComputePool VM {i}", setup, self.guard, self.queue, owns_queue=False)
            for i in indices
        ]
        for manager in self.managers:
            manager.window = 2
        self.deep_queue = DEEP_QUEUE * len(self.managers)  # queued jobs before a window grows beyond two
        self.keep_finished = keep_finished
        self.finished: deque[PoolFuture] = deque()  # for intake(), when keep_finished
        self.recent: deque[tuple[float, int]] = deque()  # (when, how many jobs ended), the last second
        self.job_seconds = 0.0  # the recent job length (a moving average)
        self.serviced_at = 0.0  # when service() last ran
        self.shutting_down = False
        self.closed = False
        self.pump: threading.Thread | None = None
        self.wake_r, self.wake_w = os.pipe()
        os.set_blocking(self.wake_r, False)
        os.set_blocking(self.wake_w, False)

    # -- jobs ---------------------------------------------------------------------------------------

    def resolve(self, job: Job) -> None:
        """Resolve a finished job's future, its value still encoded (decoded by ``result()``)."""
        future = job.future
        assert isinstance(future, PoolFuture)
        if future._job is job:  # (``future.let_go_of_job()`` written out: once a job)
            future._priority, future._progress = job.queue_place.priority, job.progress
            future._job = None
        if job.error is not None:
            future.set_exception(job.error)
        else:
            finish_future(future, job.result)
        job.result = None
        if self.keep_finished and not future.internal:
            self.finished.append(future)

    def forget_cancelled(self, job: Job) -> None:
        """A queued job's future was cancelled: take the job out of the queue now (so that the queue's
        length counts live jobs only) and let its argument segments go."""
        with self.guard:
            if self.queue.discard(job):
                job.reclaim()

    def count_end(self, manager: Manager, ended: int, now: float) -> None:
        """Note that ``ended`` jobs of ``manager`` ended by ``now``, for the statistics and the window
        (with the guard held)."""
        recent = self.recent
        recent.append((now, ended))
        horizon = now - 1.0
        while recent[0][0] < horizon:
            recent.popleft()
        seconds = manager.last_vm_seconds
        # Up at once, down slowly: one long job is enough to stop betting on short ones.
        self.job_seconds = seconds if seconds >= self.job_seconds else 0.7 * self.job_seconds + 0.3 * seconds

    def window(self, queued: int) -> int:
        """How many jobs each VM keeps in flight, ``queued`` jobs waiting: two, or, while the queue is
        long and jobs have been tiny, enough to cover ``WINDOW_SECONDS`` (a deep window cannot be
        re-prioritised, so it is a bet taken only when there is a lot of tiny work)."""
        if queued < self.deep_queue or self.job_seconds <= 0:
            return 2
        return max(2, min(MAX_WINDOW, int(WINDOW_SECONDS / self.job_seconds) + 1))

    def dispatch(self) -> None:
        """Send queued jobs to the VMs with room, the least loaded first, each at most its share of the
        queue: a burst of long jobs then spreads over every VM instead of filling the first one's window."""
        queued = self.queue.live
        if not queued:
            return
        window = 2 if queued < self.deep_queue else self.window(queued)  # (the usual case, without a call)
        rooms = []
        for manager in self.managers:
            manager.window = window
            if len(manager.inflight) <= window // 2 and not manager.closing:
                rooms.append(manager)
        if len(rooms) <= 1:  # the usual cases: no VM has room, or one, whose share is the whole queue
            if rooms:
                rooms[0].send_queued(queued)
            return
        if len(rooms) == 2:  # (the sort below for two, without two calls of its key)
            if len(rooms[1].inflight) < len(rooms[0].inflight):
                rooms.reverse()
        else:
            rooms.sort(key=_in_flight)
        for left, manager in enumerate(rooms):
            share = -(-self.queue.live // (len(rooms) - left))  # what is left, split over who is left
            if not share:
                return  # the queue is empty
            manager.send_queued(share)  # (``Manager.dispatch`` without its checks, made above)

    def send_fresh(self, job: Job) -> bool:
        """Send a new job straight to the least loaded VM with room when nothing is queued (it would be
        first anyway): what ``dispatch`` does for a queue of one, without the queue's push and pop; False
        if it must queue (with ``queue_place`` set)."""
        if self.queue.live:
            return False
        best = None
        for manager in self.managers:
            manager.window = 2  # (as dispatch() sets it for a short queue)
            load = len(manager.inflight)
            if load <= 1 and not manager.closing and (best is None or load < len(best.inflight)):
                best = manager
        if best is None:
            return False
        best.send_queued(1, job)
        return True

    def service(self) -> None:
        """Read what every VM has said, end jobs, send more (with the guard held); never blocks."""
        now = self.serviced_at = time.perf_counter()
        for manager in self.managers:
            done = manager.jobs_done
            manager.service()
            if manager.jobs_done != done:
                self.count_end(manager, manager.jobs_done - done, now)
        if self.queue.live:  # (usually not: the managers have just sent what their VMs had room for)
            self.dispatch()

    @staticmethod
    def skip(manager: Manager, jobs: list[Job]) -> None:
        """Ask ``manager``'s VM not to start these jobs, sent and waiting behind the running one (each then
        ends as cancelled when the VM says ``Skipped``; one that started meanwhile ends as it ends)."""
        jobs = [job for job in jobs if job in manager.inflight and job is not manager.running]
        if not jobs or manager.proc is None:
            return
        for job in jobs:
            job.skip_requested = True
        try:
            manager.proc.channel.send(Skip([job.seq for job in jobs]))
        except OSError:
            pass  # the VM is gone: give_back_unstarted() ends them as cancelled

    def busy(self) -> bool:
        return bool(self.queue.live) or any(manager.inflight for manager in self.managers)

    @staticmethod
    def cancel_jobs(jobs: list[Job]) -> int:
        """Cancel the futures of jobs taken out of the queue; count them. Call it without the guard:
        a future's done-callbacks run here."""
        count = 0
        for job in jobs:
            job.reclaim()
            future = job.future
            if future is None:
                continue
            if isinstance(future, PoolFuture):
                future.let_go_of_job()
            if job.claimed:  # given back by a VM that died: its future already runs
                future.set_exception(JobCancelledError("the job was cancelled before it ran"))
                count += 1
            elif future.cancel():
                count += 1
        return count

    # -- the pump thread ----------------------------------------------------------------------------

    def wake(self) -> None:
        """Wake the pump thread (with the guard's lock held: the pipe may be closed otherwise)."""
        if self.wake_w < 0:
            return  # closed
        try:
            os.write(self.wake_w, b"\0")
        except (BlockingIOError, OSError):
            pass

    def ensure_pump(self) -> None:
        """Start the pump thread unless it runs (it clears ``pump`` under the guard as it ends)."""
        if self.pump is None:
            self.pump = threading.Thread(target=self.run_pump, name="ComputePool pump", daemon=True)
            self.pump.start()

    def run_pump(self) -> None:
        """Service the VMs while there is work, so that futures resolve with nobody polling; out of work,
        wait ``PUMP_LINGER`` for more before ending (a submit loop that keeps the VMs just ahead of it
        started a thread every few jobs: 1,500 in 10,000 tiny jobs)."""
        idle_since: float | None = None
        watching: tuple[list[int], select.poll] = ([], select.poll())  # kept while the descriptors stay
        while True:
            with self.guard:
                self.service()
                if self.busy():
                    idle_since = None
                elif idle_since is None:
                    idle_since = time.monotonic()
                if self.closed or (
                    idle_since is not None
                    and (self.shutting_down or time.monotonic() - idle_since >= PUMP_LINGER)
                ):
                    self.pump = None
                    finish = self.shutting_down and not self.closed
                    break
                fds = self.watched()
            if fds != watching[0]:
                watching = (fds, _poller(fds))
            self.wait_for_news(fds, PUMP_INTERVAL, watching[1])
        if finish:
            # shutdown(wait=False): the last job has ended, so let go of everything, indices included.
            self.on_finished(self)
        else:
            with self.guard:
                if self.closed:
                    self.close_wake_pipe()  # close() left it to this thread, which polled it

    def watched(self) -> list[int]:
        """The descriptors that turn readable when there is news (with the guard held)."""
        fds = [self.wake_r]
        for manager in self.managers:
            if manager.proc is not None:
                fds += manager.proc.watched()
        return fds

    def wait_for_news(self, fds: list[int], timeout: float, poller: select.poll | None = None) -> None:
        """Wait until a descriptor of ``fds`` (``watched()``: the wake pipe's first) is readable, at most
        ``timeout`` seconds; empty the wake pipe if it was that. ``poller``: one made for ``fds``."""
        if poller is None:
            poller = _poller(fds)
        for fd, events in poller.poll(max(1, int(timeout * 1000))):
            # The pipe as it is now, not ``fds[0]``: close() in another thread may have closed it while
            # this waited (then ``wake_r`` is -1), and a new socket taken its number.
            if fd == self.wake_r and events & select.POLLIN:
                with contextlib.suppress(OSError):
                    os.read(self.wake_r, 4096)

    def wait_idle(self) -> None:
        """Service the VMs until no job is queued or in flight."""
        while True:
            with self.guard:
                self.service()
                if not self.busy():
                    return
                fds = self.watched()
            self.wait_for_news(fds, PUMP_INTERVAL)

    # -- ending ---------------------------------------------------------------------------------------

    def close(self, *, wait: bool = True, resolve_futures: bool = True) -> None:
        """Stop every VM now; running and queued jobs end with ``VMClosedError``."""
        with self.guard if resolve_futures else self.guard.lock:
            if self.closed:
                return
            self.closed = self.shutting_down = True
            queued = self.queue.take_all()
            for job in queued:
                if job.future is not None and (job.claimed or claim_future(job.future)):
                    job.fail(VMClosedError("the ComputePool was closed before the job ran"), "")
                    self.guard.to_resolve.append(job)
                job.reclaim()
        for manager in self.managers:
            manager.close(wait=False, resolve_futures=resolve_futures)
        if wait:
            deadline = time.monotonic() + CLOSE_TIMEOUT
            REAPER.drain(max(0.0, deadline - time.monotonic()))
        with self.guard.lock:
            if self.pump is None or self.pump is threading.current_thread():
                self.close_wake_pipe()
            else:
                self.wake()  # the pump thread wakes, sees the pool closed, and closes the pipe

    def close_wake_pipe(self) -> None:
        """Close the pipe that wakes the pump thread (with the guard held, once nobody polls it)."""
        for fd in (self.wake_r, self.wake_w):
            if fd >= 0:
                os.close(fd)
        self.wake_r = self.wake_w = -1

    def forget(self) -> None:
        for manager in self.managers:
            manager.forget()
        self.closed = self.shutting_down = True
        self.pump = None
