"""Shared memory (runtime.shared_buffer): values in it cross by reference, both ways, and are freed with
their last reference in any process. Zero copy is shown by writes: a copy would not see them."""

from __future__ import annotations

import gc
import os
import pickle
import sys
from collections.abc import Iterator

import numpy as np
import pytest
from vmtools import wait_until

import runtime
from runtime import ComputeThread, _payload, _shared

MiB = 1 << 20
# A mapping of one: the runtime keeps a descriptor to send it on; before 3.13, mmap keeps a duplicate.
FDS = 1 if sys.version_info >= (3, 13) else 2


@pytest.fixture
def vm() -> Iterator[ComputeThread]:
    with ComputeThread(1) as thread:
        thread.exec("import numpy as np, runtime")
        yield thread


def shared_array(shape: int | tuple[int, ...], dtype: str = "float32") -> np.ndarray:
    count = int(np.prod(shape))
    return np.frombuffer(runtime.shared_buffer(count * np.dtype(dtype).itemsize), dtype).reshape(shape)


def held(pid: int | str = "self") -> tuple[int, int]:
    """(mappings, descriptors) of shared segments that process ``pid`` has, from /proc."""
    with open(f"/proc/{pid}/maps") as f:
        maps = sum(1 for line in f if "pyct-shared" in line)
    fds = 0
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            fds += "pyct-shared" in os.readlink(f"/proc/{pid}/fd/{fd}")
        except FileNotFoundError:
            continue
    return maps, fds


def open_fds(pid: int | str = "self") -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def test_a_shared_buffer_is_zeroed_writable_bytes() -> None:
    buffer = runtime.shared_buffer(3 * MiB + 5)
    assert buffer.format == "B" and buffer.nbytes == 3 * MiB + 5 and not buffer.readonly
    assert buffer[0] == 0 and buffer[-1] == 0
    buffer[-1] = 255
    assert buffer[-1] == 255
    assert runtime.is_shared(buffer) and runtime.is_shared(buffer[10:20])
    assert not runtime.is_shared(bytearray(10)) and not runtime.is_shared(np.zeros(10))
    empty = runtime.shared_buffer(0)
    assert empty.nbytes == 0 and runtime.is_shared(empty)


def test_bad_sizes_and_objects_are_refused_with_the_rule() -> None:
    with pytest.raises(ValueError, match=r"^nbytes must be 0 or more, got -1$"):
        runtime.shared_buffer(-1)
    for bad, name in ((1.5, "float"), (True, "bool"), ("8", "str")):
        with pytest.raises(TypeError, match=rf"^nbytes must be an int, got {name}$"):
            runtime.shared_buffer(bad)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"^is_shared\(\) takes an object with a buffer .*got int$"):
        runtime.is_shared(3)


def test_writes_are_seen_on_both_sides_with_no_copy(vm: ComputeThread) -> None:
    array = shared_array((512, 1024))
    array[:] = 1.5
    vm.exec("kept = {}")
    # The VM sees VM 0's data, keeps the array, and writes into it: VM 0 sees the write.
    assert vm.call("lambda a: (kept.update(a=a), float(a.sum()), a.__setitem__((7, 9), -2.0))[1]", array) == (
        1.5 * 512 * 1024
    )
    assert array[7, 9] == -2.0
    # A write in VM 0 after the send reaches the array the VM kept.
    array[100, 200] = 42.0
    assert vm.eval("float(kept['a'][100, 200])") == 42.0
    assert vm.eval("kept['a'].flags.writeable and runtime.is_shared(kept['a'])")


def test_two_vms_share_the_same_memory(vm: ComputeThread) -> None:
    counters = shared_array(2, "int64")
    with ComputeThread(2) as other:
        vm.exec("kept = []")
        other.exec("kept = []")
        vm.call("kept.append", counters)
        other.call("kept.append", counters)
        vm.exec("kept[0][0] = 11")
        assert other.eval("int(kept[0][0])") == 11  # VM 1's write, read in VM 2
        other.exec("kept[0][1] = 22")
        assert counters.tolist() == [11, 22]


def test_a_round_trip_returns_a_view_of_the_same_memory(vm: ComputeThread) -> None:
    array = shared_array((256, 256))
    back = vm.call("lambda a: a", array)
    assert back.__array_interface__["data"][0] == array.__array_interface__["data"][0]
    assert np.shares_memory(back, array) and back.shape == array.shape and back.dtype == array.dtype
    rows = vm.call("lambda a: a[10:20]", array)  # a slice of what the VM received
    assert np.shares_memory(rows, array)
    rows[0, 0] = 3.0
    assert array[10, 0] == 3.0
    assert _shared.counts() == 1  # one mapping in VM 0, however many views came back


def test_memory_the_vm_allocates_crosses_to_vm0_and_back(vm: ComputeThread) -> None:
    vm.exec("mine = np.frombuffer(runtime.shared_buffer(4 << 20), np.uint8)")
    got = vm.eval("mine")
    assert runtime.is_shared(got) and got.nbytes == 4 << 20
    got[123] = 7
    assert vm.eval("int(mine[123])") == 7
    vm.exec("mine[124] = 8")
    assert got[124] == 8
    # Sent back, it arrives in the VM as a view of the VM's own mapping.
    assert vm.call("lambda a: bool(np.shares_memory(a, mine))", got[100:200])


def test_slices_offsets_orders_and_memoryviews_cross_as_views(vm: ComputeThread) -> None:
    buffer = runtime.shared_buffer(MiB)
    grid = np.frombuffer(buffer, np.int32).reshape(512, 512)
    vm.exec("kept = []")
    cases = {
        "rows": grid[300:310],
        "row": grid[5],
        "fortran": grid.T,  # Fortran-contiguous
        "view": buffer[1000:2000],
        "cast": buffer[4096:8192].cast("d"),
    }
    for name, value in cases.items():
        assert runtime.is_shared(value), name
        vm.call("kept.append", value)
    vm.exec("kept[0][0, 0] = 1; kept[1][3] = 2; kept[2][6, 4] = 3; kept[3][0] = 4; kept[4][1] = 2.5")
    assert grid[300, 0] == 1 and grid[5, 3] == 2 and grid[4, 6] == 3
    assert buffer[1000] == 4 and buffer[4096:8192].cast("d")[1] == 2.5
    assert vm.eval("[type(v).__name__ for v in kept]") == ["ndarray"] * 3 + ["memoryview"] * 2
    assert vm.eval("(kept[2].flags.f_contiguous, kept[2].shape, kept[4].format)") == (True, (512, 512), "d")


def test_a_read_only_view_stays_read_only(vm: ComputeThread) -> None:
    array = shared_array(1024, "uint8")
    frozen = array[8:16]
    frozen.flags.writeable = False
    vm.exec("kept = []")
    assert vm.call("lambda a: (kept.append(a), a.flags.writeable)[1]", frozen) is False
    array[8] = 9
    assert vm.eval("int(kept[0][0])") == 9  # still the same memory


def test_a_non_contiguous_view_crosses_as_a_copy(vm: ComputeThread) -> None:
    # The rule: only a view that is one contiguous block of shared memory crosses by reference; numpy
    # pickles any other view by value (and the runtime copies a strided memoryview), so it is a copy.
    grid = shared_array((64, 64))
    for strided in (grid[:, ::2], grid[:, 1:3], memoryview(runtime.shared_buffer(64))[::2]):
        assert not runtime.is_shared(strided)
    columns = grid[:, 1:3]
    vm.exec("kept = []")
    assert vm.call("lambda a: (kept.append(a), a.__setitem__((0, 0), 5.0), a.flags.c_contiguous)[2]", columns)
    assert grid[0, 1] == 0.0  # the VM wrote into its own copy
    grid[0, 1] = 6.0
    assert vm.eval("float(kept[0][0, 0])") == 5.0


def test_a_value_mixing_several_segments_and_ordinary_arrays_crosses_both_ways(vm: ComputeThread) -> None:
    first, second = shared_array(1000, "int64"), shared_array((100, 100))
    ordinary = np.arange(MiB, dtype=np.uint8)  # big: it goes into a segment of its own, copied once
    value = {
        "first": first,
        "second": second,
        "ordinary": ordinary,
        "tiles": [first[i : i + 2] for i in range(300)],
    }
    source = """
def touch(v):
    v["first"][0] = 1
    v["second"][1, 1] = 2.0
    v["ordinary"][0] = 99  # the VM's own copy
    v["tiles"][10][1] = 3
    mine = np.frombuffer(runtime.shared_buffer(800), np.int64)
    mine[:] = 4
    return v["second"][1:3], v["ordinary"], mine, v["tiles"][299], v["first"]
"""
    vm.exec(source)
    rows, copy, mine, tile, back = vm.call("touch", value)
    assert first[0] == 1 and second[1, 1] == 2.0 and first[11] == 3
    assert ordinary[0] == 0 and copy[0] == 99 and not runtime.is_shared(copy)
    assert np.shares_memory(rows, second) and np.shares_memory(tile, first) and np.shares_memory(back, first)
    assert runtime.is_shared(mine) and mine.tolist() == [4] * 100


def test_many_references_still_make_a_small_message() -> None:
    array = shared_array(100_000, "int64")
    encoded = _payload.encode([array[i : i + 1] for i in range(20_000)])
    try:
        assert encoded.payload[0] == "r"
        assert len(pickle.dumps(encoded.payload)) < 1024  # the table of references is in the segment
        decoded = _payload.decode(encoded.payload, iter([os.dup(encoded.fd or -1)]), None)
    finally:
        _payload.POOL.release(encoded.payload[1])
    decoded[19_999][0] = 5
    assert array[19_999] == 5


def test_memory_is_freed_when_the_last_reference_goes_in_every_process(vm: ComputeThread) -> None:
    vm.exec("kept = []")
    pid = vm.pid
    assert pid is not None and held(pid) == (0, 0) and held() == (0, 0)
    array = shared_array(8 * MiB, "uint8")
    array[:] = 7
    vm.call("kept.append", array)
    assert held(pid) == (1, FDS)  # one mapping, and its descriptor
    assert wait_until(lambda: vm.is_done and held() == (1, FDS), timeout=5)  # the message's copy is closed
    del array
    gc.collect()
    assert held() == (0, 0) and _shared.counts() == 0  # VM 0 let go: only the VM keeps it alive
    assert vm.eval("int(kept[0].sum())") == 7 * 8 * MiB
    vm.exec("kept.clear()")
    # No process maps or holds it any more: the kernel has freed it.
    assert held(pid) == (0, 0) and held() == (0, 0)


def test_no_descriptor_leaks_after_many_transfers(vm: ComputeThread) -> None:
    array = shared_array((1024, 256))
    pid = vm.pid
    assert pid is not None
    vm.call("lambda a: a[1:]", array)  # everything the VM opens once, opened now
    assert vm.eval("runtime._payload.POOL.counts()[0]") == 0  # VM 0 let go of that reply: a clean start
    busy, ours, theirs = _payload.POOL.counts()[0], open_fds(), open_fds(pid)
    for i in range(200):
        back = vm.call(
            "lambda a, b, i: (a[i : i + 1], b, np.frombuffer(runtime.shared_buffer(64), np.uint8))",
            array,
            shared_array(16),
            i,
        )
        assert np.shares_memory(back[0], array)
    del back
    gc.collect()
    assert wait_until(
        lambda: vm.is_done and (_payload.POOL.counts()[0], open_fds(), open_fds(pid)) == (busy, ours, theirs),
        timeout=5,
    ), (_payload.POOL.counts()[0], open_fds(), open_fds(pid), busy, ours, theirs)
    assert held() == (1, FDS) and held(pid) == (0, 0)
    assert vm.eval("runtime._payload.POOL.counts()[0]") == 0


def test_a_vm_that_crashes_holding_shared_memory_leaves_vm0_its_data(vm: ComputeThread) -> None:
    array = shared_array(MiB, "int64")
    busy = _payload.POOL.counts()[0]
    vm.exec("kept = []; import os, threading; gate = threading.Event()")
    vm.call("kept.append", array)
    vm.submit_exec("kept[0][:] = 5; os._exit(3)")
    assert vm.wait_for_done(10)
    assert "exited with code 3" in (vm.last_error() or "")
    assert int(array.sum()) == 5 * MiB  # the dead VM's writes are in VM 0's memory
    # A job holding it when cancelled (the VM is killed): VM 0's descriptor for it is taken back.
    vm.exec("import threading; gate = threading.Event()")
    vm.submit_call("lambda a: gate.wait(30)", array)
    assert vm.cancel()
    assert wait_until(lambda: _payload.POOL.counts()[0] == busy, timeout=2)
    assert vm.call("lambda a: int(a[-1])", array) == 5  # a fresh VM gets it again
    assert held() == (1, FDS)
