"""worldgen quality over 2048x2048 samples for five seeds (one cached generation per seed).

Water 25-40% of cells, every biome >= 1%, beaches next to water, snow only high up, creatures only in
their habitats, and a redistributed elevation in which plains, hills and peaks all occur.
"""

from __future__ import annotations

import numpy as np
import pytest

from worldgen import BIOMES, HABITATS, SEA_LEVEL, SNOW_LEVEL, SPECIES, WATER_BIOMES, World, generate
from worldgen._biomes import BEACH_REACH

SIZE = 2048
SEEDS = (0, 1, 2024, 31337, 2**33 + 5)
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module", params=SEEDS)
def world(request: pytest.FixtureRequest) -> World:
    return generate(request.param, -SIZE // 2, -SIZE // 3, SIZE, SIZE)


def fractions(world: World) -> np.ndarray:
    return np.bincount(world.biome.ravel(), minlength=len(BIOMES)) / world.biome.size


def test_water_covers_a_quarter_to_two_fifths(world: World) -> None:
    water = fractions(world)[sorted(WATER_BIOMES)].sum()
    assert 0.25 <= water <= 0.40, water


def test_every_biome_covers_at_least_one_percent(world: World) -> None:
    f = fractions(world)
    low = {BIOMES[i]: round(float(v), 4) for i, v in enumerate(f) if v < 0.01}
    assert not low


def test_beaches_touch_water(world: World) -> None:
    water = np.isin(world.biome, sorted(WATER_BIOMES))
    r = BEACH_REACH
    near = np.zeros_like(water)
    h, w = water.shape
    for dy in range(-r, r + 1):
        for dx in range(-r, r + 1):
            near[r : h - r, r : w - r] |= water[r + dy : h - r + dy, r + dx : w - r + dx]
    beach = world.biome == BIOMES.index("beach")
    inner = np.zeros_like(beach)
    inner[r : h - r, r : w - r] = True  # a border beach may have its water outside the sample
    assert beach[inner].any()
    assert not (beach & inner & ~near).any()


def test_snow_only_high_up_and_water_only_below_sea_level(world: World) -> None:
    assert SNOW_LEVEL >= 0.8
    snow = world.biome == BIOMES.index("snow")
    assert world.elevation[snow].min() >= SNOW_LEVEL
    water = np.isin(world.biome, sorted(WATER_BIOMES))
    assert np.array_equal(water, world.elevation < SEA_LEVEL)


def test_plains_hills_and_peaks_all_occur(world: World) -> None:
    counts = np.bincount(world.heights.ravel(), minlength=11)[1:] / world.heights.size
    assert (counts > 0.001).sum() >= 9, counts  # nearly all of the ten heights occur
    land = world.elevation[world.elevation >= SEA_LEVEL]
    # Redistribution: more lowland than a straight line would give, yet real peaks.
    assert np.median(land) < SEA_LEVEL + (1 - SEA_LEVEL) * 0.3
    assert (land > 0.8).mean() > 0.02


def test_creatures_only_in_their_habitats(world: World) -> None:
    c = world.creatures
    assert len(c) > 1000
    under = world.biome[c["y"] - world.y0, c["x"] - world.x0]
    table = np.zeros((len(SPECIES), len(BIOMES)), dtype=bool)
    for s, name in enumerate(SPECIES):
        table[s, sorted(HABITATS[name])] = True
    assert table[c["species"], under].all()
    assert set(np.unique(c["species"]).tolist()) == set(range(len(SPECIES)))
