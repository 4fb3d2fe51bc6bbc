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

import functools
import math
from collections.abc import Callable, Sequence

import numpy as np
import numpy.typing as npt

from ._hash import derive_key, hash2, hash2_grid_top

F32 = npt.NDArray[np.float32]
F64 = npt.NDArray[np.float64]

_WEIGHT_BITS = 20
_BASIS_BITS = 28
# Any count stays exact (partial sums stay below 2); this bound only catches mistakes.
MAX_OCTAVES = 8
# Bands of 128 rows: each band gathers its basis rows once, so taller bands gather less per cell, while
# the coarse octaves still touch only 2-3 lattice rows per band (measured: 1.3x faster than 32 rows for
# the detail field's five octaves, 1.5x for the three-octave fields, at 1024x1024).
_BAND_ROWS = 128
# At a step > 1 a band spans step times as many cells, so its dense octaves touch step times as many
# lattice rows: bands of _BAND_ROWS / step rows (at least _MIN_BAND_ROWS) keep the products small and
# serial (a 130x130 chunk's five fields at a step of 8: 4.0 ms with 128 rows, 1.9 with 32).
_MIN_BAND_ROWS = 32
_SERIAL_GEMM = 1 << 18  # OpenBLAS multiplies m*n*k below this on the calling thread alone
_CHUNK_COLS = 512  # columns computed, shaped and stored at once
_GROUP_BANDS = 8  # bands whose coefficients are built at once
_PAIRS = 4096  # (octave, point) pairs of scattered points at once (measured: 1.25x faster than 16384)

# 16 unit gradient directions, offset by half a step so that none is axis-aligned.
_ANGLES = [(k + 0.5) * 2.0 * math.pi / 16 for k in range(16)]
_GRAD_X = np.array([math.cos(a) for a in _ANGLES], dtype=np.float64)
_GRAD_Y = np.array([math.sin(a) for a in _ANGLES], dtype=np.float64)


def _fade(t: F64) -> F64:
    """Perlin's quintic fade 6t^5 - 15t^4 + 10t^3 (float64, elementwise, hence deterministic)."""
    return t * t * t * (t * (t * 6.0 - 15.0) + 10.0)


class _Axis:
    """Lattice cell, exact fraction and fade weight of each sampled coordinate along one axis.

    The samples are ``start + i * step``. ``lattice`` holds only the lattice points they touch (each
    sample's cell and the next), so a coarse step over a huge range needs no table of the range; ``index``
    is each sample's cell's position in ``lattice`` (and its next point is at ``index + 1``).
    """

    def __init__(self, start: int, count: int, spacing: int, offset: int, step: int = 1) -> None:
        self._weights: F64 | None = None
        coords = start - offset + np.arange(count, dtype=np.int64) * step
        self.cell = coords // spacing  # floor division: negative coordinates work
        self.phase = coords - self.cell * spacing  # the position in the lattice cell, 0..spacing-1
        self.frac = self.phase.astype(np.float64) / spacing  # exact (dyadic)
        self.fade = _fade(self.frac)
        if step <= spacing:
            # Consecutive samples share a cell or move to the next one: the points are a plain range.
            first = int(self.cell[0])
            self.lattice = np.arange(first, int(self.cell[-1]) + 2, dtype=np.int64)
            self.index = self.cell - first
            return
        # The sorted distinct points of cell and cell + 1 (what np.unique gives): both runs are sorted
        # already (the samples increase), so a stable sort merges them in linear time.
        both = np.concatenate([self.cell, self.cell + 1])
        both.sort(kind="stable")
        distinct = np.empty(both.size, dtype=np.bool_)
        distinct[0] = True
        np.not_equal(both[1:], both[:-1], out=distinct[1:])
        self.lattice = both[distinct]
        self.index = np.searchsorted(self.lattice, self.cell)

    def row_weights(self) -> F64:
        """Weights of P_j, Q_j, P_{j+1}, Q_{j+1} for each sample along this axis as rows, multiples of
        2**-20 (an (count, 4) array, made once per axis)."""
        if self._weights is None:
            weights = np.ascontiguousarray(_scaled_weights(self.fade, self.frac).T)
            weights *= 1.0 / (1 << _WEIGHT_BITS)
            weights.flags.writeable = False
            self._weights = weights
        return self._weights


def _scaled_weights(fade: F64, frac: F64) -> F64:
    """The interpolation weights of P_j, Q_j, P_{j+1}, Q_{j+1} at positions with this ``fade`` and
    ``frac``, rounded to multiples of 2**-20 and scaled by 2**20 (integers): a (4, *frac.shape) array.
    Grids and scattered points both take them from here, so both get the same bits."""
    weights = np.empty((4, *frac.shape), dtype=np.float64)
    one_sy = np.subtract(1.0, fade, out=weights[0])
    np.multiply(one_sy, frac, out=weights[1])
    weights[2] = fade
    np.subtract(frac, 1.0, out=weights[3])
    weights[3] *= fade  # fade * (frac - 1): a product, the same bits in either order
    weights *= float(1 << _WEIGHT_BITS)
    np.rint(weights, out=weights)
    return weights


# Axes of chunk-sized regions are kept and shared (read-only): the chunks of a view share their columns
# and rows (every octave has its own offset, so its own axes), and making an axis costs more than its
# arithmetic at this size. Larger axes are cheap by comparison and would hold more memory. At most
# _SHARED_AXES of them, about 80 bytes per sample: under 11 MiB, about 5 MiB for the game's chunks.
_SHARED_AXIS_SAMPLES = 256
_SHARED_AXES = 512


@functools.lru_cache(maxsize=_SHARED_AXES)
def _shared_axis(start: int, count: int, spacing: int, offset: int, step: int) -> _Axis:
    axis = _Axis(start, count, spacing, offset, step)
    for a in (axis.cell, axis.phase, axis.frac, axis.fade, axis.lattice, axis.index):
        a.flags.writeable = False  # shared: a write would change other calls' noise
    return axis


def _axis(start: int, count: int, spacing: int, offset: int, step: int) -> _Axis:
    """``_Axis(...)``, shared between calls for chunk-sized axes."""
    if count <= _SHARED_AXIS_SAMPLES:
        return _shared_axis(start, count, spacing, offset, step)
    return _Axis(start, count, spacing, offset, step)


class _Octave:
    """One octave's quantised basis rows (P, Q per lattice row) and per-row weights."""

    def __init__(
        self,
        key: int,
        region: tuple[int, int, int, int],
        step: int,
        spacing: int,
        amplitude: float,
    ) -> None:
        x0, y0, width, height = region
        ox, oy = key % spacing, (key >> 20) % spacing  # shift the lattice so octaves do not line up
        xa = _axis(x0, width, spacing, ox, step)
        ya = _axis(y0, height, spacing, oy, step)
        grad = (hash2(key, xa.lattice[None, :], ya.lattice[:, None]) >> np.uint64(60)).astype(np.intp)
        self.weights = ya.row_weights()
        self.row = ya.index  # local lattice row of each output row
        self.sparse = step >= spacing
        if step == 1 and _TABLE_CELLS * spacing < grad.shape[0] * width // 2:
            self.p, self.q = _basis_from_tables(grad, xa, spacing, amplitude)
            return
        gx, gy = _GRAD_X[grad], _GRAD_Y[grad]
        col = xa.index
        col1 = col + 1
        sx, fx = xa.fade[None, :], xa.frac[None, :]
        scale = amplitude * float(1 << _BASIS_BITS)
        # P = (gx_i * fx) * (1 - sx) + (gx_{i+1} * (fx - 1)) * sx and Q = gy_i * (1 - sx) + gy_{i+1} * sx,
        # in place (the same operations in the same order, so the same values) to keep at most three
        # tables of lattice rows x width alive: these tables dominate the memory of wide, short regions.
        p = gx[:, col]
        p *= fx
        p *= 1.0 - sx
        t = gx[:, col1]
        t *= fx - 1.0
        t *= sx
        p += t
        q = gy[:, col]
        q *= 1.0 - sx
        np.multiply(gy[:, col1], sx, out=t)
        q += t
        del t
        # Rounded to multiples of 2**-28 (scaling by powers of two is exact, so no later unscaling pass).
        for basis in (p, q):
            basis *= scale
            np.rint(basis, out=basis)
            basis *= 1.0 / (1 << _BASIS_BITS)
        self.p, self.q = p, q


# A fine octave's P and Q at a step of 1 take one of 16 x 16 x spacing values (the gradients at the two
# lattice points, the position in the lattice cell): a table of them, computed by the same operations,
# then gathered, is cheaper than the arithmetic over every lattice row when it is much smaller.
_TABLE_CELLS = 2 * 16 * 16


def _basis_from_tables(
    grad: npt.NDArray[np.intp], xa: _Axis, spacing: int, amplitude: float
) -> tuple[F64, F64]:
    """``_Octave``'s rounded P and Q tables at a step of 1, gathered from the values of every pair of
    gradients at every position in a lattice cell (the same operations on the same values: the same
    bits)."""
    frac = np.arange(spacing, dtype=np.float64) / spacing  # as _Axis computes it, phase by phase
    fx, sx = frac[None, None, :], _fade(frac)[None, None, :]
    gx0, gx1 = _GRAD_X[:, None, None], _GRAD_X[None, :, None]
    gy0, gy1 = _GRAD_Y[:, None, None], _GRAD_Y[None, :, None]
    p_values = (gx0 * fx) * (1.0 - sx) + (gx1 * (fx - 1.0)) * sx
    q_values = gy0 * (1.0 - sx) + gy1 * sx
    scale = amplitude * float(1 << _BASIS_BITS)
    for values in (p_values, q_values):
        values *= scale
        np.rint(values, out=values)
        values *= 1.0 / (1 << _BASIS_BITS)
    # Each lattice cell's gradient pair, then each column's entry in the tables.
    pair = grad[:, :-1] * 16 + grad[:, 1:]
    at = pair[:, xa.index]
    at *= spacing
    at += xa.phase[None, :]
    return np.take(p_values.reshape(-1), at), np.take(q_values.reshape(-1), at)


def peak_bytes(width: int, height: int, spacings: Sequence[int]) -> int:
    """Upper bound on the bytes ``fbm`` holds at once for a ``width`` x ``height`` region, result included.

    Besides its float32 result, ``fbm`` keeps per octave a float64 P and Q table of every lattice row the
    region touches by ``width`` (at least 2 rows and up to 3 even for a 1-row region, so these tables,
    not the cells, dominate short wide regions), and 4 float64 weights and a row index per output row
    (which dominate tall narrow ones). Not counted here: allocator slack.
    """
    rows = [(height - 1) // s + 3 for s in spacings]  # lattice rows an octave touches, at most
    tables = 16 * width * sum(rows)
    per_row = (40 * len(spacings) + 64) * height  # 64: the y axis of the octave being built
    # The octave being built: a third table, its x axis arrays, and its gradient grid (hashes, gradients).
    building = (8 * max(rows) + 64) * width + 40 * max(rows) * ((width - 1) // min(spacings) + 3)
    # The band loop: scratch and up to 5 temporaries of shape() per chunk, the basis of a chunk, and the
    # coefficients of a group of bands (with their index temporaries).
    band, chunk = min(height, _BAND_ROWS), min(width, _CHUNK_COLS)
    basis_rows = 2 * sum((band - 1) // s + 3 for s in spacings)
    loop = (
        48 * band * chunk
        + 8 * basis_rows * (chunk + min(height, _GROUP_BANDS * _BAND_ROWS))
        + 64 * min(height, _GROUP_BANDS * _BAND_ROWS)
    )
    return 4 * width * height + tables + per_row + building + loop


def fbm(
    key: int,
    x0: int,
    y0: int,
    width: int,
    height: int,
    spacings: Sequence[int],
    persistence: float,
    shape: Callable[[F64], F64] | None = None,
    step: int = 1,
) -> F32:
    """Fractal Brownian motion of gradient noise at world cells ``(x0 + i * step, y0 + j * step)``.

    ``spacings`` are the lattice spacings in cells, coarsest first (one octave each). Amplitudes are
    ``persistence**octave`` normalised to sum to 1, so values lie in about [-0.7, 0.7]. Returns float32
    of shape (height, width), bit-identical for a cell whatever region (and step) it is generated in.
    ``shape``, if given, maps raw float64 values elementwise (in place is fine) before they are stored
    as float32, one chunk (a band of rows by up to ``_CHUNK_COLS`` columns) at a time, while the chunk is
    still in cache.
    """
    if not 1 <= len(spacings) <= MAX_OCTAVES:
        raise ValueError(f"fbm needs 1..{MAX_OCTAVES} octaves, got {len(spacings)}")
    amps = [persistence**i for i in range(len(spacings))]
    total = sum(amps)
    octaves = [
        _Octave(derive_key(key, i), (x0, y0, width, height), step, s, a / total)
        for i, (s, a) in enumerate(zip(spacings, amps, strict=True))
    ]
    out = np.empty((height, width), dtype=np.float32)
    # Scratch for one band x chunk of float64 results: its size (and that of the basis block and of
    # shape()'s temporaries) does not grow with the region, so a long strip needs no strip-long buffers.
    band_rows = _band_rows(step)
    group_rows = _GROUP_BANDS * band_rows
    scratch = np.empty((min(band_rows, height), min(_CHUNK_COLS, width)), dtype=np.float64)
    # An octave whose lattice is not finer than the sampling step touches two lattice rows per output
    # row: a matrix product would be mostly zeros, so it is summed elementwise instead ("sparse"). Both
    # ways give the same bits, as every product and partial sum is exact (see the module docstring).
    dense = [o for o in octaves if not o.sparse]
    sparse = [o for o in octaves if o.sparse]
    for g0 in range(0, height, group_rows):
        g1 = min(g0 + group_rows, height)
        coefs, spans = _coefficients(dense, g0, g1, band_rows)
        for b, r0 in enumerate(range(g0, g1, band_rows)):
            r1 = min(r0 + band_rows, g1)
            n = r1 - r0
            rows_used = [
                (o.p[j0 : j0 + nl], o.q[j0 : j0 + nl]) for o, (j0, nl) in zip(dense, spans[b], strict=True)
            ]
            coef = coefs[r0 - g0 : r1 - g0, : 2 * sum(nl for _, nl in spans[b])]
            for c0 in range(0, width, _CHUNK_COLS):
                c1 = min(c0 + _CHUNK_COLS, width)
                chunk = scratch[:n, : c1 - c0]
                if not dense:
                    chunk[...] = 0.0
                else:
                    # The basis rows of the band, gathered once per chunk (never as a copy of whole
                    # rows of a wide region).
                    basis = np.concatenate([t[:, c0:c1] for p, q in rows_used for t in (p, q)], axis=0)
                # Column blocks keep each product under OpenBLAS's threading threshold (m*n*k < 262144):
                # its worker threads spin, which on a busy machine (a game's frame loop) costs more than
                # they save.
                block = max(16, _SERIAL_GEMM // max(1, n * coef.shape[1]) // 16 * 16)
                for b0 in range(0, c1 - c0, block) if dense else ():
                    b1 = min(b0 + block, c1 - c0)
                    np.matmul(coef, basis[:, b0:b1], out=chunk[:, b0:b1])
                for octv in sparse:
                    j = octv.row[r0:r1]
                    wts = octv.weights[r0:r1]
                    for table, jj, w in (
                        (octv.p, j, 0),
                        (octv.q, j, 1),
                        (octv.p, j + 1, 2),
                        (octv.q, j + 1, 3),
                    ):
                        term = table[jj, c0:c1]
                        term *= wts[:, w : w + 1]
                        chunk += term
                # A chunk at once: few numpy calls, and it is still in cache.
                out[r0:r1, c0:c1] = chunk if shape is None else shape(chunk)
    return out


def _band_rows(step: int) -> int:
    """Rows of a band at this step: _BAND_ROWS at a step of 1, fewer for coarser steps."""
    return max(_MIN_BAND_ROWS, _BAND_ROWS // step)


def _coefficients(
    dense: list[_Octave], g0: int, g1: int, band_rows: int
) -> tuple[F64, list[list[tuple[int, int]]]]:
    """Coefficient rows of every band of ``band_rows`` rows in ``[g0, g1)``, built at once, and each
    band's lattice spans.

    Band ``b`` (rows ``g0 + b * band_rows`` on) multiplies the basis rows ``P[j0 : j0 + nl]`` then
    ``Q[j0 : j0 + nl]`` of each octave in turn (``spans[b]`` holds the ``(j0, nl)``) by its rows of the
    returned array, zero-padded on the right to the widest band's width.
    """
    starts = np.arange(g0, g1, band_rows)
    if not dense:  # every octave sparse (a step of 256 or more): no matrix product, no coefficients
        return np.zeros((g1 - g0, 0), dtype=np.float64), [[] for _ in range(starts.size)]
    ends = np.minimum(starts + band_rows, g1) - 1
    band = (np.arange(g0, g1) - g0) // band_rows
    j0s = [o.row[starts] for o in dense]
    nls = [o.row[ends] - j0 + 2 for o, j0 in zip(dense, j0s, strict=True)]  # lattice rows incl. j + 1
    widths = 2 * np.array(nls, dtype=np.int64).reshape(len(dense), -1)
    k0s = np.cumsum(widths, axis=0) - widths  # each octave's first column, per band
    coef = np.zeros((g1 - g0, int(np.amax(widths.sum(axis=0), initial=0))), dtype=np.float64)
    rows = np.arange(g1 - g0)
    for octv, j0, nl, k0 in zip(dense, j0s, nls, k0s, strict=True):
        col = k0[band] + octv.row[g0:g1] - j0[band]
        nlr = nl[band]
        wts = octv.weights[g0:g1]
        coef[rows, col] = wts[:, 0]
        coef[rows, col + nlr] = wts[:, 1]
        coef[rows, col + 1] = wts[:, 2]
        coef[rows, col + nlr + 1] = wts[:, 3]
    spans = [[(int(j0[b]), int(nl[b])) for j0, nl in zip(j0s, nls, strict=True)] for b in range(starts.size)]
    return coef, spans


def fbm_points(
    key: int,
    x: npt.NDArray[np.int64],
    y: npt.NDArray[np.int64],
    spacings: Sequence[int],
    persistence: float,
    shape: Callable[[F64], F64] | None = None,
) -> F32:
    """``fbm`` at scattered world cells ``(x, y)`` (int64 arrays of one shape): the same bits as ``fbm``.

    Each octave repeats ``_Octave``'s operations (same order, same rounding) for the two lattice rows
    around each point, and the four exact products are summed: so the value of a cell does not depend on
    whether it is sampled on a grid or alone. See ``fbm_points_many``.
    """
    (out,) = fbm_points_many([(key, spacings, persistence)], x, y)
    return (out if shape is None else shape(out)).astype(np.float32)


def fbm_points_many(
    fields: Sequence[tuple[int, Sequence[int], float]],
    x: npt.NDArray[np.int64],
    y: npt.NDArray[np.int64],
) -> list[F64]:
    """``fbm_points`` of several fields ``(key, spacings, persistence)`` at the same cells, before the
    float32 rounding (float64, shaped like ``x``; each value exact, see the module docstring).

    The octaves of all fields are evaluated at once (arrays of octaves by points, about ``_PAIRS`` of
    them at a time: the same elementwise operations, fewer numpy calls), and each field sums its own
    rows: a sum of exact products, whose order does not change its bits.
    """
    okeys: list[int] = []
    spacing_list: list[int] = []
    scales: list[float] = []
    rows: list[slice] = []
    for key, spacings, persistence in fields:
        amps = [persistence**i for i in range(len(spacings))]
        total = sum(amps)
        rows.append(slice(len(okeys), len(okeys) + len(spacings)))
        okeys += [derive_key(key, i) for i in range(len(spacings))]
        spacing_list += list(spacings)
        scales += [(a / total) * float(1 << _BASIS_BITS) for a in amps]
    x = np.asarray(x, dtype=np.int64)
    y = np.asarray(y, dtype=np.int64)
    fx_all, fy_all = x.reshape(-1), y.reshape(-1)
    outs = [np.empty(fx_all.size, dtype=np.float64) for _ in fields]
    if fx_all.size == 0:
        return [out.reshape(x.shape) for out in outs]
    keys = np.array(okeys, dtype=np.uint64)[:, None]
    spacing = np.array(spacing_list, dtype=np.int64)[:, None]
    ox = np.array([k % s for k, s in zip(okeys, spacing_list, strict=True)], dtype=np.int64)[:, None]
    oy = np.array([(k >> 20) % s for k, s in zip(okeys, spacing_list, strict=True)], dtype=np.int64)[:, None]
    scale = np.array(scales, dtype=np.float64)[:, None]
    # Integer division is slow in numpy: power-of-two spacings (all of ours) take a shift and a mask,
    # and the exact reciprocal (the same bits as the division).
    pow2 = all(s & (s - 1) == 0 for s in spacing_list)
    shift = np.array([s.bit_length() - 1 for s in spacing_list], dtype=np.int64)[:, None]
    inv = 1.0 / spacing
    chunk = max(256, _PAIRS // max(1, len(okeys)))  # points at once
    for start in range(0, fx_all.size, chunk):
        px, py = fx_all[None, start : start + chunk], fy_all[None, start : start + chunk]
        cx, fx = _cell_fraction(px - ox, spacing, shift, inv, pow2)
        cy, fy = _cell_fraction(py - oy, spacing, shift, inv, pow2)
        sx, sy = _fade(fx), _fade(fy)
        one_sx, fx_1 = 1.0 - sx, fx - 1.0
        # The weights as integers (multiples of 2**-20 scaled by 2**20) and below the basis as integers
        # (multiples of 2**-28 scaled by 2**28): their products and sums are integers below 2**53, exact,
        # so summing them and scaling by 2**-48 at the end gives the very bits of summing the products of
        # the scaled-back values (what ``fbm`` computes).
        weights = _scaled_weights(sy, fy)
        acc = np.zeros(fx.shape, dtype=np.float64)
        # The gradient index is a hash's top 4 bits (as in _Octave).
        grads = hash2_grid_top(keys, [cx, cx + 1], [cy, cy + 1], 4)
        for (g0, g1), (wp, wq) in zip(grads, ((0, 1), (2, 3)), strict=True):
            p = _GRAD_X[g0] * fx
            p *= one_sx
            t = _GRAD_X[g1] * fx_1
            t *= sx
            p += t
            q = _GRAD_Y[g0] * one_sx
            np.multiply(_GRAD_Y[g1], sx, out=t)
            q += t
            for basis, k in ((p, wp), (q, wq)):
                basis *= scale
                np.rint(basis, out=basis)
                basis *= weights[k]
                acc += basis
        acc *= 1.0 / (1 << (_BASIS_BITS + _WEIGHT_BITS))
        for out, field_rows in zip(outs, rows, strict=True):
            out[start : start + chunk] = acc[field_rows].sum(axis=0)
    return [out.reshape(x.shape) for out in outs]


def _cell_fraction(
    d: npt.NDArray[np.int64],
    spacing: npt.NDArray[np.int64],
    shift: npt.NDArray[np.int64],
    inv: F64,
    pow2: bool,
) -> tuple[npt.NDArray[np.int64], F64]:
    """Lattice cell (floor division by the spacing) and exact fraction of the offsets ``d``."""
    if pow2:
        cell = d >> shift
        frac = (d & (spacing - 1)).astype(np.float64)
        frac *= inv  # a power of two's reciprocal: exactly the division
        return cell, frac
    cell = d // spacing
    return cell, (d - cell * spacing).astype(np.float64) / spacing
