"""The scene interface, and the narrow host interface scenes talk to instead of importing the app.

A scene never builds another scene: it asks its host to ``go`` somewhere (a generation outcome, a retry,
back to the last world), and the host (``game.app.App``) decides in one place which scene that is. So the
scene modules import this module and not the app, and not each other: no import circle.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

import pygame

from game.generation import Failed, Finished, Generator, Outcome, Request

if TYPE_CHECKING:
    from game.stats import FrameStats
    from game.ui import Text


@dataclass(frozen=True)
class Retry:
    """Generate ``request`` and show its progress (over the last world, if there is one)."""

    request: Request


@dataclass(frozen=True)
class Back:
    """Back to the last world shown (if there is one)."""


Step = Finished | Failed | Retry | Back
"""Where a scene asks the host to go next."""


class SettingsLike(Protocol):
    @property
    def lockstep(self) -> bool: ...

    @property
    def zoom(self) -> float | None: ...


class Host(Protocol):
    """What a scene may use of the game that runs it."""

    @property
    def screen(self) -> pygame.Surface: ...

    @property
    def text(self) -> Text: ...

    @property
    def settings(self) -> SettingsLike: ...

    @property
    def generator(self) -> Generator: ...

    @property
    def rng(self) -> random.Random: ...

    @property
    def hud_visible(self) -> bool: ...

    @property
    def hud_stats(self) -> FrameStats: ...

    @property
    def has_last_world(self) -> bool:
        """Whether :class:`Back` has a world to go back to."""
        ...

    def new_seed(self) -> int: ...

    def now_ms(self) -> float: ...

    def draw_hud(
        self, screen: pygame.Surface, rect: pygame.Rect, seed: int, size: tuple[int, int]
    ) -> None: ...

    def go(self, step: Step) -> None:
        """Change scene as ``step`` asks (the host decides which scene that is)."""
        ...


class Scene:
    """One screen of the game. Hooks default to doing nothing; subclasses override what they need.

    Per frame the host calls ``handle_event`` for each input event, ``on_generation`` if a job ended
    (before it changes scene for the outcome), ``update`` zero or more times with the fixed tick, then
    ``draw`` once.
    """

    def __init__(self, host: Host) -> None:
        self.host = host

    def enter(self) -> None:
        """Called when the scene becomes active."""

    def leave(self) -> None:
        """Called when another scene replaces this one, or the app quits."""

    def handle_event(self, event: pygame.event.Event) -> None:
        """React to one input event (quit and HUD toggles are handled by the app)."""

    def on_generation(self, outcome: Outcome) -> None:
        """A world generation job finished or failed (the host then goes where the outcome says)."""

    def update(self, dt: float) -> None:
        """Advance the simulation by one fixed tick of ``dt`` seconds."""

    def draw(self, screen: pygame.Surface) -> None:
        """Draw the whole frame onto ``screen``."""
