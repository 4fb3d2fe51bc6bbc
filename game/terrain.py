"""Terrain colouring: biome colours, hillshade and water depth as a uint8 RGBX image, plus its mip levels.

For drawing zoomed in, the same look comes apart into unshaded colours (``flat_colours``) and a smooth
brightness (``light``), which the renderer scales differently: borders rounded, shading interpolated.

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
# The X byte of a river pixel (others have 255); the display ignores X ("RGBX").
RIVER_MARK = 254
# Water depth bands of the unshaded colours (zoomed-in drawing).
DEPTH_BANDS = 6


def hillshade(elevation: npt.NDArray[np.float32], spacing: float = 1.0) -> npt.NDArray[np.float32]:
    """Brightness factors (about 0.55..1.35, flat ground 1) from the slope, lit from the north-west.

    ``spacing``: cells between two samples (the endless world's coarser levels sample every k-th cell),
    so the slope is per cell and a coarse level is lit like the fine one.

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
    slope *= np.float32(RELIEF * 0.7 / spacing)
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


def water_mask(biome: npt.NDArray[np.uint8], water_ids: frozenset[int]) -> npt.NDArray[np.bool_]:
    """Where ``biome`` is one of ``water_ids`` (one table lookup per cell)."""
    table = np.zeros(256, dtype=np.bool_)
    table[[i for i in water_ids if 0 <= i < 256]] = True
    mask: npt.NDArray[np.bool_] = table[biome]
    return mask


def colour_terrain(
    biome: npt.NDArray[np.uint8],
    elevation: npt.NDArray[np.float32],
    biome_names: tuple[str, ...],
    water_ids: frozenset[int],
    sea_level: float,
    *,
    spacing: float = 1.0,
) -> Image:
    """The world as an (H, W, 4) uint8 RGBX image: land lit by hillshade, water darkened with depth.

    Byte order R, G, B, X (X = 255) matches ``pygame.image.frombuffer(..., "RGBX")``. ``spacing``: cells
    between two samples (see :func:`hillshade`).
    """
    shade = hillshade(elevation, spacing)
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
    water = water_mask(biome, water_ids)
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
    # The X byte marks rivers (RIVER_MARK), so that the zoom levels keep them (see mip_levels).
    if "river" in biome_names:
        image[..., 3][biome == biome_names.index("river")] = RIVER_MARK
    return image


def flat_colours(
    biome: npt.NDArray[np.uint8],
    elevation: npt.NDArray[np.float32],
    biome_names: tuple[str, ...],
    water_ids: frozenset[int],
    sea_level: float,
) -> Image:
    """Unshaded RGBX colours: each biome's own colour, water in a few depth bands.

    Neighbouring cells of one biome (or depth band) have exactly the same colour, which is what lets an
    edge-aware upscaler (``pygame.transform.scale2x``) round the borders between them.
    """
    step = np.zeros(biome.shape, dtype=np.uint16)
    water = water_mask(biome, water_ids)
    if water.any():
        depth = np.clip((np.float32(sea_level) - elevation) * np.float32(1.0 / max(sea_level, 1e-6)), 0, 1)
        bands = np.floor(np.sqrt(depth) * DEPTH_BANDS) / DEPTH_BANDS  # few bands: smooth contours
        np.copyto(step, (bands * (STEPS - 1)).astype(np.uint16), where=water)
    np.copyto(step, np.uint16((1.0 - MIN_LIGHT) / (MAX_LIGHT - MIN_LIGHT) * (STEPS - 1)), where=~water)
    key = biome.astype(np.uint16)
    key <<= np.uint16(7)
    key |= step
    packed = _colour_table(biome_names, water_ids)[key]
    image: Image = packed.view(np.uint8).reshape(*biome.shape, 4)
    return image


def light(
    biome: npt.NDArray[np.uint8],
    elevation: npt.NDArray[np.float32],
    water_ids: frozenset[int],
    sea_level: float,
) -> Image:
    """Grey RGBX image of the land's brightness (hillshade and height), 128 = as in ``flat_colours``.

    Multiplying ``flat_colours`` by it (``BLEND_RGB_MULT``, then doubled) gives ``colour_terrain``'s look;
    being smooth, it can be scaled with interpolation without blurring any border.
    """
    shade = hillshade(elevation)
    rise = np.subtract(elevation, np.float32(sea_level))
    rise *= np.float32(0.16 / max(1.0 - sea_level, 1e-6))
    np.clip(rise, 0.0, 0.16, out=rise)
    rise += np.float32(0.92)
    shade *= rise
    shade[water_mask(biome, water_ids)] = 1.0
    grey = np.clip(shade * np.float32(128.0), 0, 255).astype(np.uint8)
    image: Image = np.empty((*biome.shape, 4), dtype=np.uint8)
    image[..., :3] = grey[..., None]
    image[..., 3] = 255
    return image


def mip_levels(image: Image, smallest: int = 96) -> list[Image]:
    """``image`` and its 2x reductions, down to one whose longer side is < 2 * ``smallest``.

    Each 2x2 block becomes the mean of its pixels, except that a block with a river pixel (X byte
    ``RIVER_MARK``) becomes the mean of its river pixels and stays marked: a river one cell wide is still
    one pixel wide at every zoom. The renderer draws a zoomed-out view from the level just finer than the
    zoom, so it never scales the whole 4096x4096 image on a frame.
    """
    levels = [np.ascontiguousarray(image)]
    while max(levels[-1].shape[:2]) >= 2 * smallest and min(levels[-1].shape[:2]) >= 4:
        prev = levels[-1]
        h, w = (prev.shape[0] // 2) * 2, (prev.shape[1] // 2) * 2
        quads = [prev[0:h:2, 0:w:2], prev[1:h:2, 0:w:2], prev[0:h:2, 1:w:2], prev[1:h:2, 1:w:2]]
        total = quads[0].astype(np.uint16)
        river_total = np.zeros(total.shape, dtype=np.uint16)
        rivers = np.zeros(total.shape[:2], dtype=np.uint16)
        for i, quad in enumerate(quads):
            if i:
                total += quad
            marked = quad[..., 3] == RIVER_MARK
            river_total[marked] += quad[marked]
            rivers += marked
        total += np.uint16(2)
        total >>= np.uint16(2)
        has = rivers > 0
        total[has] = river_total[has] // rivers[has][:, None]
        total[..., 3] = np.where(has, RIVER_MARK, 255)
        levels.append(total.astype(np.uint8))
    return levels
