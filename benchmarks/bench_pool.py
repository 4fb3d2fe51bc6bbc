"""ComputePool benchmark: throughput of tiny jobs, world chunks on 1 and 2 VMs, frame pacing while a pool
works, the gap a VM idles between jobs, and the cost of re-prioritising a long queue.

Run: ``python benchmarks/bench_pool.py`` (``--quick`` for a smoke run). Prints one table per measure with
the comparison issue #13 names, the ratio and the target. A benchmark, not a test: figures depend on the
machine and its load (printed).
"""

from __future__ import annotations

import argparse
import itertools
import multiprocessing
import os
import statistics
import sys
import time
from concurrent.futures import ProcessPoolExecutor, wait
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import pool_jobs
from bare_executor import BareExecutor
from bench_runtime import frame_loop, ms, pacing_row, pct, table, us

import runtime
from runtime import ComputePool


def _warm(pool: object, submit_count: int = 200) -> None:
    wait([pool.submit(pool_jobs.trivial, i) for i in range(submit_count)])  # type: ignore[attr-defined]


def bench_throughput(jobs: int, repeat: int) -> None:
    """(1) ``jobs`` trivial jobs submitted one by one and awaited: wall time and VM 0 CPU per job; beside
    them, the floor: ``BareExecutor`` (no queue, priorities, cancellation or shared memory at all)."""
    rows = []
    ours: list[tuple[float, float]] = []
    theirs: list[tuple[float, float]] = []
    bare: list[tuple[float, float]] = []
    with ComputePool(2) as pool, ProcessPoolExecutor(2) as ppe, BareExecutor(2) as floor:
        for executor in (pool, ppe, floor):
            _warm(executor)
        for _ in range(repeat):  # interleaved, so a slow spell of the machine hits all alike
            for executor, out in ((pool, ours), (ppe, theirs), (floor, bare)):
                wall, cpu = time.perf_counter(), time.process_time()
                wait([executor.submit(pool_jobs.trivial, i) for i in range(jobs)])
                out.append((time.perf_counter() - wall, time.process_time() - cpu))
    best = {name: min(runs) for name, runs in (("ours", ours), ("theirs", theirs), ("bare", bare))}
    for name, (wall, cpu) in (
        ("ComputePool(2)", best["ours"]),
        ("ProcessPoolExecutor(2)", best["theirs"]),
        ("floor: BareExecutor(2)", best["bare"]),
    ):
        rows.append([name, ms(wall), f"{jobs / wall:9.0f} jobs/s", us(cpu / jobs)])
    ratio = best["theirs"][0] / best["ours"][0]
    rows.append(["ratio (throughput ours / theirs)", "", f"{ratio:8.2f}x", ""])
    rows.append(
        [
            "ratio (ours / floor)",
            "",
            f"{best['bare'][0] / best['ours'][0]:8.2f}x",
            f"{best['ours'][1] / best['bare'][1]:5.2f}x",
        ]
    )
    table(
        f"(1) {jobs} trivial jobs, submit each then wait for all, best of {repeat} interleaved "
        "(targets: >= 4x ProcessPoolExecutor, VM 0 CPU <= 20 us a job)",
        ["executor", "wall", "throughput", "VM 0 CPU / job"],
        rows,
    )


def bench_chunks(count: int, size: int) -> None:
    """(2) ``count`` worldgen chunks on a 1-VM and a 2-VM pool, in two layouts: a block of neighbours (a
    game's view), and far apart. worldgen keeps the river nodes of its last few regions, so neighbours
    share work within a VM; one VM gets every neighbour and two VMs split them, so the block favours one
    VM. Far apart, no chunk shares anything: the pool's own scaling."""
    layouts = {
        "block of neighbours": [(i % 16, i // 16) for i in range(count)],
        "far apart": [(i * 1009 - 70000, i * 733 - 90000) for i in range(count)],
    }
    rows = []
    results = []
    for layout, cells in layouts.items():
        times = {}
        for vms in (1, 2):
            with ComputePool(vms, setup="import worldgen") as pool:
                wait([pool.submit(pool_jobs.chunk, 1, 5000 + i, 0, size) for i in range(2 * vms)])
                start = time.perf_counter()
                wait([pool.submit(pool_jobs.chunk, 7, cx, cy, size) for cx, cy in cells])
                times[vms] = time.perf_counter() - start
        for v, t in times.items():
            rows.append([layout, str(v), ms(t), f"{count / t:8.1f}", f"{times[1] / t:5.2f}x"])
        results.append(f"{layout} {times[1] / times[2]:.2f}x")
    table(
        f"(2) {count} chunks of {size}x{size} cells (worldgen.generate) (target: 2 VMs >= 1.8x 1 VM): "
        + ", ".join(results),
        ["layout", "VMs", "wall", "chunks/s", "speed-up"],
        rows,
    )


def bench_idle_gap(jobs: int, seconds: float) -> None:
    """How long a VM idles between two jobs while the queue is not empty (measured inside the VMs)."""
    with ComputePool(2) as pool:
        _warm(pool)
        futures = [pool.submit(pool_jobs.timed_sleep, seconds) for _ in range(jobs)]
        by_vm: dict[int, list[tuple[float, float]]] = {}
        for vm, start, end in (f.result() for f in futures):
            by_vm.setdefault(vm, []).append((start, end))
    for spans in by_vm.values():
        spans.sort()
    gaps = [b[0] - a[1] for spans in by_vm.values() for a, b in itertools.pairwise(spans)]
    table(
        f"(5) idle gap of a VM between two of {jobs} queued {seconds * 1e3:.1f} ms jobs, 2 VMs "
        "(from job end to next job start, clocked in the VMs)",
        ["median", "p99", "max"],
        [[us(statistics.median(gaps)), us(pct(gaps, 0.99)), us(max(gaps))]],
    )


def _spin_forever(nice: int | str) -> None:
    if nice == "idle":
        os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))
    else:
        os.nice(int(nice))
    while True:
        pass


def floor_loop(seconds: float, nice: int | str) -> list[float]:
    """The frame loop beside two plain processes that only spin at ``nice`` (no runtime at all): the
    frames the kernel's scheduler alone gives VM 0 when two busy processes share its two cores."""
    spinners = [multiprocessing.Process(target=_spin_forever, args=(nice,), daemon=True) for _ in range(2)]
    for spinner in spinners:
        spinner.start()
    try:
        intervals, _ = frame_loop(seconds, None)
    finally:
        for spinner in spinners:
            spinner.kill()
            spinner.join()
    return intervals


SUBMITS_PER_FRAME = 100


def pool_pacing(jobs: int, size: int, budget_ms: float, setup: str) -> tuple[list[float], list[float], float]:
    """The frame loop while a pool of 2 VMs works through ``jobs`` chunk jobs, taken with intake()."""
    with ComputePool(2, setup=setup, intake=True) as pool:
        _warm(pool)
        state = {"taken": 0, "submitted": 0, "start": 0.0, "end": 0.0, "intake": []}  # type: dict[str, object]
        took: list[float] = []

        to_submit = iter(range(jobs))

        def start() -> None:
            state["start"] = time.perf_counter()
            submit_some()

        def submit_some() -> None:
            # As a game streams: at most SUBMITS_PER_FRAME a frame (1,000 submits in one frame would
            # take that frame ~30 ms by themselves, ~30 us each, before any result arrives).
            for i in itertools.islice(to_submit, SUBMITS_PER_FRAME):
                pool.submit(pool_jobs.chunk_arrays, 3, i % 32, i // 32, size, key=i)

        def frame() -> None:
            if state["start"]:
                submit_some()
            begin = time.perf_counter()
            taken = pool.intake(budget_ms=budget_ms)
            took.append(time.perf_counter() - begin)
            # (the warm-up's futures come first: they have no key)
            state["taken"] = int(state["taken"]) + sum(f.key is not None for f in taken)  # type: ignore[call-overload]
            if taken and state["taken"] == jobs:
                state["end"] = time.perf_counter()

        intervals: list[float] = []
        while not state["end"] and len(intervals) < 300 * 60:
            part, _ = frame_loop(2.0, start if not state["start"] else None, frame)
            intervals += part
    elapsed = float(state["end"]) - float(state["start"])  # type: ignore[arg-type]
    return intervals, took, jobs / elapsed


def bench_frame_pacing(jobs: int, size: int, budget_ms: float) -> None:
    """(3) a 60 FPS loop (2 ms of work a frame) taking ~1 MiB chunk results with intake()."""
    idle, _ = frame_loop(3.0, None)
    idle_p99 = pct(idle, 0.99)
    rows = [pacing_row("idle", idle, None)]
    for nice in (10, "idle"):
        row = pacing_row(
            f"floor: 2 plain processes spinning at nice={nice!r}", floor_loop(6.0, nice), idle_p99
        )
        rows.append(row)
    notes = []
    for name, nice in (("nice 10, the default", 10), ('nice="idle": SCHED_IDLE', "idle")):
        runtime.configure(nice=nice)
        try:
            intervals, took, rate = pool_pacing(jobs, size, budget_ms, "import worldgen")
        finally:
            runtime.configure(nice=10)
        rows.append(
            pacing_row(
                f"pool of 2 VMs ({name}), {jobs} chunk jobs, intake({budget_ms} ms)", intervals, idle_p99
            )
        )
        notes.append(
            f"{name}: {rate:.0f} chunks/s, intake median {statistics.median(took) * 1e3:.2f} ms, "
            f"max {max(took) * 1e3:.2f} ms"
        )
    table(
        f"(3) 60 FPS loop, 2 ms work a frame, while a pool works through {jobs} chunk jobs (submitted "
        f"{SUBMITS_PER_FRAME} a frame) returning "
        f"~{size * size * 14 / 2**20:.1f} MiB each ({'; '.join(notes)}) "
        "(target: p99 <= 1.10x idle, no frame > 20 ms)",
        ["run", "p50", "p99", "max", ">20ms", "p99/idle"],
        rows,
    )


def bench_reprioritize(queued: int) -> None:
    """(4) re-prioritising ``queued`` jobs: all of them move, a few move, half are cancelled."""
    gate = Path(f"/tmp/bench_pool_gate_{os.getpid()}")
    setup = "import os, time\ndef hold(p):\n    while not os.path.exists(p):\n        time.sleep(0.01)\n"
    rows = []
    with ComputePool(1, setup=setup) as pool:
        held = [pool.submit("hold", str(gate)) for _ in range(2)]
        futures = [pool.submit(pool_jobs.trivial, i, key=i, priority=0) for i in range(queued)]
        for label, new in (
            ("every job moves", lambda k: -(k * 7919 % queued)),
            ("every job moves again", lambda k: -(k * 104729 % queued)),
            ("1% of the jobs move", lambda k: -(k * 104729 % queued) if k % 100 else 5),
            ("none moves", lambda k: -(k * 104729 % queued) if k % 100 else 5),
        ):
            start = time.perf_counter()
            pool.reprioritize(new)
            rows.append([label, ms(time.perf_counter() - start), us((time.perf_counter() - start) / queued)])
        start = time.perf_counter()
        cancelled = pool.reprioritize(lambda k: None if k % 2 else 0)
        rows.append(
            [
                f"half cancelled ({cancelled})",
                ms(time.perf_counter() - start),
                us((time.perf_counter() - start) / queued),
            ]
        )
        start = time.perf_counter()
        pool.cancel(2)
        rows.append(["cancel(key) of one job", us(time.perf_counter() - start), ""])
        gate.touch()
        wait(held + [f for f in futures if not f.cancelled()])
    gate.unlink()
    table(
        f"(4) re-prioritising {queued} queued jobs in VM 0 (target: microseconds per job)",
        ["what", "total", "per queued job"],
        rows,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer, smaller runs (a smoke run)")
    parser.add_argument("--only", choices=["throughput", "chunks", "pacing", "reprioritize", "gap"])
    args = parser.parse_args()
    print(f"load average {os.getloadavg()}, {os.cpu_count()} cores, Python {sys.version.split()[0]}")
    q = args.quick
    if args.only in (None, "throughput"):
        bench_throughput(2_000 if q else 10_000, 2 if q else 5)
    if args.only in (None, "chunks"):
        bench_chunks(32 if q else 256, 128)
    if args.only in (None, "pacing"):
        bench_frame_pacing(100 if q else 1_000, 256, 2.0)
    if args.only in (None, "reprioritize"):
        bench_reprioritize(10_000)
    if args.only in (None, "gap"):
        bench_idle_gap(200 if q else 1_000, 0.001)
    runtime.shutdown()


if __name__ == "__main__":
    main()
