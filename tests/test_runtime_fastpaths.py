"""Guards for the hot path's shortcuts: a reply read whole however it arrives, the cache of pickled
functions, futures resolved once with callbacks outside every lock. (From a review of the second speed
pass, which found the first two broken.)

Every test ends its VMs and waits on conditions with timeouts (no fixed sleep decides an outcome).
"""

from __future__ import annotations

import array
import fcntl
import gc
import importlib
import pickle
import sys
import termios
import threading
import weakref
from concurrent.futures import FIRST_COMPLETED, Future, as_completed, wait
from pathlib import Path
from typing import Any

import pytest
from vmtools import wait_until

from runtime import ComputePool, ComputeThread

# A reply whose Ok frame (8-byte length, 17-byte head, the value's plain pickle) nearly fills one 64 KiB
# read of the channel: with the VM's Release of the argument's segment in front of it, the two together
# are more than one read brings in.
_SIZE = 65_490
_OK_FRAME = 8 + 17 + len(pickle.dumps(b"x" * _SIZE, 5))
_BIG_ARGUMENT = b"a" * 200_000  # travels in a segment, which the VM releases before it replies

SETUP = """
import os, time
def reply(argument, size):
    return b"x" * size
def reply_when(path, argument, size, timeout=20.0):
    # Wait for the test to create ``path`` (a condition with a timeout, never a fixed sleep).
    end = time.monotonic() + timeout
    while not os.path.exists(path) and time.monotonic() < end:
        time.sleep(0.002)
    return b"x" * size
"""


def _unread_bytes_of(fd: int) -> int:
    """How many bytes of the VM's messages wait, unread by VM 0, in its end of the channel (FIONREAD)."""
    count = array.array("i", [0])
    fcntl.ioctl(fd, termios.FIONREAD, count)
    return count[0]


def _unread_bytes(thread: ComputeThread) -> int:
    proc = thread._manager.proc
    assert proc is not None
    return _unread_bytes_of(proc.channel.fd)


def _submit_and_wait_for_the_whole_reply(thread: ComputeThread) -> None:
    """Submit the job and wait until its Release and its whole Ok have arrived in VM 0's socket."""
    thread.exec("pass")  # the VM is up before the job
    thread.submit_call("reply", _BIG_ARGUMENT, _SIZE)
    # Nothing reads the channel meanwhile (a submit_* job has no future, so no pump thread runs).
    assert wait_until(lambda: _unread_bytes(thread) >= _OK_FRAME + 9, timeout=30)
    assert _unread_bytes(thread) > 64 * 1024  # more than one read of the channel takes


def test_is_done_sees_a_reply_that_has_wholly_arrived_behind_another_message() -> None:
    # Manager.service now returns after handling what the first read brought (``return`` in place of
    # ``continue`` while a job is in flight), so the rest of the reply waits for the next frame's poll.
    with ComputeThread(1, setup=SETUP) as thread:
        _submit_and_wait_for_the_whole_reply(thread)
        assert thread.is_done, "the whole reply had arrived, yet is_done said False"
        assert thread.last_retval() == b"x" * _SIZE


def test_last_retval_after_the_reply_has_arrived_does_not_raise_not_done() -> None:
    # The same, through the pocketpy call a game makes once it knows the job ended: check_idle services
    # the VM once, and its one read leaves the reply's tail unread, so it raises "thread is not done yet".
    with ComputeThread(1, setup=SETUP) as thread:
        _submit_and_wait_for_the_whole_reply(thread)
        assert thread.last_retval() == b"x" * _SIZE


def test_cancel_after_the_reply_has_arrived_keeps_the_finished_jobs_value() -> None:
    # cancel() reads the VM's news first ("the job may have just ended"); that one read now stops short
    # of the reply's tail, so cancel() kills the VM under a job that had finished and replied: it
    # returns True, the value is thrown away and last_error() says the job was cancelled.
    with ComputeThread(1, setup=SETUP) as thread:
        _submit_and_wait_for_the_whole_reply(thread)
        assert thread.cancel() is False, "cancel() stopped a job whose whole reply had arrived"
        assert thread.last_error() is None
        assert thread.last_retval() == b"x" * _SIZE


def test_pool_cancel_running_after_the_reply_has_arrived_keeps_the_finished_jobs_value(
    tmp_path: Path,
) -> None:
    # The pool's cancel(key, running=True) reads each VM's news first, as ComputeThread.cancel() does,
    # and so kills a VM whose job had replied in full. Holding the pool's guard stands for the moment
    # the pump thread is busy elsewhere (another VM's replies, the GIL) when the reply comes in.
    go = tmp_path / "go"
    with ComputePool(1, setup=SETUP) as pool:
        pool.submit("int", 0).result(30)  # the VM is up
        future = pool.submit("reply_when", str(go), _BIG_ARGUMENT, _SIZE, key="chunk")
        manager = pool._core.managers[0]
        with pool._core.guard:
            assert wait_until(lambda: bool(manager.inflight), timeout=30)  # sent; the VM waits for go
            go.touch()
            proc = manager.proc
            assert proc is not None
            assert wait_until(lambda: _unread_bytes_of(proc.channel.fd) >= _OK_FRAME + 9, timeout=30)
            stopped = pool.cancel("chunk", running=True)
        assert future.result(30) == b"x" * _SIZE
        assert stopped == 0


def _probe_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str, source: str) -> object:
    """Import a fresh module ``name`` from ``tmp_path`` (taken out of ``sys.modules`` again at the end)."""
    monkeypatch.setattr(sys, "dont_write_bytecode", True)  # a rewrite within a second is never stale
    (tmp_path / f"{name}.py").write_text(source)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, name, raising=False)  # (at the end: taken out, holding nothing)
    return importlib.import_module(name)


def test_a_vm_keeps_the_modules_it_imported_and_a_new_vm_sees_a_reload(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Hot reload, as a game's developer does it: edit the module, importlib.reload it in VM 0. A VM
    # imports a module once, as any process does, so the running VM still runs the code it imported
    # (the README says so); a new VM imports the new code.
    module = _probe_module(tmp_path, monkeypatch, "rv_reload_probe", "def version():\n    return 1\n")
    with ComputePool(1) as pool:
        assert pool.submit(module.version).result(30) == 1  # type: ignore[attr-defined]
        (tmp_path / "rv_reload_probe.py").write_text("def version():\n    return 22\n")
        importlib.reload(module)  # type: ignore[arg-type]
        assert module.version() == 22  # type: ignore[attr-defined]
        assert pool.submit(module.version).result(30) == 1  # type: ignore[attr-defined]
    with ComputePool(1) as pool:
        assert pool.submit(module.version).result(30) == 22  # type: ignore[attr-defined]


def test_the_function_cache_lets_an_unloaded_modules_function_go(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # function_reference keeps every function it pickled (up to 256) in a plain dict: a function whose
    # module was unloaded (a mod, a level script, a reloaded module's old functions) stays alive, and with
    # it its globals, until 256 other functions have been submitted.
    source = "PAYLOAD = bytearray(8 << 20)\ndef work():\n    return len(PAYLOAD)\n"
    module = _probe_module(tmp_path, monkeypatch, "rv_unload_probe", source)
    with ComputePool(1) as pool:
        assert pool.submit(module.work).result(30) == 8 << 20  # type: ignore[attr-defined]
    gone = weakref.ref(module.work)  # type: ignore[attr-defined]
    del sys.modules["rv_unload_probe"], module  # unloaded: nothing of ours refers to it
    gc.collect()
    assert gone() is None, "runtime._pickling._references still holds the unloaded module's function"


# -- futures -------------------------------------------------------------------------------------------


def test_pool_futures_resolve_once_for_waiting_threads_with_callbacks_outside_every_lock(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # finish_future notifies a future's condition only when a thread waits on it, and runs the done-
    # callbacks only when there are some; with threads blocked in result(), wait() and as_completed(),
    # and submitters racing the pump, every future must resolve once, with its own value, and its
    # callback must run once, holding neither the pool's guard nor the future's condition.
    module = _probe_module(tmp_path, monkeypatch, "rv_ident_probe", "def ident(x):\n    return x\n")
    ident = module.ident  # type: ignore[attr-defined]
    calls: dict[int, int] = {}
    wrong: list[str] = []
    futures: list[Future[Any]] = []
    lock = threading.Lock()
    with ComputePool(2) as pool:
        guard_lock = pool._core.guard.lock

        def callback(future: Future[Any]) -> None:
            if guard_lock._is_owned() or future._condition._is_owned():  # type: ignore[attr-defined]
                wrong.append("a done-callback ran with a lock held")
            with lock:
                calls[id(future)] = calls.get(id(future), 0) + 1

        def submitter(k: int) -> None:
            for i in range(300):
                future = pool.submit(ident, (k, i))
                future.add_done_callback(callback)
                with lock:
                    futures.append(future)
                if i % 3 == 0 and future.result(30) != (k, i):
                    wrong.append(f"job {(k, i)} returned {future.result()!r}")
                elif i % 3 == 1 and not wait([future], timeout=30, return_when=FIRST_COMPLETED).done:
                    wrong.append(f"wait() missed job {(k, i)}")

        threads = [threading.Thread(target=submitter, args=(k,)) for k in range(3)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        with lock:
            every = list(futures)
        assert len(list(as_completed(every, timeout=30))) == len(every) == 900
        assert sorted(f.result() for f in every) == sorted((k, i) for k in range(3) for i in range(300))
        assert wait_until(lambda: len(calls) == 900, timeout=10)
    assert not wrong
    assert set(calls.values()) == {1}
