"""A private, duplex, message-framed pipe between VM 0 and one worker VM.

Built on ``multiprocessing.connection.Connection`` over a Unix socket pair (a private channel: no port is
opened anywhere). Adds what a frame loop needs: a readiness check that costs one ``poll`` system call, and
a wait that spins for a few tens of microseconds before it sleeps. Waking a sleeping process on the
other core costs ~25-30 us each way, while a short spin catches a quick reply in ~2 us; the spin is
bounded, so a long wait still sleeps in the kernel and burns no CPU.
"""

from __future__ import annotations

import os
import pickle
import select
import socket
import threading
import time
from multiprocessing.connection import Connection
from typing import Any

SPIN_SECONDS = 50e-6

_READABLE = select.POLLIN | select.POLLHUP | select.POLLERR
_WRITABLE = select.POLLOUT


def socket_pair() -> tuple[socket.socket, socket.socket]:
    """Return a connected pair of Unix stream sockets (VM 0's end first)."""
    return socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)


class Channel:
    """One end of the pipe: send and receive whole messages (pickled tuples)."""

    def __init__(self, fd: int) -> None:
        self._conn = Connection(fd)
        self.fd = fd
        self._poller = select.poll()
        self._poller.register(fd, _READABLE)
        self._send_lock = threading.Lock()

    def send(self, message: tuple[Any, ...]) -> None:
        """Send one message (blocks only while the peer's socket buffer is full)."""
        data = pickle.dumps(message, pickle.HIGHEST_PROTOCOL)
        with self._send_lock:
            self._conn.send_bytes(data)

    def try_send(self, message: tuple[Any, ...]) -> bool:
        """Send one message only if that cannot block; return whether it was sent."""
        if not self._send_lock.acquire(blocking=False):
            return False
        try:
            poller = select.poll()
            poller.register(self.fd, _WRITABLE)
            if not poller.poll(0):
                return False
            self._conn.send_bytes(pickle.dumps(message, pickle.HIGHEST_PROTOCOL))
            return True
        finally:
            self._send_lock.release()

    def recv(self) -> tuple[Any, ...]:
        """Receive one message; raises ``EOFError`` once the peer has gone."""
        message: tuple[Any, ...] = pickle.loads(self._conn.recv_bytes())
        return message

    def readable(self) -> bool:
        """Return whether a message (or end-of-file) is waiting, without blocking.

        Callers serialise this (VM 0 calls it under the ComputeThread's lock): a poll object cannot be
        polled by two threads at once.
        """
        return bool(self._poller.poll(0))

    def wait_readable(self, timeout: float | None, *, spin: float = SPIN_SECONDS) -> bool:
        """Wait until a message (or end-of-file) is waiting, at most ``timeout`` seconds (None: forever).

        Safe to call from several threads at once (each wait uses its own poll object).
        """
        poller = select.poll()
        poller.register(self.fd, _READABLE)
        return wait_fd(poller, timeout, spin=spin)

    def close(self) -> None:
        """Close this end; the peer sees end-of-file."""
        try:
            self._poller.unregister(self.fd)
        except (KeyError, ValueError):
            pass
        self._conn.close()


def wait_fd(poller: select.poll, timeout: float | None, *, spin: float = SPIN_SECONDS) -> bool:
    """Poll ``poller`` with a bounded spin first, then sleep in the kernel for the rest of ``timeout``."""
    if poller.poll(0):
        return True
    if spin > 0 and (timeout is None or timeout > 0):
        end = time.perf_counter() + (spin if timeout is None else min(spin, timeout))
        while time.perf_counter() < end:
            if poller.poll(0):
                return True
            # If the peer shares this core (a busy machine), let it run instead of spinning against it.
            os.sched_yield()
        if timeout is not None:
            timeout -= spin
    if timeout is not None and timeout <= 0:
        return False
    # poll() takes milliseconds; round up so a short timeout still sleeps rather than spins.
    millis = None if timeout is None else max(1, int(timeout * 1000 + 0.999))
    return bool(poller.poll(millis))
