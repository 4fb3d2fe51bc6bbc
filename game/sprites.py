"""Creature sprites: loading the PNGs, wandering every tick within each species' habitat, drawing.

The PNGs live in the ``game.assets`` package (``assets/sprites`` in the repository, drawn by
``assets/make_sprites.py``) and are read through ``importlib.resources`` so an installed, non-editable
game finds them too. The wandering is vectorised over all creatures with numpy: each creature has its own
deterministic random stream, an integer hash of (world seed, creature id, counter), so the same world
always moves the same way and no creature's path depends on any other's.
"""

from __future__ import annotations

import functools
import io
from importlib import resources
from typing import Protocol

import numpy as np
import numpy.typing as npt
import pygame

from game.worlddata import WorldData

SPRITE_SIZE = 16
# Zoomed out further than this, thousands of sprites would cover the map like confetti: none are drawn.
SPRITE_MIN_ZOOM = 0.75

# Cells per tick (60 ticks per second). Fish dart, bears amble.
SPEEDS: dict[str, float] = {"wolf": 0.09, "bear": 0.04, "fish": 0.07, "bird": 0.14, "lizard": 0.05}
DEFAULT_SPEED = 0.06
# A creature keeps its heading for this many ticks (plus a per-creature offset) before choosing anew.
TURN_TICKS = 120

_ANGLES = np.arange(32) * (2 * np.pi / 32)
_DIRECTIONS = np.stack([np.cos(_ANGLES), np.sin(_ANGLES)], axis=1).astype(np.float32)
_PACE = np.linspace(0.7, 1.3, 16, dtype=np.float32)

_U64 = np.uint64
_MIX1 = _U64(0xBF58476D1CE4E5B9)
_MIX2 = _U64(0x94D049BB133111EB)
_GOLDEN = _U64(0x9E3779B97F4A7C15)


class View(Protocol):
    """What drawing needs of a camera (the finite world's or the endless one's)."""

    x: float
    y: float
    zoom: float
    view_size: tuple[int, int]

    def visible(self) -> tuple[float, float, float, float]: ...


def _splitmix(values: npt.NDArray[np.uint64]) -> npt.NDArray[np.uint64]:
    """SplitMix64's finaliser over an array: a fast, well-mixed integer hash (wraps mod 2**64)."""
    z = values + _GOLDEN
    z = (z ^ (z >> _U64(30))) * _MIX1
    z = (z ^ (z >> _U64(27))) * _MIX2
    return z ^ (z >> _U64(31))


def load_image(relative: str) -> pygame.Surface:
    """Load a PNG from the ``game.assets`` package, e.g. ``"sprites/wolf.png"``."""
    data = resources.files("game.assets").joinpath(relative).read_bytes()
    return pygame.image.load(io.BytesIO(data), relative)


@functools.cache
def load_sprites(species: tuple[str, ...]) -> list[pygame.Surface]:
    """One sprite per species, in ``species`` order; a species without a PNG gets the ``unknown`` one.

    Cached: a new world reuses the decoded PNGs, which keeps the frame a world arrives in short.
    The Surfaces are shared, so callers must copy before drawing on them.
    """
    folder = resources.files("game.assets").joinpath("sprites")
    sprites = []
    for name in species:
        file = f"sprites/{name}.png" if folder.joinpath(f"{name}.png").is_file() else "sprites/unknown.png"
        sprites.append(load_image(file))
    return sprites


class Creatures:
    """Every creature of one world: positions, headings, the tick simulation and the sprite drawing."""

    def __init__(self, world: WorldData) -> None:
        records = world.creatures
        self.world = world
        self.count = len(records)
        self.ids = records["id"].astype(np.uint64)
        self.species = records["species"].astype(np.intp)
        # Stand in the middle of the cell worldgen placed them in.
        self.x = records["x"].astype(np.float32) - world.x0 + 0.5
        self.y = records["y"].astype(np.float32) - world.y0 + 0.5
        self.tick_count = 0
        self._salt = _splitmix(np.array([world.seed & 0xFFFFFFFFFFFFFFFF], dtype=np.uint64))[0]
        # Per-species habitat as a (species, biome) lookup table, so "may I step there" is one gather.
        self.allowed = np.zeros((max(1, len(world.species_names)), 256), dtype=bool)
        for index, name in enumerate(world.species_names):
            self.allowed[index, list(world.habitats.get(name, frozenset()))] = True
        self.speed = np.array(
            [SPEEDS.get(name, DEFAULT_SPEED) for name in world.species_names] or [DEFAULT_SPEED],
            dtype=np.float32,
        )[self.species]
        self.turns = np.zeros(self.count, dtype=np.uint64)  # bumped on each blocked step: a new heading
        self.offset = (_splitmix(self.ids ^ self._salt) % _U64(TURN_TICKS)).astype(np.int64)
        self.dx = np.zeros(self.count, dtype=np.float32)
        self.dy = np.zeros(self.count, dtype=np.float32)
        self._choose_headings(np.ones(self.count, dtype=bool))
        self._sprites: dict[tuple[int, int], list[tuple[pygame.Surface, pygame.Surface]]] = {}
        self._base = load_sprites(world.species_names) if world.species_names else []
        self.visible_index: npt.NDArray[np.intp] = np.zeros(0, dtype=np.intp)
        self.drawn = 0

    def _choose_headings(self, which: npt.NDArray[np.bool_]) -> None:
        """New headings for the creatures in ``which``, from each one's own random stream."""
        if self.count == 0:
            return
        index = np.flatnonzero(which)
        epoch = ((self.tick_count + self.offset[index]) // TURN_TICKS).astype(np.uint64)
        key = _splitmix(
            self.ids[index] ^ self._salt ^ _splitmix(epoch * _U64(0x100000001B3) + self.turns[index])
        )
        # One of 32 directions (a table lookup, no trigonometry per creature) at 70-130% of the
        # species' pace; one creature in eight rests for this heading, so the scene is not a swarm.
        direction = (key & _U64(31)).astype(np.intp)
        pace = _PACE[((key >> _U64(5)) & _U64(15)).astype(np.intp)]
        resting = ((key >> _U64(9)) & _U64(7)) == _U64(0)
        speed = np.where(resting, np.float32(0), self.speed[index] * pace)
        self.dx[index] = _DIRECTIONS[direction, 0] * speed
        self.dy[index] = _DIRECTIONS[direction, 1] * speed

    def update(self) -> None:
        """Advance one fixed tick: step along the heading if the next cell is in the habitat, else turn."""
        if self.count == 0:
            return
        self.tick_count += 1
        turning = (self.tick_count + self.offset) % TURN_TICKS == 0
        if turning.any():
            self._choose_headings(turning)
        nx = self.x + self.dx
        ny = self.y + self.dy
        w, h = self.world.width, self.world.height
        inside = (nx >= 0) & (ny >= 0) & (nx < w) & (ny < h)
        cx = np.clip(nx, 0, w - 1).astype(np.intp)
        cy = np.clip(ny, 0, h - 1).astype(np.intp)
        ok = inside & self.allowed[self.species, self.world.biome[cy, cx]]
        self.x = np.where(ok, nx, self.x)
        self.y = np.where(ok, ny, self.y)
        blocked = ~ok
        if blocked.any():
            self.turns[blocked] += _U64(1)
            self._choose_headings(blocked)

    def sprite_scale(self, zoom: float) -> float:
        """Sprite magnification for a zoom: half size when zoomed out, growing with the cells, at most 4x."""
        if zoom < 2.0:
            return 0.5
        return float(max(1, min(4, round(zoom / 4))))

    def _scaled(self, scale: float) -> list[tuple[pygame.Surface, pygame.Surface]]:
        """Each species' sprite at ``scale``, facing right and left (cached per scale)."""
        key = (round(scale * 2), id(pygame.display.get_surface()))
        if key not in self._sprites:
            pairs = []
            for base in self._base:
                # Halving pixel art by dropping pixels would eat the outlines; average them instead.
                if scale < 1:
                    image = pygame.transform.smoothscale_by(base, scale)
                else:
                    image = pygame.transform.scale_by(base, scale)
                if pygame.display.get_surface() is not None:
                    image = image.convert_alpha()
                pairs.append((image, pygame.transform.flip(image, True, False)))
            self._sprites = {key: pairs}
        return self._sprites[key]

    def draw(self, target: pygame.Surface, camera: View, min_zoom: float = SPRITE_MIN_ZOOM) -> int:
        """Draw the creatures in view with one ``fblits`` call; returns how many were drawn.

        Below ``min_zoom`` the sprites would cover the map like confetti, so none are drawn.
        """
        self.visible_index = np.zeros(0, dtype=np.intp)
        self.drawn = 0
        if self.count == 0 or camera.zoom < min_zoom or not self._base:
            return 0
        scale = self.sprite_scale(camera.zoom)
        half = SPRITE_SIZE * scale / 2
        left, top, right, bottom = camera.visible()
        margin = half / camera.zoom
        seen = (
            (self.x > left - margin)
            & (self.x < right + margin)
            & (self.y > top - margin)
            & (self.y < bottom + margin)
        )
        index = np.flatnonzero(seen)
        self.visible_index = index
        if index.size == 0:
            return 0
        view_w, view_h = camera.view_size
        sx = ((self.x[index] - camera.x) * camera.zoom + view_w / 2 - half).astype(np.int32)
        # Feet on the cell: the sprite's bottom sits a little below the creature's position.
        sy = ((self.y[index] - camera.y) * camera.zoom + view_h / 2 - 1.6 * half).astype(np.int32)
        facing_left = (self.dx[index] < 0).tolist()
        pairs = self._scaled(scale)
        kinds = self.species[index].tolist()
        target.fblits(
            [
                (pairs[kind][1] if left_ else pairs[kind][0], (x, y))
                for kind, left_, x, y in zip(kinds, facing_left, sx.tolist(), sy.tolist(), strict=True)
            ]
        )
        self.drawn = int(index.size)
        return self.drawn

    def at_screen(self, camera: View, sx: float, sy: float) -> int | None:
        """Index of the drawn creature under screen pixel ``(sx, sy)`` (the nearest one), else None."""
        index = self.visible_index
        if index.size == 0:
            return None
        scale = self.sprite_scale(camera.zoom)
        half = SPRITE_SIZE * scale / 2
        px = (self.x[index] - camera.x) * camera.zoom + camera.view_size[0] / 2
        py = (self.y[index] - camera.y) * camera.zoom + camera.view_size[1] / 2 - 0.6 * half
        d2 = (px - sx) ** 2 + (py - sy) ** 2
        best = int(np.argmin(d2))
        return int(index[best]) if d2[best] <= half * half else None
