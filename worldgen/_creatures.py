"""Creature placement: a jittered grid keyed by world cells, so chunking never moves a creature.

The world is cut into ``CREATURE_CELL``-sized grid squares. Each square holds at most one creature, at
a hashed offset kept ``CREATURE_MARGIN`` cells away from the square's edges, so two creatures are always
at least ``MIN_CREATURE_SPACING`` cells apart (Chebyshev). Whether the square is populated and which
species stands there (among those whose habitat is the biome under it) also come from the hash. A
creature belongs to the chunk that contains its cell, and its id is its grid square, so ids are stable
and unique.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import numpy.typing as npt

from ._biomes import (
    BEACH,
    BIOMES,
    DESERT,
    FOREST,
    GRASSLAND,
    LAKE,
    MOUNTAIN,
    RAINFOREST,
    RIVER,
    SAVANNA,
    SNOW,
    SWAMP,
    TAIGA,
    TUNDRA,
    WATER_BIOMES,
)
from ._hash import derive_key, hash2, unit_float

SPECIES: tuple[str, ...] = ("wolf", "bear", "fish", "bird", "lizard")

_LAND = frozenset(range(len(BIOMES))) - WATER_BIOMES
# Species name -> biome ids where it may stand. Birds take any land, rivers and lakes, and fish any
# water, so every biome hosts at least one species (checked below) and a populated grid square can
# always be filled.
HABITATS: dict[str, frozenset[int]] = {
    "wolf": frozenset({FOREST, GRASSLAND, TAIGA, TUNDRA, MOUNTAIN}),
    "bear": frozenset({FOREST, TAIGA, MOUNTAIN, TUNDRA, SNOW, SWAMP, RAINFOREST}),
    "fish": WATER_BIOMES,
    "bird": _LAND | {RIVER, LAKE},
    "lizard": frozenset({DESERT, SAVANNA, BEACH}),  # dry, warm land only
}

CREATURE_DTYPE = np.dtype([("id", "<u8"), ("species", "u1"), ("x", "<i4"), ("y", "<i4")])

CREATURE_CELL = 16
CREATURE_MARGIN = 2
MIN_CREATURE_SPACING = 2 * CREATURE_MARGIN
CREATURE_DENSITY = 0.5  # chance that a grid square holds a creature

_SALT = 0xC2EA7
# HABITAT_TABLE[biome, species] is True where the species may stand.
HABITAT_TABLE = np.zeros((len(BIOMES), len(SPECIES)), dtype=np.bool_)
for _s, _name in enumerate(SPECIES):
    HABITAT_TABLE[sorted(HABITATS[_name]), _s] = True
# Every biome must host some species, or a populated square could not be filled.
assert HABITAT_TABLE.any(axis=1).all()


def pick_species(biome: npt.NDArray[np.uint8], u: npt.NDArray[np.float64]) -> npt.NDArray[np.uint8]:
    """For each point, the species chosen uniformly by ``u`` in [0, 1) among those living in its biome."""
    fits = HABITAT_TABLE[biome]  # (n, species)
    count = fits.sum(axis=1)
    rank = (u * count).astype(np.int64)  # which of the fitting species, 0..count-1
    # The species whose running count of fits first exceeds rank.
    chosen: npt.NDArray[np.uint8] = np.argmax(np.cumsum(fits, axis=1) > rank[:, None], axis=1).astype(
        np.uint8
    )
    return chosen


BiomeAt = Callable[[npt.NDArray[np.int64], npt.NDArray[np.int64]], npt.NDArray[np.uint8]]


def place(seed: int, x0: int, y0: int, width: int, height: int, biome_at: BiomeAt) -> npt.NDArray[np.void]:
    """Creatures standing in the cells [x0, x0 + width) x [y0, y0 + height), sorted by id.

    ``biome_at(x, y)`` gives the biome under world cells (int64 arrays).
    """
    c = CREATURE_CELL
    gx = np.arange(x0 // c, (x0 + width - 1) // c + 1, dtype=np.int64)
    gy = np.arange(y0 // c, (y0 + height - 1) // c + 1, dtype=np.int64)
    key = derive_key(seed, _SALT)
    span = c - 2 * CREATURE_MARGIN
    hx = hash2(derive_key(key, 1), gx[None, :], gy[:, None])
    hy = hash2(derive_key(key, 2), gx[None, :], gy[:, None])
    hs = hash2(derive_key(key, 3), gx[None, :], gy[:, None])
    x = gx[None, :] * c + CREATURE_MARGIN + (hx % np.uint64(span)).astype(np.int64)
    y = gy[:, None] * c + CREATURE_MARGIN + (hy % np.uint64(span)).astype(np.int64)
    alive = (unit_float(hs) < CREATURE_DENSITY) & (x >= x0) & (x < x0 + width) & (y >= y0) & (y < y0 + height)
    # Row-major over (gy, gx), which is also id order.
    xs, ys = x[alive], y[alive]
    gxs = np.broadcast_to(gx[None, :], alive.shape)[alive]
    gys = np.broadcast_to(gy[:, None], alive.shape)[alive]
    under = biome_at(xs, ys)
    species = pick_species(under, unit_float(hash2(derive_key(key, 4), gxs, gys)))
    out = np.empty(xs.size, dtype=CREATURE_DTYPE)
    out["id"] = creature_id(gxs, gys)
    out["species"] = species
    out["x"] = xs
    out["y"] = ys
    return out


def creature_id(gx: npt.NDArray[np.int64], gy: npt.NDArray[np.int64]) -> npt.NDArray[np.uint64]:
    """Stable unique id of a grid square: (gy + 2**31) in the high 32 bits, (gx + 2**31) in the low."""
    off = np.int64(1 << 31)
    return (((gy + off) << np.int64(32)) | (gx + off)).view(np.uint64)
