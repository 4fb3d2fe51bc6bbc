"""The one biome palette, and the UI colours.

Every colour a biome is drawn in comes from here: the terrain image, the minimap and the legend all read
:func:`biome_lut`. The module depends on numpy only, so VM 1 can use it to colour the terrain while it
generates the world, without importing pygame.
"""

from __future__ import annotations

import zlib

import numpy as np
import numpy.typing as npt

RGB = tuple[int, int, int]

# Biome name -> base colour. Names cover what worldgen produces plus common synonyms, so a renamed biome
# still looks right; a name missing here gets a stable colour of its own (see biome_colour).
BIOME_COLOURS: dict[str, RGB] = {
    "deep_water": (22, 52, 118),
    "deep_ocean": (22, 52, 118),
    "ocean": (30, 70, 146),
    "shallow_water": (56, 122, 190),
    "lake": (52, 110, 180),
    "river": (60, 126, 196),
    "beach": (226, 210, 152),
    "desert": (222, 190, 118),
    "scorched": (150, 120, 96),
    "bare": (152, 142, 128),
    "savanna": (190, 186, 92),
    "shrubland": (150, 160, 98),
    "grassland": (124, 180, 78),
    "plains": (132, 184, 84),
    "forest": (52, 128, 60),
    "temperate_forest": (52, 128, 60),
    "rainforest": (26, 104, 62),
    "tropical_forest": (28, 112, 56),
    "jungle": (24, 108, 50),
    "swamp": (78, 102, 70),
    "marsh": (84, 110, 74),
    "taiga": (60, 104, 88),
    "boreal_forest": (60, 104, 88),
    "tundra": (158, 164, 140),
    "snow": (222, 230, 240),
    "ice": (210, 232, 246),
    "glacier": (214, 234, 248),
    "mountain": (128, 118, 112),
    "rock": (128, 118, 112),
    "alpine": (150, 146, 140),
    "hills": (120, 150, 86),
    "volcano": (96, 64, 60),
}

# How water looks at the coast and in the deepest ocean; depth blends between them.
SHALLOW_WATER: RGB = (64, 136, 200)
DEEP_WATER: RGB = (14, 36, 92)

# UI colours shared by the scenes and the HUD.
BACKGROUND: RGB = (16, 18, 26)
PANEL: RGB = (20, 24, 34)
PANEL_EDGE: RGB = (82, 96, 124)
TEXT: RGB = (230, 234, 240)
TEXT_DIM: RGB = (150, 160, 178)
ACCENT: RGB = (255, 196, 72)
GOOD: RGB = (112, 210, 120)
BAD: RGB = (236, 92, 84)


def biome_colour(name: str) -> RGB:
    """The colour of the biome called ``name``: from the table, else a stable colour made from the name."""
    if name in BIOME_COLOURS:
        return BIOME_COLOURS[name]
    # crc32, unlike hash(), is the same in every process, so VM 1 and VM 0 agree on the colour.
    code = zlib.crc32(name.encode())
    return (64 + code % 160, 64 + (code >> 8) % 160, 64 + (code >> 16) % 160)


def biome_lut(names: tuple[str, ...] | list[str]) -> npt.NDArray[np.uint8]:
    """A (256, 3) uint8 table: row ``i`` is the colour of biome id ``i`` (ids past the names are magenta)."""
    lut = np.empty((256, 3), dtype=np.uint8)
    lut[:] = (255, 0, 255)
    for index, name in enumerate(names[:256]):
        lut[index] = biome_colour(name)
    return lut


def pretty(name: str) -> str:
    """A biome or species name as a player reads it: ``shallow_water`` -> ``Shallow water``."""
    return name.replace("_", " ").capitalize()
