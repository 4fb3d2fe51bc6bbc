"""The endless world's camera: a centre anywhere in the int32 world, a zoom, and the level of detail.

Unlike :class:`game.camera.Camera` there is no world to keep in view, only the world's coordinate range.
The zoom is kept such that a chunk is a whole number of screen pixels wide at its level of detail and the
view's origin is a whole pixel, so neighbouring chunks always meet exactly (no seams, no gaps) and a
chunk's scaled picture can be reused while the zoom stays. No pygame here.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from game.chunkjob import WORLD_LIMIT, max_level, span

MAX_ZOOM = 32.0
DEFAULT_ZOOM = 2.0


def level_for(zoom: float, levels: int) -> int:
    """The level of detail for ``zoom`` (at most ``levels``): the finest whose samples are at least one
    screen pixel apart, so a sample is drawn 1 to 2 pixels wide and a chunk 128 to 255 pixels wide.

    So the number of chunk jobs a view costs hardly depends on the zoom: a view 5,000 cells wide takes
    about as many as one 640 cells wide.
    """
    if zoom >= 1.0:
        return 0
    return max(0, min(levels, math.ceil(math.log2(1.0 / zoom) - 1e-9)))


@dataclass
class EndlessCamera:
    """A ``view_size`` view centred on world position ``(x, y)`` (in cells) at ``zoom`` pixels per cell."""

    view_size: tuple[int, int]
    x: float = 0.0
    y: float = 0.0
    zoom: float = DEFAULT_ZOOM

    def __post_init__(self) -> None:
        self.set_zoom(self.zoom)

    @property
    def min_zoom(self) -> float:
        """The smallest zoom: one screen pixel per sample of the coarsest level."""
        return 1.0 / (1 << max_level())

    @property
    def level(self) -> int:
        return level_for(self.zoom, max_level())

    @property
    def chunk_pixels(self) -> int:
        """Screen pixels on a side of a chunk at the current level."""
        return round(span(self.level) * self.zoom)

    def set_zoom(self, zoom: float) -> None:
        """Zoom to about ``zoom``: clamped, then rounded so that a chunk is a whole number of pixels."""
        zoom = min(MAX_ZOOM, max(self.min_zoom, zoom))
        size = span(level_for(zoom, max_level()))
        self.zoom = max(1, round(size * zoom)) / size
        self.clamp()

    def clamp(self) -> None:
        """Keep the centre inside the world's coordinate range (the view may show past its edge)."""
        self.x = min(WORLD_LIMIT - 1.0, max(-WORLD_LIMIT + 1.0, self.x))
        self.y = min(WORLD_LIMIT - 1.0, max(-WORLD_LIMIT + 1.0, self.y))

    def resize(self, view_size: tuple[int, int]) -> None:
        self.view_size = view_size

    def origin(self) -> tuple[int, int]:
        """The world position of the screen's top-left pixel, in whole screen pixels (``cell * zoom``)."""
        return (
            math.floor(self.x * self.zoom - self.view_size[0] / 2),
            math.floor(self.y * self.zoom - self.view_size[1] / 2),
        )

    def screen_to_world(self, sx: float, sy: float) -> tuple[float, float]:
        ox, oy = self.origin()
        return ((ox + sx) / self.zoom, (oy + sy) / self.zoom)

    def world_to_screen(self, wx: float, wy: float) -> tuple[float, float]:
        ox, oy = self.origin()
        return (wx * self.zoom - ox, wy * self.zoom - oy)

    def pan_pixels(self, dx: float, dy: float) -> None:
        self.x -= dx / self.zoom
        self.y -= dy / self.zoom
        self.clamp()

    def pan_cells(self, dx: float, dy: float) -> None:
        self.x += dx
        self.y += dy
        self.clamp()

    def zoom_at(self, factor: float, sx: float, sy: float) -> None:
        """Multiply the zoom by ``factor`` keeping the world point under screen pixel ``(sx, sy)`` fixed."""
        wx, wy = self.screen_to_world(sx, sy)
        self.set_zoom(self.zoom * factor)
        self.x = wx - (sx - self.view_size[0] / 2) / self.zoom
        self.y = wy - (sy - self.view_size[1] / 2) / self.zoom
        self.clamp()

    def centre_on(self, wx: float, wy: float) -> None:
        self.x, self.y = wx, wy
        self.clamp()

    def visible(self) -> tuple[float, float, float, float]:
        """The world rectangle on screen as ``(left, top, right, bottom)`` in cells."""
        ox, oy = self.origin()
        w, h = self.view_size
        return (ox / self.zoom, oy / self.zoom, (ox + w) / self.zoom, (oy + h) / self.zoom)
