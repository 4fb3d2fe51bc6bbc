"""generate(): one world region as numpy arrays, identical however the world is cut into chunks."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import numpy.typing as npt

from . import _checks, _creatures
from ._biomes import BEACH_NOISE, BEACH_REACH, SEA_LEVEL, classify
from ._noise import peak_bytes as noise_peak_bytes
from ._rivers import _BATCH, NODE, Network, cut_channels, network, water_grid, water_points
from ._sampling import Grid, Points
from ._terrain import CONTINENT_OCTAVES, DETAIL_OCTAVES, RIDGE_OCTAVES, climate, elevation, land_noise

# Beaches look for sea cells on a lattice of this spacing (within BEACH_REACH of the cell, so a beach
# always lies within BEACH_REACH of the sea), which any step can evaluate cheaply. A spacing below the
# reach keeps the beach's inland edge from stepping in blocks as large as the reach.
_LATTICE = 4
_WINDOW = 2 * BEACH_REACH // _LATTICE + 1  # lattice points along an axis within BEACH_REACH, at most

F32 = npt.NDArray[np.float32]
B = npt.NDArray[np.bool_]
F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]

# Memory estimate (see held_bytes): _OBJECT_BYTES for Python objects and array headers. Peak RSS can
# exceed the bytes held at once: glibc keeps freed blocks under 32 MiB for reuse rather than returning
# them, so allow a quarter more (_ALLOCATOR_SLACK, in quarters). A process's first call also loads code
# and BLAS buffers (about 1.5 MiB measured).
_OBJECT_BYTES = 3 << 20  # also the node network (a few thousand nodes) and its noise
_ALLOCATOR_SLACK = 5
_START_UP_BYTES = 2 << 20
# At a step > 1 two costs grow with the sampled area, not with the samples: the river network over it
# (measured 490-570 bytes of peak per node) and the creatures placed over all of it (1,450-1,480 bytes
# per 16x16 square they may stand in: each is looked up at its own cell).
_NODE_BYTES = 640
_SQUARE_BYTES = 1536
_NODE_PADDING = 60  # nodes a network adds around its area, both sides together (27 each, and some)


def area_bytes(width: int, height: int, step: int, creatures: bool) -> int:
    """Peak bytes beyond ``estimated_bytes`` that a region sampled every ``step`` cells needs."""
    if step == 1:
        return 0  # (within estimated_bytes: it was measured with the network and creatures included)
    cells_x, cells_y = width * step, height * step
    total = (cells_x // NODE + _NODE_PADDING) * (cells_y // NODE + _NODE_PADDING) * _NODE_BYTES
    # The beach lattice over the area, if it is small enough to be built (see _lattice_limit).
    nx, ny = (cells_x + 2 * BEACH_REACH) // _LATTICE + 2, (cells_y + 2 * BEACH_REACH) // _LATTICE + 2
    if nx * ny <= _lattice_limit(width, height, width * height):
        total += noise_peak_bytes(nx, ny, CONTINENT_OCTAVES + DETAIL_OCTAVES) + 6 * nx * ny
    if creatures:
        c = _creatures.CREATURE_CELL
        total += (cells_x // c + 2) * (cells_y // c + 2) * _SQUARE_BYTES
    return total


_BYTES_PER_CELL = 48  # float32 fields and temporaries of the terrain, water and classification stages
_BYTES_PER_PAIR = 200  # float64 temporaries of the river formula per (cell, segment) pair
_PAIRS_PER_CELL = 12


@dataclass(frozen=True, eq=False)
class World:
    """A generated region: numpy fields of shape (height, width) indexed [row, column].

    Row ``r``, column ``c`` is world cell ``(x0 + c * step, y0 + r * step)``. ``biome`` holds ids into
    ``BIOMES``; ``heights`` is elevation as integers 1..10; ``river`` is the signed distance in cells from
    the cell to the nearest river bank (negative on river cells, capped at ``RIVER_FAR``): a view sampled
    every ``step`` cells draws a river where ``river < step / 2``, so thin rivers stay continuous.
    ``creatures`` is a ``CREATURE_DTYPE`` array of the creatures whose cell lies in the sampled area
    ``[x0, x0 + width * step) x [y0, y0 + height * step)``, in world cells, sorted by id.
    """

    seed: int
    x0: int
    y0: int
    elevation: npt.NDArray[np.float32]
    moisture: npt.NDArray[np.float32]
    temperature: npt.NDArray[np.float32]
    biome: npt.NDArray[np.uint8]
    heights: npt.NDArray[np.uint8]
    river: npt.NDArray[np.float32]
    creatures: npt.NDArray[np.void]
    step: int = 1

    @property
    def width(self) -> int:
        """Number of columns (samples along x)."""
        return int(self.elevation.shape[1])

    @property
    def height(self) -> int:
        """Number of rows (samples along y)."""
        return int(self.elevation.shape[0])


def held_bytes(width: int, height: int) -> int:
    """Upper bound on the bytes generate() holds at once for a region (what tracemalloc counts).

    Large regions cost about ``_BYTES_PER_CELL`` bytes per cell (of the region with its beach halo);
    the noise stages' tables grow with the width times the lattice rows touched and per-row weights, so
    thin strips cost more per cell; rivers are drawn in batches of (cell, segment) pairs, at most
    ``_BATCH`` pairs (and about ``_PAIRS_PER_CELL`` per cell) of ``_BYTES_PER_PAIR`` bytes at once.
    """
    r = 2 * BEACH_REACH
    cells = (width + r) * (height + r)
    noise = noise_peak_bytes(width + r, height + r, DETAIL_OCTAVES + CONTINENT_OCTAVES + RIDGE_OCTAVES)
    pairs = min(_BATCH, _PAIRS_PER_CELL * width * height)
    return _BYTES_PER_CELL * cells + noise + _BYTES_PER_PAIR * pairs + _OBJECT_BYTES


def estimated_bytes(width: int, height: int) -> int:
    """Upper bound on generate()'s peak memory (RSS growth) for a region: the up-front memory check."""
    return held_bytes(width, height) * _ALLOCATOR_SLACK // 4 + _START_UP_BYTES


def _near_sea_points(seed: int, x: I64, y: I64) -> npt.NDArray[np.bool_]:
    """Whether a sea cell of the beach lattice lies within BEACH_REACH (Chebyshev) of each cell."""
    s, r = _LATTICE, BEACH_REACH
    lo_x, lo_y = -((r - x) // s), -((r - y) // s)  # first lattice index at or after x - r
    k = np.arange(_WINDOW, dtype=np.int64)
    kx = np.repeat(k, _WINDOW)[None, :]
    ky = np.tile(k, _WINDOW)[None, :]
    lx, ly = (lo_x[:, None] + kx) * s, (lo_y[:, None] + ky) * s
    valid = (lx <= x[:, None] + r) & (ly <= y[:, None] + r)
    # Neighbouring cells share lattice points: each distinct point is evaluated once.
    span = np.int64(1 << 30)  # lattice indices lie within +-2**29 (cells within +-2**31): no overflow
    code = (lx // s + span) * (2 * span) + (ly // s + span)
    distinct, which = np.unique(code, return_inverse=True)
    # (int64 already: the casts only tell numpy 2.5's stubs, which lose the dtype, and cost no copy)
    px = ((distinct // (2 * span) - span) * s).astype(np.int64, copy=False)
    py = ((distinct % (2 * span) - span) * s).astype(np.int64, copy=False)
    _, sea, _ = land_noise(seed, Points(px, py))
    near: npt.NDArray[np.bool_] = np.any(sea[which.reshape(lx.shape)] & valid, axis=1)
    return near


class SeaLattice(NamedTuple):
    """The open sea at the beach lattice points ``(lx0 + i, ly0 + j) * _LATTICE``: ``sea[j, i]``."""

    lx0: int
    ly0: int
    sea: B


def _lattice_box(grid: Grid, x_hi: int, y_hi: int) -> tuple[int, int, int, int]:
    """``(lx0, ly0, nx, ny)``: the beach lattice points within BEACH_REACH of the cells from the grid's
    first sample to ``(x_hi, y_hi)``, ``(lx0 + i, ly0 + j) * _LATTICE`` for ``i < nx``, ``j < ny``."""
    s, r = _LATTICE, BEACH_REACH
    lx0, ly0 = (grid.x0 - r) // s, (grid.y0 - r) // s
    return lx0, ly0, (x_hi + r) // s - lx0 + 1, (y_hi + r) // s - ly0 + 1


def _sea_lattice(seed: int, grid: Grid, sea: B, x_hi: int, y_hi: int, candidates: int) -> SeaLattice | None:
    """The sea lattice around the cells from the grid's first sample to ``(x_hi, y_hi)`` (within
    BEACH_REACH of them), or None if looking around the ``candidates`` beach candidates alone is cheaper
    (a coarse step with few of them). ``sea`` is the grid's open sea (see ``_lattice_sea``)."""
    lx0, ly0, nx, ny = _lattice_box(grid, x_hi, y_hi)
    if nx * ny > _lattice_limit(grid.width, grid.height, candidates):
        return None
    return SeaLattice(lx0, ly0, _lattice_sea(seed, grid, sea, lx0, ly0, nx, ny))


# A lattice point costs about 32 ns on a grid, a beach candidate looked at alone about 15 us (its 25
# points each on their own, shared with its neighbours only at fine steps): the lattice is built while
# it has fewer than _POINTS_PER_CANDIDATE points per candidate (half the break-even), and never more
# than _MAX_LATTICE points beyond twice the grid (its memory: area_bytes counts them).
_POINTS_PER_CANDIDATE = 256
_MAX_LATTICE = 1 << 19


def _lattice_limit(width: int, height: int, candidates: int) -> int:
    """The most lattice points ``_sea_lattice`` builds for a grid with this many beach candidates."""
    return 2 * width * height + 4096 + min(_POINTS_PER_CANDIDATE * candidates, _MAX_LATTICE)


def _near_sea_lattice(lattice: SeaLattice, x: I64, y: I64) -> B:
    """``_near_sea_points`` read from a lattice that covers the cells' surroundings."""
    s, r = _LATTICE, BEACH_REACH
    ny, nx = lattice.sea.shape
    near = np.zeros(x.shape, dtype=np.bool_)
    ix0, iy0 = -((r - x) // s), -((r - y) // s)  # first lattice index at or after x - r
    for kx in range(_WINDOW):
        ix = ix0 + kx
        valid_x = ix * s <= x + r
        col = np.minimum(ix - lattice.lx0, nx - 1)
        for ky in range(_WINDOW):
            iy = iy0 + ky
            valid = valid_x & (iy * s <= y + r)
            near |= valid & lattice.sea[np.minimum(iy - lattice.ly0, ny - 1), col]
    return near


def _beach_grid(grid: Grid, cand: B, lattice: SeaLattice) -> B:
    """The beach candidates of a grid with a sea cell of the beach lattice within BEACH_REACH, from the
    lattice around the grid (``_near_sea_points`` for every candidate). May overwrite ``cand``."""
    if grid.step == 1:
        # Whether sea lies within reach of every cell, a lattice column and row at a time: cheaper
        # than looking around each candidate when they are many (whole worlds at full resolution).
        rows = _reach_any(lattice.sea.T, lattice.ly0, grid.y0, grid.height).T
        near = _reach_any(rows, lattice.lx0, grid.x0, grid.width)
        beach: B = np.logical_and(cand, near, out=cand)  # (cand is not needed after this)
        return beach
    s, r = _LATTICE, BEACH_REACH
    x, y = grid.x.ravel(), grid.y.ravel()
    lx0, ly0 = lattice.lx0, lattice.ly0
    ny, nx = lattice.sea.shape
    # Separable window sums: over the lattice rows of each sample row, then over the lattice columns,
    # the latter only at the candidates (a small share of the cells).
    ilo, ihi = -((r - x) // s) - lx0, (x + r) // s - lx0 + 1
    jlo, jhi = -((r - y) // s) - ly0, (y + r) // s - ly0 + 1
    down = np.zeros((ny + 1, nx), dtype=np.int32)
    np.cumsum(lattice.sea, axis=0, dtype=np.int32, out=down[1:])
    rows = (down[jhi] - down[jlo]) > 0
    across = np.zeros((rows.shape[0], nx + 1), dtype=np.int32)
    np.cumsum(rows, axis=1, dtype=np.int32, out=across[:, 1:])
    beach = np.zeros(grid.shape, dtype=np.bool_)
    flat = np.flatnonzero(cand)
    row, col = np.divmod(flat, grid.width)
    base = row * (nx + 1)
    count = np.take(across, base + ihi[col]) - np.take(across, base + ilo[col])
    beach.reshape(-1)[flat] = count > 0
    return beach


_REACH_POINTS = BEACH_REACH // _LATTICE  # lattice points within BEACH_REACH on either side of one
assert BEACH_REACH % _LATTICE == 0  # (_reach_any relies on it)


def _reach_any(mask: B, lo: int, first: int, count: int) -> B:
    """For the ``count`` consecutive cells from ``first`` along the last axis: whether ``mask`` is set
    at a lattice point within BEACH_REACH of the cell (``mask[..., i]`` is lattice point ``lo + i``,
    covering BEACH_REACH around the cells). Shaped like ``mask`` but for the last axis.

    A cell on a lattice point sees the 2 R + 1 points around its own (R = _REACH_POINTS), any other
    cell the 2 R points from R - 1 below its lattice cell to R above: two window ORs over the lattice,
    then each cell takes its window's.
    """
    s, reach = _LATTICE, _REACH_POINTS
    l0 = first // s - lo  # the first cell's lattice cell, as an index into mask
    n = (first + count - 1) // s - lo - l0 + 1
    mask = np.ascontiguousarray(mask)
    between = mask[..., l0 - reach + 1 : l0 - reach + 1 + n].copy()
    for k in range(-reach + 2, reach + 1):
        between |= mask[..., l0 + k : l0 + k + n]
    on_point = mask[..., l0 - reach : l0 - reach + n] | between
    # The s cells of each lattice cell as the s bytes of one integer (little-endian: the byte of the
    # cell on the lattice point first), so spreading the windows to the cells takes two passes.
    spread = _SPREAD[s]
    out = np.multiply(between, spread[1], dtype=spread[0])
    out |= on_point
    start = first - (l0 + lo) * s
    cells: B = out.view(np.bool_)[..., start : start + count]
    return cells


# For _LATTICE cells a lattice cell: the integer type of that many bytes, and the value whose bytes are
# 0, 1, 1, ... in memory order (little-endian).
_SPREAD = {4: (np.dtype("<u4"), np.uint32(0x01010100))}
assert _LATTICE in _SPREAD


def _lattice_sea(seed: int, grid: Grid, sea: B, lx0: int, ly0: int, nx: int, ny: int) -> B:
    """The open sea at the beach lattice points ``(lx0 + i, ly0 + j) * _LATTICE``, an (ny, nx) mask."""
    s, st = _LATTICE, grid.step
    if s % st or grid.x0 % st or grid.y0 % st:
        _, out, _ = land_noise(seed, Grid(lx0 * s, ly0 * s, nx, ny, s))
        return out
    # Every lattice point is on the grid's sampling lattice: those inside the grid are samples of it.
    lx = (lx0 + np.arange(nx, dtype=np.int64)) * s
    ly = (ly0 + np.arange(ny, dtype=np.int64)) * s
    col, row = (lx - grid.x0) // st, (ly - grid.y0) // st
    in_x = (col >= 0) & (col < grid.width)
    in_y = (row >= 0) & (row < grid.height)
    out = np.empty((ny, nx), dtype=np.bool_)
    out[np.ix_(in_y, in_x)] = sea[np.ix_(row[in_y], col[in_x])]
    ring = ~(in_y[:, None] & in_x[None, :])
    py, px = np.nonzero(ring)
    if py.size:
        _, ring_sea, _ = land_noise(seed, Points(lx[px], ly[py]))
        out[py, px] = ring_sea
    return out


def _biomes_at(seed: int, x: I64, y: I64, net: Network, lattice: SeaLattice | None) -> npt.NDArray[np.uint8]:
    """Biome ids at scattered cells: the same as on a grid, cell by cell (``lattice``, if given, holds
    the sea lattice around all of them)."""
    where = Points(x, y)
    e, c, basin, _ = elevation(seed, where)
    t, m = climate(seed, where, e, c)
    water = water_points(where, e, net)
    carved = water.carved.astype(np.float32)
    beach = np.zeros(x.shape, dtype=np.bool_)
    river = water.river < 0.0
    lake = (water.lake & (e >= SEA_LEVEL)) | (basin > 0.0)
    carved = np.where(lake, np.maximum(carved, np.float32(SEA_LEVEL)), carved)
    cut_channels(carved, river & ~lake)
    cand = (carved >= SEA_LEVEL) & (c < BEACH_NOISE) & ~river & ~lake
    if cand.any():
        xc, yc = x[cand], y[cand]
        beach[cand] = (
            _near_sea_points(seed, xc, yc) if lattice is None else _near_sea_lattice(lattice, xc, yc)
        )
    return classify(carved, t, m, beach, river, lake)


_CHUNK = 1 << 16


def _carve(
    water_river: F32,
    water_lake: B,
    base: F32,
    carved: F32,
    heights: npt.NDArray[np.uint8],
    river: B,
    lake: B,
    cand: B,
) -> None:
    """The river, lake and beach candidate masks, lakes and channels carved into ``carved`` and the
    heights 1..10 of the carved elevation (into ``heights``), a chunk of cells at a time (in cache).
    ``water_river`` comes capped at RIVER_FAR (see ``water_grid``).

    ``lake`` comes in holding the lake basins of the terrain and ``cand`` the coastal land (continentalness
    below BEACH_NOISE); both are completed in place.
    """
    levels = heights.reshape(-1)
    fields = [a.reshape(-1) for a in (water_river, base, carved)]
    flags = [m.reshape(-1) for m in (water_lake, river, lake, cand)]
    for k in range(0, fields[0].size, _CHUNK):
        c = slice(k, k + _CHUNK)
        w_river, e, cut = (a[c] for a in fields)
        w_lake, in_river, in_lake_mask, coast = (m[c] for m in flags)
        np.less(w_river, np.float32(0.0), out=in_river)
        above = e >= np.float32(SEA_LEVEL)
        above &= w_lake
        in_lake_mask |= above
        # Lakes and river channels cover few cells: they are carved by index, not by masked passes.
        in_lake = np.flatnonzero(in_lake_mask)
        cut[in_lake] = np.maximum(cut[in_lake], np.float32(SEA_LEVEL))
        channel = np.flatnonzero(in_river > in_lake_mask)  # river and not lake
        bed = cut[channel]
        cut_channels(bed, np.ones(bed.shape, dtype=np.bool_))
        cut[channel] = bed
        coast &= cut >= np.float32(SEA_LEVEL)
        coast[in_lake] = False
        coast[channel] = False
        # Heights: int(10 * elevation) (the cast truncates, as astype does) clipped to 0..9, plus 1.
        level = levels[c]
        np.multiply(cut, np.float32(10.0), out=level, casting="unsafe")
        np.clip(level, np.uint8(0), np.uint8(9), out=level)  # (uint8 minimum is 4x slower here)
        level += np.uint8(1)


def generate(
    seed: int,
    x0: int,
    y0: int,
    width: int,
    height: int,
    *,
    step: int = 1,
    progress: Callable[[float, str], object] | None = None,
    memory_limit: int | None = None,
    creatures: bool = True,
) -> World:
    """Generate ``width`` x ``height`` samples of the world at cells ``(x0 + i * step, y0 + j * step)``.

    Every value is a pure function of (seed, world cell): ``generate(s, 256, 0, 256, 256)`` is exactly
    the chunk to the right of ``generate(s, 0, 0, 256, 256)``, in any process and any order, and
    ``generate(s, x, y, w, h, step=k)`` is bit for bit ``generate(s, x, y, w * k, h * k)`` sampled every
    k-th cell (for zoomed-out chunks). ``progress(fraction, stage)``, if given, is called as stages
    finish with increasing fractions, ending with 1.0. Raises TypeError/ValueError for bad input,
    including a region that would need more than ``memory_limit`` bytes (default 2 GiB), checked up
    front against an upper bound on its peak memory (about 70 bytes per sample for large regions).
    ``creatures=False`` places none (``World.creatures`` is then empty, every other field the same): at
    a step > 1 they are placed over the whole sampled area, most of a coarse chunk's time, so a
    zoomed-out view that draws no creatures asks for none.
    """
    if not isinstance(creatures, bool):
        raise TypeError(f"creatures must be a bool, got {type(creatures).__name__}")
    seed = _checks.as_int("seed", seed)
    step = _checks.positive_int("step", step)
    x0, y0, width, height = _checks.region(x0, y0, width, height, step)
    what = f"a {width}x{height} region" + (f" sampled every {step} cells" if step > 1 else "")
    if step > 1 and creatures:
        what += " with its creatures (creatures=False places none)"
    needed = estimated_bytes(width, height) + area_bytes(width, height, step, creatures)
    _checks.memory(needed, memory_limit, what)
    report = progress if progress is not None else _ignore
    report(0.0, "start")  # at once, so a progress bar appears before the first stage ends

    r = BEACH_REACH
    grid = Grid(x0, y0, width, height, step)
    x_hi, y_hi = x0 + (width - 1) * step, y0 + (height - 1) * step
    base, continent, basin, sea = elevation(seed, grid)
    report(0.35, "elevation")
    temperature, moisture = climate(seed, grid, base, continent)
    report(0.55, "moisture")
    # At a step > 1 the creatures stand anywhere in the sampled area, up to step - 1 cells beyond the
    # last sample (but not past the int32 edge): the network must reach their cells too.
    edge = _checks.COORD_LIMIT - 1
    area_x, area_y = (
        (x_hi, y_hi) if step == 1 else (min(x0 + width * step - 1, edge), min(y0 + height * step - 1, edge))
    )
    reach_x, reach_y = (area_x, area_y) if creatures else (x_hi, y_hi)
    net = network(seed, x0 - r, y0 - r, reach_x + r, reach_y + r)
    # The basins and the continentalness are needed from here on only as masks: their arrays then take
    # the water fields, so no fresh float32 array's pages must be faulted in (costly on a VM).
    lake = np.greater(basin, np.float32(0.0))
    cand = np.less(continent, np.float32(BEACH_NOISE))
    water = water_grid(seed, grid, base, net, river_out=continent, carved_out=basin)
    del continent, basin
    river = np.empty(grid.shape, dtype=np.bool_)
    carved = water.carved
    river_field = water.river
    heights_u8 = np.empty(grid.shape, dtype=np.uint8)
    _carve(water.river, water.lake, base, carved, heights_u8, river, lake, cand)
    del water
    report(0.75, "rivers")
    # Beaches: land whose continentalness is barely above the sea's, with sea within BEACH_REACH cells.
    # One sea lattice serves the grid's beaches and the creatures' (over their whole area).
    candidates = int(np.count_nonzero(cand))
    any_cand = candidates > 0
    need_lattice = any_cand or (step > 1 and creatures)
    lattice = _sea_lattice(seed, grid, sea, area_x, area_y, candidates) if need_lattice else None
    if any_cand and lattice is not None:
        beach = _beach_grid(grid, cand, lattice)
    else:
        beach = np.zeros(grid.shape, dtype=np.bool_)
        if any_cand:
            rows, cols = np.nonzero(cand)
            beach[rows, cols] = _near_sea_points(seed, x0 + cols * step, y0 + rows * step)
    biome = classify(carved, temperature, moisture, beach, river, lake)
    del base, beach, cand, sea
    report(0.9, "biomes")
    if not creatures:
        placed = np.empty(0, dtype=_creatures.CREATURE_DTYPE)
    elif step == 1:
        placed = _creatures.place(seed, x0, y0, width, height, lambda x, y: biome[y - y0, x - x0])
    else:
        placed = _creatures.place(
            seed, x0, y0, area_x - x0 + 1, area_y - y0 + 1, lambda x, y: _biomes_at(seed, x, y, net, lattice)
        )
    report(1.0, "creatures")
    return World(seed, x0, y0, carved, moisture, temperature, biome, heights_u8, river_field, placed, step)


def _ignore(fraction: float, stage: str) -> None:
    """Progress sink when the caller passes none."""
