"""The endless world's creatures: in world coordinates, wandering across chunk borders.

A creature joins when the fine (level 0) chunk worldgen placed it in arrives, and steps only onto cells of
its habitat in chunks that are loaded, so it may cross from chunk to chunk. When the chunk a creature
stands in leaves the cache, the creature is parked (its id, place and heading kept) and comes back as it
was when that chunk returns; a creature never seen before starts where worldgen placed it. So a chunk
that comes back brings the same creatures. Wandering and drawing are :class:`game.sprites.Creatures`'.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import pygame

import worldgen
from game.chunkjob import CHUNK, ChunkData, ChunkKey
from game.sprites import (
    DEFAULT_SPEED,
    SPEEDS,
    SPRITE_MIN_ZOOM,
    TURN_TICKS,
    Creatures,
    View,
    _splitmix,
    load_sprites,
)

_U64 = np.uint64
_STATE = ("ids", "species", "x", "y", "turns", "offset", "dx", "dy", "speed")


class EndlessCreatures(Creatures):
    """The creatures of the loaded fine chunks of world ``seed``."""

    def __init__(self, seed: int) -> None:
        self.seed = seed
        self.species_names = tuple(worldgen.SPECIES)
        self.count = 0
        self.tick_count = 0
        self._salt = _splitmix(np.array([seed & 0xFFFFFFFFFFFFFFFF], dtype=np.uint64))[0]
        self.allowed = np.zeros((max(1, len(self.species_names)), 256), dtype=bool)
        for index, name in enumerate(self.species_names):
            self.allowed[index, [int(i) for i in worldgen.HABITATS.get(name, ())]] = True
        self._speeds = np.array([SPEEDS.get(n, DEFAULT_SPEED) for n in self.species_names] or [DEFAULT_SPEED])
        self.ids = np.zeros(0, dtype=np.uint64)
        self.species = np.zeros(0, dtype=np.intp)
        self.x = np.zeros(0, dtype=np.float64)  # float64: float32 loses whole cells past 2**24
        self.y = np.zeros(0, dtype=np.float64)
        self.turns = np.zeros(0, dtype=np.uint64)
        self.offset = np.zeros(0, dtype=np.int64)
        self.dx = np.zeros(0, dtype=np.float32)
        self.dy = np.zeros(0, dtype=np.float32)
        self.speed = np.zeros(0, dtype=np.float32)
        self.biomes: dict[tuple[int, int], npt.NDArray[np.uint8]] = {}
        self.known: set[int] = set()
        self.joining: list[dict[str, npt.NDArray[np.generic]]] = []
        self.parked: dict[tuple[int, int], dict[str, npt.NDArray[np.generic]]] = {}
        self._sprites = {}
        self._base = load_sprites(self.species_names) if self.species_names else []
        self.visible_index = np.zeros(0, dtype=np.intp)
        self.drawn = 0
        self.area = (0.0, 0.0, 0.0, 0.0)
        """The world rectangle (left, top, right, bottom) whose creatures move; the scene sets it."""

    def _state(self) -> dict[str, npt.NDArray[np.generic]]:
        return {name: getattr(self, name) for name in _STATE}

    def _append(self, extra: dict[str, npt.NDArray[np.generic]]) -> None:
        """Queue creatures to join; they join together at the next tick or draw (one concatenation a
        frame however many chunks arrived, so a chunk's arrival costs VM 0 next to nothing)."""
        self.joining.append(extra)

    def _join(self) -> None:
        if not self.joining:
            return
        start = self.count
        for name in _STATE:
            parts = [getattr(self, name), *(extra[name] for extra in self.joining)]
            setattr(self, name, np.concatenate(parts))
        fresh = np.concatenate([extra["fresh"] for extra in self.joining]) if self.joining else None
        self.joining.clear()
        self.count = len(self.ids)
        which = np.zeros(self.count, dtype=bool)
        if fresh is not None:
            which[start:] = fresh  # newcomers choose a heading; parked ones keep theirs
        if which.any():
            self._choose_headings(which)

    def chunk_arrived(self, data: ChunkData) -> None:
        """A chunk came: a fine one brings its creatures (parked ones as they were) and its cells."""
        level, i, j = data.key
        if level != 0 or (i, j) in self.biomes:
            return
        self.biomes[(i, j)] = data.biome
        parked = self.parked.pop((i, j), None)
        if parked is not None:
            self._append({**parked, "fresh": np.zeros(len(parked["ids"]), dtype=bool)})
        records = data.creatures
        if self.known:
            fresh = np.array([int(v) not in self.known for v in records["id"].tolist()], dtype=bool)
            records = records[fresh] if len(records) else records
        if len(records) == 0:
            return
        ids = records["id"].astype(np.uint64)
        self.known.update(int(v) for v in ids.tolist())
        species = records["species"].astype(np.intp)
        new: dict[str, npt.NDArray[np.generic]] = {
            "ids": ids,
            "species": species,
            "x": records["x"].astype(np.float64) + 0.5,
            "y": records["y"].astype(np.float64) + 0.5,
            "turns": np.zeros(len(ids), dtype=np.uint64),
            "offset": (_splitmix(ids ^ self._salt) % _U64(TURN_TICKS)).astype(np.int64),
            "dx": np.zeros(len(ids), dtype=np.float32),
            "dy": np.zeros(len(ids), dtype=np.float32),
            "speed": self._speeds[species].astype(np.float32),
            "fresh": np.ones(len(ids), dtype=bool),
        }
        self._append(new)

    def chunk_left(self, key: ChunkKey) -> None:
        """A chunk left the cache: park the creatures standing in it, forget its cells."""
        level, i, j = key
        if level != 0 or self.biomes.pop((i, j), None) is None:
            return
        self._join()
        inside = (np.floor(self.x / CHUNK) == i) & (np.floor(self.y / CHUNK) == j)
        if not inside.any():
            return
        state = self._state()
        self.parked[(i, j)] = {name: values[inside] for name, values in state.items()}
        for name, values in state.items():
            setattr(self, name, values[~inside])
        self.count = len(self.ids)

    def biome_at(self, x: npt.NDArray[np.floating], y: npt.NDArray[np.floating]) -> npt.NDArray[np.intp]:
        """Biome ids at the cells of positions ``(x, y)``; -1 where the chunk is not loaded."""
        cx = np.floor(x).astype(np.int64)
        cy = np.floor(y).astype(np.int64)
        ci, cj = cx // CHUNK, cy // CHUNK
        out = np.full(len(x), -1, dtype=np.intp)
        if len(x) == 0:
            return out
        # One chunk id per creature (chunk indices lie within +-2**24, so j + 2**25 fits 26 bits and is
        # never negative), grouped with one unique call.
        ids, group = np.unique((ci << 26) + (cj + (1 << 25)), return_inverse=True)
        for n, chunk_id in enumerate(ids.tolist()):
            i, j = chunk_id >> 26, (chunk_id & ((1 << 26) - 1)) - (1 << 25)
            biome = self.biomes.get((i, j))
            if biome is None:
                continue
            here = np.flatnonzero(group == n)
            out[here] = biome[cy[here] - j * CHUNK, cx[here] - i * CHUNK]
        return out

    def update(self) -> None:
        """One tick for the creatures in :attr:`area` (around the view; the others wait where they are):
        step along the heading onto a habitat cell of a loaded chunk, else turn."""
        self.tick_count += 1
        self._join()
        if self.count == 0:
            return
        left, top, right, bottom = self.area
        active = np.flatnonzero((self.x >= left) & (self.x < right) & (self.y >= top) & (self.y < bottom))
        if active.size == 0:
            return
        turning = np.zeros(self.count, dtype=bool)
        turning[active] = (self.tick_count + self.offset[active]) % TURN_TICKS == 0
        if turning.any():
            self._choose_headings(turning)
        nx = self.x[active] + self.dx[active]
        ny = self.y[active] + self.dy[active]
        biome = self.biome_at(nx, ny)
        ok = (biome >= 0) & self.allowed[self.species[active], np.maximum(biome, 0)]
        moving = active[ok]
        self.x[moving] = nx[ok]
        self.y[moving] = ny[ok]
        blocked = active[~ok]
        if blocked.size:
            self.turns[blocked] += _U64(1)
            which = np.zeros(self.count, dtype=bool)
            which[blocked] = True
            self._choose_headings(which)

    def draw(self, target: pygame.Surface, camera: View, min_zoom: float = SPRITE_MIN_ZOOM) -> int:
        self._join()
        return super().draw(target, camera, min_zoom)
