"""Shared-memory segments between two VMs: the pool of those this process writes, and the mappings of
those it receives.

A writer (``POOL``) keeps each segment's descriptor: when the receiver no longer holds the value in it, the
receiver sends the segment id back ("release") and the writer reuses the segment for the next big value,
writing into pages that already exist instead of asking the kernel for tens of thousands of fresh zeroed
pages (the slow part of a first transfer). The receiver (``ReceivedSegments``, one per peer) keeps its
mapping of a released segment too, so that the value that next comes in it costs no mapping at all.

    writer (POOL)                                   receiver (ReceivedSegments)
    acquire() -> pwrite the value -> send fd  ---->  map(fd): the kept mapping, or a new one
                                                     the value's buffers live in the mapping
    release(id): free for the next value     <----  the value is gone: release(id) queued, sent back
"""

from __future__ import annotations

import itertools
import mmap
import os
import threading
from collections import OrderedDict
from collections.abc import Callable
from typing import NamedTuple

from ._shared import _UNTRACKED, anonymous_fd

# Released segments kept for reuse, in bytes; beyond this the oldest are closed.
POOL_LIMIT = 512 * 1024 * 1024
# Per peer, the receiver keeps up to this many bytes, and this many, of its mappings of the peer's
# segments (those of values still held count too). Before Python 3.13 each kept mapping holds a
# descriptor (mmap keeps a copy): the count keeps a pool of 15 VMs far from the usual limit of 1,024.
MAPPED_LIMIT = 64 * 1024 * 1024
MAPPED_COUNT = 16
_GRAIN = 1 << 20  # segment capacities are whole MiB, so that similar sizes can reuse each other


class _Segment(NamedTuple):
    id: int
    fd: int
    capacity: int


class _SegmentPool:
    """The segments this process has written: in use by a receiver, or released and kept for reuse."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._ids = itertools.count(1)
        self._busy: dict[int, _Segment] = {}
        # Other descriptors a payload in flight holds open until its receiver releases it (see "r").
        self._held: dict[int, list[int]] = {}
        self._free: list[_Segment] = []
        self._retain = True

    @property
    def retain(self) -> bool:
        """Whether released segments are kept for reuse (VM 0 sets this False when no VM is left)."""
        return self._retain

    @retain.setter
    def retain(self, retain: bool) -> None:
        with self._lock:
            self._retain = retain
            if not retain:
                self._trim()

    def acquire(self, size: int) -> _Segment:
        capacity = max(_GRAIN, -(-size // _GRAIN) * _GRAIN)
        with self._lock:
            # The smallest released segment that fits and wastes at most half of itself.
            fits = [s for s in self._free if capacity <= s.capacity <= 2 * capacity]
            if fits:
                segment = min(fits, key=lambda s: s.capacity)
                self._free.remove(segment)
                # A new id each time: a late or repeated release of the segment's previous use can then
                # never free it while it carries a new value.
                segment = segment._replace(id=next(self._ids))
            else:
                segment = _Segment(next(self._ids), anonymous_fd(capacity, "pyct-segment"), capacity)
            self._busy[segment.id] = segment
        return segment

    def hold(self, fds: list[int], segment_id: int | None = None) -> int:
        """Keep ``fds`` open until ``segment_id`` (a new id if None) is released or dropped; the id."""
        with self._lock:
            if segment_id is None:
                segment_id = next(self._ids)
            self._held.setdefault(segment_id, []).extend(fds)
        return segment_id

    def release(self, segment_id: int) -> None:
        with self._lock:
            for fd in self._held.pop(segment_id, ()):
                os.close(fd)
            segment = self._busy.pop(segment_id, None)
            if segment is None:
                return
            if not self._retain:
                os.close(segment.fd)
                return
            self._free.append(segment)
            while sum(s.capacity for s in self._free) > POOL_LIMIT:
                os.close(self._free.pop(0).fd)

    def drop(self, segment_id: int) -> None:
        """Close a segment in use instead of keeping it: it may still be mapped somewhere unknown."""
        with self._lock:
            segment = self._busy.pop(segment_id, None)
            held = self._held.pop(segment_id, [])
        for fd in held if segment is None else [*held, segment.fd]:
            os.close(fd)

    def trim(self) -> None:
        """Close every released segment (the kernel frees their memory)."""
        with self._lock:
            self._trim()

    def _trim(self) -> None:
        for segment in self._free:
            os.close(segment.fd)
        self._free.clear()

    def forget(self) -> None:
        """Drop every segment without touching it (a forked child's copies of its parent's pool)."""
        self._lock = threading.Lock()
        for segment in [*self._busy.values(), *self._free]:
            os.close(segment.fd)
        for fds in self._held.values():
            for fd in fds:
                os.close(fd)
        self._busy.clear()
        self._held.clear()
        self._free.clear()

    def counts(self) -> tuple[int, int]:
        """(segments in use by a receiver, segments kept for reuse)."""
        with self._lock:
            return len(self._busy.keys() | self._held.keys()), len(self._free)


POOL = _SegmentPool()


class ReceivedSegments:
    """The segments one peer sends this process: how to hand each back, and the mappings kept for reuse.

    ``release(segment_id)`` queues a segment's release (it may be called from any thread: the collector's).
    A mapping outlives its value here, up to ``MAPPED_LIMIT`` bytes and ``MAPPED_COUNT`` mappings (the
    least recently received go first), because the peer reuses the segments handed back to it: the next
    value in a reused segment finds it mapped, with its pages in place. Mapping a segment and unmapping
    it take the process's memory-map lock, which now and then waits milliseconds for the kernel; a game
    that receives hundreds of chunks a second would see that as a late frame. A value holds its mapping
    for as long as it lives (kept here or not), and the peer never reuses a segment before its value is
    released, so a kept mapping never serves two values at once.
    """

    def __init__(self, release: Callable[[int], object]) -> None:
        self.release = release
        self._lock = threading.Lock()
        self._mapped: OrderedDict[tuple[int, int], mmap.mmap] = OrderedDict()
        self._bytes = 0
        self._peer_gone = False

    def map(self, fd: int, size: int) -> mmap.mmap:
        """A mapping of at least the first ``size`` bytes of segment ``fd``; closes the descriptor."""
        try:
            info = os.fstat(fd)
            key = (info.st_dev, info.st_ino)
            with self._lock:
                mapping = self._mapped.get(key)
                if mapping is not None and len(mapping) >= size:
                    self._mapped.move_to_end(key)
                    return mapping
            if size > info.st_size:
                raise ValueError(f"a value of {size} bytes cannot lie in a segment of {info.st_size} bytes")
            # The whole segment (whole MiB): a bigger value in it later fits the same mapping, and the
            # values' exporters (ctypes arrays, one type per length, which ctypes keeps) have few lengths.
            # Untracked (3.13+): a kept mapping then holds no descriptor of its own.
            mapping = mmap.mmap(fd, info.st_size, **_UNTRACKED)
        finally:
            os.close(fd)
        if len(mapping) <= MAPPED_LIMIT:
            with self._lock:
                if self._peer_gone:
                    return mapping  # (a value read after its VM ended: no segment will come again)
                old = self._mapped.pop(key, None)
                self._bytes += len(mapping) - (0 if old is None else len(old))
                self._mapped[key] = mapping
                while self._bytes > MAPPED_LIMIT or len(self._mapped) > MAPPED_COUNT:
                    _, dropped = self._mapped.popitem(last=False)
                    self._bytes -= len(dropped)  # unmapped when its value (if any) is gone too
        return mapping

    def forget(self) -> None:
        """Drop the kept mappings, and keep none from now on (the peer is gone: its segments will not
        come again, though values it sent may still be decoded)."""
        with self._lock:
            self._peer_gone = True
            self._mapped.clear()
            self._bytes = 0

    def mapped_bytes(self) -> int:
        """Bytes of this peer's segments mapped here and kept for reuse."""
        with self._lock:
            return self._bytes
