"""The game's scenes: loading (VM 1 at work), the world, and the failure screen with retry."""

from game.scenes.base import Scene
from game.scenes.error import ErrorScene
from game.scenes.loading import LoadingScene
from game.scenes.world import WorldScene

__all__ = ["ErrorScene", "LoadingScene", "Scene", "WorldScene"]
