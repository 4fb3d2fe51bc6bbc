"""Terrain colouring: biome colours, hillshade and water depth as a uint8 RGB image, plus its mip levels.

This module is numpy only (no pygame) because it runs in VM 1 right after the world is generated: the
expensive whole-world image work happens off the frame loop, and VM 0 just wraps the finished bytes in a
Surface. Everything is vectorised; no Python loop touches a cell.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from game import palette

Image = npt.NDArray[np.uint8]

# Vertical exaggeration for the hillshade: elevation is in [0, 1] over thousands of cells, so raw slopes
# are tiny; this makes hills read at 1 pixel per cell without turning plains noisy.
RELIEF = 90.0
# Light comes from the north-west, the cartographic convention, so hills do not look like valleys.
LIGHT = np.array([-1.0, -1.0, 1.4], dtype=np.float32)
LIGHT /= np.linalg.norm(LIGHT)


def hillshade(elevation: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
    """Brightness factors (about 0.55..1.3) from the slope of ``elevation`` lit from the north-west."""
    padded = np.pad(elevation, 1, mode="edge")
    dx = (padded[1:-1, 2:] - padded[1:-1, :-2]) * (RELIEF / 2)
    dy = (padded[2:, 1:-1] - padded[:-2, 1:-1]) * (RELIEF / 2)
    # Lambert shading of the surface normal (-dx, -dy, 1) against LIGHT, normalised so flat ground is 1.
    lit = (-dx * LIGHT[0] - dy * LIGHT[1] + LIGHT[2]) / np.sqrt(dx * dx + dy * dy + 1.0)
    shade: npt.NDArray[np.float32] = np.clip(lit / LIGHT[2], 0.55, 1.3).astype(np.float32)
    return shade


def colour_terrain(
    biome: npt.NDArray[np.uint8],
    elevation: npt.NDArray[np.float32],
    biome_names: tuple[str, ...],
    water_ids: frozenset[int],
    sea_level: float,
) -> Image:
    """The world as an (H, W, 3) uint8 RGB image: land lit by hillshade, water darkened with depth."""
    base = palette.biome_lut(biome_names)[biome].astype(np.float32)
    shade = hillshade(elevation)
    # Higher land within a biome is slightly lighter, so a large plateau still shows its relief.
    land_tint = 0.92 + 0.16 * np.clip((elevation - sea_level) / max(1.0 - sea_level, 1e-6), 0.0, 1.0)
    out = base * (shade * land_tint)[..., None]
    water_lut = np.zeros(256, dtype=bool)
    water_lut[list(water_ids)] = True
    water = water_lut[biome]
    if water.any():
        depth = np.clip((sea_level - elevation[water]) / max(sea_level, 1e-6), 0.0, 1.0) ** 0.6
        shallow = np.array(palette.SHALLOW_WATER, dtype=np.float32)
        deep = np.array(palette.DEEP_WATER, dtype=np.float32)
        water_rgb = shallow + (deep - shallow) * depth[:, None]
        # Keep a hint of the biome's own colour and a faint ripple of the sea floor's shading.
        water_rgb = 0.75 * water_rgb + 0.25 * base[water]
        out[water] = water_rgb * (0.94 + 0.06 * shade[water])[:, None]
    image: Image = np.clip(out, 0, 255).astype(np.uint8)
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
        quads = prev[:h, :w].reshape(h // 2, 2, w // 2, 2, 3).astype(np.uint16)
        levels.append(np.ascontiguousarray((quads.sum(axis=(1, 3)) + 2) // 4).astype(np.uint8))
    return levels
