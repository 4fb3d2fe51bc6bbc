"""Shared test set-up: headless SDL before anything can import pygame."""

import os

# Set before pygame is imported anywhere, so that no test needs a display or a sound card.
os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
os.environ.setdefault("SDL_AUDIODRIVER", "dummy")
os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")
