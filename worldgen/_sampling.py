"""Where fields are evaluated: a grid of world cells (any step) or scattered cells, behind one interface.

Every field is a pure function of (seed, world cell). A ``Grid`` evaluates noise with the fast separable
``fbm``, ``Points`` with ``fbm_points``; both give the same bits for a cell, so the rest of worldgen is
written once, for either.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from ._noise import fbm, fbm_points, fbm_points_many

F32 = npt.NDArray[np.float32]
F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]
Shape = Callable[[F64], F64] | None
Field = tuple[int, Sequence[int], float]  # (key, spacings, persistence) of one fBm field


@dataclass(frozen=True)
class Grid:
    """The cells ``(x0 + i * step, y0 + j * step)`` for ``0 <= i < width``, ``0 <= j < height``."""

    x0: int
    y0: int
    width: int
    height: int
    step: int = 1

    @property
    def x(self) -> I64:
        """World x of each sample, shaped (1, width) to broadcast over rows."""
        return (self.x0 + np.arange(self.width, dtype=np.int64) * self.step)[None, :]

    @property
    def y(self) -> I64:
        """World y of each sample, shaped (height, 1)."""
        return (self.y0 + np.arange(self.height, dtype=np.int64) * self.step)[:, None]

    @property
    def shape(self) -> tuple[int, int]:
        return (self.height, self.width)

    def noise(self, key: int, spacings: Sequence[int], persistence: float, shape: Shape = None) -> F32:
        return fbm(key, self.x0, self.y0, self.width, self.height, spacings, persistence, shape, self.step)

    def noises(self, fields: Sequence[Field]) -> list[F32]:
        """``noise`` of several fields."""
        return [self.noise(key, spacings, persistence) for key, spacings, persistence in fields]


@dataclass(frozen=True)
class Points:
    """Scattered world cells ``(x[k], y[k])`` (int64 arrays of one shape)."""

    x: I64
    y: I64

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(np.broadcast_shapes(self.x.shape, self.y.shape))

    def noise(self, key: int, spacings: Sequence[int], persistence: float, shape: Shape = None) -> F32:
        x, y = np.broadcast_arrays(self.x, self.y)
        return fbm_points(key, x, y, spacings, persistence, shape)

    def noises(self, fields: Sequence[Field]) -> list[F32]:
        """``noise`` of several fields, evaluated together (the same bits, fewer numpy calls)."""
        x, y = np.broadcast_arrays(self.x, self.y)
        return [a.astype(np.float32) for a in fbm_points_many(fields, x, y)]


Sampler = Grid | Points
