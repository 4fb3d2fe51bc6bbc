"""The failure scene: generation raised, was refused a size, or VM 1 died. Say what happened in plain words
and offer what can help (:mod:`game.failure`): a smaller size, another try or seed, or back to the last world.
"""

from __future__ import annotations

from dataclasses import dataclass

import pygame

from game import layout, palette, ui
from game.failure import advise
from game.generation import Request
from game.scene import Back, Host, Retry, Scene

TRACE_PAD = 10  # between the traceback box's edge and its text


@dataclass(frozen=True)
class ErrorLayout:
    """The failure screen in one window size. Top to bottom: title, request, what happened and what to do,
    the error's own message and the traceback box (for a bug; not for a size that is too big), the key
    hint; a part without room is left out, and the hint is never covered."""

    blocks: list[tuple[str, int, tuple[int, int, int], pygame.Rect]]
    """``(text, font size, colour, rect)`` of the title, the request, the advice and the error lines."""
    box: pygame.Rect | None
    trace: list[str]
    """The traceback lines shown in the box: its end (the error line last) when not all fit."""
    trace_size: int
    hint: tuple[str, int, pygame.Rect]


class ErrorScene(Scene):
    """What went wrong and what to do. Enter starts what the advice offers (a smaller size when the world
    was too big, else the same request), N the same size with another seed (unless the size was the
    problem), B goes back to the last world if there is one."""

    def __init__(self, host: Host, error: str, request: Request) -> None:
        super().__init__(host)
        self.error = error.rstrip() or "unknown error"
        self.request = request
        self.advice = advise(self.error, request)
        self._layout: tuple[tuple[int, int], ErrorLayout] | None = None

    def retry(self, request: Request | None = None) -> None:
        """Submit ``request`` (default: what Enter offers) and show its progress (over the old world if
        there is one)."""
        self.host.go(Retry(request or self.advice.retry))

    def handle_event(self, event: pygame.event.Event) -> None:
        if event.type != pygame.KEYDOWN:
            return
        if event.key in (pygame.K_RETURN, pygame.K_KP_ENTER):
            self.retry()
        elif event.key == pygame.K_n and self.advice.new_seed:
            self.retry(Request(self.host.new_seed(), self.request.width, self.request.height))
        elif event.key in (pygame.K_b, pygame.K_BACKSPACE) and self.host.has_last_world:
            self.host.go(Back())

    def layout(self, view: tuple[int, int]) -> ErrorLayout:
        """Where everything goes in a ``view``-sized window (cached per size)."""
        if self._layout is None or self._layout[0] != view:
            self._layout = (view, self._plan(view))
        return self._layout[1]

    def _plan(self, view: tuple[int, int]) -> ErrorLayout:
        text = self.host.text
        w, h = view
        roomy = w >= 640 and h >= 400
        margin = 40 if roomy else 16
        width = max(1, w - 2 * margin)
        hint_size = 24 if roomy else 18
        advice = self.advice
        enter = f"Enter: {advice.retry_label}"
        seed = ("    N: another seed", "  N: new seed") if advice.new_seed else ("", "")
        back = ("    B: back to the last world", "  B: back") if self.host.has_last_world else ("", "")
        shorter = (
            f"{enter}{seed[0]}{back[0]}    Esc: quit",
            f"{enter}{seed[1]}{back[1]}  Esc: quit",
            f"{enter}{seed[1]}{back[1]}",
            enter,
        )
        room = w - 2 * layout.GAP
        keys = text.first_fitting(shorter, hint_size, room)
        hint = pygame.Rect((0, 0), text.font(hint_size).size(keys))
        hint.center = (w // 2, h - (36 if roomy else 14))
        floor = hint.top - (12 if roomy else 6)  # nothing reaches below this: the hint stays readable

        # What happened and what to do, in a player's words; then, for a bug, the exception's own message
        # (a traceback's last line), which is what a bug report needs first.
        message_size = 26 if roomy else 20
        message = self._at_most(text.wrap(advice.message, message_size, width), 3, message_size, width)
        headline_size = 22 if roomy else 16
        headline: list[str] = []
        if advice.details:
            last = [line for line in self.error.splitlines() if line.strip()][-1].strip()
            # two lines at most; the whole message is at the traceback's end
            headline = self._at_most(text.wrap(last, headline_size, width), 2, headline_size, width)
        title_sizes = (40, 32, 26) if roomy else (26, 22, 18)
        title_size = text.fitting_size(advice.title, title_sizes, width)
        what = f"seed {self.request.seed}, size {self.request.width}x{self.request.height}"
        advice_rows = [(line, message_size, palette.TEXT, 0) for line in message]
        if headline:  # a gap between the advice and the error's own words
            advice_rows[-1] = (message[-1], message_size, palette.TEXT, 10)
        wanted = [
            (advice.title, title_size, palette.BAD, 12),
            (what, 22 if roomy else 16, palette.TEXT_DIM, 16),
            *advice_rows,
            *((line, headline_size, palette.TEXT_DIM, 0) for line in headline),
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
        # A one-line error is all in the headline, and so would be a box of one row: no box then.
        one_line = len([line for line in self.error.splitlines() if line.strip()]) == 1
        if not advice.details or one_line or rows < 2 or box.width < 4 * TRACE_PAD:
            return ErrorLayout(blocks, None, [], trace_size, (keys, hint_size, hint))
        trace = text.wrap(self.error, trace_size, box.width - 2 * TRACE_PAD - 4)
        if len(trace) > rows:
            # A traceback's end says what went wrong; keep that part.
            trace = ["...", *trace[len(trace) - rows + 1 :]]
        return ErrorLayout(blocks, box, trace, trace_size, (keys, hint_size, hint))

    def _at_most(self, lines: list[str], count: int, size: int, width: int) -> list[str]:
        """``lines`` cut to ``count``, the last one marked with "..." when some were left out."""
        if len(lines) <= count:
            return lines
        return [*lines[: count - 1], self.host.text.fit(lines[count - 1] + ui.ELLIPSIS, size, width)]

    def draw(self, screen: pygame.Surface) -> None:
        text = self.host.text
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
