"""The endless world: chunks streamed by the VM pool around a camera that can fly anywhere.

Keys: WASD/arrows (Shift: fast flight), mouse drag, wheel or +/- zoom, J jumps far away, click the minimap
to go there, H/F1 HUD (the app's), Esc quits. The HUD shows the position, the zoom and level of detail,
one bar per VM (busy share and jobs per second over the last second), the queue and the chunk latency.
Input state is built from events only, so scripted events drive it as a player would.
"""

from __future__ import annotations

import math
import time
from collections import deque

import pygame

from game import layout, palette, ui
from game.chunkjob import CHUNK, WORLD_LIMIT
from game.chunksource import SourceStats
from game.controls import PAN_KEYS, PAN_SPEED, WHEEL_ZOOM
from game.endless_camera import EndlessCamera
from game.endless_creatures import EndlessCreatures
from game.scene import Host, Scene
from game.sprites import SPRITE_MIN_ZOOM
from game.stats import percentile
from game.streamer import ChunkStreamer

FAST = 8.0  # Shift multiplies the flight speed
SHIFT = (pygame.K_LSHIFT, pygame.K_RSHIFT)
HELP = (
    "WASD/arrows: fly (Shift: fast)   drag: pan   wheel: zoom   J: jump far   H: HUD   Esc: quit",
    "WASD: fly (Shift fast)   wheel: zoom   J: jump   H: HUD   Esc: quit",
    "J: jump   H: HUD   Esc: quit",
)
MINIMAP = 160
HUD_W = 320
JUMP_REACH = WORLD_LIMIT - (1 << 24)


class EndlessScene(Scene):
    """An endless world of ``streamer.seed``, centred first on ``at``, flying ``fly`` cells/s if given."""

    def __init__(
        self,
        host: Host,
        streamer: ChunkStreamer,
        at: tuple[float, float] = (0.0, 0.0),
        zoom: float | None = None,
        fly: tuple[float, float] | None = None,
    ) -> None:
        super().__init__(host)
        self.streamer = streamer
        self.camera = EndlessCamera(host.screen.get_size(), at[0], at[1])
        if zoom is not None:
            self.camera.set_zoom(zoom)
        self.fly = fly
        self.creatures = EndlessCreatures(streamer.seed)
        streamer.on_arrive = lambda tile: self.creatures.chunk_arrived(tile.data)
        streamer.on_evict = lambda key, tile: self.creatures.chunk_left(key)
        self.held: set[int] = set()
        self.mouse: tuple[int, int] | None = None
        self.dragging = False
        self.minimap_rect: pygame.Rect | None = None
        self.minimap_scale = 32
        self.last_position = (self.camera.x, self.camera.y)
        self.velocity = (0.0, 0.0)
        self.jumps = 0
        self.rates: deque[tuple[float, SourceStats]] = deque()
        self.samples = 0
        self.busy_frames: dict[str, int] = {}
        self.recent_busy: dict[str, deque[bool]] = {}

    # -- input ----------------------------------------------------------------------------------------

    def handle_event(self, event: pygame.event.Event) -> None:
        kind = event.type
        if kind == pygame.KEYDOWN:
            if event.key in PAN_KEYS or event.key in SHIFT:
                self.held.add(event.key)
            elif event.key == pygame.K_j:
                self.jump()
            elif event.key in (pygame.K_PLUS, pygame.K_EQUALS, pygame.K_KP_PLUS):
                self._zoom(WHEEL_ZOOM)
            elif event.key in (pygame.K_MINUS, pygame.K_KP_MINUS):
                self._zoom(1 / WHEEL_ZOOM)
        elif kind == pygame.KEYUP:
            self.held.discard(event.key)
        elif kind == pygame.WINDOWFOCUSLOST:
            self.held.clear()
            self.dragging = False
        elif kind == pygame.WINDOWLEAVE:
            self.mouse = None
        elif kind == pygame.MOUSEMOTION:
            if self.mouse is not None and self.dragging:
                self.camera.pan_pixels(event.pos[0] - self.mouse[0], event.pos[1] - self.mouse[1])
            self.mouse = event.pos
        elif kind == pygame.MOUSEBUTTONDOWN and event.button == 1:
            self.mouse = event.pos
            target = self.minimap_world(event.pos)
            if target is not None:
                self.camera.centre_on(*target)
            else:
                self.dragging = True
        elif kind == pygame.MOUSEBUTTONUP and event.button == 1:
            self.dragging = False
        elif kind == pygame.MOUSEWHEEL and event.y:
            self._zoom(WHEEL_ZOOM ** float(event.y))

    def _zoom(self, factor: float) -> None:
        pos = self.mouse or (self.camera.view_size[0] // 2, self.camera.view_size[1] // 2)
        self.camera.zoom_at(factor, *pos)

    def jump(self, to: tuple[float, float] | None = None) -> None:
        """Go far away at once (J): to ``to``, else to a random place of the world."""
        if to is None:
            rng = self.host.rng
            to = (rng.uniform(-JUMP_REACH, JUMP_REACH), rng.uniform(-JUMP_REACH, JUMP_REACH))
        self.camera.centre_on(*to)
        self.last_position = (self.camera.x, self.camera.y)
        self.jumps += 1

    def minimap_world(self, pos: tuple[int, int]) -> tuple[float, float] | None:
        """The world position under ``pos`` on the minimap, if it is there."""
        rect = self.minimap_rect
        if rect is None or not rect.collidepoint(pos):
            return None
        scale = self.minimap_scale
        return (
            self.camera.x + (pos[0] - rect.centerx) * scale,
            self.camera.y + (pos[1] - rect.centery) * scale,
        )

    # -- the tick ------------------------------------------------------------------------------------

    def update(self, dt: float) -> None:
        if self.fly is not None:
            self.camera.pan_cells(self.fly[0] * dt, self.fly[1] * dt)
        vx = sum(PAN_KEYS[key][0] for key in self.held if key in PAN_KEYS)
        vy = sum(PAN_KEYS[key][1] for key in self.held if key in PAN_KEYS)
        if vx or vy:
            speed = PAN_SPEED * (FAST if any(key in self.held for key in SHIFT) else 1.0)
            self.camera.pan_pixels(-vx * speed * dt, -vy * speed * dt)
        left, top, right, bottom = self.camera.visible()
        margin = CHUNK
        self.creatures.area = (left - margin, top - margin, right + margin, bottom + margin)
        self.creatures.update()

    # -- drawing -------------------------------------------------------------------------------------

    def draw(self, screen: pygame.Surface) -> None:
        camera = self.camera
        if camera.view_size != screen.get_size():
            camera.resize(screen.get_size())
        moved = (camera.x - self.last_position[0], camera.y - self.last_position[1])
        self.last_position = (camera.x, camera.y)
        # Cells per second, smoothed over a few frames; a jump is not motion.
        if math.hypot(*moved) < camera.view_size[0] / camera.zoom:
            fps = 60.0
            self.velocity = (
                0.8 * self.velocity[0] + 0.2 * moved[0] * fps,
                0.8 * self.velocity[1] + 0.2 * moved[1] * fps,
            )
        self.streamer.update(camera, self.velocity)
        self.sample_workers()
        self.streamer.draw(screen, camera)
        if camera.zoom >= SPRITE_MIN_ZOOM:
            # The panels are translucent: the terrain under them is put back over the creatures, so none
            # show through and flicker behind the text (as in the finite world).
            w, h = screen.get_size()
            under = [pygame.Rect(0, h - layout.STRIP_H, w, layout.STRIP_H), self.hud_rect(screen)]
            saved = [(screen.subsurface(r).copy(), r) for r in under if r is not None and r.w > 0 and r.h > 0]
            if self.creatures.draw(screen, camera):
                screen.fblits(saved)
        self._overlays(screen)

    def _overlays(self, screen: pygame.Surface) -> None:
        text = self.host.text
        w, h = screen.get_size()
        strip = pygame.Rect(0, h - layout.STRIP_H, w, layout.STRIP_H)
        ui.panel(screen, strip, 170)
        hint = text.render(text.first_fitting(HELP, 18, strip.width - 16), 18, palette.TEXT_DIM)
        screen.blit(hint, hint.get_rect(center=strip.center))
        self.minimap_rect = None
        size = min(MINIMAP, w // 4, (h - layout.STRIP_H) // 3)
        if size >= layout.MINIMAP_MIN:
            rect = pygame.Rect(w - layout.GAP - size, layout.GAP, size, size)
            self.minimap_scale = self.streamer.draw_minimap(screen, rect, self.camera)
            pygame.draw.rect(screen, palette.PANEL_EDGE, rect.inflate(4, 4), 2, border_radius=2)
            self.minimap_rect = rect
        if self.host.hud_visible:
            self._hud(screen)

    def sample_workers(self) -> SourceStats:
        """Read the source's stats once a frame and note which workers have a job in flight.

        The busy share is sampled per frame, not taken from the workers' busy seconds: the pool adds a
        busy stretch to those only when the VM goes idle, so a VM that never idles would read 0.
        """
        now = time.perf_counter()
        stats = self.streamer.source.stats()
        self.samples += 1
        for worker in stats.workers:
            self.busy_frames[worker.name] = self.busy_frames.get(worker.name, 0) + int(worker.busy)
            self.recent_busy.setdefault(worker.name, deque(maxlen=60)).append(worker.busy)
        self.rates.append((now, stats))
        while len(self.rates) > 2 and self.rates[1][0] <= now - 1.0:
            self.rates.popleft()
        return stats

    def worker_rows(self, stats: SourceStats) -> list[tuple[str, bool, float, float]]:
        """Per worker: name, busy now, busy share of the last second's frames, jobs per second."""
        then, old = self.rates[0]
        span = max(self.rates[-1][0] - then, 1e-6)
        before = {w.name: w.jobs_done for w in old.workers}
        rows = []
        for worker in stats.workers:
            recent = self.recent_busy.get(worker.name) or deque([worker.busy])
            share = sum(recent) / len(recent)
            rate = (worker.jobs_done - before.get(worker.name, 0)) / span if len(self.rates) > 1 else 0.0
            rows.append((worker.name, worker.busy, share, rate))
        return rows

    def hud_lines(self, stats: SourceStats | None = None) -> list[str]:
        """The HUD's text lines: frame time, position, seed/zoom/detail, queue and chunk latency."""
        stats = stats or self.streamer.source.stats()
        hud_stats = self.host.hud_stats
        last = hud_stats.recent[-1] if hud_stats.recent else 0.0
        clock = "  (game clock)" if self.host.settings.lockstep else ""
        camera = self.camera
        recent = [float(v) for v in self.streamer.recent_latencies]
        latency = f"p95 {percentile(recent, 95):.0f} frames" if recent else "-"
        # Fields are two spaces apart, and never hold two spaces themselves: a narrow panel wraps there.
        lines = [
            f"FPS {hud_stats.fps():.1f}  frame {last:.1f} ms{clock}",
            f"x {math.floor(camera.x)}  y {math.floor(camera.y)}",
            f"seed {self.streamer.seed}  zoom {camera.zoom:.3g}  detail 1:{1 << camera.level}",
            f"queue {stats.queued}  in flight {stats.in_flight}  latency {latency}",
        ]
        if self.streamer.failed:  # a line of its own, so that it is never cut off
            lines.append(f"{len(self.streamer.failed)} chunks failed: {self.streamer.last_error()}")
        return lines

    def hud_rect(self, screen: pygame.Surface) -> pygame.Rect | None:
        """Where the HUD goes (top left), or None when it is hidden or the window has no room for it."""
        layout_ = self._hud_layout(screen)
        return None if layout_ is None else layout_[0]

    def _hud_layout(
        self, screen: pygame.Surface
    ) -> tuple[pygame.Rect, list[tuple[str, tuple[int, int, int]]]] | None:
        """The HUD's rectangle and its text rows, a line that does not fit wrapped between its fields."""
        if not self.host.hud_visible or not self.rates:
            return None
        stats = self.rates[-1][1]
        width = min(HUD_W, screen.get_width() // 2)
        colours = (palette.TEXT, palette.TEXT, palette.TEXT_DIM, palette.TEXT_DIM, palette.BAD)
        rows = [
            (part, colour)
            for line, colour in zip(self.hud_lines(stats), colours, strict=False)
            for part in _wrap_fields(self.host.text, line, 18, width - 20)
        ]
        height = 22 * len(rows) + 18 * len(stats.workers) + 12
        rect = pygame.Rect(layout.GAP, layout.GAP, width, height)
        return None if rect.bottom > screen.get_height() - layout.STRIP_H - layout.GAP else (rect, rows)

    def _hud(self, screen: pygame.Surface) -> None:
        text = self.host.text
        hud = self._hud_layout(screen)
        if hud is None:
            return
        rect, lines = hud
        rows = self.worker_rows(self.rates[-1][1])
        ui.panel(screen, rect)
        x, y = rect.x + 10, rect.y + 8
        inner = rect.width - 20
        for line, colour in lines:
            screen.blit(text.render(line, 18, colour), (x, y))
            y += 22
        label_w = 44
        for name, busy, share, rate in rows:
            colour = palette.ACCENT if busy else palette.GOOD
            screen.blit(text.render(name, 16, palette.TEXT_DIM), (x, y))
            bar = pygame.Rect(x + label_w, y + 3, inner - label_w - 70, 10)
            pygame.draw.rect(screen, (12, 14, 20), bar)
            pygame.draw.rect(screen, colour, (bar.x, bar.y, round(bar.width * share), bar.height))
            pygame.draw.rect(screen, palette.PANEL_EDGE, bar, 1)
            screen.blit(text.render(f"{rate:4.0f} jobs/s", 16, palette.TEXT_DIM), (bar.right + 6, y))
            y += 18

    def vm_busy(self) -> dict[str, float]:
        """Each worker's busy share of the whole run so far: the share of frames it had a job in flight."""
        return {name: round(busy / max(1, self.samples), 3) for name, busy in self.busy_frames.items()}

    def leave(self) -> None:
        self.held.clear()
        self.dragging = False


def _wrap_fields(text: ui.Text, line: str, size: int, width: int) -> list[str]:
    """``line`` as rows at most ``width`` pixels wide, broken only between fields (two spaces apart);
    a field wider than the row on its own is cut to fit."""
    rows: list[str] = []
    for field in line.split("  "):
        field = field.strip()
        if not field:
            continue
        joined = f"{rows[-1]}  {field}" if rows else field
        if rows and text.font(size).size(joined)[0] <= width:
            rows[-1] = joined
        else:
            rows.append(text.fit(field, size, width))
    return rows
