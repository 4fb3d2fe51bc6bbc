"""Terrain colouring: biome colours, hillshade and water depth as a uint8 RGBX image, plus its mip levels.

This module is numpy only (no pygame) because it runs in VM 1 right after the world is generated: the
expensive whole-world image work happens off the frame loop, and VM 0 just wraps the finished bytes in a
Surface. Everything is vectorised; no Python loop touches a cell.
"""

from __future__ import annotations

import functools

import numpy as np
import numpy.typing as npt

from game import palette

Image = npt.NDArray[np.uint8]

# Vertical exaggeration for the hillshade: elevation is in [0, 1] over thousands of cells, so raw slopes
# are tiny; this makes hills read at 1 pixel per cell without turning plains noisy.
RELIEF = 60.0
# Brightness is quantised to this many steps (1.6% apart: no visible banding) so that colouring the whole
# world is one table lookup per cell instead of a dozen float passes per colour channel.
STEPS = 128
MIN_LIGHT, MAX_LIGHT = 0.5, 1.5


def hillshade(elevation: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
    """Brightness factors (about 0.55..1.35, flat ground 1) from the slope, lit from the north-west.

    A linearised Lambert term: a slope rising towards the south-east faces the light and is brighter.
    Light from the north-west is the cartographic convention, so hills never read as valleys.
    """
    # A world one cell wide (or high) is valid, and has no slope across that axis; np.gradient needs at
    # least two cells along every axis it differentiates.
    axes = [axis for axis in range(elevation.ndim) if elevation.shape[axis] >= 2]
    slope: npt.NDArray[np.float32]
    if len(axes) == 2:
        gy, gx = np.gradient(elevation)
        slope = np.add(gx, gy, dtype=np.float32)
    elif axes:
        slope = np.asarray(np.gradient(elevation, axis=axes[0]), dtype=np.float32)
    else:
        slope = np.zeros(elevation.shape, dtype=np.float32)
    slope *= np.float32(RELIEF * 0.7)
    slope += np.float32(1.0)
    np.clip(slope, np.float32(0.55), np.float32(1.35), out=slope)
    return slope


@functools.cache  # the same few arguments for every chunk of the endless world: 1.3 ms a chunk saved
def _colour_table(biome_names: tuple[str, ...], water_ids: frozenset[int]) -> npt.NDArray[np.uint32]:
    """RGBX colours packed in uint32, indexed by ``biome_id * STEPS + step``.

    For land the step is the brightness (``MIN_LIGHT``..``MAX_LIGHT``), for water the depth (shallow to
    deep), so one lookup gives each cell its final colour.
    """
    base = palette.biome_lut(biome_names).astype(np.float32)  # (256, 3)
    steps = np.arange(STEPS, dtype=np.float32) / (STEPS - 1)
    light = MIN_LIGHT + (MAX_LIGHT - MIN_LIGHT) * steps  # (STEPS,)
    table = base[:, None, :] * light[None, :, None]  # (256, STEPS, 3)
    shallow = np.array(palette.SHALLOW_WATER, dtype=np.float32)
    deep = np.array(palette.DEEP_WATER, dtype=np.float32)
    water_by_depth = shallow + (deep - shallow) * steps[:, None]  # (STEPS, 3)
    for index in water_ids:
        if 0 <= index < 256:
            # Keep a hint of the biome's own colour, so shallow water and ocean still differ.
            table[index] = 0.75 * water_by_depth + 0.25 * base[index]
    rgb = np.clip(np.rint(table), 0, 255).astype(np.uint32)
    opaque = np.uint32(0xFF << 24)
    packed = rgb[..., 0] | (rgb[..., 1] << np.uint32(8)) | (rgb[..., 2] << np.uint32(16)) | opaque
    flat: npt.NDArray[np.uint32] = packed.reshape(-1).astype(np.uint32)
    flat.setflags(write=False)  # shared by every later call
    return flat


def colour_terrain(
    biome: npt.NDArray[np.uint8],
    elevation: npt.NDArray[np.float32],
    biome_names: tuple[str, ...],
    water_ids: frozenset[int],
    sea_level: float,
) -> Image:
    """The world as an (H, W, 4) uint8 RGBX image: land lit by hillshade, water darkened with depth.

    Byte order R, G, B, X (X = 255) matches ``pygame.image.frombuffer(..., "RGBX")``.
    """
    shade = hillshade(elevation)
    # Higher land is slightly lighter, so a large plateau still shows its relief.
    rise = np.subtract(elevation, np.float32(sea_level))
    rise *= np.float32(0.16 / max(1.0 - sea_level, 1e-6))
    np.clip(rise, 0.0, 0.16, out=rise)
    rise += np.float32(0.92)
    shade *= rise
    light = shade
    light -= np.float32(MIN_LIGHT)
    light *= np.float32((STEPS - 1) / (MAX_LIGHT - MIN_LIGHT))
    np.clip(light, 0, STEPS - 1, out=light)
    step = light.astype(np.uint16)
    water_lut = np.zeros(256, dtype=bool)
    water_lut[[i for i in water_ids if 0 <= i < 256]] = True
    water = water_lut[biome]
    if water.any():
        depth = np.subtract(np.float32(sea_level), elevation)
        depth *= np.float32(1.0 / max(sea_level, 1e-6))
        np.clip(depth, 0.0, 1.0, out=depth)
        np.sqrt(depth, out=depth)  # deepen quickly off the coast, then slowly
        depth *= np.float32(STEPS - 1)
        np.copyto(step, depth.astype(np.uint16), where=water)
    key = biome.astype(np.uint16)
    key <<= np.uint16(7)  # STEPS == 128
    key |= step
    packed = _colour_table(biome_names, water_ids)[key]
    image: Image = packed.view(np.uint8).reshape(*biome.shape, 4)
    return image


def mip_levels(image: Image, smallest: int = 96) -> list[Image]:
    """``image`` and its 2x box-filtered reductions, down to one whose longer side is < 2 * ``smallest``.

    The renderer draws a zoomed-out view from the level just finer than the zoom, so it never scales the
    whole 4096x4096 image on a frame.
    """
    levels = [np.ascontiguousarray(image)]
    while max(levels[-1].shape[:2]) >= 2 * smallest and min(levels[-1].shape[:2]) >= 4:
        prev = levels[-1]
        h, w = (prev.shape[0] // 2) * 2, (prev.shape[1] // 2) * 2
        total = prev[0:h:2, 0:w:2].astype(np.uint16)
        total += prev[1:h:2, 0:w:2]
        total += prev[0:h:2, 1:w:2]
        total += prev[1:h:2, 1:w:2]
        total += np.uint16(2)
        total >>= np.uint16(2)
        levels.append(total.astype(np.uint8))
    return levels
