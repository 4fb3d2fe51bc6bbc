"""gen_world(): the seed example's entry point, kept signature for signature, built on generate().

It returns plain Python data (names, a flat list of heights, creature dicts), as the seed's ComputeThread
example expects. The world is reduced to the first ``biome_count`` biomes (each biome falls back to a
stand-in among them), and exactly ``creature_count`` creatures are placed on cells ranked by an integer
hash, each of a species that lives in the (reduced) biome under it.
"""

from __future__ import annotations

import secrets
from typing import Any

import numpy as np

from . import _checks
from ._biomes import BIOMES, reduction_table
from ._creatures import SPECIES, pick_species
from ._generate import estimated_bytes, generate
from ._hash import derive_key, hash2, unit_float

_SALT = 0x5EEDC0
# Beyond generate()'s estimate: once it returns, the World (14 bytes per cell), the reduced biomes (1), the
# terrain list (8) and the creature ranking's hashes, temporaries and indices (24) are held at once, 59
# bytes per cell with allocator slack, of which generate()'s estimate covers at least 32; and roughly one
# dict (with its small ints) per creature.
_BYTES_PER_TERRAIN_CELL = 27
_BYTES_PER_CREATURE = 400


def gen_world(
    biome_count: int,
    terrain_size: tuple[int, int],
    creature_count: int,
    seed: int | None = None,
    *,
    memory_limit: int | None = None,
) -> dict[str, Any]:
    """The seed example's world: ``{"biomes", "terrain", "creatures", "seed"}`` as plain Python data.

    ``terrain_size`` is ``(width, height)``. ``"biomes"`` is ``BIOMES[:biome_count]`` (forest, desert,
    ocean, mountain, swamp, ...); ``"terrain"`` is the row-major list of ``width * height`` heights
    1..10; ``"creatures"`` holds exactly ``creature_count`` dicts ``{"name", "x", "y"}`` with
    ``0 <= x < width``, ``0 <= y < height``, each in a biome its species lives in. ``seed=None`` picks
    a random seed, returned as ``"seed"``. The same arguments and seed always give the same dict.
    """
    count = _checks.as_int("biome_count", biome_count)
    if not 1 <= count <= len(BIOMES):
        raise ValueError(f"biome_count must be between 1 and {len(BIOMES)}, got {count}")
    if not isinstance(terrain_size, tuple | list) or len(terrain_size) != 2:
        raise TypeError(f"terrain_size must be a (width, height) pair of ints, got {terrain_size!r}")
    width = _checks.positive_int("terrain_size width", terrain_size[0])
    height = _checks.positive_int("terrain_size height", terrain_size[1])
    n = _checks.as_int("creature_count", creature_count)
    if n < 0:
        raise ValueError(f"creature_count must be >= 0, got {n}")
    seed = secrets.randbits(63) if seed is None else _checks.as_int("seed", seed)
    _checks.region(0, 0, width, height)
    needed = (
        estimated_bytes(width, height) + width * height * _BYTES_PER_TERRAIN_CELL + n * _BYTES_PER_CREATURE
    )
    _checks.memory(needed, memory_limit, f"gen_world with {width}x{height} cells and {n} creatures")

    world = generate(seed, 0, 0, width, height, memory_limit=memory_limit)
    biome = reduction_table(count)[world.biome]
    return {
        "biomes": list(BIOMES[:count]),
        "terrain": world.heights.ravel().tolist(),
        "creatures": _creatures(seed, biome, n),
        "seed": seed,
    }


def _creatures(seed: int, biome: np.ndarray[Any, np.dtype[np.uint8]], n: int) -> list[dict[str, Any]]:
    """``n`` creatures on the cells with the smallest hashes (cycling through all cells if n > cells)."""
    if n == 0:
        return []
    height, width = biome.shape
    cells = width * height
    key = derive_key(seed, _SALT)
    rank = hash2(key, np.arange(width, dtype=np.int64)[None, :], np.arange(height, dtype=np.int64)[:, None])
    flat = rank.ravel()
    if n < cells:
        order = np.argpartition(flat, n)[:n]
        order = order[np.argsort(flat[order], kind="stable")]
    else:
        order = np.argsort(flat, kind="stable")
    picks = order[np.arange(n) % cells]
    ys, xs = np.divmod(picks, width)
    # Round r of the cycle gets its own species draw, so repeated cells need not repeat species.
    rounds = np.arange(n, dtype=np.int64) // cells
    u = unit_float(hash2(derive_key(key, 1), picks.astype(np.int64), rounds))
    species = pick_species(biome.ravel()[picks], u)
    names = [SPECIES[s] for s in species.tolist()]
    return [
        {"name": name, "x": x, "y": y} for name, x, y in zip(names, xs.tolist(), ys.tolist(), strict=True)
    ]
