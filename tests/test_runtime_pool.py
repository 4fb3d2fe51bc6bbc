"""ComputePool: many jobs over several VMs, by priority, cancellable, with futures and a frame-loop intake."""

from __future__ import annotations

import asyncio
import gc
import os
import pickle
import socket
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import CancelledError, as_completed, wait
from pathlib import Path

import pytest
from vmtools import ROOT, children_of, run_python, wait_until

import runtime
from runtime import ComputePool, ComputeThread, JobCancelledError, VMClosedError, VMDiedError

SETUP = """
import os, time, runtime
log = []
def record(x):
    log.append(x)
    return x
def hold(path, timeout=20.0):
    # Wait for the test to create ``path`` (a condition with a timeout, never a fixed sleep).
    end = time.monotonic() + timeout
    while not os.path.exists(path) and time.monotonic() < end:
        time.sleep(0.002)
    return runtime.currentvm()
def log_so_far():
    return list(log)
def square(x):
    return x * x
def die_on(x, bad):
    if x == bad:
        os._exit(3)
    return x
class Undecodable:
    # Pickles in the VM, fails to unpickle in VM 0 (int("not a number")).
    def __reduce__(self):
        return (int, ("not a number",))
def undecodable():
    return Undecodable()
def steps(n):
    for i in range(n):
        runtime.report_progress((i + 1) / n, f"step {i + 1}")
        time.sleep(0.01)
    return n
"""


@pytest.fixture
def pool() -> Iterator[ComputePool]:
    with ComputePool(2, setup=SETUP) as pool:
        yield pool


@pytest.fixture
def one() -> Iterator[ComputePool]:
    with ComputePool(1, setup=SETUP) as pool:
        yield pool


def _blocked(pool: ComputePool, gate: Path) -> list[object]:
    """Occupy every VM of ``pool`` (running, and one job waiting in its socket) until ``gate`` exists."""
    count = 2 * len(pool.vm_indices)
    futures = [pool.submit("hold", str(gate)) for _ in range(count)]
    assert wait_until(lambda: pool.stats().in_flight == count, 10)
    return futures


def test_submit_returns_futures_and_every_vm_takes_jobs(pool: ComputePool) -> None:
    assert pool.vm_indices == (1, 2)
    assert [f.result(30) for f in [pool.submit("square", i) for i in range(50)]] == [i * i for i in range(50)]
    futures = [pool.submit("lambda: (runtime.currentvm(), time.sleep(0.05))[0]") for _ in range(8)]
    assert {f.result(30) for f in futures} == {1, 2}
    stats = pool.stats()
    assert stats.jobs_done >= 58 and stats.queued == 0 and stats.in_flight == 0
    assert [vm.vm_index for vm in stats.vms] == [1, 2] and all(vm.jobs_done > 0 for vm in stats.vms)


def test_jobs_per_second_counts_every_job_when_replies_come_together(pool: ComputePool) -> None:
    assert pool.submit("square", 3).result(30) == 9  # warm: the VMs run, and the pool knows job lengths
    done_before = pool.stats().jobs_done
    # Queued at once, 200 tiny jobs travel in bursts, so one look at a VM often ends several of them.
    futures = [pool.submit("square", i) for i in range(200)]
    assert wait(futures, 30).not_done == set()
    stats = pool.stats()
    assert stats.jobs_done == done_before + 200
    assert stats.jobs_per_second >= 200  # (it counted one per look that ended jobs, not one per job)


def test_higher_priority_runs_first_and_fifo_within_a_priority(one: ComputePool, tmp_path: Path) -> None:
    gate = tmp_path / "gate"
    held = _blocked(one, gate)
    for x, priority in [("low-1", 0), ("high-1", 5), ("low-2", 0), ("mid", 1), ("high-2", 5), ("neg", -3)]:
        one.submit("record", x, priority=priority)
    assert one.stats().queued == 6
    gate.touch()
    assert wait(held, 30).not_done == set()
    assert one.submit("log_so_far", priority=-10).result(30) == [
        "high-1",
        "high-2",
        "mid",
        "low-1",
        "low-2",
        "neg",
    ]


def test_cancel_by_key_takes_queued_jobs_out_at_once(one: ComputePool, tmp_path: Path) -> None:
    gate = tmp_path / "gate"
    held = _blocked(one, gate)
    stale = [one.submit("record", f"stale{i}", key=("chunk", 1, 2)) for i in range(3)]
    kept = one.submit("record", "kept", key=("chunk", 0, 0))
    assert one.cancel(("chunk", 1, 2)) == 3
    assert all(f.cancelled() for f in stale) and one.stats().queued == 1
    assert wait(stale, timeout=1).not_done == set()  # waiters see a cancelled job at once
    assert one.cancel(("chunk", 9, 9)) == 0
    gate.touch()
    assert kept.result(30) == "kept" and wait(held, 30).not_done == set()
    assert one.submit("log_so_far").result(30) == ["kept"]


def test_cancel_with_running_stops_the_running_job_and_the_pool_carries_on(
    one: ComputePool, tmp_path: Path
) -> None:
    running = one.submit("hold", str(tmp_path / "never"), 60.0, key="slow")
    assert wait_until(lambda: running.running() and one.stats().in_flight == 1, 10)
    assert one.cancel("slow") == 0  # not queued: left alone unless asked
    assert one.cancel("slow", running=True) == 1
    with pytest.raises(JobCancelledError):
        running.result(10)
    assert one.submit("square", 7).result(30) == 49  # a fresh VM took over


def test_reprioritize_moves_and_cancels_queued_jobs_by_key(one: ComputePool, tmp_path: Path) -> None:
    gate = tmp_path / "gate"
    held = _blocked(one, gate)
    futures = {n: one.submit("record", n, key=n, priority=n) for n in range(20)}
    # Nearest first: priority falls with distance to 7; odd keys left the view and are dropped.
    assert one.reprioritize(lambda n: None if n % 2 else -abs(n - 7)) == 10
    assert all(futures[n].cancelled() for n in range(1, 20, 2))
    gate.touch()
    assert wait(held, 30).not_done == set()
    order = one.submit("log_so_far", priority=-100).result(30)
    assert order == sorted(range(0, 20, 2), key=lambda n: (abs(n - 7), n))


def test_reprioritize_handles_ten_thousand_queued_jobs(one: ComputePool, tmp_path: Path) -> None:
    gate = tmp_path / "gate"
    held = _blocked(one, gate)
    futures = [one.submit("square", i, key=i) for i in range(10_000)]
    for shift in range(3):  # three "frames", each moving every job
        assert one.reprioritize(lambda i, shift=shift: -((i + shift * 997) % 10_000)) == 0
    assert one.reprioritize(lambda i: None if i >= 100 else -i) == 9_900
    assert one.stats().queued == 100
    gate.touch()
    assert [f.result(30) for f in futures[:100]] == [i * i for i in range(100)]
    assert wait(held, 30).not_done == set()


def test_map_keeps_item_order_counts_items_and_batches(pool: ComputePool) -> None:
    results = pool.map("lambda x, y: x * y", range(100), range(100, 200), chunksize=7)
    assert results.total == 100
    assert list(results) == [x * y for x, y in zip(range(100), range(100, 200), strict=True)]
    assert results.done == 100
    assert list(pool.map(pow, [2, 3], [5, 2, 99])) == [32, 9]  # the shortest iterable ends it
    with pytest.raises(ValueError, match=r"^chunksize must be an int >= 1, got 0$"):
        pool.map(abs, [1], chunksize=0)


def test_a_vm_that_dies_mid_map_fails_only_its_own_batch(pool: ComputePool) -> None:
    results = pool.map("die_on", range(40), [13] * 40, chunksize=4)
    values = []
    with pytest.raises(VMDiedError, match=r"^VM [12] died during the job: exited with code 3$"):
        for value in results:
            values.append(value)
    assert values == list(range(12))  # the batches before 12..15 arrived whole
    # The pool restarted that VM and carries on.
    assert list(pool.map("square", range(30))) == [i * i for i in range(30)]
    assert all(vm.jobs_done > 0 for vm in pool.stats().vms)


def test_closing_the_map_iterator_cancels_what_has_not_started(one: ComputePool, tmp_path: Path) -> None:
    gate = tmp_path / "gate"
    held = _blocked(one, gate)
    results = one.map("record", range(10), chunksize=1)
    assert results.done == 0
    results.close()
    gate.touch()
    assert wait(held, 30).not_done == set()
    assert one.submit("log_so_far").result(30) == []


def test_progress_of_a_job_is_readable_from_its_future(one: ComputePool) -> None:
    future = one.submit("steps", 30)
    seen: set[str] = set()
    while not future.done():
        seen.add(future.progress[1])
        time.sleep(0.005)
    assert future.result() == 30 and future.progress == (1.0, "step 30")
    assert len(seen - {""}) >= 2  # it moved while the job ran


def test_intake_returns_finished_jobs_within_a_budget() -> None:
    with ComputePool(2, setup=SETUP, intake=True) as pool:
        keys = [("chunk", i) for i in range(12)]
        for key in keys:
            pool.submit("lambda k: bytes(200_000)", key, key=key)
        taken = []
        deadline = time.monotonic() + 30
        while len(taken) < len(keys) and time.monotonic() < deadline:
            batch = pool.intake(budget_ms=0)
            assert len(batch) <= 1 or all(not f.decoded() for f in batch[1:])
            assert batch == [] or batch[0].decoded()  # at least one is taken, decoded, per call
            taken += batch
            time.sleep(0.002)
        assert sorted(f.key for f in taken) == sorted(keys)
        assert all(f.result() == bytes(200_000) for f in taken)
        assert pool.intake() == []
    with ComputePool(1) as plain, pytest.raises(ValueError, match=r"intake\(\) needs a pool made with"):
        plain.intake()


def test_futures_work_with_asyncio_and_as_completed(pool: ComputePool) -> None:
    async def main() -> list[int]:
        loop = asyncio.get_running_loop()
        direct = await loop.run_in_executor(pool, pow, 2, 10)
        wrapped = await asyncio.wrap_future(pool.submit("square", 12))
        return [direct, wrapped]

    assert asyncio.run(main()) == [1024, 144]
    futures = [pool.submit("square", i) for i in range(20)]
    assert sorted(f.result() for f in as_completed(futures, timeout=30)) == sorted(i * i for i in range(20))


def test_a_job_error_reraises_with_its_type_and_the_vm_traceback(pool: ComputePool) -> None:
    with pytest.raises(ZeroDivisionError) as caught:
        pool.submit("lambda: 1 / 0").result(30)
    assert isinstance(caught.value.__cause__, runtime.RemoteTraceback)


def test_setup_runs_in_every_vm(pool: ComputePool) -> None:
    futures = [
        pool.submit("lambda: (runtime.currentvm(), 'square' in globals(), time.sleep(0.05))[:2]")
        for _ in range(8)
    ]
    assert {f.result(30) for f in futures} == {(1, True), (2, True)}


def test_bad_input_is_refused_with_the_rule_and_changes_nothing() -> None:
    rule = r"vms must be an int in 1\.\.15 or an iterable of VM indices in 1\.\.15"
    for vms, error in [
        (0, ValueError),
        (16, ValueError),
        ([], ValueError),
        ("2", TypeError),
        (True, TypeError),
    ]:
        with pytest.raises(error, match=rule):
            ComputePool(vms)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"^vms lists VM index 2 twice$"):
        ComputePool([1, 2, 2])
    with ComputeThread(1), pytest.raises(ValueError, match=r"^vm_index 1 is already in use"):
        ComputePool([2, 1])
    assert runtime._registry.owned() == []  # nothing was claimed by the failed pools
    with ComputePool(1) as pool:
        with pytest.raises(TypeError, match=r"^priority must be a number \(higher runs first\), got str$"):
            pool.submit(abs, 1, priority="high")  # type: ignore[arg-type]
        with pytest.raises(ValueError, match=r"got nan$"):
            pool.submit(abs, 1, priority=float("nan"))
        with pytest.raises(TypeError, match=r"^key must be hashable \(it finds the job for cancel"):
            pool.submit(abs, 1, key=[1])
        with pytest.raises(ValueError, match=r"^priority must be a number \(higher runs first\) that fits a"):
            pool.submit(abs, 1, priority=10**400)
        with pytest.raises(TypeError, match="cannot pickle '_thread.lock'") as caught:
            pool.submit(len, threading.Lock())
        assert "argument 1 (of type lock) cannot be pickled, so the job was not started" in str(
            caught.value.__notes__
        )
        assert pool.stats().queued == 0 and pool.submit(abs, -3).result(30) == 3
    with pytest.raises(RuntimeError, match="cannot schedule new futures after"):
        pool.submit(abs, 1)


def test_close_ends_running_and_queued_jobs_as_closed_and_leaves_no_process(tmp_path: Path) -> None:
    pool = ComputePool(2, setup=SETUP)
    running = [pool.submit("hold", str(tmp_path / "never"), 60.0) for _ in range(4)]
    queued = [pool.submit("square", i) for i in range(10)]
    assert wait_until(lambda: pool.stats().in_flight == 4, 10)
    pids = children_of(os.getpid())
    pool.close()
    for future in running + queued:
        with pytest.raises(VMClosedError):
            future.result(5)
    assert pool.closed and runtime._registry.owned() == []
    assert wait_until(lambda: not set(children_of(os.getpid())) & set(pids) - _template_pids(), 5)


def _template_pids() -> set[int]:
    """The template process (it outlives pools, by design): children of VM 0 that are not VMs."""
    out = set()
    for pid in children_of(os.getpid()):
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            continue
        if b"_template" in cmdline:
            out.add(pid)
    return out


def test_shutdown_waits_for_queued_work_or_cancels_it() -> None:
    pool = ComputePool(1, setup=SETUP)
    futures = [pool.submit("square", i) for i in range(20)]
    pool.shutdown(wait=True)
    assert [f.result(0) for f in futures] == [i * i for i in range(20)] and pool.closed
    pool = ComputePool(1, setup=SETUP)
    first = pool.submit("lambda: time.sleep(0.2) or 'first'")
    rest = [pool.submit("square", i) for i in range(20)]
    pool.shutdown(wait=True, cancel_futures=True)
    assert first.result(0) == "first"
    assert sum(f.cancelled() for f in rest) >= 18  # all but what was already sent to the VM
    with pytest.raises(CancelledError):
        next(f for f in rest if f.cancelled()).result(0)


def test_a_collected_pool_frees_its_indices_and_stops_its_vms() -> None:
    pool = ComputePool(2)
    assert pool.submit(abs, -1).result(30) == 1
    del pool
    gc.collect()
    assert wait_until(lambda: runtime._registry.owned() == [], 5)


def test_an_unpicklable_result_fails_only_its_future(pool: ComputePool) -> None:
    future = pool.submit("lambda: __import__('threading').Lock()")
    with pytest.raises(runtime.JobError, match="cannot be pickled"):
        future.result(30)
    assert pool.submit("square", 3).result(30) == 9


def test_pool_futures_pickle_their_values_not_themselves(pool: ComputePool) -> None:
    # A future is VM 0's: it cannot be sent to a VM as an argument (the error says so at submit).
    future = pool.submit(abs, -1)
    future.result(30)
    with pytest.raises((TypeError, pickle.PicklingError)):
        pool.submit(len, future)


def test_readme_pool_example_runs() -> None:
    """The README's ``ComputePool`` snippet, executed as written."""
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Many jobs over many VMs", 1)[1]
    code = section.split("```python\n", 1)[1].split("```", 1)[0]
    done = run_python(code, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    counts, mapped = done.stdout.splitlines()
    kept, dropped = int(counts.split()[0]), int(counts.split()[2])
    assert kept + dropped == 49 and dropped > 0, counts
    assert mapped == "map: [5, 4, 3, 2, 1]"


# -- found by a new user's review -----------------------------------------------------------------------


def test_cancel_running_skips_a_job_waiting_behind_the_running_one(one: ComputePool, tmp_path: Path) -> None:
    gate = tmp_path / "gate"
    first = one.submit("hold", str(gate), key="A")
    waiting = one.submit("record", "B", key="B")  # sent to the VM at once, behind A
    assert wait_until(lambda: one.stats().in_flight == 2 and first.running(), 10)
    assert one.cancel("B", running=True) == 1
    gate.touch()
    assert first.result(30) == 1
    with pytest.raises(JobCancelledError, match=r"^the job was cancelled before it ran \(VM 1 skipped it\)$"):
        waiting.result(30)
    assert one.submit("log_so_far").result(30) == []  # B never ran


def test_long_jobs_after_tiny_ones_stay_in_the_queue_where_priorities_reach_them(pool: ComputePool) -> None:
    assert list(pool.map("square", range(400), chunksize=1)) == [i * i for i in range(400)]
    slow = [pool.submit("lambda: time.sleep(0.3)", key=i) for i in range(20)]
    stats = pool.stats()
    assert stats.in_flight <= 4 and stats.queued >= 16, stats
    assert sum(pool.cancel(i) for i in range(20)) >= 16
    wait(slow, 30)


def test_busy_seconds_grow_while_a_vm_works(one: ComputePool, tmp_path: Path) -> None:
    gate = tmp_path / "gate"
    held = one.submit("hold", str(gate))
    assert wait_until(lambda: one.stats().vms[0].busy_seconds > 0.2, 10)
    gate.touch()
    held.result(30)


def test_reprioritize_checks_priorities_like_submit_and_futures_show_them(
    one: ComputePool, tmp_path: Path
) -> None:
    gate = tmp_path / "gate"
    held = _blocked(one, gate)
    future = one.submit("square", 3, key="k", priority=1)
    with pytest.raises(TypeError, match=r"^priority must be a number \(higher runs first\), got str$"):
        one.reprioritize(lambda key: "high")
    with pytest.raises(ValueError, match=r"got nan$"):
        one.reprioritize(lambda key: float("nan"))
    assert future.priority == 1.0
    one.reprioritize(lambda key: 42)
    assert future.priority == 42.0
    gate.touch()
    assert future.result(30) == 9 and wait(held, 30).not_done == set()


def test_messages_name_the_owner_and_the_rule() -> None:
    with ComputePool([1], setup=SETUP, intake=True) as pool:
        with pytest.raises(ValueError, match=r"^vm_index 1 is already in use by a live ComputePool$"):
            ComputeThread(1)
        with pytest.raises(ValueError, match=r"^timeout must be None or >= 0, got -1$"):
            pool.map(abs, [1], timeout=-1)
        with pytest.raises(
            TimeoutError, match=r"^map\(\) did not finish within its timeout \(\d+ of 4 items done\)$"
        ):
            list(pool.map("lambda x: time.sleep(0.5)", range(4), timeout=0.2, chunksize=1))
        with pytest.raises(ValueError, match=r"^budget_ms must be None or >= 0, got -1$"):
            pool.intake(budget_ms=-1)
        with pytest.raises(TypeError, match=r"^budget_ms must be None or a number of milliseconds, got str$"):
            pool.intake("2")  # type: ignore[arg-type]


def test_a_job_moved_back_to_a_priority_it_had_before_keeps_the_queue_sound(
    one: ComputePool, tmp_path: Path
) -> None:
    # A dead entry and its live replacement once tied on (priority, order) and the heap compared jobs.
    gate = tmp_path / "gate"
    held = _blocked(one, gate)
    futures = [one.submit("square", k, priority=0, key=k) for k in range(200)]
    one.reprioritize(lambda k: 1.0 if k == 7 else 0.0)
    one.reprioritize(lambda k: 0.0)
    one.reprioritize(lambda k: 1.0 if k < 100 else 0.0)  # many move: restored in place
    one.reprioritize(lambda k: 0.0)
    gate.touch()
    assert [f.result(30) for f in futures] == [k * k for k in range(200)]
    assert wait(held, 30).not_done == set()


# -- found by a developer's review (each failed before its fix) ------------------------------------------


def test_a_value_that_cannot_be_decoded_fails_its_future_for_intake_and_asyncio() -> None:
    with ComputePool(1, setup=SETUP, intake=True) as pool:
        bad, good = pool.submit("undecodable"), pool.submit("square", 3)
        assert wait([bad, good], 30).not_done == set()
        assert isinstance(bad.exception(), ValueError)  # before any result() call, as Future promises
        taken = pool.intake()  # did raise, and lost the future
        assert taken == [bad, good] and good.result() == 9
        with pytest.raises(ValueError, match="not a number"):
            bad.result()

        async def main() -> None:
            loop = asyncio.get_running_loop()
            with pytest.raises(ValueError, match="not a number"):
                await asyncio.wait_for(loop.run_in_executor(pool, "undecodable"), 30)  # did hang

        asyncio.run(main())


def test_reprioritize_that_raises_part_way_changes_nothing(one: ComputePool, tmp_path: Path) -> None:
    gate = tmp_path / "gate"
    held = _blocked(one, gate)
    a, b = one.submit("record", "a", key="a"), one.submit("record", "b", key="b")
    with pytest.raises(TypeError, match="priority must be a number"):
        one.reprioritize(lambda key: None if key == "a" else "high")
    assert not a.cancelled() and one.stats().queued == 2
    gate.touch()
    assert a.result(30) == "a" and b.result(30) == "b" and wait(held, 30).not_done == set()


def test_a_map_refused_for_one_item_starts_none_and_names_the_item(one: ComputePool) -> None:
    done = one.stats().jobs_done
    items = [1, 2, 3, threading.Lock(), 5]
    with pytest.raises(TypeError, match="cannot pickle") as caught:
        one.map(repr, items, chunksize=1)
    assert caught.value.__notes__ == [
        "runtime: item 3 of map() (lock) cannot be pickled, so no item was started"
    ]
    stats = one.stats()
    assert (stats.queued, stats.in_flight, stats.jobs_done) == (0, 0, done)
    assert list(one.map(repr, [1, 2])) == ["1", "2"]


def test_a_cancelled_future_leaves_the_queue_at_once(one: ComputePool, tmp_path: Path) -> None:
    gate = tmp_path / "gate"
    held = _blocked(one, gate)
    queued = [one.submit("record", i) for i in range(10)]
    assert one.stats().queued == 10
    assert all(f.cancel() for f in queued)
    assert one.stats().queued == 0 and "0 queued" in repr(one)
    gate.touch()
    assert wait(held, 30).not_done == set() and one.submit("log_so_far").result(30) == []


def test_intake_returns_submitted_jobs_not_the_batches_of_a_map() -> None:
    with ComputePool(2, setup=SETUP, intake=True) as pool:
        assert list(pool.map("square", range(6), chunksize=2)) == [0, 1, 4, 9, 16, 25]
        single = pool.submit("square", 7, key="single")
        assert single.result(30) == 49
        assert [(f.key, f.result()) for f in pool.intake()] == [("single", 49)]


def _open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def test_pools_give_back_their_file_descriptors() -> None:
    with ComputePool(1):
        pass  # the first pool starts the template and the reaper, which stay
    before = _open_fds()
    for _ in range(5):
        with ComputePool(1, setup=SETUP) as pool:
            pool.submit("square", 2).result(30)
        with ComputeThread(1), pytest.raises(ValueError, match="already in use"):
            ComputePool([1])
    assert wait_until(lambda: _open_fds() <= before, 10), (before, _open_fds())  # did grow by 4 a round


def test_the_default_pool_has_one_vm_per_core_this_process_may_use() -> None:
    script = (
        "import os, runtime; os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]}); "
        "pool = runtime.ComputePool(); print(len(pool.vm_indices)); pool.close()"
    )
    done = run_python(script, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["1"]


def test_finished_jobs_are_freed_at_once_not_by_a_full_garbage_collection(one: ComputePool) -> None:
    # Future and job referred to each other: every finished job (its value's shared memory included)
    # waited for a gen-2 collection, which took a game's frame 120 ms after a thousand chunks.
    one.submit("square", 1).result(30)
    gc.collect()
    gc.disable()
    try:
        futures = [one.submit("square", i, key=i, priority=i % 3) for i in range(200)]
        assert [f.result(30) for f in futures] == [i * i for i in range(200)]
        assert all(f._job is None for f in futures)
        assert futures[5].priority == 2 and futures[5].progress == (0.0, "")
        del futures
        assert gc.collect() < 50  # was thousands: each job left a cycle of future, job and their parts
    finally:
        gc.enable()


def test_a_skip_read_together_with_its_job_stops_it() -> None:
    # VM 0 sent a job and then a Skip of it before the idle VM read either: the VM reads both at once
    # and must not start the job (a final review found the worker's fast path starting it).
    from runtime._channel import Channel, socket_pair
    from runtime._protocol import Exec, Skip
    from runtime._worker import _Inbox

    ours, theirs = socket_pair()
    vm0, vm = Channel(ours), Channel(theirs)
    try:
        vm0.send_batch([(Exec(2, "x = 1"), ()), (Skip([2]), ())])
        inbox = _Inbox(vm)
        message, _fds = inbox.next()
        assert message == Exec(2, "x = 1")
        assert inbox.skip(2)
    finally:
        vm0.close()
        vm.close()


def test_decoded_is_false_until_the_value_is_decoded(one: ComputePool) -> None:
    future = one.submit("square", 4)
    assert wait([future], 30).not_done == set()
    assert not future.decoded()  # was True: pool values are DroppableValue, a ReceivedValue subclass
    assert future.result() == 16 and future.decoded()


def test_a_wait_that_outlives_the_wake_pipe_never_reads_the_descriptor_that_took_its_number() -> None:
    # shutdown(wait=True) waits with the descriptors it read under the guard; close() in another thread
    # may close the wake pipe meanwhile, and a new socket take its number (forced here with dup2). The wait
    # must not read that socket: its bytes belong to someone else (and a read could block for ever).
    pool = ComputePool(1)
    core = pool._core
    try:
        assert pool.submit("abs", -1).result(30) == 1
        with core.guard:
            fds = core.watched()  # the wake pipe's read end first
        pool.close()
        assert wait_until(lambda: core.wake_r == -1, 5.0)
        mine, theirs = socket.socketpair()
        with mine, theirs:
            reused = mine.fileno() == fds[0]  # (the lowest free number: often the socket takes it itself)
            if not reused:
                os.dup2(mine.fileno(), fds[0])
            try:
                theirs.send(b"a reply meant for another reader")
                core.wait_for_news(fds, 0.05)
                assert mine.recv(4096, socket.MSG_DONTWAIT) == b"a reply meant for another reader"
            finally:
                if not reused:
                    os.close(fds[0])
    finally:
        pool.close()


def test_cancel_running_never_kills_another_keys_job_that_started_as_the_keys_job_ended() -> None:
    # Job "a" replies at once and "b" starts behind it; nobody has read the reply yet (the guard is held
    # so the pump cannot). cancel("a", running=True) must see that "a" has ended, and leave "b" running.
    setup = "import time\ndef slow(x):\n    time.sleep(0.5)\n    return x\n"
    with ComputePool(1, setup=setup) as pool:
        assert pool.submit("abs", 0).result(30) == 0  # the VM is up
        core = pool._core
        with core.guard:
            a = pool.submit("abs", -1, key="a")
            b = pool.submit("slow", 2, key="b")
            assert wait_until(
                lambda: len(core.managers[0].proc.channel._sock.recv(64, socket.MSG_PEEK)) > 0, 5
            )
            assert pool.cancel("a", running=True) == 0
        assert a.result(30) == 1
        assert b.result(30) == 2


def test_a_module_function_is_pickled_once_yet_never_runs_stale_code(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # VM 0 pickles a module's function once and reuses the bytes (``_pickling.function_reference``):
    # only while the module still holds that very function. A function replaced there (a reload, a
    # rebinding) must still run its own code, sent by value, as it was before the cache.
    from runtime import _pickling

    (tmp_path / "fnref_probe.py").write_text("def f():\n    return 'f'\ndef g():\n    return 'g'\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    import fnref_probe  # type: ignore[import-not-found]

    monkeypatch.setitem(sys.modules, "fnref_probe", fnref_probe)  # (taken out again at the end)
    old_f = fnref_probe.f
    first = _pickling.function_reference(old_f)
    assert first is not None and _pickling.function_reference(old_f) is first  # made once
    with ComputePool(1, setup="import fnref_probe\nfnref_probe.f = fnref_probe.g") as pool:
        # By reference, the VM's module decides: its f is g (the setup rebound it).
        assert pool.submit(old_f).result(30) == "g"
        monkeypatch.setattr(fnref_probe, "f", fnref_probe.g)
        assert _pickling.function_reference(old_f) is None
        # Replaced in VM 0's module: the old function goes by value and runs its own code.
        assert pool.submit(old_f).result(30) == "f"
        assert pool.submit(fnref_probe.f).result(30) == "g"
        # A closure, a lambda and a function of __main__ (whose globals change) are never cached.
        namespace: dict[str, object] = {"__name__": "__main__"}
        exec("counter = 1\ndef read():\n    return counter\n", namespace)
        read = namespace["read"]
        assert pool.submit(read).result(30) == 1
        namespace["counter"] = 2
        assert pool.submit(read).result(30) == 2
        factor = 3
        assert pool.submit(lambda x: x * factor, 2).result(30) == 6
        factor = 4
        assert pool.submit(lambda x: x * factor, 2).result(30) == 8
        assert _pickling.function_reference(read) is None
