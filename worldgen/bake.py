"""Bake a world too big for one machine onto disk with Dask into a Zarr v3 store, and read it back.

``bake(path, seed=..., width=..., height=...)`` cuts the world into ``chunk`` x ``chunk`` blocks. Each
block is a Dask task calling ``worldgen.generate``; Dask's own store (``dask.array.store``) writes its
layers into one Zarr array per layer at the store's root, indexed [y, x] from the world's cell (0, 0),
chunked like the blocks and compressed. The block's creatures go to ``creatures/<field>`` arrays of shape
(chunks_y, chunks_x * slots): block (j, i) is row j, slots i * slots to i * slots + ``creatures/count[j,
i]``. Only then is the block's ``done`` marker set. A bake runs on a local cluster of worker processes
(one per core) or on any ``dask.distributed`` scheduler. Killed at any point, the same call finishes what
is missing; a block without its marker is never read as baked.

``open_baked(path)`` reads a store back: ``BakedWorld.read(x0, y0, width, height)`` returns the region
as a ``worldgen.World``, bit-identical to ``generate`` of that region, with a mask of the cells that are
baked (outside the world, or in blocks not baked yet, the layers read 0).

This is the only worldgen module that imports Dask and Zarr (lazily, so that reading a store needs only
Zarr); ``import worldgen`` imports neither.
"""

from __future__ import annotations

import contextlib
import dataclasses
import itertools
import os
import shutil
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, TextIO, cast

import numpy as np
import numpy.typing as npt

from . import _checks
from ._bake_layout import (
    COUNT,
    DONE,
    ORIGIN,
    RECORDS,
    Layout,
    block_at,
    layout_for,
    take,
)
from ._bake_progress import Progress
from ._generate import World

if TYPE_CHECKING:
    import zarr
    from distributed import Client, LocalCluster

__all__ = [
    "DEFAULT_CHUNK",
    "BakeError",
    "BakeResult",
    "BakedRegion",
    "BakedWorld",
    "bake",
    "local_cluster",
    "open_baked",
]

DEFAULT_CHUNK = 1024
# Blosc's lz4 with byte shuffle, measured on a 1024^2 block of five layers (14 bytes per cell raw):
# 8.7 bytes per cell in 13 ms, against 8.3 in 38 ms for Blosc's zstd level 1 and 10.4 for Zarr's
# default (plain zstd); generating the block takes about 100 ms.
_COMPRESSOR = {"name": "blosc", "configuration": {"cname": "lz4", "clevel": 5, "shuffle": "shuffle"}}
# How many blocks are queued on the cluster per worker thread: enough to keep every worker busy while
# the next ones are submitted, few enough that the graph and the held blocks stay small for any world.
_QUEUED_PER_THREAD = 4
_MIN_BATCH = 32
# A local cluster's scheduler serves HTTP (health checks, the dashboard if bokeh is installed) whatever
# is asked; None means port 8787, which another cluster may hold (then it warns and takes another).
# A free port on the loopback interface never clashes and is not reachable from the network.
LOCAL_HTTP = "127.0.0.1:0"
WORKERS_TIMEOUT = 30.0  # seconds a scheduler may take to have a worker
# glibc's malloc thresholds for the local cluster's workers (see local_cluster): 64 MiB.
_MALLOC_THRESHOLD = 64 << 20


class BakeError(ValueError):
    """A bake or an open refused before anything was written; the message says why."""


@dataclass(frozen=True)
class BakeResult:
    """What a bake did: blocks in the world, found already baked, baked now, and how fast."""

    path: Path
    blocks: int
    already_baked: int
    baked: int
    cells: int  # cells baked now
    seconds: float

    @property
    def cells_per_second(self) -> float:
        return self.cells / self.seconds if self.seconds > 0 else 0.0


@dataclass(frozen=True, eq=False)
class BakedRegion:
    """A region read from a baked store: ``world`` as ``generate`` returns it, and ``baked`` (bool,
    [row, column]) True where the cell lies in the world and its block is baked. Elsewhere the layers
    hold 0 and there are no creatures."""

    world: World
    baked: npt.NDArray[np.bool_]

    @property
    def complete(self) -> bool:
        """Whether every cell of the region is baked (then ``world`` equals ``generate``'s)."""
        return bool(self.baked.all())


class BakedWorld:
    """A baked store opened for reading (see ``open_baked``)."""

    def __init__(
        self, path: Path, layout: Layout, arrays: dict[str, zarr.Array[Any]], attrs: dict[str, Any]
    ) -> None:
        self.path = path
        self.layout = layout
        self.seed = layout.seed
        self.size = (layout.width, layout.height)
        self.width, self.height = self.size
        self.chunk = layout.chunk
        self.layers = tuple(layout.layers)
        self.biomes: tuple[str, ...] = tuple(attrs["biomes"])
        self.species: tuple[str, ...] = tuple(attrs["species"])
        self.generator: dict[str, Any] = dict(attrs["generator"])
        self._arrays = arrays
        self._records_dtype = np.dtype([(k, v) for k, v in layout.creature_fields.items()])

    def __repr__(self) -> str:
        size = f"{self.width}x{self.height}"
        return f"<BakedWorld {str(self.path)!r} seed={self.seed} size={size} chunk={self.chunk}>"

    def done_chunks(self) -> npt.NDArray[np.bool_]:
        """Which blocks are baked, indexed [chunk row, chunk column]."""
        done: npt.NDArray[np.bool_] = np.asarray(self._arrays[DONE][...]).astype(bool)
        return done

    @property
    def complete(self) -> bool:
        """Whether every block of the world is baked."""
        return bool(self.done_chunks().all())

    def read(self, x0: int, y0: int, width: int, height: int) -> BakedRegion:
        """The region of ``width`` x ``height`` cells whose top-left cell is ``(x0, y0)``.

        Any region may be asked for: cells outside the baked world, or in blocks not baked yet, read 0
        with ``baked`` False. Where ``baked`` is True the values equal ``generate``'s bit for bit."""
        x0, y0, width, height = _checks.region(x0, y0, width, height)
        arrays, c = self._arrays, self.chunk
        mask = np.zeros((height, width), dtype=np.bool_)
        layers = {name: np.zeros((height, width), dtype=dtype) for name, dtype in self.layout.layers.items()}
        records = np.zeros(0, dtype=self._records_dtype)
        xa, xb = min(max(x0, 0), self.width), min(max(x0 + width, 0), self.width)
        ya, yb = min(max(y0, 0), self.height), min(max(y0 + height, 0), self.height)
        if xa < xb and ya < yb:
            cj, ci = slice(ya // c, (yb - 1) // c + 1), slice(xa // c, (xb - 1) // c + 1)
            # The markers first: a block marked done has all its arrays written, whatever comes later. Only
            # those blocks are read: one not done may hold a chunk a killed bake left half written.
            done = np.asarray(arrays[DONE][cj, ci]).astype(bool)
            blocks = [(int(j) + cj.start, int(i) + ci.start) for j, i in np.argwhere(done)]
            for j, i in blocks:
                by, bx = (
                    slice(max(ya, j * c), min(yb, (j + 1) * c)),
                    slice(max(xa, i * c), min(xb, (i + 1) * c)),
                )
                box = (slice(by.start - y0, by.stop - y0), slice(bx.start - x0, bx.stop - x0))
                mask[box] = True
                for name, out in layers.items():
                    out[box] = np.asarray(arrays[name][by, bx])
            records = self._records(blocks, (x0, y0, width, height))
        kwargs: dict[str, Any] = {}
        for field in dataclasses.fields(World):
            if field.name in ORIGIN:
                kwargs[field.name] = x0 if field.name == "x0" else y0
            elif field.name == RECORDS:
                kwargs[field.name] = records
            elif field.name in layers:
                kwargs[field.name] = layers[field.name]
            else:
                kwargs[field.name] = self.layout.scalars[field.name]
        return BakedRegion(World(**kwargs), mask)

    def _records(
        self, blocks: list[tuple[int, int]], region: tuple[int, int, int, int]
    ) -> npt.NDArray[np.void]:
        """The creatures of the baked ``blocks`` standing in ``region``, sorted by id like generate's."""
        arrays, slots = self._arrays, self.layout.creature_capacity
        parts = []
        for j, i in blocks:
            count = int(np.asarray(arrays[f"{RECORDS}/{COUNT}"][j, i]))
            part = np.zeros(count, dtype=self._records_dtype)
            for name in self._records_dtype.names or ():
                part[name] = np.asarray(arrays[f"{RECORDS}/{name}"][j, i * slots : i * slots + count])
            parts.append(part)
        found = np.concatenate(parts) if parts else np.zeros(0, dtype=self._records_dtype)
        x0, y0, width, height = region
        x, y = found["x"], found["y"]
        found = found[(x >= x0) & (x < x0 + width) & (y >= y0) & (y < y0 + height)]
        records: npt.NDArray[np.void] = found[np.argsort(found["id"], kind="stable")]
        return records


def open_baked(path: str | os.PathLike[str]) -> BakedWorld:
    """Open a baked store for reading; BakeError if ``path`` is not a baked world this worldgen reads."""
    path = Path(path)
    if not (path / "zarr.json").is_file():
        raise BakeError(f"{path} is not a baked world (no Zarr store there: {path / 'zarr.json'} is missing)")
    group = _open_group(path, "r")
    attrs = dict(group.attrs)
    try:
        layout = Layout.from_attrs(attrs, str(path))
    except ValueError as e:
        raise BakeError(str(e)) from None
    names = {f.name for f in dataclasses.fields(World)} - set(ORIGIN) - {RECORDS}
    stored = set(layout.layers) | set(layout.scalars)
    if names != stored:
        raise BakeError(
            f"{path} was baked by a worldgen whose World had fields {sorted(stored)}, this one has "
            f"{sorted(names)}: bake it again with this worldgen"
        )
    arrays = _arrays(group, layout, str(path))
    if len(arrays) < len(_array_specs(layout)):
        raise BakeError(
            f"{path} is a bake stopped while it made its arrays: run the same bake again to finish it"
        )
    return BakedWorld(path, layout, arrays, attrs)


def bake(
    path: str | os.PathLike[str],
    *,
    seed: int,
    width: int,
    height: int,
    chunk: int = DEFAULT_CHUNK,
    scheduler: str | Client | None = None,
    workers: int | None = None,
    progress: TextIO | None = None,
) -> BakeResult:
    """Bake the ``width`` x ``height`` world of ``seed`` into the Zarr store at ``path``.

    ``scheduler`` is None for a local cluster of ``workers`` processes (default: one per core), the
    address of a ``dask.distributed`` scheduler, or a ``distributed.Client`` to use. If ``path`` holds
    a bake of the same arguments, only its missing blocks are baked. Everything is checked before
    anything is written or started: the arguments, that ``path`` is new, an empty directory or a bake
    of the same arguments, that it is writable, and that the disk has room for the blocks to bake
    (their uncompressed size, an upper bound); each refusal is a BakeError (a ValueError) saying why.
    ``progress``, if given, is the stream the progress bar goes to.
    """
    layout = layout_for(seed, width, height, chunk)
    if workers is not None:
        workers = _checks.positive_int("workers", workers)
        if scheduler is not None:
            raise ValueError("workers is the size of the local cluster: a scheduler brings its own workers")
    path = Path(path)
    stored = _stored_layout(path)
    if stored is None:
        done = None
    else:
        differences = stored.differences(layout)
        if differences:
            raise BakeError(
                f"{path} holds a bake with different arguments ({'; '.join(differences)}): bake into "
                "another path, or give the store's arguments to finish it"
            )
        arrays = _arrays(_open_group(path, "r"), layout, str(path))
        done = np.asarray(arrays[DONE][...]).astype(bool) if DONE in arrays else None
    if done is None or not done.all():
        _check_writable(path)  # a new store, or one to finish (on a disk since made read-only, say)
    _check_disk(path, layout, done)
    if done is None:
        missing = [(j, i) for j in range(layout.chunks_y) for i in range(layout.chunks_x)]
    else:
        missing = [(int(j), int(i)) for j, i in np.argwhere(~done)]
    started = time.monotonic()
    if missing:
        # Connected, with a worker, first: an unreachable or empty cluster leaves nothing written.
        with _connect(scheduler, workers) as client:
            started = time.monotonic()  # the bake's own time, not the cluster's start
            # Absolute: workers elsewhere (--scheduler) resolve a relative path in their own directory.
            targets, done_array = _create_store(path.absolute(), layout)
            if progress is not None:
                threads = client.nthreads()
                processes, total = len(threads), sum(threads.values())
                print(
                    f"{path}: {layout.width}x{layout.height} cells of seed {layout.seed} in "
                    f"{layout.chunk_count} blocks of {layout.chunk}; {layout.chunk_count - len(missing)} "
                    f"already baked, baking {len(missing)} on {processes} worker "
                    f"process{'es' if processes != 1 else ''} ({total} thread{'s' if total != 1 else ''}) "
                    f"of {client.scheduler_info()['address']}",
                    file=progress,
                )
            _run(client, layout, targets, done_array, missing, progress)
    return BakeResult(
        path=path,
        blocks=layout.chunk_count,
        already_baked=layout.chunk_count - len(missing),
        baked=len(missing),
        cells=sum(layout.cells(j, i) for j, i in missing),
        seconds=time.monotonic() - started,
    )


def _open_group(path: Path, mode: Literal["r", "r+"]) -> zarr.Group:
    import zarr

    try:
        return zarr.open_group(zarr.storage.LocalStore(path, read_only=mode == "r"), mode=mode)
    except Exception as e:  # zarr raises many kinds for a store it cannot read; all mean the same here
        raise BakeError(f"{path} is not a baked world (Zarr cannot open it as a group: {e})") from None


def _stored_layout(path: Path) -> Layout | None:
    """The layout of the bake at ``path``; None if there is nothing at ``path`` or an empty directory."""
    if not path.exists():
        return None
    if not path.is_dir():
        raise BakeError(f"{path} is not a baked world (it is a file, not a directory)")
    if not (path / "zarr.json").is_file():
        if any(path.iterdir()):
            raise BakeError(
                f"{path} is not a baked world (a directory that is not empty and holds no zarr.json): "
                "bake into a new path or an empty directory"
            )
        return None
    try:
        return Layout.from_attrs(dict(_open_group(path, "r").attrs), str(path))
    except ValueError as e:
        raise BakeError(str(e)) from None


def _array_specs(layout: Layout) -> dict[str, tuple[tuple[int, ...], tuple[int, ...], str]]:
    """Every array of the store: name -> (shape, chunks, dtype)."""
    c, ny, nx, slots = layout.chunk, layout.chunks_y, layout.chunks_x, layout.creature_capacity
    specs: dict[str, tuple[tuple[int, ...], tuple[int, ...], str]] = {
        name: ((layout.height, layout.width), (c, c), dtype) for name, dtype in layout.layers.items()
    }
    for name, dtype in layout.creature_fields.items():
        # Two dimensions, not (ny, nx, slots): Dask then fuses a block's whole bake into one task.
        specs[f"{RECORDS}/{name}"] = ((ny, nx * slots), (1, slots), dtype)
    # One chunk per block for the count and the marker too, so that no two blocks ever write one chunk.
    specs[f"{RECORDS}/{COUNT}"] = ((ny, nx), (1, 1), "<i4")
    specs[DONE] = ((ny, nx), (1, 1), "|u1")
    return specs


def _arrays(group: zarr.Group, layout: Layout, where: str) -> dict[str, zarr.Array[Any]]:
    """The store's arrays by name; BakeError if one has another shape, chunks or type than the layout's.

    An array not there yet is left out: a bake killed while it made the store lacks some."""
    import zarr

    found: dict[str, zarr.Array[Any]] = {}
    for name, (shape, chunks, dtype) in _array_specs(layout).items():
        try:
            array = group[name]
        except KeyError:
            continue
        if not isinstance(array, zarr.Array) or (array.shape, array.chunks, array.dtype) != (
            shape,
            chunks,
            np.dtype(dtype),
        ):
            raise BakeError(
                f"{where} is not a baked world of these arguments: its {name!r} is not an array of shape "
                f"{shape}, chunks {chunks} and type {np.dtype(dtype)}"
            )
        found[name] = array
    return found


def _existing_ancestor(path: Path) -> Path:
    path = path.absolute()
    while not path.exists():
        path = path.parent
    return path


def _check_writable(path: Path) -> None:
    """BakeError unless the store can be made at ``path``; what the check makes, it removes."""
    base = _existing_ancestor(path)
    if not base.is_dir():
        raise BakeError(f"cannot write {path}: {base} is not a directory")
    try:
        with tempfile.TemporaryDirectory(prefix=".bake-probe-", dir=base):
            pass
    except OSError as e:
        raise BakeError(f"cannot write {path}: {base} is not writable ({e.strerror or e})") from None


def _check_disk(path: Path, layout: Layout, done: npt.NDArray[np.bool_] | None) -> None:
    """BakeError if the blocks to bake (all if ``done`` is None), uncompressed, could not fit in the
    disk's free space."""
    if done is None:
        blocks, cells = layout.chunk_count, layout.width * layout.height
    else:
        blocks, cells = int((~done).sum()), int(layout.block_cells()[~done].sum())
    if not blocks:
        return
    needed = layout.disk_bound(cells, blocks)
    base = _existing_ancestor(path)
    free = shutil.disk_usage(base).free
    if needed > free:
        raise BakeError(
            f"a {layout.width}x{layout.height} world needs up to {_bytes(needed)} on disk for its "
            f"{blocks} blocks to bake ({needed / cells:.1f} bytes per cell before compression), "
            f"but {base} has only {_bytes(free)} free"
        )


def _bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if n < 1024 or unit == "PiB":
            return f"{n:.1f} {unit}" if unit != "B" else f"{int(n)} B"
        n /= 1024
    raise AssertionError("unreachable")


def _create_store(path: Path, layout: Layout) -> tuple[dict[str, zarr.Array[Any]], zarr.Array[Any]]:
    """Open or create the store: its attributes first, then whatever arrays are missing. Returns the
    arrays the blocks fill, by name, and the markers."""
    import zarr

    if (path / "zarr.json").is_file():
        group = _open_group(path, "r+")
    else:
        group = zarr.create_group(zarr.storage.LocalStore(path), attributes=layout.attrs())
    arrays = _arrays(group, layout, str(path))
    for name, (shape, chunks, dtype) in _array_specs(layout).items():
        if name not in arrays:
            arrays[name] = group.create_array(
                name,
                shape=shape,
                chunks=chunks,
                dtype=dtype,
                fill_value=0,
                # A marker is one byte: compressing it would only add a header.
                compressors=None if name == DONE else _COMPRESSOR,  # type: ignore[arg-type]
                dimension_names=("y", "x") if name in layout.layers else None,
            )
    done = arrays.pop(DONE)
    return arrays, done


def local_cluster(workers: int | None = None) -> LocalCluster:
    """A ``distributed.LocalCluster`` set up for baking: ``workers`` processes (default: one per core) of
    one thread each, since generate() holds the GIL for much of its work, and their HTTP on a free
    loopback port.

    Its workers keep glibc's default handling of big allocations: distributed starts workers with
    MALLOC_TRIM_THRESHOLD_=65536, which also turns off glibc's adaptive mmap threshold, so that every
    array of generate() is mapped and faulted in afresh: measured 50% slower generation, for no less
    peak memory (the block's arrays are freed after each block either way)."""
    import dask
    from distributed import LocalCluster

    n = workers or _cores()
    environ = {"MALLOC_TRIM_THRESHOLD_": _MALLOC_THRESHOLD, "MALLOC_MMAP_THRESHOLD_": _MALLOC_THRESHOLD}
    with dask.config.set({"distributed.nanny.pre-spawn-environ": environ}):
        return LocalCluster(n_workers=n, threads_per_worker=1, processes=True, dashboard_address=LOCAL_HTTP)


@contextlib.contextmanager
def _connect(scheduler: str | Client | None, workers: int | None) -> Iterator[Client]:
    """A client of the given scheduler or Client, or of a local cluster started (and stopped) here."""
    from distributed import Client

    if isinstance(scheduler, Client):
        yield scheduler
    elif scheduler is not None:
        try:
            client = Client(scheduler)
        except (OSError, ValueError) as e:  # (ValueError: an address distributed cannot parse)
            raise BakeError(f"cannot reach the scheduler at {scheduler}: {e}; nothing was written") from None
        with client:
            try:
                client.wait_for_workers(1, timeout=WORKERS_TIMEOUT)
            except OSError:  # (TimeoutError is one)
                raise BakeError(
                    f"the scheduler at {scheduler} has no workers (waited {WORKERS_TIMEOUT:.0f} s for one): "
                    f"start some with `dask worker {scheduler}`; nothing was written"
                ) from None
            yield client
    else:
        with local_cluster(workers) as cluster, Client(cluster) as client:
            yield client


def _cores() -> int:
    """The cores this process may run on (fewer than the machine's under taskset or a container's cpuset)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def _marker(*_stored: object) -> npt.NDArray[np.uint8]:
    """A block's done marker; its arguments (the block's stored arrays) make it run after their stores."""
    return np.ones((1, 1), dtype=np.uint8)


def _graph(
    layout: Layout, targets: dict[str, zarr.Array[Any]], done: zarr.Array[Any]
) -> npt.NDArray[np.object_]:
    """The bake as Dask arrays: blocks of ``generate``, each array taken from them and written with Dask's
    store, then the markers, written after their block's arrays. Returns one Delayed per block,
    [row, column], so that any set of blocks can be computed."""
    import dask.array as da
    from dask.blockwise import optimize_blockwise
    from dask.core import flatten

    ny, nx, slots = layout.chunks_y, layout.chunks_x, layout.creature_capacity
    per_block = ((1,) * ny, (1,) * nx)
    blocks = da.map_blocks(
        block_at,
        layout.seed,
        layout.width,
        layout.height,
        layout.chunk,
        slots,
        chunks=per_block,
        dtype=object,
        meta=np.empty((0, 0), dtype=object),
        # A name of this bake's own (every later task's key derives from it): a cluster that still
        # remembers a block's key from an earlier bake of this store would otherwise answer from memory
        # instead of writing the block again.
        name=f"generate-{layout.seed}-{layout.width}x{layout.height}-{layout.chunk}-{uuid.uuid4().hex}",
    )
    rows = tuple(layout.box(j, 0)[3] for j in range(ny))
    cols = tuple(layout.box(0, i)[2] for i in range(nx))
    sources = []
    for name, target in targets.items():
        # A block's part of each array: its cells for a layer, one chunk of the per-block arrays.
        if name in layout.layers:
            chunks = (rows, cols)
        else:
            chunks = ((target.chunks[0],) * ny, (target.chunks[1],) * nx)
        sources.append(blocks.map_blocks(take, name, chunks=chunks, dtype=target.dtype))
    # Dask types store targets as numpy-like; a Zarr array is one at run time (it has __setitem__).
    into: list[Any] = list(targets.values())
    stored = da.store(
        sources,
        into,
        lock=False,
        compute=False,
        return_stored=True,
        load_stored=False,
    )
    # Block (j, i) of the marker takes block (j, i) of every stored array (not aligned: their chunk
    # sizes differ, their block grids do not). Each stored block is its Zarr target (load_stored=False).
    inputs: list[Any] = []
    for array in stored:
        inputs += [array, "ji"]
    marker = da.blockwise(
        _marker,
        "ji",
        *inputs,
        dtype=np.uint8,
        align_arrays=False,
        adjust_chunks={"j": 1, "i": 1},
    )
    marked = da.store(
        marker, cast(Any, done), lock=False, compute=False, return_stored=True, load_stored=False
    )
    # Fuse the blockwise layers after the blocks (take, store, marker, its store) into one task per
    # block: a block is then two tasks, generate and write, instead of two dozen, whose scheduling cost
    # more than the writing. This works on the graph's layers, whatever the number of blocks; the
    # usual optimisation also materialises every block's tasks (seconds per batch on a big world),
    # so it is skipped and computing a batch only culls the layers to its blocks.
    keys = list(flatten(marked.__dask_keys__()))
    fused = da.Array(
        optimize_blockwise(marked.dask, keys=keys), marked.name, marked.chunks, meta=marked._meta
    )
    tasks: npt.NDArray[np.object_] = fused.to_delayed(optimize_graph=False)
    return tasks


def _run(
    client: Client,
    layout: Layout,
    targets: dict[str, zarr.Array[Any]],
    done: zarr.Array[Any],
    missing: list[tuple[int, int]],
    stream: TextIO | None,
) -> None:
    """Bake the ``missing`` blocks, a bounded number queued at once, drawing the progress bar."""
    from distributed import as_completed

    threads = sum(client.nthreads().values()) or 1
    batch_size = max(_MIN_BATCH, _QUEUED_PER_THREAD * threads)
    tasks = _graph(layout, targets, done)
    todo = iter(missing)
    cells: dict[str, int] = {}
    running = as_completed()

    def submit() -> None:
        batch = list(itertools.islice(todo, batch_size))
        if batch:
            futures = client.compute([tasks[j, i] for j, i in batch])
            for (j, i), future in zip(batch, futures, strict=True):
                cells[future.key] = layout.cells(j, i)
            running.update(futures)

    bar = None
    if stream is not None:
        total = sum(layout.cells(j, i) for j, i in missing)
        bar = Progress(stream, len(missing), total)
    try:
        submit()
        submit()
        for future in running:
            future.result()  # a block that failed ends the bake with its error
            if bar is not None:
                bar.advance(cells.pop(future.key))
            if running.count() < batch_size:
                submit()
    finally:
        if bar is not None:
            bar.close()
