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

import worldgen
from game import layout, palette, terrain
from game.camera import Camera
from game.worlddata import WorldData


def surface_from_rgbx(image: npt.NDArray[np.uint8]) -> pygame.Surface:
    """Wrap an (H, W, 4) C-contiguous uint8 RGBX array as a 32-bit Surface without copying it."""
    if not image.flags.c_contiguous:
        image = np.ascontiguousarray(image)
    height, width = image.shape[:2]
    return pygame.image.frombuffer(image.data, (width, height), "RGBX")


# pygame-ce 2.5.8's smoothscale breaks on extreme shrinks, which thin worlds (one level, no smaller mip)
# ask for: shrinking a side longer than ~131,072 pixels corrupts the heap and aborts the process (140,000
# x 1 to 1,000 x 1: "double free or corruption"), and shrinking more than ~300x gives wrong colours (a
# green of 200 comes out as 72 at 512x). Such a side is first thinned out, every k-th pixel, to at most
# SMOOTHSCALE_MAX_SIDE pixels and at most SMOOTHSCALE_MAX_SHRINK times the target.
SMOOTHSCALE_MAX_SIDE = 65536
# From this many screen pixels per cell up, cells are drawn with rounded borders and smooth shading.
SMOOTH_ZOOM = 2.0
SMOOTHSCALE_MAX_SHRINK = 128


def _thinning_step(length: int, target: int) -> int:
    """Keep every k-th of ``length`` pixels, so that smoothscale shrinks the rest at most ~256x."""
    return max(1, -(-length // SMOOTHSCALE_MAX_SIDE), length // (max(1, target) * SMOOTHSCALE_MAX_SHRINK))


def smoothscale(
    piece: pygame.Surface, pixels: npt.NDArray[np.uint8], size: tuple[int, int], *, convert: bool = False
) -> pygame.Surface:
    """``pygame.transform.smoothscale(piece, size)`` for a piece of any size (``pixels``: its RGBX array).

    ``convert`` first converts the piece to the display's format, when there is a display: worth it for
    a Surface made once (the minimap), not for the pieces of a frame.
    """
    height, width = pixels.shape[:2]
    step_x, step_y = _thinning_step(width, size[0]), _thinning_step(height, size[1])
    if step_x > 1 or step_y > 1:
        piece = surface_from_rgbx(np.ascontiguousarray(pixels[::step_y, ::step_x]))
    if convert and pygame.display.get_surface() is not None:
        piece = piece.convert()
    return pygame.transform.smoothscale(piece, size)


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
        index = len(self.levels) - 1
        for i, level in enumerate(self.levels):
            if level.get_width() >= size[0] and level.get_height() >= size[1]:
                index = i
        return smoothscale(self.levels[index], self.world.levels[index], size, convert=True)

    def _smooth_piece(self, px0: int, py0: int, px1: int, py1: int, size: tuple[int, int]) -> pygame.Surface:
        """Cells [px0, px1) x [py0, py1) drawn at ``size`` without staircases or blur.

        The unshaded colours are enlarged by ``scale2x`` (an edge-aware 2x upscaler that rounds the
        borders between flat colours instead of blurring them), the brightness by interpolation (it is
        smooth anyway), and the two are multiplied.
        """
        world = self.world
        biome = world.biome[py0:py1, px0:px1]
        elevation = world.elevation[py0:py1, px0:px1]
        # Surfaces made with frombuffer do not own their pixels: the arrays stay referenced until the end.
        flat_pixels = terrain.flat_colours(
            biome, elevation, world.biome_names, world.water_ids, worldgen.SEA_LEVEL
        )
        light_pixels = terrain.light(biome, elevation, world.water_ids, worldgen.SEA_LEVEL)
        flat = surface_from_rgbx(flat_pixels)
        while flat.get_width() * 2 <= 2 * size[0] and flat.get_height() * 2 <= 2 * size[1]:
            flat = pygame.transform.scale2x(flat)
        colour = pygame.transform.smoothscale(flat, size)
        light = pygame.transform.smoothscale(surface_from_rgbx(light_pixels), size)
        colour.blit(light, (0, 0), None, pygame.BLEND_RGB_MULT)
        colour.blit(colour.copy(), (0, 0), None, pygame.BLEND_RGB_ADD)  # light 128 is 1.0: double
        del flat_pixels, light_pixels
        return colour

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
            elif pixel >= SMOOTH_ZOOM and level_index == 0:
                # Zoomed in to several pixels per cell: rounded borders and smooth shading.
                self._cache = self._smooth_piece(px0, py0, px1, py1, (dest_w, dest_h))
            elif pixel >= 1.0:
                # Zoomed in a little: square cells.
                self._cache = pygame.transform.scale(piece, (dest_w, dest_h))
            else:
                pixels = self.world.levels[level_index][py0:py1, px0:px1]
                self._cache = smoothscale(piece, pixels, (dest_w, dest_h))
            self._cache_key = key
            self.scaled_this_frame = True
        target.blit(self._cache, (dest_x0, dest_y0))
