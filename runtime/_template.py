"""The template process: a clean interpreter that forks new VMs on request, in milliseconds.

VM 0 starts it once (``python -c``, never a fork of VM 0, which may hold pygame/SDL state and threads),
with the runtime and the ``preload`` modules imported. Each request carries a socket for the new VM and
the write end of a status pipe; the template forks, the child becomes the VM, and the template writes
the child's pid, and later its exit code, to the status pipe::

    VM 0 ──Fork(vm_index) + [vm socket, status pipe]──▶ template ──fork──▶ VM i (serves the socket)
    VM 0 ◀────────────── pid, then exit code ─────────────── template (reaps VM i)

When VM 0 goes away, for any reason, the control socket reaches end-of-file: the template kills every VM
it forked and exits. The VMs die with the template too (``_lifeline``: Linux ``PR_SET_PDEATHSIG``),
so nothing outlives VM 0. The same idea as ``multiprocessing``'s forkserver.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import pickle
import select
import signal
import socket
import struct
import sys
import traceback
from typing import NoReturn

from . import _lifeline, _worker
from ._protocol import STATUS_FORMAT, Fork, TemplateConfig


def main(ctl_fd: int) -> NoReturn:
    """Serve fork requests on the control socket ``ctl_fd`` until VM 0 closes it."""
    # subprocess keeps the launching thread's signal mask; a blocked SIGCHLD would stop all reaping.
    signal.pthread_sigmask(signal.SIG_SETMASK, set())
    _lifeline.prepare()
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    ctl = socket.socket(fileno=ctl_fd)
    config: TemplateConfig = pickle.loads(ctl.recv(1 << 16))
    sys.path[:] = config.sys_path
    _preload(config.preload)

    wake_r, wake_w = os.pipe()
    os.set_blocking(wake_w, False)
    signal.set_wakeup_fd(wake_w)
    signal.signal(signal.SIGCHLD, lambda *_: None)
    children: dict[int, int] = {}  # pid -> write end of its status pipe
    try:
        while True:
            readable, _, _ = select.select([ctl.fileno(), wake_r], [], [])
            if wake_r in readable:
                with contextlib.suppress(BlockingIOError):
                    os.read(wake_r, 4096)
                _reap(children)
            if ctl.fileno() in readable:
                message, fds, _flags, _addr = socket.recv_fds(ctl, 4096, 2)
                if not message:
                    break  # VM 0 is gone
                request = pickle.loads(message)
                if isinstance(request, Fork):
                    vm_fd, status_fd = fds
                    pid = _fork_vm(vm_fd, status_fd, [ctl_fd, wake_r, wake_w, *children.values()])
                    os.write(status_fd, struct.pack(STATUS_FORMAT, pid))
                    children[pid] = status_fd
    finally:
        for pid in children:
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)
        while children:
            _reap(children, block=True)
    os._exit(0)


def _preload(modules: list[str]) -> None:
    for name in ["cloudpickle", *modules]:
        try:
            importlib.import_module(name)
        except Exception:
            print(f"runtime: could not preload {name!r} in the VM template:", file=sys.stderr)
            traceback.print_exc()


def _fork_vm(vm_fd: int, status_fd: int, close_in_child: list[int]) -> int:
    template_pid = os.getpid()
    pid = os.fork()
    if pid == 0:
        try:
            for fd in [*close_in_child, status_fd]:
                with contextlib.suppress(OSError):
                    os.close(fd)
            signal.set_wakeup_fd(-1)
            signal.signal(signal.SIGCHLD, signal.SIG_DFL)
            _lifeline.die_with_parent()
            if os.getppid() != template_pid:
                os._exit(1)  # the template died while this VM was being born
            _worker.run_forked(vm_fd)
        finally:
            os._exit(1)
    os.close(vm_fd)
    return pid


def _reap(children: dict[int, int], *, block: bool = False) -> None:
    while children:
        try:
            pid, status = os.waitpid(-1, 0 if block else os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
        status_fd = children.pop(pid, None)
        if status_fd is not None:
            with contextlib.suppress(OSError):
                os.write(status_fd, struct.pack(STATUS_FORMAT, os.waitstatus_to_exitcode(status)))
            os.close(status_fd)
        if block:
            return
