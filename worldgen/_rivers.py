"""Rivers and lakes: a drainage network on a jittered grid of nodes, carved into the terrain.

Nodes sit one per ``NODE`` x ``NODE`` square at a hashed spot. Each land node drains to the lowest of its
8 neighbours that is lower than itself; a land node with none is a basin, where a lake lies. Following
the drainage, elevation falls at every hop, so every path ends in the sea or a lake. A river starts at a
*source* (high, wet land, picked by hash) and runs down that path. Whether a node carries water, and how
much (the number of sources upstream: rivers widen downstream), is counted over ``HOPS`` hops upstream,
so it depends only on the nodes around it: a pure function of (seed, node), as every cell's value is.

A river segment joins a node to its downstream node along a meandering line (drawn as straight pieces),
with a water level falling linearly from one node's elevation to the next. Cells within its half width
are river, carved down to the water level (and a little below, see ``cut_channels``); a valley slopes up
from the banks. Lakes are wobbly discs around basin nodes, carved to the basin's level. Cells are
matched to the pieces and lakes near them by rasterising a band around each piece (or a lake's box) on a
grid, or by looking up the nodes around scattered cells: both evaluate the same formula per (cell,
piece) and take a minimum, so the bits agree.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import numpy.typing as npt

from ._biomes import SEA_LEVEL
from ._hash import derive_key, hash2, unit_float
from ._sampling import Grid, Points
from ._terrain import elevation, moisture

F32 = npt.NDArray[np.float32]
F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]
B = npt.NDArray[np.bool_]
Formula = Callable[[F64, F64, F32, tuple[F64, ...]], tuple[F32, F32]]

NODE = 128  # node spacing in cells
HOPS = 24  # how far upstream a node looks for sources
SOURCE_ELEVATION = 0.44  # sources lie in land at least this high ...
SOURCE_MOISTURE = 0.3  # ... and at least this wet ...
SOURCE_CHANCE = 1.0  # ... and then with this chance
HALF_WIDTH, WIDTH_GAIN, MAX_HALF_WIDTH = 1.0, 0.8, 6.0  # half width = 1 + 0.8 sqrt(sources upstream)
MEANDER = (0.16, 0.07, 0.04)  # sideways swings of a segment (1, 2, 3 half waves), shares of its length
PIECES = 8  # straight pieces per segment
RIVER_FAR = 8.0  # the river field's cap: distances beyond this are stored as this
assert MAX_HALF_WIDTH < RIVER_FAR  # (water_grid relies on it: no clearance below -RIVER_FAR)
VALLEY = 8.0  # cells beyond the banks over which the valley fades out
VALLEY_SLOPE = 0.006  # elevation per cell of a valley's sides
RIVER_DEPTH = 0.004  # water level below the line between the two nodes' elevations
RIVER_CUT = 0.02  # a river's channel lies this far below the ground beside it (more than a cell's slope)
LAKE_RADIUS, LAKE_GAIN, MAX_LAKE_RADIUS = 14.0, 8.0, 60.0  # radius = 14 + 8 sqrt(sources upstream)
LAKE_DEPTH = 0.02
_WOBBLE = 1.0 + 0.22 + 0.12  # a lake's shore lies within this many radii of its centre
_BATCH = 1 << 16  # (sample, shape) pairs evaluated at once
_NEAR = 2  # nodes around a cell's own that can reach it (reach < NODE)
_SALT = 0x21BE5
_OFFSETS = ((-1, -1), (0, -1), (1, -1), (-1, 0), (1, 0), (-1, 1), (0, 1), (1, 1))


@dataclass(frozen=True, eq=False)
class Network:
    """Nodes ``[i0, i0 + ni) x [j0, j0 + nj)`` (node indices; arrays (nj, ni)) and their drainage."""

    i0: int
    j0: int
    x: I64
    y: I64
    elevation: F64
    down: I64  # flat index of the downstream node, -1 for none, _UNKNOWN if not worked out
    sources: npt.NDArray[np.int32]  # sources within HOPS upstream (0: no river)

    def segments(self, box: tuple[float, float, float, float] | None = None) -> tuple[F64, ...]:
        """(ax, ay, bx, by, ea, eb, half width, swing 1, 2, 3) of every river segment, one array each.

        With ``box`` (x_lo, y_lo, x_hi, y_hi), only the segments whose meandering line can come within
        ``_piece_reach`` of the box (in the same order).
        """
        n = np.flatnonzero((self.sources.ravel() > 0) & (self.down.ravel() >= 0))
        if box is not None:
            x_lo, y_lo, x_hi, y_hi = box
            x, y, d = self.x.ravel(), self.y.ravel(), self.down.ravel()
            ax, ay, bx, by = x[n], y[n], x[d[n]], y[d[n]]
            # The line swings at most sum(MEANDER) * length off the straight segment.
            far = np.hypot(bx - ax, by - ay) * sum(MEANDER) + (MAX_HALF_WIDTH + max(RIVER_FAR, VALLEY) + 2.0)
            near = (
                (np.maximum(ax, bx) + far >= x_lo)
                & (np.minimum(ax, bx) - far <= x_hi)
                & (np.maximum(ay, by) + far >= y_lo)
                & (np.minimum(ay, by) - far <= y_hi)
            )
            n = n[near]
        return self._segment_arrays(n)

    def _segment_arrays(self, n: I64) -> tuple[F64, ...]:
        d = self.down.ravel()[n]
        x, y, e = self.x.ravel(), self.y.ravel(), self.elevation.ravel()
        flow = self.sources.ravel()[n].astype(np.float64)
        half = np.minimum(HALF_WIDTH + WIDTH_GAIN * np.sqrt(flow), MAX_HALF_WIDTH)
        ax, ay, bx, by = (a.astype(np.float64) for a in (x[n], y[n], x[d], y[d]))
        swings = [
            (unit_float(hash2(derive_key(self.key, 9, k), x[n], y[n])) * 2.0 - 1.0) * amplitude
            for k, amplitude in enumerate(MEANDER)
        ]
        return ax, ay, bx, by, e[n], e[d], half, *swings

    def pieces(self, box: tuple[float, float, float, float] | None = None) -> tuple[F64, ...]:
        """The river as straight pieces: (ax, ay, bx, by, level a, level b, half width), one array each
        (with ``box``, at least those of the segments that can reach it, see ``segments``).
        """
        return _pieces(self.segments(box))

    def lakes(self) -> tuple[F64, ...]:
        """(x, y, level, radius, phase a, phase b) of every lake (a land node that drains nowhere)."""
        n = np.flatnonzero((self.down.ravel() == -1) & (self.elevation.ravel() >= SEA_LEVEL))
        return _lakes_at(self, n)

    key: int = 0


def network(seed: int, x_lo: int, y_lo: int, x_hi: int, y_hi: int) -> Network:
    """The drainage of the nodes that can touch cells in [x_lo, x_hi] x [y_lo, y_hi] (inclusive).

    Those are the nodes within ``_NEAR`` of the region's own (the *core*); a node farther away can
    reach none of its cells (see ``segments``). The window reaches HOPS + 1 nodes beyond them, as their
    flow needs, but only the nodes that drain into the core within HOPS hops (few: drainage paths are
    short) and their neighbours are evaluated; the others keep a NaN elevation and an unknown (-2)
    drainage, which no river or lake of the region reads.
    """
    pad = _NEAR + HOPS + 1
    i0, i1 = x_lo // NODE - pad, x_hi // NODE + pad + 1
    j0, j1 = y_lo // NODE - pad, y_hi // NODE + pad + 1
    gi = np.arange(i0, i1, dtype=np.int64)[None, :]
    gj = np.arange(j0, j1, dtype=np.int64)[:, None]
    key = derive_key(seed, _SALT)
    span = NODE // 2
    x = gi * NODE + NODE // 4 + (hash2(derive_key(key, 1), gi, gj) % np.uint64(span)).astype(np.int64)
    y = gj * NODE + NODE // 4 + (hash2(derive_key(key, 2), gi, gj) % np.uint64(span)).astype(np.int64)
    nodes = _Nodes(seed, i0, j0, x, y)
    nj, ni = x.shape
    core = np.zeros((nj, ni), dtype=np.bool_)
    core[pad - _NEAR : nj - pad + _NEAR, pad - _NEAR : ni - pad + _NEAR] = True
    # Upstream, a level at a time: the nodes around the last level's that drain into one of them.
    nodes.drain(core)
    need, frontier = core, core
    for _ in range(HOPS):
        around = _dilate(frontier) & ~need
        nodes.drain(around)
        at = np.flatnonzero(around)
        d = nodes.down.reshape(-1)[at]
        into = d >= 0
        into[into] = frontier.reshape(-1)[d[into]]
        if not into.any():
            break
        frontier = np.zeros((nj, ni), dtype=np.bool_)
        frontier.reshape(-1)[at[into]] = True
        need = need | frontier
    nodes.keep()
    down = nodes.down
    source = nodes.source.astype(np.int32).ravel()
    has = np.flatnonzero(down.ravel() >= 0)
    targets = down.ravel()[has]
    flow = source.copy()
    for _ in range(HOPS):
        nxt = source.copy()
        np.add.at(nxt, targets, flow[has])
        flow = nxt
    return Network(i0, j0, x, y, nodes.elevation.astype(np.float64), down, flow.reshape(nj, ni), key)


_UNKNOWN = -2  # the drainage of a node that was not evaluated
_PREFETCH = 4  # nodes around those whose drainage is asked for that are evaluated at once (one call
# costs about as much as 450 nodes: 4 needs 1.3 calls a chunk, 3 needs 1.7, 2 needs 2.4)


def _dilate(mask: B, by: int = 1) -> B:
    """``mask`` grown by ``by`` nodes in every direction (8-neighbourhood), within its shape."""
    out = mask.copy()
    for _ in range(by):
        grown = out.copy()
        grown[1:, :] |= out[:-1, :]
        grown[:-1, :] |= out[1:, :]
        row = grown.copy()
        grown[:, 1:] |= row[:, :-1]
        grown[:, :-1] |= row[:, 1:]
        out = grown
    return out


class _Nodes:
    """The node window of one network, evaluated as it is asked for: elevation (NaN until known),
    river sources and drainage (``_UNKNOWN`` until worked out)."""

    def __init__(self, seed: int, i0: int, j0: int, x: I64, y: I64) -> None:
        self.seed, self.i0, self.j0, self.x, self.y = seed, i0, j0, x, y
        self.nj, self.ni = x.shape
        shape = (self.nj, self.ni)
        self.elevation: F32 = np.full(shape, np.nan, dtype=np.float32)
        self.source: B = np.zeros(shape, dtype=np.bool_)
        self.known: B = np.zeros(shape, dtype=np.bool_)
        self.down: I64 = np.full(shape, _UNKNOWN, dtype=np.int64)
        self._recalled = False

    def drain(self, mask: B) -> None:
        """Work out the drainage of the nodes in ``mask`` (the lowest lower neighbour, -1 for none, as a
        flat index; beyond the window's edge there is none)."""
        todo = mask & (self.down == _UNKNOWN)
        if not todo.any():
            return
        if not self.known[_dilate(todo)].all():
            self._evaluate(_dilate(todo, _PREFETCH) & ~self.known)
        nj, ni = self.nj, self.ni
        padded = np.full((nj + 2, ni + 2), np.inf)
        padded[1:-1, 1:-1] = self.elevation
        at = np.flatnonzero(todo)
        row, col = np.divmod(at, ni)
        e = padded[row + 1, col + 1]
        best = e.copy()
        down = np.full(at.shape, -1, dtype=np.int64)
        for dx, dy in _OFFSETS:
            ne = padded[row + 1 + dy, col + 1 + dx]
            lower = ne < best
            best = np.where(lower, ne, best)
            down = np.where(lower, at + dy * ni + dx, down)
        down[e < SEA_LEVEL] = -1
        self.down.reshape(-1)[at] = down

    def _evaluate(self, mask: B) -> None:
        """Elevation and sources of the nodes in ``mask``: from the recent windows that hold them, the
        rest evaluated."""
        if not self._recalled:
            self._recall()
            mask = mask & ~self.known
        at = np.nonzero(mask)
        if at[0].size:
            self.elevation[at], self.source[at] = _evaluate_nodes(
                self.seed, self.x[at], self.y[at], at[1] + self.i0, at[0] + self.j0
            )
            self.known[at] = True

    def _recall(self) -> None:
        """Take what the recent windows know of this one's nodes."""
        self._recalled = True
        nj, ni = self.nj, self.ni
        for w in reversed(tuple(_WINDOWS)):  # the latest first: usually the closest
            if w.seed != self.seed:
                continue
            wj, wi = w.elevation.shape
            a0, a1 = max(self.i0, w.i0), min(self.i0 + ni, w.i0 + wi)
            b0, b1 = max(self.j0, w.j0), min(self.j0 + nj, w.j0 + wj)
            if a0 >= a1 or b0 >= b1:
                continue
            mine = (slice(b0 - self.j0, b1 - self.j0), slice(a0 - self.i0, a1 - self.i0))
            theirs = (slice(b0 - w.j0, b1 - w.j0), slice(a0 - w.i0, a1 - w.i0))
            new = w.known[theirs] & ~self.known[mine]
            np.copyto(self.elevation[mine], w.elevation[theirs], where=new)
            np.copyto(self.source[mine], w.source[theirs], where=new)
            self.known[mine] |= new

    def keep(self) -> None:
        """Keep what this window knows for later networks (see _WINDOWS)."""
        if self.known.size > _WINDOW_NODES:
            return
        e, source, known = self.elevation.copy(), self.source.copy(), self.known.copy()
        e.flags.writeable = source.flags.writeable = known.flags.writeable = False
        window = _NodeWindow(self.seed, self.i0, self.j0, e, source, known)
        _WINDOWS[:] = [*_WINDOWS[-(_KEEP_WINDOWS - 1) :], window]


@dataclass(frozen=True, eq=False)
class _NodeWindow:
    """The per-node fields of nodes ``[i0, i0 + ni) x [j0, j0 + nj)`` of one seed, arrays (nj, ni),
    where ``known``."""

    seed: int
    i0: int
    j0: int
    elevation: F32  # uncarved elevation at the node
    source: B  # whether a river rises there
    known: B


# The node windows of the last few networks. A node's fields are a pure function of (seed, node), and
# consecutive regions (the chunks around a view) share nearly all their nodes, so a network takes what
# a recent window holds and evaluates only the other nodes: the same bits, most of the cost saved.
# Entries are immutable and replaced whole, so threads can share them.
_WINDOWS: list[_NodeWindow] = []
_KEEP_WINDOWS = 4
_WINDOW_NODES = 1 << 16  # larger windows (very long strips) are not kept: at most 6 bytes per node


def _evaluate_nodes(seed: int, x: I64, y: I64, gi: I64, gj: I64) -> tuple[F32, B]:
    """Uncarved elevation and river sources at nodes (node indices ``gi``, ``gj``) at cells ``x``, ``y``.

    A source lies in high, wet land (moisture only matters there: only there is it evaluated), where
    a hash picks it with SOURCE_CHANCE.
    """
    ground = elevation(seed, Points(x, y))
    e = ground.elevation
    e64 = e.astype(np.float64)
    high = (e64 >= SEA_LEVEL) & (e64 >= SOURCE_ELEVATION)
    at = np.flatnonzero(high)
    wet = np.zeros(high.shape, dtype=np.bool_)
    wet[at] = moisture(seed, Points(x[at], y[at]), ground.continent[at]).astype(np.float64) >= SOURCE_MOISTURE
    key = derive_key(seed, _SALT)
    chance = unit_float(hash2(derive_key(key, 3), gi, gj)) < SOURCE_CHANCE
    return e, high & wet & chance


def _pieces(seg: tuple[F64, ...]) -> tuple[F64, ...]:
    """Each segment's meandering centre line as PIECES straight pieces (segment-major order).

    The centre line swings sideways by ``length * sum(s_k sin(k pi t))``, zero at both nodes; its water
    level falls linearly from one node's elevation (less RIVER_DEPTH) to the next's.
    """
    ax, ay, bx, by, ea, eb, half, s1, s2, s3 = (np.repeat(a, PIECES + 1) for a in seg)
    t = np.tile(np.arange(PIECES + 1, dtype=np.float64) / PIECES, seg[0].size)
    a = np.pi * t
    off = s1 * np.sin(a) + s2 * np.sin(2.0 * a) + s3 * np.sin(3.0 * a)
    vx, vy = bx - ax, by - ay
    px = ax + t * vx - off * vy
    py = ay + t * vy + off * vx
    level = ea + (eb - ea) * t - RIVER_DEPTH
    last = np.arange(px.size) % (PIECES + 1) == PIECES
    start, end = np.flatnonzero(~last), np.flatnonzero(~last) + 1
    return px[start], py[start], px[end], py[end], level[start], level[end], half[start]


def _piece_reach(piece: tuple[F64, ...]) -> F64:
    """How far from a piece a cell can be changed: its half width plus RIVER_FAR or VALLEY."""
    return piece[6] + (max(RIVER_FAR, VALLEY) + 1.0)


def _segment_formula(px: F64, py: F64, e: F32, piece: tuple[F64, ...]) -> tuple[F32, F32]:
    """Clearance (distance to the river's bank, negative inside) and carved elevation, per pair.

    Pairs beyond a piece's reach (``_piece_reach``) come out with a clearance above RIVER_FAR and their
    own elevation exactly (the valley has faded out fully there: the change is multiplied by 0), which
    is all that is kept of them: clearances are only tested for < 0 and capped at RIVER_FAR, and the
    carved elevation is a minimum with the cell's own. So every pair takes the same formula, with no
    gather of the near ones.
    """
    scratch = [np.empty(e.size, dtype=np.float64) for _ in range(5)]
    gap, cut = _segment_lines(px, py, e, _segment_setup(piece), scratch)
    return gap.astype(np.float32), cut.astype(np.float32)


def _segment_setup(piece: tuple[F64, ...]) -> tuple[F64, ...]:
    """The per-piece terms of ``_segment_formula``: (ax, ay, vx, vy, |v|^2 (at least 1e-12), level a,
    level b - level a, half width). Computed per piece, then spread to its pairs: the same values.
    """
    ax, ay, bx, by, la, lb, half = piece
    vx = bx - ax
    vy = by - ay
    vv = vx * vx
    vv += vy * vy
    np.maximum(vv, 1e-12, out=vv)
    return ax, ay, vx, vy, vv, la, lb - la, half


def _valley_cut(en: F64, side: F64, level: F64, *, cut: F64, fade: F64, smooth: F64) -> F64:
    """The carved elevation ``side`` beyond a bank at water ``level``: down the valley's slope, faded
    back to ``en`` over ``VALLEY``, into ``cut``. ``fade`` and ``smooth`` are scratch and may share
    ``level``'s and ``side``'s buffers (each is read before they are written)."""
    np.multiply(side, VALLEY_SLOPE, out=cut)
    cut += level
    np.minimum(en, cut, out=cut)
    np.multiply(side, 1.0 / VALLEY, out=fade)
    np.clip(fade, 0.0, 1.0, out=fade)
    # fade * fade * (3 - 2 fade), then 1 - that, in the order the formula always used.
    np.multiply(fade, -2.0, out=smooth)
    smooth += 3.0
    fade *= fade
    fade *= smooth
    np.subtract(1.0, fade, out=fade)
    np.subtract(en, cut, out=cut)
    cut *= fade
    np.subtract(en, cut, out=cut)
    return cut


def _lake_formula(px: F64, py: F64, e: F32, lake: tuple[F64, ...]) -> tuple[F32, F32]:
    """Clearance (distance to the lake's shore, negative inside) and carved elevation, per pair.

    Pairs farther from the centre than the shore can wobble plus VALLEY get clearance inf and their own
    elevation, as the full formula would (they are only tested for clearance < 0), cheaply first.
    """
    lx, ly, level, radius, pa, pb = lake
    dx, dy = px - lx, py - ly
    dist2 = dx * dx + dy * dy
    bound = radius * _WOBBLE + VALLEY + 1.0
    near = np.flatnonzero(dist2 < bound * bound)
    clearance_out = np.full(px.shape, np.inf, dtype=np.float32)
    carved_out = e.copy()
    dx, dy, level, radius, pa, pb = (a[near] for a in (dx, dy, level, radius, pa, pb))
    e = e[near].astype(np.float64)
    dist = np.sqrt(dist2[near])
    angle = np.arctan2(dy, dx)
    shore = radius * (1.0 + 0.22 * np.cos(2.0 * angle + pa) + 0.12 * np.cos(3.0 * angle + pb))
    clearance = dist - shore
    bowl = level - LAKE_DEPTH * np.clip(-clearance / np.maximum(shore, 1.0), 0.0, 1.0)
    side = np.maximum(clearance, 0.0)
    carved = np.minimum(e, bowl + VALLEY_SLOPE * side)
    fade = np.clip(side * (1.0 / VALLEY), 0.0, 1.0)
    fade = fade * fade * (3.0 - 2.0 * fade)
    carved = e - (e - carved) * (1.0 - fade)
    clearance_out[near] = clearance
    carved_out[near] = carved
    return clearance_out, carved_out


def cut_channels(carved: F32, river: B) -> None:
    """Lower river cells RIVER_CUT below the carved ground, in place, so no bank is lower than them.

    The carved ground changes by less than RIVER_CUT from a cell to the next. On land a channel stops
    at the sea's level (a river is not sea); where a river crosses the sea it stays sea.
    """
    land = river & (carved >= np.float32(SEA_LEVEL))
    np.subtract(carved, np.float32(RIVER_CUT), out=carved, where=river)
    np.maximum(carved, np.float32(SEA_LEVEL), out=carved, where=land)


@dataclass(frozen=True, eq=False)
class Water:
    """Per cell: distance to the nearest river bank (negative inside), inside a lake, carved elevation."""

    river: F32
    lake: B
    carved: F32


def _boxes(grid: Grid, cx0: F64, cy0: F64, cx1: F64, cy1: F64) -> tuple[I64, I64]:
    """Flat sample indices inside each box (world coordinates, inclusive) and the box each belongs to."""
    s = grid.step
    c0 = np.clip(np.ceil((cx0 - grid.x0) / s), 0, grid.width).astype(np.int64)
    c1 = np.clip(np.floor((cx1 - grid.x0) / s) + 1, 0, grid.width).astype(np.int64)
    r0 = np.clip(np.ceil((cy0 - grid.y0) / s), 0, grid.height).astype(np.int64)
    r1 = np.clip(np.floor((cy1 - grid.y0) / s) + 1, 0, grid.height).astype(np.int64)
    w = np.maximum(c1 - c0, 0)
    h = np.maximum(r1 - r0, 0)
    counts = w * h
    total = int(counts.sum())
    owner = np.repeat(np.arange(counts.size, dtype=np.int64), counts)
    start = np.cumsum(counts) - counts
    k = np.arange(total, dtype=np.int64) - start[owner]
    ww = np.maximum(w[owner], 1)
    rows = r0[owner] + k // ww
    cols = c0[owner] + k % ww
    return rows * grid.width + cols, owner


class Lines(NamedTuple):
    """Sample lines across river pieces (of one orientation, see ``_lines``): each line's piece, its
    index and world coordinate along the piece's longer axis, and its first sample and count across."""

    flip: bool  # True: lines are rows (the piece runs along y), else columns
    owner: I64
    along: I64
    u: F64
    lo: I64
    samples: I64


def _lines(grid: Grid, seg: tuple[F64, ...], reach: F64) -> list[Lines]:
    """Samples within ``reach`` of each piece (a superset), as lines of consecutive samples.

    Along a piece's longer axis, each sample line crossing the piece (or within ``reach`` beyond an end)
    gets the samples within ``reach * sqrt(1 + slope**2)`` of the piece's centre line across it.
    """
    ax, ay, bx, by = seg[:4]
    out: list[Lines] = []
    along_x = np.abs(bx - ax) >= np.abs(by - ay)
    st = grid.step
    for flip in (False, True):
        which = np.flatnonzero(along_x != flip)
        if which.size == 0:
            continue
        # In "flip", x and y swap roles: u is the longer axis, v the other.
        if flip:
            au, av, bu, bv = ay[which], ax[which], by[which], bx[which]
            u0, n_u, v0, n_v = grid.y0, grid.height, grid.x0, grid.width
        else:
            au, av, bu, bv = ax[which], ay[which], bx[which], by[which]
            u0, n_u, v0, n_v = grid.x0, grid.width, grid.y0, grid.height
        r = reach[which]
        c0 = np.clip(np.ceil((np.minimum(au, bu) - r - u0) / st), 0, n_u).astype(np.int64)
        c1 = np.clip(np.floor((np.maximum(au, bu) + r - u0) / st) + 1, 0, n_u).astype(np.int64)
        slope = (bv - av) / (bu - au)
        half = r * np.sqrt(1.0 + slope * slope)
        n_rows = (np.floor(2.0 * half / st) + 2).astype(np.int64)
        # One entry per (piece, sample line across it).
        lines = np.maximum(c1 - c0, 0)
        owner = np.repeat(np.arange(which.size, dtype=np.int64), lines)
        col = c0[owner] + (np.arange(int(lines.sum()), dtype=np.int64) - (np.cumsum(lines) - lines)[owner])
        u = (u0 + col * st).astype(np.float64)
        t = np.clip((u - au[owner]) / (bu[owner] - au[owner]), 0.0, 1.0)
        centre = av[owner] + t * (bv[owner] - av[owner])
        row0 = np.ceil((centre - half[owner] - v0) / st).astype(np.int64)
        lo = np.maximum(row0, 0)
        count = np.minimum(row0 + n_rows[owner], n_v) - lo
        keep = np.flatnonzero(count > 0)
        out.append(Lines(flip, which[owner[keep]], col[keep], u[keep], lo[keep], count[keep]))
    return out


_SHORTER = 0.75
# Samples of river lines evaluated at once: their float64 scratch (five arrays) stays small enough to
# be reused from the allocator's free memory, call after call, rather than fresh pages to fault in.
_LINE_BATCH = 1 << 14


def _rasterise_lines(
    grid: Grid, lines: Lines, terms: tuple[F64, ...], e_flat: F32, river: F32, carved: F32
) -> None:
    """The river formula at every sample of the lines, kept as minima in ``river`` and ``carved``.

    Lines are taken longest first, in blocks of lines of about one length (at most _LINE_BATCH samples) as
    a (longest, lines) array: the per-piece and per-line terms broadcast over a line's samples, and a
    line shorter than the block's longest repeats its last sample (an evaluation twice changes no
    minimum).
    """
    order = np.argsort(-lines.samples, kind="stable")
    count = lines.samples[order]
    size = max(min(_LINE_BATCH, int(count[0]) * order.size), int(count[0])) if order.size else 0
    scratch = [np.empty(size, dtype=np.float64) for _ in range(5)]
    low = [np.empty(size, dtype=np.float32) for _ in range(2)]
    st = grid.step
    start = 0
    while start < order.size:
        longest = int(count[start])
        # Lines at least _SHORTER as long as the longest: little padding.
        short = int(np.searchsorted(-count, -int(longest * _SHORTER), side="right"))
        stop = min(short, start + max(1, _LINE_BATCH // longest))
        sel = order[start:stop]
        owner = lines.owner[sel]
        # (samples, lines): numpy's inner loops then run along the lines, which are many.
        lo = lines.lo[sel]
        across = np.minimum(lo + np.arange(longest, dtype=np.int64)[:, None], lo + (count[start:stop] - 1))
        v = ((grid.x0 if lines.flip else grid.y0) + across * st).astype(np.float64)
        u = lines.u[sel][None, :]
        along = lines.along[sel][None, :]
        if lines.flip:
            idx = along * grid.width + across
            px, py = v, u
        else:
            idx = across * grid.width + along
            px, py = u, v
        idx = idx.reshape(-1)
        per_line = tuple(a[owner][None, :] for a in terms)
        e = np.take(e_flat, idx, out=low[0][: idx.size])
        gap, cut = _segment_lines(px, py, e.reshape(v.shape), per_line, scratch)
        # (rounded to float32 first, as the minima are kept in float32)
        for values, field, out in ((gap, river, low[0]), (cut, carved, low[1])):
            rounded = out[: idx.size]
            np.copyto(rounded, values.reshape(-1), casting="same_kind")
            np.minimum.at(field, idx, rounded)
        start = stop


def _segment_lines(px: F64, py: F64, e: F32, terms: tuple[F64, ...], scratch: list[F64]) -> tuple[F64, F64]:
    """The river formula (see ``_segment_formula``) with ``_segment_setup``'s terms, broadcast against
    ``e``'s shape: per pair, or for (samples, lines) arrays with the terms per line (shape (1, lines)),
    in five float64 ``scratch`` arrays of at least that many elements (no fresh arrays to fault in).
    Returns the clearance and the carved elevation as float64 views of the scratch."""
    ax, ay, vx, vy, vv, la, lb, half = terms
    b0, b1, b2, b3, b4 = (a[: e.size].reshape(e.shape) for a in scratch)
    wx = np.subtract(px, ax, out=b0)
    wy = np.subtract(py, ay, out=b1)
    t = np.multiply(wx, vx, out=b2)
    t += np.multiply(wy, vy, out=b3)
    t /= vv
    np.clip(t, 0.0, 1.0, out=t)
    wx -= np.multiply(vx, t, out=b3)  # dx
    wy -= np.multiply(vy, t, out=b3)  # dy
    wx *= wx
    wy *= wy
    wx += wy
    gap = np.sqrt(wx, out=wx)
    gap -= half
    level = np.multiply(lb, t, out=b3)
    level += la
    side = np.clip(gap, 0.0, np.inf, out=b2)  # (as maximum, faster; a difference is never -0.0)
    en = b1
    np.copyto(en, e)
    return gap, _valley_cut(en, side, level, cut=b4, fade=b3, smooth=b2)


def water_grid(
    seed: int,
    grid: Grid,
    elevation: F32,
    net: Network,
    *,
    river_out: F32 | None = None,
    carved_out: F32 | None = None,
) -> Water:
    """River and lake fields on a grid, and the elevation carved by them (``elevation``: uncarved).
    The river field is capped at RIVER_FAR.

    ``river_out`` and ``carved_out``, if given (contiguous float32 arrays of the grid's shape, not
    ``elevation``), receive the river field and the carved elevation instead of new arrays.
    """
    e_flat = elevation.ravel()
    size = e_flat.size
    river = np.empty(size, dtype=np.float32) if river_out is None else river_out.reshape(-1)
    # Filled with the cap: a clearance is never below -MAX_HALF_WIDTH > -RIVER_FAR, so the field comes
    # out capped on both sides without a clip.
    river.fill(RIVER_FAR)
    lake = np.zeros(size, dtype=np.bool_)
    carved = np.empty_like(e_flat) if carved_out is None else carved_out.reshape(-1)
    np.copyto(carved, e_flat)
    gx1, gy1 = grid.x0 + (grid.width - 1) * grid.step, grid.y0 + (grid.height - 1) * grid.step
    seg = net.pieces((grid.x0, grid.y0, gx1, gy1))
    ax, ay, bx, by = seg[:4]
    reach = _piece_reach(seg)
    hit = (
        (np.maximum(ax, bx) + reach >= grid.x0)
        & (np.minimum(ax, bx) - reach <= gx1)
        & (np.maximum(ay, by) + reach >= grid.y0)
        & (np.minimum(ay, by) - reach <= gy1)
    )
    seg = tuple(a[hit] for a in seg)
    reach = reach[hit]
    terms = _segment_setup(seg)
    for lines in _lines(grid, seg, reach):
        _rasterise_lines(grid, lines, terms, e_flat, river, carved)
    lk = net.lakes()
    lx, ly = lk[:2]
    reach = lk[3] * _WOBBLE + VALLEY + 1.0
    _rasterise(grid, lk, (lx, ly, lx, ly), reach, _lake_formula, e_flat, lake, carved)
    shape = elevation.shape
    return Water(river.reshape(shape), lake.reshape(shape), carved.reshape(shape))


def _rasterise(
    grid: Grid,
    shapes: tuple[F64, ...],
    boxes: tuple[F64, F64, F64, F64],
    reach: F64,
    formula: Formula,
    e_flat: F32,
    inside: B,
    carved_out: F32,
) -> None:
    """``formula`` for every (sample, shape) pair within ``reach`` of a shape's box: marks samples inside
    a shape (clearance < 0) in ``inside`` and keeps the minimum carved elevation.

    Shapes are taken in batches of about _BATCH pairs, so memory does not grow with the region.
    """
    x0, y0, x1, y1 = boxes
    s = grid.step
    gx1, gy1 = grid.x0 + (grid.width - 1) * s, grid.y0 + (grid.height - 1) * s
    hit = (x1 + reach >= grid.x0) & (x0 - reach <= gx1) & (y1 + reach >= grid.y0) & (y0 - reach <= gy1)
    keep = np.flatnonzero(hit)
    if keep.size == 0:
        return
    start = 0
    x0, y0, x1, y1, reach = x0[keep], y0[keep], x1[keep], y1[keep], reach[keep]
    shapes = tuple(a[keep] for a in shapes)
    cols = (np.minimum(x1 + reach, gx1) - np.maximum(x0 - reach, grid.x0)) / s + 2
    rows = (np.minimum(y1 + reach, gy1) - np.maximum(y0 - reach, grid.y0)) / s + 2
    cost = np.cumsum(cols * rows)
    while start < keep.size:
        stop = max(start + 1, int(np.searchsorted(cost, cost[start] + _BATCH)))
        part = slice(start, stop)
        r = reach[part]
        idx, owner = _boxes(grid, x0[part] - r, y0[part] - r, x1[part] + r, y1[part] + r)
        px, py = _cell_xy(grid, idx)
        clearance, cut = formula(px, py, e_flat[idx], tuple(a[part][owner] for a in shapes))
        inside[idx[clearance < 0.0]] = True
        np.minimum.at(carved_out, idx, cut)
        start = stop


def _cell_xy(grid: Grid, idx: I64) -> tuple[F64, F64]:
    rows, cols = np.divmod(idx, grid.width)
    px = (grid.x0 + cols * grid.step).astype(np.float64)
    py = (grid.y0 + rows * grid.step).astype(np.float64)
    return px, py


def water_points(points: Points, elevation: F32, net: Network) -> Water:
    """The same fields at scattered cells: each cell checks the nodes within ``_NEAR`` of its own."""
    x, y = np.broadcast_arrays(points.x, points.y)
    x, y = x.ravel(), y.ravel()
    e = elevation.ravel()
    ni = net.x.shape[1]
    offs = np.arange(-_NEAR, _NEAR + 1, dtype=np.int64)
    ci = (x // NODE)[:, None, None] + offs[None, None, :] - net.i0
    cj = (y // NODE)[:, None, None] + offs[None, :, None] - net.j0
    node = (cj * ni + ci).reshape(x.size, (2 * _NEAR + 1) ** 2)  # (no -1: there may be no points)
    flat_down = net.down.ravel()
    flow = net.sources.ravel()
    px = np.broadcast_to(x[:, None], node.shape).astype(np.float64)
    py = np.broadcast_to(y[:, None], node.shape).astype(np.float64)
    ee = np.broadcast_to(e[:, None], node.shape)
    river = np.full(node.shape, np.inf, dtype=np.float32)
    carved = ee.copy()
    is_seg = (flow[node] > 0) & (flat_down[node] >= 0)
    # Cheap first: drop segments whose straight line is farther than any of its pieces can matter.
    sel = np.flatnonzero(is_seg)
    a, b = node.ravel()[sel], flat_down[node.ravel()[sel]]
    nx, ny = net.x.ravel().astype(np.float64), net.y.ravel().astype(np.float64)
    ax, ay, vx, vy = nx[a], ny[a], nx[b] - nx[a], ny[b] - ny[a]
    wx, wy = px.ravel()[sel] - ax, py.ravel()[sel] - ay
    t = np.clip((wx * vx + wy * vy) / (vx * vx + vy * vy), 0.0, 1.0)
    bound = MAX_HALF_WIDTH + max(RIVER_FAR, VALLEY) + 2.0 + sum(MEANDER) * np.hypot(vx, vy)
    far = (wx - t * vx) ** 2 + (wy - t * vy) ** 2 >= bound * bound
    is_seg.ravel()[sel[far]] = False
    if is_seg.any():
        # Many cells lie near the same few segments: each segment's pieces are made once (the same
        # values as per cell) and spread to its (cell, segment) pairs.
        segs, which = np.unique(node[is_seg], return_inverse=True)
        k = PIECES
        spread = (which[:, None] * k + np.arange(k)).ravel()
        pieces = tuple(a[spread] for a in _pieces(net._segment_arrays(segs)))
        clearance, cut = _segment_formula(
            np.repeat(px[is_seg], k), np.repeat(py[is_seg], k), np.repeat(ee[is_seg], k), pieces
        )
        river[is_seg] = clearance.reshape(-1, k).min(axis=1)
        carved[is_seg] = cut.reshape(-1, k).min(axis=1)
    lake = np.full(node.shape, np.inf, dtype=np.float32)
    carved_l = ee.copy()
    is_lake = (flat_down[node] == -1) & (net.elevation.ravel()[node] >= SEA_LEVEL)
    sel = np.flatnonzero(is_lake)
    bound = MAX_LAKE_RADIUS * _WOBBLE + VALLEY + 2.0
    dx = px.ravel()[sel] - net.x.ravel()[node.ravel()[sel]]
    dy = py.ravel()[sel] - net.y.ravel()[node.ravel()[sel]]
    is_lake.ravel()[sel[dx * dx + dy * dy >= bound * bound]] = False
    if is_lake.any():
        lk = _lakes_at(net, node[is_lake])
        clearance, cut = _lake_formula(px[is_lake], py[is_lake], ee[is_lake], lk)
        lake[is_lake] = clearance
        carved_l[is_lake] = cut
    shape = elevation.shape
    out_carved = np.minimum(carved.min(axis=1), carved_l.min(axis=1))
    inside: B = np.any(lake < 0.0, axis=1)
    return Water(river.min(axis=1).reshape(shape), inside.reshape(shape), out_carved.reshape(shape))


def _lakes_at(net: Network, n: I64) -> tuple[F64, ...]:
    x, y = net.x.ravel()[n], net.y.ravel()[n]
    flow = net.sources.ravel()[n].astype(np.float64)
    radius = np.minimum(LAKE_RADIUS + LAKE_GAIN * np.sqrt(flow), MAX_LAKE_RADIUS)
    pa = unit_float(hash2(derive_key(net.key, 10), x, y)) * (2 * np.pi)
    pb = unit_float(hash2(derive_key(net.key, 11), x, y)) * (2 * np.pi)
    return x.astype(np.float64), y.astype(np.float64), net.elevation.ravel()[n], radius, pa, pb
