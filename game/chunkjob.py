"""One chunk of the endless world, generated and coloured: the job the pool's VMs run.

A chunk is ``CHUNK`` x ``CHUNK`` samples. At level ``L`` a sample is every ``2**L``-th cell (the level of
detail for zoomed-out views), so a level-``L`` chunk covers ``CHUNK * 2**L`` cells on a side. Chunk
``(L, cx, cy)`` starts at cell ``(cx * span, cy * span)`` with ``span = CHUNK * 2**L``.

Colouring reads neighbours (the hillshade's slope), so a region is generated with a one-sample halo and
the halo cropped after colouring: a chunk's pixels are then exactly those of the same area generated and
coloured in one piece, and chunks tile without seams. This module imports numpy, worldgen and the
game's numpy-only colouring, never pygame: VM jobs import it.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import numpy.typing as npt

import worldgen
from game.worlddata import colour_world, rivers_between_samples

CHUNK = 128
"""Samples on a chunk's side."""
THUMB = 4
"""Pixels on a side of a chunk's thumbnail for the minimap of what was seen."""
WORLD_LIMIT = 1 << 31
"""World cells lie in [-2**31, 2**31) on both axes (worldgen's int32 coordinates)."""
HALO = 1

ChunkKey = tuple[int, int, int]
"""``(level, cx, cy)``."""


MAX_LEVEL = 4
"""The coarsest level of detail: samples 16 cells apart, a view 20,480 cells wide at 1280 pixels.

Measured per chunk here (before coarse chunks stopped asking worldgen for creatures, which only level 0
draws): 15 ms at level 0, 20-22 at 1-2, about 90 at 3-4, 360 at 5 and 1,300 at 6, where the creature
placement over the chunk's whole area took most of it."""


def max_level() -> int:
    """The coarsest level of detail the camera may ask for."""
    return MAX_LEVEL


def span(level: int) -> int:
    """Cells on a side of a level-``level`` chunk."""
    return CHUNK << level


def in_world(key: ChunkKey) -> bool:
    """Whether chunk ``key`` lies wholly inside the world's int32 coordinate range."""
    level, cx, cy = key
    size = span(level)
    return all(c * size >= -WORLD_LIMIT and (c + 1) * size <= WORLD_LIMIT for c in (cx, cy))


@dataclass(frozen=True, eq=False)
class ChunkData:
    """A generated, coloured chunk, as VM 0 receives it."""

    seed: int
    key: ChunkKey
    image: npt.NDArray[np.uint8]
    """(CHUNK, CHUNK, 4) RGBX, one pixel per sample: wrapped in a Surface as is."""
    biome: npt.NDArray[np.uint8]
    """(CHUNK, CHUNK) biome ids, for the creatures' habitats and the tooltip."""
    creatures: npt.NDArray[np.void]
    """worldgen's creature records inside the chunk (level 0 only; empty above it)."""
    thumb: npt.NDArray[np.uint8]
    """(THUMB, THUMB, 3) RGB means, for the minimap."""
    seconds: float

    @property
    def nbytes(self) -> int:
        return int(self.image.nbytes + self.biome.nbytes + self.creatures.nbytes + self.thumb.nbytes)


Region = Callable[[int, int, int, int, int], tuple[worldgen.World, "npt.NDArray[np.bool_] | None"]]
"""``(x0, y0, columns, rows, step) -> (world, known)``: samples of a world, and where they are known
(None: everywhere; a baked store knows only its baked cells)."""

OUTSIDE_PIXEL = (10, 10, 14)
"""Where a baked world has no cells: the same dark as past the int32 world's edge."""


def _generated(seed: int) -> Region:
    def region(x0: int, y0: int, cols: int, rows: int, step: int) -> tuple[worldgen.World, None]:
        # Creatures are drawn from the fine chunks only: a coarse one would place them over its whole
        # area (at a step of 4, a quarter of its time) just to drop them.
        return worldgen.generate(seed, x0, y0, cols, rows, step=step, creatures=step == 1), None

    return region


@functools.cache
def _store(path: str) -> Any:
    """The baked store at ``path``, opened once per process (Zarr, imported only for baked worlds)."""
    from worldgen.bake import open_baked

    return open_baked(path)


def _baked(path: str) -> Region:
    store = _store(path)

    def region(x0: int, y0: int, cols: int, rows: int, step: int) -> tuple[worldgen.World, Any]:
        read = store.read(x0, y0, (cols - 1) * step + 1, (rows - 1) * step + 1)
        fields = {
            name: getattr(read.world, name)[::step, ::step]
            for name in ("elevation", "moisture", "temperature", "biome", "heights", "river")
        }
        known = read.baked[::step, ::step]
        # No creature's habitat: unknown cells read biome 0, where fish would otherwise swim off the map.
        fields["biome"] = np.where(known, fields["biome"], np.uint8(255))
        return replace(read.world, **fields), known

    return region


def colour_region(
    seed: int, x0: int, y0: int, width: int, height: int, step: int = 1, *, source: Region | None = None
) -> tuple[npt.NDArray[np.uint8], worldgen.World]:
    """The RGBX image of ``width`` x ``height`` samples every ``step`` cells from cell ``(x0, y0)``, and
    the World they came from (with a halo of ``HALO`` samples around them).

    Where the halo would leave the world's coordinate range, the edge samples are repeated instead.
    ``source`` reads the samples (default: generate world ``seed``); where it does not know them (a baked
    world's unbaked cells) the image is :data:`OUTSIDE_PIXEL`.
    """
    reach = HALO * step
    lo_x, lo_y = max(x0 - reach, -WORLD_LIMIT), max(y0 - reach, -WORLD_LIMIT)
    hi_x = min(x0 + (width + HALO) * step, WORLD_LIMIT)
    hi_y = min(y0 + (height + HALO) * step, WORLD_LIMIT)
    cols, rows = -(-(hi_x - lo_x) // step), -(-(hi_y - lo_y) // step)
    world, known = (source or _generated(seed))(lo_x, lo_y, cols, rows, step)
    image = colour_world(
        rivers_between_samples(world.biome, world.river, step), world.elevation, spacing=step
    )
    if known is not None:
        image[~known] = (*OUTSIDE_PIXEL, 255)
    left, top = (x0 - lo_x) // step, (y0 - lo_y) // step
    cropped = image[top : top + height, left : left + width]
    if cropped.shape[:2] != (height, width):  # at the world's edge: no halo there, pad to the region
        pad = ((0, height - cropped.shape[0]), (0, width - cropped.shape[1]), (0, 0))
        cropped = np.pad(cropped, pad, mode="edge")
    return np.ascontiguousarray(cropped), world


def build_chunk(seed: int, level: int, cx: int, cy: int) -> ChunkData:
    """Generate and colour chunk ``(level, cx, cy)`` of world ``seed``: the job a pool VM runs."""
    return _chunk(seed, level, cx, cy, None)


def build_baked_chunk(path: str, level: int, cx: int, cy: int) -> ChunkData:
    """Read and colour chunk ``(level, cx, cy)`` of the baked world at ``path`` (a pool VM's job); its
    cells outside the baked area are dark, a clear edge."""
    return _chunk(int(_store(path).seed), level, cx, cy, _baked(path))


def _chunk(seed: int, level: int, cx: int, cy: int, source: Region | None) -> ChunkData:
    start = time.perf_counter()
    step = 1 << level
    size = span(level)
    x0, y0 = cx * size, cy * size
    image, world = colour_region(seed, x0, y0, CHUNK, CHUNK, step, source=source)
    left, top = (x0 - world.x0) // step, (y0 - world.y0) // step
    biome = np.ascontiguousarray(world.biome[top : top + CHUNK, left : left + CHUNK])
    if biome.shape != (CHUNK, CHUNK):
        biome = np.pad(biome, ((0, CHUNK - biome.shape[0]), (0, CHUNK - biome.shape[1])), mode="edge")
    records = world.creatures
    if level == 0:
        inside = (
            (records["x"] >= x0)
            & (records["x"] < x0 + size)
            & (records["y"] >= y0)
            & (records["y"] < y0 + size)
        )
        creatures = records[inside]
    else:
        creatures = records[:0]
    block = CHUNK // THUMB
    thumb = image[..., :3].reshape(THUMB, block, THUMB, block, 3).mean(axis=(1, 3)).astype(np.uint8)
    return ChunkData(seed, (level, cx, cy), image, biome, creatures, thumb, time.perf_counter() - start)
