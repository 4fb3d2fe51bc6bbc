"""A private, duplex, message-framed pipe between VM 0 and one worker VM.

A Unix socket pair (private: no port is opened anywhere). Each message is a record of ``_protocol``,
framed by ``_protocol.frame`` behind an 8-byte length, and may carry file descriptors (the
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
import select
import socket
import struct
import threading
import time
from collections import deque
from collections.abc import Sequence

from ._protocol import Message, frame, unframe

SPIN_SECONDS = 50e-6
SEND_BUFFER = 1 << 20
MAX_FDS = 8  # per message: at most one segment per payload, and a message has at most three

_HEADER = struct.Struct("!Q")
_HEADER_SIZE = _HEADER.size
_NOSIGNAL = getattr(socket, "MSG_NOSIGNAL", 0)
_DONTWAIT = socket.MSG_DONTWAIT
READABLE = select.POLLIN | select.POLLHUP | select.POLLERR  # poll events that mean "look now"
_FD_SPACE = socket.CMSG_SPACE(MAX_FDS * array.array("i").itemsize)
_RECV_SIZE = 64 * 1024
_COMPACT_AT = 256 * 1024  # drop taken bytes from the buffer's front once there are this many


def _fds_in(ancillary: list[tuple[int, int, bytes]]) -> list[int]:
    fds = array.array("i")
    for level, kind, data in ancillary:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            fds.frombytes(data[: len(data) - len(data) % fds.itemsize])
    return list(fds)


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
        # What has been read and not yet taken: messages from ``_pos`` on; ``_base`` is the stream offset of
        # the buffer's first byte, and ``_fd_marks`` the descriptors received, by the offset they came at.
        self._buffer = bytearray()
        self._pos = 0
        self._base = 0
        self._fd_marks: deque[tuple[int, list[int]]] = deque()

    def send(self, message: Message, fds: Sequence[int] = ()) -> None:
        """Send one message (blocks only while the peer's socket buffer is full)."""
        data = frame(message)
        lock = self._send_lock
        lock.acquire()  # (not ``with``: that binds two methods on every call)
        try:
            if fds:
                self._send(_HEADER.pack(len(data)) + data, fds)
            else:  # the usual case, ``_send`` written out
                self._sock.sendall(_HEADER.pack(len(data)) + data, _NOSIGNAL)
        finally:
            lock.release()

    def send_batch(self, items: Sequence[tuple[Message, Sequence[int]]]) -> None:
        """Send several messages, each with its descriptors, in as few system calls as they allow."""
        frames = []
        for message, fds in items:
            data = frame(message)
            frames.append((_HEADER.pack(len(data)) + data, fds))
        with self._send_lock:
            plain: list[bytes] = []  # frames without descriptors go out together
            for framed, fds in frames:
                if fds:
                    if plain:
                        self._send(b"".join(plain), ())
                        plain = []
                    self._send(framed, fds)  # on its own: its descriptors must come with its first byte
                else:
                    plain.append(framed)
            if plain:
                self._send(b"".join(plain), ())

    def try_send(self, message: Message) -> bool:
        """Send one message only if that cannot block; return whether it was sent."""
        if not self._send_lock.acquire(blocking=False):
            return False
        try:
            poller = select.poll()
            poller.register(self.fd, select.POLLOUT)
            if not poller.poll(0):
                return False
            data = frame(message)
            self._send(_HEADER.pack(len(data)) + data, ())
            return True
        finally:
            self._send_lock.release()

    def _send(self, frame: bytes, fds: Sequence[int]) -> None:
        # MSG_NOSIGNAL: a peer that died raises BrokenPipeError here instead of SIGPIPE killing this VM.
        if fds:
            ancillary = [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", fds))]
            sent = self._sock.sendmsg([frame], ancillary, _NOSIGNAL)
            frame = frame[sent:]
        if frame:
            self._sock.sendall(frame, _NOSIGNAL)

    def recv(self) -> tuple[Message, Sequence[int]]:
        """Receive one message and the descriptors that came with it, waiting as long as it takes.

        Raises ``EOFError`` once the peer has gone. The caller owns the descriptors (and must close them).
        """
        while True:
            received = self.recv_nowait()
            if received is not None:
                return received
            self.wait_readable(None)

    def recv_nowait(self) -> tuple[Message, Sequence[int]] | None:
        """Receive one message if all of it has arrived, else keep what has and return None; never blocks.

        Reads whatever the socket has (up to 64 KiB a call) into a buffer and takes messages from it, so
        a burst of small replies costs one system call, not two per message. A message that arrives in
        pieces is assembled over several calls, so a reader that is interrupted (or a peer that stalls
        mid-message) never leaves the stream out of step. Raises ``EOFError`` once the peer has gone.
        """
        while True:
            if len(self._buffer) > self._pos:  # (a call saved on the usual path: nothing buffered)
                taken = self.take_buffered()
                if taken is not None:
                    return taken
            try:
                chunk, ancillary, _flags, _addr = self._sock.recvmsg(_RECV_SIZE, _FD_SPACE, _DONTWAIT)
            except BlockingIOError:
                return None
            if ancillary and chunk:
                # Linux stops a read right after the piece of stream that carried descriptors (the first
                # piece of the send that carried them, so the start of their message): the chunk's last
                # byte belongs to the message they came with.
                self._fd_marks.append((self._base + len(self._buffer) + len(chunk) - 1, _fds_in(ancillary)))
            if not chunk:
                partial = self._pos < len(self._buffer)
                self._reset_reader()
                raise EOFError("the other VM closed the channel" + (" mid-message" if partial else ""))
            self._buffer += chunk

    def buffered(self) -> bool:
        """Whether a whole message is waiting in the buffer (a poll of the socket cannot tell)."""
        if not self._buffer:
            return False  # the usual case: everything read was taken
        start = self._pos + _HEADER.size
        if start > len(self._buffer):
            return False
        (size,) = _HEADER.unpack_from(self._buffer, self._pos)
        return bool(start + size <= len(self._buffer))

    def partial(self) -> bool:
        """Whether the buffer holds the start of a message whose rest is still to be read."""
        return len(self._buffer) > self._pos

    def take_buffered(self) -> tuple[Message, Sequence[int]] | None:
        """The next whole message already read into the buffer, if there is one (no system call)."""
        buffer, pos = self._buffer, self._pos
        start = pos + _HEADER_SIZE
        length = len(buffer)
        if start > length:
            return None
        (size,) = _HEADER.unpack_from(buffer, pos)
        end = start + size
        if end > length:
            return None
        message = unframe(buffer, start, end)
        fds: Sequence[int] = ()  # (most messages carry none: no list to make, nor to keep with a value)
        marks = self._fd_marks
        while marks and marks[0][0] < self._base + end:
            fds = [*fds, *marks.popleft()[1]]
        if end == length:
            buffer.clear()  # the common case: everything read was taken
            self._base += end
            self._pos = 0
        elif end > _COMPACT_AT:
            del buffer[:end]
            self._base += end
            self._pos = 0
        else:
            self._pos = end
        return message, fds

    def _reset_reader(self) -> None:
        for _offset, fds in self._fd_marks:
            for fd in fds:
                os.close(fd)
        self._fd_marks.clear()
        self._buffer.clear()
        self._pos = 0

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
