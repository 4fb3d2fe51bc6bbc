"""The failure scene: generation raised, was given a bad size, or VM 1 died. Show why; offer a retry."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import pygame

from game import layout, palette, ui
from game.generation import Request
from game.scene import Scene

if TYPE_CHECKING:
    from game.app import App
    from game.world_scene import WorldScene

TRACE_PAD = 10  # between the traceback box's edge and its text


@dataclass(frozen=True)
class ErrorLayout:
    """The failure screen in one window size. Top to bottom: title, request, the error's own message,
    the traceback box, the key hint; a part without room is left out, and the hint is never covered."""

    blocks: list[tuple[str, int, tuple[int, int, int], pygame.Rect]]
    """``(text, font size, colour, rect)`` of the title, the request and the error message lines."""
    box: pygame.Rect | None
    trace: list[str]
    """The traceback lines shown in the box: its end (the error line last) when not all fit."""
    trace_size: int
    hint: tuple[str, int, pygame.Rect]


class ErrorScene(Scene):
    """The error text on screen; Enter retries the same request, B goes back to the last world if any."""

    def __init__(self, app: App, error: str, request: Request, back: WorldScene | None = None) -> None:
        super().__init__(app)
        self.error = error.rstrip() or "unknown error"
        self.request = request
        self.back = back
        self._layout: tuple[tuple[int, int], ErrorLayout] | None = None

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

    def layout(self, view: tuple[int, int]) -> ErrorLayout:
        """Where everything goes in a ``view``-sized window (cached per size)."""
        if self._layout is None or self._layout[0] != view:
            self._layout = (view, self._plan(view))
        return self._layout[1]

    def _plan(self, view: tuple[int, int]) -> ErrorLayout:
        text = self.app.text
        w, h = view
        roomy = w >= 640 and h >= 400
        margin = 40 if roomy else 16
        width = max(1, w - 2 * margin)
        hint_size = 24 if roomy else 18
        back = ("    B: back to the last world", "  B: back") if self.back else ("", "")
        shorter = (f"Enter: retry    Esc: quit{back[0]}", f"Enter: retry  Esc: quit{back[1]}", "Enter: retry")
        room = w - 2 * layout.GAP
        keys = text.first_fitting(shorter, hint_size, room)
        hint = pygame.Rect((0, 0), text.font(hint_size).size(keys))
        hint.center = (w // 2, h - (36 if roomy else 14))
        floor = hint.top - (12 if roomy else 6)  # nothing reaches below this: the hint stays readable

        # The exception's own message (a traceback's last line) is what a player needs first.
        headline = [line for line in self.error.splitlines() if line.strip()][-1].strip()
        headline_size = 26 if roomy else 20
        wrapped = text.wrap(headline, headline_size, width)
        if len(wrapped) > 2:  # two lines at most; the whole message is at the traceback's end
            wrapped = [wrapped[0], text.fit(wrapped[1] + ui.ELLIPSIS, headline_size, width)]
        title_sizes = (40, 32, 26) if roomy else (26, 22, 18)
        title_size = text.fitting_size("World generation failed", title_sizes, width)
        what = f"seed {self.request.seed}, size {self.request.width}x{self.request.height}"
        wanted = [
            ("World generation failed", title_size, palette.BAD, 12),
            (what, 22 if roomy else 16, palette.TEXT_DIM, 16),
            *((line, headline_size, palette.TEXT, 0) for line in wrapped),
        ]
        blocks: list[tuple[str, int, tuple[int, int, int], pygame.Rect]] = []
        y = 36 if roomy else 10
        for line, size, colour, gap_after in wanted:
            line = text.fit(line, size, width)
            rect = pygame.Rect((margin, y), text.font(size).size(line))
            if rect.bottom > floor:
                break  # no room: the key hint below matters more
            blocks.append((line, size, colour, rect))
            y = rect.bottom + gap_after
        trace_size = 18 if roomy else 14
        line_h = trace_size  # rows as tall as the font size: readable, and no room wasted
        box = pygame.Rect(margin - 8, y + 10, w - 2 * (margin - 8), floor - (y + 10))
        rows = (box.height - 2 * TRACE_PAD) // line_h
        if rows < 1 or box.width < 4 * TRACE_PAD:
            return ErrorLayout(blocks, None, [], trace_size, (keys, hint_size, hint))
        trace = text.wrap(self.error, trace_size, box.width - 2 * TRACE_PAD - 4)
        if len(trace) > rows:
            # A traceback's end says what went wrong; keep that part.
            trace = ["...", *trace[len(trace) - rows + 1 :]] if rows > 1 else trace[-1:]
        return ErrorLayout(blocks, box, trace, trace_size, (keys, hint_size, hint))

    def draw(self, screen: pygame.Surface) -> None:
        text = self.app.text
        plan = self.layout(screen.get_size())
        screen.fill((30, 16, 20))
        for line, size, colour, rect in plan.blocks:
            screen.blit(text.render(line, size, colour), rect)
        if plan.box is not None:
            ui.panel(screen, plan.box, 240)
            line_h = plan.trace_size
            for i, line in enumerate(plan.trace):
                position = (plan.box.x + TRACE_PAD + 2, plan.box.y + TRACE_PAD + line_h * i)
                screen.blit(text.render(line, plan.trace_size, palette.TEXT_DIM), position)
        keys, size, rect = plan.hint
        screen.blit(text.render(keys, size, palette.ACCENT), rect)
