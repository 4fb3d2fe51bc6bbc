"""The failure scene: generation raised, was given a bad size, or VM 1 died. Show why; offer a retry."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pygame

from game import palette, ui
from game.generation import Request
from game.scene import Scene

if TYPE_CHECKING:
    from game.app import App
    from game.world_scene import WorldScene

MAX_LINES = 18


class ErrorScene(Scene):
    """The error text on screen; Enter retries the same request, B goes back to the last world if any."""

    def __init__(self, app: App, error: str, request: Request, back: WorldScene | None = None) -> None:
        super().__init__(app)
        self.error = error.rstrip() or "unknown error"
        self.request = request
        self.back = back

    def retry(self) -> None:
        """Submit the same request again and show its progress (over the old world if there is one)."""
        from game.loading_scene import LoadingScene

        self.app.generator.start(self.request)
        self.app.switch(self.back if self.back is not None else LoadingScene(self.app, self.request))

    def handle_event(self, event: pygame.event.Event) -> None:
        if event.type != pygame.KEYDOWN:
            return
        if event.key in (pygame.K_RETURN, pygame.K_KP_ENTER):
            self.retry()
        elif event.key in (pygame.K_b, pygame.K_BACKSPACE) and self.back is not None:
            self.app.switch(self.back)

    def draw(self, screen: pygame.Surface) -> None:
        text = self.app.text
        w, h = screen.get_size()
        screen.fill((30, 16, 20))
        title = text.render("World generation failed", 40, palette.BAD)
        screen.blit(title, (40, 36))
        what = f"seed {self.request.seed}, size {self.request.width}x{self.request.height}"
        screen.blit(text.render(what, 22, palette.TEXT_DIM), (40, 76))
        # The exception's own message (a traceback's last line) is what a player needs first.
        headline = [line for line in self.error.splitlines() if line.strip()][-1].strip()
        for i, line in enumerate(text.wrap(headline, 26, w - 80)[:2]):
            screen.blit(text.render(line, 26), (40, 108 + 26 * i))
        box = pygame.Rect(32, 170, w - 64, h - 242)
        ui.panel(screen, box, 240)
        lines = text.wrap(self.error, 18, box.width - 24)
        if len(lines) > MAX_LINES:
            # A traceback's end says what went wrong; keep that part.
            lines = ["...", *lines[-(MAX_LINES - 1) :]]
        for i, line in enumerate(lines):
            screen.blit(text.render(line, 18, palette.TEXT_DIM), (box.x + 12, box.y + 10 + 18 * i))
        keys = "Enter: retry    Esc: quit" + ("    B: back to the last world" if self.back else "")
        hint = text.render(keys, 24, palette.ACCENT)
        screen.blit(hint, hint.get_rect(center=(w // 2, h - 36)))
