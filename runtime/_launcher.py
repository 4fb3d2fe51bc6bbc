"""Starting and ending worker processes, for VM 0.

Two ways to start a VM, chosen automatically (``configure(start_method=...)`` overrides):

* ``"template"`` (Linux): ask the template process (see ``_template``) to fork one: ~1-10 ms, with the
  runtime and the ``preload`` modules already imported;
* ``"spawn"`` (everywhere else): start a fresh interpreter with ``python -c``: tens of milliseconds.

Either way the new VM gets one end of a private socket pair and VM 0 keeps the other; VM 0 writes the
``Init`` message (VM index, ``sys.path``, working directory, setup source) at once, so starting a VM
never blocks on the child. It returns VM 0's handle on the worker (``_vm_process``).
"""

from __future__ import annotations

import multiprocessing.process
import os
import pickle
import queue
import socket
import subprocess
import sys
import threading
from collections.abc import Callable, Iterable
from concurrent.futures import Future
from typing import Any, TypeVar

from ._channel import Channel, socket_pair
from ._protocol import Fork, Init, TemplateConfig
from ._reaper import REAPER
from ._vm_process import ForkedVM, SpawnedVM, VMProcess

T = TypeVar("T")
# The runtime may be vendored into a game as a subpackage (``mygame.runtime``): new processes import it
# by its full name, from the folder that holds its top-level package.
_PACKAGE = __package__ or "runtime"
_PACKAGE_PARENT = os.path.realpath(__file__)
for _ in range(_PACKAGE.count(".") + 2):
    _PACKAGE_PARENT = os.path.dirname(_PACKAGE_PARENT)
START_METHODS = ("template", "spawn")
DEFAULT_NICE = 10
IDLE = "idle"  # nice="idle": the VMs run under SCHED_IDLE, on CPU time nothing else wants (Linux)


def default_start_method() -> str:
    """``"template"`` where forking a clean template is safe and fast (Linux), else ``"spawn"``."""
    return "template" if sys.platform.startswith("linux") and hasattr(os, "fork") else "spawn"


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
        self.reset()

    def reset(self) -> None:
        """Forget every setting and the template (a fresh launcher; after a fork, in the child)."""
        self._lock = threading.Lock()
        self.preload: list[str] = []
        # How much lower than VM 0's a VM's CPU priority is (an ``os.nice`` increment): when VM 0 and
        # busy VMs share a core, the game's frame wins it.
        self.nice: int | str = DEFAULT_NICE
        self.start_method = default_start_method()
        self._template: subprocess.Popen[bytes] | None = None
        self._ctl: socket.socket | None = None
        self._owner_pid = os.getpid()
        self._spawner: _SpawnThread | None = None

    @property
    def started(self) -> bool:
        """Whether the template is running (configuration is then fixed until ``shutdown()``)."""
        return self._template is not None

    def configure(
        self, preload: Iterable[str] | None, start_method: str | None, nice: int | str | None
    ) -> None:
        if nice is not None and nice != IDLE and (type(nice) is not int or not 0 <= nice <= 19):
            raise ValueError(f"nice must be an int in 0..19 or {IDLE!r}, got {nice!r}")
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
            self.reset()
        # Everything that can fail in VM 0 happens before a process exists (os.getcwd() raises if the
        # working directory was deleted).
        authkey = bytes(multiprocessing.process.current_process().authkey)
        init = Init(vm_index, list(sys.path), os.getcwd(), setup, self.nice, authkey)
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
            vm.channel.send(init)
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
                    socket.send_fds(ctl, [pickle.dumps(Fork(vm_index))], [theirs.fileno(), status_w])
                except OSError:
                    # The template died (killed from outside): start a new one and ask again.
                    self._stop_template()
                    ctl = self._ensure_template()
                    socket.send_fds(ctl, [pickle.dumps(Fork(vm_index))], [theirs.fileno(), status_w])
        except BaseException:
            os.close(status_r)
            raise
        finally:
            os.close(status_w)
        return ForkedVM(Channel(ours), vm_index, status_r)

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
        return SpawnedVM(Channel(ours), vm_index, popen)

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
        config = TemplateConfig(list(sys.path), self.preload)
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


LAUNCHER = Launcher()


def forget_after_fork() -> None:
    """In a child forked from VM 0 (by the game, not by us): the template and VMs are the parent's.

    Reset in place: other modules hold these objects by name.
    """
    LAUNCHER.reset()
    REAPER.forget()
