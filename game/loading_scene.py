"""The loading scene: VM 1 generates the world while this scene animates every single frame.

Everything here moves on every frame (a spinner, a parade of creatures, the frame counter of the seed
example) so a stalled frame loop would be visible at once; the progress bar shows what VM 1 reported.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import pygame

from game import layout, palette, ui
from game.generation import Finished, Outcome, Request
from game.scene import Host, Scene
from game.sprites import load_image, load_sprites

PARADE = ("wolf", "bear", "fish", "bird", "lizard")
# The column's parts, top to bottom, and which to keep first when a small window has no room for all.
PARTS = ("icon", "title", "seed", "spinner", "bar", "progress", "counter")
KEEP_FIRST = ("bar", "progress", "title", "counter", "seed", "spinner", "icon")
PART_GAP = 12
SPINNER = 62  # twelve dots of radius 5 on a ring of radius 26
BAR_H = 22
PARADE_H = 56  # 48-pixel sprites hopping up to 6 pixels
MIN_COLUMN = 240  # a narrower column beside the HUD would cut every line: below it is better then
HINT = "Esc quits at once (VM 1 is stopped)   H toggles the HUD"
TITLE = "Generating a world in VM 1"
TITLE_SIZES = (40, 32, 26, 22)
SEED_SIZES = (22, 18)


@dataclass(frozen=True)
class LoadingLayout:
    """Where the loading screen's parts go in one window size; parts without room are left out."""

    parts: dict[str, pygame.Rect]
    title_size: int
    seed_size: int
    hud: pygame.Rect | None
    parade: pygame.Rect | None
    hint: pygame.Rect

    def panels(self) -> list[pygame.Rect]:
        """Every rectangle something is drawn in."""
        rects = [*self.parts.values(), self.hud, self.parade, self.hint]
        return [rect for rect in rects if rect is not None]


class LoadingScene(Scene):
    """Shown from the first frame until the first world arrives (or generation fails)."""

    def __init__(self, host: Host, request: Request) -> None:
        super().__init__(host)
        self.request = request
        self.frames = 0
        self.ticks = 0
        self.started_ms = 0.0
        self.shown_fraction = 0.0
        """The bar's fill as last drawn: it only grows (VM 1 reports this request's stages in order)."""
        self.parade = [pygame.transform.scale_by(s, 3) for s in load_sprites(PARADE)]
        self.icon = pygame.transform.scale_by(load_image("ui/icon.png"), 3)
        self._layout_key: tuple[object, ...] | None = None
        self._layout: LoadingLayout | None = None

    def enter(self) -> None:
        self.frames = 0
        self.started_ms = self.host.now_ms()
        if self.host.generator.current != self.request:
            self.host.generator.start(self.request)

    def on_generation(self, outcome: Outcome) -> None:
        if isinstance(outcome, Finished):
            # The host shows the world from the next frame on; this one still draws the bar: full,
            # whatever the generator says.
            self.shown_fraction = 1.0

    def update(self, dt: float) -> None:
        self.ticks += 1

    def layout(self, view: tuple[int, int]) -> LoadingLayout:
        """The loading screen's layout for a ``view``-sized window (cached per size and HUD toggle)."""
        key = (view, self.host.hud_visible)
        if self._layout is None or key != self._layout_key:
            self._layout = self._plan(view)
            self._layout_key = key
        return self._layout

    def _plan(self, view: tuple[int, int]) -> LoadingLayout:
        # The column goes centred in the window, else beside the HUD, else below it; in each place the
        # least important parts are left out until the rest fit, and the place keeping most parts wins.
        text = self.host.text
        w, h = view
        hint = pygame.Rect(0, h - layout.STRIP_H, w, layout.STRIP_H)
        hud = layout.hud_rect(view, self.host.hud_visible)
        places = [(layout.GAP, w - layout.GAP, layout.GAP)]
        if hud is not None:
            places.append((hud.right + layout.GAP, w - layout.GAP, layout.GAP))
            places.append((layout.GAP, w - layout.GAP, hud.bottom + layout.GAP))
        best: tuple[tuple[int, int, int], LoadingLayout] | None = None
        for rank, (left, right, top) in enumerate(places):
            width = right - left
            if width < MIN_COLUMN:
                continue
            title_size = text.fitting_size(TITLE, TITLE_SIZES, width)
            seed_size = text.fitting_size(self._seed_text(), SEED_SIZES, width)
            heights = {
                "icon": self.icon.get_height() + 8,  # it bobs 4 pixels up and down
                "title": text.font(title_size).get_height(),
                "seed": text.font(seed_size).get_height(),
                "spinner": SPINNER,
                "bar": BAR_H,
                "progress": text.font(22).get_height(),
                "counter": text.font(26).get_height(),
            }
            widths = {
                "icon": self.icon.get_width(),
                "spinner": SPINNER,
                "bar": min(520, width - 2 * layout.GAP),
            }
            for parade in (True, False):
                floor = hint.top - layout.GAP - (PARADE_H if parade else 0)
                band = pygame.Rect(0, floor + layout.GAP // 2, w, PARADE_H) if parade else None
                if band is not None and hud is not None and band.colliderect(hud.inflate(0, layout.GAP)):
                    continue
                kept = list(KEEP_FIRST)
                while kept and sum(heights[n] for n in kept) + PART_GAP * (len(kept) - 1) > floor - top:
                    kept.pop()
                if "bar" not in kept:
                    continue
                total = sum(heights[n] for n in kept) + PART_GAP * (len(kept) - 1)
                y = top + (floor - top - total) // 2
                centre = (left + right) // 2
                parts: dict[str, pygame.Rect] = {}
                for name in PARTS:
                    if name in kept:
                        rect = pygame.Rect(0, y, widths.get(name, width), heights[name])
                        rect.centerx = centre
                        parts[name] = rect
                        y += heights[name] + PART_GAP
                if hud is not None and any(rect.colliderect(hud) for rect in parts.values()):
                    continue
                score = (len(kept), int(parade), -rank)
                if best is None or score > best[0]:
                    plan = LoadingLayout(parts, title_size, seed_size, hud, band, hint)
                    best = (score, plan)
        if best is None:  # a window too small even for the bar: the hint (and the HUD) only
            return LoadingLayout({}, TITLE_SIZES[-1], SEED_SIZES[-1], hud, None, hint)
        return best[1]

    def _seed_text(self) -> str:
        return f"seed {self.request.seed}   size {self.request.width}x{self.request.height}"

    def progress(self) -> tuple[float, str]:
        """What the bar shows: VM 1's progress, never less than already shown for this request."""
        fraction, stage = self.host.generator.progress
        if self.host.generator.current not in (self.request, None):
            return (self.shown_fraction, stage)  # another request's progress is not ours to show
        self.shown_fraction = max(self.shown_fraction, min(1.0, max(0.0, fraction)))
        return (self.shown_fraction, stage)

    def draw(self, screen: pygame.Surface) -> None:
        self.frames += 1
        text = self.host.text
        w, h = screen.get_size()
        plan = self.layout((w, h))
        parts = plan.parts
        screen.fill(palette.BACKGROUND)
        t = self.host.now_ms() / 1000

        if "icon" in parts:
            # The island icon floats gently above the title.
            bob = round(math.sin(t * 2.2) * 4)
            centre = (parts["icon"].centerx, parts["icon"].centery + bob)
            screen.blit(self.icon, self.icon.get_rect(center=centre))
        for name, words, size, shade in (
            ("title", TITLE, plan.title_size, palette.TEXT),
            ("seed", self._seed_text(), plan.seed_size, palette.TEXT_DIM),
        ):
            if name in parts:
                surface = text.render(text.fit(words, size, parts[name].width), size, shade)
                screen.blit(surface, surface.get_rect(center=parts[name].center))

        if "spinner" in parts:
            # Spinner: twelve dots whose brightness chases around the ring.
            cx, cy = parts["spinner"].center
            for i in range(12):
                angle = i / 12 * math.tau
                fade = ((t * 1.5 - i / 12) % 1.0) ** 2
                colour = tuple(
                    round(a + (b - a) * fade) for a, b in zip(palette.ACCENT, (60, 60, 80), strict=True)
                )
                pos = (cx + round(math.cos(angle) * 26), cy + round(math.sin(angle) * 26))
                pygame.draw.circle(screen, colour, pos, 5)

        fraction, stage = self.progress()
        if "bar" in parts:
            ui.progress_bar(screen, parts["bar"], fraction)
        if "progress" in parts:
            elapsed = (self.host.now_ms() - self.started_ms) / 1000
            label = f"{fraction * 100:3.0f}%  {stage or 'starting VM 1'}   {elapsed:5.1f} s"
            status = text.render(text.fit(label, 22, parts["progress"].width), 22)
            screen.blit(status, status.get_rect(center=parts["progress"].center))
        if "counter" in parts:
            counter = text.render(f"Frame: {self.frames}", 26, palette.ACCENT)
            screen.blit(counter, counter.get_rect(center=parts["counter"].center))

        if plan.parade is not None:
            # The parade walks along the bottom at a constant speed, hopping: any hitch shows as a jump.
            spacing = 90
            span = w + spacing * len(self.parade)
            for i, sprite in enumerate(self.parade):
                x = (self.ticks * 2 + i * spacing) % span - spacing
                hop = abs(math.sin((self.ticks + i * 9) * 0.25)) * 6
                screen.blit(sprite, (x, plan.parade.bottom - sprite.get_height() - hop))
        hint = text.render(text.fit(HINT, 18, w - 2 * layout.GAP), 18, palette.TEXT_DIM)
        screen.blit(hint, hint.get_rect(center=plan.hint.center))
        if plan.hud is not None:
            self.host.draw_hud(screen, plan.hud, self.request.seed, self.request.size)
