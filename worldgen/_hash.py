"""Integer hashing of (seed, salt, world coordinates): the only source of randomness in worldgen.

Every random choice is a pure function of these integers, so a value never depends on the chunk, the
order of generation, the process or Python's per-process ``hash()`` salt. The mixer is splitmix64's
finaliser, done on uint64 arrays (numpy wraps unsigned overflow silently for arrays, which is what we
want; scalars are mixed with Python ints masked to 64 bits, because numpy scalars warn on overflow).
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

MASK64 = (1 << 64) - 1
_M1 = 0xBF58476D1CE4E5B9
_M2 = 0x94D049BB133111EB
# Odd constants that spread the two coordinates over all 64 bits before mixing.
_CX = 0x9E3779B97F4A7C15
_CY = 0xC2B2AE3D27D4EB4F

U64 = npt.NDArray[np.uint64]
I64 = npt.NDArray[np.int64]


def mix64(value: int) -> int:
    """splitmix64 finaliser on a Python int (taken modulo 2**64)."""
    z = value & MASK64
    z = ((z ^ (z >> 30)) * _M1) & MASK64
    z = ((z ^ (z >> 27)) * _M2) & MASK64
    return z ^ (z >> 31)


def derive_key(seed: int, *salts: int) -> int:
    """A 64-bit key for one purpose (salt) of one seed: any Python int seed, negative or huge."""
    # Fold arbitrarily large seeds 64 bits at a time so that distinct seeds stay distinct in practice.
    seed_bits = seed & MASK64
    rest = seed >> 64
    key = mix64(seed_bits ^ 0x2545F4914F6CDD1D)
    while rest not in (0, -1):
        key = mix64(key ^ (rest & MASK64))
        rest >>= 64
    if seed < 0:
        key = mix64(key ^ 0xD6E8FEB86659FD93)
    for salt in salts:
        key = mix64((key + _CX * (salt & MASK64)) & MASK64)
    return key


def _mix_array(h: U64) -> U64:
    """splitmix64 finaliser in place on a uint64 array."""
    h ^= h >> np.uint64(30)
    h *= np.uint64(_M1)
    h ^= h >> np.uint64(27)
    h *= np.uint64(_M2)
    h ^= h >> np.uint64(31)
    return h


def hash2(key: int | U64, x: I64, y: I64) -> U64:
    """Hash of (key, x, y) for int64 coordinate arrays, broadcast together (e.g. a row and a column).

    ``key`` may also be a uint64 array of keys, broadcast with the coordinates (several keys at once).
    """
    ux = np.ascontiguousarray(x, dtype=np.int64).view(np.uint64)
    uy = np.ascontiguousarray(y, dtype=np.int64).view(np.uint64)
    k = np.uint64(key) if isinstance(key, int) else key
    hx = _mix_array(ux * np.uint64(_CX) ^ k)
    return _mix_array(hx ^ uy * np.uint64(_CY))


def unit_float(h: U64) -> npt.NDArray[np.float64]:
    """Top 53 bits of a hash as a float64 in [0, 1): exact, so identical everywhere."""
    return (h >> np.uint64(11)).astype(np.float64) * (1.0 / (1 << 53))


def hash2_grid_top(key: int | U64, xs: list[I64], ys: list[I64], bits: int) -> list[list[I64]]:
    """``hash2(key, x, y) >> (64 - bits)`` (a hash's top ``bits`` bits, as int64) for every ``y`` in ``ys``
    (outer) and ``x`` in ``xs`` (inner), arrays of one shape, for ``bits`` up to 31. The first mixing
    round of each ``x`` is done once and shared by all the ``y``, and the finaliser's last step,
    ``h ^ (h >> 31)``, leaves the top 31 bits as they are, so it is skipped: the same bits.
    """
    if not 1 <= bits <= 31:
        raise ValueError(f"bits must lie in 1..31, got {bits}")
    k = np.uint64(key) if isinstance(key, int) else key
    rounds = [
        _mix_array(np.ascontiguousarray(x, dtype=np.int64).view(np.uint64) * np.uint64(_CX) ^ k) for x in xs
    ]
    out = []
    for y in ys:
        uy = np.ascontiguousarray(y, dtype=np.int64).view(np.uint64) * np.uint64(_CY)
        row = []
        for hx in rounds:
            h = hx ^ uy
            h ^= h >> np.uint64(30)
            h *= np.uint64(_M1)
            h ^= h >> np.uint64(27)
            h *= np.uint64(_M2)
            h >>= np.uint64(64 - bits)
            row.append(h.view(np.int64))
        out.append(row)
    return out
