"""The multi-noise terrain and climate: continents, detail, ridged mountain ranges, temperature, moisture.

After Minecraft 1.18's multi-noise worlds: a slow *continentalness* field decides land and sea over
thousands of cells, a detail field adds coasts, bays and islands, and ridged noise raises mountain
ranges (lines, not round caps) inside continents. Temperature and moisture vary over thousands of cells;
it is colder higher up and drier far from the sea. Every value is elementwise from noise, so a cell's
value is a pure function of (seed, cell), on a grid or alone (see ``_sampling``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import numpy.typing as npt

from ._biomes import SEA_LEVEL
from ._hash import derive_key
from ._sampling import Sampler

F32 = npt.NDArray[np.float32]
F64 = npt.NDArray[np.float64]
B = npt.NDArray[np.bool_]

# Lattice spacings in cells, coarsest first (one octave each).
CONTINENT_OCTAVES = (2048, 1024, 512)
DETAIL_OCTAVES = (256, 128, 64, 32, 16)
RIDGE_OCTAVES = (1024, 512)
TEMPERATURE_OCTAVES = (2048, 512)
MOISTURE_OCTAVES = (2048, 512, 128)
PERSISTENCE = 0.5

# Raw fBm of a few octaves has a standard deviation of about 0.15 (0.1 for five octaves).
# Land where CONTINENT + DETAIL_WEIGHT * detail >= SEA_NOISE (calibrated: about a third of cells are sea).
DETAIL_WEIGHT = 0.3
SEA_NOISE = -0.07
LAND_RANGE = 0.32  # raw noise above SEA_NOISE over which lowland rises to hills
DEPTH_RANGE = 0.25  # raw noise below SEA_NOISE over which the sea floor deepens
PLAINS = 0.45  # slope of the land curve at the coast: wide plains
HILL_SHARE = 0.55  # of the land's elevation range reached by the continent and detail alone
# Mountains: ridged noise 1 - |n| / RIDGE_WIDTH (lines where n crosses 0), squared, raised only inland.
RIDGE_WIDTH = 0.14
INLAND_START, INLAND_RANGE = 0.04, 0.12  # continentalness over which mountains fade in
MOUNTAIN_HEIGHT = 0.6
KNEE = 0.7  # land height (0..1) above which mountains flatten smoothly towards 1
ROUGHNESS = 2.5  # relative change of the mountains' height per unit of detail noise
# Lakes: where the ridge noise exceeds LAKE_NOISE (ramping over LAKE_SOFT), at least 2 * LAKE_INLAND
# continentalness inland.
LAKE_NOISE, LAKE_SOFT, LAKE_INLAND = 0.34, 0.06, 0.03
BASIN_DEPTH = 0.05
INLAND_SEA = 0.06  # continentalness (without detail) above which water is a lake
# Climate: 0.5 + gain * noise, clipped to [0, 1].
TEMPERATURE_GAIN = 1.7
MOISTURE_GAIN = 1.7
LAPSE = 0.45  # temperature drop per unit of elevation above the sea
INLAND_DRYING = 0.6  # moisture lost per unit of continentalness (the sea's moisture does not reach far)


_CONTINENT, _DETAIL, _RIDGE, _TEMPERATURE, _MOISTURE = 11, 12, 13, 14, 15  # salts


@dataclass(frozen=True, eq=False)
class Terrain:
    """Fields of one sampler: the uncarved elevation, climate and continentalness (float32)."""

    elevation: F32
    temperature: F32
    moisture: F32
    continent: F32


def _hermite(u: F32, a: float, out: F32 | None = None) -> F32:
    """Cubic from 0 to 1 on [0, 1] with slope ``a`` at 0 and 0 at 1 (float32; into ``out`` if given)."""
    v = np.multiply(u, np.float32(a - 2.0), out=out)
    v += np.float32(3.0 - 2.0 * a)
    v *= u
    v += np.float32(a)
    v *= u
    return v


_BELOW_SEA = np.nextafter(np.float32(SEA_LEVEL), np.float32(0.0))


def land_noise(seed: int, where: Sampler) -> tuple[F32, B, F32]:
    """Continentalness (the raw land noise minus SEA_NOISE, float32; water where < 0) and the open sea.

    Water whose continent alone (without the detail) lies INLAND_SEA above the sea's level is a pocket in
    the middle of a continent: a lake, not the sea. The detail noise comes third.
    """
    c, d = where.noises(
        [
            (derive_key(seed, _CONTINENT), CONTINENT_OCTAVES, PERSISTENCE),
            (derive_key(seed, _DETAIL), DETAIL_OCTAVES, PERSISTENCE),
        ]
    )
    sea = np.empty(c.shape, dtype=np.bool_)
    _land(c, d, sea)
    return c, sea, d


def _land(c: F32, d: F32, sea: B) -> None:
    """``land_noise`` from the continent and detail noise: continentalness into ``c``, sea into ``sea``."""
    c -= np.float32(SEA_NOISE)
    np.less(c, np.float32(INLAND_SEA), out=sea)
    c += d * np.float32(DETAIL_WEIGHT)  # a sum: the same bits in either order
    sea &= c < np.float32(0.0)


class Ground(NamedTuple):
    """Uncarved elevation, continentalness, lake basins (> 0: a lake) and the open sea (bool)."""

    elevation: F32
    continent: F32
    basin: F32
    sea: B


_CHUNK = 1 << 16
_F = np.float32
_INF = _F(np.inf)


def _scratch(size: int, count: int) -> tuple[F32, ...]:
    """``count`` float32 work arrays of ``size`` cells, reused from chunk to chunk."""
    return tuple(np.empty(size, dtype=np.float32) for _ in range(count))


def _unit(a: F32) -> F32:
    """Clip to [0, 1] in place (one pass; the same bits as a minimum then a maximum, as there is no NaN)."""
    return np.clip(a, _F(0.0), _F(1.0), out=a)


def _shape(n: F32, d: F32, r: F32, sea: B, scratch: tuple[F32, ...]) -> None:
    """Elevation and basins from the land, detail and ridge noise of one chunk: the elevation into ``d``
    and the basins into ``r`` (each overwrites its noise once the noise is used up, so no fresh array's
    pages are touched). ``scratch``: four float32 arrays at least as long as the chunk, reused from
    chunk to chunk (fresh temporaries per chunk cost an allocation and page faults each).

    Every step is the float32 operation it always was, in the same order: only passes that cannot change
    a bit are merged or dropped (see the comments), so the fields are bit for bit what they were.
    """
    one, zero = _F(1.0), _F(0.0)
    land, ridge, t, u = (a[: n.size] for a in scratch)
    highest = np.max(n)  # (one reduction answers both questions below)
    if not highest >= zero:
        _open_water(n, d, r, sea, u)
        return
    np.multiply(n, _F(1.0 / LAND_RANGE), out=land)
    _unit(land)
    # Basins: ridge noise high above its ridges, inland. Only the few cells where the ridge noise
    # exceeds LAKE_NOISE can have one (elsewhere the ramp clips to 0), so only those are computed.
    high_lake = np.greater(r, _F(LAKE_NOISE), out=_flags(u))
    lakes = np.flatnonzero(high_lake) if high_lake.any() else _NONE
    high_r = r[lakes]
    # Ridges fade in above INLAND_START: below it they are exact zeros, which leave h as it is (any
    # zero's sign is lost when SEA_LEVEL is added), so a chunk with no cell above it skips them.
    inland = bool(highest > _F(INLAND_START))
    if inland:
        np.abs(r, out=ridge)  # the last use of r as noise: it holds the basins from here on
    basin = r
    basin.fill(zero)
    if lakes.size:
        b = high_r - _F(LAKE_NOISE)
        b *= _F(1.0 / LAKE_SOFT)
        _unit(b)
        inland_share = n[lakes] - _F(LAKE_INLAND)
        inland_share *= _F(1.0 / LAKE_INLAND)
        b *= _unit(inland_share)
        basin[lakes] = b
    if inland:
        _ridges(n, d, land, ridge, t)
    h = _hermite(land, PLAINS, out=d)  # the last use of d was in _ridges
    h *= _F(HILL_SHARE)
    if inland:
        h += ridge
    # A soft knee instead of a hard clip at 1: peaks stay peaks, not plateaus.
    high = h > _F(KNEE)
    if high.any():
        top = (h[high] - _F(KNEE)) * _F(1.0 / (1.0 - KNEE))
        h[high] = _F(KNEE) + _F(1.0 - KNEE) * np.tanh(top)
    _unit(h)
    h *= _F(1.0 - SEA_LEVEL)
    h += _F(SEA_LEVEL)
    # The sea floor: the same curve below the sea level where the sea is (n < 0). Rounding must not
    # lift a sea cell to the sea level, so it is capped just below. The basins below leave these cells
    # as they are (their basin is 0). Computed over the whole chunk (elementwise, so the wet cells get
    # the bits they would get alone) and kept only at the wet cells: cheaper than gathering a third of
    # the cells and scattering them back.
    wet = np.less(n, zero, out=_flags(ridge))
    count = int(np.count_nonzero(wet))
    if count:
        floor = _sea_floor(h, n, u, out=t)
        if count == wet.size:
            h[...] = floor
        else:
            np.copyto(h, floor, where=wet)
        # Water inside a continent (not the open sea) is a lake.
        inland_water = np.greater(wet, sea, out=wet)  # wet and not sea
        if inland_water.any():
            basin[inland_water] = one
    # Sunk by the basin, never below the sea level. Where basin is 0 this leaves h as it is (h - 0 is h,
    # and min(h, max(h, SEA_LEVEL)) is h), so only the basin cells are computed.
    if lakes.size:
        ground = h[lakes]
        sunk = basin[lakes] * _F(-BASIN_DEPTH)
        sunk += ground
        np.maximum(sunk, _F(SEA_LEVEL), out=sunk)
        h[lakes] = np.minimum(ground, sunk, out=sunk)


_NONE = np.zeros(0, dtype=np.intp)


def _ridges(n: F32, d: F32, land: F32, ridge: F32, t: F32) -> None:
    """The mountain ranges' height of one chunk into ``ridge`` (which holds |ridge noise| on entry):
    1 - |r| / RIDGE_WIDTH, squared, fading in inland and away from the coast, roughened by the detail.
    """
    one, zero = _F(1.0), _F(0.0)
    ridge *= _F(-1.0 / RIDGE_WIDTH)
    ridge += one
    np.clip(ridge, zero, _INF, out=ridge)  # (faster than maximum; squared next, so any zero's sign goes)
    ridge *= ridge
    np.subtract(n, _F(INLAND_START), out=t)
    t *= _F(1.0 / INLAND_RANGE)
    ridge *= _unit(t)
    np.multiply(land, _F(4.0), out=t)
    np.clip(t, -_INF, one, out=t)  # (as minimum, faster; t is never -0.0)
    ridge *= t
    # The detail roughens the crests and flanks, so ranges have peaks and passes.
    np.multiply(d, _F(ROUGHNESS), out=t)
    t += one
    ridge *= t
    ridge *= _F(MOUNTAIN_HEIGHT)


def _open_water(n: F32, d: F32, r: F32, sea: B, u: F32) -> None:
    """``_shape`` of a chunk where every cell is water (n < 0), in a few passes.

    There the land curve, the ridges (faded out below INLAND_START) and the basins (faded out below
    LAKE_INLAND) all come out as exact zeros, so the ground before the sea floor is exactly SEA_LEVEL:
    ``_shape`` computes the same bits the long way (checked by the tests' world digests).
    """
    r.fill(_F(0.0))  # no basin can lie in water
    _sea_floor(_F(SEA_LEVEL), n, u, out=d)
    # Water inside a continent (not the open sea) is a lake.
    inland_water = np.logical_not(sea, out=_flags(u))
    if inland_water.any():
        r[inland_water] = _F(1.0)


def _sea_floor(ground: F32 | np.float32, n: F32, u: F32, *, out: F32) -> F32:
    """``ground`` sunk by the sea floor's curve of the continentalness ``n`` (where n < 0), into ``out``,
    capped just below SEA_LEVEL: rounding must not lift a sea cell to the sea level. ``u``: scratch."""
    np.multiply(n, _F(-1.0 / DEPTH_RANGE), out=u)
    drop = _hermite(_unit(u), 1.0, out=out)
    drop *= _F(SEA_LEVEL)
    floor = np.subtract(ground, drop, out=drop)
    np.clip(floor, -_INF, _BELOW_SEA, out=floor)  # (as minimum, faster; a difference is never -0.0)
    return floor


def _flags(a: F32) -> B:
    """A bool view of a float32 scratch array's first quarter: as many bools as it has floats."""
    flags: B = a.view(np.bool_)[: a.size]
    return flags


def elevation(seed: int, where: Sampler) -> Ground:
    """Uncarved elevation in [0, 1] (below SEA_LEVEL exactly where the sea is), ``land_noise`` and basins.

    Basins (> 0 where a lake lies, up to 1) are where the ridge noise is far from its ridges on the
    high side, inland: the ground sinks there by up to BASIN_DEPTH, never below the sea level.
    """
    n, d, r = where.noises(
        [
            (derive_key(seed, _CONTINENT), CONTINENT_OCTAVES, PERSISTENCE),
            (derive_key(seed, _DETAIL), DETAIL_OCTAVES, PERSISTENCE),
            (derive_key(seed, _RIDGE), RIDGE_OCTAVES, PERSISTENCE),
        ]
    )
    sea = np.empty(n.shape, dtype=np.bool_)
    fn, fd, fr = (a.reshape(-1) for a in (n, d, r))
    fs = sea.reshape(-1)
    scratch = _scratch(min(n.size, _CHUNK), 4)
    # A chunk at a time: a few dozen passes over data that stays in cache. The continent noise becomes
    # the continentalness (land_noise's) in place, the detail noise the elevation, the ridge noise the
    # basins.
    for k in range(0, n.size, _CHUNK):
        c = slice(k, k + _CHUNK)
        _land(fn[c], fd[c], fs[c])
        _shape(fn[c], fd[c], fr[c], fs[c], scratch)
    return Ground(d, n, r, sea)


def climate(seed: int, where: Sampler, elevation: F32, continent: F32) -> tuple[F32, F32]:
    """Temperature (colder higher up) and moisture (drier inland), float32 in [0, 1]."""
    t, m = where.noises(
        [
            (derive_key(seed, _TEMPERATURE), TEMPERATURE_OCTAVES, PERSISTENCE),
            (derive_key(seed, _MOISTURE), MOISTURE_OCTAVES, PERSISTENCE),
        ]
    )
    ft, fm, fe, fc = (a.reshape(-1) for a in (t, m, elevation, continent))
    (scratch,) = _scratch(min(ft.size, _CHUNK), 1)
    # A chunk at a time, in cache.
    for k in range(0, ft.size, _CHUNK):
        c = slice(k, k + _CHUNK)
        _climate(ft[c], fm[c], fe[c], fc[c], scratch[: fe[c].size])
    return t, m


def _climate(t: F32, m: F32, elevation: F32, continent: F32, scratch: F32) -> None:
    """``climate`` of one chunk, in place in the raw noise ``t`` and ``m`` (``scratch``: a float32
    array like them, reused from chunk to chunk)."""
    t *= np.float32(TEMPERATURE_GAIN)
    t += np.float32(0.5)
    above = np.subtract(elevation, np.float32(SEA_LEVEL), out=scratch)
    np.clip(above, _F(0.0), _INF, out=above)  # (faster than maximum; never -0.0, so the same bits)
    above *= np.float32(LAPSE)
    t -= above
    _unit(t)
    _moisture(m, continent, above)


def _moisture(m: F32, continent: F32, scratch: F32) -> None:
    """Moisture of one chunk, in place in the raw noise ``m`` (``scratch``: a float32 array like it)."""
    m *= np.float32(MOISTURE_GAIN)
    m += np.float32(0.5)
    dry = np.clip(continent, _F(0.0), _INF, out=scratch)  # (as in _climate)
    dry *= np.float32(INLAND_DRYING)
    m -= dry
    _unit(m)


def moisture(seed: int, where: Sampler, continent: F32) -> F32:
    """``climate``'s moisture alone (the same bits), for callers that need no temperature."""
    m = where.noise(derive_key(seed, _MOISTURE), MOISTURE_OCTAVES, PERSISTENCE)
    _moisture(m, continent, np.empty_like(m))
    return m


def terrain(seed: int, where: Sampler) -> Terrain:
    """All uncarved fields at the sampler's cells."""
    e, c, _, _ = elevation(seed, where)
    t, m = climate(seed, where, e, c)
    return Terrain(e, t, m, c)
