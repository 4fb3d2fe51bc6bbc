"""Deterministic, seamless world generation with numpy: continents, rivers, lakes and climates.

``generate(seed, x0, y0, width, height, step=1)`` returns a ``World`` region as numpy arrays sampled at
cells ``(x0 + i * step, y0 + j * step)``: elevation, moisture and temperature (float32 in [0, 1]), the
river field (float32, signed distance to the nearest river bank), biome ids (uint8, indices into
``BIOMES``, including ``river`` and ``lake``), heights 1..10 and creatures (a ``CREATURE_DTYPE``
structured array). Every value is a pure function of the seed and the world cell (integer hashing, no
global RNG), so a world generated whole or in chunks, in any order, in any process or at any step, is
bit-identical. ``gen_world`` is the seed example's entry point, returning plain Python data. This
package depends on numpy only: never on pygame or runtime.
"""

from ._biomes import BIOMES, FORBIDDEN_NEIGHBOURS, SEA_BIOMES, SEA_LEVEL, SNOW_LEVEL, WATER_BIOMES
from ._checks import DEFAULT_MEMORY_LIMIT
from ._creatures import CREATURE_DTYPE, HABITATS, MIN_CREATURE_SPACING, SPECIES
from ._generate import World, estimated_bytes, generate
from ._rivers import RIVER_FAR
from .seedcompat import gen_world

__all__ = [
    "BIOMES",
    "CREATURE_DTYPE",
    "DEFAULT_MEMORY_LIMIT",
    "FORBIDDEN_NEIGHBOURS",
    "HABITATS",
    "MIN_CREATURE_SPACING",
    "RIVER_FAR",
    "SEA_BIOMES",
    "SEA_LEVEL",
    "SNOW_LEVEL",
    "SPECIES",
    "WATER_BIOMES",
    "World",
    "estimated_bytes",
    "gen_world",
    "generate",
]
