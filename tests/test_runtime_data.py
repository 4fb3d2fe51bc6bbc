"""Data across VMs: pickling rules, big numpy values through shared memory, and segment clean-up."""

from __future__ import annotations

import gc
import os
import pickle
import signal
import subprocess
import sys
import textwrap
import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from vmtools import NO_RETVAL, alive, held_segments, mapped_segments, run_python, shm_names, wait_until

from runtime import ComputeThread

MiB = 1 << 20


@pytest.fixture
def vm() -> Iterator[ComputeThread]:
    with ComputeThread(1) as thread:
        yield thread


def test_lambdas_and_closures_cross_as_arguments_and_as_the_callable(vm: ComputeThread) -> None:
    offset = 10

    def add_offset(v: int) -> int:
        return v + offset

    vm.submit_call("lambda f, v: f(v)", add_offset, 5)
    vm.wait_for_done(10)
    assert vm.last_error() is None
    assert vm.last_retval() == 15
    vm.submit_call(lambda a, *, b: a * b, 6, b=7)  # a callable instead of eval_src
    vm.wait_for_done(10)
    assert vm.last_retval() == 42


def test_an_argument_that_cannot_be_pickled_raises_and_starts_nothing(vm: ComputeThread) -> None:
    vm.submit_eval("'before'")
    vm.wait_for_done(10)
    with pytest.raises(TypeError, match="cannot pickle '_thread.lock' object") as caught:
        vm.submit_call("print", 1, threading.Lock())
    assert caught.value.__notes__ == [
        "runtime: argument 2 (of type lock) cannot be pickled, so the job was not started"
    ]
    assert vm.is_done
    assert vm.last_retval() == "before"  # nothing was started, nothing changed
    with pytest.raises(TypeError, match="cannot pickle") as caught:
        vm.submit(print, end=threading.Lock())
    assert "keyword argument 'end' (of type lock)" in caught.value.__notes__[0]
    lock = threading.Lock()
    with pytest.raises(TypeError, match="cannot pickle") as caught:
        vm.submit(lambda: lock.locked())
    assert "the callable (of type function)" in caught.value.__notes__[0]
    assert vm.eval("1 + 1") == 2  # the VM stays usable


def test_a_target_that_is_neither_source_nor_callable_is_a_type_error(vm: ComputeThread) -> None:
    with pytest.raises(TypeError, match="^expected a str to evaluate in the VM or a callable, got int$"):
        vm.submit_call(3)


def test_a_return_value_that_cannot_be_pickled_ends_the_job_with_a_clear_error(vm: ComputeThread) -> None:
    vm.submit_eval("__import__('threading').Lock()")
    vm.wait_for_done(10)
    error = vm.last_error()
    assert error is not None
    assert "return value of type _thread.lock cannot be pickled" in error
    with pytest.raises(ValueError, match=NO_RETVAL):
        vm.last_retval()
    assert vm.eval("'still usable'") == "still usable"


def test_instances_of_classes_defined_in_the_vm_main_reach_vm0(vm: ComputeThread) -> None:
    vm.exec(
        "class Creature:\n"
        "    def __init__(self, name):\n"
        "        self.name = name\n"
        "    def shout(self):\n"
        "        return self.name.upper()\n"
    )
    vm.submit_eval("[Creature('wolf'), Creature('bear')]")
    vm.wait_for_done(10)
    assert vm.last_error() is None
    creatures = vm.last_retval()
    assert [c.shout() for c in creatures] == ["WOLF", "BEAR"]


def test_functions_and_classes_of_vm0s_main_script_work_in_the_vm(tmp_path: Path) -> None:
    script = textwrap.dedent(
        """
        from runtime import ComputeThread

        class Point:
            def __init__(self, x, y):
                self.x, self.y = x, y

        def norm1(p):
            return abs(p.x) + abs(p.y)

        with ComputeThread(1) as t:
            t.submit_call(norm1, Point(3, -4))
            t.wait_for_done()
            print(t.last_error(), t.last_retval())
            print(t.call(lambda p: Point(p.y, p.x), Point(1, 2)).x)
        """
    )
    done = run_python(script, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["None", "7", "2"]


ARRAYS = {
    "float32 C 32 MiB": lambda: np.arange(8 * MiB, dtype=np.float32).reshape(2048, 4096),
    "float64 Fortran": lambda: np.asfortranarray(np.random.default_rng(1).random((700, 300))),
    "uint8 RGB": lambda: np.random.default_rng(2).integers(0, 255, (512, 512, 3), dtype=np.uint8),
    "structured": lambda: np.array(
        [(i, i % 5, i * 2, -i) for i in range(100_000)],
        dtype=[("id", "<u8"), ("species", "u1"), ("x", "<i4"), ("y", "<i4")],
    ),
    "non-contiguous": lambda: np.arange(4 * MiB, dtype=np.int32).reshape(2048, 2048)[::3, 1::2],
    "zero-size": lambda: np.zeros((0, 17), dtype=np.float32),
    "bool": lambda: np.arange(300_000) % 3 == 0,
}


@pytest.mark.parametrize("name", list(ARRAYS))
def test_arrays_cross_both_ways_keeping_dtype_shape_order_values(vm: ComputeThread, name: str) -> None:
    original = ARRAYS[name]()
    vm.exec("import numpy as np")
    # VM 0 -> VM 1 -> VM 0: the VM echoes it with a checksum it computed on its side.
    vm.exec("def echo(a):\n    return a, 0.0 if a.dtype.names else float(a.astype(np.float64).sum())")
    got, vm_sum = vm.call("echo", original)
    assert got.dtype == original.dtype
    assert got.shape == original.shape
    assert got.flags.f_contiguous == original.flags.f_contiguous
    assert got.flags.c_contiguous == original.flags.c_contiguous or not original.flags.c_contiguous
    assert np.array_equal(got, original)
    assert got.flags.writeable
    if original.dtype.names is None:
        assert vm_sum == pytest.approx(float(np.asarray(original, dtype=np.float64).sum()))


def test_big_results_arrive_as_writable_views_of_shared_memory(vm: ComputeThread) -> None:
    vm.exec("import numpy as np")
    vm.submit_eval("np.full((4096, 4096), 1.5, dtype=np.float32)")  # 64 MiB
    vm.wait_for_done(30)
    value = vm.last_retval()
    assert value.shape == (4096, 4096) and value.dtype == np.float32
    assert float(value[123, 456]) == 1.5 and float(value.sum(dtype=np.float64)) == 1.5 * 4096 * 4096
    value[0, 0] = 7.0  # writable
    assert value[0, 0] == 7.0
    base = value
    while isinstance(getattr(base, "base", None), np.ndarray | memoryview):
        base = base.base
    assert isinstance(base, memoryview) or isinstance(getattr(base, "obj", None), memoryview)


def test_bytes_bytearray_and_memoryview_cross(vm: ComputeThread) -> None:
    blob = os.urandom(3 * MiB)
    got_bytes, got_array, got_view = vm.call(
        "lambda b, a, v: (bytes(b), bytearray(a), memoryview(bytes(v)).cast('I'))",
        blob,
        bytearray(blob),
        memoryview(blob),
    )
    assert type(got_bytes) is bytes and got_bytes == blob
    assert type(got_array) is bytearray and got_array == blob
    assert type(got_view) is memoryview and got_view.format == "I" and got_view.tobytes() == blob
    small = vm.call("lambda v: v", memoryview(b"abcd").cast("B", (2, 2)))
    assert small.shape == (2, 2) and small.tobytes() == b"abcd"


def _cast_rebuilds(fmt: str) -> bool:
    """Whether this Python's ``memoryview.cast`` can rebuild format ``fmt`` (float16 'e' only from 3.12)."""
    try:
        memoryview(bytes(8)).cast(fmt)
    except (TypeError, ValueError):
        return False
    return True


def test_a_memoryview_whose_format_cannot_be_rebuilt_is_refused_where_it_is_sent(vm: ComputeThread) -> None:
    # memoryview.cast() knows only native single-character formats (and, from Python 3.12, float16 'e'):
    # complex and big-endian views could never be rebuilt on the other side, so they must fail here,
    # before anything starts.
    rule = r"a memoryview of format '(Zd|e|>i)' cannot cross VMs \(only native single-character formats"
    for array in (np.ones(4, np.complex128), np.ones(4, ">i4")):
        with pytest.raises(pickle.PicklingError, match=rule):
            vm.submit_call("len", memoryview(array))
        assert vm.is_done
    vm.submit_call("lambda: memoryview(__import__('numpy').zeros(3, '>i4'))")
    assert vm.wait_for_done(10)
    assert "return value of type memoryview cannot be pickled: a memoryview of format '>i'" in (
        vm.last_error() or ""
    )
    assert vm.call("lambda v: v.tolist()", memoryview(np.arange(3, dtype=np.int32))) == [0, 1, 2]


def test_a_float16_memoryview_crosses_exactly_where_cast_can_rebuild_it(vm: ComputeThread) -> None:
    # Python 3.12 taught memoryview.cast the 'e' format: there a float16 view crosses with its values;
    # on 3.11 it is refused where it is sent, with the rule.
    halves = memoryview(np.array([0.5, -2.0, 65504.0], np.float16))
    if _cast_rebuilds("e"):
        assert vm.call("lambda v: (v.format, v.tolist())", halves) == ("e", [0.5, -2.0, 65504.0])
    else:
        with pytest.raises(pickle.PicklingError, match=r"a memoryview of format 'e' cannot cross VMs"):
            vm.submit_call("len", halves)
        assert vm.is_done


def test_fortran_ordered_and_empty_memoryviews_cross_as_they_are(vm: ComputeThread) -> None:
    transposed = memoryview(np.arange(6, dtype=np.int32).reshape(2, 3).T)  # Fortran order
    assert vm.call("lambda v: (v.tolist(), v.shape)", transposed) == ([[0, 3], [1, 4], [2, 5]], (3, 2))
    assert vm.call("lambda v: (v.tolist(), v.format)", memoryview(b"")) == ([], "B")
    assert vm.call("lambda v: (v.tolist(), v.format)", memoryview(np.zeros(0))) == ([], "d")
    rule = r"^an empty memoryview of shape \(0, 3\) cannot cross VMs"
    with pytest.raises(pickle.PicklingError, match=rule):
        vm.submit_call("len", memoryview(np.zeros((0, 3))))


def test_values_of_many_python_objects_work(vm: ComputeThread) -> None:
    world = vm.call("lambda n: {'terrain': list(range(n)), 'names': [str(i) for i in range(99)]}", 400_000)
    assert world["terrain"][-1] == 399_999 and len(world["names"]) == 99


def test_many_small_arrays_cross_in_a_small_message(vm: ComputeThread) -> None:
    from runtime import _payload

    tiles = [np.full(8, i, dtype=np.int64) for i in range(100_000)]
    encoded = _payload.encode(tiles)
    try:
        # The table of 100,000 buffer spans travels in the segment: the message stays small.
        assert len(pickle.dumps(encoded.payload)) < 1024
    finally:
        assert encoded.fd is not None
        _payload.POOL.release(encoded.payload[1])
    back = vm.call("lambda tiles: [t * 2 for t in tiles]", tiles)
    assert len(back) == 100_000 and all(int(t[0]) == 2 * i and t.shape == (8,) for i, t in enumerate(back))


# -- shared-memory segments: reused, never named, never left behind -----------------------------------------


def test_a_released_segment_goes_back_to_the_writer_and_is_reused(vm: ComputeThread) -> None:
    vm.exec("import numpy as np, runtime._payload as p")
    before = mapped_segments()
    value = vm.call("lambda: np.ones(4 * 1024 * 1024, dtype=np.float32)")
    assert mapped_segments() == before + 1  # a view of the VM's segment, no copy
    assert vm.eval("p.POOL.counts()") == (1, 0)  # in use by VM 0
    del value
    gc.collect()
    assert wait_until(lambda: vm.eval("p.POOL.counts()") == (0, 1), timeout=5)  # handed back
    assert mapped_segments() == before + 1  # VM 0 keeps its mapping for the segment's next value
    again = vm.call("lambda: np.full(4 * 1024 * 1024, 2.0, dtype=np.float32)")
    assert float(again[-1]) == 2.0 and float(again[0]) == 2.0
    assert vm.eval("p.POOL.counts()") == (1, 0)  # the same segment, reused
    assert mapped_segments() == before + 1  # and found mapped already: no second mapping


def test_vm0_maps_a_reused_segment_once_and_unmaps_it_when_the_vm_ends() -> None:
    before = mapped_segments()
    with ComputeThread(1) as vm:
        vm.exec("import numpy as np")
        for i in range(20):
            value = vm.call(f"lambda: np.full(1 << 18, {i}, dtype=np.uint32)")
            # Every value is its own, though they come in the same segment: the one before is gone.
            assert int(value[0]) == int(value[-1]) == i and value.flags.writeable
            del value
            gc.collect()
            assert mapped_segments() == before + 1
        held = vm.call("lambda: np.full(1 << 18, 7, dtype=np.uint32)")
        second = vm.call("lambda: np.full(1 << 18, 8, dtype=np.uint32)")  # the first is held: a new one
        assert int(held[0]) == 7 and int(second[0]) == 8
        assert mapped_segments() == before + 2
        del held, second
        gc.collect()
    assert mapped_segments() == before  # the VM's segments will not come again: VM 0 let them go


def test_vm0_keeps_mappings_of_released_segments_up_to_its_limit_the_least_recent_going_first(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from runtime import _segments
    from runtime._shared import anonymous_fd

    monkeypatch.setattr(_segments, "MAPPED_LIMIT", 3 * MiB)
    received = _segments.ReceivedSegments(lambda segment_id: None)
    fds = [anonymous_fd(MiB, "pyct-segment") for _ in range(4)]
    big = anonymous_fd(4 * MiB, "pyct-segment")
    try:
        first = received.map(os.dup(fds[0]), 100)
        assert len(first) == MiB  # the whole segment, for a bigger value in it later
        assert received.map(os.dup(fds[0]), MiB) is first  # found again, not mapped again
        for fd in fds[1:]:
            received.map(os.dup(fd), 100)
        assert received.mapped_bytes() == 3 * MiB  # the first went to make room
        assert received.map(os.dup(fds[0]), 100) is not first
        assert len(received.map(os.dup(big), 4 * MiB)) == 4 * MiB  # over the limit: mapped, not kept
        assert received.mapped_bytes() == 3 * MiB
        open_fds = len(os.listdir("/proc/self/fd"))
        rule = r"a value of 2097152 bytes cannot lie in a segment of 1048576 bytes"
        with pytest.raises(ValueError, match=rule):
            received.map(os.dup(fds[1]), 2 * MiB)
        assert len(os.listdir("/proc/self/fd")) == open_fds  # the descriptor is closed all the same
        received.forget()
        assert received.mapped_bytes() == 0
    finally:
        for fd in [*fds, big]:
            os.close(fd)


def test_argument_segments_are_handed_back_after_the_job(vm: ComputeThread) -> None:
    from runtime import _payload

    busy_before = _payload.POOL.counts()[0]
    assert vm.call("lambda a: int(a.sum())", np.ones(4 * MiB, dtype=np.uint8)) == 4 * MiB
    assert wait_until(lambda: vm.is_done and _payload.POOL.counts()[0] == busy_before, timeout=5)
    # A job that keeps its argument keeps the segment in use; dropping it hands it back.
    vm.exec("kept = []")
    vm.call("kept.append", np.ones(4 * MiB, dtype=np.uint8))
    assert _payload.POOL.counts()[0] == busy_before + 1
    vm.exec("kept.clear()")
    assert wait_until(lambda: vm.is_done and _payload.POOL.counts()[0] == busy_before, timeout=5)


def test_nothing_is_left_after_close_or_a_crash_mid_transfer() -> None:
    from runtime import _payload

    shm = shm_names()
    busy_before = _payload.POOL.counts()[0]
    with ComputeThread(1) as vm:
        vm.exec("import numpy as np, os, runtime._payload as p")
        # The VM writes a 64 MiB result into a segment and dies before VM 0 reads it.
        vm.submit_call("lambda: (p.encode(np.ones(1 << 24, np.float32)), os._exit(9))")
        vm.wait_for_done(30)
        assert "exited with code 9" in (vm.last_error() or "")
        # An argument segment of VM 0's, for a job that is cancelled while it holds it.
        vm.exec("import threading; gate = threading.Event()")
        vm.submit_call("lambda a: gate.wait(30)", np.ones(8 * MiB, dtype=np.uint8))
        assert _payload.POOL.counts()[0] == busy_before + 1
        assert vm.cancel()
        # Taken back once the killed VM has been reaped (never before: it might still read it).
        assert wait_until(lambda: _payload.POOL.counts()[0] == busy_before, timeout=2)
        # A segment a VM kept after a job that succeeded comes back when that VM crashes later.
        vm.exec("kept = []")
        vm.call("kept.append", np.ones(4 * MiB, dtype=np.uint8))
        assert _payload.POOL.counts()[0] == busy_before + 1
        vm.submit_exec("import os; os._exit(3)")
        assert wait_until(lambda: vm.is_done and _payload.POOL.counts()[0] == busy_before, timeout=2)
        vm.exec("import numpy as np, os")
        # A result VM 0 never takes, then close().
        vm.submit_eval("__import__('numpy').ones(1 << 22)")
        vm.wait_for_done(30)
        pid = vm.pid
        assert pid is not None and held_segments(pid) == 1
    assert wait_until(lambda: not alive(pid), timeout=2)
    assert mapped_segments() == 0 and shm_names() == shm


def test_a_segment_kept_by_a_closed_vm_goes_back_to_the_pool() -> None:
    from runtime import _payload

    busy_before = _payload.POOL.counts()[0]
    vm = ComputeThread(1)
    try:
        vm.exec("kept = []")
        vm.call("kept.append", np.ones(4 * MiB, dtype=np.uint8))
        assert _payload.POOL.counts()[0] == busy_before + 1
    finally:
        vm.close()
    assert _payload.POOL.counts()[0] == busy_before


def test_nothing_is_left_after_vm0_is_sigkilled(tmp_path: Path) -> None:
    script = textwrap.dedent(
        """
        import os, sys, time, numpy as np
        from runtime import ComputeThread
        t = ComputeThread(1)
        t.exec("import numpy as np, runtime._payload as p, time")
        # Leave segments in flight both ways (one the VM made, one queued in VM 0), then wait to die.
        t.submit("lambda: (p.encode(np.ones(1 << 22, np.float32)), time.sleep(60))")
        t.submit("len", np.ones(1 << 23, np.uint8))
        time.sleep(0.5)
        print(t.pid, flush=True)
        time.sleep(60)
        """
    )
    shm = shm_names()
    with subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True) as child:
        try:
            assert child.stdout is not None
            vm_pid = int(child.stdout.readline())
            assert held_segments(child.pid) >= 1 and held_segments(vm_pid) >= 1
            os.kill(child.pid, signal.SIGKILL)
            child.wait(10)
            assert wait_until(lambda: not alive(vm_pid), timeout=2)
            # Anonymous segments die with the last process that holds them: nothing can be left.
            assert held_segments(vm_pid) == 0 and shm_names() == shm
        finally:
            child.kill()


def test_small_values_take_the_plain_pickle_path() -> None:
    from runtime import _payload

    encoded = _payload.encode({"a": [1, 2, 3]})
    assert encoded.payload[0] == "p" and encoded.fd is None
    assert pickle.loads(encoded.payload[1]) == {"a": [1, 2, 3]}
    encoded = _payload.encode(np.ones(10, np.float32))
    assert encoded.payload[0] == "b" and encoded.fd is None  # small buffers travel inline
