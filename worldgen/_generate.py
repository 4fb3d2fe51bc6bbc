"""generate(): one world region as numpy arrays, identical however the world is cut into chunks."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from . import _checks, _creatures
from ._biomes import BEACH_REACH, SEA_LEVEL, classify
from ._creatures import CREATURE_CELL
from ._hash import derive_key
from ._noise import fbm
from ._noise import peak_bytes as noise_peak_bytes

F32 = npt.NDArray[np.float32]
F64 = npt.NDArray[np.float64]

# Lattice spacings in cells, coarsest first (one octave each).
ELEVATION_OCTAVES = (256, 128, 64, 32, 16)
MOISTURE_OCTAVES = (256, 128, 64, 32)
TEMPERATURE_OCTAVES = (256, 128, 64)
PERSISTENCE = 0.5

# Raw fBm has a standard deviation of about 0.1 (and stays within about +-0.7).
#
# Elevation: raw values above SEA_NOISE are land, mapped onto [SEA_LEVEL, 1] by the cubic
# h(u) = a u + (3 - 2a) u^2 + (a - 2) u^3 of u = (n - SEA_NOISE) / (TOP_NOISE - SEA_NOISE) clipped to
# [0, 1]: slope a = PLAINS at the coast (wide plains), steep in the middle (hills, mountains), slope 0
# at the top (rounded peaks, no hard-clipped plateaus). Water is mapped onto [0, SEA_LEVEL] the same way
# with a = 1 (a shelf that deepens steadily, then a smooth ocean floor below BOTTOM_NOISE).
SEA_NOISE = -0.06  # about 33% of cells lie below
TOP_NOISE = 0.36
BOTTOM_NOISE = -0.40
PLAINS = 0.5
# Moisture and temperature: 0.5 + gain * n, clipped to [0, 1].
MOISTURE_GAIN = 1.8
TEMPERATURE_GAIN = 1.8
LAPSE = 0.4  # temperature drop per unit of elevation above sea level

_ELEVATION, _MOISTURE, _TEMPERATURE = 1, 2, 3  # salts

# Memory estimate (see held_bytes): _OBJECT_BYTES for Python objects and array headers (under 16 KiB
# measured). Peak RSS can exceed the bytes held at once: glibc keeps freed blocks under 32 MiB for reuse
# rather than returning them (up to +18% measured), so allow a quarter more (_ALLOCATOR_SLACK, in
# quarters). A process's first call also loads code and BLAS buffers (about 1.5 MiB measured).
_OBJECT_BYTES = 64 << 10
_ALLOCATOR_SLACK = 5
_START_UP_BYTES = 2 << 20


@dataclass(frozen=True, eq=False)
class World:
    """A generated region: numpy fields of shape (height, width) indexed [row, column].

    Row ``r``, column ``c`` is world cell ``(x0 + c, y0 + r)``. ``biome`` holds ids into ``BIOMES``;
    ``heights`` is elevation as integers 1..10; ``creatures`` is a ``CREATURE_DTYPE`` array in world
    coordinates, sorted by id.
    """

    seed: int
    x0: int
    y0: int
    elevation: npt.NDArray[np.float32]
    moisture: npt.NDArray[np.float32]
    temperature: npt.NDArray[np.float32]
    biome: npt.NDArray[np.uint8]
    heights: npt.NDArray[np.uint8]
    creatures: npt.NDArray[np.void]

    @property
    def width(self) -> int:
        """Number of columns (cells along x)."""
        return int(self.elevation.shape[1])

    @property
    def height(self) -> int:
        """Number of rows (cells along y)."""
        return int(self.elevation.shape[0])


def _hermite(u: F64, a: float) -> F64:
    """Cubic from 0 to 1 on [0, 1] with slope ``a`` at 0 and 0 at 1, in place on ``u``."""
    # Horner form of a u + (3 - 2a) u^2 + (a - 2) u^3.
    v = u * (a - 2.0)
    v += 3.0 - 2.0 * a
    v *= u
    v += a
    v *= u
    return v


def _shape_elevation(n: F64) -> F64:
    """Raw fBm -> elevation in [0, 1], elementwise (see SEA_NOISE above)."""
    land = n - SEA_NOISE
    land *= 1.0 / (TOP_NOISE - SEA_NOISE)
    np.clip(land, 0.0, 1.0, out=land)
    water = n - SEA_NOISE
    water *= 1.0 / (BOTTOM_NOISE - SEA_NOISE)
    np.clip(water, 0.0, 1.0, out=water)
    # One of the two is 0 for every cell, and h(0) = 0, so the sum needs no select.
    e = _hermite(land, PLAINS)
    e *= 1.0 - SEA_LEVEL
    e += SEA_LEVEL
    e -= _hermite(water, 1.0) * SEA_LEVEL
    return e


def _unit_shaper(gain: float) -> Callable[[F64], F64]:
    """Raw fBm -> 0.5 + gain * n clipped to [0, 1], elementwise and in place."""

    def shape(n: F64) -> F64:
        n *= gain
        n += 0.5
        return np.clip(n, 0.0, 1.0, out=n)

    return shape


def _elevation(seed: int, x0: int, y0: int, width: int, height: int) -> F32:
    key = derive_key(seed, _ELEVATION)
    return fbm(key, x0, y0, width, height, ELEVATION_OCTAVES, PERSISTENCE, _shape_elevation)


def _field(seed: int, salt: int, octaves: tuple[int, ...], gain: float, region: tuple[int, ...]) -> F32:
    x0, y0, width, height = region
    return fbm(derive_key(seed, salt), x0, y0, width, height, octaves, PERSISTENCE, _unit_shaper(gain))


def held_bytes(width: int, height: int) -> int:
    """Upper bound on the bytes generate() holds at once for a region (what tracemalloc counts).

    The peak is that of the largest stage. The noise stages hold tables that grow with the width times
    the lattice rows touched (at least 2 per octave, however short the region) and per-row weights, so
    short wide and tall narrow strips cost hundreds of bytes per cell; large regions cost about 25 bytes
    per cell, at classification.
    """
    r = 2 * BEACH_REACH
    halo = (width + r) * (height + r)
    cells = width * height
    squares = (width // CREATURE_CELL + 2) * (height // CREATURE_CELL + 2)
    stages = (
        noise_peak_bytes(width + r, height + r, ELEVATION_OCTAVES),
        # Later noise: with the haloed and the cropped elevation (float32) alive.
        4 * halo + 4 * cells + noise_peak_bytes(width, height, MOISTURE_OCTAVES),
        4 * halo + 8 * cells + noise_peak_bytes(width, height, TEMPERATURE_OCTAVES),
        # The float32 fields (elevation also with its halo), then classify()'s byte-sized masks.
        14 * halo + 12 * cells,
        # Fields, biome and heights; creature placement's hashes and coordinates per grid square.
        14 * cells + 128 * squares,
    )
    return max(stages) + _OBJECT_BYTES


def estimated_bytes(width: int, height: int) -> int:
    """Upper bound on generate()'s peak memory (RSS growth) for a region: the up-front memory check."""
    return held_bytes(width, height) * _ALLOCATOR_SLACK // 4 + _START_UP_BYTES


def generate(
    seed: int,
    x0: int,
    y0: int,
    width: int,
    height: int,
    *,
    progress: Callable[[float, str], object] | None = None,
    memory_limit: int | None = None,
) -> World:
    """Generate the world region of ``width`` x ``height`` cells whose top-left cell is ``(x0, y0)``.

    Every value is a pure function of (seed, world cell): ``generate(s, 256, 0, 256, 256)`` is exactly
    the chunk to the right of ``generate(s, 0, 0, 256, 256)``, in any process and any order.
    ``progress(fraction, stage)``, if given, is called as stages finish with increasing fractions,
    ending with 1.0. Raises TypeError/ValueError for bad input, including a region that would need
    more than ``memory_limit`` bytes (default 2 GiB), checked up front against an upper bound on its
    peak memory: 2 MiB plus about 33 bytes per cell for large regions, more for thin strips, whose noise
    tables and weights scale with the long side (up to about 450 bytes per cell one cell thick, 115 four
    cells thick, 40 sixteen cells thick).
    """
    seed = _checks.as_int("seed", seed)
    x0, y0, width, height = _checks.region(x0, y0, width, height)
    _checks.memory(estimated_bytes(width, height), memory_limit, f"a {width}x{height} region")
    report = progress if progress is not None else _ignore
    report(0.0, "start")  # at once, so a progress bar appears before the first stage ends

    r = BEACH_REACH  # beaches look this far past the edge, so compute elevation with a halo
    elevation_halo = _elevation(seed, x0 - r, y0 - r, width + 2 * r, height + 2 * r)
    elevation = np.ascontiguousarray(elevation_halo[r:-r, r:-r])
    report(0.35, "elevation")
    box = (x0, y0, width, height)
    moisture = _field(seed, _MOISTURE, MOISTURE_OCTAVES, MOISTURE_GAIN, box)
    report(0.55, "moisture")
    temperature = _field(seed, _TEMPERATURE, TEMPERATURE_OCTAVES, TEMPERATURE_GAIN, box)
    # Colder with altitude above the sea.
    above = elevation - np.float32(SEA_LEVEL)
    np.maximum(above, 0.0, out=above)
    above *= np.float32(LAPSE)
    temperature -= above
    np.clip(temperature, 0.0, 1.0, out=temperature)
    del above
    report(0.7, "temperature")
    biome = classify(elevation_halo, moisture, temperature)
    del elevation_halo
    heights = elevation * np.float32(10.0)
    heights_u8 = heights.astype(np.uint8)
    del heights
    np.clip(heights_u8, 0, 9, out=heights_u8)
    heights_u8 += np.uint8(1)
    report(0.9, "biomes")
    creatures = _creatures.place(seed, x0, y0, biome)
    report(1.0, "creatures")
    return World(seed, x0, y0, elevation, moisture, temperature, biome, heights_u8, creatures)


def _ignore(fraction: float, stage: str) -> None:
    """Progress sink when the caller passes none."""
