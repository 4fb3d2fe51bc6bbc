"""The overlays drawn over the world: HUD panel with the frame graph, minimap, legend, tooltip."""

from __future__ import annotations

import pygame

from game import palette, ui
from game.camera import Camera
from game.generation import Generator
from game.render import WorldRenderer
from game.stats import FrameStats

GRAPH_MS = 33.3  # top of the frame-time graph: two 60 FPS frames
TARGET_MS = 1000 / 60


def vm_state(generator: Generator) -> tuple[str, tuple[int, int, int]]:
    """VM 1's state for the HUD: idle (with the last job's time) or generating with its progress."""
    if generator.busy:
        fraction, stage = generator.progress
        request = generator.current
        seed = f" seed {request.seed}" if request else ""
        return (f"VM 1: generating{seed} {fraction * 100:3.0f}% {stage}", palette.ACCENT)
    last = generator.last_seconds
    return ("VM 1: idle" + (f" (last job {last:.2f} s)" if last is not None else ""), palette.GOOD)


class Hud:
    """FPS, the last 240 frame times against the 16.7 ms line, VM 1's state, seed and size."""

    width = 300

    def __init__(self, text: ui.Text) -> None:
        self.text = text

    def draw(
        self,
        target: pygame.Surface,
        stats: FrameStats,
        generator: Generator,
        seed: int,
        size: tuple[int, int],
    ) -> pygame.Rect:
        """Draw the panel at the top left; returns its rectangle."""
        graph_h = 64
        rect = pygame.Rect(8, 8, self.width, 80 + graph_h + 8)
        ui.panel(target, rect)
        x, y = rect.x + 10, rect.y + 8
        fps = stats.fps()
        last = stats.recent[-1] if stats.recent else 0.0
        target.blit(self.text.render(f"FPS {fps:5.1f}   frame {last:5.1f} ms", 20), (x, y))
        state, colour = vm_state(generator)
        target.blit(self.text.render(state, 18, colour), (x, y + 22))
        target.blit(
            self.text.render(f"seed {seed}   size {size[0]}x{size[1]}", 18, palette.TEXT_DIM), (x, y + 42)
        )
        graph = pygame.Rect(x, y + 64, rect.width - 20, graph_h)
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
    """The whole world in a corner, the viewport as a rectangle; clicking it moves the camera there."""

    def __init__(self, renderer: WorldRenderer, box: int = 180) -> None:
        self.image = renderer.minimap(box)
        self.world_size = (renderer.world.width, renderer.world.height)
        self.rect = self.image.get_rect()

    def place(self, view_size: tuple[int, int]) -> None:
        """Put the minimap in the top-right corner of a ``view_size`` screen."""
        self.rect.topright = (view_size[0] - 10, 10)

    def draw(self, target: pygame.Surface, camera: Camera) -> None:
        """The map, its frame and the visible rectangle."""
        target.blit(self.image, self.rect)
        pygame.draw.rect(target, palette.PANEL_EDGE, self.rect.inflate(4, 4), 2, border_radius=2)
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
        """The world position under screen ``pos`` if it is on the minimap."""
        if not self.rect.collidepoint(pos):
            return None
        return (
            (pos[0] - self.rect.x + 0.5) * self.world_size[0] / self.rect.width,
            (pos[1] - self.rect.y + 0.5) * self.world_size[1] / self.rect.height,
        )


class Legend:
    """Colour swatches for the biomes this world contains, largest share first."""

    def __init__(self, text: ui.Text, names: tuple[str, ...], shares: dict[int, float]) -> None:
        rows = sorted(((share, index) for index, share in shares.items() if share > 0), reverse=True)
        height = 30 + 19 * len(rows)
        self.image = pygame.Surface((210, height), pygame.SRCALPHA)
        ui.panel(self.image, self.image.get_rect())
        self.image.blit(text.render("Biomes (L to hide)", 18, palette.TEXT_DIM), (10, 8))
        for row, (share, index) in enumerate(rows):
            y = 28 + 19 * row
            name = names[index] if index < len(names) else f"biome {index}"
            swatch = pygame.Rect(10, y + 1, 14, 14)
            pygame.draw.rect(self.image, palette.biome_colour(name), swatch)
            pygame.draw.rect(self.image, (0, 0, 0), swatch, 1)
            self.image.blit(text.render(palette.pretty(name), 18), (32, y))
            pct = text.render(f"{share * 100:4.1f}%", 18, palette.TEXT_DIM)
            self.image.blit(pct, (200 - pct.get_width(), y))

    def draw(self, target: pygame.Surface) -> None:
        """At the bottom left, above the help line."""
        target.blit(self.image, (8, target.get_height() - self.image.get_height() - 34))


def tooltip(target: pygame.Surface, text: ui.Text, lines: list[str], pos: tuple[int, int]) -> None:
    """A small panel of ``lines`` next to the cursor, kept on screen."""
    surfaces = [text.render(line, 18) for line in lines]
    width = 16 + max(s.get_width() for s in surfaces)
    height = 10 + 18 * len(surfaces)
    rect = pygame.Rect(pos[0] + 18, pos[1] + 18, width, height)
    if rect.right > target.get_width():
        rect.right = pos[0] - 8
    if rect.bottom > target.get_height():
        rect.bottom = pos[1] - 8
    ui.panel(target, rect, 230)
    for i, surface in enumerate(surfaces):
        target.blit(surface, (rect.x + 8, rect.y + 6 + 18 * i))
