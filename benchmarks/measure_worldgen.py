"""worldgen structure figures over many seeds: continents, oceans, water, biomes, rivers, climate borders.

For each seed: a coarse sample of an 8192x8192 region (every 8th cell, 1024x1024 samples) for the shares
that need only structure (largest land mass share of all land, largest sea share of all sea, water share,
each biome's share), and a full-resolution 2048x2048 window at its centre for what needs neighbouring
cells (forbidden biome adjacencies, river connectivity to sea, lake or edge). Prints one row per seed and
a summary (min / median / max) beside the targets.

Run: python benchmarks/measure_worldgen.py [--seeds 20] [--compare /path/to/other/checkout]

--compare runs the same generation with the worldgen of another checkout (e.g. the main branch, to get
"before" figures) and prints both summaries side by side. A worldgen without generate(step=) is sampled
from full-resolution tiles instead (the same cells).
"""

from __future__ import annotations

import argparse
import inspect
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

SIZE, STEP, WINDOW = 8192, 8, 2048
TARGETS = {
    "water": "25-40%",
    "land1": "continents: high",
    "sea1": "connected oceans: high",
    "min_biome": ">= 1%",
    "forbidden": "0",
    "river_conn": ">= 95%",
}


def sample(seed: int, out: Path) -> None:
    """Generate the coarse sample and the window for one seed with the importable worldgen; save them."""
    import worldgen

    x0 = y0 = -SIZE // 2
    n = SIZE // STEP
    if "step" in inspect.signature(worldgen.generate).parameters:
        coarse = worldgen.generate(seed, x0, y0, n, n, step=STEP).biome
    else:
        tile = 2048
        coarse = np.zeros((n, n), dtype=np.uint8)
        for ty in range(0, SIZE, tile):
            for tx in range(0, SIZE, tile):
                part = worldgen.generate(seed, x0 + tx, y0 + ty, tile, tile).biome[::STEP, ::STEP]
                coarse[ty // STEP : (ty + tile) // STEP, tx // STEP : (tx + tile) // STEP] = part
    window = worldgen.generate(seed, -WINDOW // 2, -WINDOW // 2, WINDOW, WINDOW).biome
    np.savez(out / f"{seed}.npz", coarse=coarse, window=window, names=np.array(worldgen.BIOMES))


def figures(path: Path) -> dict[str, object]:
    """The figures of one saved seed, measured with this checkout's worldgen._measure."""
    from worldgen import BIOMES, SEA_BIOMES, WATER_BIOMES
    from worldgen._measure import forbidden_adjacencies, largest_share, river_connectivity

    data = np.load(path)
    names = [str(n) for n in data["names"]]
    # Ids of another worldgen's biomes in this one's table, by name (older tables are a prefix of it).
    remap = np.array([BIOMES.index(n) for n in names] + [0] * (256 - len(names)), dtype=np.uint8)
    coarse, window = remap[data["coarse"]], remap[data["window"]]
    water = np.isin(coarse, sorted(WATER_BIOMES))
    sea = np.isin(coarse, sorted(SEA_BIOMES))
    shares = np.bincount(coarse.ravel(), minlength=len(BIOMES)) / coarse.size
    present = [i for i, n in enumerate(BIOMES) if n in names]
    low = min(present, key=lambda i: shares[i])
    has_rivers = "river" in names
    return {
        "water": float(water.mean()),
        "land1": largest_share(~water, eight=True),
        "sea1": largest_share(sea, eight=True),
        "min_biome": float(shares[low]),
        "min_biome_name": BIOMES[low],
        "biomes": len(present),
        "forbidden": forbidden_adjacencies(window),
        "river_conn": river_connectivity(window) if has_rivers else float("nan"),
        "river": float(shares[BIOMES.index("river")]) if has_rivers else 0.0,
        "lake": float(shares[BIOMES.index("lake")]) if "lake" in names else 0.0,
    }


def run(seeds: int, pythonpath: str | None) -> list[dict[str, object]]:
    """Sample every seed (in a subprocess using ``pythonpath``'s worldgen if given) and measure it."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        if pythonpath is None:
            for seed in range(seeds):
                sample(seed, out)
        else:
            env = dict(os.environ, PYTHONPATH=pythonpath)
            code = (
                "import sys; sys.path.insert(0, sys.argv[1]); from pathlib import Path\n"
                "import importlib.util\n"
                "spec = importlib.util.spec_from_file_location('m', sys.argv[2])\n"
                "m = importlib.util.module_from_spec(spec)\n"
                "spec.loader.exec_module(m)\n"
                "for s in range(int(sys.argv[3])): m.sample(s, Path(sys.argv[4]))\n"
            )
            subprocess.run(
                [sys.executable, "-c", code, pythonpath, __file__, str(seeds), tmp],
                env=env,
                check=True,
                cwd=pythonpath,
            )
        return [figures(out / f"{seed}.npz") for seed in range(seeds)]


def summary(rows: list[dict[str, object]], key: str) -> str:
    values = [float(r[key]) for r in rows]  # type: ignore[arg-type]
    if all(np.isnan(values)):
        return "n/a"
    pct = key in ("water", "land1", "sea1", "min_biome", "river_conn")
    fmt = (lambda v: f"{100 * v:.1f}%") if pct else (lambda v: f"{v:.0f}")
    return f"{fmt(min(values))} / {fmt(statistics.median(values))} / {fmt(max(values))}"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seeds", type=int, default=20)
    parser.add_argument("--compare", help="another checkout whose worldgen gives the 'before' column")
    parser.add_argument("--json", help="also write the per-seed figures to this file")
    args = parser.parse_args()
    after = run(args.seeds, None)
    before = run(args.seeds, args.compare) if args.compare else None
    print(
        f"worldgen structure over seeds 0..{args.seeds - 1}: {SIZE}x{SIZE} sampled every {STEP}th cell, "
        f"adjacency and rivers on the central {WINDOW}x{WINDOW} at full resolution"
    )
    print(
        f"{'seed':>4} {'water':>6} {'land1':>6} {'sea1':>6} {'rivers':>6} {'lakes':>6} "
        f"{'min biome':>22} {'forbid':>6} {'riv.conn':>8}"
    )
    for seed, r in enumerate(after):
        print(
            f"{seed:>4} {100 * r['water']:>5.1f}% {100 * r['land1']:>5.1f}% {100 * r['sea1']:>5.1f}% "  # type: ignore[operator]
            f"{100 * r['river']:>5.2f}% {100 * r['lake']:>5.2f}% "  # type: ignore[operator]
            f"{r['min_biome_name']:>14} {100 * r['min_biome']:>5.2f}% {r['forbidden']:>6} "  # type: ignore[operator]
            f"{100 * r['river_conn']:>7.2f}%"
        )  # type: ignore[operator]
    print()
    print(f"{'measure (min / median / max)':<30} {'target':<24} {'before':<26} {'after':<26}")
    print("-" * 108)
    for key, target in TARGETS.items():
        b = summary(before, key) if before else "-"
        print(f"{key:<30} {target:<24} {b:<26} {summary(after, key):<26}")
    if before:
        b, a = summary(before, "biomes"), summary(after, "biomes")
        print(f"{'biomes present':<30} {'all':<24} {b:<26} {a:<26}")
    if args.json:
        Path(args.json).write_text(json.dumps({"after": after, "before": before}, indent=1))


if __name__ == "__main__":
    main()
