"""The worker VM: a fresh process that runs jobs from VM 0 in its own ``__main__`` namespace.

Entry points: ``run_forked`` (called in a child of the template, see ``_template``) and ``run_spawned``
(called by ``python -c`` on platforms without fork). Both read the init message, then serve jobs until VM 0
says quit or goes away. A job is one message in, one message out::

    VM 0 ──("call", seq, target, args)──▶ worker: eval target, call it, encode the value
    VM 0 ◀──("progress", seq, f, msg)──── publisher thread, at most ~60 times a second, latest value wins
    VM 0 ◀──("ok", seq, payload)───────── or ("err", seq, exception payload or None, traceback text)

``SystemExit`` is not caught: a job that calls ``exit()`` ends this VM, and VM 0 reports that it died.
"""

from __future__ import annotations

import builtins
import faulthandler
import functools
import itertools
import linecache
import os
import signal
import sys
import threading
import time
import traceback
import types
from typing import Any, NoReturn

from . import _context, _payload
from ._channel import Channel

PROGRESS_INTERVAL = 1 / 60
_PARENT_CHECK_INTERVAL = 0.25
_names = itertools.count(1)


def run_forked(fd: int) -> NoReturn:
    """Serve as a VM on socket ``fd``, in a process forked from the template; never returns."""
    _exit(lambda: _serve(Channel(fd)))


def run_spawned(fd: int) -> NoReturn:
    """Serve as a VM on socket ``fd``, in a freshly spawned interpreter; never returns."""
    _exit(lambda: _serve(Channel(fd)))


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
    _tag, init = channel.recv()
    vm_index: int = init["vm_index"]
    owner_pid: int = init["owner_pid"]
    publisher = _ProgressPublisher(channel)
    _context._enter_vm(vm_index, publisher.start)
    os.chdir(init["cwd"])
    sys.path[:] = init["sys_path"]
    # Ctrl+C in the terminal reaches the whole process group; VM 0 decides what it means.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    faulthandler.enable()
    for stream in (sys.stdout, sys.stderr):
        reconfigure = getattr(stream, "reconfigure", None)
        if reconfigure is not None:
            reconfigure(line_buffering=True)
    _start_parent_watch(owner_pid)

    namespace = _fresh_main()
    setup_error = None
    if init["setup"]:
        try:
            exec(_compile(init["setup"], "exec", vm_index), namespace)
        except Exception as exc:
            setup_error = f"the setup source of VM {vm_index} failed:\n{_format(exc)}"

    while True:
        channel.wait_readable(None)
        try:
            message = channel.recv()
        except (EOFError, OSError):
            return 0  # VM 0 closed the channel or is gone
        if message[0] == "quit":
            return 0
        op, seq = message[0], message[1]
        if setup_error is not None:
            # "retire": VM 0 replaces this VM, so the next job runs the setup again in a fresh one.
            channel.send(("err", seq, None, setup_error, "retire"))
            return 1
        publisher.begin(seq)
        reply: tuple[Any, ...]
        try:
            value = _run(op, message, namespace, vm_index)
        except Exception as exc:
            text = _format(exc)
            reply = ("err", seq, _encode_exception(exc, owner_pid), text)
        else:
            try:
                payload, _segments = _payload.encode(value, owner_pid=owner_pid)
            except Exception as exc:
                text = f"the job's return value of type {_type_name(value)} cannot be pickled: {exc}"
                reply = ("err", seq, None, f"{type(exc).__name__}: {text}\n")
            else:
                reply = ("ok", seq, payload)
            del value
        publisher.end()
        sys.stdout.flush()
        sys.stderr.flush()
        channel.send(reply)


def _run(op: str, message: tuple[Any, ...], namespace: dict[str, Any], vm_index: int) -> Any:
    if op == "exec":
        exec(_compile(message[2], "exec", vm_index), namespace)
        return None
    if op == "eval":
        return eval(_compile(message[2], "eval", vm_index), namespace)
    if op == "call":
        target = message[2]
        if isinstance(target, str):
            function = eval(_compile(target, "eval", vm_index), namespace)
        else:
            function = _payload.decode(target)
        args, kwargs = _payload.decode(message[3])
        return function(*args, **kwargs)
    raise ValueError(f"unknown job kind {op!r}")


@functools.lru_cache(maxsize=512)
def _compile(source: str, mode: str, vm_index: int) -> types.CodeType:
    """Compile job source once per distinct string, and let tracebacks show its lines."""
    filename = f"<vm{vm_index} {mode} #{next(_names)}>"
    linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
    return compile(source, filename, mode)


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


def _encode_exception(exc: BaseException, owner_pid: int) -> _payload.Payload | None:
    try:
        payload, _segments = _payload.encode(exc, owner_pid=owner_pid)
    except Exception:
        return None  # VM 0 raises a JobError with the traceback text instead
    return payload


def _type_name(value: object) -> str:
    cls = type(value)
    return cls.__qualname__ if cls.__module__ == "builtins" else f"{cls.__module__}.{cls.__qualname__}"


class _ProgressPublisher:
    """Sends the latest ``report_progress`` value to VM 0 at a bounded rate, from its own thread.

    ``report_progress`` only stores a tuple; this thread, started by the first report in this VM, wakes
    ~60 times a second and sends the value if it changed and the pipe has room. ``begin``/``end`` bracket
    each job so that a value is never sent under the wrong job's number, and the last one is flushed.
    """

    def __init__(self, channel: Channel) -> None:
        self._channel = channel
        self._lock = threading.Lock()
        self._seq: int | None = None

    def start(self) -> None:
        threading.Thread(target=self._loop, name="progress-publisher", daemon=True).start()

    def begin(self, seq: int) -> None:
        with self._lock:
            self._seq = seq
            _context._latest = None

    def end(self) -> None:
        with self._lock:
            latest = _context._take_latest()
            if latest is not None and self._seq is not None:
                self._channel.send(("progress", self._seq, *latest))
            self._seq = None

    def _loop(self) -> None:
        while True:
            time.sleep(PROGRESS_INTERVAL)
            with self._lock:
                latest = _context._take_latest()
                if latest is None or self._seq is None:
                    continue
                # If the pipe is full (VM 0 is not reading), keep the value for the next round,
                # unless the job has reported a newer one meanwhile.
                sent = self._channel.try_send(("progress", self._seq, *latest))
                if not sent and _context._latest is None:
                    _context._latest = latest


def _start_parent_watch(owner_pid: int) -> None:
    """Exit when this VM's parent goes away (a fallback; on Linux the kernel kills it first)."""
    parent = os.getppid()

    def watch() -> None:
        while True:
            time.sleep(_PARENT_CHECK_INTERVAL)
            if os.getppid() != parent:
                _payload.sweep_segments(owner_pid)
                os._exit(1)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()
