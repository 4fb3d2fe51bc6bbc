"""The worker VM: a fresh process that runs jobs from VM 0 in its own ``__main__`` namespace.

Entry points: ``run_forked`` (called in a child of the template, see ``_template``) and ``run_spawned``
(called by ``python -c`` on platforms without fork). Both read the init message, then serve jobs until VM 0
says quit or goes away. A job is one message in, one message out (the records of ``_protocol``)::

    VM 0 ──Call(seq, (target, args, kwargs))──▶ worker: eval target if source, call it, encode the value
    VM 0 ◀──Progress(seq, fraction, text)── publisher thread, at most ~60 a second, latest value wins
    VM 0 ◀──Ok(seq, value, seconds)────── or Err(seq, exception or None, traceback text)

Jobs run one at a time, in the order they arrive; VM 0 may send the next ones before this one ends
(a pool does), and they wait in the socket. ``SystemExit`` ends this VM (a job that calls ``exit()``):
the worker tells VM 0 (``Exiting``, with the exit code) and exits; VM 0 reports that the VM died, and
why.
"""

from __future__ import annotations

import builtins
import contextlib
import faulthandler
import itertools
import linecache
import multiprocessing.process
import os
import pickle
import signal
import socket
import sys
import threading
import time
import traceback
import types
from collections import OrderedDict, deque
from collections.abc import Iterator, Sequence
from typing import Any, NoReturn

from . import _context, _lifeline, _payload
from ._channel import Channel
from ._protocol import (
    Call,
    Err,
    Eval,
    Exec,
    Exiting,
    Init,
    Message,
    Ok,
    Progress,
    Quit,
    Release,
    Skip,
    Skipped,
)

PROGRESS_INTERVAL = 1 / 60
_PARENT_CHECK_INTERVAL = 0.25
_names = itertools.count(1)


def run_forked(fd: int) -> NoReturn:
    """Serve as a VM on socket ``fd``, in a process forked from the template; never returns."""
    _exit(lambda: _serve(Channel(socket.socket(fileno=fd))))


def run_spawned(fd: int, parent: int) -> NoReturn:
    """Serve as a VM on socket ``fd``, in a freshly spawned interpreter; never returns.

    ``parent`` is VM 0's pid: on Linux the kernel kills this VM when VM 0 dies, even while a job holds
    the GIL (elsewhere the parent-watch thread notices, once it gets the GIL).
    """
    _lifeline.die_with_parent()
    if os.getppid() != parent:
        os._exit(1)  # VM 0 died while this VM was starting
    _exit(lambda: _serve(Channel(socket.socket(fileno=fd))))


def _exit(serve: Any) -> NoReturn:
    code = 1
    try:
        code = serve()
    except SystemExit as stop:
        # The job asked this VM to exit: do what the interpreter would do with the code.
        if stop.code is None:
            code = 0
        elif isinstance(stop.code, int):
            code = stop.code
        else:
            print(stop.code, file=sys.stderr)
            code = 1
    except BaseException:
        traceback.print_exc()
    finally:
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except Exception:
                pass
    os._exit(code)


def _serve(channel: Channel) -> int:
    init, _fds = channel.recv()
    assert isinstance(init, Init)
    vm_index = init.vm_index
    publisher = _ProgressPublisher(channel)
    _context._enter_vm(vm_index, publisher.start)
    os.chdir(init.cwd)
    # As a multiprocessing child would: proxies of VM 0's Managers sent to jobs authenticate.
    multiprocessing.process.current_process().authkey = init.authkey
    _lower_priority(init.nice)
    sys.path[:] = init.sys_path
    # Ctrl+C in the terminal reaches the whole process group; VM 0 decides what it means.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    faulthandler.enable()
    for stream in (sys.stdout, sys.stderr):
        reconfigure = getattr(stream, "reconfigure", None)
        if reconfigure is not None:
            reconfigure(line_buffering=True)
    _start_parent_watch()
    # Segments of VM 0's arguments whose values this VM no longer holds, to hand back (see _payload).
    releases: deque[int] = deque()
    received = _payload.ReceivedSegments(releases.append)

    namespace = _fresh_main()
    setup_error = None
    if init.setup:
        try:
            exec(_compile(init.setup, "exec", vm_index), namespace)
        except Exception as exc:
            setup_error = f"the setup source of VM {vm_index} failed:\n{_format(exc)}"

    inbox = _Inbox(channel)
    while True:
        try:
            message, fds = inbox.next()
        except (EOFError, OSError):
            return 0  # VM 0 closed the channel or is gone
        if isinstance(message, Quit):
            return 0
        assert isinstance(message, (Exec, Eval, Call))
        seq = message.seq
        if inbox.skip(seq):
            for fd in fds:
                os.close(fd)
            channel.send(Skipped(seq))
            continue
        if setup_error is not None:
            for fd in fds:
                os.close(fd)
            # Retire: VM 0 replaces this VM, so the next job runs the setup again in a fresh one.
            channel.send(Err(seq, None, setup_error, retire=True))
            return 1
        publisher.begin(seq)
        started = time.perf_counter()
        reply: Ok | Err
        out: _payload.Encoded | None = None
        try:
            value = _run(message, iter(fds), received, namespace, vm_index)
        except SystemExit as stop:
            # exit() ends this VM, as in pocketpy. Say why first: VM 0 puts it in last_error().
            with contextlib.suppress(OSError):
                channel.send(Exiting(seq, f"the job raised SystemExit({repr(stop.code)[:200]})"))
            raise
        except (Exception, KeyboardInterrupt) as exc:
            # KeyboardInterrupt can only be raised by the job itself (this VM ignores SIGINT): it is
            # the job's failure, not a reason to end the VM.
            text = _format(exc)
            out = _encode_exception(exc)
            reply = Err(seq, None if out is None else out.payload, text)
        else:
            try:
                out = _payload.encode(value)
            except Exception as exc:
                text = f"the job's return value of type {_type_name(value)} cannot be pickled: {exc}"
                reply = Err(seq, None, f"{type(exc).__name__}: {text}\n")
            else:
                reply = Ok(seq, out.payload, time.perf_counter() - started)
            del value
        publisher.end()
        sys.stdout.flush()
        sys.stderr.flush()
        if releases:
            channel.send(Release(_drain(releases)))
        channel.send(reply, () if out is None or out.fd is None else (out.fd,))


def _lower_priority(nice: int | str) -> None:
    """Lower this VM's CPU priority (always allowed; any error is ignored all the same)."""
    with contextlib.suppress(OSError, AttributeError):
        if nice == "idle":
            if hasattr(os, "SCHED_IDLE"):
                # Linux: run only on CPU time no ordinary process wants, so a game's frame that wakes
                # up never waits for a VM's time slice to end.
                os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))
            else:
                os.nice(19)
        elif isinstance(nice, int) and nice:
            os.nice(nice)


def _run(
    job: Exec | Eval | Call,
    fds: Iterator[int],
    peer: _payload.ReceivedSegments,
    namespace: dict[str, Any],
    vm_index: int,
) -> Any:
    # Source comes as a str, or, when long, as a payload like an argument's (VM 0 keeps messages small).
    if isinstance(job, Exec):
        exec(_compile(_source(job.source, fds, peer), "exec", vm_index), namespace)
        return None
    if isinstance(job, Eval):
        return eval(_compile(_source(job.source, fds, peer), "eval", vm_index), namespace)
    function, args, kwargs = _payload.decode(job.call, fds, peer)
    if function.__class__ is bytes:  # a module's function, pickled once by VM 0 (``function_reference``)
        function = pickle.loads(function)
    elif isinstance(function, str):  # source that evaluates to the callable
        function = eval(_compile(function, "eval", vm_index), namespace)
    return function(*args, **kwargs)


def _source(field: Any, fds: Iterator[int], peer: _payload.ReceivedSegments) -> str:
    """The source of an exec or eval job: the field itself, or the payload it was sent as."""
    if isinstance(field, str):
        return field
    source: str = _payload.decode(field, fds, peer)
    return source


_IN_TURN = (Exec, Eval, Call, Quit)  # messages that wait for their turn; every other one acts at once


class _Inbox:
    """The messages from VM 0, in order: jobs wait here until they run. Before a job starts, the messages
    read with it are looked through, so that a ``Skip`` sent after the job still stops it."""

    def __init__(self, channel: Channel) -> None:
        self._channel = channel
        self._pending: deque[tuple[Message, Sequence[int]]] = deque()
        self._skips: set[int] = set()

    def next(self) -> tuple[Message, Sequence[int]]:
        """The next job (or ``Quit``), waiting for one if none has come; raises ``EOFError`` at the end.

        A job read earlier (it waited behind the running one) gets one more look at the socket before it
        starts, so that a ``Skip`` sent since is seen; a job that arrives while the VM waits starts at
        once (a ``Skip`` still on its way then finds it started, and it runs).
        """
        while (received := self._channel.take_buffered()) is not None:
            self._take(*received)
        if self._pending:
            while (received := self._channel.recv_nowait()) is not None:
                self._take(*received)
            return self._pending.popleft()
        while True:
            message, fds = self._channel.recv()
            if not isinstance(message, _IN_TURN):
                self._take(message, fds)
                continue
            if not self._channel.buffered():
                return message, fds  # the usual case: it came alone, and the VM was waiting for it
            # Read with others (a Skip of this very job, say): look through them before it starts.
            self._pending.append((message, fds))
            while (received := self._channel.take_buffered()) is not None:
                self._take(*received)
            return self._pending.popleft()

    def skip(self, seq: int) -> bool:
        """Whether VM 0 asked to skip job ``seq`` (which is about to start)."""
        if not self._skips:
            return False
        skipped = seq in self._skips
        self._skips = {other for other in self._skips if other > seq}  # the older ones ran already
        return skipped

    def _take(self, message: Message, fds: Sequence[int]) -> None:
        """Keep a job (or Quit) for its turn; act on any other message at once."""
        if isinstance(message, _IN_TURN):
            self._pending.append((message, fds))
        elif isinstance(message, Release):
            for segment in message.segments:
                _payload.POOL.release(segment)
        elif isinstance(message, Skip):
            self._skips.update(message.seqs)
        else:
            raise AssertionError(f"a VM does not expect {type(message).__name__} messages")


def _drain(queue: deque[int]) -> list[int]:
    items = []
    while queue:
        items.append(queue.popleft())
    return items


_COMPILED_LIMIT = 512
_COMPILED_CHARS = 32 * 1024 * 1024  # and at most this much source text, however few the sources
_compiled: OrderedDict[tuple[str, str], types.CodeType] = OrderedDict()
_compiled_chars = 0


def _compile(source: str, mode: str, vm_index: int) -> types.CodeType:
    """Compile job source once per distinct string, and let tracebacks show its lines.

    The most recent 512 sources are kept (with their lines in ``linecache``), up to 32 Mi characters in
    all, so a game that sends a new string each frame does not grow the VM without bound.
    """
    global _compiled_chars
    key = (source, mode)
    code = _compiled.get(key)
    if code is not None:
        _compiled.move_to_end(key)
        return code
    filename = f"<vm{vm_index} {mode} #{next(_names)}>"
    code = compile(source, filename, mode)
    linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
    _compiled[key] = code
    _compiled_chars += len(source)
    while len(_compiled) > 1 and (len(_compiled) > _COMPILED_LIMIT or _compiled_chars > _COMPILED_CHARS):
        (old_source, _mode), evicted = _compiled.popitem(last=False)
        _compiled_chars -= len(old_source)
        linecache.cache.pop(evicted.co_filename, None)
    return code


def _fresh_main() -> dict[str, Any]:
    """Install an empty ``__main__`` module: the VM's namespace, persisting between jobs."""
    module = types.ModuleType("__main__")
    module.__dict__["__builtins__"] = builtins
    sys.modules["__main__"] = module
    return module.__dict__


def _format(exc: BaseException) -> str:
    """Format ``exc`` with its traceback, leaving out this module's own frames."""
    tb = exc.__traceback__
    while tb is not None and tb.tb_frame.f_code.co_filename == __file__:
        tb = tb.tb_next
    return "".join(traceback.format_exception(type(exc), exc, tb))


def _encode_exception(exc: BaseException) -> _payload.Encoded | None:
    try:
        return _payload.encode(exc)
    except Exception:
        return None  # VM 0 raises a JobError with the traceback text instead


def _type_name(value: object) -> str:
    cls = type(value)
    return cls.__qualname__ if cls.__module__ == "builtins" else f"{cls.__module__}.{cls.__qualname__}"


class _ProgressPublisher:
    """Sends the latest ``report_progress`` value to VM 0 at a bounded rate, from its own thread.

    ``report_progress`` only stores the value; this thread, started by the first report in this VM,
    wakes ~60 times a second and sends the value if it differs from the one it sent last and the pipe
    has room. ``begin``/``end`` bracket each job so that a value is never sent under the wrong job's
    number, and the last one is flushed.
    """

    def __init__(self, channel: Channel) -> None:
        self._channel = channel
        self._lock = threading.Lock()
        self._seq: int | None = None
        self._sent: tuple[float, str] | None = None

    def start(self) -> None:
        threading.Thread(target=self._loop, name="progress-publisher", daemon=True).start()

    def begin(self, seq: int) -> None:
        with self._lock:
            self._seq = seq
            self._sent = None
            _context._forget_latest()

    def end(self) -> None:
        with self._lock:
            self._send_latest(wait=True)
            self._seq = None

    def _loop(self) -> None:
        while True:
            time.sleep(PROGRESS_INTERVAL)
            with self._lock:
                self._send_latest(wait=False)

    def _send_latest(self, wait: bool) -> None:
        latest = _context._read_latest()
        if self._seq is None or latest is None or latest == self._sent:
            return
        message = Progress(self._seq, *latest)
        if wait:
            self._channel.send(message)
        elif not self._channel.try_send(message):
            return  # the pipe is full (VM 0 is not reading): next round sends whatever is latest then
        self._sent = latest


def _start_parent_watch() -> None:
    """Exit when this VM's parent goes away (a fallback; on Linux the kernel kills it first)."""
    parent = os.getppid()

    def watch() -> None:
        while True:
            time.sleep(_PARENT_CHECK_INTERVAL)
            if os.getppid() != parent:
                os._exit(1)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()
