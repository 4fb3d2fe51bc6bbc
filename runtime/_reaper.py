"""The reaper: finishes off VMs that VM 0 has let go, off the caller's thread.

It waits for each one to exit (SIGKILL after a grace period), then closes VM 0's ends and takes back
the segments the VM held. Its thread also runs what must not run where it was asked for: a garbage
collection callback (which may fire in any thread, holding any lock) hands a close to ``call_soon``.
"""

from __future__ import annotations

import contextlib
import logging
import os
import select
import threading
import time
from collections import deque
from collections.abc import Callable

from ._protocol import Quit
from ._vm_process import VMProcess


class Reaper:
    """Finishes off VMs that VM 0 has let go: waits for exit (SIGKILL after a grace period), cleans up.

    Its thread also runs what must not run where it was asked for: ``call_soon`` is safe from a garbage
    collection callback, which may fire in any thread, in the middle of any code, holding any lock.
    """

    GRACE = 1.0

    def __init__(self) -> None:
        self._reset()

    def _reset(self) -> None:
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

    def stop(self, vm: VMProcess, *, busy: bool, wait: float | None) -> None:
        """End a VM that is closed: kill it if ``busy`` (mid-job), else ask it to quit (it exits at once,
        or sees end-of-file); then reap it within ``wait`` seconds here, or later in the thread."""
        if busy:
            vm.kill()
        else:
            try:
                vm.channel.try_send(Quit())  # never blocks; a VM that misses it sees end-of-file
            except OSError:
                pass
        if wait is None:
            self.adopt(vm, kill=False)
        elif not self.reap_now(vm, wait):
            self.adopt(vm, kill=True)

    def reap_now(self, vm: VMProcess, timeout: float) -> bool:
        """Reap ``vm`` here if it exits within ``timeout`` seconds; return whether it did."""
        if vm.wait_exit(timeout) is None:
            return False
        vm.release()
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
        self._reset()

    def _wake(self) -> None:
        with contextlib.suppress(BlockingIOError, OSError):
            os.write(self._wake_w, b"\0")

    def _run(self) -> None:
        # Each pass is a method of its own, so that nothing it looked at (a close call, a VM's record with
        # its channel and mappings) stays alive in this loop's locals while the thread sleeps.
        while True:
            self._run_calls()
            with self._lock:
                reaping = bool(self._pending)
            # Sleep until woken when there is nothing to reap; else look again every 5 ms.
            readable, _, _ = select.select([self._wake_r], [], [], 0.005 if reaping else None)
            if readable:
                with contextlib.suppress(BlockingIOError):
                    os.read(self._wake_r, 4096)
            self._reap_exited()

    def _run_calls(self) -> None:
        while self._calls:
            call = self._calls[0]  # left in the deque while it runs, so that drain() waits for it
            try:
                call()
            except Exception:
                logging.getLogger(__name__).exception("runtime: a background close failed")
            self._calls.popleft()

    def _reap_exited(self) -> None:
        with self._lock:
            pending = list(self._pending)
        now = time.monotonic()
        for vm, deadline in pending:
            if vm.poll_exit() is None:
                if now >= deadline:
                    vm.kill()
                continue
            vm.release()
            with self._lock:
                self._pending = [item for item in self._pending if item[0] is not vm]


def _finish(vm: VMProcess) -> None:
    vm.release()


REAPER = Reaper()
