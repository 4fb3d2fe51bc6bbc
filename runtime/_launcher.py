"""Starting and ending worker processes, for VM 0.

Two ways to start a VM, chosen automatically (``configure(start_method=...)`` overrides):

* ``"template"`` (Linux): ask the template process (see ``_template``) to fork one: ~1-10 ms, with the
  runtime and the ``preload`` modules already imported;
* ``"spawn"`` (everywhere else): start a fresh interpreter with ``python -c``: tens of milliseconds.

Either way the new VM gets one end of a private socket pair and VM 0 keeps the other; VM 0 writes the
init message (VM index, ``sys.path``, working directory, setup source) at once, so starting a VM never
blocks on the child. ``VMProcess`` is VM 0's handle on one worker; ``Reaper`` finishes off the ones VM 0
no longer needs (waits for their exit, escalating to SIGKILL, and closes VM 0's ends) off the caller's
thread.
"""

from __future__ import annotations

import contextlib
import logging
import os
import pickle
import queue
import select
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from concurrent.futures import Future
from typing import Any, TypeVar

from . import _payload
from ._channel import READABLE, SPIN_SECONDS, Channel, socket_pair, wait_fd
from ._template import STATUS_FORMAT

T = TypeVar("T")
_STATUS_SIZE = struct.calcsize(STATUS_FORMAT)
# The runtime may be vendored into a game as a subpackage (``mygame.runtime``): new processes import it
# by its full name, from the folder that holds its top-level package.
_PACKAGE = __package__ or "runtime"
_PACKAGE_PARENT = os.path.realpath(__file__)
for _ in range(_PACKAGE.count(".") + 2):
    _PACKAGE_PARENT = os.path.dirname(_PACKAGE_PARENT)
START_METHODS = ("template", "spawn")
DEFAULT_NICE = 10


def default_start_method() -> str:
    """``"template"`` where forking a clean template is safe and fast (Linux), else ``"spawn"``."""
    return "template" if sys.platform.startswith("linux") and hasattr(os, "fork") else "spawn"


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
        # Ids of this VM's segments that VM 0 no longer maps, queued by garbage-collection callbacks
        # (which may run in any thread) and sent back to the VM at the next safe point.
        self.releases: deque[int] = deque()
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
        return bool(self._ready.poll(0))

    def wait(self, timeout: float | None, *, spin: bool = True) -> None:
        """Wait until there is something to do: a message, end-of-file, or the exit code."""
        if not self.eof:
            poller = select.poll()  # its own: another thread may wait on the same VM
            for fd in self._watched():
                poller.register(fd, READABLE)
            wait_fd(poller, timeout, spin=SPIN_SECONDS if spin else 0.0)
        else:
            self.wait_exit(timeout)

    def _watched(self) -> list[int]:
        return [self.channel.fd]

    def kill(self) -> None:
        """SIGKILL the worker (ignored if it has already ended). Never blocks."""
        if self.poll_exit() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.pid, signal.SIGKILL)

    def release(self) -> None:
        """Close VM 0's ends of the channel (and status pipe); take back the segments the VM held.

        Called once the process has ended.
        """
        self.channel.close()
        outstanding, self.outstanding = self.outstanding, set()
        for segment in outstanding:
            # Freed, not reused: a process the job forked may still map it.
            _payload.POOL.drop(segment)


_STATUS_SLICE = 0.05  # a waiter looks again this often, in case another thread read the news


class _ForkedVM(VMProcess):
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

    def _watched(self) -> list[int]:
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


class _SpawnedVM(VMProcess):
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

    def _watched(self) -> list[int]:
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


class _SpawnThread:
    """Starts spawned VMs from one long-lived thread.

    A spawned VM asks Linux to kill it when its parent dies (``PR_SET_PDEATHSIG``), and Linux means the
    parent *thread*: a VM started by a short-lived thread (a loader thread, a pump) would die with it.
    """

    def __init__(self) -> None:
        self._requests: queue.SimpleQueue[tuple[Callable[[], Any], Future[Any]]] = queue.SimpleQueue()
        threading.Thread(target=self._run, name="runtime-spawner", daemon=True).start()

    def run(self, start: Callable[[], T]) -> T:
        """Call ``start`` in the spawner thread and return what it returns."""
        done: Future[T] = Future()
        self._requests.put((start, done))
        return done.result()

    def _run(self) -> None:
        while True:
            start, done = self._requests.get()
            try:
                done.set_result(start())
            except BaseException as exc:
                done.set_exception(exc)


class Launcher:
    """Starts VMs for this VM 0, by the template or by spawning; one per process (``LAUNCHER``)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.preload: list[str] = []
        # How much lower than VM 0's a VM's CPU priority is (an ``os.nice`` increment): when VM 0 and
        # busy VMs share a core, the game's frame wins it.
        self.nice = DEFAULT_NICE
        self.start_method = default_start_method()
        self._template: subprocess.Popen[bytes] | None = None
        self._ctl: socket.socket | None = None
        self._owner_pid = os.getpid()
        self._spawner: _SpawnThread | None = None

    @property
    def started(self) -> bool:
        """Whether the template is running (configuration is then fixed until ``shutdown()``)."""
        return self._template is not None

    def configure(self, preload: Iterable[str] | None, start_method: str | None, nice: int | None) -> None:
        if nice is not None and (type(nice) is not int or not 0 <= nice <= 19):
            raise ValueError(f"nice must be an int in 0..19, got {nice!r}")
        if start_method is not None:
            if start_method not in START_METHODS:
                raise ValueError(f"start_method must be one of {START_METHODS}, got {start_method!r}")
            if start_method == "template" and not hasattr(os, "fork"):
                raise ValueError("start_method 'template' needs os.fork, which this platform lacks")
        names: list[str] | None = None
        if preload is not None:
            if isinstance(preload, str):
                raise TypeError("preload must be a list of module names, not a str")
            import importlib.util  # only here: it is slow to import, and most games never configure

            names = list(preload)
            for name in names:
                if not isinstance(name, str) or importlib.util.find_spec(name) is None:
                    raise ValueError(f"preload module {name!r} cannot be found on sys.path")
        with self._lock:
            if nice is not None:
                self.nice = nice  # for every VM started from now on
            if self._template is not None and (preload is not None or start_method is not None):
                raise RuntimeError(
                    "configure() must be called before the first ComputeThread starts a VM "
                    "(or after runtime.shutdown())"
                )
            if start_method is not None:
                self.start_method = start_method
            if names is not None:
                self.preload = names

    def launch(self, vm_index: int, setup: str | None) -> VMProcess:
        """Start VM ``vm_index`` and queue its init message; returns at once."""
        if os.getpid() != self._owner_pid:
            # A fork of VM 0 (not made by us) must not share VM 0's template.
            self.__init__()  # type: ignore[misc]
        # Everything that can fail in VM 0 happens before a process exists (os.getcwd() raises if the
        # working directory was deleted).
        init = {
            "vm_index": vm_index,
            "sys_path": list(sys.path),
            "cwd": os.getcwd(),
            "setup": setup,
            "nice": self.nice,
        }
        ours, theirs = socket_pair()
        try:
            if self.start_method == "template":
                vm: VMProcess = self._fork(ours, theirs, vm_index)
            else:
                vm = self._spawn(ours, theirs, vm_index)
        except BaseException:
            ours.close()
            raise
        finally:
            theirs.close()
        try:
            vm.channel.send(("init", init))
        except BaseException:
            REAPER.adopt(vm, kill=True)
            raise
        return vm

    def _fork(self, ours: socket.socket, theirs: socket.socket, vm_index: int) -> VMProcess:
        status_r, status_w = os.pipe()
        try:
            with self._lock:
                ctl = self._ensure_template()
                try:
                    socket.send_fds(ctl, [pickle.dumps(("fork", vm_index))], [theirs.fileno(), status_w])
                except OSError:
                    # The template died (killed from outside): start a new one and ask again.
                    self._stop_template()
                    ctl = self._ensure_template()
                    socket.send_fds(ctl, [pickle.dumps(("fork", vm_index))], [theirs.fileno(), status_w])
        except BaseException:
            os.close(status_r)
            raise
        finally:
            os.close(status_w)
        return _ForkedVM(Channel(ours), vm_index, status_r)

    def _spawn(self, ours: socket.socket, theirs: socket.socket, vm_index: int) -> VMProcess:
        # The spawner thread gets its own copy of the VM's end, and closes it: if this thread is
        # interrupted while it waits, the descriptor stays valid until the child has it.
        fd = os.dup(theirs.fileno())
        code = (
            f"import sys; sys.path.insert(0, {_PACKAGE_PARENT!r}); "
            f"from {_PACKAGE}._worker import run_spawned; run_spawned({fd}, {os.getpid()})"
        )

        def start() -> subprocess.Popen[bytes]:
            try:
                return subprocess.Popen([sys.executable, "-c", code], pass_fds=[fd], stdin=subprocess.DEVNULL)
            finally:
                os.close(fd)

        with self._lock:
            if self._spawner is None:
                self._spawner = _SpawnThread()
            spawner = self._spawner
        popen = spawner.run(start)
        return _SpawnedVM(Channel(ours), vm_index, popen)

    def _ensure_template(self) -> socket.socket:
        if self._ctl is not None and self._template is not None and self._template.poll() is None:
            return self._ctl
        self._stop_template()
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        fd = theirs.fileno()
        code = (
            f"import sys; sys.path.insert(0, {_PACKAGE_PARENT!r}); "
            f"from {_PACKAGE}._template import main; main({fd})"
        )
        try:
            self._template = subprocess.Popen(
                [sys.executable, "-c", code], pass_fds=[fd], stdin=subprocess.DEVNULL
            )
        finally:
            theirs.close()
        config = {"sys_path": list(sys.path), "preload": self.preload}
        ours.send(pickle.dumps(config))
        self._ctl = ours
        return ours

    def _stop_template(self) -> None:
        if self._ctl is not None:
            self._ctl.close()
            self._ctl = None
        if self._template is not None:
            try:
                self._template.wait(2.0)
            except subprocess.TimeoutExpired:
                self._template.kill()
                self._template.wait()
            self._template = None

    def shutdown(self) -> None:
        """Stop the template (it kills any VM it still has) and wait for it to exit."""
        with self._lock:
            self._stop_template()


class Reaper:
    """Finishes off VMs that VM 0 has let go: waits for exit (SIGKILL after a grace period), cleans up.

    Its thread also runs what must not run where it was asked for: ``call_soon`` is safe from a garbage
    collection callback, which may fire in any thread, in the middle of any code, holding any lock.
    """

    GRACE = 1.0

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pending: list[tuple[VMProcess, float]] = []
        self._calls: deque[Callable[[], object]] = deque()
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_w, False)
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Start the thread if it is not running (call it from ordinary code, not from a GC callback)."""
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="runtime-reaper", daemon=True)
                self._thread.start()

    def call_soon(self, function: Callable[[], object]) -> None:
        """Run ``function`` in the reaper thread. Takes no lock: a deque append and a pipe write."""
        self._calls.append(function)
        self._wake()

    def adopt(self, vm: VMProcess, *, kill: bool) -> None:
        """Take ``vm`` over: kill it now if ``kill``, else after the grace period if it has not exited."""
        if kill:
            vm.kill()
        with self._lock:
            self._pending.append((vm, time.monotonic() + self.GRACE))
        self.start()
        self._wake()

    def finish(self, vm: VMProcess, timeout: float) -> bool:
        """Reap ``vm`` now if it exits within ``timeout`` seconds; return whether it did."""
        if vm.wait_exit(timeout) is None:
            return False
        _finish(vm)
        return True

    def drain(self, timeout: float) -> None:
        """Wait up to ``timeout`` seconds for every adopted VM to be reaped (and queued call run)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                if not self._pending and not self._calls:
                    return
            time.sleep(0.005)

    def forget(self) -> None:
        """In a forked child: drop the parent's VMs and calls, and start afresh."""
        os.close(self._wake_r)
        os.close(self._wake_w)
        self.__init__()  # type: ignore[misc]

    def _wake(self) -> None:
        with contextlib.suppress(BlockingIOError, OSError):
            os.write(self._wake_w, b"\0")

    def _run(self) -> None:
        while True:
            while self._calls:
                call = self._calls[0]  # left in the deque while it runs, so that drain() waits for it
                try:
                    call()
                except Exception:
                    logging.getLogger(__name__).exception("runtime: a background close failed")
                self._calls.popleft()
            with self._lock:
                pending = list(self._pending)
            # Sleep until woken when there is nothing to reap; else look again every 5 ms.
            readable, _, _ = select.select([self._wake_r], [], [], 0.005 if pending else None)
            if readable:
                with contextlib.suppress(BlockingIOError):
                    os.read(self._wake_r, 4096)
            now = time.monotonic()
            for vm, deadline in pending:
                if vm.poll_exit() is None:
                    if now >= deadline:
                        vm.kill()
                    continue
                _finish(vm)
                with self._lock:
                    self._pending = [item for item in self._pending if item[0] is not vm]


def _finish(vm: VMProcess) -> None:
    vm.release()


LAUNCHER = Launcher()
REAPER = Reaper()


def forget_after_fork() -> None:
    """In a child forked from VM 0 (by the game, not by us): the template and VMs are the parent's.

    Reset in place: other modules hold these objects by name.
    """
    LAUNCHER.__init__()  # type: ignore[misc]
    REAPER.forget()
