"""VM 0's handle on one worker process: its channel, its pid, how and when it ended, killing it.

Two kinds, one per way of starting a VM (``_launcher``): ``ForkedVM`` (forked by the template, which
reports the pid and later the exit code on a status pipe) and ``SpawnedVM`` (a child of VM 0, watched
through a pidfd where Linux has one). Either way ``ready()`` is one ``poll`` call that says whether a
message, end-of-file or news of the exit may be waiting, so a frame loop can look every frame.
"""

from __future__ import annotations

import contextlib
import os
import select
import signal
import struct
import subprocess
import threading
import time
from collections import deque
from collections.abc import Callable

from . import _payload
from ._channel import READABLE, SPIN_SECONDS, Channel, wait_fd
from ._protocol import STATUS_FORMAT, Release

_STATUS_SIZE = struct.calcsize(STATUS_FORMAT)


def describe_exit(code: int) -> str:
    """Say how a process ended, from its exit code (negative: the signal that killed it)."""
    if code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        return f"killed by {name}"
    return f"exited with code {code}"


class VMProcess:
    """VM 0's handle on one worker process: its channel, and how and when it ended."""

    def __init__(self, channel: Channel, vm_index: int) -> None:
        self.channel = channel
        self.vm_index = vm_index
        self.eof = False  # the channel reached end-of-file: the process is exiting or gone
        self.exit_code: int | None = None
        # Ids of this VM's segments whose values VM 0 no longer holds, queued by garbage-collection
        # callbacks (which may run in any thread) and sent back to the VM at the next safe point.
        self.releases: deque[int] = deque()
        self.received = _payload.ReceivedSegments(self.releases.append)  # (every received value keeps it)
        # Ids of VM 0's segments sent to this VM and not handed back yet. When the VM ends they all go
        # back to VM 0's pool (``release()``), whatever the VM kept: a crash or a kill leaks nothing.
        self.outstanding: set[int] = set()
        # What ``ready()`` polls: the channel, and (forked VMs) the status pipe that reports the exit.
        self._ready = select.poll()
        self._ready.register(channel.fd, READABLE)

    @property
    def pid(self) -> int:
        """The worker's process id, or -1 while a VM that is being forked has not reported it yet."""
        raise NotImplementedError

    def wait_pid(self, timeout: float) -> int:
        """The worker's process id, waiting up to ``timeout`` seconds for a forked VM to report it
        (-1 if it has not, or if the template died first)."""
        return self.pid

    def poll_exit(self) -> int | None:
        """Return the exit code if the process has ended, without blocking."""
        raise NotImplementedError

    def wait_exit(self, timeout: float | None) -> int | None:
        """Wait up to ``timeout`` seconds for the process to end; return its exit code or None."""
        raise NotImplementedError

    def ready(self) -> bool:
        """Whether a message, end-of-file or news of the exit may be waiting (one ``poll`` call)."""
        return bool(self._ready.poll(0)) or self.channel.buffered()

    def wait(self, timeout: float | None, *, spin: bool = True) -> None:
        """Wait until there is something to do: a message, end-of-file, or the exit code."""
        if self.channel.buffered():
            return
        if not self.eof:
            poller = select.poll()  # its own: another thread may wait on the same VM
            for fd in self.watched():
                poller.register(fd, READABLE)
            wait_fd(poller, timeout, spin=SPIN_SECONDS if spin else 0.0)
        else:
            self.wait_exit(timeout)

    def watched(self) -> list[int]:
        return [self.channel.fd]

    def kill(self) -> None:
        """SIGKILL the worker (ignored if it has already ended). Never blocks."""
        if self.poll_exit() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.pid, signal.SIGKILL)

    def flush_releases(self) -> None:
        """Hand back this VM's segments that VM 0 no longer maps (never blocks: retried next time)."""
        ids = []
        while self.releases:
            ids.append(self.releases.popleft())
        try:
            sent = self.channel.try_send(Release(ids))
        except OSError:
            return  # the VM is gone, and its segments with it
        if not sent:
            self.releases.extend(ids)

    def take_back(self, segments: list[int]) -> None:
        """The VM no longer maps these segments of VM 0's: they may be reused (those sent to it, once)."""
        for segment in segments:
            if segment in self.outstanding:
                self.outstanding.discard(segment)
                _payload.POOL.release(segment)

    def release(self) -> None:
        """Close VM 0's ends of the channel (and status pipe); take back the segments the VM held.

        Called once the process has ended.
        """
        self.channel.close()
        self.received.forget()
        outstanding, self.outstanding = self.outstanding, set()
        for segment in outstanding:
            # Freed, not reused: a process the job forked may still map it.
            _payload.POOL.drop(segment)


_STATUS_SLICE = 0.05  # a waiter looks again this often, in case another thread read the news


class ForkedVM(VMProcess):
    """A VM forked by the template; its pid and exit code arrive on the status pipe."""

    def __init__(self, channel: Channel, vm_index: int, status_fd: int) -> None:
        super().__init__(channel, vm_index)
        self._status_fd = status_fd
        os.set_blocking(status_fd, False)
        # The exit code is seen even when a process the job forked keeps the channel open.
        self._ready.register(status_fd, select.POLLIN | select.POLLHUP)
        self._status = b""
        self._pid: int | None = None
        self._kill_requested = False
        self._lock = threading.Lock()

    def watched(self) -> list[int]:
        return [self.channel.fd] if self._status_fd < 0 else [self.channel.fd, self._status_fd]

    def _read_status(self, timeout: float) -> None:
        """Read what the template has reported, waiting at most ``timeout`` seconds for it.

        Waits without the lock (each caller polls on its own), so a thread that waits never holds up
        one that only looks. Another thread may read the news first: callers wait in short slices and
        look at ``_pid``/``exit_code`` after each.
        """
        fd = self._status_fd
        if fd < 0 or self.exit_code is not None:
            return
        poller = select.poll()
        poller.register(fd, select.POLLIN | select.POLLHUP)
        if not poller.poll(max(0, int(timeout * 1000))):
            return
        with self._lock:
            while self._status_fd >= 0 and self.exit_code is None:
                try:
                    chunk = os.read(self._status_fd, 2 * _STATUS_SIZE - len(self._status))
                except BlockingIOError:
                    return  # nothing more for now (or another thread read it first)
                if not chunk:
                    # The template died before it could report: the VM died with it (PDEATHSIG).
                    self._pid = self._pid if self._pid is not None else -1
                    self.exit_code = -signal.SIGKILL
                    return
                self._status += chunk
                if self._pid is None and len(self._status) >= _STATUS_SIZE:
                    (self._pid,) = struct.unpack_from(STATUS_FORMAT, self._status, 0)
                    if self._kill_requested:
                        with contextlib.suppress(ProcessLookupError):
                            os.kill(self._pid, signal.SIGKILL)
                if len(self._status) >= 2 * _STATUS_SIZE:
                    (self.exit_code,) = struct.unpack_from(STATUS_FORMAT, self._status, _STATUS_SIZE)

    def _wait_for(self, condition: Callable[[], bool], timeout: float | None) -> None:
        deadline = None if timeout is None else time.monotonic() + timeout
        while not condition() and self._status_fd >= 0 and self.exit_code is None:
            remaining = _STATUS_SLICE if deadline is None else deadline - time.monotonic()
            if remaining <= 0:
                return
            self._read_status(min(remaining, _STATUS_SLICE))

    @property
    def pid(self) -> int:
        if self._pid is None:
            self._read_status(0)
        return -1 if self._pid is None else self._pid

    def wait_pid(self, timeout: float) -> int:
        self._wait_for(lambda: self._pid is not None, timeout)
        return -1 if self._pid is None else self._pid

    def poll_exit(self) -> int | None:
        if self.exit_code is None:
            self._read_status(0)
        return self.exit_code

    def wait_exit(self, timeout: float | None) -> int | None:
        self._wait_for(lambda: self.exit_code is not None, timeout)
        return self.exit_code

    def kill(self) -> None:
        # If the template has not reported the pid yet, the kill happens as soon as it does.
        self._kill_requested = True
        if self.poll_exit() is not None or self.pid < 0:
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.pid, signal.SIGKILL)

    def release(self) -> None:
        with self._lock:
            if self._status_fd >= 0:
                self._ready.unregister(self._status_fd)
                os.close(self._status_fd)
                self._status_fd = -1
        super().release()


class SpawnedVM(VMProcess):
    """A VM started as a fresh interpreter; VM 0 is its parent and reaps it."""

    def __init__(self, channel: Channel, vm_index: int, popen: subprocess.Popen[bytes]) -> None:
        super().__init__(channel, vm_index)
        self._popen = popen
        # A pidfd turns readable when the process exits: the exit is seen even when a process the
        # job forked keeps the channel open (Linux 5.3+; elsewhere end-of-file is the only sign).
        self._pidfd = -1
        with contextlib.suppress(AttributeError, OSError):
            self._pidfd = os.pidfd_open(popen.pid)
            self._ready.register(self._pidfd, select.POLLIN)

    def watched(self) -> list[int]:
        return [self.channel.fd] if self._pidfd < 0 else [self.channel.fd, self._pidfd]

    def kill(self) -> None:
        if self.poll_exit() is not None:
            return
        if self._pidfd >= 0:
            # Through the pidfd: it names this process, never another that has reused its pid.
            with contextlib.suppress(OSError):  # it has exited meanwhile
                signal.pidfd_send_signal(self._pidfd, signal.SIGKILL)
            return
        super().kill()

    def release(self) -> None:
        if self._pidfd >= 0:
            self._ready.unregister(self._pidfd)
            os.close(self._pidfd)
            self._pidfd = -1
        super().release()

    @property
    def pid(self) -> int:
        return self._popen.pid

    def poll_exit(self) -> int | None:
        if self.exit_code is None:
            self.exit_code = self._popen.poll()
        return self.exit_code

    def wait_exit(self, timeout: float | None) -> int | None:
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.exit_code = self._popen.wait(timeout)
        return self.exit_code
