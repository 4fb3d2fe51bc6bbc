"""worldgen: API, determinism, seamless chunks, creatures, input checks and gen_world (fast tests)."""

from __future__ import annotations

import dataclasses
import hashlib
import pickle
import random
import subprocess
import sys
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import worldgen
from worldgen import (
    BIOMES,
    CREATURE_DTYPE,
    HABITATS,
    MIN_CREATURE_SPACING,
    RIVER_FAR,
    SEA_BIOMES,
    SEA_LEVEL,
    SPECIES,
    WATER_BIOMES,
    World,
    gen_world,
    generate,
)
from worldgen._biomes import reduction_table
from worldgen._generate import estimated_bytes, held_bytes
from worldgen._hash import hash2, hash2_grid_top
from worldgen._noise import fbm

ROOT = Path(__file__).resolve().parent.parent
FIELDS = ("elevation", "moisture", "temperature", "biome", "heights", "river")


def creature_set(world: World) -> set[tuple[int, int, int, int]]:
    c = world.creatures
    return set(zip(c["id"].tolist(), c["species"].tolist(), c["x"].tolist(), c["y"].tolist(), strict=True))


def stitched(seed: int, x0: int, y0: int, width: int, height: int, chunk: int, shuffle: bool) -> World:
    """The region built from chunk x chunk pieces (edge pieces smaller), optionally in shuffled order."""
    boxes = [
        (x, y, min(chunk, x0 + width - x), min(chunk, y0 + height - y))
        for y in range(y0, y0 + height, chunk)
        for x in range(x0, x0 + width, chunk)
    ]
    if shuffle:
        random.Random(seed).shuffle(boxes)
    parts = {f: np.zeros((height, width), dtype=getattr(generate(seed, 0, 0, 1, 1), f).dtype) for f in FIELDS}
    creatures = []
    for bx, by, bw, bh in boxes:
        part = generate(seed, bx, by, bw, bh)
        for f in FIELDS:
            parts[f][by - y0 : by - y0 + bh, bx - x0 : bx - x0 + bw] = getattr(part, f)
        creatures.append(part.creatures)
    allc = np.concatenate(creatures)
    allc = allc[np.argsort(allc["id"], kind="stable")]
    return World(seed, x0, y0, creatures=allc, **parts)  # type: ignore[arg-type]


def assert_same_world(a: World, b: World) -> None:
    for f in FIELDS:
        assert np.array_equal(getattr(a, f), getattr(b, f)), f
    assert creature_set(a) == creature_set(b)


# --- API surface -----------------------------------------------------------------------------------


def test_public_names() -> None:
    expected = {
        "generate",
        "gen_world",
        "World",
        "BIOMES",
        "WATER_BIOMES",
        "SPECIES",
        "HABITATS",
        "SEA_LEVEL",
        "CREATURE_DTYPE",
    }
    assert expected <= set(worldgen.__all__)
    assert all(hasattr(worldgen, name) for name in worldgen.__all__)
    assert worldgen.__doc__


def test_biome_and_species_tables() -> None:
    assert BIOMES[:5] == ("forest", "desert", "ocean", "mountain", "swamp")
    assert len(BIOMES) >= 12 and len(set(BIOMES)) == len(BIOMES)
    for name in ("shallow_water", "beach", "grassland", "taiga", "tundra", "snow"):
        assert name in BIOMES
    assert {BIOMES.index("ocean"), BIOMES.index("shallow_water")} == SEA_BIOMES
    assert SEA_BIOMES | {BIOMES.index("river"), BIOMES.index("lake")} == WATER_BIOMES
    assert {"wolf", "bear", "fish", "bird", "lizard"} <= set(SPECIES)
    assert set(HABITATS) == set(SPECIES)
    assert HABITATS["fish"] <= WATER_BIOMES
    assert not HABITATS["lizard"] & WATER_BIOMES and BIOMES.index("desert") in HABITATS["lizard"]
    # Every biome hosts some species.
    assert set().union(*HABITATS.values()) == set(range(len(BIOMES)))
    assert np.dtype([("id", "<u8"), ("species", "u1"), ("x", "<i4"), ("y", "<i4")]) == CREATURE_DTYPE
    assert 0.0 < SEA_LEVEL < 1.0


# --- the World -------------------------------------------------------------------------------------


def test_world_fields_shapes_and_ranges() -> None:
    w = generate(3, -40, 25, 300, 200)
    assert (w.seed, w.x0, w.y0, w.width, w.height) == (3, -40, 25, 300, 200)
    for f, dtype in zip(FIELDS, ("float32",) * 3 + ("uint8",) * 2 + ("float32",), strict=True):
        arr = getattr(w, f)
        assert arr.shape == (200, 300) and arr.dtype == dtype, f
    for f in ("elevation", "moisture", "temperature"):
        arr = getattr(w, f)
        assert arr.min() >= 0.0 and arr.max() <= 1.0
    assert w.biome.max() < len(BIOMES)
    assert w.heights.min() >= 1 and w.heights.max() <= 10
    assert np.array_equal(w.heights, np.clip(np.floor(w.elevation * 10).astype(int) + 1, 1, 10))
    sea = np.isin(w.biome, sorted(SEA_BIOMES))
    assert np.array_equal(sea, (w.elevation < SEA_LEVEL) & (w.biome != BIOMES.index("lake")))
    assert np.abs(w.river).max() <= RIVER_FAR
    assert w.creatures.dtype == CREATURE_DTYPE
    with pytest.raises(AttributeError):
        w.seed = 4  # type: ignore[misc]


def test_world_pickles_compactly() -> None:
    w = generate(1, 0, 0, 256, 256)
    blob = pickle.dumps(w, protocol=pickle.HIGHEST_PROTOCOL)
    assert len(blob) < 256 * 256 * 19 + 64 * 1024  # four float32 + two uint8 fields, no per-cell objects
    back = pickle.loads(blob)
    assert_same_world(w, back)


def test_same_seed_same_world_and_seeds_differ() -> None:
    a, b = generate(42, 10, 20, 128, 96), generate(42, 10, 20, 128, 96)
    assert_same_world(a, b)
    c = generate(43, 10, 20, 128, 96)
    assert not np.array_equal(a.elevation, c.elevation)
    # Huge and negative seeds are fine and distinct.
    d, e = generate(-42, 10, 20, 32, 32), generate(2**100 + 42, 10, 20, 32, 32)
    assert not np.array_equal(d.elevation, e.elevation)


def test_progress_is_monotonic_and_ends_at_one() -> None:
    calls: list[tuple[float, str]] = []
    generate(5, 0, 0, 64, 64, progress=lambda f, s: calls.append((f, s)))
    fractions = [f for f, _ in calls]
    assert fractions == sorted(fractions) and fractions[0] == 0.0 and fractions[-1] == 1.0
    assert all(isinstance(f, float) for f in fractions)
    stages = [s for _, s in calls]
    assert {"elevation", "moisture", "biomes", "creatures"} <= set(stages)


# --- seamless chunks and determinism across processes ----------------------------------------------


@pytest.mark.parametrize(("seed", "x0", "y0"), [(0, 0, 0), (7, -300, -200), (2**40 + 3, 1000, -517)])
def test_chunks_match_the_whole_region(seed: int, x0: int, y0: int) -> None:
    whole = generate(seed, x0, y0, 512, 512)
    assert len(whole.creatures) > 100
    assert_same_world(whole, stitched(seed, x0, y0, 512, 512, 256, shuffle=False))
    assert_same_world(whole, stitched(seed, x0, y0, 512, 512, 100, shuffle=True))


def test_neighbouring_chunks_line_up() -> None:
    left, right = generate(9, 0, 0, 256, 256), generate(9, 256, 0, 256, 256)
    both = generate(9, 0, 0, 512, 256)
    assert np.array_equal(both.elevation[:, :256], left.elevation)
    assert np.array_equal(both.elevation[:, 256:], right.elevation)


@settings(max_examples=25, deadline=None)
@given(
    x=st.integers(-(2**20), 2**20),
    y=st.integers(-(2**20), 2**20),
    dx=st.integers(0, 60),
    dy=st.integers(0, 60),
    w=st.integers(1, 70),
    h=st.integers(1, 70),
)
def test_any_subregion_is_a_slice(x: int, y: int, dx: int, dy: int, w: int, h: int) -> None:
    big = generate(11, x, y, 130, 130)
    small = generate(11, x + dx, y + dy, w, h)
    for f in FIELDS:
        assert np.array_equal(getattr(small, f), getattr(big, f)[dy : dy + h, dx : dx + w]), f
    inside = (
        (big.creatures["x"] >= x + dx)
        & (big.creatures["x"] < x + dx + w)
        & (big.creatures["y"] >= y + dy)
        & (big.creatures["y"] < y + dy + h)
    )
    assert np.array_equal(small.creatures, big.creatures[inside])


@pytest.mark.parametrize(("x0", "y0"), [(-(2**31), -(2**31)), (2**31 - 96, 2**31 - 80)])
def test_the_edges_of_the_coordinate_range_work(x0: int, y0: int) -> None:
    w = generate(6, x0, y0, 96, 80)
    assert np.array_equal(w.elevation[10:20, 30:50], generate(6, x0 + 30, y0 + 10, 20, 10).elevation)
    c = w.creatures
    assert np.all((c["x"].astype(np.int64) >= x0) & (c["x"].astype(np.int64) < x0 + 96))
    assert np.all((c["y"].astype(np.int64) >= y0) & (c["y"].astype(np.int64) < y0 + 80))
    assert len(np.unique(c["id"])) == len(c)


def digest(world: World) -> str:
    h = hashlib.sha256()
    for f in FIELDS:
        h.update(np.ascontiguousarray(getattr(world, f)).tobytes())
    h.update(world.creatures.tobytes())
    return h.hexdigest()


def test_nodes_kept_from_earlier_regions_give_the_same_bits(monkeypatch: pytest.MonkeyPatch) -> None:
    # The river network takes the nodes a recent region evaluated (chunks around a view share nearly
    # all of them) and evaluates only the others: the worlds must be those of a cold start.
    from worldgen import _rivers

    evaluated: list[int] = []
    evaluate = _rivers._evaluate_nodes

    def counting(seed: int, x: np.ndarray, *rest: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        evaluated.append(x.size)
        return evaluate(seed, x, *rest)

    monkeypatch.setattr(_rivers, "_evaluate_nodes", counting)
    regions = [
        (5, 9000 + dx, -4000 + dy, 130, 130, step)
        for step in (1, 2)
        for dx, dy in ((0, 0), (128, 0), (-300, 256))
    ]
    cold = []
    for seed, x, y, w, h, step in regions:
        monkeypatch.setattr(_rivers, "_WINDOWS", [])
        cold.append(digest(generate(seed, x, y, w, h, step=step)))
        if len(cold) == 1:
            first_region_nodes = sum(evaluated)
    cold_nodes = sum(evaluated)
    evaluated.clear()
    monkeypatch.setattr(_rivers, "_WINDOWS", [])
    warm = [digest(generate(seed, x, y, w, h, step=step)) for seed, x, y, w, h, step in regions]
    assert warm == cold
    assert sum(evaluated) < cold_nodes / 3  # the later regions took most nodes from the earlier ones
    # Another seed shares no node with them: all its nodes are evaluated, as many as from a cold start.
    evaluated.clear()
    generate(6, 9000, -4000, 130, 130)
    beside_others = sum(evaluated)
    evaluated.clear()
    monkeypatch.setattr(_rivers, "_WINDOWS", [])
    generate(6, 9000, -4000, 130, 130)
    assert beside_others == sum(evaluated) > 0
    # Only the nodes that drain into the region's within HOPS hops, and their neighbours, are evaluated:
    # a small share of the window (57x57 nodes around a chunk).
    assert first_region_nodes < 57 * 57 / 5


@pytest.mark.parametrize(
    ("low", "high", "step", "runs"),
    [
        (-0.4, -1e-7, "_open_water", (True, False)),  # all water: the shortcut
        (-0.4, 0.0, "_open_water", (False, False)),  # a cell at 0 is land: the long way
        (-0.3, 0.04, "_ridges", (False, True)),  # none inland (above INLAND_START): no ranges
        (-0.3, 0.0401, "_ridges", (True, True)),  # one cell barely inland: ranges
    ],
)
def test_terrain_shortcuts_give_the_bits_of_the_long_way(
    monkeypatch: pytest.MonkeyPatch, low: float, high: float, step: str, runs: tuple[bool, bool]
) -> None:
    # A chunk of terrain that is all water skips all but the sea floor (_open_water), one with no
    # cell inland skips the mountain ranges (_ridges). The same cells shaped beside one inland cell take
    # the long way (elementwise, so each cell's value does not depend on its chunk): the same bits.
    from worldgen import _terrain

    calls: list[int] = []
    original = getattr(_terrain, step)
    monkeypatch.setattr(_terrain, step, lambda *a: (calls.append(a[0].size), original(*a)))
    rng = np.random.default_rng(3)
    size = 5000
    n = rng.uniform(low, high, size).astype(np.float32)
    n[:10] = np.float32(high)
    d, r = (rng.uniform(-0.7, 0.7, size).astype(np.float32) for _ in range(2))
    r[:100] = rng.uniform(0.3, 0.7, 100)  # high ridge noise: where inland basins would lie
    sea = rng.random(size) < 0.8
    scratch = _terrain._scratch(size + 1, 4)
    alone = [a.copy() for a in (n, d, r)]
    _terrain._shape(*alone, sea.copy(), scratch)
    beside = [np.append(a, np.float32(0.5)) for a in (n, d, r)]
    _terrain._shape(*beside, np.append(sea, False), scratch)
    assert calls == [k for k, run in zip((size, size + 1), runs, strict=True) if run]
    for a, b in zip(alone[1:], beside[1:], strict=True):
        assert np.array_equal(a.view(np.uint32), b[:-1].view(np.uint32))


def test_axes_shared_between_chunks_give_the_same_bits() -> None:
    # The noise's axes of chunk-sized regions are kept and shared: chunks in one column or row of a view
    # reuse them. The worlds must be those of a cold start, and the shared axes must not be writable.
    from worldgen import _noise

    regions = [(8, 640, -1280, 130, 130, 1), (8, 640, -1152, 130, 130, 1), (8, 768, -1280, 130, 97, 2)]
    cold = []
    for seed, x, y, w, h, step in regions:
        _noise._shared_axis.cache_clear()
        cold.append(digest(generate(seed, x, y, w, h, step=step)))
    _noise._shared_axis.cache_clear()
    warm = [digest(generate(seed, x, y, w, h, step=step)) for seed, x, y, w, h, step in regions]
    assert warm == cold
    assert _noise._shared_axis.cache_info().hits > 0  # the second chunk took the first's columns
    axis = _noise._axis(640, 130, 16, 3, 1)
    with pytest.raises(ValueError, match="read-only"):
        axis.frac[0] = 0.5


def test_another_process_computes_the_same_world() -> None:
    # Python's hash() is salted per process; a fresh interpreter catches any dependence on it.
    code = (
        "import hashlib, numpy as np, worldgen\n"
        "w = worldgen.generate(123, -64, 77, 300, 200)\n"
        "h = hashlib.sha256()\n"
        f"for f in {FIELDS!r}:\n"
        "    h.update(np.ascontiguousarray(getattr(w, f)).tobytes())\n"
        "h.update(w.creatures.tobytes())\n"
        "print(h.hexdigest())\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60, check=True
    )
    assert done.stdout.strip() == digest(generate(123, -64, 77, 300, 200))


def test_a_compute_thread_vm_generates_the_same_world() -> None:
    from runtime import ComputeThread

    with ComputeThread(1, setup="import worldgen") as vm:
        remote = vm.call("worldgen.generate", 77, -300, 1000, 512, 384)
    local = generate(77, -300, 1000, 512, 384)
    for f in FIELDS:
        assert np.array_equal(getattr(remote, f), getattr(local, f)), f
    assert np.array_equal(remote.creatures, local.creatures)
    assert digest(remote) == digest(local)


# --- creatures -------------------------------------------------------------------------------------


def test_creatures_in_region_in_habitat_sorted_and_spaced() -> None:
    w = generate(21, -100, 50, 400, 300)
    c = w.creatures
    assert len(c) > 50
    assert np.all(c["id"][1:] > c["id"][:-1])  # sorted, unique
    assert np.all((c["x"] >= w.x0) & (c["x"] < w.x0 + w.width))
    assert np.all((c["y"] >= w.y0) & (c["y"] < w.y0 + w.height))
    under = w.biome[c["y"] - w.y0, c["x"] - w.x0]
    for s, b in zip(c["species"].tolist(), under.tolist(), strict=True):
        assert b in HABITATS[SPECIES[s]], (SPECIES[s], BIOMES[b])
    xs, ys = c["x"].astype(np.int64), c["y"].astype(np.int64)
    cheb = np.maximum(abs(xs[:, None] - xs[None, :]), abs(ys[:, None] - ys[None, :]))
    np.fill_diagonal(cheb, 10**9)
    assert cheb.min() >= MIN_CREATURE_SPACING
    assert len(set(c["species"].tolist())) >= 3


# --- input checks ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "error", "message"),
    [
        ((1, 0, 0, 10.0, 10), TypeError, "width must be an int"),
        ((1, 0, 0, True, 10), TypeError, "width must be an int"),
        ((1, 0.5, 0, 10, 10), TypeError, "x0 must be an int"),
        (("1", 0, 0, 10, 10), TypeError, "seed must be an int"),
        ((1, 0, 0, 0, 10), ValueError, "width must be a positive int"),
        ((1, 0, 0, 10, -3), ValueError, "height must be a positive int"),
        ((1, 2**31 - 5, 0, 10, 10), ValueError, "must lie within"),
        ((1, 0, -(2**31) - 1, 10, 10), ValueError, "must lie within"),
        ((1, 0, 0, 100_000, 100_000), ValueError, "memory limit"),
    ],
)
def test_generate_rejects_bad_input(args: tuple[object, ...], error: type[Exception], message: str) -> None:
    with pytest.raises(error, match=message):
        generate(*args)  # type: ignore[arg-type]


def test_memory_limit_is_configurable() -> None:
    with pytest.raises(ValueError, match="memory limit of 1 MiB"):
        generate(1, 0, 0, 512, 512, memory_limit=2**20)
    # Any region is charged 2 MiB for a process's first call (code and BLAS buffers, 1.5 MiB measured)
    # and about 4 MiB for the river network around it.
    assert generate(1, 0, 0, 8, 8, memory_limit=8 * 2**20).width == 8
    with pytest.raises(ValueError, match="memory limit"):
        gen_world(3, (512, 512), 5, seed=1, memory_limit=2**20)
    with pytest.raises(ValueError, match="memory limit"):
        gen_world(3, (10, 10), 10**8, seed=1)


@pytest.mark.parametrize(
    ("width", "height", "limit_mib"),
    [
        # The old estimate (40 bytes per cell of the region with its 2-cell halo) said 191 MiB and let
        # both through; they then grew RSS by 568 and 338 MiB (291 and 250 MiB with today's code).
        (1_000_000, 1, 256),
        (1, 1_000_000, 200),
    ],
)
def test_memory_check_counts_what_thin_strips_cost(width: int, height: int, limit_mib: int) -> None:
    message = (
        rf"^a {width}x{height} region would need about \d+ MiB, more than the memory limit of "
        rf"{limit_mib} MiB \(pass memory_limit= to raise it\)$"
    )
    with pytest.raises(ValueError, match=message):
        generate(1, 0, 0, width, height, memory_limit=limit_mib * 2**20)


def test_memory_check_admits_a_square_just_under_the_limit() -> None:
    need = estimated_bytes(256, 256)
    assert generate(1, 0, 0, 256, 256, memory_limit=need).width == 256
    with pytest.raises(ValueError, match="memory limit"):
        generate(1, 0, 0, 256, 256, memory_limit=need - 1)
    # Large squares are charged about 70 bytes per cell, against about 42 bytes per cell traced at
    # 2048x2048: an upper bound, but not so loose that it refuses what fits (a 5000x5000 world).
    assert 42 * 4100**2 < estimated_bytes(4096, 4096) < 80 * 4096**2
    assert estimated_bytes(5000, 5000) < worldgen.DEFAULT_MEMORY_LIMIT


@pytest.mark.parametrize(
    ("width", "height"),
    [(50_000, 1), (1, 8_000), (4_000, 5), (3, 3_000), (3_000, 40), (257, 33), (300, 300), (2, 2)],
)
def test_memory_estimate_bounds_the_bytes_generate_holds(width: int, height: int) -> None:
    generate(1, 0, 0, 8, 8)  # one-time costs of a first call out of the way (estimated_bytes has them)
    rng = random.Random(width * 7919 + height)
    tracemalloc.start()  # numpy reports its array buffers to tracemalloc
    try:
        for _ in range(2):
            tracemalloc.reset_peak()
            before = tracemalloc.get_traced_memory()[0]
            generate(
                rng.randrange(2**32),
                rng.randrange(-(10**6), 10**6),
                rng.randrange(-(10**6), 10**6),
                width,
                height,
            )
            peak = tracemalloc.get_traced_memory()[1] - before
            assert peak <= held_bytes(width, height), (peak, held_bytes(width, height))
    finally:
        tracemalloc.stop()
    assert held_bytes(width, height) < estimated_bytes(width, height)


# --- gen_world (the seed's entry point) ------------------------------------------------------------


def test_gen_world_matches_the_seed_example() -> None:
    r = gen_world(3, (100, 100), 10)
    assert set(r) >= {"biomes", "terrain", "creatures", "seed"}
    print("World Generation Complete", len(r["biomes"]), len(r["terrain"]), len(r["creatures"]))
    assert (len(r["biomes"]), len(r["terrain"]), len(r["creatures"])) == (3, 10000, 10)
    assert r["biomes"] == ["forest", "desert", "ocean"]
    assert isinstance(r["seed"], int)
    assert all(type(v) is int and 1 <= v <= 10 for v in r["terrain"])
    pickle.loads(pickle.dumps(r))


def gen_world_biome_map(biome_count: int, size: tuple[int, int], seed: int) -> np.ndarray:
    return reduction_table(biome_count)[generate(seed, 0, 0, size[0], size[1]).biome]


@pytest.mark.parametrize("biome_count", [1, 2, 3, 5, len(BIOMES)])
def test_gen_world_creatures_stand_in_their_habitat(biome_count: int) -> None:
    size = (120, 80)  # width, height: not square, so a swapped axis shows
    r = gen_world(biome_count, size, 300, seed=8)
    assert r["biomes"] == list(BIOMES[:biome_count])
    assert len(r["terrain"]) == 120 * 80
    bmap = gen_world_biome_map(biome_count, size, 8)
    assert bmap.max() < biome_count
    heights = np.array(r["terrain"]).reshape(80, 120)
    assert np.array_equal(heights, generate(8, 0, 0, 120, 80).heights)
    assert len(r["creatures"]) == 300
    for c in r["creatures"]:
        assert set(c) == {"name", "x", "y"}
        assert 0 <= c["x"] < 120 and 0 <= c["y"] < 80
        assert bmap[c["y"], c["x"]] in HABITATS[c["name"]], c


def test_gen_world_is_deterministic_for_a_seed() -> None:
    assert gen_world(4, (50, 40), 30, seed=77) == gen_world(4, (50, 40), 30, seed=77)
    assert gen_world(4, (50, 40), 30, seed=77) != gen_world(4, (50, 40), 30, seed=78)
    assert gen_world(3, (10, 10), 0, seed=1)["creatures"] == []
    crowded = gen_world(3, (3, 2), 20, seed=1)  # more creatures than cells: cells are reused
    assert len(crowded["creatures"]) == 20
    assert all(0 <= c["x"] < 3 and 0 <= c["y"] < 2 for c in crowded["creatures"])


@pytest.mark.parametrize(
    ("args", "error", "message"),
    [
        ((0, (10, 10), 1), ValueError, "biome_count must be between 1 and"),
        ((len(BIOMES) + 1, (10, 10), 1), ValueError, "biome_count must be between 1 and"),
        ((3.0, (10, 10), 1), TypeError, "biome_count must be an int"),
        ((3, (10, 10), -1), ValueError, "creature_count must be >= 0"),
        ((3, (10, 10), "5"), TypeError, "creature_count must be an int"),
        ((3, (0, 10), 1), ValueError, "width must be a positive int"),
        ((3, (10, -1), 1), ValueError, "height must be a positive int"),
        ((3, (10, 10.5), 1), TypeError, "height must be an int"),
        ((3, (10,), 1), TypeError, "terrain_size must be a \\(width, height\\) pair"),
        ((3, 100, 1), TypeError, "terrain_size must be a \\(width, height\\) pair"),
        ((3, (10, 10), 1, 1.5), TypeError, "seed must be an int"),
    ],
)
def test_gen_world_rejects_bad_input(args: tuple[object, ...], error: type[Exception], message: str) -> None:
    with pytest.raises(error, match=message):
        gen_world(*args)  # type: ignore[arg-type]


# --- the noise itself ------------------------------------------------------------------------------


def test_fbm_is_bounded_varied_and_chunk_exact() -> None:
    octaves = (256, 128, 64, 32, 16)
    whole = fbm(99, -50, -50, 300, 300, octaves, 0.5)
    assert whole.dtype == np.float32 and np.abs(whole).max() < 0.75
    assert whole.std() > 0.03
    part = fbm(99, 17, -3, 61, 29, octaves, 0.5)
    assert np.array_equal(part, whole[47 : 47 + 29, 67 : 67 + 61])
    # Neighbouring cells are close (continuity), far ones are not all equal.
    assert np.abs(np.diff(whole, axis=1)).max() < 0.1


# --- sampling every k-th cell (level-of-detail chunks) ---------------------------------------------


@pytest.mark.parametrize("step", [1, 2, 4, 8, 16])
@pytest.mark.parametrize(
    ("seed", "x0", "y0"),
    [(3, 0, 0), (7, -1000, 333), (2**40 + 1, -(2**31), 2**31 - 16 * 40), (5, 2**31 - 16 * 48, -(2**31) + 7)],
)
def test_a_step_samples_the_full_resolution_world_bit_for_bit(seed: int, x0: int, y0: int, step: int) -> None:
    w, h = 48, 40
    coarse = generate(seed, x0, y0, w, h, step=step)
    full = generate(seed, x0, y0, w * step, h * step)
    assert coarse.step == step and (coarse.width, coarse.height) == (w, h)
    for f in FIELDS:
        assert np.array_equal(getattr(coarse, f), getattr(full, f)[::step, ::step]), f
    # The creatures of a coarse region are those standing in the area it samples, as at full resolution.
    assert np.array_equal(coarse.creatures, full.creatures)


@pytest.mark.parametrize("step", [1, 4])
def test_without_creatures_every_field_is_the_same_and_no_creature_is_placed(step: int) -> None:
    with_them = generate(9, -700, 4100, 64, 48, step=step)
    without = generate(9, -700, 4100, 64, 48, step=step, creatures=False)
    assert with_them.creatures.size > 0
    assert without.creatures.size == 0 and without.creatures.dtype == CREATURE_DTYPE
    for f in FIELDS:
        assert np.array_equal(getattr(without, f), getattr(with_them, f)), f


@pytest.mark.parametrize("step", [256, 4096])
def test_steps_coarser_than_every_lattice_sample_the_world_too(step: int) -> None:
    # At a step of 256 every noise octave is sampled sparsely (it used to fail inside numpy), and at
    # 4096 the creatures stand far beyond the last sample (the river network now reaches them).
    coarse = generate(3, -1000, 500, 3, 2, step=step)
    for x in range(3):
        for y in range(2):
            cell = generate(3, -1000 + x * step, 500 + y * step, 1, 1)
            for f in FIELDS:
                assert getattr(coarse, f)[y, x] == getattr(cell, f)[0, 0], (f, x, y)
    assert coarse.creatures.size > 0


def test_a_step_sees_rivers_the_samples_miss() -> None:
    # A coarse view draws a river where `river < step / 2`: that marks a river's course even where no
    # sample falls on a river cell, and the marks follow the rivers of the full-resolution world.
    step = 8
    full = generate(12, -2048, -2048, 2048, 2048)
    coarse = generate(12, -2048, -2048, 256, 256, step=step)
    river = full.biome == BIOMES.index("river")
    assert river.mean() > 0.002
    drawn = coarse.river < step / 2
    hit = river[::step, ::step]
    assert drawn.sum() > 3 * hit.sum()  # far more than the samples that fall on a river cell
    # Every drawn sample has a river's course (river cells, or its mouth in the sea) within step / 2 cells.
    course = full.river < 0
    ys, xs = np.nonzero(drawn)
    r = step // 2 + 1
    for y, x in zip(ys[::7].tolist(), xs[::7].tolist(), strict=True):
        window = course[max(0, y * step - r) : y * step + r + 1, max(0, x * step - r) : x * step + r + 1]
        assert window.any(), (x, y)


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"step": 0}, ValueError, "step must be a positive int, got 0"),
        ({"step": -2}, ValueError, "step must be a positive int, got -2"),
        ({"step": 1.5}, TypeError, "step must be an int"),
        ({"step": 2**30}, ValueError, "must lie within"),
        ({"creatures": 1}, TypeError, "^creatures must be a bool, got int$"),
        # The creatures and the river network grow with the sampled area: refused up front, not OOM-killed.
        (
            {"step": 65536},
            ValueError,
            r"^a 10x10 region sampled every 65536 cells with its creatures \(creatures=False places none\) "
            r"would need about \d+ MiB, more than the memory limit",
        ),
    ],
)
def test_step_is_checked(kwargs: dict[str, object], error: type[Exception], message: str) -> None:
    with pytest.raises(error, match=message):
        generate(1, 0, 0, 10, 10, **kwargs)  # type: ignore[arg-type]


def test_world_array_fields_are_discoverable_with_fixed_dtypes() -> None:
    # A writer that stores every array layer (e.g. into Zarr) finds them by iterating over the fields.
    w = generate(2, 0, 0, 16, 8)
    arrays = {
        f.name: getattr(w, f.name)
        for f in dataclasses.fields(w)
        if isinstance(getattr(w, f.name), np.ndarray)
    }
    assert set(arrays) == set(FIELDS) | {"creatures"}
    for name in FIELDS:
        assert arrays[name].shape == (8, 16)
    assert {name: str(a.dtype) for name, a in arrays.items() if name != "creatures"} == {
        "elevation": "float32",
        "moisture": "float32",
        "temperature": "float32",
        "biome": "uint8",
        "heights": "uint8",
        "river": "float32",
    }


@pytest.mark.parametrize("bits", [1, 4, 31])
def test_the_top_bits_of_grid_hashes_are_those_of_the_full_hashes(bits: int) -> None:
    rng = np.random.default_rng(bits)
    keys = rng.integers(0, 2**63, size=(3, 1), dtype=np.int64).view(np.uint64)
    xs = [rng.integers(-(2**40), 2**40, size=(1, 500)) for _ in range(2)]
    ys = [rng.integers(-(2**40), 2**40, size=(1, 500)) for _ in range(2)]
    top = hash2_grid_top(keys, xs, ys, bits)
    for y, row in zip(ys, top, strict=True):
        for x, got in zip(xs, row, strict=True):
            want = hash2(keys, x, y) >> np.uint64(64 - bits)
            assert got.dtype == np.int64 and np.array_equal(got, want.astype(np.int64))
    with pytest.raises(ValueError, match=r"^bits must lie in 1\.\.31, got 32$"):
        hash2_grid_top(keys, xs, ys, 32)
