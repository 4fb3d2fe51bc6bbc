"""worldgen quality, the issue's rules as tests, on a few seeds (benchmarks/measure_worldgen.py has 20).

Full-resolution 2048x2048 windows (neighbourhood rules): no biome beside one that is not its Whittaker
neighbour, rivers connected to the sea, a lake or the window's edge, no river above its banks, beaches
only beside the sea, snow only high and cold, creatures only in their habitats. Coarse 8192x8192
samples (every 8th cell; structure rules): water 25-40%, every biome >= 1%, a main continent.
"""

from __future__ import annotations

import numpy as np
import pytest

from worldgen import (
    BIOMES,
    HABITATS,
    SEA_BIOMES,
    SEA_LEVEL,
    SNOW_LEVEL,
    SPECIES,
    WATER_BIOMES,
    World,
    generate,
)
from worldgen._biomes import BEACH_REACH, SNOW_TEMPERATURE
from worldgen._measure import (
    components,
    forbidden_adjacencies,
    largest_share,
    river_connectivity,
    rivers_above_banks,
)

SIZE = 2048
SEEDS = (0, 1, 2024)
COARSE, STEP = 8192, 8
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module", params=SEEDS)
def world(request: pytest.FixtureRequest) -> World:
    return generate(request.param, -SIZE // 2, -SIZE // 3, SIZE, SIZE)


@pytest.fixture(scope="module", params=SEEDS)
def coarse(request: pytest.FixtureRequest) -> World:
    n = COARSE // STEP
    return generate(request.param, -COARSE // 2, -COARSE // 2, n, n, step=STEP)


def is_biome(world: World, name: str) -> np.ndarray:
    return world.biome == BIOMES.index(name)


# --- structure (coarse samples) --------------------------------------------------------------------


def test_water_covers_a_quarter_to_two_fifths(coarse: World) -> None:
    water = np.isin(coarse.biome, sorted(WATER_BIOMES)).mean()
    assert 0.25 <= water <= 0.40, water


def test_every_biome_covers_at_least_one_percent(coarse: World) -> None:
    shares = np.bincount(coarse.biome.ravel(), minlength=len(BIOMES)) / coarse.biome.size
    low = {BIOMES[i]: round(float(v), 4) for i, v in enumerate(shares) if v < 0.01}
    assert not low


def test_land_is_continents_not_confetti(coarse: World) -> None:
    land = ~np.isin(coarse.biome, sorted(WATER_BIOMES))
    assert largest_share(land, eight=True) > 0.5
    # Not a sea of islands either: few land masses hold nearly all the land.
    labels = components(land, eight=True)
    sizes = np.sort(np.bincount(labels[land]))[::-1]
    assert sizes[:10].sum() > 0.9 * land.sum()


# --- rules between neighbouring cells (full resolution) --------------------------------------------


def test_no_biome_borders_one_that_is_not_its_whittaker_neighbour(world: World) -> None:
    assert forbidden_adjacencies(world.biome) == 0


def test_rivers_reach_the_sea_a_lake_or_the_edge(world: World) -> None:
    river = is_biome(world, "river")
    assert river.mean() > 0.002
    assert river_connectivity(world.biome) >= 0.95


def test_no_river_lies_above_its_banks(world: World) -> None:
    assert rivers_above_banks(world.biome, world.elevation) == 0


def test_lakes_are_not_sea(world: World) -> None:
    lake = is_biome(world, "lake")
    assert lake.mean() > 0.002
    sea = np.isin(world.biome, sorted(SEA_BIOMES))
    assert np.array_equal(sea, (world.elevation < SEA_LEVEL) & ~lake)


def test_beaches_lie_beside_the_sea(world: World) -> None:
    sea = np.isin(world.biome, sorted(SEA_BIOMES))
    r = BEACH_REACH
    near = np.zeros_like(sea)
    h, w = sea.shape
    for dy in range(-r, r + 1):
        for dx in range(-r, r + 1):
            near[r : h - r, r : w - r] |= sea[r + dy : h - r + dy, r + dx : w - r + dx]
    beach = is_biome(world, "beach")
    inner = np.zeros_like(beach)
    inner[r : h - r, r : w - r] = True  # a border beach may have its sea outside the window
    assert beach[inner].any()
    assert not (beach & inner & ~near).any()


def test_snow_only_high_up_and_cold(world: World) -> None:
    snow = is_biome(world, "snow")
    assert snow.any()
    assert world.elevation[snow].min() >= SNOW_LEVEL
    assert world.temperature[snow].max() < SNOW_TEMPERATURE


def test_plains_hills_and_peaks_all_occur(coarse: World) -> None:
    counts = np.bincount(coarse.heights.ravel(), minlength=11)[1:] / coarse.heights.size
    assert (counts > 0.001).sum() >= 9, counts
    land = coarse.elevation[coarse.elevation >= SEA_LEVEL]
    assert np.median(land) < SEA_LEVEL + (1 - SEA_LEVEL) * 0.35
    assert (land > 0.8).mean() > 0.01


def test_creatures_only_in_their_habitats_fish_and_birds_on_rivers_and_lakes(world: World) -> None:
    c = world.creatures
    assert len(c) > 1000
    under = world.biome[c["y"] - world.y0, c["x"] - world.x0]
    table = np.zeros((len(SPECIES), len(BIOMES)), dtype=bool)
    for s, name in enumerate(SPECIES):
        table[s, sorted(HABITATS[name])] = True
    assert table[c["species"], under].all()
    assert set(np.unique(c["species"]).tolist()) == set(range(len(SPECIES)))
    inland_water = np.isin(under, [BIOMES.index("river"), BIOMES.index("lake")])
    names = {SPECIES[s] for s in np.unique(c["species"][inland_water]).tolist()}
    assert names == {"fish", "bird"}
