"""Structure measures of generated worlds, shared by the tests and benchmarks/measure_worldgen.py.

Connected components (numpy and a union-find over row runs), the share of the largest
land mass and ocean, river connectivity to the sea, lakes or the region's edge, and forbidden biome
adjacencies. Not used by generation itself.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from ._biomes import FORBIDDEN_NEIGHBOURS, LAKE, RIVER, SEA_BIOMES

B = npt.NDArray[np.bool_]
I64 = npt.NDArray[np.int64]
_EIGHT = ((0, 1), (1, 0), (1, 1), (1, -1))


def _pairs(shape: tuple[int, ...], offsets: tuple[tuple[int, int], ...]) -> list[tuple[slice, ...]]:
    """For each offset (dy, dx), slices (a_rows, a_cols, b_rows, b_cols) of neighbouring cell pairs."""
    h, w = shape
    out: list[tuple[slice, ...]] = []
    for dy, dx in offsets:
        ay = slice(0, h - dy)
        by = slice(dy, h)
        if dx >= 0:
            ax, bx = slice(0, w - dx), slice(dx, w)
        else:
            ax, bx = slice(-dx, w), slice(0, w + dx)
        out.append((ay, ax, by, bx))
    return out


def components(mask: B, eight: bool = False) -> I64:
    """A component label for each True cell (labels 0..k-1), -1 elsewhere.

    Cells are first grouped into runs along rows (vectorised); runs that touch across rows are then
    merged by union-find, whose work grows with the number of runs rather than of cells.
    """
    h, w = mask.shape
    starts = mask.copy()
    starts[:, 1:] &= ~mask[:, :-1]
    run = np.cumsum(starts.ravel()).reshape(h, w) - 1  # run index of each True cell
    runs = int(starts.sum())
    if runs == 0:
        return np.full(mask.shape, -1, dtype=np.int64)
    offsets = [0, -1, 1] if eight else [0]
    links = []
    for dx in offsets:
        a_cols = slice(max(0, -dx), w - max(0, dx))
        b_cols = slice(max(0, dx), w - max(0, -dx))
        both = mask[:-1, a_cols] & mask[1:, b_cols]
        links.append(run[:-1, a_cols][both] * runs + run[1:, b_cols][both])
    pairs = np.unique(np.concatenate(links))
    parent = list(range(runs))

    def find(i: int) -> int:
        root = i
        while parent[root] != root:
            root = parent[root]
        while parent[i] != root:
            parent[i], i = root, parent[i]
        return root

    for code in pairs.tolist():
        a, b = find(code // runs), find(code % runs)
        if a != b:
            parent[max(a, b)] = min(a, b)
    roots = np.array([find(i) for i in range(runs)], dtype=np.int64)
    _, label = np.unique(roots, return_inverse=True)
    return np.where(mask, label[run], -1)


def largest_share(mask: B, eight: bool = False) -> float:
    """Share of the True cells that lie in the largest connected component (0 if there are none)."""
    if not mask.any():
        return 0.0
    lab = components(mask, eight)
    counts = np.bincount(lab[mask])
    return float(np.amax(counts)) / float(mask.sum())


def river_connectivity(biome: npt.NDArray[np.uint8]) -> float:
    """Share of river cells connected (8-neighbourhood, through water) to the sea, a lake or the edge."""
    river = biome == RIVER
    if not river.any():
        return 1.0
    sea_or_lake = np.isin(biome, sorted(SEA_BIOMES | {LAKE}))
    water = river | sea_or_lake
    lab = components(water, eight=True)
    good = np.zeros(water.size, dtype=np.bool_)
    good[lab[sea_or_lake]] = True
    edge = np.zeros_like(water)
    edge[0, :] = edge[-1, :] = edge[:, 0] = edge[:, -1] = True
    good[lab[edge & water]] = True
    return float(good[lab[river]].mean())


def forbidden_adjacencies(biome: npt.NDArray[np.uint8]) -> int:
    """Number of 8-neighbour cell pairs whose biomes are not neighbours on a Whittaker diagram."""
    table = np.zeros((256, 256), dtype=np.bool_)
    for pair in FORBIDDEN_NEIGHBOURS:
        a, b = sorted(pair)
        table[a, b] = table[b, a] = True
    total = 0
    for ay, ax, by, bx in _pairs(biome.shape, _EIGHT):
        total += int(table[biome[ay, ax], biome[by, bx]].sum())
    return total


def rivers_above_banks(biome: npt.NDArray[np.uint8], elevation: npt.NDArray[np.float32]) -> int:
    """Number of (river cell, land neighbour) pairs (4-neighbourhood) where the river lies higher."""
    river = biome == RIVER
    land = ~np.isin(biome, sorted(SEA_BIOMES | {RIVER, LAKE}))
    total = 0
    h, w = biome.shape
    for a, b in (
        ((slice(0, h), slice(0, w - 1)), (slice(0, h), slice(1, w))),
        ((slice(0, h - 1), slice(0, w)), (slice(1, h), slice(0, w))),
    ):
        total += int((river[a] & land[b] & (elevation[a] > elevation[b])).sum())
        total += int((river[b] & land[a] & (elevation[b] > elevation[a])).sum())
    return total
