"""What a baked world holds and how it is cut: the layout, its JSON attributes and the per-chunk block.

Nothing here imports Dask or Zarr (only ``worldgen.bake`` may), so worker processes run ``bake_block``
and the checks run before a cluster or a store exists. The layers are read off the ``World`` dataclass
(every field holding a (height, width) array), not listed by hand, so a layer added to ``generate``
is baked without a change here.
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib.metadata
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from . import _checks
from ._biomes import BIOMES
from ._creatures import CREATURE_CELL, SPECIES
from ._generate import World, estimated_bytes, generate

FORMAT = "computethread-baked-world"
FORMAT_VERSION = 1
RECORDS = "creatures"  # the World field holding one record per creature, stored per chunk
COUNT = "count"  # per chunk: how many of the chunk's creature slots are used
DONE = "done"  # per chunk: 1 once every array of the chunk is written (the resume marker)
ORIGIN = ("x0", "y0")  # World fields that are the region's origin, not stored
# The probe region: it crosses both axes and holds creatures, so the fingerprint sees every stage.
_PROBE = (-40, -24, 80, 48)
FINGERPRINT_SEED = 20260101
# Upper bounds for the disk estimate: a filesystem gives every chunk file at least one block, and a
# compressor adds a small header to data it cannot shrink.
FILE_BLOCK = 4096
CODEC_HEADER = 64


def package_version() -> str:
    """The installed distribution's version, or "unknown" when worldgen runs from a bare checkout."""
    try:
        return importlib.metadata.version("computethread-games")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def is_array_field(value: object) -> bool:
    return isinstance(value, np.ndarray)


@dataclass(frozen=True)
class Layout:
    """A bake's parameters and the shape of everything it stores: equal layouts bake equal stores."""

    seed: int
    width: int
    height: int
    chunk: int
    layers: dict[str, str]  # layer name -> numpy dtype string, in World field order
    creature_fields: dict[str, str]  # creature record field -> numpy dtype string
    creature_capacity: int  # creature slots per chunk: an upper bound on the creatures in a chunk
    scalars: dict[str, Any]  # World fields that are neither arrays nor the origin (e.g. the seed)
    fingerprint: str  # hash of a probe region: differs when generate() changes its output

    @property
    def chunks_x(self) -> int:
        return -(-self.width // self.chunk)

    @property
    def chunks_y(self) -> int:
        return -(-self.height // self.chunk)

    @property
    def chunk_count(self) -> int:
        return self.chunks_x * self.chunks_y

    def box(self, j: int, i: int) -> tuple[int, int, int, int]:
        """(x0, y0, width, height) of chunk row ``j``, column ``i``; edge chunks are cut by the world."""
        c = self.chunk
        x0, y0 = i * c, j * c
        return x0, y0, min(c, self.width - x0), min(c, self.height - y0)

    def cells(self, j: int, i: int) -> int:
        _, _, w, h = self.box(j, i)
        return w * h

    def block_cells(self) -> npt.NDArray[np.int64]:
        """Cells of every block, [chunk row, chunk column]."""
        c = self.chunk
        rows = np.minimum(c, self.height - c * np.arange(self.chunks_y, dtype=np.int64))
        cols = np.minimum(c, self.width - c * np.arange(self.chunks_x, dtype=np.int64))
        cells: npt.NDArray[np.int64] = np.outer(rows, cols)
        return cells

    def disk_bound(self, cells: int, blocks: int) -> int:
        """Upper bound on the bytes ``blocks`` blocks of ``cells`` cells in all take on disk."""
        layer_bytes = sum(np.dtype(d).itemsize for d in self.layers.values())
        record_bytes = (
            sum(np.dtype(d).itemsize for d in self.creature_fields.values()) * self.creature_capacity
        )
        files = len(self.layers) + len(self.creature_fields) + 2  # + count and done
        return layer_bytes * cells + (record_bytes + files * (FILE_BLOCK + CODEC_HEADER)) * blocks

    def attrs(self) -> dict[str, Any]:
        """The store's root attributes (JSON)."""
        return {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "seed": self.seed,
            "width": self.width,
            "height": self.height,
            "chunk": self.chunk,
            "layers": self.layers,
            "creature_fields": self.creature_fields,
            "creature_capacity": self.creature_capacity,
            "scalars": self.scalars,
            "biomes": list(BIOMES),
            "species": list(SPECIES),
            "generator": {"version": package_version(), "fingerprint": self.fingerprint},
        }

    @classmethod
    def from_attrs(cls, attrs: dict[str, Any], where: str) -> Layout:
        """The layout a store's attributes describe; ValueError if they are not a baked world's."""
        if attrs.get("format") != FORMAT:
            raise ValueError(f"{where} is not a baked world (its attributes have no format {FORMAT!r})")
        if attrs.get("format_version") != FORMAT_VERSION:
            raise ValueError(
                f"{where} is a baked world of format version {attrs.get('format_version')!r}; "
                f"this worldgen reads version {FORMAT_VERSION}"
            )
        try:
            return cls(
                seed=int(attrs["seed"]),
                width=int(attrs["width"]),
                height=int(attrs["height"]),
                chunk=int(attrs["chunk"]),
                layers=dict(attrs["layers"]),
                creature_fields=dict(attrs["creature_fields"]),
                creature_capacity=int(attrs["creature_capacity"]),
                scalars=dict(attrs["scalars"]),
                fingerprint=str(attrs["generator"]["fingerprint"]),
            )
        except (KeyError, TypeError, ValueError) as e:
            raise ValueError(f"{where} is not a baked world (its attributes lack {e})") from None

    def differences(self, asked: Layout) -> list[str]:
        """What differs between this (stored) layout and the one ``asked`` for, in words."""
        out = []
        if self.seed != asked.seed:
            out.append(f"seed {self.seed} in the store, {asked.seed} asked")
        if (self.width, self.height) != (asked.width, asked.height):
            out.append(f"size {self.width}x{self.height} in the store, {asked.width}x{asked.height} asked")
        if self.chunk != asked.chunk:
            out.append(f"chunk {self.chunk} in the store, {asked.chunk} asked")
        # Scalars by name only: their values (the seed) follow the arguments compared above; so does the
        # creature capacity, from the chunk.
        capacity_differs = self.chunk == asked.chunk and self.creature_capacity != asked.creature_capacity
        if capacity_differs or (self.layers, self.creature_fields, sorted(self.scalars)) != (
            asked.layers,
            asked.creature_fields,
            sorted(asked.scalars),
        ):
            out.append(f"layers {_describe(self)} in the store, {_describe(asked)} from this worldgen")
        elif self.fingerprint != asked.fingerprint:
            out.append(
                f"generator fingerprint {self.fingerprint} in the store, {asked.fingerprint} from this "
                "worldgen (generate() changed its output since the store was started)"
            )
        return out


def _describe(layout: Layout) -> str:
    creatures = ", ".join(f"{k}:{v}" for k, v in layout.creature_fields.items())
    layers = ", ".join(f"{k}:{v}" for k, v in layout.layers.items())
    return f"[{layers}; creatures {creatures} x{layout.creature_capacity}; {', '.join(layout.scalars)}]"


def creature_capacity(chunk: int) -> int:
    """Creature slots a chunk needs: each creature grid square it touches holds at most one creature."""
    squares = -(-chunk // CREATURE_CELL) + 1
    return squares * squares


def split_world(world: World) -> tuple[dict[str, np.ndarray], np.ndarray, dict[str, Any]]:
    """A World's (layers, creature records, other scalars), read off its dataclass fields."""
    layers: dict[str, np.ndarray] = {}
    scalars: dict[str, Any] = {}
    records: np.ndarray | None = None
    shape = (world.height, world.width)
    for field in dataclasses.fields(world):
        value = getattr(world, field.name)
        if field.name in ORIGIN:
            continue
        if field.name == RECORDS:
            records = value
        elif is_array_field(value):
            if value.shape != shape:
                raise ValueError(
                    f"World field {field.name!r} has shape {value.shape}, not the region's {shape}: "
                    "the bake does not know how to store it"
                )
            layers[field.name] = value
        elif isinstance(value, bool | int | float | str) or value is None:
            scalars[field.name] = value
        else:
            raise ValueError(
                f"World field {field.name!r} holds a {type(value).__name__}: the bake cannot store it"
            )
    if records is None or records.dtype.names is None:
        raise ValueError(f"World has no structured {RECORDS!r} field: the bake cannot store its creatures")
    return layers, records, scalars


def layout_for(seed: object, width: object, height: object, chunk: object) -> Layout:
    """The checked layout of a bake (TypeError/ValueError naming the rule for bad input)."""
    seed = _checks.as_int("seed", seed)
    chunk = _checks.positive_int("chunk", chunk)
    _, _, width, height = _checks.region(0, 0, width, height)
    block_w, block_h = min(chunk, width), min(chunk, height)
    needed = estimated_bytes(block_w, block_h)
    if needed > _checks.DEFAULT_MEMORY_LIMIT:
        raise ValueError(
            f"chunk {chunk} is too big: a {block_w}x{block_h} block needs about {needed / 2**20:.0f} MiB to "
            f"generate, more than worldgen's limit of {_checks.DEFAULT_MEMORY_LIMIT / 2**20:.0f} MiB"
        )
    layers, records, scalars = split_world(generate(seed, *_PROBE))
    # Zarr writes whole chunks: even a world smaller than one block holds chunk x chunk cells per layer
    # in memory while its block is written.
    written = chunk * chunk * sum(value.dtype.itemsize for value in layers.values())
    if written > _checks.DEFAULT_MEMORY_LIMIT:
        raise ValueError(
            f"chunk {chunk} is too big: Zarr writes whole {chunk}x{chunk} chunks, about "
            f"{written / 2**20:.0f} MiB for the layers of one block, more than worldgen's limit of "
            f"{_checks.DEFAULT_MEMORY_LIMIT / 2**20:.0f} MiB"
        )
    # The fingerprint of a fixed seed: it names the generator, whatever world is baked.
    fixed_layers, fixed_records, _ = split_world(generate(FINGERPRINT_SEED, *_PROBE))
    digest = hashlib.sha256()
    for name, value in (*fixed_layers.items(), (RECORDS, fixed_records)):
        digest.update(name.encode())
        digest.update(value.dtype.str.encode())
        digest.update(np.ascontiguousarray(value).tobytes())
    return Layout(
        seed=seed,
        width=width,
        height=height,
        chunk=chunk,
        layers={name: value.dtype.str for name, value in layers.items()},
        creature_fields={name: records.dtype[name].str for name in records.dtype.names or ()},
        creature_capacity=creature_capacity(chunk),
        scalars=scalars,
        fingerprint=digest.hexdigest()[:16],
    )


def block_at(
    seed: int, width: int, height: int, chunk: int, capacity: int, block_id: tuple[int, int]
) -> dict[str, npt.NDArray[Any]]:
    """Block ``block_id`` = (row, column) of the world: ``bake_block``'s arrays, one element of the Dask
    array of blocks that every stored array is taken from.

    A dict rather than a 1x1 object array, because Dask sizes a dict by its arrays and an object array
    at 8 bytes, and a scheduler that thinks a block costs nothing to move moves it between workers."""
    j, i = block_id
    x0, y0 = i * chunk, j * chunk
    box = (x0, y0, min(chunk, width - x0), min(chunk, height - y0))
    return bake_block(seed, box, capacity)


def take(block: dict[str, npt.NDArray[Any]], name: str) -> npt.NDArray[Any]:
    """The array ``name`` of a block made by ``block_at``."""
    return block[name]


def bake_block(seed: int, box: tuple[int, int, int, int], capacity: int) -> dict[str, npt.NDArray[Any]]:
    """One chunk as the arrays the store holds: each layer, then each creature field padded to
    ``capacity`` slots (shape (1, capacity)) and the creature count (shape (1, 1))."""
    world = generate(seed, *box)
    layers, records, _ = split_world(world)
    if records.size > capacity:  # never silently drop a creature
        raise ValueError(f"chunk {box} holds {records.size} creatures, more than its {capacity} slots")
    out: dict[str, npt.NDArray[Any]] = dict(layers)
    for name in records.dtype.names or ():
        padded = np.zeros((1, capacity), dtype=records.dtype[name])
        padded[0, : records.size] = records[name]
        out[f"{RECORDS}/{name}"] = padded
    out[f"{RECORDS}/{COUNT}"] = np.array([[records.size]], dtype=np.int32)
    return out
