"""worldgen benchmark: our separable gradient-noise fBm beside pyfastnoiselite and opensimplex, and
whole-world generation times and peak memory. Prints one table (median of N runs each).

Run: python benchmarks/bench_worldgen.py [--runs N] [--numba-python /path/to/python-with-numba]
                                         [--baseline DIR]

--baseline DIR times another version's generate() (the worldgen package in DIR, e.g. an old commit
exported with `git archive COMMIT worldgen | tar -x -C DIR`) interleaved with this one at 1024x1024
(both cold) and for the game's chunks, call by call in one process, so that a loaded machine slows both
alike: the ratio is what to compare.

generate() keeps the river network's nodes of its last few regions and the noise's axes of chunk-sized
regions (neighbouring regions share most of them): whole worlds are timed cold (those kept nodes
dropped before each call, as a world is generated once; their axes are too long to be kept); the game's
chunks (130x130: 128 and a halo, at a far offset, steps 1, 2 and 4 with creatures, 4 and 16 without, as
the game's coarse levels ask) both cold (each in a new column and row, as after a jump) and warm (a 5x5
block of neighbouring chunks, nearest first, as the game's pool hands them out).

opensimplex's array API is very slow without numba, so by default it runs on a smaller grid and the
time is scaled up to 1024x1024 (marked "est."). --numba-python adds a row timed in another interpreter
that has numba and opensimplex installed (numba is not part of this project's extras).
"""

from __future__ import annotations

import argparse
import functools
import importlib.util
import inspect
import os
import statistics
import subprocess
import sys
import time
import tracemalloc
from collections.abc import Callable

import numpy as np

from worldgen import _rivers, generate
from worldgen._hash import derive_key
from worldgen._noise import fbm
from worldgen._sampling import Grid
from worldgen._terrain import CONTINENT_OCTAVES, DETAIL_OCTAVES, PERSISTENCE, RIDGE_OCTAVES, elevation

# The fBm compared is the detail field's: the same five octaves (256 down to 16 cells) as before.
ELEVATION_OCTAVES = DETAIL_OCTAVES

SEED = 1234
N = 1024
OCTAVES = len(ELEVATION_OCTAVES)


CHUNK = 130  # the game's 128x128 chunks with a one-cell halo
FAR = 123456 * 128  # an arbitrary far offset
# (step, creatures) of the chunks timed: the game's levels 0, 1, 2 and 4 (the coarse ones ask for no
# creatures), and step 4 with creatures as before.
CHUNK_CASES = ((1, True), (2, True), (4, True), (4, False), (16, False))
NONE = {True: "", False: " no creatures"}


def cold(fn: Callable[[], object], rivers: object = _rivers) -> Callable[[], object]:
    """``fn`` with the river nodes that generate() keeps from earlier regions (``rivers._WINDOWS``, of
    this worldgen or a baseline's, if it keeps any) dropped before each call."""
    kept = getattr(rivers, "_WINDOWS", None)

    def run() -> object:
        if kept is not None:
            kept.clear()
        return fn()

    return run


def chunk_calls(
    gen: Callable[..., object], step: int, warm: bool, creatures: bool = True
) -> Callable[[], object]:
    """One chunk per call: far apart (cold, as after a jump) or a 5x5 view of neighbours, nearest first.
    ``creatures=False`` asks for none, as the game's coarse levels do."""
    cells = sorted(((i, j) for i in range(-2, 3) for j in range(-2, 3)), key=lambda c: c[0] ** 2 + c[1] ** 2)
    calls = iter(range(1 << 30))

    def run() -> object:
        k = next(calls)
        span = 128 * step
        if warm:
            i, j = cells[k % len(cells)]
            x, y = FAR + (k // len(cells)) * 64 * span + i * span, FAR + j * span
        else:  # a new column and row each time: nothing kept from earlier chunks applies
            x, y = FAR + k * 64 * span, FAR + k * 64 * span
        if step == 1:  # without the keyword: an old baseline may have no step
            return gen(SEED, x - 1, y - 1, CHUNK, CHUNK)
        if not creatures:
            return gen(SEED, x - step, y - step, CHUNK, CHUNK, step=step, creatures=False)
        return gen(SEED, x - step, y - step, CHUNK, CHUNK, step=step)

    return run


def median_ms(fn: Callable[[], object], runs: int) -> float:
    fn()  # warm-up: imports, caches, page faults
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times) * 1e3


def interleaved_ms(fns: list[Callable[[], object]], runs: int) -> list[float]:
    """Median ms of each function, called in turn round after round (the same load for all)."""
    for fn in fns:
        fn()
    times: list[list[float]] = [[] for _ in fns]
    for _ in range(runs):
        for fn, ts in zip(fns, times, strict=True):
            t = time.perf_counter()
            fn()
            ts.append(time.perf_counter() - t)
    return [statistics.median(ts) * 1e3 for ts in times]


def baseline_generate(directory: str) -> Callable[..., object]:
    """``generate`` of the worldgen package in ``directory``, imported as a separate package."""
    init = os.path.join(directory, "worldgen", "__init__.py")
    spec = importlib.util.spec_from_file_location(
        "worldgen_baseline", init, submodule_search_locations=[os.path.dirname(init)]
    )
    if spec is None or spec.loader is None:
        raise SystemExit(f"--baseline: no worldgen package in {directory}")
    module = importlib.util.module_from_spec(spec)
    sys.modules["worldgen_baseline"] = module
    spec.loader.exec_module(module)
    fn: Callable[..., object] = module.generate
    return fn


def fastnoiselite_fbm(noise_name: str) -> Callable[[], object] | None:
    try:
        from pyfastnoiselite.pyfastnoiselite import FastNoiseLite, FractalType, NoiseType
    except ImportError:
        return None
    noise = FastNoiseLite(SEED)
    noise.noise_type = getattr(NoiseType, noise_name)
    noise.fractal_type = FractalType.FractalType_FBm
    noise.fractal_octaves = OCTAVES
    noise.fractal_lacunarity = 2.0
    noise.fractal_gain = PERSISTENCE
    noise.frequency = 1.0 / ELEVATION_OCTAVES[0]
    ys, xs = np.mgrid[0:N, 0:N]
    # Coordinates are built once, outside the timing (in its favour).
    coords = np.ascontiguousarray(np.stack([xs.ravel(), ys.ravel()]).astype(np.float32))
    return lambda: noise.gen_from_coords(coords).reshape(N, N)


def opensimplex_fbm(size: int) -> Callable[[], object] | None:
    try:
        import opensimplex
    except ImportError:
        return None
    opensimplex.seed(SEED)
    axis = np.arange(size, dtype=np.float64)

    def run() -> object:
        total = np.zeros((size, size))
        for o, spacing in enumerate(ELEVATION_OCTAVES):
            total += PERSISTENCE**o * opensimplex.noise2array(axis / spacing, axis / spacing)
        return total

    return run


NUMBA_CODE = """
import statistics, time
import numpy as np, opensimplex
import numba  # noqa: F401  (fails loudly if this interpreter lacks numba)
opensimplex.seed({seed})
axis = np.arange({n}, dtype=np.float64)
def run():
    total = np.zeros(({n}, {n}))
    for o, spacing in enumerate({octaves}):
        total += {persistence} ** o * opensimplex.noise2array(axis / spacing, axis / spacing)
run()
times = []
for _ in range({runs}):
    t = time.perf_counter(); run(); times.append(time.perf_counter() - t)
print(statistics.median(times) * 1e3)
"""


def opensimplex_numba_ms(python: str, runs: int) -> float:
    """opensimplex's array API JIT-compiled by numba, run in an interpreter that has numba."""
    code = NUMBA_CODE.format(seed=SEED, n=N, octaves=ELEVATION_OCTAVES, persistence=PERSISTENCE, runs=runs)
    done = subprocess.run([python, "-c", code], capture_output=True, text=True, check=True, timeout=600)
    return float(done.stdout.strip().splitlines()[-1])


def subprocess_peak_rss_mib(size: int) -> tuple[float, float]:
    """Peak RSS (VmHWM, reset at exec unlike ru_maxrss) of a fresh interpreter: idle, and after generate()."""
    hwm = "print([l for l in open('/proc/self/status') if l.startswith('VmHWM')][0].split()[1])\n"
    idle = "import worldgen\n" + hwm
    busy = f"import worldgen\nworldgen.generate({SEED}, 0, 0, {size}, {size})\n" + hwm
    out = []
    for code in (idle, busy):
        done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
        out.append(int(done.stdout) / 1024)  # KiB -> MiB
    return out[0], out[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument(
        "--opensimplex-size", type=int, default=128, help="grid for opensimplex without numba (scaled up)"
    )
    parser.add_argument(
        "--baseline", help="a directory holding another version's worldgen package, timed interleaved"
    )
    parser.add_argument(
        "--numba-python",
        help="an interpreter with numba and opensimplex installed, for an opensimplex+numba row",
    )
    args = parser.parse_args()
    runs = args.runs
    key = derive_key(SEED, 1)
    rows: list[tuple[str, str, float, str]] = []

    ours_fbm = median_ms(lambda: fbm(key, 0, 0, N, N, ELEVATION_OCTAVES, PERSISTENCE), runs)
    ours_elev = median_ms(lambda: elevation(SEED, Grid(0, 0, N, N)), runs)
    rows.append(("worldgen fBm (separable exact gradient noise)", f"{N}x{N}", ours_fbm, "1.00x"))
    octaves = len(CONTINENT_OCTAVES + DETAIL_OCTAVES + RIDGE_OCTAVES)
    name = f"worldgen elevation (continents, detail, ridges: {octaves} octaves)"
    rows.append((name, f"{N}x{N}", ours_elev, "-"))
    for noise_name, label in (("NoiseType_Perlin", "Perlin"), ("NoiseType_OpenSimplex2", "OpenSimplex2")):
        fn = fastnoiselite_fbm(noise_name)
        if fn is None:
            rows.append((f"pyfastnoiselite {label} fBm", "not installed", float("nan"), "-"))
            continue
        ms = median_ms(fn, runs)
        rows.append((f"pyfastnoiselite {label} fBm (C)", f"{N}x{N}", ms, f"{ms / ours_fbm:.2f}x slower"))
    s = args.opensimplex_size
    fn = opensimplex_fbm(s)
    if fn is not None and importlib.util.find_spec("numba") is not None:
        # opensimplex uses numba when it is importable: time the full grid.
        ms = median_ms(opensimplex_fbm(N) or fn, runs)
        rows.append(("opensimplex noise2array fBm (numba)", f"{N}x{N}", ms, f"{ms / ours_fbm:.2f}x slower"))
    elif fn is not None:
        scale = (N * N) / (s * s)
        ms = median_ms(fn, max(3, runs // 2)) * scale
        rows.append(
            (
                f"opensimplex noise2array fBm (no numba; {s}x{s} x{scale:.0f})",
                f"{N}x{N} est.",
                ms,
                f"{ms / ours_fbm:.1f}x slower",
            )
        )
    if args.numba_python:
        ms = opensimplex_numba_ms(args.numba_python, runs)
        name = "opensimplex noise2array fBm (numba, --numba-python)"
        rows.append((name, f"{N}x{N}", ms, f"{ms / ours_fbm:.2f}x slower"))
    for size, target in ((1024, 60.0), (4096, 1500.0)):
        ms = median_ms(cold(functools.partial(generate, SEED, 0, 0, size, size)), runs)
        verdict = "meets" if ms <= target else "MISSES"
        name = f"whole world generate() (target <= {target:.0f} ms: {verdict})"
        rows.append((name, f"{size}x{size}", ms, "-"))
    for step, creatures in CHUNK_CASES:
        for warm in (False, True):
            ms = median_ms(chunk_calls(generate, step, warm, creatures), 5 * runs)
            how = "a 5x5 view of neighbours, warm" if warm else "far apart, cold"
            rows.append(
                (f"chunk generate(), step {step}{NONE[creatures]}, {how}", f"{CHUNK}x{CHUNK}", ms, "-")
            )

    if args.baseline:
        other = baseline_generate(args.baseline)
        base_ms, ours_ms = interleaved_ms(
            [
                cold(lambda: other(SEED, 0, 0, N, N), sys.modules.get("worldgen_baseline._rivers")),
                cold(lambda: generate(SEED, 0, 0, N, N)),
            ],
            3 * runs,
        )
        rows.append((f"baseline generate() ({args.baseline}), interleaved", f"{N}x{N}", base_ms, "1.00x"))
        rows.append(
            ("this generate() (cold), interleaved with it", f"{N}x{N}", ours_ms, f"{ours_ms / base_ms:.2f}x")
        )
        params = inspect.signature(other).parameters
        cases = [
            (st, cr)
            for st, cr in CHUNK_CASES
            if (st == 1 or "step" in params) and (cr or "creatures" in params)
        ]
        for step, creatures in cases:
            for warm in (False, True):
                how = "5x5 view" if warm else "far apart"
                fns = [
                    chunk_calls(other, step, warm, creatures),
                    chunk_calls(generate, step, warm, creatures),
                ]
                base_ms, ours_ms = interleaved_ms(fns, 10 * runs)
                what = f"step {step}{NONE[creatures]}, {how}"
                rows.append((f"baseline chunk, {what}, interleaved", f"{CHUNK}x{CHUNK}", base_ms, "1.00x"))
                rows.append((f"this chunk, {what}", f"{CHUNK}x{CHUNK}", ours_ms, f"{ours_ms / base_ms:.2f}x"))

    tracemalloc.start()
    generate(SEED, 0, 0, 4096, 4096)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    idle_rss, busy_rss = subprocess_peak_rss_mib(4096)
    rss = busy_rss - idle_rss

    print(f"worldgen benchmark: {OCTAVES}-octave fBm, median of {runs} runs, times in ms")
    print(f"{'what':<62} {'grid':>14} {'median ms':>10}  vs worldgen fBm")
    print("-" * 104)
    for name, grid, ms, ratio in rows:
        print(f"{name:<62} {grid:>14} {ms:>10.1f}  {ratio}")
    print("-" * 104)
    limit = 1024
    print(
        f"peak memory of generate() at 4096x4096: {peak / 2**20:.0f} MiB traced by tracemalloc, "
        f"{busy_rss:.0f} MiB peak RSS of a fresh process ({rss:.0f} MiB above its idle "
        f"{idle_rss:.0f} MiB) (target <= {limit} MiB: "
        f"{'meets' if max(peak / 2**20, busy_rss) <= limit else 'MISSES'})"
    )
    print("target: worldgen fBm >= 2.5x faster than pyfastnoiselite's fBm on the same grid")


if __name__ == "__main__":
    main()
