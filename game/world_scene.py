"""The world scene: terrain, wandering creatures, camera, minimap, tooltip, legend, regeneration.

Input state (held keys, mouse position, drags) is built from events only, never from
``pygame.key.get_pressed()`` or ``pygame.mouse.get_pos()``, so scripted events in tests drive the scene
exactly as a player would.
"""

from __future__ import annotations

import numpy as np
import pygame

from game import layout, palette, ui
from game.camera import Camera
from game.controls import PAN_KEYS, PAN_SPEED, WHEEL_ZOOM
from game.generation import Request
from game.hud import Legend, Minimap, draw_tooltip, tooltip_plan
from game.layout import WorldOverlays
from game.release import release_later
from game.render import WorldRenderer
from game.scene import Host, Scene
from game.sprites import SPRITE_MIN_ZOOM, Creatures
from game.worlddata import WorldData

HELP = "WASD/arrows or drag: pan   wheel: zoom   R: new world   H/F1: HUD   L: legend   Esc: quit"
# Shorter forms of the help line for narrow windows, tried in order; the last one is cut if need be.
HELP_SHORTER = (
    HELP,
    "drag: pan   wheel: zoom   R: new world   H: HUD   L: legend   Esc: quit",
    "R: new world   H: HUD   L: legend   Esc: quit",
)


class WorldScene(Scene):
    """A playable world. A new world from R (or a retry) replaces it in place when it arrives."""

    def __init__(self, host: Host, world: WorldData) -> None:
        super().__init__(host)
        self.held: set[int] = set()
        self.mouse: tuple[int, int] | None = None
        self.dragging = False
        self.minimap_drag = False
        self.show_legend = True
        self.swaps = 0
        self.camera = Camera.fitting((world.width, world.height), host.screen.get_size())
        self.world, self.renderer, self.creatures, self.minimap, self.legend = self._build(world)
        if host.settings.zoom is not None:
            self.camera.zoom = host.settings.zoom
            self.camera.clamp()
        self._overlays_key: tuple[object, ...] | None = None
        self.overlays = self.layout(host.screen.get_size())  # clicks before the first draw hit the minimap
        self.tooltip: tuple[pygame.Rect, list[str]] | None = None
        """The tooltip's rectangle and lines as last drawn (None: not shown)."""

    def _build(self, world: WorldData) -> tuple[WorldData, WorldRenderer, Creatures, Minimap, Legend]:
        """Everything drawn for ``world``. Cheap: VM 1 already coloured the image and made the levels."""
        renderer = WorldRenderer(world)
        total = max(1, int(world.biome_counts.sum()))
        shares = {i: int(c) / total for i, c in enumerate(world.biome_counts.tolist())}
        legend = Legend(self.host.text, world.biome_names, shares)
        return world, renderer, Creatures(world), Minimap(renderer), legend

    def set_world(self, world: WorldData) -> None:
        """Show ``world`` in place of the current one, keeping the view if the size is the same."""
        old = (self.world, self.renderer, self.creatures, self.minimap)
        self.world, self.renderer, self.creatures, self.minimap, self.legend = self._build(world)
        # The old world's memory is released on a background thread, not on this (swap) frame.
        release_later(*old)
        del old
        if self.camera.world_size != (world.width, world.height):
            self.camera = Camera.fitting((world.width, world.height), self.host.screen.get_size())
        self._overlays_key = None  # the new legend may have another row count, the minimap another shape
        self.overlays = self.layout(self.host.screen.get_size())
        self.swaps += 1

    def layout(self, view: tuple[int, int]) -> WorldOverlays:
        """Where the overlays go in a ``view``-sized window now (HUD and legend toggles, regeneration and
        the zoom note included); the minimap is moved there. Recomputed only when one of those changes."""
        note_width = None
        if self.creatures.count and self.camera.zoom < SPRITE_MIN_ZOOM:
            note_width = self.host.text.font(20).size(self._note_text())[0] + 20
        key = (view, self.host.hud_visible, self.show_legend, self.host.generator.busy, note_width)
        if key != self._overlays_key:
            self._overlays_key = key
            self.overlays = layout.world_overlays(
                view,
                hud=self.host.hud_visible,
                world_size=(self.world.width, self.world.height),
                legend_rows=self.legend.rows if self.show_legend else None,
                banner=self.host.generator.busy,
                note_width=note_width,
            )
            self.minimap.place(self.overlays.minimap, self.overlays.minimap_box)
        return self.overlays

    def _note_text(self) -> str:
        return f"Zoom in (wheel) to see the {self.creatures.count} creatures"

    @property
    def request(self) -> Request:
        """The request that made the shown world."""
        return Request(self.world.seed, self.world.width, self.world.height)

    def regenerate(self) -> None:
        """A new world with a fresh seed in VM 1; this one stays playable until it arrives."""
        self.host.generator.start(Request(self.host.new_seed(), self.world.width, self.world.height))

    def leave(self) -> None:
        self.held.clear()
        self.dragging = self.minimap_drag = False

    def handle_event(self, event: pygame.event.Event) -> None:
        kind = event.type
        if kind == pygame.KEYDOWN:
            if event.key in PAN_KEYS:
                self.held.add(event.key)
            elif event.key == pygame.K_r:
                self.regenerate()
            elif event.key == pygame.K_l:
                self.show_legend = not self.show_legend
            elif event.key in (pygame.K_PLUS, pygame.K_EQUALS, pygame.K_KP_PLUS):
                self._zoom_keys(WHEEL_ZOOM)
            elif event.key in (pygame.K_MINUS, pygame.K_KP_MINUS):
                self._zoom_keys(1 / WHEEL_ZOOM)
            elif event.key == pygame.K_HOME:
                self.camera = Camera.fitting(self.camera.world_size, self.camera.view_size)
        elif kind == pygame.KEYUP:
            self.held.discard(event.key)
        elif kind == pygame.WINDOWFOCUSLOST:
            self.held.clear()
            self.dragging = self.minimap_drag = False
        elif kind == pygame.WINDOWLEAVE:
            self.mouse = None  # the pointer is elsewhere: no tooltip for the cell it last crossed
        elif kind == pygame.MOUSEMOTION:
            self._mouse_to(event.pos)
        elif kind == pygame.MOUSEBUTTONDOWN and event.button == 1:
            self.mouse = event.pos
            target = self.minimap.to_world(event.pos)
            if target is not None:
                self.minimap_drag = True
                self.camera.centre_on(*target)
            else:
                self.dragging = True
        elif kind == pygame.MOUSEBUTTONUP and event.button == 1:
            self.dragging = self.minimap_drag = False
        elif kind == pygame.MOUSEWHEEL and event.y:
            pos = self.mouse or (self.camera.view_size[0] // 2, self.camera.view_size[1] // 2)
            self.camera.zoom_at(WHEEL_ZOOM ** float(event.y), *pos)

    def _zoom_keys(self, factor: float) -> None:
        pos = self.mouse or (self.camera.view_size[0] // 2, self.camera.view_size[1] // 2)
        self.camera.zoom_at(factor, *pos)

    def _mouse_to(self, pos: tuple[int, int]) -> None:
        # The relative motion comes from our own last position (scripted events need not carry `rel`).
        if self.mouse is not None and self.dragging:
            self.camera.pan_pixels(pos[0] - self.mouse[0], pos[1] - self.mouse[1])
        if self.minimap_drag:
            target = self.minimap.to_world(
                (
                    min(max(pos[0], self.minimap.rect.left), self.minimap.rect.right - 1),
                    min(max(pos[1], self.minimap.rect.top), self.minimap.rect.bottom - 1),
                )
            )
            if target is not None:
                self.camera.centre_on(*target)
        self.mouse = pos

    def update(self, dt: float) -> None:
        vx = sum(PAN_KEYS[key][0] for key in self.held)
        vy = sum(PAN_KEYS[key][1] for key in self.held)
        if vx or vy:
            # Keys move the view (the world slides the other way), at a screen speed independent of zoom.
            self.camera.pan_pixels(-vx * PAN_SPEED * dt, -vy * PAN_SPEED * dt)
        self.creatures.update()

    def hover_lines(self) -> list[str] | None:
        """The tooltip for the cell under the mouse, most important line first (a small window shows the
        first few), or None when the mouse is outside the window, off the world or on a panel."""
        if self.mouse is None or pygame.Rect(self.mouse, (1, 1)).collidelist(self.overlays.panels()) >= 0:
            return None
        wx, wy = self.camera.screen_to_world(*self.mouse)
        x, y = int(np.floor(wx)), int(np.floor(wy))
        world = self.world
        if not (0 <= x < world.width and 0 <= y < world.height):
            return None
        biome = int(world.biome[y, x])
        name = world.biome_names[biome] if biome < len(world.biome_names) else f"biome {biome}"
        lines = [palette.pretty(name)]
        found = self.creatures.at_screen(self.camera, *self.mouse)
        if found is not None:
            species = int(self.creatures.species[found])
            kind = world.species_names[species] if species < len(world.species_names) else "creature"
            lines.append(f"{palette.pretty(kind)} #{int(self.creatures.ids[found]) & 0xFFFFFF:06x}")
        lines += [
            f"height {int(world.heights[y, x])}/10",
            f"x {x + world.x0}  y {y + world.y0}",
            f"elevation {float(world.elevation[y, x]):.3f}   moisture {float(world.moisture[y, x]):.3f}",
        ]
        return lines

    def draw(self, screen: pygame.Surface) -> None:
        text = self.host.text
        if self.camera.view_size != screen.get_size():
            self.camera.resize(screen.get_size())
        overlays = self.layout(screen.get_size())
        self.renderer.draw(screen, self.camera)
        lines = self.hover_lines() if not self.dragging else None
        self.tooltip = None
        if lines is not None and self.mouse is not None:
            self.tooltip = tooltip_plan(text, lines, screen.get_size(), self.mouse, overlays.panels())
        # The panels are translucent over the terrain, but creatures moving under them would show through
        # and flicker behind the text: the terrain under each panel is put back over the creatures.
        covered = [overlays.strip, overlays.hud, overlays.legend, overlays.banner, overlays.note]
        if self.tooltip is not None:
            covered.append(self.tooltip[0])
        screen_rect = screen.get_rect()
        under = [rect.clip(screen_rect) for rect in covered if rect is not None]
        saved = []
        if self.creatures.count and self.camera.zoom >= SPRITE_MIN_ZOOM:  # else none are drawn
            saved = [(rect, screen.subsurface(rect).copy()) for rect in under if rect.width and rect.height]
        if self.creatures.draw(screen, self.camera):
            screen.fblits([(pixels, rect) for rect, pixels in saved])
        self.minimap.draw(screen, self.camera)
        if overlays.legend is not None:
            self.legend.draw(screen, overlays.legend, overlays.legend_rows)
        if overlays.hud is not None:
            self.host.draw_hud(screen, overlays.hud, self.world.seed, (self.world.width, self.world.height))
        generator = self.host.generator
        if generator.busy and overlays.banner is not None:
            self._regen_banner(screen, overlays.banner, generator.progress, generator.current)
        if self.tooltip is not None:
            draw_tooltip(screen, text, *self.tooltip)
        if overlays.note is not None:
            ui.panel(screen, overlays.note, 200)
            room = overlays.note.width - 20
            shorter = (self._note_text(), "Zoom in to see the creatures", "Zoom in for creatures")
            note = text.render(text.first_fitting(shorter, 20, room), 20)
            screen.blit(note, note.get_rect(center=overlays.note.center))
        strip = overlays.strip
        ui.panel(screen, strip, 170)
        if generator.busy and overlays.banner is None:
            # No room for the banner: the strip shows the regeneration instead of the key help.
            fraction, label = self._regen_label(generator.progress, generator.current)
            bar = pygame.Rect(strip.x + 4, strip.bottom - 5, strip.width - 8, 3)
            pygame.draw.rect(screen, palette.ACCENT, (bar.x, bar.y, round(bar.width * fraction), bar.height))
            hint = text.render(text.fit(label, 18, strip.width - 16), 18, palette.ACCENT)
        else:
            hint = text.render(text.first_fitting(HELP_SHORTER, 18, strip.width - 16), 18, palette.TEXT_DIM)
        screen.blit(hint, hint.get_rect(center=strip.center))

    @staticmethod
    def _regen_label(progress: tuple[float, str], request: Request | None) -> tuple[float, str]:
        fraction, stage = progress
        seed = f" (seed {request.seed})" if request else ""
        return min(1.0, max(0.0, fraction)), f"New world{seed}: {fraction * 100:3.0f}% {stage}".rstrip()

    def _regen_banner(
        self,
        screen: pygame.Surface,
        rect: pygame.Rect,
        progress: tuple[float, str],
        request: Request | None,
    ) -> None:
        fraction, label = self._regen_label(progress, request)
        ui.panel(screen, rect, 225)
        text = self.host.text
        screen.blit(
            text.render(text.fit(label, 18, rect.width - 24), 18, palette.ACCENT), (rect.x + 12, rect.y + 8)
        )
        ui.progress_bar(screen, pygame.Rect(rect.x + 12, rect.y + 30, rect.width - 24, 12), fraction)
