"""How values cross between VMs: pickle protocol 5, with big buffers in shared-memory segments.

``encode(value)`` turns a value into a small, picklable *payload*; ``decode(payload, ...)`` gives the value
back in the other VM. Four shapes, chosen by size and by where the buffers live:

* ``("p", data)``: a plain pickle, for small values (the fast path: one ``pickle.dumps`` call);
* ``("b", data, buffers)``: a pickle plus its protocol-5 out-of-band buffers inline, when they are small;
* ``("s", segment_id, size, data_span, data, buffer_spans, table_span)``: the buffers (and the pickle
  itself, and the table of buffer spans, when they are big) written once into a shared-memory
  *segment*, whose file descriptor travels with the message (``SCM_RIGHTS``). The receiver maps it
  and unpickles straight from the mapping, so a numpy array arrives as a view of shared memory: no
  copy through the pipe and none in the receiving VM. The one copy is the sender's ``pwrite`` into the
  segment (tens of milliseconds per 100 MB).
* ``("r", lease_id, count, inner)``: some buffers lie in memory that VMs share (``_shared``:
  ``runtime.shared_buffer``, or such memory received from another VM). Those travel as references
  (segment, offset, length, read-only), not bytes; ``inner`` is a ``"b"`` or ``"s"`` payload of the pickle,
  the other buffers, and the table of references as its last buffer. The ``count`` descriptors (the inner
  segment's, then one per shared segment) travel as one: itself if there is one, else a socket that holds
  them. The receiver maps each shared segment once (or reuses the mapping it has) and rebuilds the
  values as views of it: nothing is copied on either side, and both sides see each other's writes.
  ``lease_id`` names the descriptors the sender keeps open for this message until the receiver has
  them (the inner segment's id when there is one, so that one release frees both).

Segments are anonymous (``memfd_create``; elsewhere a temporary file unlinked at once): they have no
name in ``/dev/shm`` or anywhere, so nothing can be left behind, whatever dies how: the kernel frees a
segment when the last descriptor and mapping of it are gone. The writer reuses a segment once the receiver
no longer holds its value, and the receiver keeps its mapping for that: ``_segments``.

Received arrays and memoryviews are writable (those in shared memory keep a read-only flag); the
receiver's ``"s"`` segment is the value's own (a later value never reuses a segment until the receiver
has released it). ``bytes`` and ``bytearray`` values are rebuilt by pickle, which copies them
once. numpy pickles a non-contiguous array by value (in the pickle itself), and ``_pickling``
copies a non-contiguous memoryview: such views are copied even when they lie in shared memory.

How a value becomes a pickle and its out-of-band buffers is ``_pickling``'s job.
"""

from __future__ import annotations

import array
import itertools
import mmap
import os
import pickle
import traceback
import weakref
from collections.abc import Iterator
from typing import Any, NamedTuple

from . import _shared
from ._pickling import dumps as dumps  # what callers use to check that a value pickles
from ._pickling import dumps_with_buffers
from ._segments import POOL as POOL  # the segments this process writes
from ._segments import ReceivedSegments as ReceivedSegments

# A payload (pickle plus its out-of-band buffers) up to this size travels inline in the message: a
# segment costs a few system calls on each side, more than copying a few kilobytes through the pipe.
# Beyond it, the buffers (and a pickle beyond it) go into a segment. So a message on the pipe stays
# under ~130 KiB (a job carries at most two payloads) and always fits in the socket's send buffer:
# sending never waits for the other VM to read.
INLINE_LIMIT = 64 * 1024
# Beyond this many out-of-band buffers, their (offset, length) table goes into the segment as well.
INLINE_SPANS = 256
_ALIGN = 64  # keeps every buffer cache-line aligned in the segment, which numpy likes

Payload = tuple[Any, ...]


class Encoded(NamedTuple):
    """A payload, and the descriptor of its segment (to send beside it) if it has one."""

    payload: Payload
    fd: int | None = None


def encode(value: Any) -> Encoded:
    """Serialise ``value`` into a payload (and a segment, for big buffers).

    Raises whatever pickling raises (``TypeError`` or ``pickle.PicklingError`` naming the type that
    cannot be pickled).
    """
    data, buffers = dumps_with_buffers(value)
    if not buffers and len(data) <= INLINE_LIMIT:
        # Most values: built as a plain tuple (``Encoded``'s own __new__ is a Python function).
        plain: Encoded = tuple.__new__(Encoded, (("p", data), None))
        return plain
    raws = [buffer.raw() for buffer in buffers]
    if _shared.active():
        found = [_shared.locate(raw) for raw in raws]
        if any(place is not None for place in found):
            return _encode_with_references(data, raws, found)
    return _pack(data, raws)


def _pack(data: bytes, raws: list[memoryview]) -> Encoded:
    """A ``"b"`` or ``"s"`` payload: ``data`` and its out-of-band buffers ``raws``, inline or in a segment."""
    total = sum(raw.nbytes for raw in raws)
    if len(data) + total <= INLINE_LIMIT:
        return Encoded(("b", data, [raw.tobytes() for raw in raws]))
    pieces: list[memoryview] = list(raws)
    inline_data: bytes | None = data
    if len(data) > INLINE_LIMIT:
        pieces.append(memoryview(data))
        inline_data = None
    spans = []
    offset = 0
    for piece in pieces:
        spans.append((offset, piece.nbytes))
        offset += -(-piece.nbytes // _ALIGN) * _ALIGN
    buffer_spans = spans[: len(raws)]
    table_span = None
    if len(raws) > INLINE_SPANS:
        # Many buffers (a list of 100,000 small arrays): their table goes into the segment too, so the
        # message stays small.
        table = memoryview(array.array("q", itertools.chain.from_iterable(buffer_spans)).tobytes())
        table_span = (offset, table.nbytes)
        pieces.append(table)
        spans.append(table_span)
        offset += table.nbytes
    size = max(offset, 1)
    segment = POOL.acquire(size)
    try:
        for (start, length), piece in zip(spans, pieces, strict=True):
            raw = piece.cast("B")
            done = 0
            while done < length:
                # pwrite copies into the segment's pages in the kernel: no mapping, no page faults here.
                done += os.pwrite(segment.fd, raw[done:], start + done)
    except BaseException:
        POOL.release(segment.id)
        raise
    data_span = spans[len(raws)] if inline_data is None else None
    inline_spans = [] if table_span is not None else buffer_spans
    return Encoded(("s", segment.id, size, data_span, inline_data, inline_spans, table_span), segment.fd)


_REFERENCE = 5  # fields per entry of an "r" payload's table: position, segment, offset, length, read-only


def _encode_with_references(
    data: bytes, raws: list[memoryview], found: list[tuple[_shared.Segment, int] | None]
) -> Encoded:
    """An ``"r"`` payload: buffers in shared memory go as references, the others as ``_pack`` sends them.

    The table of references rides as one more out-of-band buffer of the inner payload (so that a long one
    goes into the segment, not the message). The descriptors to send, the inner segment's first, then
    one per shared segment, go as one descriptor: itself when there is one, else a socket holding them.
    """
    indexes: dict[int, int] = {}
    shared_fds: list[int] = []
    table: list[int] = []
    ordinary: list[memoryview] = []
    for position, (raw, place) in enumerate(zip(raws, found, strict=True)):
        if place is None:
            ordinary.append(raw)
            continue
        segment, offset = place
        index = indexes.setdefault(id(segment), len(indexes))
        if index == len(shared_fds):
            shared_fds.append(segment.fd)
        table += (position, index, offset, raw.nbytes, int(raw.readonly))
    ordinary.append(memoryview(array.array("q", table)).cast("B"))
    inner = _pack(data, ordinary)
    fds = shared_fds if inner.fd is None else [inner.fd, *shared_fds]
    # The message may leave after the value (and so the segment's own descriptor) is gone: what is sent is
    # this payload's own descriptor, held open until the receiver has taken it.
    try:
        fd = os.dup(fds[0]) if len(fds) == 1 else _shared.bundle(fds)
        lease = POOL.hold([fd], segment_id(inner.payload))
    except BaseException:
        if inner.fd is not None:
            POOL.release(inner.payload[1])
        raise
    return Encoded(("r", lease, len(fds), inner.payload), fd)


def decode(payload: Payload, fds: Iterator[int], peer: ReceivedSegments | None) -> Any:
    """Rebuild the value a payload describes; ``peer`` is this process's record of the VM that sent it.

    ``fds`` yields the descriptors that came with the message, in payload order; a segment payload takes
    one (and closes it). ``peer.release(segment_id)`` is called, from whatever thread the garbage
    collector runs in, once nothing in this VM refers to the segment's value any more. Without a peer,
    nothing is released and a segment is mapped for this value alone.
    """
    kind = payload[0]
    if kind == "p":
        return pickle.loads(payload[1])
    if kind == "r":
        return _loads_or_let_go(*_rebuilt_with_references(payload, next(fds), peer))
    return _loads_or_let_go(*_unpack(payload, fds, peer))


def _loads_or_let_go(data: Any, buffers: list[Any]) -> Any:
    """``pickle.loads``; if it fails, the error holds none of the value's buffers.

    The traceback's frames would (pickle's arguments here, a reconstructor's in the frames below), and
    whoever keeps the error (a future, which the error's frames refer to in turn) would keep the segment
    from its writer until the cyclic collector runs: never, in a game that disables it.
    """
    try:
        return pickle.loads(data, buffers=buffers)
    except BaseException as exc:
        del data, buffers
        traceback.clear_frames(exc.__traceback__)  # (the finished frames' locals; this one is running)
        raise


def _unpack(payload: Payload, fds: Iterator[int], peer: ReceivedSegments | None) -> tuple[Any, list[Any]]:
    """The pickle and the out-of-band buffers of a ``"b"`` or ``"s"`` payload."""
    if payload[0] == "b":
        return payload[1], [bytearray(raw) for raw in payload[2]]
    _, segment_id, size, data_span, data, spans, table_span = payload
    fd = next(fds)
    if peer is None:
        try:
            view = memoryview(mmap.mmap(fd, size))
        finally:
            os.close(fd)
    else:
        # Every view and array made from the value keeps its buffer's owner alive, so the segment may go
        # back when that owner goes. The mapping cannot be the owner (it is kept for the segment's next
        # value): each value gets an owner of its own, with no copy, a ctypes array over the mapping (the
        # one object in the standard library whose views name it, not the memory under it, as owner).
        import ctypes

        mapping = peer.map(fd, size)
        exporter = (ctypes.c_char * len(mapping)).from_buffer(mapping)
        weakref.finalize(exporter, peer.release, segment_id)
        view = memoryview(exporter).cast("B")
    if table_span is not None:
        offset, length = table_span
        flat = view[offset : offset + length].cast("q").tolist()
        spans = zip(flat[0::2], flat[1::2], strict=True)
    buffers = [view[offset : offset + length] for offset, length in spans]
    if data_span is not None:
        offset, length = data_span
        data = view[offset : offset + length]
    return data, buffers


def _rebuilt_with_references(
    payload: Payload, fd: int, peer: ReceivedSegments | None
) -> tuple[Any, list[Any]]:
    """The pickle and the buffers of an ``"r"`` payload, those in shared memory as views of it."""
    _, lease, count, inner = payload
    received = iter([fd] if count == 1 else _shared.unbundle(fd, count))
    try:
        if inner[0] == "s":
            # The lease is the inner segment's id: it is released when that mapping goes, as for "s".
            data, ordinary = _unpack(inner, received, peer)
        else:
            data, ordinary = _unpack(inner, received, None)
            if peer is not None:
                peer.release(lease)  # this VM holds descriptors of its own now
        mappings = []
        for shared_fd in received:
            mappings.append(_shared.attach(shared_fd))
    except BaseException:
        for unused in received:
            os.close(unused)
        raise
    table = memoryview(ordinary.pop()).cast("q").tolist()
    buffers: list[Any] = [None] * (len(ordinary) + len(table) // _REFERENCE)
    for start in range(0, len(table), _REFERENCE):
        position, index, offset, length, readonly = table[start : start + _REFERENCE]
        mapping = mappings[index]
        if not 0 <= offset <= offset + length <= len(mapping):
            raise ValueError(f"a shared buffer at {offset}+{length} lies outside its {len(mapping)} bytes")
        view = memoryview(mapping)[offset : offset + length]
        buffers[position] = view.toreadonly() if readonly else view
    rest = iter(ordinary)
    for position, buffer in enumerate(buffers):
        if buffer is None:
            buffers[position] = next(rest)
    return data, buffers


def discard(payload: Payload, fds: Iterator[int], peer: ReceivedSegments | None) -> None:
    """Let go of a payload without decoding it (close its descriptor, release its segment)."""
    if payload[0] in ("s", "r"):
        os.close(next(fds))
        if peer is not None:
            peer.release(payload[1])


def segment_id(payload: Payload | None) -> int | None:
    """The id of the segment (or descriptors) a payload of this process holds for its receiver, if any."""
    return payload[1] if payload is not None and payload[0] in ("s", "r") else None
