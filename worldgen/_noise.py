"""Fractal gradient (Perlin) noise on a rectangular grid of world cells, exact and separable.

Why it is fast: on an axis-aligned grid, 2-D gradient noise separates. For lattice row ``j`` and sample
column ``x``, the x-interpolated contribution of that row is ``P_j(x) + dy * Q_j(x)`` with

    P_j(x) = lerp(sx, gx[j, i] * fx, gx[j, i+1] * (fx - 1))      Q_j(x) = lerp(sx, gy[j, i], gy[j, i+1])

so a sample is ``(1-sy) * (P_j + fy Q_j) + sy * (P_{j+1} + (fy-1) Q_{j+1})``: per-row weights times
per-column rows, i.e. a small matrix product. We compute ``P``/``Q`` once per lattice row
(O(lattice rows x width)) and the grid with one matrix product per band of rows, all octaves at once.

Why it is exact: weights and basis are rounded to multiples of 2**-20 and 2**-28 (far finer than
float32) and the product is done in float64, where every product and partial sum is then a multiple of
2**-48 below 2 in magnitude (amplitudes sum to 1), which float64's 53-bit significand holds exactly. So the
result does not depend on BLAS blocking, FMA use, band layout or chunk offsets: each cell is a pure
function of its world coordinates, bit for bit. Lattice spacings are integers (in cells), so the
fractional positions are exact dyadic numbers too.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np
import numpy.typing as npt

from ._hash import derive_key, hash2

F32 = npt.NDArray[np.float32]
F64 = npt.NDArray[np.float64]

_WEIGHT_BITS = 20
_BASIS_BITS = 28
# Any count stays exact (partial sums stay below 2); this bound only catches mistakes.
MAX_OCTAVES = 8
_BAND_ROWS = 32
_BLOCK_COLS = 256

# 16 unit gradient directions, offset by half a step so that none is axis-aligned.
_ANGLES = [(k + 0.5) * 2.0 * math.pi / 16 for k in range(16)]
_GRAD_X = np.array([math.cos(a) for a in _ANGLES], dtype=np.float64)
_GRAD_Y = np.array([math.sin(a) for a in _ANGLES], dtype=np.float64)


def _fade(t: F64) -> F64:
    """Perlin's quintic fade 6t^5 - 15t^4 + 10t^3 (float64, elementwise, hence deterministic)."""
    return t * t * t * (t * (t * 6.0 - 15.0) + 10.0)


class _Axis:
    """Lattice cell index, exact fraction and fade weight of each coordinate along one axis."""

    def __init__(self, start: int, count: int, spacing: int, offset: int) -> None:
        coords = np.arange(start, start + count, dtype=np.int64) - offset
        self.cell = coords // spacing  # floor division: negative coordinates work
        self.frac = (coords - self.cell * spacing).astype(np.float64) / spacing  # exact (dyadic)
        self.fade = _fade(self.frac)
        self.first = int(self.cell[0])
        self.lattice = np.arange(self.first, int(self.cell[-1]) + 2, dtype=np.int64)


class _Octave:
    """One octave's quantised basis rows (P, Q per lattice row) and per-row weights."""

    def __init__(
        self, key: int, x0: int, y0: int, width: int, height: int, spacing: int, amplitude: float
    ) -> None:
        ox, oy = key % spacing, (key >> 20) % spacing  # shift the lattice so octaves do not line up
        xa = _Axis(x0, width, spacing, ox)
        ya = _Axis(y0, height, spacing, oy)
        grad = (hash2(key, xa.lattice[None, :], ya.lattice[:, None]) >> np.uint64(60)).astype(np.intp)
        gx, gy = _GRAD_X[grad], _GRAD_Y[grad]
        col = xa.cell - xa.first
        sx, fx = xa.fade[None, :], xa.frac[None, :]
        scale = amplitude * float(1 << _BASIS_BITS)
        p = (gx[:, col] * fx) * (1.0 - sx) + (gx[:, col + 1] * (fx - 1.0)) * sx
        q = gy[:, col] * (1.0 - sx) + gy[:, col + 1] * sx
        # Rounded to multiples of 2**-28 (scaling by powers of two is exact, so no later unscaling pass).
        self.p = np.rint(p * scale) * (1.0 / (1 << _BASIS_BITS))
        self.q = np.rint(q * scale) * (1.0 / (1 << _BASIS_BITS))
        sy, fy = ya.fade, ya.frac
        w = float(1 << _WEIGHT_BITS)
        # Weights of P_j, Q_j, P_{j+1}, Q_{j+1} for each output row.
        weights = np.stack([(1.0 - sy), (1.0 - sy) * fy, sy, sy * (fy - 1.0)], axis=1)
        self.weights = np.rint(weights * w) * (1.0 / w)  # multiples of 2**-20
        self.row = ya.cell - ya.first  # local lattice row of each output row


def fbm(
    key: int,
    x0: int,
    y0: int,
    width: int,
    height: int,
    spacings: Sequence[int],
    persistence: float,
    shape: Callable[[F64], F64] | None = None,
) -> F32:
    """Fractal Brownian motion of gradient noise over world cells [x0, x0+width) x [y0, y0+height).

    ``spacings`` are the lattice spacings in cells, coarsest first (one octave each). Amplitudes are
    ``persistence**octave`` normalised to sum to 1, so values lie in about [-0.7, 0.7]. Returns float32
    of shape (height, width), bit-identical for a cell whatever region it is generated in.
    ``shape``, if given, maps each band of rows of raw float64 values elementwise (in place is fine)
    before it is stored as float32: done per band, it runs while the band is still in cache.
    """
    if not 1 <= len(spacings) <= MAX_OCTAVES:
        raise ValueError(f"fbm needs 1..{MAX_OCTAVES} octaves, got {len(spacings)}")
    amps = [persistence**i for i in range(len(spacings))]
    total = sum(amps)
    octaves = [
        _Octave(derive_key(key, i), x0, y0, width, height, s, a / total)
        for i, (s, a) in enumerate(zip(spacings, amps, strict=True))
    ]
    out = np.empty((height, width), dtype=np.float32)
    band_buffer = np.empty((_BAND_ROWS, width), dtype=np.float64)
    for r0 in range(0, height, _BAND_ROWS):
        r1 = min(r0 + _BAND_ROWS, height)
        n = r1 - r0
        blocks: list[F64] = []
        spans: list[tuple[int, int, int]] = []
        k = 0
        for octv in octaves:
            j0 = int(octv.row[r0])
            nl = int(octv.row[r1 - 1]) - j0 + 2  # lattice rows touched by the band, incl. j+1
            blocks.append(octv.p[j0 : j0 + nl])
            blocks.append(octv.q[j0 : j0 + nl])
            spans.append((k, j0, nl))
            k += 2 * nl
        basis = np.concatenate(blocks, axis=0)
        coef = np.zeros((n, k), dtype=np.float64)
        rows = np.arange(n)
        for octv, (k0, j0, nl) in zip(octaves, spans, strict=True):
            local = octv.row[r0:r1] - j0
            wts = octv.weights[r0:r1]
            coef[rows, k0 + local] = wts[:, 0]
            coef[rows, k0 + nl + local] = wts[:, 1]
            coef[rows, k0 + local + 1] = wts[:, 2]
            coef[rows, k0 + nl + local + 1] = wts[:, 3]
        # Column blocks keep each product under OpenBLAS's threading threshold (m*n*k < 262144): its
        # worker threads spin, which on a busy machine (a game's frame loop) costs more than they save.
        band = band_buffer[:n]
        for c0 in range(0, width, _BLOCK_COLS):
            c1 = min(c0 + _BLOCK_COLS, width)
            np.matmul(coef, basis[:, c0:c1], out=band[:, c0:c1])
        # The whole band at once: few numpy calls, and it is still in cache.
        out[r0:r1] = band if shape is None else shape(band)
    return out
