"""How values cross between VMs: pickle protocol 5, with big buffers in shared memory.

``encode(value)`` turns a value into a small, picklable *payload*; ``decode(payload)`` gives the value
back in the other VM. Three shapes, chosen by size:

* ``("p", data)``: a plain pickle, for small values (the fast path: nothing but ``pickle.dumps``);
* ``("b", data, buffers)``: a pickle plus its protocol-5 out-of-band buffers inline, when they are small;
* ``("s", name, size, data_span, data, buffer_spans)``: the buffers (and the pickle itself, when it is
  big) written once into a shared-memory segment. The receiver maps the segment and unpickles straight
  from it, so a numpy array arrives as a view of the mapping: no copy through the pipe and no copy in
  the receiving VM. The receiver unlinks the segment as soon as it has mapped it; the memory goes back
  to the system when the last array that views it is garbage collected.

Received arrays and memoryviews are writable (the mapping is read-write and private to the receiver
once unlinked). ``bytes`` and ``bytearray`` values are rebuilt by pickle, which copies them once.

Plain ``pickle`` is tried first; cloudpickle is used when plain pickle fails (lambdas, closures) or
when the pickle refers to ``__main__`` (a function or class defined in the sending VM's main script or
namespace, which the other VM does not have): cloudpickle pickles those by value.

Segments are files named ``pyct-<VM 0 pid>-<creator pid>-<n>`` in ``/dev/shm`` (or the temporary
directory where there is no ``/dev/shm``), so whoever outlives a creator can sweep what it left behind.
"""

from __future__ import annotations

import contextlib
import io
import itertools
import mmap
import os
import pickle
import tempfile
from collections.abc import Iterable
from typing import Any

PROTOCOL = 5
SEGMENT_PREFIX = "pyct"
# Out-of-band buffers totalling less than this travel inline in the message: creating and mapping a
# segment costs tens of microseconds, more than copying a few kilobytes through the pipe.
INLINE_BUFFER_LIMIT = 64 * 1024
# A pickle bigger than this (a value made of many Python objects) goes into the segment too, so the
# messages on the pipe stay small and never stall the reader.
INLINE_PICKLE_LIMIT = 256 * 1024
_ALIGN = 64  # keeps every buffer cache-line aligned in the segment, which numpy likes

Payload = tuple[Any, ...]

_counter = itertools.count()


def segment_dir() -> str:
    """Return the directory that holds shared-memory segments (``/dev/shm`` where it exists)."""
    shm = "/dev/shm"
    if os.path.isdir(shm) and os.access(shm, os.W_OK):
        return shm
    return tempfile.gettempdir()


_SEGMENT_DIR = segment_dir()


class _Pickler(pickle.Pickler):
    """The standard pickler, plus contiguous ``memoryview`` objects as out-of-band buffers."""

    def reducer_override(self, obj: Any) -> Any:
        if type(obj) is memoryview:
            return _reduce_memoryview(obj)
        return NotImplemented


def _reduce_memoryview(view: memoryview) -> Any:
    fmt, shape = view.format, view.shape
    if not view.contiguous:
        view = memoryview(view.tobytes())
    return _rebuild_memoryview, (pickle.PickleBuffer(view), fmt, shape)


def _rebuild_memoryview(buffer: Any, fmt: str, shape: tuple[int, ...]) -> memoryview:
    raw: Any = memoryview(buffer).cast("B")
    rebuilt: memoryview = raw.cast(fmt, shape)
    return rebuilt


def _cloudpickler() -> type[pickle.Pickler]:
    import cloudpickle  # imported on first need: it costs ~30 ms, and most values never need it

    class _CloudPickler(cloudpickle.Pickler):  # type: ignore[misc]
        def reducer_override(self, obj: Any) -> Any:
            if type(obj) is memoryview:
                return _reduce_memoryview(obj)
            return super().reducer_override(obj)

    return _CloudPickler


_cloud_pickler_class: type[pickle.Pickler] | None = None


def _dumps(value: Any) -> tuple[bytes, list[pickle.PickleBuffer]]:
    global _cloud_pickler_class
    buffers: list[pickle.PickleBuffer] = []
    try:
        # The C pickler's one-call form is the fastest path for the small values most jobs exchange.
        data: bytes | None = pickle.dumps(value, PROTOCOL, buffer_callback=buffers.append)
    except (pickle.PicklingError, TypeError, AttributeError):
        data = _dumps_with_memoryviews(value, buffers)
    # A reference to __main__ would not resolve in the other VM: pickle those objects by value.
    if data is not None and b"__main__" not in data:
        return data, buffers
    if _cloud_pickler_class is None:
        _cloud_pickler_class = _cloudpickler()
    buffers = []
    out = io.BytesIO()
    _cloud_pickler_class(out, PROTOCOL, buffer_callback=buffers.append).dump(value)
    return out.getvalue(), buffers


def _dumps_with_memoryviews(value: Any, buffers: list[pickle.PickleBuffer]) -> bytes | None:
    """Pickle with ``_Pickler`` (memoryview support); None if the value needs cloudpickle."""
    buffers.clear()
    out = io.BytesIO()
    try:
        _Pickler(out, PROTOCOL, buffer_callback=buffers.append).dump(value)
    except (pickle.PicklingError, TypeError, AttributeError):
        return None
    return out.getvalue()


def encode(value: Any, *, owner_pid: int) -> tuple[Payload, list[str]]:
    """Serialise ``value`` into a payload; also return the names of the segments it created.

    ``owner_pid`` is VM 0's pid, part of every segment's name. Raises whatever pickling raises
    (``TypeError`` or ``pickle.PicklingError`` naming the type that cannot be pickled).
    """
    data, buffers = _dumps(value)
    if not buffers and len(data) <= INLINE_PICKLE_LIMIT:
        return ("p", data), []
    raws = [buffer.raw() for buffer in buffers]
    total = sum(raw.nbytes for raw in raws)
    if total < INLINE_BUFFER_LIMIT and len(data) <= INLINE_PICKLE_LIMIT:
        return ("b", data, [raw.tobytes() for raw in raws]), []
    pieces: list[memoryview] = list(raws)
    inline_data: bytes | None = data
    if len(data) > INLINE_PICKLE_LIMIT:
        pieces.append(memoryview(data))
        inline_data = None
    name, size, spans = _write_segment(pieces, owner_pid)
    data_span = spans.pop() if inline_data is None else None
    return ("s", name, size, data_span, inline_data, spans), [name]


def decode(payload: Payload) -> Any:
    """Rebuild the value a payload describes (and unlink its segment, if it has one)."""
    kind = payload[0]
    if kind == "p":
        return pickle.loads(payload[1])
    if kind == "b":
        return pickle.loads(payload[1], buffers=[bytearray(raw) for raw in payload[2]])
    _, name, size, data_span, data, spans = payload
    view = _map_segment(name, size)
    buffers = [view[offset : offset + length] for offset, length in spans]
    if data_span is not None:
        offset, length = data_span
        data = view[offset : offset + length]
    return pickle.loads(data, buffers=buffers)


def discard(payload: Payload) -> None:
    """Free what a payload holds without decoding it (its segment, if any)."""
    if payload[0] == "s":
        unlink_segments([payload[1]])


def _write_segment(pieces: list[memoryview], owner_pid: int) -> tuple[str, int, list[tuple[int, int]]]:
    spans: list[tuple[int, int]] = []
    offset = 0
    for piece in pieces:
        spans.append((offset, piece.nbytes))
        offset += (piece.nbytes + _ALIGN - 1) // _ALIGN * _ALIGN
    size = max(offset, 1)
    name = f"{SEGMENT_PREFIX}-{owner_pid}-{os.getpid()}-{next(_counter)}"
    path = os.path.join(_SEGMENT_DIR, name)
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.ftruncate(fd, size)
        # pwrite copies straight into the file's pages: no page faults in this process, and a full
        # tmpfs raises ENOSPC here rather than SIGBUS on a write through a mapping.
        for (start, length), piece in zip(spans, pieces, strict=True):
            raw = piece.cast("B")
            done = 0
            while done < length:
                done += os.pwrite(fd, raw[done:], start + done)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(path)
        raise
    finally:
        os.close(fd)
    return name, size, spans


def _map_segment(name: str, size: int) -> memoryview:
    path = os.path.join(_SEGMENT_DIR, name)
    fd = os.open(path, os.O_RDWR)
    try:
        mapping = mmap.mmap(fd, size)
    finally:
        os.close(fd)
        # The mapping keeps the memory alive; the name is no longer needed by anyone.
        with contextlib.suppress(OSError):
            os.unlink(path)
    return memoryview(mapping)


def unlink_segments(names: Iterable[str]) -> None:
    """Remove the named segments; names already gone are ignored."""
    for name in names:
        with contextlib.suppress(OSError):
            os.unlink(os.path.join(_SEGMENT_DIR, name))


def sweep_segments(owner_pid: int, creator_pid: int | None = None) -> None:
    """Remove the segments of VM 0 ``owner_pid`` (only those made by ``creator_pid``, if given)."""
    prefix = f"{SEGMENT_PREFIX}-{owner_pid}-" + ("" if creator_pid is None else f"{creator_pid}-")
    with contextlib.suppress(OSError):
        unlink_segments(n for n in os.listdir(_SEGMENT_DIR) if n.startswith(prefix))


def sweep_stale_segments() -> None:
    """Remove segments whose VM 0 no longer runs (left by a process tree that was SIGKILLed whole)."""
    with contextlib.suppress(OSError):
        for name in os.listdir(_SEGMENT_DIR):
            parts = name.split("-")
            if len(parts) != 4 or parts[0] != SEGMENT_PREFIX or not parts[1].isdigit():
                continue
            if not _pid_alive(int(parts[1])):
                unlink_segments([name])


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
