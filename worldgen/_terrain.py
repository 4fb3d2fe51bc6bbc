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
RIDGE_OCTAVES = (1024, 512, 256)
TEMPERATURE_OCTAVES = (4096, 2048, 1024)
MOISTURE_OCTAVES = (2048, 1024, 512, 256)
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
MOUNTAIN_HEIGHT = 0.75
# Lakes: where the ridge noise exceeds LAKE_NOISE (ramping over LAKE_SOFT), at least 2 * LAKE_INLAND
# continentalness inland.
LAKE_NOISE, LAKE_SOFT, LAKE_INLAND = 0.3, 0.06, 0.03
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


def _hermite(u: F32, a: float) -> F32:
    """Cubic from 0 to 1 on [0, 1] with slope ``a`` at 0 and 0 at 1 (float32)."""
    v = u * np.float32(a - 2.0)
    v += np.float32(3.0 - 2.0 * a)
    v *= u
    v += np.float32(a)
    v *= u
    return v


_BELOW_SEA = np.nextafter(np.float32(SEA_LEVEL), np.float32(0.0))


def land_noise(seed: int, where: Sampler) -> tuple[F32, B]:
    """Continentalness (the raw land noise minus SEA_NOISE, float32; water where < 0) and the open sea.

    Water whose continent alone (without the detail) lies INLAND_SEA above the sea's level is a pocket in
    the middle of a continent: a lake, not the sea.
    """
    c = where.noise(derive_key(seed, _CONTINENT), CONTINENT_OCTAVES, PERSISTENCE)
    d = where.noise(derive_key(seed, _DETAIL), DETAIL_OCTAVES, PERSISTENCE)
    c -= np.float32(SEA_NOISE)
    n = np.float32(DETAIL_WEIGHT) * d
    n += c
    sea = (n < 0.0) & (c < np.float32(INLAND_SEA))
    return n, sea


class Ground(NamedTuple):
    """Uncarved elevation, continentalness, lake basins (> 0: a lake) and the open sea (bool)."""

    elevation: F32
    continent: F32
    basin: F32
    sea: B


def elevation(seed: int, where: Sampler) -> Ground:
    """Uncarved elevation in [0, 1] (below SEA_LEVEL exactly where the sea is), ``land_noise`` and basins.

    Basins (> 0 where a lake lies, up to 1) are where the ridge noise is far from its ridges on the
    high side, inland: the ground sinks there by up to BASIN_DEPTH, never below the sea level.
    """
    n, sea = land_noise(seed, where)
    r = where.noise(derive_key(seed, _RIDGE), RIDGE_OCTAVES, PERSISTENCE)
    land = np.clip(n * np.float32(1.0 / LAND_RANGE), 0.0, 1.0)
    water = np.clip(n * np.float32(-1.0 / DEPTH_RANGE), 0.0, 1.0)
    basin = r - np.float32(LAKE_NOISE)
    basin *= np.float32(1.0 / LAKE_SOFT)
    np.clip(basin, 0.0, 1.0, out=basin)
    basin *= np.clip((n - np.float32(LAKE_INLAND)) * np.float32(1.0 / LAKE_INLAND), 0.0, 1.0)
    ridge = np.abs(r)
    ridge *= np.float32(-1.0 / RIDGE_WIDTH)
    ridge += np.float32(1.0)
    np.clip(ridge, 0.0, 1.0, out=ridge)
    ridge *= ridge
    # Mountains fade in away from the coast (no cliffs at the shore) and inland.
    inland = np.clip((n - np.float32(INLAND_START)) * np.float32(1.0 / INLAND_RANGE), 0.0, 1.0)
    ridge *= inland
    ridge *= np.clip(land * np.float32(4.0), 0.0, 1.0)
    ridge *= np.float32(MOUNTAIN_HEIGHT)
    height = _hermite(land, PLAINS)
    height *= np.float32(HILL_SHARE)
    height += ridge
    np.clip(height, 0.0, 1.0, out=height)
    height *= np.float32(1.0 - SEA_LEVEL)
    height += np.float32(SEA_LEVEL)
    height -= _hermite(water, 1.0) * np.float32(SEA_LEVEL)
    sunk = height - basin * np.float32(BASIN_DEPTH)
    np.maximum(sunk, np.float32(SEA_LEVEL), out=sunk)
    np.minimum(height, sunk, out=height, where=basin > 0)
    # Rounding must not lift a sea cell to the sea level: the sea is exactly where n < 0.
    np.minimum(height, _BELOW_SEA, out=height, where=n < 0)
    basin[(n < 0.0) & ~sea] = 1.0  # water inside a continent is a lake
    return Ground(height, n, basin, sea)


def climate(seed: int, where: Sampler, elevation: F32, continent: F32) -> tuple[F32, F32]:
    """Temperature (colder higher up) and moisture (drier inland), float32 in [0, 1]."""
    t = where.noise(derive_key(seed, _TEMPERATURE), TEMPERATURE_OCTAVES, PERSISTENCE)
    t *= np.float32(TEMPERATURE_GAIN)
    t += np.float32(0.5)
    above = elevation - np.float32(SEA_LEVEL)
    np.maximum(above, 0.0, out=above)
    above *= np.float32(LAPSE)
    t -= above
    del above
    m = where.noise(derive_key(seed, _MOISTURE), MOISTURE_OCTAVES, PERSISTENCE)
    m *= np.float32(MOISTURE_GAIN)
    m += np.float32(0.5)
    dry = np.maximum(continent, np.float32(0.0))
    dry *= np.float32(INLAND_DRYING)
    m -= dry
    return np.clip(t, 0.0, 1.0, out=t), np.clip(m, 0.0, 1.0, out=m)


def terrain(seed: int, where: Sampler) -> Terrain:
    """All uncarved fields at the sampler's cells."""
    e, c, _, _ = elevation(seed, where)
    t, m = climate(seed, where, e, c)
    return Terrain(e, t, m, c)
