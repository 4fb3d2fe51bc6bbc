"""Jobs for bench_pool.py, in a module of their own so that workers import them by name.

(A function of the benchmark's main script would travel by value, pickled by cloudpickle on every
submit: ~100 us each, which is what a game pays too for functions of its main script. Module functions
are pickled by name, ~1 us.)
"""

from __future__ import annotations

import time

import runtime
import worldgen


def trivial(x: int) -> int:
    return x


def timed_sleep(seconds: float) -> tuple[int, float, float]:
    """Work ``seconds`` (a busy loop of known length); return the VM it ran in, its start and its end."""
    start = time.perf_counter()
    end = start + seconds
    while time.perf_counter() < end:
        pass
    return runtime.currentvm(), start, time.perf_counter()


def chunk(seed: int, cx: int, cy: int, size: int) -> int:
    """Generate one world chunk; return a checksum (the arrays stay in the VM)."""
    world = worldgen.generate(seed, cx * size, cy * size, size, size)
    return int(world.heights.sum())


def chunk_arrays(seed: int, cx: int, cy: int, size: int) -> tuple[object, ...]:
    """Generate one world chunk and return its arrays (~14 bytes a cell: ~0.9 MiB at 256x256)."""
    world = worldgen.generate(seed, cx * size, cy * size, size, size)
    return world.elevation, world.moisture, world.temperature, world.biome, world.heights
