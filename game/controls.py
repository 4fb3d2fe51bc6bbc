"""The keys and speeds both world scenes (finite and endless) move the camera with."""

from __future__ import annotations

import pygame

PAN_SPEED = 700.0  # screen pixels per second for the keyboard
WHEEL_ZOOM = 1.25  # one wheel notch (or + / -) zooms by this factor
PAN_KEYS = {
    pygame.K_LEFT: (-1, 0),
    pygame.K_a: (-1, 0),
    pygame.K_RIGHT: (1, 0),
    pygame.K_d: (1, 0),
    pygame.K_UP: (0, -1),
    pygame.K_w: (0, -1),
    pygame.K_DOWN: (0, 1),
    pygame.K_s: (0, 1),
}
