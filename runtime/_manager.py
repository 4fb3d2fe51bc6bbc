"""The manager of one worker VM, in VM 0: sends it jobs, reads what it says, and ends jobs.

A job's life, end to end (every name is a module of this package)::

  VM 0, the caller's thread                                      worker VM i (a process of its own)
  ─────────────────────────                                      ──────────────────────────────────
  ComputeThread.submit_call(fn, *args)  or  ComputePool.submit
    │ _jobs.call_job: args pickled now (_payload.encode; big
    │ buffers copied once into a shared-memory segment)
    ▼
  the queue (a ComputeThread's FIFO, or the pool's by priority)
    │ Manager.dispatch(): up to ``window`` jobs in flight
    ▼
  _channel ══ _protocol.Call(seq, call) ════════════════▶  _worker: the loop reads it (the segment's
             call: the encoded (fn, args, kwargs), and       descriptor with it), maps the segment,
             the segment's descriptor (SCM_RIGHTS)           unpickles the arguments, calls fn
  Manager.service() ◀═══ Progress(seq, fraction, text) ═══  report_progress (coalesced, ~60 a second)
  Manager.service() ◀═══ Ok(seq, value, seconds) | Err ══  the value encoded as above, or the error
    │ end_job(): the outcome recorded where its taker looks
    ▼
  last_retval() / Future.result() / ComputePool.intake(): _jobs.ReceivedValue.decode() maps the
  segment (or finds it mapped: _segments) and unpickles (numpy arrays arrive as views of it); when
  the value is collected, a Release(segment ids) goes back so the sender can reuse the segment.

Nothing blocks the frame: ``service()`` reads whatever has arrived and returns. Whoever looks runs it
(``is_done``, ``progress``, a wait, a pool's ``intake``) and, while futures are pending, a pump thread.
A VM that dies (crash, ``exit()``, kill) ends its running job with ``VMDiedError``; jobs sent to it but
not started go back to the front of the queue, and the next job starts a fresh VM (``_launcher``).
"""

from __future__ import annotations

import signal
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence

from ._errors import JobCancelledError, VMClosedError, VMDiedError
from ._guard import Guard
from ._jobs import DroppableValue, Job, JobQueue, LastOutcome, ReceivedValue, claim_future, rebuild_exception
from ._launcher import LAUNCHER
from ._protocol import Err, Exiting, Message, Ok, Progress, Release, Skipped
from ._reaper import REAPER
from ._vm_process import VMProcess, describe_exit

CLOSE_TIMEOUT = 1.0
PUMP_INTERVAL = 0.05


class Manager:
    """All VM 0 state of one worker VM: its process, the jobs in flight, and their outcomes.

    It holds no reference to its public owner (a ComputeThread or a pool), so garbage collection can
    collect the owner and close the manager. ``window`` jobs may be in flight at once: one runs in the
    VM, the rest wait in its socket so that it never idles between two jobs (a pool sets more than one).
    """

    def __init__(
        self, vm_index: int, name: str, setup: str | None, guard: Guard, queue: JobQueue, *, owns_queue: bool
    ) -> None:
        self.vm_index = vm_index
        self.name = name  # what messages call it: "ComputeThread(1)", "ComputePool VM 1"
        self.setup = setup
        self.guard = guard
        self.queue = queue
        # A ComputeThread's manager owns its queue: close() ends the queued jobs too, and ``idle`` counts
        # them. A pool's managers share the pool's queue, which the pool ends itself; and a pool's futures
        # may be dropped unread, so their values clean up after themselves.
        self.owns_queue = owns_queue
        self.value_type = ReceivedValue if owns_queue else DroppableValue
        self.window = 1
        self.proc: VMProcess | None = None
        self.inflight: deque[Job] = deque()  # sent to the VM, in order; the first one is running
        self.closed = False
        # Set as close() begins, before it kills a busy VM without the lock: whoever then sees that VM
        # exit ends the job as closed (not died), and no queued job starts on a new VM meanwhile.
        self.closing = False
        self.seq = 0
        self.last = LastOutcome()  # the last pocketpy job's, for last_error() and last_retval()
        self.progress: tuple[float, str] = (0.0, "")
        self.pump: threading.Thread | None = None  # services the VM while a ComputeThread's futures wait
        self.started_at = 0.0
        self.last_job_seconds: float | None = None
        self.jobs_done = 0
        self.last_vm_seconds = 0.0  # how long the last job that returned ran, as the VM clocked it
        self.busy_seconds = 0.0  # time with a job in flight, for a pool's statistics
        self.busy_since = 0.0

    # -- state ------------------------------------------------------------------------------------------

    @property
    def running(self) -> Job | None:
        return self.inflight[0] if self.inflight else None

    @property
    def idle(self) -> bool:
        """No job in flight, and (when the queue is its own) none queued."""
        return not self.inflight and not (self.owns_queue and self.queue)

    # -- sending jobs ---------------------------------------------------------------------------------

    def dispatch(self, limit: int | None = None) -> None:
        """Send queued jobs (at most ``limit``) while fewer than ``window`` are in flight (beyond two, only
        small ones: the socket's buffer then always has room, so sending never waits for a busy VM)."""
        if len(self.inflight) > self.window // 2 or not self.queue:
            return  # refill in bursts, half a window at a time: one system call sends many small jobs
        self.send_queued(limit)

    def send_queued(self, limit: int | None = None, fresh: Job | None = None) -> None:
        """``dispatch`` once its checks have passed (a pool's, for all VMs); ``fresh``: see ``take_fresh``."""
        for attempt in (1, 2):
            batch = self.take_batch(limit) if fresh is None else self.take_fresh(fresh)
            fresh = None  # (not sent, it went to the front of the queue, as a queued one does)
            if not batch:
                return
            try:
                self.send(batch)
                return
            except BaseException as exc:
                error = exc
            # Not sent: back to the front of the queue, except the first job on the second failure (no
            # VM could be started or reached: it fails; the next one may have more luck).
            jobs = [job for _message, job in batch]
            for _ in jobs:
                self.inflight.pop()
            if attempt == 1 and isinstance(error, OSError):
                self.queue.give_back(jobs)
                self.replace_dead_proc()
                continue
            self.queue.give_back(jobs[1:])
            failed = jobs[0]
            failed.done = True
            failed.reclaim()
            if failed.future is None:
                raise error
            failed.error = error
            self.guard.to_resolve.append(failed)
            self.dispatch()
            return

    def take_batch(self, limit: int | None) -> list[tuple[Message, Job]]:
        """Move the jobs to send now from the queue to ``inflight``, each with its numbered message."""
        queue, inflight = self.queue, self.inflight
        count = len(inflight)
        room = self.window if limit is None or count + limit > self.window else count + limit
        batch: list[tuple[Message, Job]] = []
        while count < room and not self.closing:
            job = queue.first()
            if job is None or (count >= 2 and not job.small):
                break
            if job.future is not None and not job.claimed:
                if not claim_future(job.future):
                    queue.drop_first()
                    job.reclaim()
                    continue  # cancelled while it waited
                job.claimed = True  # (a job given back keeps its running future)
            if job.kind == "pocketpy":
                self.last.clear()
            # In flight before it leaves the queue: a lock-free ``idle`` never sees a gap.
            batch.append(self.start(job))
            queue.drop_first()
            count += 1
        return batch

    def take_fresh(self, job: Job) -> list[tuple[Message, Job]]:
        """``take_batch`` for a pool's new job that never queued (its future is fresh, so claiming it
        cannot fail; ``PoolCore.send_fresh`` saw room): the same steps, without the loop's checks."""
        if self.closing:  # (closing meanwhile: it waits where queued jobs do, for close() to end)
            self.queue.give_back([job])
            return []
        claim_future(job.future)  # type: ignore[arg-type]
        job.claimed = True
        return [self.start(job)]

    def start(self, job: Job) -> tuple[Message, Job]:
        """Put ``job`` in flight (the running job, if it is the only one) and number its message."""
        inflight = self.inflight
        inflight.append(job)
        if len(inflight) == 1:
            self.busy_since = self.started_at = time.perf_counter()
            self.progress = (0.0, "")
        self.seq = seq = self.seq + 1
        return job.message(seq), job

    def send(self, batch: list[tuple[Message, Job]]) -> None:
        """Send the jobs' messages in one go, starting a VM first if there is none."""
        proc = self.proc
        if proc is None:
            proc = self.proc = LAUNCHER.launch(self.vm_index, self.setup)
        if proc.releases:
            proc.flush_releases()
        if len(batch) == 1:  # the usual case for a ComputeThread: no list of frames to build
            message, job = batch[0]
            proc.channel.send(message, job.fds)
        else:
            proc.channel.send_batch([(message, job.fds) for message, job in batch])
        for _message, job in batch:
            if job.segments:
                # The VM has the segments now; they come back when it says so, or when it ends.
                proc.outstanding.update(job.segments)
                job.sent_segments, job.segments = job.segments, ()

    def replace_dead_proc(self) -> None:
        """The VM could not be reached: it died while nobody was watching. End it as it ended."""
        proc = self.proc
        if proc is None:
            return
        if not self.inflight:
            self.drop_proc(kill=True)  # it died idle: nothing was lost
            return
        proc.kill()
        code = proc.wait_exit(0.05)
        self.on_exit(-signal.SIGKILL if code is None else code)

    def give_back_unstarted(self) -> None:
        """The VM is going: the jobs in flight behind the running one never started; queue them again,
        first in line, with their argument segments (the VM never received those). Those it was asked
        to skip end as cancelled instead."""
        proc = self.proc
        unstarted = [self.inflight.pop() for _ in range(len(self.inflight) - 1)][::-1]
        for job in unstarted:
            if proc is not None:
                proc.outstanding.difference_update(job.sent_segments)
            job.segments, job.sent_segments = job.sent_segments, ()
            if job.skip_requested:
                job.reclaim()
                job.done = True
                job.fail(JobCancelledError("the job was cancelled before it ran"), "JobCancelledError\n")
                self.guard.to_resolve.append(job)
        unstarted = [job for job in unstarted if not job.skip_requested]
        if unstarted:
            self.queue.give_back(unstarted)

    def drop_proc(self, *, kill: bool) -> None:
        proc, self.proc = self.proc, None
        if proc is not None:
            REAPER.adopt(proc, kill=kill)

    # -- reading what the VM says ---------------------------------------------------------------------

    def service(self) -> None:
        """Handle every message, end-of-file and exit that has arrived, without blocking."""
        while True:
            proc = self.proc
            if proc is None:
                return
            if proc.releases and not proc.eof:
                proc.flush_releases()
            if not proc.ready():
                return
            if not proc.eof:
                try:
                    received = proc.channel.recv_nowait()
                except (EOFError, OSError):
                    proc.eof = True
                    continue
                if received is not None:  # and the rest that read brought, with no system call between
                    while received is not None:
                        self.on_message(proc, *received)
                        received = proc.channel.take_buffered() if self.proc is proc else None
                    if self.proc is proc and proc.channel.partial():
                        continue  # a read stops at 64 KiB (or at descriptors): the rest may be there
                    return  # whole messages came: what follows is for the next look (it is readable)
            # Nothing (complete) to read: the VM may have ended. Its messages were read first; a
            # process the job forked may hold the channel open, so the exit code decides.
            code = proc.poll_exit()
            if code is None:
                return
            self.on_exit(code)

    def on_message(self, proc: VMProcess, message: Message, fds: Sequence[int]) -> None:
        """Handle one message from the VM and the descriptors that came with it."""
        job = self.inflight[0] if self.inflight else None  # the running job
        if message.__class__ is Ok and job is not None and message.seq == job.seq:
            # The usual message first (no isinstance chain); a value without descriptors needs no __del__.
            job.result = (self.value_type if fds else ReceivedValue)(message.value, fds, proc.received)
            self.last_vm_seconds = message.seconds
            self.end_job(job)
            return
        if isinstance(message, Release):
            proc.take_back(message.segments)
            return
        assert isinstance(message, (Ok, Err, Skipped, Progress, Exiting))
        if job is None or message.seq != job.seq:
            if (payload := getattr(message, "value", getattr(message, "exception", None))) is not None:
                ReceivedValue(payload, fds, proc.received).discard()  # a job that ended otherwise
            return
        if isinstance(message, Skipped):
            # The VM closed the arguments' descriptors unread: their segments are free again.
            proc.outstanding.difference_update(job.sent_segments)
            job.segments, job.sent_segments = job.sent_segments, ()
            job.reclaim()
            text = f"the job was cancelled before it ran (VM {self.vm_index} skipped it)"
            job.fail(JobCancelledError(text), f"JobCancelledError: {text}\n")
            self.end_job(job)
        elif isinstance(message, Progress):
            self.progress = job.progress = (message.fraction, message.message)
        elif isinstance(message, Exiting):
            job.exit_note = message.note
        elif isinstance(message, Err):  # (the running job's Ok took the first branch)
            exception = message.exception
            received = None if exception is None else ReceivedValue(exception, fds, proc.received)
            job.fail(rebuild_exception(received, message.traceback), message.traceback)
            if message.retire:
                job.reclaim()  # it never looked at the arguments
                self.give_back_unstarted()
                self.drop_proc(kill=False)  # the VM exits by itself; the next job gets a fresh one
            self.end_job(job)

    def on_exit(self, code: int) -> None:
        job = self.running
        if job is not None:
            self.give_back_unstarted()
        proc, self.proc = self.proc, None
        if proc is not None:
            REAPER.adopt(proc, kill=False)
        if job is None:
            return
        if self.closing:
            self.fail_as_closed(job)  # close() killed it
        else:
            note = f" ({job.exit_note})" if job.exit_note else ""
            text = f"VM {self.vm_index} died during the job: {describe_exit(code)}{note}"
            job.fail(VMDiedError(text), f"VMDiedError: {text}\n")
        job.reclaim()
        self.end_job(job)

    def fail_as_closed(self, job: Job) -> None:
        text = f"{self.name} was closed before the job finished"
        job.fail(VMClosedError(text), f"VMClosedError: {text}\n")

    def end_job(self, job: Job) -> None:
        """Record how the running ``job`` ended where its taker will look, then send the next jobs."""
        inflight = self.inflight
        assert inflight and inflight[0] is job
        inflight.popleft()
        job.done = True
        now = time.perf_counter()
        self.last_job_seconds = now - self.started_at
        self.jobs_done += 1
        if inflight:  # the next job starts running in the VM
            self.progress = (0.0, "")
            self.started_at = now
        else:
            self.busy_seconds += now - self.busy_since
        if job.kind == "pocketpy":
            self.last.record(job)
        elif job.abandoned:
            if job.result is not None:
                job.result.discard()
        elif job.future is not None:
            self.guard.to_resolve.append(job)  # resolved when the lock is released
        if len(inflight) <= self.window // 2 and self.queue:  # (``dispatch`` written out: once a job)
            self.send_queued()

    # -- ending -----------------------------------------------------------------------------------------

    def cancel(self, only: Callable[[Job], bool] | None = None) -> bool:
        """Kill the VM under the running job (if it passes ``only``, once the VM's news is read), which
        ends with ``JobCancelledError``; return if one ran."""
        with self.guard:
            self.service()
            job = self.running
            if job is None or (only is not None and not only(job)):
                return False
            self.give_back_unstarted()
            self.drop_proc(kill=True)
            text = f"the job was cancelled: VM {self.vm_index} was stopped by cancel() and will be replaced"
            job.fail(JobCancelledError(text), f"JobCancelledError: {text}\n")
            job.reclaim()
            self.end_job(job)
            return True

    def close(self, *, wait: bool = True, resolve_futures: bool = True) -> None:
        """Stop the VM and end its jobs as closed; with ``wait``, until the VM has exited (at most ~1 s).

        The futures of the jobs that end are resolved here, unless ``resolve_futures`` is False: then
        they wait in the guard's ``to_resolve`` for the caller to resolve.
        """
        # Kill a busy VM before taking the lock, which a thread in the middle of a call may hold.
        self.closing = True
        proc, busy = self.proc, bool(self.inflight)
        if proc is not None and busy and not self.closed:
            proc.kill()
        with self.guard if resolve_futures else self.guard.lock:
            if self.closed:
                return
            self.closed = True
            busy = bool(self.inflight)
            ending = list(self.inflight)  # their futures are running already
            self.inflight.clear()
            queued = self.queue.take_all() if self.owns_queue else []
            self.last.clear()
            proc, self.proc = self.proc, None
            for job in queued:
                # A queued future runs from now on, so nobody can cancel it before its resolution.
                if job.future is None or job.claimed or claim_future(job.future):
                    ending.append(job)
                else:
                    job.reclaim()  # cancelled while it waited: nothing to resolve
            for job in ending:
                self.fail_as_closed(job)
                job.done = True
                job.reclaim()
                if job.future is not None and not job.abandoned:
                    self.guard.to_resolve.append(job)
        if proc is not None:
            REAPER.stop(proc, busy=busy, wait=CLOSE_TIMEOUT if wait else None)

    def forget(self) -> None:
        """In a child forked from VM 0: this VM is the parent's; read as closed, touch nothing."""
        self.guard.forget()
        self.closed = self.closing = True
        self.pump = None
        self.proc = None
        self.inflight.clear()
        if self.owns_queue:
            self.queue.take_all()
