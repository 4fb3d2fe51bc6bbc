"""The chunk streamer on VM 0: what to ask for, in which order, what to keep, and drawing what is there.

Every frame, :meth:`ChunkStreamer.update` lists the chunks the view needs at its level of detail: the
visible ones, nearest the view's centre first, then a ring around the view stretched ahead of the motion.
It requests the missing ones from the source, re-prioritises the queued ones (dropping those no longer
wanted), and takes the finished chunks within a time budget: each is wrapped in a Surface (no pixel work
on VM 0) and kept in an LRU cache with a memory cap. :meth:`draw` blits the visible chunks; a missing one
is drawn from a coarser (or finer) chunk of the same place if one is cached, else as a calm flat
placeholder. Latency is counted in frames from a chunk first being visible to its being drawn.
"""

from __future__ import annotations

import math
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Hashable
from dataclasses import dataclass, replace
from typing import cast

import numpy as np
import pygame

from game.chunkjob import CHUNK, THUMB, ChunkData, ChunkKey, in_world, max_level, span
from game.chunksource import Arrival, ChunkSource
from game.endless_camera import EndlessCamera
from game.stats import percentile

PLACEHOLDER = (38, 44, 56)
"""A missing chunk: a calm slate, dim enough not to pull the eye, the same every frame."""
OUTSIDE = (10, 10, 14)
"""Past the world's int32 edge."""
EDGE = (200, 70, 60)
LOOKAHEAD_S = 0.6
"""How far ahead of the motion the ring reaches, in seconds of travel."""
STAND_IN_UP = 2
"""How many levels coarser the stand-ins are that come first when most of a still view is missing: two, so
one covers sixteen chunks. Measured after jumps with 2 VMs: the screen was covered after 50-83 ms instead
of 100-283 ms with one level up (four chunks each, more of them), and at full detail sooner too (217-283 ms
instead of 250-300), since the stand-ins take less of the VMs' time."""
MINIMAP_SCALES = (8, 32, 128, 512, 2048)
"""Cells per minimap pixel at its zoom steps."""
NO_PIXELS = np.zeros((0, 0, 4), dtype=np.uint8)
PAGE = 128
MAX_PAGES = 384
MAX_SCALED = 512
"""Up to this many pixels a side, a chunk's scaled picture is kept while it is on screen (1 MiB); larger,
only its visible part is scaled each frame."""
RETRY_FRAMES = 120
RETRIES = 3
"""Pixels on a side of one page of the minimap's record of what was seen."""


@dataclass
class Tile:
    """A cached chunk: its data, its Surface, and its picture at the last zoom it was drawn at."""

    data: ChunkData
    surface: pygame.Surface
    scaled: pygame.Surface | None = None

    @property
    def nbytes(self) -> int:
        extra = 0 if self.scaled is None else self.scaled.get_width() * self.scaled.get_height() * 4
        return self.data.nbytes + CHUNK * CHUNK * 4 + extra


def wrap(data: ChunkData) -> pygame.Surface:
    """The chunk's RGBX pixels as a Surface in the display's pixel format (a 64 KiB copy, ~0.03 ms),
    which blits three times faster than the wrapped array would, every frame it is drawn."""
    surface = pygame.image.frombuffer(data.image.data, (CHUNK, CHUNK), "RGBX")
    return surface.convert() if pygame.display.get_surface() is not None else surface.copy()


def _scaled_on_screen(
    square: pygame.Surface, pixels: int, position: tuple[int, int], view: pygame.Rect
) -> tuple[pygame.Surface, tuple[int, int]]:
    """The part of ``square`` (n x n samples, drawn ``pixels`` wide at ``position``) that is in ``view``,
    scaled, and where to blit it. Sample ``k`` covers pixels ``floor(k * s)`` to ``floor((k + 1) * s)``
    as when the square is scaled whole, so the part meets its neighbours exactly."""
    samples = square.get_width()
    scale = pixels / samples
    on_screen = pygame.Rect(position, (pixels, pixels)).clip(view)
    if not on_screen.width or not on_screen.height:
        return (square.subsurface((0, 0, 1, 1)), (-1, -1))
    a_x = max(0, math.floor((on_screen.left - position[0]) / scale))
    b_x = min(samples, math.ceil((on_screen.right - position[0]) / scale))
    a_y = max(0, math.floor((on_screen.top - position[1]) / scale))
    b_y = min(samples, math.ceil((on_screen.bottom - position[1]) / scale))
    x0, x1 = math.floor(a_x * scale), math.floor(b_x * scale)
    y0, y1 = math.floor(a_y * scale), math.floor(b_y * scale)
    part = square.subsurface((a_x, a_y, b_x - a_x, b_y - a_y))
    picture = pygame.transform.scale(part, (x1 - x0, y1 - y0))
    return (picture, (position[0] + x0, position[1] + y0))


def kept(data: ChunkData) -> ChunkData:
    """What the cache keeps of an arrived chunk: its small arrays, copied (about 20 KiB), and not its
    pixels, which its Surface holds now. So nothing refers to the VM's segment that brought it: the
    segment goes back to the VM at once and carries its next chunk, into a mapping VM 0 has already.
    (Kept, the arrays would hold one segment per cached chunk, and each chunk would need a new one.)"""
    return replace(
        data,
        image=NO_PIXELS,
        biome=data.biome.copy(),
        creatures=data.creatures.copy(),
        thumb=data.thumb.copy(),
    )


class ChunkStreamer:
    """Chunks of world ``seed`` from ``source``, cached up to ``cache_bytes``."""

    def __init__(
        self,
        source: ChunkSource,
        seed: int,
        cache_bytes: int,
        budget_ms: float = 3.0,
        world: str | None = None,
        bounds: tuple[int, int, int, int] | None = None,
    ) -> None:
        self.source = source
        self.seed = seed
        self.world: int | str = seed if world is None else world
        """What the source makes chunks of: the seed, or the path of a baked world."""
        self.bounds = bounds
        """A baked world's cells ``(x0, y0, x1, y1)``: chunks wholly outside are not asked for, only
        drawn dark (None: the endless world, all of the int32 range)."""
        self.cache_bytes = cache_bytes
        self.budget_ms = budget_ms
        self.cache: OrderedDict[ChunkKey, Tile] = OrderedDict()
        self.cached_bytes = 0
        self.peak_bytes = 0
        self.requested: set[ChunkKey] = set()
        self.wanted: dict[ChunkKey, float] = {}
        self.visible: list[ChunkKey] = []
        self.waiting_since: dict[ChunkKey, int] = {}
        self.latencies: list[int] = []
        self.recent_latencies: deque[int] = deque(maxlen=240)
        self.failed: dict[ChunkKey, tuple[int, int, str]] = {}
        """Chunks whose job failed: the frame it failed on, how many times, and the error. One is asked
        for again after RETRY_FRAMES (a VM that crashed is replaced by the pool), at most RETRIES times."""
        self.generated = 0
        self.frame = 0
        self.placeholder_frames = 0
        self.placeholders = 0
        """Visible chunks drawn as placeholders in the last frame (a coarser chunk or the flat colour)."""
        self.blanks = 0
        """Of those, the ones drawn in the flat colour (no coarser chunk of the place was cached)."""
        self.first_whole_frame: int | None = None
        """The first frame without a flat placeholder (every visible chunk drawn, some maybe coarser)."""
        self.intake_ms: list[float] = []
        """Per arriving chunk: VM 0's time to take it in (wrap, cache, minimap, creatures), in ms."""
        self.wrap_ms: list[float] = []
        """Per arriving chunk: the wrap alone (a Surface of its pixels in the display's format), in ms."""
        self.take_ms = 0.0
        """VM 0's time in the source's ``take`` (reading and decoding the results), in all."""
        self.first_full_frame: int | None = None
        """The first frame that showed no placeholder (the first screen fully drawn)."""
        self.latency_frames: list[int] = []
        """For each latency sample, the frame it was drawn on."""
        self.scaled_keys: set[ChunkKey] = set()
        self.arrived: deque[Arrival] = deque()
        """Chunks taken from the source but not yet into the cache (over the frame's budget)."""
        self.on_arrive: Callable[[Tile], None] | None = None
        self.on_evict: Callable[[ChunkKey, Tile], None] | None = None
        self.pages: OrderedDict[tuple[int, int, int], pygame.Surface] = OrderedDict()
        """The minimap's record of what was seen, in pages of PAGE x PAGE pixels per minimap scale; the
        least recently used go beyond MAX_PAGES (64 KiB each), so a long flight does not grow it forever."""

    # -- what to ask for ------------------------------------------------------------------------------

    def plan(self, camera: EndlessCamera, velocity: tuple[float, float]) -> dict[ChunkKey, float]:
        """Every chunk the view wants now with its priority: visible ones nearest the centre first (above
        1000), then the ring around the view and ahead of ``velocity`` (cells per second)."""
        level = camera.level
        size = span(level)
        left, top, right, bottom = camera.visible()
        cx, cy = camera.x / size - 0.5, camera.y / size - 0.5
        wanted: dict[ChunkKey, float] = {}
        visible = []
        # A priority never comes back to a value it had: the pool's queue (as of #13's first cut) breaks
        # when a job is moved back to an earlier priority (its dead entry then ties with the live one and
        # heapq compares None with a Job: TypeError). A drift of 1e-9 a frame keeps every value new.
        drift = self.frame * 1e-9
        x0, x1 = math.floor(left / size), math.ceil(right / size)
        y0, y1 = math.floor(top / size), math.ceil(bottom / size)
        for j in range(y0, y1):
            for i in range(x0, x1):
                key = (level, i, j)
                if self._exists(key):
                    wanted[key] = 2000.0 - math.hypot(i - cx, j - cy) + drift
                    visible.append(key)
        # The ring: the view grown by one chunk all round, and stretched ahead of the motion.
        ahead_x, ahead_y = velocity[0] * LOOKAHEAD_S / size, velocity[1] * LOOKAHEAD_S / size
        rx0, rx1 = x0 - 1 + min(0, math.floor(ahead_x)), x1 + 1 + max(0, math.ceil(ahead_x))
        ry0, ry1 = y0 - 1 + min(0, math.floor(ahead_y)), y1 + 1 + max(0, math.ceil(ahead_y))
        # A ring chunk comes sooner the nearer it is to the view; one behind the motion may never come.
        for j in range(ry0, ry1):
            gap_y = max(y0 - j, 0, j - (y1 - 1))
            for i in range(rx0, rx1):
                key = (level, i, j)
                if key not in wanted and self._exists(key):
                    gap = math.hypot(max(x0 - i, 0, i - (x1 - 1)), gap_y)
                    behind = (i - cx) * ahead_x + (j - cy) * ahead_y < 0
                    wanted[key] = 1000.0 - gap - (4.0 if behind else 0.0) + drift
        # Most of the view missing while the view stands still (after a jump or a zoom): the coarser
        # chunks over the missing ones come first (STAND_IN_UP levels up: one covers sixteen), so a whole
        # picture, less sharp, comes many times sooner, and the fine chunks replace it as they arrive. Not
        # in flight: measured, the VMs then spend their time on coarse chunks and the fine ones fall behind.
        missing = [key for key in visible if key not in self.cache and not self._has_parent(key)]
        still = math.hypot(*velocity) < size  # less than a chunk a second
        if level < max_level() and still and 2 * len(missing) > len(visible):
            up = min(STAND_IN_UP, max_level() - level)
            for _, i, j in missing:
                parent = (level + up, i >> up, j >> up)
                if parent not in wanted and self._exists(parent):
                    wanted[parent] = (
                        3000.0 - math.hypot((i >> up) - cx / 2**up, (j >> up) - cy / 2**up) + drift
                    )
        self.visible = visible
        return wanted

    def _exists(self, key: ChunkKey) -> bool:
        """Whether chunk ``key`` has cells of the world (inside the int32 range, and the baked area)."""
        if not in_world(key):
            return False
        if self.bounds is None:
            return True
        level, i, j = key
        size = span(level)
        x0, y0, x1, y1 = self.bounds
        return i * size < x1 and (i + 1) * size > x0 and j * size < y1 and (j + 1) * size > y0

    def _has_parent(self, key: ChunkKey) -> bool:
        """Whether a coarser chunk of the same place is cached (it can stand in for ``key``)."""
        level, i, j = key
        return any((level + up, i >> up, j >> up) in self.cache for up in range(1, 4))

    def update(self, camera: EndlessCamera, velocity: tuple[float, float]) -> None:
        """Once a frame: request, re-prioritise, take in what arrived."""
        self.frame += 1
        wanted = self.plan(camera, velocity)
        self.wanted = wanted
        for key in self.visible:
            if key in self.cache:
                self.cache.move_to_end(key)
            elif key not in self.waiting_since:
                self.waiting_since[key] = self.frame
        for key in list(self.waiting_since):
            if key not in wanted or self._given_up(key):
                del self.waiting_since[key]  # it left the view before it came: no latency to count

        def new_priority(queued: Hashable) -> float | None:
            key = cast(ChunkKey, queued)
            priority = wanted.get(key)
            if priority is None:
                self.requested.discard(key)
            return priority

        self.source.reprioritize(new_priority)
        for key, priority in sorted(wanted.items(), key=lambda item: -item[1]):
            if key not in self.cache and key not in self.requested and not self._resting(key):
                self.source.request(self.world, key, priority)
                self.requested.add(key)
        taken = 0
        taking = time.perf_counter()
        deadline = taking + self.budget_ms / 1000
        self.arrived.extend(self.source.take(self.budget_ms))
        self.take_ms += (time.perf_counter() - taking) * 1000
        # Within the budget (at least one a frame): the rest waits for the next frame, never the frame.
        while self.arrived and (time.perf_counter() < deadline or not taken):
            arrival = self.arrived.popleft()
            taken += 1
            started = time.perf_counter()
            self.requested.discard(arrival.key)
            if arrival.chunk is None:
                _, times, _ = self.failed.get(arrival.key, (0, 0, ""))
                self.failed[arrival.key] = (self.frame, times + 1, arrival.error or "failed")
                continue
            self.generated += 1
            self.failed.pop(arrival.key, None)
            surface = wrap(arrival.chunk)
            self.wrap_ms.append((time.perf_counter() - started) * 1000)
            tile = Tile(kept(arrival.chunk), surface)
            self._store(arrival.key, tile)
            self._remember(tile.data)
            if self.on_arrive is not None:
                self.on_arrive(tile)
            self.intake_ms.append((time.perf_counter() - started) * 1000)

    def last_error(self) -> str:
        """The last line of the most recent chunk failure's error (its exception), or "" if none."""
        if not self.failed:
            return ""
        _frame, _times, error = max(self.failed.values(), key=lambda failure: failure[0])
        lines = error.strip().splitlines()
        return lines[-1] if lines else "failed"

    def _resting(self, key: ChunkKey) -> bool:
        """Whether a failed chunk must not be asked for now (too soon, or too many failures)."""
        failure = self.failed.get(key)
        return failure is not None and (self._given_up(key) or self.frame - failure[0] < RETRY_FRAMES)

    def _given_up(self, key: ChunkKey) -> bool:
        failure = self.failed.get(key)
        return failure is not None and failure[1] >= RETRIES

    def _store(self, key: ChunkKey, tile: Tile) -> None:
        old = self.cache.pop(key, None)
        if old is not None:
            self.cached_bytes -= old.nbytes
        self.cache[key] = tile
        self.cached_bytes += tile.nbytes
        self.peak_bytes = max(self.peak_bytes, self.cached_bytes)
        self._evict()

    def _evict(self) -> None:
        """Drop the least recently seen chunks until the cache fits its cap, never one that is visible or
        wanted (the ring ahead): a cap smaller than that is exceeded rather than make the view flicker."""
        keep = set(self.visible) | self.wanted.keys()
        while self.cached_bytes > self.cache_bytes and len(self.cache) > len(keep):
            key, tile = next(iter(self.cache.items()))
            if key in keep:
                self.cache.move_to_end(key)
                continue
            del self.cache[key]
            self.cached_bytes -= tile.nbytes
            if self.on_evict is not None:
                self.on_evict(key, tile)

    # -- drawing --------------------------------------------------------------------------------------

    def draw(self, screen: pygame.Surface, camera: EndlessCamera) -> None:
        """The visible chunks (or their placeholders) at the camera's view; the world's edge if in view."""
        pixels = camera.chunk_pixels
        ox, oy = camera.origin()
        blits: list[tuple[pygame.Surface, tuple[int, int]]] = []
        missing: list[tuple[ChunkKey, pygame.Rect]] = []
        screen.fill(OUTSIDE)
        view = screen.get_rect()
        scaled = set()
        for key in self.visible:
            _, i, j = key
            position = (i * pixels - ox, j * pixels - oy)
            tile = self.cache.get(key)
            if tile is None:
                missing.append((key, pygame.Rect(position, (pixels, pixels))))
                continue
            if pixels <= MAX_SCALED:
                blits.append((self._picture(tile, pixels), position))
                scaled.add(key)
            else:
                # Zoomed far in: only what is on screen (a whole chunk would be thousands of pixels wide).
                blits.append(_scaled_on_screen(tile.surface, pixels, position, view))
            if key in self.waiting_since:
                latency = self.frame - self.waiting_since.pop(key)
                self.latencies.append(latency)
                self.latency_frames.append(self.frame)
                self.recent_latencies.append(latency)
        for key in self.scaled_keys - scaled:  # scaled pictures are kept only while they are drawn
            tile = self.cache.get(key)
            if tile is not None and tile.scaled is not None:
                before = tile.nbytes
                tile.scaled = None
                self.cached_bytes += tile.nbytes - before
        self.scaled_keys = scaled
        if self.cached_bytes > self.peak_bytes:
            self.peak_bytes = self.cached_bytes
        if self.cached_bytes > self.cache_bytes:
            self._evict()
        screen.fblits(blits)
        self.blanks = sum(not self._placeholder(screen, key, rect) for key, rect in missing)
        if not self.blanks and self.first_whole_frame is None:
            self.first_whole_frame = self.frame
        self.placeholders = len(missing)
        if missing:
            self.placeholder_frames += 1
        elif self.first_full_frame is None:
            self.first_full_frame = self.frame
        self._world_edge(screen, camera)

    def _picture(self, tile: Tile, pixels: int) -> pygame.Surface:
        if pixels == CHUNK:
            return tile.surface
        if tile.scaled is None or tile.scaled.get_width() != pixels:
            before = tile.nbytes
            tile.scaled = pygame.transform.scale(tile.surface, (pixels, pixels))
            self.cached_bytes += tile.nbytes - before  # the scaled picture is cached memory too
        return tile.scaled

    def _placeholder(self, screen: pygame.Surface, key: ChunkKey, rect: pygame.Rect) -> bool:
        """A coarser chunk of the same place, cut and scaled, if one is cached (True); else the flat
        colour (False)."""
        level, i, j = key
        for up in range(1, 4):
            parent = self.cache.get((level + up, i >> up, j >> up))
            if parent is None:
                continue
            part = CHUNK >> up
            source = pygame.Rect((i - ((i >> up) << up)) * part, (j - ((j >> up) << up)) * part, part, part)
            cut = parent.surface.subsurface(source)
            if rect.width <= MAX_SCALED:
                screen.blit(pygame.transform.scale(cut, rect.size), rect)
            else:  # zoomed far in, as for a chunk that is there: only what is on screen
                screen.blit(*_scaled_on_screen(cut, rect.width, rect.topleft, screen.get_rect()))
            return True
        screen.fill(PLACEHOLDER, rect)
        return False

    def _world_edge(self, screen: pygame.Surface, camera: EndlessCamera) -> None:
        """A clear line where the int32 world ends, if it is in view."""
        limit = 1 << 31
        w, h = screen.get_size()
        for edge in (-limit, limit):
            sx, sy = camera.world_to_screen(edge, edge)
            if 0 <= sx < w:
                pygame.draw.line(screen, EDGE, (round(sx), 0), (round(sx), h), 2)
            if 0 <= sy < h:
                pygame.draw.line(screen, EDGE, (0, round(sy)), (w, round(sy)), 2)

    # -- the record of what was seen, for the minimap ------------------------------------------------

    def _remember(self, data: ChunkData) -> None:
        """Paint the chunk's thumbnail into the minimap's pages at every minimap scale."""
        level, i, j = data.key
        size = span(level)
        colours = data.thumb.reshape(-1, 3).tolist()
        cell = size // THUMB  # cells per thumbnail pixel
        for index, scale in enumerate(MINIMAP_SCALES):
            per = cell / scale  # minimap pixels per thumbnail pixel
            if per < 1 and level > 0 and size < scale:
                continue  # a fine chunk smaller than a minimap pixel: the coarser chunks paint it
            for n, colour in enumerate(colours):
                x = i * size + (n % THUMB) * cell
                y = j * size + (n // THUMB) * cell
                if per < 1 and (x % scale or y % scale):
                    continue  # several thumbnail pixels per minimap pixel: one of them paints it
                px, py = x // scale, y // scale
                page_key = (index, px // PAGE, py // PAGE)
                page = self.pages.get(page_key)
                if page is None:
                    page = self.pages[page_key] = pygame.Surface((PAGE, PAGE))
                    page.fill(OUTSIDE)
                    if len(self.pages) > MAX_PAGES:
                        self.pages.popitem(last=False)
                else:
                    self.pages.move_to_end(page_key)
                extent = max(1, int(per))
                page.fill(colour, (px % PAGE, py % PAGE, extent, extent))

    def draw_minimap(self, screen: pygame.Surface, rect: pygame.Rect, camera: EndlessCamera) -> int:
        """What was seen around the camera in ``rect``, the view as a white frame; returns cells/pixel."""
        left, top, right, bottom = camera.visible()
        index = next(
            (n for n, s in enumerate(MINIMAP_SCALES) if rect.width * s >= 2 * (right - left)),
            len(MINIMAP_SCALES) - 1,
        )
        scale = MINIMAP_SCALES[index]
        x0 = math.floor(camera.x / scale) - rect.width // 2
        y0 = math.floor(camera.y / scale) - rect.height // 2
        screen.fill(OUTSIDE, rect)
        clip = screen.get_clip()
        screen.set_clip(rect)
        for pj in range(y0 // PAGE, (y0 + rect.height) // PAGE + 1):
            for pi in range(x0 // PAGE, (x0 + rect.width) // PAGE + 1):
                page = self.pages.get((index, pi, pj))
                if page is not None:
                    self.pages.move_to_end((index, pi, pj))
                    screen.blit(page, (rect.x + pi * PAGE - x0, rect.y + pj * PAGE - y0))
        view = pygame.Rect(
            rect.x + math.floor(left / scale) - x0,
            rect.y + math.floor(top / scale) - y0,
            max(3, round((right - left) / scale)),
            max(3, round((bottom - top) / scale)),
        )
        pygame.draw.rect(screen, (255, 255, 255), view, 1)
        screen.set_clip(clip)
        return scale

    # -- figures --------------------------------------------------------------------------------------

    def flight_latencies(self) -> list[int]:
        """The latencies of the chunks drawn after the first screen was full (the flight, without the
        start's fill of a whole empty screen, which a jump's figure measures)."""
        first = self.first_full_frame
        if first is None:
            return []
        return [v for v, f in zip(self.latencies, self.latency_frames, strict=True) if f > first]

    def latency_summary(self, values: list[int] | None = None) -> dict[str, float]:
        """p50, p95 and max of the chunk latency in frames."""
        data = [float(v) for v in (self.latencies if values is None else values)]
        return {
            "p50": round(percentile(data, 50), 2),
            "p95": round(percentile(data, 95), 2),
            "max": max(data, default=0.0),
        }

    def close(self) -> None:
        self.source.close()
        self.cache.clear()
