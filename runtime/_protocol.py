"""Every message that crosses a socket of the runtime, defined once, as named records both ends use.

Two conversations, each over a private Unix socket (no port is opened anywhere):

* VM 0 and a worker VM, over the VM's channel (``_channel``)::

      VM 0 ──Init──▶ VM            once, first: who the VM is and what its setup source is
      VM 0 ──Exec | Eval | Call──▶ VM  one job each; the VM runs them one at a time, in order
      VM 0 ◀──Progress── VM        while a job runs, at most ~60 a second (the latest value wins)
      VM 0 ◀──Exiting─── VM        the job raised SystemExit: the VM is about to exit, and says why
      VM 0 ◀──Ok | Err── VM        the job's end: its value, or its exception and traceback
      VM 0 ◀─Release─▶ VM          segments the receiver no longer maps, for the sender to reuse
      VM 0 ──Skip──▶ VM            do not start these jobs after all; each is answered by Skipped
      VM 0 ──Quit──▶ VM            exit (a VM that misses it sees end-of-file, and exits too)

* VM 0 and the template process that forks VMs (``_template``): ``TemplateConfig`` once, then one
  ``Fork`` per new VM; the template answers on the status pipe that came with it, in ``STATUS_FORMAT``:
  the new VM's pid, and later its exit code.

A record is a ``NamedTuple``; on the wire it is a plain tuple ``(tag, *fields)``: pickling a plain tuple
is several times faster than pickling a class instance, and a round trip is a handful of microseconds.
The two messages of almost every job, a ``Call`` and its ``Ok`` whose values are plain pickles, skip
even that: a byte no pickle starts with, the numbers packed, then the value's pickle as it is.
``frame`` and ``unframe`` (with ``to_wire`` and ``from_wire``) are the only code that sees these
layouts; everything else reads fields by name.
"""

from __future__ import annotations

import pickle
import struct
from typing import Any, NamedTuple

Payload = tuple[Any, ...]  # an encoded value (see ``_payload``)


# -- VM 0 to a worker VM ----------------------------------------------------------------------------------


class Init(NamedTuple):
    """The first message to a new VM: everything it must know before it can serve jobs."""

    vm_index: int
    sys_path: list[str]
    cwd: str
    setup: str | None  # source run in the fresh ``__main__`` before the first job
    nice: int | str  # how much to lower the VM's CPU priority (an ``os.nice`` increment), or "idle"
    authkey: bytes  # VM 0's multiprocessing authkey, so that Manager proxies passed to jobs connect


class Exec(NamedTuple):
    """Run statements in the VM's ``__main__``; the value is None."""

    seq: int
    source: str | Payload  # long source travels as a payload, like an argument


class Eval(NamedTuple):
    """Evaluate an expression in the VM's ``__main__``; the value is the result."""

    seq: int
    source: str | Payload


class Call(NamedTuple):
    """Call a function: ``call`` is the encoded ``(target, args, kwargs)``, where ``target`` is the
    function itself or source that evaluates to it in the VM's ``__main__``."""

    seq: int
    call: Payload


class Quit(NamedTuple):
    """Exit (once the jobs sent before it have run)."""


class Skip(NamedTuple):
    """Do not run these jobs if they have not started: answer each with ``Skipped`` when it comes up."""

    seqs: list[int]


# -- a worker VM to VM 0 ----------------------------------------------------------------------------------


class Ok(NamedTuple):
    """Job ``seq`` returned ``value`` (encoded) after running ``seconds`` in the VM."""

    seq: int
    value: Payload
    seconds: float  # (VM 0 cannot tell: it sees replies when it looks, several at once)


class Err(NamedTuple):
    """Job ``seq`` failed: its exception (encoded, or None when it does not pickle) and traceback text.

    ``retire``: the VM's setup failed, so the VM exits after this reply and the next job gets a fresh VM
    (which runs the setup again). The job's arguments were never looked at.
    """

    seq: int
    exception: Payload | None
    traceback: str
    retire: bool = False


class Progress(NamedTuple):
    """The latest ``report_progress(fraction, message)`` of job ``seq``."""

    seq: int
    fraction: float
    message: str


class Skipped(NamedTuple):
    """Job ``seq`` was not run: VM 0 asked to skip it (``Skip``) before it started."""

    seq: int


class Exiting(NamedTuple):
    """Job ``seq`` is ending the VM (it raised ``SystemExit``); ``note`` says so for ``last_error()``."""

    seq: int
    note: str


# -- either way ---------------------------------------------------------------------------------------------


class Release(NamedTuple):
    """The sender of these segments may reuse them: the receiver no longer maps them."""

    segments: list[int]


Job = Exec | Eval | Call
ToVM = Init | Exec | Eval | Call | Release | Skip | Quit
FromVM = Ok | Err | Skipped | Progress | Exiting | Release
Message = ToVM | FromVM

_KINDS: tuple[type[Any], ...] = (
    *(Init, Exec, Eval, Call, Quit, Skip),
    *(Ok, Err, Skipped, Progress, Exiting, Release),
)
_TAGS: dict[type[Any], int] = {kind: tag for tag, kind in enumerate(_KINDS)}


def to_wire(message: Message) -> tuple[Any, ...]:
    """The plain tuple that carries ``message``: its tag, then its fields."""
    return (_TAGS[message.__class__], *message)


def from_wire(wire: tuple[Any, ...]) -> Message:
    """The record a plain tuple from ``to_wire`` carries."""
    # tuple.__new__ rather than the record's own __new__ (a Python function): a round trip makes four
    # records, and this keeps each under a tenth of a microsecond.
    record: Message = tuple.__new__(_KINDS[wire[0]], wire[1:])
    return record


# A Call and an Ok whose value is a plain pickle (``("p", data)``): the tag byte ('C' or 'O', where a
# pickle starts with 0x80), the sequence number (and the seconds), then ``data``.
_CALL_FRAME = struct.Struct("!cq")
_OK_FRAME = struct.Struct("!cqd")
_CALL_TAG, _OK_TAG = ord("C"), ord("O")


def frame(message: Message) -> bytes:
    """The bytes that carry ``message`` (a channel puts their length in front)."""
    data: bytes
    if type(message) is Call:  # (every job's two messages: no pickle of the message itself)
        if message.call[0] == "p":
            data = _CALL_FRAME.pack(b"C", message.seq) + message.call[1]
            return data
    elif type(message) is Ok and message.value[0] == "p":
        data = _OK_FRAME.pack(b"O", message.seq, message.seconds) + message.value[1]
        return data
    data = pickle.dumps(to_wire(message), pickle.HIGHEST_PROTOCOL)
    return data


def unframe(buffer: bytearray, start: int, end: int) -> Message:
    """The message that ``frame`` made of ``buffer[start:end]``."""
    tag = buffer[start]
    record: Message
    if tag == _CALL_TAG:
        seq = _CALL_FRAME.unpack_from(buffer, start)[1]
        record = tuple.__new__(Call, (seq, ("p", bytes(buffer[start + _CALL_FRAME.size : end]))))
    elif tag == _OK_TAG:
        _tag, seq, seconds = _OK_FRAME.unpack_from(buffer, start)
        record = tuple.__new__(Ok, (seq, ("p", bytes(buffer[start + _OK_FRAME.size : end])), seconds))
    else:
        with memoryview(buffer) as view:  # (released at once: the buffer may then grow or shrink)
            record = from_wire(pickle.loads(view[start:end]))
    return record


# -- VM 0 to the template ---------------------------------------------------------------------------------


class TemplateConfig(NamedTuple):
    """The template's first message: the import path, and the modules every forked VM starts with."""

    sys_path: list[str]
    preload: list[str]


class Fork(NamedTuple):
    """Fork VM ``vm_index``; its socket and a status pipe come with this message as descriptors."""

    vm_index: int


STATUS_FORMAT = "q"  # on a status pipe: the pid, then the exit code (negative: killed by that signal)
