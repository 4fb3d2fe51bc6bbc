"""Memory shared between VMs: buffers allocated in an anonymous segment, which cross by reference.

``shared_buffer(nbytes)`` creates a segment (``memfd_create``) and maps it in this process. Every segment
this process maps, its own and those it received, is recorded here twice over: by address range, so that
``_payload.encode`` can tell that an out-of-band buffer lies inside one and send (segment, offset, length)
instead of its bytes; and by identity (device, inode), so that a segment received again, or received
back, reuses the mapping this process already has: one mapping per segment per process, and a value
sent to a VM and returned arrives as a view of the very memory it started from.

A process keeps a segment's descriptor (to send it on) and its mapping while anything here refers to the
mapping (a memoryview, a numpy array over it); when the last reference goes, the mapping is unmapped and
the descriptor closed, and the kernel frees the memory once no process maps or holds it.

``bundle``/``unbundle`` pass several descriptors as one (a socket holding them), for a value that refers
to several segments: a payload travels with one descriptor.
"""

from __future__ import annotations

import array
import bisect
import mmap
import os
import socket
import sys
import threading
import weakref
from typing import Any

_NAME = "pyct-shared"  # what /proc/<pid>/maps and /proc/<pid>/fd show for these segments
# From Python 3.13 an mmap need not keep a duplicate of the descriptor (this module keeps one already).
_UNTRACKED: dict[str, Any] = {"trackfd": False} if sys.version_info >= (3, 13) else {}


class Segment:
    """One shared segment as this process maps it."""

    __slots__ = ("end", "fd", "key", "mapping", "start")

    def __init__(self, fd: int, key: tuple[int, int], mapping: mmap.mmap, start: int) -> None:
        self.fd = fd
        self.key = key
        self.start = start
        self.end = start + len(mapping)
        # Weak: the mapping lives as long as the views of it do, and no longer.
        self.mapping = weakref.ref(mapping, self._unmapped)

    def _unmapped(self, _ref: object) -> None:
        # Called when the mapping is deallocated, possibly in the middle of another registry call of this
        # thread: it only drops this entry, and readers ignore entries whose mapping is gone.
        with _lock:
            if _by_key.get(self.key) is self:
                del _by_key[self.key]
            _rebuild()
        os.close(self.fd)


_lock = threading.RLock()
_by_key: dict[tuple[int, int], Segment] = {}
# The live segments sorted by start address, and their starts, replaced whole on each change so that a
# reader never sees a half-made table.
_table: tuple[tuple[int, ...], tuple[Segment, ...]] = ((), ())


def _rebuild() -> None:
    global _table
    live = sorted((s for s in list(_by_key.values()) if s.mapping() is not None), key=lambda s: s.start)
    _table = (tuple(s.start for s in live), tuple(live))


def active() -> bool:
    """Whether this process maps any shared segment (if not, no buffer can lie in one)."""
    return bool(_table[1])


def shared_buffer(nbytes: int) -> memoryview:
    """Allocate ``nbytes`` of zeroed memory that VMs share: a writable memoryview of format ``'B'``.

    A value whose buffer lies inside it (this memoryview, a slice of it, a numpy array made with
    ``np.frombuffer``, a contiguous view of that array) crosses to another VM, and back, as a reference,
    not a copy: both sides see the same memory, and each other's writes.
    """
    if isinstance(nbytes, bool) or not isinstance(nbytes, int):
        raise TypeError(f"nbytes must be an int, got {type(nbytes).__name__}")
    if nbytes < 0:
        raise ValueError(f"nbytes must be 0 or more, got {nbytes}")
    fd = anonymous_fd(max(nbytes, 1), _NAME)  # a mapping cannot be empty: the view below can
    try:
        mapping = _map(fd)
    except BaseException:
        os.close(fd)
        raise
    return memoryview(mapping)[:nbytes]


def attach(fd: int) -> mmap.mmap:
    """The mapping of the segment whose descriptor ``fd`` came with a message; takes ownership of ``fd``.

    If this process maps that segment already, the received descriptor is closed and that mapping is
    returned.
    """
    try:
        info = os.fstat(fd)
        with _lock:
            known = _by_key.get((info.st_dev, info.st_ino))
            mapping = known.mapping() if known is not None else None
            if mapping is None:
                return _map(fd, info)
    except BaseException:
        os.close(fd)
        raise
    os.close(fd)
    return mapping


def _map(fd: int, info: os.stat_result | None = None) -> mmap.mmap:
    """Map segment ``fd`` and record it; the record owns ``fd`` from here on."""
    info = os.fstat(fd) if info is None else info
    mapping = mmap.mmap(fd, info.st_size, **_UNTRACKED)
    extent = _extent(memoryview(mapping))
    assert extent is not None  # a mapping is one block
    segment = Segment(fd, (info.st_dev, info.st_ino), mapping, extent[0])
    with _lock:
        _by_key[segment.key] = segment
        _rebuild()
    return mapping


def locate(raw: memoryview) -> tuple[Segment, int] | None:
    """The segment that contiguous buffer ``raw`` lies in, and its offset there; None if in none.

    The caller holds ``raw``, which keeps the segment's mapping (and so its descriptor) alive.
    """
    starts, segments = _table
    if not starts:
        return None
    extent = _extent(raw)
    if extent is None:
        return None
    start, length = extent
    index = bisect.bisect_right(starts, start) - 1
    if index < 0:
        return None
    candidates = segments[index : index + 1]
    if candidates[0].mapping() is None:
        # A stale entry (its mapping is being freed right now) may hide a live one: look at them all.
        candidates = segments
    for segment in candidates:
        if _holds(segment, start, length):
            return segment, start - segment.start
    return None


def _holds(segment: Segment, start: int, length: int) -> bool:
    return segment.start <= start and start + length <= segment.end and segment.mapping() is not None


def is_shared(obj: Any) -> bool:
    """Whether ``obj`` crosses VMs by reference: its buffer is one contiguous block in shared memory."""
    try:
        view = memoryview(obj)
    except TypeError:
        raise TypeError(
            f"is_shared() takes an object with a buffer (a memoryview, a numpy array), "
            f"got {type(obj).__name__}"
        ) from None
    return locate(view) is not None


def counts() -> int:
    """How many shared segments this process maps (for tests)."""
    return len(_table[1])


# -- several descriptors as one -----------------------------------------------------------------

_MAX_FDS_PER_MESSAGE = 250  # the kernel takes at most 253 descriptors in one message


def bundle(fds: list[int]) -> int:
    """One descriptor carrying several: a socket with them queued in it (the kernel holds them)."""
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    with ours:
        try:
            for start in range(0, len(fds), _MAX_FDS_PER_MESSAGE):
                chunk = array.array("i", fds[start : start + _MAX_FDS_PER_MESSAGE])
                ours.sendmsg([b"\0"], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, chunk)])
        except BaseException:
            theirs.close()
            raise
    return theirs.detach()


def unbundle(fd: int, count: int) -> list[int]:
    """The ``count`` descriptors a ``bundle`` socket carries; closes the socket."""
    received: list[int] = []
    with socket.socket(fileno=fd) as carrier:
        try:
            while len(received) < count:
                more = min(count - len(received), _MAX_FDS_PER_MESSAGE)
                _data, fds, _flags, _address = socket.recv_fds(
                    carrier, 1, more, getattr(socket, "MSG_CMSG_CLOEXEC", 0)
                )
                if not fds:
                    raise ValueError(f"a payload's bundle held {len(received)} descriptors, not {count}")
                received += fds
        except BaseException:
            for received_fd in received:
                os.close(received_fd)
            raise
    return received


# -- addresses ---------------------------------------------------------------------------------------

_PyBUF_ANY_CONTIGUOUS = 0x0080 | 0x0010 | 0x0008  # PyBUF_ANY_CONTIGUOUS: C or Fortran order, with strides
_api: Any = None


def _extent(view: memoryview) -> tuple[int, int] | None:
    """(address, length) of ``view``'s memory if it is one contiguous block, else None."""
    global _api
    if _api is None:
        _api = _buffer_api()
    from_buffer, addressof, get_buffer, release_buffer, buffer_struct = _api
    try:
        # The fast way (~0.5 us), for the usual writable, non-empty, C-ordered buffer.
        return addressof(from_buffer(view)), view.nbytes
    except (BufferError, TypeError, ValueError):
        pass  # read-only, empty, or not C-contiguous
    buffer = buffer_struct()
    try:
        get_buffer(view, buffer, _PyBUF_ANY_CONTIGUOUS)
    except BufferError:
        return None  # not contiguous
    try:
        return int(buffer.buf or 0), int(buffer.len)
    finally:
        release_buffer(buffer)


def _buffer_api() -> tuple[Any, ...]:
    """ctypes' ``c_char.from_buffer`` and ``addressof``, and ``PyObject_GetBuffer``/``PyBuffer_Release``
    (imported on first need): the standard library's only ways to read the address of a buffer."""
    import ctypes

    class PyBuffer(ctypes.Structure):
        _fields_ = (
            ("buf", ctypes.c_void_p),
            ("obj", ctypes.c_void_p),
            ("len", ctypes.c_ssize_t),
            ("itemsize", ctypes.c_ssize_t),
            ("readonly", ctypes.c_int),
            ("ndim", ctypes.c_int),
            ("format", ctypes.c_void_p),
            ("shape", ctypes.c_void_p),
            ("strides", ctypes.c_void_p),
            ("suboffsets", ctypes.c_void_p),
            ("internal", ctypes.c_void_p),
        )

    get = ctypes.pythonapi.PyObject_GetBuffer
    get.argtypes = (ctypes.py_object, ctypes.POINTER(PyBuffer), ctypes.c_int)
    get.restype = ctypes.c_int
    release = ctypes.pythonapi.PyBuffer_Release
    release.argtypes = (ctypes.POINTER(PyBuffer),)
    release.restype = None
    return ctypes.c_char.from_buffer, ctypes.addressof, get, release, PyBuffer


def anonymous_fd(size: int, name: str) -> int:
    """A new anonymous segment of ``size`` bytes (zeroed); ``name`` is what ``/proc`` shows for it."""
    if hasattr(os, "memfd_create"):
        fd = os.memfd_create(name, os.MFD_CLOEXEC)
    else:
        import tempfile

        # No memfd: a temporary file, unlinked at once so that it has no name either.
        fd, path = tempfile.mkstemp(prefix=name + "-")
        os.unlink(path)
    try:
        os.ftruncate(fd, size)
    except BaseException:
        os.close(fd)
        raise
    return fd


def _after_fork_in_child() -> None:
    # A forked child inherits the mappings and descriptors (the memory stays shared): keep the records,
    # but not a lock another thread may have held at the fork.
    global _lock
    _lock = threading.RLock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
