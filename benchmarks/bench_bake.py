"""Bake benchmark: cells/s of `python -m worldgen bake` with 1 and 2 Dask workers against one process
that calls generate() per block and np.save()s it, bytes on disk per cell, and peak memory per worker
for two world sizes (it must not grow with the world). Prints tables with ratios.

Run: python benchmarks/bench_bake.py [--size 8192] [--chunk 1024] [--rounds 2] [--memory-sizes 4096 16384]
     [--dir DIR]

Throughput runs are interleaved (baseline, plain processes, 1 worker, 2 workers, then again) and the
best of the rounds is kept, so that a slow spell on a shared machine hits all alike. Cluster start-up is
not timed (each cluster is started once and reused); the bake's own checks, store creation and
scheduling are. The same blocks on 1 and 2 plain worker processes (no Dask, no Zarr) give the floor:
what this machine's cores give this workload, which the 2 workers / 1 worker ratio cannot beat.
Peak memory is each worker process's VmHWM (peak resident set, from /proc) after baking a world on a
fresh two-worker cluster, in a fresh process per world size.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

from worldgen import generate
from worldgen.bake import local_cluster

SEED = 1234
# What the baseline saves: every array of a World, as the bake stores it.
SAVED = ("elevation", "moisture", "temperature", "biome", "heights", "river", "creatures")
LAYERS = {name: getattr(generate(SEED, 0, 0, 1, 1), name).dtype for name in SAVED if name != "creatures"}
RAW = sum(dtype.itemsize for dtype in LAYERS.values())  # bytes per cell of the layers


def disk_bytes(path: Path) -> tuple[int, int]:
    """(bytes allocated on disk, apparent bytes) of everything under ``path``."""
    used = apparent = 0
    for root, _, files in os.walk(path):
        for name in files:
            st = os.stat(os.path.join(root, name))
            used += st.st_blocks * 512
            apparent += st.st_size
    return used, apparent


def baseline(out: Path, size: int, chunk: int) -> float:
    """One process: generate() each block and np.save() each of its arrays. Returns seconds."""
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir()
    start = time.perf_counter()
    for y in range(0, size, chunk):
        for x in range(0, size, chunk):
            world = generate(SEED, x, y, min(chunk, size - x), min(chunk, size - y))
            for name in SAVED:
                np.save(out / f"{name}-{y}-{x}.npy", getattr(world, name))
    return time.perf_counter() - start


def generate_only(size: int, chunk: int) -> float:
    """One process: generate() each block and drop it, the floor of any bake. Returns seconds."""
    start = time.perf_counter()
    for y in range(0, size, chunk):
        for x in range(0, size, chunk):
            generate(SEED, x, y, min(chunk, size - x), min(chunk, size - y))
    return time.perf_counter() - start


def _save_block(out: Path | None, size: int, chunk: int, x: int, y: int) -> None:
    world = generate(SEED, x, y, min(chunk, size - x), min(chunk, size - y))
    if out is not None:
        for name in SAVED:
            np.save(out / f"{name}-{y}-{x}.npy", getattr(world, name))


def plain_processes(pool: ProcessPoolExecutor, out: Path | None, size: int, chunk: int) -> float:
    """The blocks spread over plain worker processes (no Dask, no Zarr): what this machine's cores give
    this workload at best, the floor for the 2 workers / 1 worker ratio. Returns seconds."""
    if out is not None:
        shutil.rmtree(out, ignore_errors=True)
        out.mkdir()
    blocks = [(x, y) for y in range(0, size, chunk) for x in range(0, size, chunk)]
    start = time.perf_counter()
    list(pool.map(_save_block, *zip(*[(out, size, chunk, x, y) for x, y in blocks], strict=True)))
    return time.perf_counter() - start


def dask_bake(client: object, out: Path, size: int, chunk: int) -> float:
    from worldgen.bake import bake

    shutil.rmtree(out, ignore_errors=True)
    result = bake(out, seed=SEED, width=size, height=size, chunk=chunk, scheduler=client)  # type: ignore[arg-type]
    assert result.baked == result.blocks
    return result.seconds


def peak_rss() -> int:
    """This process's peak resident set (VmHWM), bytes."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmHWM in /proc/self/status")


def memory_run(size: int, chunk: int, folder: Path) -> None:
    """(In a fresh process.) Bake a size^2 world on a fresh 2-worker cluster; print peaks as JSON."""
    from distributed import Client

    from worldgen.bake import bake

    out = folder / f"memory-{size}.zarr"
    shutil.rmtree(out, ignore_errors=True)
    with (
        local_cluster(2) as cluster,
        Client(cluster) as client,
    ):
        idle = client.run(peak_rss)
        result = bake(out, seed=SEED, width=size, height=size, chunk=chunk, scheduler=client)
        peaks = client.run(peak_rss)
    shutil.rmtree(out, ignore_errors=True)
    print(
        json.dumps(
            {
                "size": size,
                "seconds": result.seconds,
                "idle": sorted(idle.values()),
                "workers": sorted(peaks.values()),
                "client": peak_rss(),
            }
        )
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=8192)
    parser.add_argument("--chunk", type=int, default=1024)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--memory-sizes", type=int, nargs="*", default=[4096, 16384])
    parser.add_argument("--dir", type=Path, default=None, help="where the stores go (default: a temp dir)")
    parser.add_argument("--memory-run", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    folder = Path(args.dir or tempfile.mkdtemp(prefix="bench-bake-"))
    folder.mkdir(parents=True, exist_ok=True)
    if args.memory_run:
        memory_run(args.memory_run, args.chunk, folder)
        return

    from distributed import Client

    size, chunk = args.size, args.chunk
    cells = size * size
    print(f"machine: {os.cpu_count()} cores, load average at start {os.getloadavg()}")
    print(
        f"world {size}x{size} ({cells / 1e6:.1f} M cells), blocks of {chunk}, "
        f"{args.rounds} interleaved rounds"
    )
    names = ("generate only", "baseline", "1 process", "2 processes", "1 worker", "2 workers")
    best = {name: float("inf") for name in names}
    with (
        ProcessPoolExecutor(1) as procs1,
        ProcessPoolExecutor(2) as procs2,
        local_cluster(1) as one,
        Client(one) as client1,
        local_cluster(2) as two,
        Client(two) as client2,
    ):
        # Warm-up: the workers import worldgen, numpy and zarr on their first block.
        dask_bake(client1, folder / "warm.zarr", chunk, chunk)
        dask_bake(client2, folder / "warm.zarr", 2 * chunk, chunk)
        plain_processes(procs1, None, chunk, chunk)
        plain_processes(procs2, None, 2 * chunk, chunk)
        for r in range(args.rounds):
            runs = {
                "generate only": lambda: generate_only(size, chunk),
                "baseline": lambda: baseline(folder / "baseline", size, chunk),
                "1 process": lambda: plain_processes(procs1, folder / "plain", size, chunk),
                "2 processes": lambda: plain_processes(procs2, folder / "plain", size, chunk),
                "1 worker": lambda: dask_bake(client1, folder / "one.zarr", size, chunk),
                "2 workers": lambda: dask_bake(client2, folder / "two.zarr", size, chunk),
            }
            for name, run in runs.items():
                seconds = run()
                best[name] = min(best[name], seconds)
                print(f"  round {r + 1}: {name:13} {seconds:6.2f} s  {cells / seconds / 1e6:6.2f} M cells/s")
    rate = {name: cells / seconds for name, seconds in best.items()}
    print()
    print(f"{f'bake {size}x{size}':44} {'M cells/s':>10} {'vs 1 worker':>12} {'vs baseline':>12}")
    rows = [
        ("one process: generate per block, no writing", "generate only"),
        ("one process: generate + np.save per block", "baseline"),
        ("1 plain worker process: generate + np.save", "1 process"),
        ("2 plain worker processes: generate + np.save", "2 processes"),
        ("python -m worldgen bake, 1 worker", "1 worker"),
        ("python -m worldgen bake, 2 workers", "2 workers"),
    ]
    for label, name in rows:
        print(
            f"{label:44} {rate[name] / 1e6:10.2f} {rate[name] / rate['1 worker']:11.2f}x "
            f"{rate[name] / rate['baseline']:11.2f}x"
        )
    print(f"2 workers / 1 worker = {rate['2 workers'] / rate['1 worker']:.2f}x (target >= 1.8x)")
    print(
        f"floor on this machine: 2 plain processes / 1 = {rate['2 processes'] / rate['1 process']:.2f}x "
        "(the same blocks, no Dask, no Zarr: what the cores give this workload)"
    )

    print()
    store_used, store_apparent = disk_bytes(folder / "two.zarr")
    npy_used, npy_apparent = disk_bytes(folder / "baseline")
    print(f"{'bytes on disk per cell':44} {'allocated':>10} {'apparent':>10} {'vs .npy':>10}")
    kinds = " + ".join(f"{d} x{list(LAYERS.values()).count(d)}" for d in dict.fromkeys(LAYERS.values()))
    print(f"{f'raw layers ({kinds})':44} {RAW:10.2f} {RAW:10.2f}")
    print(
        f"{'np.save per block (uncompressed)':44} {npy_used / cells:10.2f} {npy_apparent / cells:10.2f} "
        f"{1:9.2f}x"
    )
    print(
        f"{'baked Zarr store (blosc lz4 + shuffle)':44} {store_used / cells:10.2f} "
        f"{store_apparent / cells:10.2f} "
        f"{store_used / npy_used:9.2f}x"
    )
    for name in ("baseline", "plain", "one.zarr", "two.zarr", "warm.zarr"):
        shutil.rmtree(folder / name, ignore_errors=True)

    if args.memory_sizes:
        print()
        print(f"peak memory per worker (VmHWM), 2 workers, blocks of {chunk}:")
        print(
            f"{'world':>12} {'M cells':>9} {'idle MiB':>9} {'peak MiB':>15} {'bake caller MiB':>16} {'s':>7}"
        )
        first = None
        for side in args.memory_sizes:
            done = subprocess.run(
                [
                    sys.executable,
                    __file__,
                    "--memory-run",
                    str(side),
                    "--chunk",
                    str(chunk),
                    "--dir",
                    str(folder),
                ],
                capture_output=True,
                text=True,
                check=True,
            )
            found = json.loads(done.stdout.strip().splitlines()[-1])
            peak = max(found["workers"])
            first = first or peak
            print(
                f"{side:>6}x{side:<5} {side * side / 1e6:9.1f} {max(found['idle']) / 2**20:9.0f} "
                f"{' / '.join(f'{p / 2**20:.0f}' for p in found['workers']):>15} "
                f"{found['client'] / 2**20:16.0f} "
                f"{found['seconds']:7.1f}"
            )
        if first:
            print(f"largest / smallest world's worker peak: {peak / first:.2f}x (target: about 1x, bounded)")
    print(f"load average at end {os.getloadavg()}")
    if args.dir is None:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
