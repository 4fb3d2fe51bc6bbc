"""A private, duplex, message-framed pipe between VM 0 and one worker VM.

A Unix socket pair (private: no port is opened anywhere). Each message is a record of ``_protocol``,
pickled as its plain wire tuple behind an 8-byte length, and may carry file descriptors (the
shared-memory segments of big values) as ``SCM_RIGHTS`` ancillary data on its first byte.
``multiprocessing.connection.Connection`` frames messages the same way but cannot pass descriptors,
hence this small class.

Adds what a frame loop needs: a receive that never blocks (``recv_nowait`` assembles a message over
as many calls as it takes), and a wait that spins for a few tens of microseconds before it sleeps.
Waking a sleeping process on the other core costs ~25-30 us each way, while a short spin catches a
quick reply in a few microseconds; the spin is bounded (and yields the core each turn), so a long wait
still sleeps in the kernel and burns no CPU.
"""

from __future__ import annotations

import array
import contextlib
import os
import pickle
import select
import socket
import struct
import threading
import time
from collections.abc import Sequence

from ._protocol import Message, from_wire, to_wire

SPIN_SECONDS = 50e-6
SEND_BUFFER = 1 << 20
MAX_FDS = 8  # per message: at most one segment per payload, and a message has at most three

_HEADER = struct.Struct("!Q")
_NOSIGNAL = getattr(socket, "MSG_NOSIGNAL", 0)
_DONTWAIT = socket.MSG_DONTWAIT
READABLE = select.POLLIN | select.POLLHUP | select.POLLERR  # poll events that mean "look now"
_FD_SPACE = socket.CMSG_SPACE(MAX_FDS * array.array("i").itemsize)


def socket_pair() -> tuple[socket.socket, socket.socket]:
    """Return a connected pair of Unix stream sockets (VM 0's end first).

    Their send buffers are enlarged (as far as the system allows) so that a job message, which
    ``_payload`` keeps under ~130 KiB, always fits: VM 0 can send a job to a VM that is still running
    its setup without waiting for it to read.
    """
    pair = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    for sock in pair:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SEND_BUFFER)
    return pair


class Channel:
    """One end of the pipe: send and receive whole messages, with descriptors attached."""

    def __init__(self, sock: socket.socket) -> None:
        sock.setblocking(True)
        self._sock = sock
        self.fd = sock.fileno()
        self._send_lock = threading.Lock()
        # The message being received: its header so far, then its body and how much of it has come.
        self._header = bytearray()
        self._body: bytearray | None = None
        self._got = 0
        self._fds: list[int] = []

    def send(self, message: Message, fds: Sequence[int] = ()) -> None:
        """Send one message (blocks only while the peer's socket buffer is full)."""
        data = pickle.dumps(to_wire(message), pickle.HIGHEST_PROTOCOL)
        with self._send_lock:
            self._send(data, fds)

    def try_send(self, message: Message) -> bool:
        """Send one message only if that cannot block; return whether it was sent."""
        if not self._send_lock.acquire(blocking=False):
            return False
        try:
            poller = select.poll()
            poller.register(self.fd, select.POLLOUT)
            if not poller.poll(0):
                return False
            self._send(pickle.dumps(to_wire(message), pickle.HIGHEST_PROTOCOL), ())
            return True
        finally:
            self._send_lock.release()

    def _send(self, data: bytes, fds: Sequence[int]) -> None:
        frame = _HEADER.pack(len(data)) + data
        # MSG_NOSIGNAL: a peer that died raises BrokenPipeError here instead of SIGPIPE killing this VM.
        if fds:
            ancillary = [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", fds))]
            sent = self._sock.sendmsg([frame], ancillary, _NOSIGNAL)
            frame = frame[sent:]
        if frame:
            self._sock.sendall(frame, _NOSIGNAL)

    def recv(self) -> tuple[Message, list[int]]:
        """Receive one message and the descriptors that came with it, waiting as long as it takes.

        Raises ``EOFError`` once the peer has gone. The caller owns the descriptors (and must close them).
        """
        while True:
            received = self.recv_nowait()
            if received is not None:
                return received
            self.wait_readable(None)

    def recv_nowait(self) -> tuple[Message, list[int]] | None:
        """Receive one message if all of it has arrived, else keep what has and return None; never blocks.

        A message that arrives in pieces is assembled over several calls, so a reader that is interrupted
        (or a peer that stalls mid-message) never leaves the stream out of step. Raises ``EOFError`` once
        the peer has gone.
        """
        try:
            while True:
                body = self._body
                if body is None:
                    missing = _HEADER.size - len(self._header)
                    chunk, ancillary, _flags, _addr = self._sock.recvmsg(missing, _FD_SPACE, _DONTWAIT)
                    self._take_fds(ancillary)
                    if not chunk:
                        self._reset_reader()
                        raise EOFError("the other VM closed the channel")
                    self._header += chunk
                    if len(self._header) < _HEADER.size:
                        continue
                    (size,) = _HEADER.unpack(self._header)
                    body = self._body = bytearray(size)
                    self._got = 0
                if self._got < len(body):
                    n = self._sock.recv_into(memoryview(body)[self._got :], 0, _DONTWAIT)
                    if n == 0:
                        self._reset_reader()
                        raise EOFError("the other VM closed the channel mid-message")
                    self._got += n
                    continue
                fds = self._fds
                self._fds = []
                self._header = bytearray()
                self._body = None
                return from_wire(pickle.loads(body)), fds
        except BlockingIOError:
            return None

    def _take_fds(self, ancillary: list[tuple[int, int, bytes]]) -> None:
        for level, kind, data in ancillary:
            if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                received = array.array("i")
                received.frombytes(data[: len(data) - len(data) % received.itemsize])
                self._fds.extend(received)

    def _reset_reader(self) -> None:
        for fd in self._fds:
            os.close(fd)
        self._fds = []
        self._header = bytearray()
        self._body = None

    def wait_readable(self, timeout: float | None, *, spin: float = SPIN_SECONDS) -> bool:
        """Wait until a message (or end-of-file) is waiting, at most ``timeout`` seconds (None: forever).

        Safe to call from several threads at once (each wait uses its own poll object).
        """
        poller = select.poll()
        poller.register(self.fd, READABLE)
        return wait_fd(poller, timeout, spin=spin)

    def close(self) -> None:
        """Close this end; the peer sees end-of-file."""
        self._reset_reader()
        self._sock.close()


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
