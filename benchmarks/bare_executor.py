"""The least VM 0 work any executor of ComputePool's shape can do per job: the floor for bench_pool's (1).

``BareExecutor`` has what every process-pool executor must have and nothing else: a
``concurrent.futures.Future`` per job, the call pickled with the C pickler, one socket per worker process,
jobs dealt round-robin, and a reader thread that unpickles each reply and resolves its future. No queue,
no priorities or keys, no cancellation, no windows, no shared memory, no crash handling, no progress. It
runs the same jobs as the pool, so what ComputePool spends beyond it is the price of those features.
"""

from __future__ import annotations

import os
import pickle
import select
import socket
import struct
import threading
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any

_HEADER = struct.Struct("<I")


def _frames(buffer: bytearray) -> list[bytes]:
    """Take the whole length-prefixed frames off the front of ``buffer``."""
    frames = []
    pos = 0
    while len(buffer) - pos >= _HEADER.size:
        (size,) = _HEADER.unpack_from(buffer, pos)
        if len(buffer) - pos - _HEADER.size < size:
            break
        frames.append(bytes(buffer[pos + _HEADER.size : pos + _HEADER.size + size]))
        pos += _HEADER.size + size
    del buffer[:pos]
    return frames


def _worker(sock: socket.socket) -> None:
    """A worker process: run each call it is sent, reply with (number, value); exit when VM 0 hangs up."""
    buffer = bytearray()
    while True:
        data = sock.recv(1 << 16)
        if not data:
            os._exit(0)
        buffer += data
        replies = []
        for frame in _frames(buffer):
            number, fn, args = pickle.loads(frame)
            reply = pickle.dumps((number, fn(*args)), pickle.HIGHEST_PROTOCOL)
            replies.append(_HEADER.pack(len(reply)) + reply)
        if replies:
            sock.sendall(b"".join(replies))


class BareExecutor:
    """``workers`` forked processes fed round-robin; ``submit`` returns a Future (see the module doc)."""

    def __init__(self, workers: int) -> None:
        self._socks: list[socket.socket] = []
        self._pids: list[int] = []
        for _ in range(workers):
            ours, theirs = socket.socketpair()
            pid = os.fork()
            if pid == 0:  # the worker: never returns
                ours.close()
                try:
                    _worker(theirs)
                finally:
                    os._exit(1)
            theirs.close()
            self._socks.append(ours)
            self._pids.append(pid)
        self._futures: dict[int, Future[Any]] = {}
        self._lock = threading.Lock()
        self._number = 0
        self._reader = threading.Thread(target=self._read, name="BareExecutor reader", daemon=True)
        self._reader.start()

    def submit(self, fn: Callable[..., Any], /, *args: Any) -> Future[Any]:
        future: Future[Any] = Future()
        future.set_running_or_notify_cancel()
        self._number += 1
        data = pickle.dumps((self._number, fn, args), pickle.HIGHEST_PROTOCOL)
        with self._lock:
            self._futures[self._number] = future
        self._socks[self._number % len(self._socks)].sendall(_HEADER.pack(len(data)) + data)
        return future

    def _read(self) -> None:
        buffers = {sock: bytearray() for sock in self._socks}
        while True:
            try:
                readable, _, _ = select.select(self._socks, [], [])
            except (OSError, ValueError):
                return  # closed
            for sock in readable:
                data = sock.recv(1 << 16)
                if not data:
                    return
                buffers[sock] += data
                for frame in _frames(buffers[sock]):
                    number, value = pickle.loads(frame)
                    with self._lock:
                        future = self._futures.pop(number)
                    future.set_result(value)

    def shutdown(self) -> None:
        for sock in self._socks:
            sock.shutdown(socket.SHUT_RDWR)
        for pid in self._pids:
            os.waitpid(pid, 0)
        self._reader.join(5)
        for sock in self._socks:
            sock.close()

    def __enter__(self) -> BareExecutor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.shutdown()
