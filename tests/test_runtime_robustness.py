"""Robustness: the runtime's own machinery under stress (locks, partial messages, stray processes)."""

from __future__ import annotations

import contextlib
import gc
import os
import pickle
import shutil
import signal
import socket
import struct
import subprocess
import sys
import textwrap
import threading
from concurrent.futures import Future, wait
from pathlib import Path

import numpy as np
import pytest
from vmtools import NOT_DONE, ROOT, alive, run_python, wait_until

from runtime import ComputeThread, VMClosedError, VMDiedError, _protocol, _registry, _vm_process
from runtime._channel import Channel
from runtime._protocol import Ok, Progress


def test_done_callbacks_that_submit_to_each_other_do_not_deadlock() -> None:
    """Two chains of jobs in opposite directions: each future's callback submits to the other VM.

    Both pump threads resolve futures at the same time, each callback locking the other VM.
    """
    with ComputeThread(1) as first, ComputeThread(2) as second:
        results: dict[str, list[int]] = {"a": [], "b": []}
        finished = {"a": threading.Event(), "b": threading.Event()}

        def bounce(chain: str, future: Future[int], here: ComputeThread, there: ComputeThread) -> None:
            value = future.result()
            results[chain].append(value)
            if value >= 200:
                finished[chain].set()
                return
            there.submit("lambda n: n + 1", value).add_done_callback(lambda f: bounce(chain, f, there, here))

        first.submit("lambda n: n + 1", 0).add_done_callback(lambda f: bounce("a", f, first, second))
        second.submit("lambda n: n + 1", 0).add_done_callback(lambda f: bounce("b", f, second, first))
        for chain in "ab":
            assert finished[chain].wait(30), f"chain {chain} stalled after {len(results[chain])} jobs"
            assert results[chain] == list(range(1, 201))
        assert wait_until(lambda: first.is_done and second.is_done, timeout=5)


def test_sending_a_job_never_waits_for_a_vm_that_is_busy_in_its_setup(tmp_path: Path) -> None:
    gate = tmp_path / "gate"
    os.mkfifo(gate)
    # The setup blocks until the test opens the FIFO: the VM reads nothing meanwhile.
    vm = ComputeThread(1, setup=f"open({str(gate)!r}).read()")
    try:
        returned = threading.Event()
        futures: list[Future[int]] = []
        # Arguments just under and far over the 64 KiB that travels inline in the message.
        arguments = [bytes(range(256)) * 1000, b"x" * 60_000, list(range(30_000))]

        def submit() -> None:
            for argument in arguments:
                futures.append(vm.submit("len", argument))
            returned.set()

        submitter = threading.Thread(target=submit)
        submitter.start()
        try:
            assert returned.wait(5), "submit() blocked on a VM that was not reading"
            assert not vm.is_done
            with pytest.raises(OSError, match=NOT_DONE):
                vm.submit_eval("1")
        finally:
            with open(gate, "w") as writer:
                writer.write("go")
            submitter.join(5)
        assert vm.wait_for_done(10)
        assert [future.result() for future in futures] == [256_000, 60_000, 30_000]
    finally:
        vm.close()


def test_a_long_source_is_sent_like_a_big_argument_without_waiting_for_the_vm(tmp_path: Path) -> None:
    gate = tmp_path / "gate"
    os.mkfifo(gate)
    vm = ComputeThread(1, setup=f"open({str(gate)!r}).read()")  # reads nothing until the gate opens
    try:
        returned = threading.Event()
        text = "y" * 3_000_000  # a level baked into source, say: far more than a socket buffer holds
        futures: list[Future[int]] = []

        def submit() -> None:
            vm.submit_exec(f"level = {text!r}")
            futures.append(vm.submit(f"lambda: len({text!r}) + len(level)"))
            returned.set()

        submitter = threading.Thread(target=submit)
        submitter.start()
        try:
            assert returned.wait(5), "submitting a long source blocked on a VM that was not reading"
        finally:
            with open(gate, "w") as writer:
                writer.write("go")
            submitter.join(5)
        assert futures[0].result(timeout=20) == 6_000_000
        assert vm.last_error() is None
        assert vm.eval("len(level)") == 3_000_000
    finally:
        vm.close()


def test_a_vm_that_close_kills_ends_its_job_as_closed_whoever_sees_it_exit() -> None:
    """close() kills a busy VM before it takes the lock; a thread that services the VM in between
    (a frame polling is_done) must end the job as closed, not died, and start no queued job."""
    vm = ComputeThread(1)
    running = vm.submit("__import__('time').sleep", 30)
    queued = vm.submit("1 + 1")
    core = vm._manager
    proc = core.proc
    assert proc is not None and wait_until(lambda: running.running(), 5)
    holding, closer = threading.Event(), threading.Thread(target=vm.close)
    with core.guard:  # a thread in the middle of a call: close() must wait for the lock, after its kill
        holding.set()
        closer.start()
        assert wait_until(lambda: proc.poll_exit() is not None, 5), "close() did not kill the VM"
        core.service()  # sees the exit first
        assert core.proc is None, "a queued job started on a new VM while the ComputeThread closed"
    closer.join(5)
    for future in (running, queued):
        with pytest.raises(VMClosedError, match=r"^ComputeThread\(1\) was closed before the job finished$"):
            future.result(timeout=5)


def test_a_vm_that_dies_while_a_forked_child_holds_its_socket_is_noticed(tmp_path: Path) -> None:
    pid_file = tmp_path / "grandchild"
    vm = ComputeThread(1)
    grandchild = None
    try:
        vm.submit_exec(
            textwrap.dedent(
                f"""
                import os, time
                child = os.fork()
                if child == 0:
                    time.sleep(60)  # holds the VM's end of the channel open
                    os._exit(0)
                with open({str(pid_file)!r}, "w") as f:
                    f.write(str(child))
                os._exit(5)
                """
            )
        )
        assert vm.wait_for_done(5), "the VM's exit was not noticed while its child held the socket"
        grandchild = int(pid_file.read_text())
        assert alive(grandchild)
        error = vm.last_error() or ""
        assert "VM 1 died during the job: exited with code 5" in error
        assert vm.eval("6 * 7") == 42  # a fresh VM
    finally:
        if grandchild is not None:
            os.kill(grandchild, signal.SIGKILL)
        vm.close()


def _frame(message: _protocol.Message) -> bytes:
    data = pickle.dumps(_protocol.to_wire(message))
    return struct.pack("!Q", len(data)) + data


def test_every_message_survives_its_framing_and_a_jobs_two_skip_pickle() -> None:
    # A Call and an Ok with a plain pickle travel as a tag byte, packed numbers and the pickle as it is;
    # every other message (an Ok in a segment, an Err, a Release) as its pickled wire tuple.
    plain = ("p", pickle.dumps((abs, (-3,), {})))
    messages: list[_protocol.Message] = [
        _protocol.Call(2**40, plain),
        _protocol.Ok(7, ("p", b"\x80 not a pickle"), 0.25),
        _protocol.Ok(8, ("s", 3, 4096, None, b"data", [(0, 10)], None), 1.5),
        _protocol.Call(9, ("b", b"data", [b"buffer"])),
        _protocol.Err(10, None, "Traceback ...", retire=True),
        _protocol.Release([1, 2]),
    ]
    pickled = [data.startswith(b"\x80") for data in map(_protocol.frame, messages)]
    assert pickled == [False, False, True, True, True, True]
    for message in messages:
        data = _protocol.frame(message)
        buffer = bytearray(b"ahead" + data + b"behind")
        back = _protocol.unframe(buffer, 5, 5 + len(data))
        assert back == message and type(back) is type(message)


def test_a_message_that_arrives_in_pieces_is_assembled_without_blocking() -> None:
    ours, theirs = socket.socketpair()
    channel = Channel(ours)
    try:
        frame = _frame(Ok(7, ("p", b"x" * 100_000), 0.5))
        readable_r, readable_w = os.pipe()  # a descriptor to pass with the first piece
        os.close(readable_w)
        socket.send_fds(theirs, [frame[:3]], [readable_r])
        os.close(readable_r)
        assert channel.recv_nowait() is None  # half a header
        theirs.sendall(frame[3:50_000])
        assert channel.recv_nowait() is None  # header and part of the body
        theirs.sendall(frame[50_000:] + _frame(Progress(8, 0.5, "half")))
        message, fds = channel.recv_nowait() or ((), [])
        assert message == Ok(7, ("p", b"x" * 100_000), 0.5) and type(message) is Ok and len(fds) == 1
        os.close(fds[0])
        assert channel.recv_nowait() == (Progress(8, 0.5, "half"), ())  # (no list when no descriptors)
        assert channel.recv_nowait() is None
        theirs.sendall(_frame(Ok(9, ("p", b""), 0.0))[:20])
        theirs.close()
        with pytest.raises(EOFError, match="^the other VM closed the channel mid-message$"):
            while channel.recv_nowait() is None:
                pass
    finally:
        channel.close()


def test_killing_a_vm_whose_pid_is_not_known_yet_never_waits_and_kills_it_once_known() -> None:
    status_r, status_w = os.pipe()
    ours, theirs = socket.socketpair()
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    vm = _vm_process.ForkedVM(Channel(ours), 1, status_r)
    try:
        vm.kill()  # the template has not reported the pid: returns at once, the kill is remembered
        assert vm.pid == -1 and sleeper.poll() is None
        os.write(status_w, struct.pack(_protocol.STATUS_FORMAT, sleeper.pid))
        assert vm.wait_pid(5) == sleeper.pid
        assert sleeper.wait(5) == -signal.SIGKILL
    finally:
        sleeper.kill()
        sleeper.wait()
        os.close(status_w)
        theirs.close()
        vm.release()


@pytest.mark.parametrize("method", ["template", "spawn"])
def test_the_runtime_works_vendored_as_a_subpackage(tmp_path: Path, method: str) -> None:
    game = tmp_path / "mygame"
    shutil.copytree(ROOT / "runtime", game / "runtime", ignore=shutil.ignore_patterns("__pycache__"))
    (game / "__init__.py").write_text("")
    script = textwrap.dedent(
        f"""
        import sys
        from mygame import runtime
        runtime.configure(start_method={method!r})
        with runtime.ComputeThread(1) as vm:
            vm.exec("import sys, mygame.runtime")
            print(vm.eval("mygame.runtime.currentvm()"),
                  vm.eval("sum(name.split('.')[0] == 'runtime' for name in sys.modules)"),
                  vm.call(lambda: sum(range(10))))
        """
    )
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    # From tmp_path and with the project's own runtime out of reach: only mygame.runtime exists.
    done = run_python(
        f"import sys; sys.path.insert(0, {str(tmp_path)!r}); exec({script!r})", "-I", cwd=tmp_path, env=env
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["1", "0", "45"]  # the VM never imported a top-level "runtime"


def test_a_child_forked_from_vm0_owns_no_vm_and_leaves_the_parents_alone(tmp_path: Path) -> None:
    script = textwrap.dedent(
        """
        import os, sys
        from runtime import ComputeThread
        vm = ComputeThread(1)
        assert vm.eval("40 + 2") == 42
        child = os.fork()
        if child == 0:
            code = 0 if vm.closed and vm.pid is None else 1
            try:
                ComputeThread(1).close()  # the index is free in the child: it owns no VM
            except Exception:
                code = 2
            os._exit(code)
        _, status = os.waitpid(child, 0)
        print(os.waitstatus_to_exitcode(status), vm.eval("6 * 7"), vm.closed)
        vm.close()
        """
    )
    done = run_python(script, "-W", "ignore::DeprecationWarning")
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["0", "42", "False"]


def test_the_vm_keeps_a_bounded_number_of_compiled_sources() -> None:
    with ComputeThread(1) as vm:
        for n in range(600):
            vm.eval(f"{n} + 0")
        assert vm.eval("len(__import__('linecache').cache)") <= 520
        with pytest.raises(RuntimeError, match=r"(?s)    1 / 0\n.*ZeroDivisionError"):
            vm.exec("1 / 0")


def test_the_vm_keeps_a_bounded_amount_of_compiled_source_text() -> None:
    with ComputeThread(1) as vm:
        vm.exec("import runtime._worker as worker\nworker._COMPILED_CHARS = 100_000")
        for n in range(40):  # 40 sources of ~10,000 characters: 400,000 in all
            assert vm.eval(f"{n} + len({'z' * 10_000!r})") == n + 10_000
        assert vm.eval("worker._compiled_chars") <= 100_000
        assert vm.eval("len(worker._compiled)") <= 12


def test_a_huge_progress_message_is_cut_to_1000_characters() -> None:
    with ComputeThread(1) as vm:
        vm.exec("import runtime, threading; gate = threading.Event()")
        vm.submit_exec("runtime.report_progress(0.25, 'x' * 10_000_000); gate.wait(30)")
        assert wait_until(lambda: vm.progress[0] == 0.25, timeout=5)
        assert vm.progress[1] == "x" * 1000
        assert vm.cancel()


def test_a_vm_killed_while_vm0_waits_on_a_future_fails_the_future() -> None:
    with ComputeThread(1) as vm:
        vm.exec("import os")
        futures = [vm.submit("lambda: os.kill(os.getpid(), 9)"), vm.submit("lambda: 1")]
        done, _ = wait(futures, timeout=10)
        assert len(done) == 2
        with pytest.raises(VMDiedError, match="killed by SIGKILL"):
            futures[0].result()
        assert futures[1].result() == 1


def test_closing_while_a_done_callback_cancels_a_queued_future_leaves_nothing_behind() -> None:
    from runtime import _payload

    busy_before = _payload.POOL.counts()[0]
    vm = ComputeThread(1)
    try:
        vm.exec("import threading; gate = threading.Event()")
        first = vm.submit("gate.wait", 30)
        second = vm.submit("len", np.ones(1 << 20, dtype=np.uint8))  # its argument has a segment
        third = vm.submit("len", "abcd")
        first.add_done_callback(lambda _: second.cancel())  # "the first failed: drop the follow-ups"
    finally:
        vm.close()  # must not raise, whatever the callbacks do
    assert isinstance(first.exception(timeout=5), VMClosedError)
    assert second.cancelled() or isinstance(second.exception(timeout=5), VMClosedError)
    assert isinstance(third.exception(timeout=5), VMClosedError)
    assert wait_until(lambda: _payload.POOL.counts()[0] == busy_before, timeout=2)


def test_garbage_collection_inside_the_runtimes_own_locks_closes_the_vm_later() -> None:
    """The collector may run anywhere, even where the runtime holds its segment pool's lock."""
    from runtime import _payload

    vm = ComputeThread(1)
    pid = vm.pid
    assert pid is not None
    with _payload.POOL._lock:  # as if a collection struck inside POOL.acquire()
        del vm
        gc.collect()  # the finalizer must not close here: closing takes this lock
    assert wait_until(lambda: not alive(pid), timeout=2)
    assert 1 not in _registry.owned()


def test_a_vm_that_kept_a_segment_and_died_has_it_freed_not_reused() -> None:
    """A process the job forked may still map it, so it must never carry another value."""
    from runtime import _payload

    busy_before, free_before = _payload.POOL.counts()
    with ComputeThread(1) as vm:
        vm.exec("kept = []")
        vm.call("kept.append", np.ones(1 << 20, dtype=np.uint8))
        assert _payload.POOL.counts() == (busy_before + 1, free_before)
        vm.submit_exec("import os; os._exit(1)")
        assert wait_until(lambda: vm.is_done and _payload.POOL.counts()[0] == busy_before, timeout=2)
        assert _payload.POOL.counts()[1] == free_before


@pytest.mark.slow
def test_spawned_vms_outlive_the_thread_that_started_them_and_their_exit_is_seen(tmp_path: Path) -> None:
    script = textwrap.dedent(
        f"""
        import os, threading, time
        import runtime
        runtime.configure(start_method="spawn")
        box = {{}}

        def start():
            box["vm"] = runtime.ComputeThread(1)
            box["vm"].exec("x = 41")

        loader = threading.Thread(target=start)
        loader.start()
        loader.join()
        vm = box["vm"]
        pid = vm.pid
        # Linux kills a child whose parent *thread* exits, if it asked to: this one must not have.
        print(vm.eval("x + 1"), vm.pid == pid)
        vm.submit_exec(
            "import os, time\\n"
            "child = os.fork()\\n"
            "if child == 0:\\n"
            "    os.close(1); os.close(2)  # holds the VM's socket, not the test's output pipes\\n"
            "    time.sleep(30); os._exit(0)\\n"
            "open({str(tmp_path / "child")!r}, 'w').write(str(child))\\n"
            "os._exit(5)\\n"
        )
        print(vm.wait_for_done(5), (vm.last_error() or "").strip().splitlines()[-1])
        vm.submit_exec("while True: pass")
        print(vm.cancel(), vm.wait_for_done(1), vm.eval("6 * 7"))  # killed through its pidfd
        vm.close()
        """
    )
    done = run_python(script, "-W", "ignore::DeprecationWarning")
    child = tmp_path / "child"
    if child.exists() and child.read_text():
        with contextlib.suppress(ProcessLookupError):
            os.kill(int(child.read_text()), signal.SIGKILL)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0] == "42 True"
    assert lines[1] == "True VMDiedError: VM 1 died during the job: exited with code 5"
    assert lines[2] == "True True 42"


def test_callbacks_of_a_collected_vms_futures_do_not_run_in_the_reaper() -> None:
    seen: list[str] = []
    vm = ComputeThread(1)
    vm.exec("import threading; gate = threading.Event()")
    future = vm.submit("gate.wait", 30)
    future.add_done_callback(lambda _: seen.append(threading.current_thread().name))
    del vm
    assert isinstance(future.exception(timeout=5), VMClosedError)
    assert wait_until(lambda: seen, timeout=2) and seen[0] != "runtime-reaper"


def _pid_while_another_thread_polls(vm: ComputeThread) -> bool:
    """Read ``vm.pid`` in one thread while another polls ``is_done``; whether it came within 1 s."""
    stop = threading.Event()
    got = threading.Event()

    def poll() -> None:
        while not stop.is_set():
            vm.is_done  # noqa: B018 (reads the status pipe too)

    poller = threading.Thread(target=poll)
    poller.start()
    try:
        threading.Thread(target=lambda: (vm.pid, got.set())).start()
        return got.wait(1.0)
    finally:
        stop.set()
        poller.join(5)


def test_pid_does_not_wait_when_another_thread_read_it_first() -> None:
    for _ in range(5):
        with ComputeThread(1) as vm:
            assert _pid_while_another_thread_polls(vm), "pid waited for news another thread had read"


def test_the_reaper_thread_keeps_nothing_of_a_vm_it_finished_off() -> None:
    # A collected ComputeThread is closed, and its VM reaped, by the reaper thread; while that thread then
    # sleeps, nothing it looked at (the close call, the VM's record with its channel and kept mappings)
    # may stay alive in its locals.
    import weakref

    from runtime._reaper import REAPER

    thread = ComputeThread(1)
    assert thread.eval("6 * 7") == 42
    manager = weakref.ref(thread._manager)
    proc = weakref.ref(thread._manager.proc)
    del thread
    gc.collect()
    REAPER.drain(5.0)
    assert wait_until(lambda: manager() is None and proc() is None, timeout=5)
