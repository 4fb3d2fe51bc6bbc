"""Sprites and data the game loads, installed as the ``game.assets`` package (see pyproject.toml)."""
