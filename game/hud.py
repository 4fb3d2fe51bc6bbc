"""The overlays drawn over the world: HUD panel with the frame graph, minimap, legend, tooltip."""

from __future__ import annotations

import pygame

from game import layout, palette, ui
from game.camera import Camera
from game.generation import Generator
from game.render import WorldRenderer
from game.stats import FrameStats

GRAPH_MS = 33.3  # top of the frame-time graph: two 60 FPS frames
TARGET_MS = 1000 / 60


def vm_state(generator: Generator, timings: bool = True) -> tuple[str, tuple[int, int, int]]:
    """VM 1's state for the HUD: idle (with the last job's time) or generating with its progress.

    The seed being generated is not on this line (the banner or the help strip shows it), so the line
    fits the panel with a 10-digit seed and the longest stage name. ``timings=False`` leaves out the
    job's wall time, which differs from run to run (headless pictures must not).
    """
    if generator.busy:
        fraction, stage = generator.progress
        return (f"VM 1: generating {fraction * 100:3.0f}% {stage}".rstrip(), palette.ACCENT)
    last = generator.last_seconds
    shown = timings and last is not None
    return ("VM 1: idle" + (f" (last job {last:.2f} s)" if shown else ""), palette.GOOD)


class Hud:
    """FPS, the last 240 frame times against the 16.7 ms line, VM 1's state, seed and size."""

    width = layout.HUD_WIDTH

    def __init__(self, text: ui.Text) -> None:
        self.text = text

    def draw(
        self,
        target: pygame.Surface,
        stats: FrameStats,
        generator: Generator,
        seed: int,
        size: tuple[int, int],
        rect: pygame.Rect | None = None,
        *,
        game_clock: bool = False,
    ) -> pygame.Rect:
        """Draw the panel in ``rect`` (default: the full HUD at the top left); returns the rectangle.

        Every line is cut to the panel's width. The frame graph is drawn when ``rect`` is tall enough
        (:data:`game.layout.HUD_FULL_H`). ``game_clock``: ``stats`` hold the game's fixed steps, not
        measured times (headless runs), which the first line says; VM 1's job time is left out then.
        """
        if rect is None:
            rect = pygame.Rect(layout.GAP, layout.GAP, self.width, layout.HUD_FULL_H)
        ui.panel(target, rect)
        x, y = rect.x + 10, rect.y + 8
        inner = rect.width - 20
        fps = stats.fps()
        last = stats.recent[-1] if stats.recent else 0.0
        clock = "   (game clock)" if game_clock else ""
        state, state_colour = vm_state(generator, timings=not game_clock)
        lines = [
            (f"FPS {fps:5.1f}   frame {last:5.1f} ms{clock}", 20, palette.TEXT, 0),
            (state, 18, state_colour, 22),
            (f"seed {seed}   size {size[0]}x{size[1]}", 18, palette.TEXT_DIM, 42),
        ]
        for line, font_size, colour, dy in lines:
            fitted = self.text.fit(line, font_size, inner)
            target.blit(self.text.render(fitted, font_size, colour), (x, y + dy))
        graph = pygame.Rect(x, y + 64, inner, 64)
        if rect.height >= layout.HUD_FULL_H and graph.width > 0:
            self._graph(target, graph, stats)
        return rect

    def _graph(self, target: pygame.Surface, rect: pygame.Rect, stats: FrameStats) -> None:
        pygame.draw.rect(target, (12, 14, 20), rect)
        line_y = rect.bottom - round(rect.height * TARGET_MS / GRAPH_MS)
        pygame.draw.line(target, (70, 130, 90), (rect.x, line_y), (rect.right - 1, line_y))
        target.blit(self.text.render("16.7 ms", 14, (110, 170, 120)), (rect.x + 2, line_y - 11))
        times = list(stats.recent)
        if len(times) >= 2:
            step = rect.width / max(1, stats.graph_size - 1)
            start = rect.right - step * (len(times) - 1)
            points = [
                (start + i * step, rect.bottom - 1 - min(rect.height - 1, rect.height * t / GRAPH_MS))
                for i, t in enumerate(times)
            ]
            pygame.draw.lines(target, palette.ACCENT, False, points)
        pygame.draw.rect(target, palette.PANEL_EDGE, rect, 1)


class Minimap:
    """The whole world in a corner, the viewport as a rectangle; clicking it moves the camera there.

    The layout decides its size and place each frame (:meth:`place`); in a window without room for it,
    it is hidden and takes no clicks.
    """

    def __init__(self, renderer: WorldRenderer, box: int = layout.MINIMAP_MAX) -> None:
        self.renderer = renderer
        self.box = box
        self.image = renderer.minimap(box)
        self.world_size = (renderer.world.width, renderer.world.height)
        self.rect = self.image.get_rect()
        self.visible = True

    def place(self, rect: pygame.Rect | None, box: int) -> None:
        """Show the map in ``rect``, which the layout made for a ``box``-pixel map; None hides it."""
        self.visible = rect is not None
        if rect is None:
            return
        if box != self.box:
            # Only on a window resize: smoothscaling from the smallest zoom level takes well under 1 ms.
            self.image = self.renderer.minimap(box)
            self.box = box
        self.rect = rect.copy()

    def draw(self, target: pygame.Surface, camera: Camera) -> None:
        """The map, its frame and the visible rectangle."""
        if not self.visible:
            return
        target.blit(self.image, self.rect)
        frame = layout.MINIMAP_FRAME
        pygame.draw.rect(
            target, palette.PANEL_EDGE, self.rect.inflate(2 * frame, 2 * frame), frame, border_radius=2
        )
        sx = self.rect.width / self.world_size[0]
        sy = self.rect.height / self.world_size[1]
        left, top, right, bottom = camera.visible()
        view = pygame.Rect(
            self.rect.x + round(left * sx),
            self.rect.y + round(top * sy),
            max(3, round((right - left) * sx)),
            max(3, round((bottom - top) * sy)),
        ).clip(self.rect.inflate(2, 2))
        pygame.draw.rect(target, (255, 255, 255), view, 1)

    def to_world(self, pos: tuple[int, int]) -> tuple[float, float] | None:
        """The world position under screen ``pos`` if it is on the (shown) minimap."""
        if not self.visible or not self.rect.collidepoint(pos):
            return None
        return (
            (pos[0] - self.rect.x + 0.5) * self.world_size[0] / self.rect.width,
            (pos[1] - self.rect.y + 0.5) * self.world_size[1] / self.rect.height,
        )


class Legend:
    """Colour swatches for the biomes this world contains, largest share first.

    The layout says how many rows fit; when not all do, the last row says how many are left out.
    """

    def __init__(self, text: ui.Text, names: tuple[str, ...], shares: dict[int, float]) -> None:
        self.text = text
        ordered = sorted(((share, index) for index, share in shares.items() if share > 0), reverse=True)
        self.entries = [
            (names[index] if index < len(names) else f"biome {index}", share) for share, index in ordered
        ]
        self._image: pygame.Surface | None = None
        self._key: tuple[int, int, int] = (0, 0, 0)

    @property
    def rows(self) -> int:
        """How many biome rows the full legend has."""
        return len(self.entries)

    def image(self, size: tuple[int, int], rows: int) -> pygame.Surface:
        """The legend panel, ``size`` pixels, with the first ``rows`` biomes (cached until they change)."""
        key = (*size, rows)
        if self._image is None or key != self._key:
            self._image = self._render(size, rows)
            self._key = key
        return self._image

    def _render(self, size: tuple[int, int], rows: int) -> pygame.Surface:
        text = self.text
        width = size[0]
        image = pygame.Surface(size, pygame.SRCALPHA)
        ui.panel(image, image.get_rect())
        title = text.fit("Biomes (L to hide)", 18, width - 20)
        image.blit(text.render(title, 18, palette.TEXT_DIM), (10, 8))
        y0 = layout.LEGEND_HEAD_H - 2
        for row, (name, share) in enumerate(self.entries[:rows]):
            y = y0 + layout.LEGEND_ROW_H * row
            swatch = pygame.Rect(10, y + 1, 14, 14)
            pygame.draw.rect(image, palette.biome_colour(name), swatch)
            pygame.draw.rect(image, (0, 0, 0), swatch, 1)
            pct = text.render(f"{share * 100:4.1f}%", 18, palette.TEXT_DIM)
            image.blit(pct, (width - 10 - pct.get_width(), y))
            label = text.fit(palette.pretty(name), 18, width - 48 - pct.get_width())
            image.blit(text.render(label, 18), (32, y))
        left_out = len(self.entries) - rows
        if left_out > 0:
            more = text.fit(f"and {left_out} more", 18, width - 20)
            image.blit(text.render(more, 18, palette.TEXT_DIM), (10, y0 + layout.LEGEND_ROW_H * rows))
        return image

    def draw(self, target: pygame.Surface, rect: pygame.Rect, rows: int) -> None:
        """The legend in ``rect`` with its first ``rows`` biomes (``rect`` comes from the layout)."""
        target.blit(self.image(rect.size, rows), rect.topleft)


TOOLTIP_SIZE = 18  # font size, and the height of a line
TOOLTIP_PAD = (8, 5)  # text inset from the panel's edge
TOOLTIP_REACH = 40  # pixels between the pointer and the tooltip's nearest edge, at most, where possible


def tooltip_plan(
    text: ui.Text,
    lines: list[str],
    view: tuple[int, int],
    pointer: tuple[int, int],
    avoid: list[pygame.Rect],
) -> tuple[pygame.Rect, list[str]] | None:
    """The tooltip's rectangle and lines for ``lines`` (most important first) beside the pointer.

    In a small window lines are cut to its width, and the last lines are left out until the panel finds
    a place (:func:`game.layout.tooltip_rect`) within :data:`TOOLTIP_REACH` of the pointer (a tooltip
    far away is not read as the pointer's); only if none has one does it go further. None when not even
    the first line has a place.
    """
    pad_x, pad_y = TOOLTIP_PAD
    room = view[0] - 2 * pad_x
    fitted = [line for line in (text.fit(line, TOOLTIP_SIZE, room) for line in lines) if line]
    font = text.font(TOOLTIP_SIZE)
    for reach in (TOOLTIP_REACH, None):
        for count in range(len(fitted), 0, -1):
            shown = fitted[:count]
            width = 2 * pad_x + max(font.size(line)[0] for line in shown)
            height = 2 * pad_y + TOOLTIP_SIZE * count
            rect = layout.tooltip_rect(view, (width, height), pointer, avoid, reach)
            if rect is not None:
                return rect, shown
    return None


def draw_tooltip(target: pygame.Surface, text: ui.Text, rect: pygame.Rect, lines: list[str]) -> None:
    """The tooltip panel ``rect`` with ``lines`` (from :func:`tooltip_plan`)."""
    ui.panel(target, rect, 230)
    for i, line in enumerate(lines):
        position = (rect.x + TOOLTIP_PAD[0], rect.y + TOOLTIP_PAD[1] + 1 + TOOLTIP_SIZE * i)
        target.blit(text.render(line, TOOLTIP_SIZE), position)
