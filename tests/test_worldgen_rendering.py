"""How the game draws what worldgen adds: rivers at every zoom level, and the zoomed-in split look."""

from __future__ import annotations

import numpy as np

import worldgen
from game import terrain


def coloured(seed: int, size: int) -> tuple[worldgen.World, np.ndarray]:
    world = worldgen.generate(seed, -size // 2, -size // 2, size, size)
    image = terrain.colour_terrain(
        world.biome, world.elevation, worldgen.BIOMES, worldgen.WATER_BIOMES, worldgen.SEA_LEVEL
    )
    return world, image


def test_every_zoom_level_keeps_every_river() -> None:
    world, image = coloured(3, 1024)
    river = world.biome == worldgen.BIOMES.index("river")
    assert river.mean() > 0.002
    levels = terrain.mip_levels(image)
    assert len(levels) >= 3
    for k, level in enumerate(levels):
        f = 1 << k
        h, w = level.shape[:2]
        # A block of the level is marked as river exactly when it covers a river cell.
        blocks = river[: h * f, : w * f].reshape(h, f, w, f).any(axis=(1, 3))
        marked = level[..., 3] == terrain.RIVER_MARK
        assert np.array_equal(marked, blocks), k
        # And it is drawn in a river's blue, not averaged away into the land around it.
        colour = level[..., :3][marked].astype(int)
        assert (colour[:, 2] > colour[:, 0] + 40).mean() > 0.95


def test_flat_colours_times_light_give_the_terrain_colours() -> None:
    world, image = coloured(4, 256)
    flat = terrain.flat_colours(
        world.biome, world.elevation, worldgen.BIOMES, worldgen.WATER_BIOMES, worldgen.SEA_LEVEL
    )
    light = terrain.light(world.biome, world.elevation, worldgen.WATER_BIOMES, worldgen.SEA_LEVEL)
    land = ~np.isin(world.biome, sorted(worldgen.WATER_BIOMES))
    # On land, the flat colour is the biome's colour at light 1 and the light carries the shading.
    product = flat[..., :3].astype(float) * light[..., :1] / 128.0
    assert np.abs(product[land] - image[..., :3][land]).mean() < 4.0
    # Within one biome the flat colours are exactly equal, which lets scale2x round its borders.
    forest = world.biome == worldgen.BIOMES.index("forest")
    if forest.any():
        assert len(np.unique(flat[forest].view(np.uint32))) == 1
