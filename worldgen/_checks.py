"""Input checks shared by generate() and gen_world(): clear TypeError/ValueError naming the rule."""

from __future__ import annotations

import operator

import numpy as np

DEFAULT_MEMORY_LIMIT = 2 << 30  # bytes (2 GiB)
COORD_LIMIT = 1 << 31  # coordinates are stored as int32: the region must lie in [-2**31, 2**31)


def as_int(name: str, value: object) -> int:
    """``value`` as an int; TypeError for bools, floats and anything not an integer."""
    if isinstance(value, bool | np.bool_) or not isinstance(value, int | np.integer):
        raise TypeError(f"{name} must be an int, got {type(value).__name__} {value!r}")
    return operator.index(value)


def positive_int(name: str, value: object) -> int:
    """``value`` as an int > 0."""
    v = as_int(name, value)
    if v <= 0:
        raise ValueError(f"{name} must be a positive int, got {v}")
    return v


def region(x0: object, y0: object, width: object, height: object, step: int = 1) -> tuple[int, int, int, int]:
    """Checked (x0, y0, width, height): positive sizes, the sampled area inside the int32 range."""
    x, y = as_int("x0", x0), as_int("y0", y0)
    w, h = positive_int("width", width), positive_int("height", height)
    for name, start, size in (("x", x, (w - 1) * step + 1), ("y", y, (h - 1) * step + 1)):
        if start < -COORD_LIMIT or start + size > COORD_LIMIT:
            raise ValueError(
                f"the region's {name} range [{start}, {start + size}) must lie within "
                f"[-2**31, 2**31): world coordinates are int32"
            )
    return x, y, w, h


def memory(needed: int, limit: object | None, what: str) -> None:
    """ValueError up front if ``needed`` bytes exceed the memory limit (default 2 GiB)."""
    cap = DEFAULT_MEMORY_LIMIT if limit is None else positive_int("memory_limit", limit)
    if needed > cap:
        raise ValueError(
            f"{what} would need about {needed / 2**20:.0f} MiB, more than the memory limit of "
            f"{cap / 2**20:.0f} MiB (pass memory_limit= to raise it)"
        )
