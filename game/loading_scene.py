"""The loading scene: VM 1 generates the world while this scene animates every single frame.

Everything here moves on every frame (a spinner, a parade of creatures, the frame counter of the seed
example) so a stalled frame loop would be visible at once; the progress bar shows what VM 1 reported.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import pygame

from game import palette, ui
from game.generation import Failed, Finished, Outcome, Request
from game.scene import Scene
from game.sprites import load_image, load_sprites

if TYPE_CHECKING:
    from game.app import App

PARADE = ("wolf", "bear", "fish", "bird", "lizard")


class LoadingScene(Scene):
    """Shown from the first frame until the first world arrives (or generation fails)."""

    def __init__(self, app: App, request: Request) -> None:
        super().__init__(app)
        self.request = request
        self.frames = 0
        self.ticks = 0
        self.started_ms = 0.0
        self.parade = [pygame.transform.scale_by(s, 3) for s in load_sprites(PARADE)]
        self.icon = pygame.transform.scale_by(load_image("ui/icon.png"), 3)

    def enter(self) -> None:
        self.frames = 0
        self.started_ms = self.app.now_ms()
        if self.app.generator.current != self.request:
            self.app.generator.start(self.request)

    def on_generation(self, outcome: Outcome) -> None:
        from game.error_scene import ErrorScene
        from game.world_scene import WorldScene

        if isinstance(outcome, Finished):
            # Build the world scene now, show it next frame: the arrival's work is split over two
            # frames (receive + build here, the first full world draw there), keeping both short.
            self.app.switch_next_frame(WorldScene(self.app, outcome.world))
        elif isinstance(outcome, Failed):
            self.app.switch(ErrorScene(self.app, outcome.error, outcome.request))

    def update(self, dt: float) -> None:
        self.ticks += 1

    def draw(self, screen: pygame.Surface) -> None:
        self.frames += 1
        text = self.app.text
        w, h = screen.get_size()
        screen.fill(palette.BACKGROUND)
        cx, cy = w // 2, h // 2
        t = self.app.now_ms() / 1000

        # The island icon floats gently above the title.
        bob = round(math.sin(t * 2.2) * 4)
        screen.blit(self.icon, self.icon.get_rect(midbottom=(cx, cy - 150 + bob)))
        title = text.render("Generating a world in VM 1", 40)
        screen.blit(title, title.get_rect(center=(cx, cy - 130)))
        seed = text.render(
            f"seed {self.request.seed}   size {self.request.width}x{self.request.height}",
            22,
            palette.TEXT_DIM,
        )
        screen.blit(seed, seed.get_rect(center=(cx, cy - 95)))

        # Spinner: twelve dots whose brightness chases around the ring.
        for i in range(12):
            angle = i / 12 * math.tau
            fade = ((t * 1.5 - i / 12) % 1.0) ** 2
            colour = tuple(
                round(a + (b - a) * fade) for a, b in zip(palette.ACCENT, (60, 60, 80), strict=True)
            )
            pos = (cx + round(math.cos(angle) * 26), cy - 35 + round(math.sin(angle) * 26))
            pygame.draw.circle(screen, colour, pos, 5)

        fraction, stage = self.app.generator.progress
        bar = pygame.Rect(0, 0, min(520, w - 80), 22)
        bar.center = (cx, cy + 20)
        ui.progress_bar(screen, bar, fraction)
        elapsed = (self.app.now_ms() - self.started_ms) / 1000
        line = text.render(f"{fraction * 100:3.0f}%  {stage or 'starting VM 1'}   {elapsed:5.1f} s", 22)
        screen.blit(line, line.get_rect(center=(cx, cy + 52)))
        counter = text.render(f"Frame: {self.frames}", 26, palette.ACCENT)
        screen.blit(counter, counter.get_rect(center=(cx, cy + 88)))

        # The parade walks along the bottom at a constant speed, hopping: any hitch shows as a jump.
        spacing = 90
        span = w + spacing * len(self.parade)
        for i, sprite in enumerate(self.parade):
            x = (self.ticks * 2 + i * spacing) % span - spacing
            hop = abs(math.sin((self.ticks + i * 9) * 0.25)) * 6
            screen.blit(sprite, (x, h - 90 - hop))
        hint = text.render("Esc quits at once (VM 1 is stopped)   H toggles the HUD", 18, palette.TEXT_DIM)
        screen.blit(hint, hint.get_rect(center=(cx, h - 18)))
        if self.app.hud_visible:
            self.app.hud.draw(
                screen, self.app.stats, self.app.generator, self.request.seed, self.request.size
            )
