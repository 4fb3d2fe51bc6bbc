"""What VM 1 sends back to VM 0: the generated world, already coloured, in one picklable object.

:func:`build_world_data` is the job VM 1 runs (``submit_call("game.worlddata.build_world_data", ...)``).
It generates the world with ``worldgen``, colours it (:mod:`game.terrain`) and builds the zoom levels, so
VM 0's only work when the result arrives is wrapping the arrays in Surfaces. Only numpy and worldgen are
imported here: VM 1 never loads pygame.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

import worldgen
from game import terrain

Progress = Callable[[float, str], object]

# Share of the job's progress bar taken by generation; colouring and zoom levels take the rest.
GENERATION_SHARE = 0.8


@dataclass(frozen=True, eq=False)
class WorldData:
    """A generated world ready to draw. Arrays are (height, width), indexed ``[y, x]`` in world cells."""

    seed: int
    x0: int
    y0: int
    biome_names: tuple[str, ...]
    water_ids: frozenset[int]
    species_names: tuple[str, ...]
    habitats: dict[str, frozenset[int]]
    biome: npt.NDArray[np.uint8]
    heights: npt.NDArray[np.uint8]
    elevation: npt.NDArray[np.float32]
    moisture: npt.NDArray[np.float32]
    creatures: npt.NDArray[np.void]
    biome_counts: npt.NDArray[np.int64]
    """Cells per biome id, for the legend (counted here so VM 0 does not scan the map on arrival)."""
    levels: tuple[npt.NDArray[np.uint8], ...]
    """The RGB image (level 0, one pixel per cell) and its 2x reductions."""
    seconds: float
    """Time VM 1 spent on the whole job (generation, colouring, zoom levels)."""

    @property
    def width(self) -> int:
        """World width in cells."""
        return int(self.biome.shape[1])

    @property
    def height(self) -> int:
        """World height in cells."""
        return int(self.biome.shape[0])


def tune_vm() -> None:
    """Make this process kind to VM 0's frame pacing: VM 1 runs it at start (see ``VM_SETUP``).

    It turns off numpy's huge-page advice (:func:`no_huge_pages`) and lowers the process's priority a
    little: background work yields to the frame loop when both want the same core.
    """
    no_huge_pages()
    if hasattr(os, "nice"):
        os.nice(5)


def no_huge_pages() -> None:
    """Stop numpy asking for transparent huge pages for this process's large arrays.

    numpy asks the kernel for transparent huge pages for large arrays (``madvise(MADV_HUGEPAGE)``).
    Measured here, while another process allocates and frees 64 MiB arrays that way, the frame loop's
    sleeps wake up to 3-5 ms late (p99 frame 20 ms, some frames over 20 ms); with it off the same load
    leaves p99 at 16.7 ms. Generation is no slower for it. ``NUMPY_MADVISE_HUGEPAGE=0`` in the
    environment does the same, but only before numpy is imported, and VMs fork with numpy imported.
    """
    setter = getattr(getattr(getattr(np, "_core", None), "multiarray", None), "_set_madvise_hugepage", None)
    if setter is not None:
        setter(False)


def build_world_data(
    seed: int, x0: int, y0: int, width: int, height: int, *, progress: Progress | None = None
) -> WorldData:
    """Generate and colour a world region; the job VM 1 runs. ``progress(fraction, stage)`` is optional."""
    start = time.perf_counter()

    def report(fraction: float, stage: str) -> None:
        if progress is not None:
            progress(fraction, stage)

    def generation_progress(fraction: float, stage: str) -> None:
        report(GENERATION_SHARE * fraction, stage)

    report(0.0, "starting")
    world = worldgen.generate(seed, x0, y0, width, height, progress=generation_progress)
    report(GENERATION_SHARE, "colouring terrain")
    image = colour_world(world.biome, world.elevation)
    report(0.95, "zoom levels")
    levels = terrain.mip_levels(image)
    report(1.0, "sending")
    return WorldData(
        seed=seed,
        x0=x0,
        y0=y0,
        biome_names=tuple(worldgen.BIOMES),
        water_ids=frozenset(int(i) for i in worldgen.WATER_BIOMES),
        species_names=tuple(worldgen.SPECIES),
        habitats={name: frozenset(int(i) for i in ids) for name, ids in worldgen.HABITATS.items()},
        biome=world.biome,
        heights=world.heights,
        elevation=world.elevation,
        moisture=world.moisture,
        creatures=world.creatures,
        biome_counts=np.bincount(world.biome.ravel(), minlength=len(worldgen.BIOMES)).astype(np.int64),
        levels=tuple(levels),
        seconds=time.perf_counter() - start,
    )


def rivers_between_samples(
    biome: npt.NDArray[np.uint8], river: npt.NDArray[np.float32], step: int
) -> npt.NDArray[np.uint8]:
    """``biome`` with the land samples that have a river bank within half a step marked as river.

    Sampled every ``step`` cells, a river a few cells wide mostly falls between samples and would be
    drawn as scattered dots; worldgen's ``river`` field (the distance to the nearest bank, negative on
    river cells) draws it as the line it is, at every level of detail. ``step`` 1 changes nothing.
    """
    if step <= 1:
        return biome
    land = ~terrain.water_mask(biome, frozenset(worldgen.WATER_BIOMES))
    marked = np.less(river, np.float32(step / 2))
    marked &= land
    return np.where(marked, np.uint8(worldgen.BIOMES.index("river")), biome)


def colour_world(
    biome: npt.NDArray[np.uint8], elevation: npt.NDArray[np.float32], *, spacing: float = 1.0
) -> terrain.Image:
    """``terrain.colour_terrain`` with this worldgen's biome names, water biomes and sea level (the finite
    world and the streamed chunks colour alike)."""
    return terrain.colour_terrain(
        biome,
        elevation,
        tuple(worldgen.BIOMES),
        frozenset(worldgen.WATER_BIOMES),
        worldgen.SEA_LEVEL,
        spacing=spacing,
    )
