"""Drawing the terrain: Surfaces made once per world, only the visible part scaled and blitted.

VM 1 sends the coloured image and its 2x reductions (:mod:`game.terrain`). Here each level becomes a
Surface with ``pygame.image.frombuffer`` (no copy, no per-pixel work). A frame takes the level just finer
than the zoom, cuts out the visible cells, scales only that piece to the screen and keeps it: while the
camera does not move to a new cell or zoom, the same scaled piece is blitted again.
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt
import pygame

from game import layout, palette
from game.camera import Camera
from game.worlddata import WorldData


def surface_from_rgbx(image: npt.NDArray[np.uint8]) -> pygame.Surface:
    """Wrap an (H, W, 4) C-contiguous uint8 RGBX array as a 32-bit Surface without copying it."""
    if not image.flags.c_contiguous:
        image = np.ascontiguousarray(image)
    height, width = image.shape[:2]
    return pygame.image.frombuffer(image.data, (width, height), "RGBX")


class WorldRenderer:
    """Draws one world's terrain for any camera; build a new one when the world changes."""

    def __init__(self, world: WorldData) -> None:
        self.world = world
        # The arrays stay referenced by self.world, so the wrapped buffers outlive the Surfaces.
        self.levels = [surface_from_rgbx(level) for level in world.levels]
        self._cache_key: tuple[int, ...] | None = None
        self._cache: pygame.Surface | None = None
        self.scaled_this_frame = False

    def minimap(self, box: int) -> pygame.Surface:
        """The whole world scaled to fit a ``box`` x ``box`` square, from the smallest level covering it."""
        size = layout.minimap_size((self.world.width, self.world.height), box)
        source = self.levels[-1]
        for level in self.levels:
            if level.get_width() >= size[0] and level.get_height() >= size[1]:
                source = level
        return pygame.transform.smoothscale(
            source.convert() if pygame.display.get_surface() else source, size
        )

    def draw(self, target: pygame.Surface, camera: Camera) -> None:
        """Fill ``target`` with the part of the world ``camera`` sees."""
        target.fill(palette.BACKGROUND)
        level_index = camera.level_for_zoom(len(self.levels))
        level = self.levels[level_index]
        scale = 1.0 / (1 << level_index)  # level pixels per world cell
        left, top, right, bottom = camera.visible()
        # Whole level pixels that cover the view, clipped to the world.
        px0 = max(0, math.floor(left * scale))
        py0 = max(0, math.floor(top * scale))
        px1 = min(level.get_width(), math.ceil(right * scale))
        py1 = min(level.get_height(), math.ceil(bottom * scale))
        self.scaled_this_frame = False
        if px1 <= px0 or py1 <= py0:
            return
        pixel = camera.zoom / scale  # screen pixels per level pixel
        sx, sy = camera.world_to_screen(px0 / scale, py0 / scale)
        # Scale to whole screen pixels from the rounded edges, so neighbouring cells never leave gaps.
        dest_x0, dest_y0 = math.floor(sx), math.floor(sy)
        dest_w = max(1, math.floor(sx + (px1 - px0) * pixel) - dest_x0)
        dest_h = max(1, math.floor(sy + (py1 - py0) * pixel) - dest_y0)
        key = (level_index, px0, py0, px1, py1, dest_w, dest_h)
        if key != self._cache_key or self._cache is None:
            piece = level.subsurface((px0, py0, px1 - px0, py1 - py0))
            if piece.get_size() == (dest_w, dest_h):
                # One level pixel per screen pixel (zoom 1, 1/2, ...): no scaling, blit the piece itself.
                self._cache = piece
            elif pixel >= 1.0:
                # Zoomed in: crisp square cells.
                self._cache = pygame.transform.scale(piece, (dest_w, dest_h))
            else:
                self._cache = pygame.transform.smoothscale(piece, (dest_w, dest_h))
            self._cache_key = key
            self.scaled_this_frame = True
        target.blit(self._cache, (dest_x0, dest_y0))
