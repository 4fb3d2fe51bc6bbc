"""The camera: which part of the world is on screen, and at what zoom.

Positions are world cells as floats (cell ``(x, y)`` covers ``[x, x + 1) x [y, y + 1)``), the zoom is
screen pixels per cell. The camera knows nothing about pygame, so tests can drive it directly.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

MAX_ZOOM = 32.0
# How far past the world's edge the view may go, as a share of the view: enough to bring the cells at the
# edge out from under a corner panel, never so far that the world leaves the screen.
EDGE_SLACK = 0.25


@dataclass
class Camera:
    """A view of a ``world_size`` world on a ``view_size`` screen, centred on ``(x, y)``."""

    world_size: tuple[int, int]
    view_size: tuple[int, int]
    x: float = 0.0
    y: float = 0.0
    zoom: float = 1.0

    @classmethod
    def fitting(cls, world_size: tuple[int, int], view_size: tuple[int, int]) -> Camera:
        """A camera centred on the world, zoomed so the whole world fits the view."""
        camera = cls(world_size, view_size, world_size[0] / 2, world_size[1] / 2)
        camera.zoom = camera.min_zoom
        camera.clamp()
        return camera

    @property
    def min_zoom(self) -> float:
        """The zoom at which the whole world fits the view."""
        return min(self.view_size[0] / self.world_size[0], self.view_size[1] / self.world_size[1], MAX_ZOOM)

    def resize(self, view_size: tuple[int, int]) -> None:
        """Follow a window resize, keeping the centre."""
        self.view_size = view_size
        self.clamp()

    def clamp(self) -> None:
        """Keep the zoom in range and the world in view.

        Along an axis where the whole world fits the view it stays centred (so at the fit zoom panning
        moves nothing); where it is larger, the view may pass its edge by at most :data:`EDGE_SLACK` of
        the view, and never by more than the world overflows the view.
        """
        self.zoom = min(MAX_ZOOM, max(self.min_zoom, self.zoom))
        self.x = self._clamped(self.x, self.world_size[0], self.view_size[0])
        self.y = self._clamped(self.y, self.world_size[1], self.view_size[1])

    def _clamped(self, centre: float, world: int, view: int) -> float:
        """``centre`` (in cells) along one axis of ``world`` cells seen through ``view`` pixels."""
        overflow = world * self.zoom - view  # screen pixels of world that do not fit the view
        if overflow <= 0:
            return world / 2
        slack = min(EDGE_SLACK * view, overflow) / self.zoom
        half = view / 2 / self.zoom
        return min(world - half + slack, max(half - slack, centre))

    def screen_to_world(self, sx: float, sy: float) -> tuple[float, float]:
        """The world position under screen pixel ``(sx, sy)``."""
        return (
            self.x + (sx - self.view_size[0] / 2) / self.zoom,
            self.y + (sy - self.view_size[1] / 2) / self.zoom,
        )

    def world_to_screen(self, wx: float, wy: float) -> tuple[float, float]:
        """The screen pixel where world position ``(wx, wy)`` is drawn."""
        return (
            (wx - self.x) * self.zoom + self.view_size[0] / 2,
            (wy - self.y) * self.zoom + self.view_size[1] / 2,
        )

    def pan_pixels(self, dx: float, dy: float) -> None:
        """Move the view by ``(dx, dy)`` screen pixels (a drag to the right moves the world right)."""
        self.x -= dx / self.zoom
        self.y -= dy / self.zoom
        self.clamp()

    def zoom_at(self, factor: float, sx: float, sy: float) -> None:
        """Multiply the zoom by ``factor`` keeping the world point under screen pixel ``(sx, sy)`` fixed."""
        wx, wy = self.screen_to_world(sx, sy)
        self.zoom = min(MAX_ZOOM, max(self.min_zoom, self.zoom * factor))
        self.x = wx - (sx - self.view_size[0] / 2) / self.zoom
        self.y = wy - (sy - self.view_size[1] / 2) / self.zoom
        self.clamp()

    def centre_on(self, wx: float, wy: float) -> None:
        """Put world position ``(wx, wy)`` in the middle of the view."""
        self.x, self.y = wx, wy
        self.clamp()

    def visible(self) -> tuple[float, float, float, float]:
        """The world rectangle on screen as ``(left, top, right, bottom)`` in cells."""
        half_w = self.view_size[0] / 2 / self.zoom
        half_h = self.view_size[1] / 2 / self.zoom
        return (self.x - half_w, self.y - half_h, self.x + half_w, self.y + half_h)

    def level_for_zoom(self, level_count: int) -> int:
        """The mip level to draw from: the coarsest one that still has at least one pixel per screen pixel."""
        if self.zoom >= 1.0:
            return 0
        return max(0, min(level_count - 1, math.floor(math.log2(1.0 / self.zoom) + 1e-9)))
