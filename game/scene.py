"""The scene interface: what the app calls on the active scene each frame."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pygame

from game.generation import Outcome

if TYPE_CHECKING:
    from game.app import App


class Scene:
    """One screen of the game. Hooks default to doing nothing; subclasses override what they need.

    Per frame the app calls ``handle_event`` for each input event, ``on_generation`` if a job ended,
    ``update`` zero or more times with the fixed tick, then ``draw`` once.
    """

    def __init__(self, app: App) -> None:
        self.app = app

    def enter(self) -> None:
        """Called when the scene becomes active."""

    def leave(self) -> None:
        """Called when another scene replaces this one, or the app quits."""

    def handle_event(self, event: pygame.event.Event) -> None:
        """React to one input event (quit and HUD toggles are handled by the app)."""

    def on_generation(self, outcome: Outcome) -> None:
        """A world generation job finished or failed (the app polls VM 1 once a frame)."""

    def update(self, dt: float) -> None:
        """Advance the simulation by one fixed tick of ``dt`` seconds."""

    def draw(self, screen: pygame.Surface) -> None:
        """Draw the whole frame onto ``screen``."""
