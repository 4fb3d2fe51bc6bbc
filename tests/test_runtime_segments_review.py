"""Review of bb2e012 (received segments kept mapped, a value's release tied to a ctypes exporter).

Each test holds values (or things derived from them) from a VM while the VM sends more values, and checks
that nothing held changes, that segments go back to their writer, and that VM 0 keeps no mapping or
descriptor it no longer needs.
"""

from __future__ import annotations

import gc
import os
import pickle
import sys
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import wait
from typing import Any

import numpy as np
import pytest
from vmtools import held_segments, mapped_segments, wait_until

import runtime
from runtime import ComputePool, ComputeThread, _segments
from runtime._shared import anonymous_fd

MiB = 1 << 20
POOL_COUNTS = "__import__('runtime._payload')._payload.POOL.counts()"


def filled(value: int, count: int = 1 << 18) -> Any:
    """A VM job: ``count`` uint32 equal to ``value`` (1 MiB by default: one segment each)."""
    import numpy as np

    return np.full(count, value, dtype=np.uint32)


def big_pickle(value: int) -> dict[str, Any]:
    """A VM job: a value whose pickle (no out-of-band buffer) is over 64 KiB: it goes in a segment."""
    return {"value": value, "rows": [(value, j, "x" * 20) for j in range(5000)]}


def many_buffers(value: int) -> list[Any]:
    """A VM job: 400 small arrays, more than 256 buffers, so their table goes into the segment."""
    import numpy as np

    return [np.full(300, value, dtype=np.uint32) for _ in range(400)]


def records(value: int) -> Any:
    """A VM job: a structured array of 1.6 MB."""
    import numpy as np

    out = np.zeros(100_000, dtype=[("x", "<i4"), ("y", "<f8"), ("name", "S8")])
    out["x"] = value
    return out


def nested(value: int) -> dict[str, Any]:
    """A VM job: arrays and a memoryview inside a dict, a list and a tuple."""
    import numpy as np

    return {
        "a": [np.full(1 << 16, value, dtype=np.uint32), (np.full(1 << 17, value, dtype=np.uint32),)],
        "m": memoryview(np.full(1 << 16, value, dtype=np.uint32)),
    }


def values_in(result: Any) -> set[int]:
    """Every number a result of the jobs above carries (one number, if it is intact)."""
    if isinstance(result, dict) and "rows" in result:
        return {row[0] for row in result["rows"]} | {result["value"]}
    if isinstance(result, dict):
        arrays = [result["a"][0], result["a"][1][0], np.frombuffer(result["m"], np.uint32)]
        return {int(v) for a in arrays for v in np.unique(a)}
    if isinstance(result, list):
        return {int(v) for a in result for v in np.unique(a)}
    if isinstance(result, np.ndarray) and result.dtype.names:
        return {int(v) for v in np.unique(result["x"])}
    return {int(v) for v in np.unique(np.asarray(result))}


def as_uint32(thing: Any) -> Any:
    """The numbers a derived object shows, whatever it is."""
    if isinstance(thing, pickle.PickleBuffer):
        thing = memoryview(thing)
    if isinstance(thing, memoryview):
        return np.frombuffer(thing.cast("B"), dtype=np.uint32)
    return np.asarray(thing).reshape(-1).view(np.uint32)


DERIVED: dict[str, Callable[[Any], Any]] = {
    "slice": lambda a: a[10:],
    "reshape": lambda a: a.reshape(512, 512),
    "transpose": lambda a: a.reshape(512, 512).T.copy(order="K").T,  # (a view again: .T of a copy)
    "view_of_T": lambda a: a.reshape(512, 512).T,
    "memoryview": lambda a: memoryview(a),
    "memoryview_cast": lambda a: memoryview(a).cast("B").cast("I"),
    "frombuffer": lambda a: np.frombuffer(a, dtype=np.uint8),
    "picklebuffer": lambda a: pickle.PickleBuffer(a),
    "base": lambda a: a.base,
    "in_a_list": lambda a: [[a[::2]]],
}


@pytest.fixture
def vm() -> Iterator[ComputeThread]:
    with ComputeThread(1) as thread:
        yield thread


def settle(vm: ComputeThread, busy: int) -> None:
    """Let VM 0's releases reach the VM: wait until ``busy`` of its segments are in use by VM 0."""
    gc.collect()
    assert wait_until(lambda: vm.eval(POOL_COUNTS)[0] == busy, timeout=10), vm.eval(POOL_COUNTS)


# -- what failed ------------------------------------------------------------------------------------------


def test_vm0_keeps_no_descriptor_of_a_vms_segments_once_their_values_are_gone(vm: ComputeThread) -> None:
    # Before bb2e012 a released value's mapping was unmapped and its descriptor closed: VM 0 held none.
    # A kept mapping holds a descriptor before 3.13 (mmap keeps a duplicate), so their count is capped:
    # 64 one-MiB segments per VM would have made 960 descriptors for a pool of 15 VMs, near the usual 1,024.
    before = held_segments()
    held = [vm.call(filled, i) for i in range(20)]  # 20 segments, each mapped while held
    del held
    settle(vm, 0)
    assert vm.eval(POOL_COUNTS) == (0, 20)
    if sys.version_info >= (3, 13):
        assert held_segments() == before  # mapped untracked: a kept mapping holds no descriptor
    else:
        # mmap keeps a descriptor of each mapping before 3.13: at most MAPPED_COUNT kept ones hold one.
        assert before < held_segments() <= before + _segments.MAPPED_COUNT


def test_a_pool_result_read_after_the_pool_closed_leaves_no_mapping_behind() -> None:
    # A PoolFuture decodes on its first result(). Read after shutdown(), its VM's ReceivedSegments has
    # been forgotten, yet map() keeps the new mapping in it; the reaper thread's loop variable still holds
    # that VMProcess, so the mapping (and its descriptor) stays until the reaper reaps another VM.
    before_maps, before_fds = mapped_segments(), held_segments()
    pool = ComputePool(1)
    future = pool.submit(filled, 3)
    wait([future], timeout=30)
    pool.shutdown()
    value = future.result()
    assert int(value[0]) == 3
    del value, future, pool
    gc.collect()
    assert wait_until(lambda: mapped_segments() == before_maps, timeout=3), mapped_segments() - before_maps
    assert held_segments() == before_fds


def test_forgotten_received_segments_keep_no_new_mapping() -> None:
    # The unit under the test above: forget() says the peer's segments will not come again, but a value
    # decoded afterwards (a late result) puts its mapping back, kept for a reuse that cannot come.
    received = _segments.ReceivedSegments(lambda segment_id: None)
    fd = anonymous_fd(MiB, "pyct-segment")
    try:
        received.forget()
        mapping = received.map(os.dup(fd), 100)
        assert len(mapping) >= 100
        del mapping
        assert received.mapped_bytes() == 0
    finally:
        os.close(fd)


def test_a_value_that_fails_to_decode_gives_its_segment_back_without_a_full_collection(
    vm: ComputeThread,
) -> None:
    # (Not new in bb2e012.) A value VM 0 cannot unpickle holds its segment from the traceback's frames
    # (pickle's buffers, the reconstructor's arguments), and the future that keeps the exception and the
    # exception that keeps the future's frame form a cycle: the segment goes back only when the cyclic
    # collector runs. A game that runs with gc.disable() (a common way to avoid collection pauses)
    # leaks one segment in the VM and one mapping in VM 0 per failure.
    vm.exec(
        "import numpy as np\n"
        "def _refuse(a):\n"
        "    raise ValueError('cannot rebuild this in VM 0')\n"
        "class Refused:\n"
        "    def __init__(self, i):\n"
        "        self.a = np.full(1 << 18, i, dtype=np.uint32)\n"
        "    def __reduce__(self):\n"
        "        return (_refuse, (self.a,))\n"
    )
    gc.collect()
    enabled = gc.isenabled()
    gc.disable()
    try:
        for i in range(5):
            with pytest.raises(ValueError, match="cannot rebuild this in VM 0"):
                vm.call("Refused", i)
        assert vm.call("len", "flush the releases") == 18
        busy = vm.eval(POOL_COUNTS)[0]
    finally:
        if enabled:
            gc.enable()
    assert busy == 0


# -- what held --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("derive", sorted(DERIVED))
def test_derived_objects_of_held_results_keep_their_bytes_while_the_vm_sends_more(
    vm: ComputeThread, derive: str
) -> None:
    held = []
    for i in range(12):
        value = vm.call(filled, i) if i % 2 else (vm.submit_call(filled, i), vm.wait_for_done(30))
        if not i % 2:
            value = vm.last_retval()
        if i % 3 == 0:
            held.append((i, DERIVED[derive](value)))
        del value
        gc.collect()
    for i, thing in held:
        assert set(np.unique(as_uint32(thing)).tolist()) <= {i}, (derive, i)
    busy = len(held) + 1  # (the last submit_call's value stays in last_retval())
    del held, thing
    settle(vm, 1)
    assert vm.eval(POOL_COUNTS)[0] < busy


@pytest.mark.parametrize("job", [filled, big_pickle, many_buffers, records, nested])
def test_pool_results_held_through_result_and_intake_stay_intact(job: Callable[[int], Any]) -> None:
    with ComputePool(2, intake=True) as pool:
        held = []
        for i, future in enumerate([pool.submit(job, i) for i in range(16)]):
            if i % 3 == 0:
                held.append((i, future.result()))
            else:
                future.result()
        futures = {id(f): i for i, f in enumerate([pool.submit(job, i) for i in range(16, 32)], 16)}
        taken: list[Any] = []
        deadline = time.monotonic() + 60
        while len(taken) < 16 and time.monotonic() < deadline:
            taken += [f for f in pool.intake(5) if id(f) in futures]
        assert len(taken) == 16
        for future in taken:
            if futures[id(future)] % 3 == 0:
                held.append((futures[id(future)], future.result()))
        del taken
        gc.collect()
        for i, result in held:
            assert values_in(result) == {i}, (job.__name__, i)


def test_results_held_by_several_threads_stay_intact() -> None:
    wrong: list[tuple[int, set[int]]] = []

    def take(pool: ComputePool, first: int) -> None:
        held = []
        for k in range(first, first + 24):
            value = pool.submit(filled, k).result()
            if k % 2 == 0:
                held.append((k, value))
            del value
        wrong.extend((k, values_in(v)) for k, v in held if values_in(v) != {k})

    with ComputePool(2) as pool:
        threads = [threading.Thread(target=take, args=(pool, 1000 * t)) for t in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
    assert not wrong


def test_values_carrying_shared_memory_keep_their_segment_part_intact(vm: ComputeThread) -> None:
    shared = runtime.shared_buffer(MiB)
    vm.exec(
        "import numpy as np\n"
        "def both(buf, i):\n"
        "    np.frombuffer(buf, dtype=np.uint32)[:] = i\n"
        "    return buf, np.full(1 << 18, i, dtype=np.uint32)\n"
    )
    held = []
    for i in range(12):
        shared_view, own = vm.call("both", shared, i)
        assert int(np.frombuffer(shared_view, np.uint32)[0]) == i
        held.append((i, own))
        del shared_view, own
    assert all(values_in(own) == {i} for i, own in held)
    assert vm.eval(POOL_COUNTS)[0] == 12
    del held
    settle(vm, 0)


def test_arguments_a_job_keeps_across_jobs_stay_intact(vm: ComputeThread) -> None:
    vm.exec(
        "kept = []\n"
        "def keep(a, now):\n"
        "    if now:\n"
        "        kept.append(a)\n"
        "    return int(__import__('numpy').asarray(a).flat[0])\n"
        "def kept_values():\n"
        "    return [sorted({int(v) for v in __import__('numpy').unique(a)}) for a in kept]\n"
    )
    for i in range(24):
        assert vm.call("keep", np.full(1 << 18, i, dtype=np.uint32), i % 4 == 0) == i
        assert vm.call("keep", [np.full(300, i, dtype=np.uint32) for _ in range(400)], False) == i
    assert vm.call("kept_values") == [[i] for i in range(0, 24, 4)]


def test_eviction_of_a_mapping_whose_value_is_alive_changes_nothing(
    vm: ComputeThread, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_segments, "MAPPED_LIMIT", 3 * MiB)
    vm.exec("import runtime._segments as s; s.MAPPED_LIMIT = 3 << 20")  # the worker side too
    vm.exec("kept = []\ndef keep(a):\n    kept.append(a)\n    return len(kept)")
    held = []
    for i in range(8):
        held.append((i, vm.call(filled, i)))  # the mappings of the first go while they are held
        assert vm.call("keep", np.full(1 << 18, i, dtype=np.uint32)) == i + 1
    for i in range(8, 20):
        value = vm.call(filled, i)  # segments reused, some mapped again
        assert values_in(value) == {i}
        del value
    assert all(values_in(v) == {i} for i, v in held)
    assert vm.eval("[int(a[0]) for a in kept]") == list(range(8))
    del held
    settle(vm, 0)
    assert mapped_segments() <= 3 + 1


@pytest.mark.slow
def test_a_segment_over_64_mib_carrying_smaller_then_bigger_values(vm: ComputeThread) -> None:
    before = mapped_segments()
    vm.exec("import numpy as np")
    big = vm.call(filled, 1, 70 * MiB // 4)  # a 70 MiB segment
    assert values_in(big) == {1}
    del big
    settle(vm, 0)
    small = vm.call(filled, 2, 40 * MiB // 4)  # reuses it, mapped 40 MiB and kept
    assert values_in(small) == {2} and vm.eval(POOL_COUNTS) == (1, 0)
    other = vm.call(filled, 3, 66 * MiB // 4)  # a new segment: the first is busy
    assert values_in(other) == {3} and values_in(small) == {2}
    del small
    settle(vm, 1)
    bigger = vm.call(filled, 4, 50 * MiB // 4)  # the first again, its kept mapping too short: mapped again
    assert values_in(bigger) == {4} and values_in(other) == {3}
    del bigger, other
    settle(vm, 0)
    assert mapped_segments() - before <= 1


@pytest.mark.parametrize("end", ["cancel", "crash"])
def test_mappings_of_a_cancelled_or_crashed_vm_go_with_the_last_value_held(end: str) -> None:
    before_maps, before_fds = mapped_segments(), held_segments()
    with ComputeThread(1) as vm:
        held = [vm.call(filled, i) for i in range(4)]
        if end == "cancel":
            vm.submit_exec("import time; time.sleep(60)")
            assert vm.cancel()
        else:
            with pytest.raises(runtime.VMDiedError):
                vm.exec("import os; os._exit(3)")
        assert [values_in(v) for v in held] == [{0}, {1}, {2}, {3}]  # the VM is gone: they stay
        assert values_in(vm.call(filled, 9)) == {9}  # a fresh VM
        del held
        gc.collect()
        # The dead VM's four go; the fresh VM's one segment stays mapped, kept for its next value.
        assert wait_until(lambda: mapped_segments() == before_maps + 1, timeout=5), mapped_segments()
    assert wait_until(lambda: (mapped_segments(), held_segments()) == (before_maps, before_fds), timeout=5), (
        mapped_segments() - before_maps,
        held_segments() - before_fds,
    )
