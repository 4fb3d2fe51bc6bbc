"""worldgen.bake: baked stores equal generate() on a real local cluster and on a real deployment (a dask
scheduler and two workers started here), resume after SIGKILL, refusals before anything is written,
reading any region back, and the progress bar."""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import os
import re
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from multiprocessing import resource_tracker
from pathlib import Path

import numpy as np
import pytest
import zarr
from distributed import Client
from vmtools import wait_until

from worldgen import BIOMES, SPECIES, World, generate
from worldgen.__main__ import main
from worldgen._bake_progress import Progress
from worldgen._generate import estimated_bytes
from worldgen.bake import LOCAL_HTTP, BakeError, bake, local_cluster, open_baked

ROOT = Path(__file__).resolve().parent.parent
SEED = 7
# Not multiples of the chunk, so that edge blocks are cut by the world.
WIDTH, HEIGHT, CHUNK = 500, 300, 128
ENV = {**os.environ, "PYTHONPATH": str(ROOT)}  # workers and CLIs import this checkout's worldgen
# The layers a store holds: every World field that is an array of the region's shape, in field order.
_PROBE = generate(SEED, 0, 0, 3, 2)
LAYERS = tuple(
    f.name
    for f in dataclasses.fields(World)
    if isinstance(getattr(_PROBE, f.name), np.ndarray) and getattr(_PROBE, f.name).shape == (2, 3)
)


def assert_same_world(got: World, want: World) -> None:
    """Every field of two Worlds equal, bit for bit and type for type."""
    for field in dataclasses.fields(World):
        a, b = getattr(got, field.name), getattr(want, field.name)
        if isinstance(b, np.ndarray):
            assert a.dtype == b.dtype, field.name
            assert a.shape == b.shape, field.name
            assert a.tobytes() == b.tobytes(), field.name
        else:
            assert a == b, field.name


def snapshot(path: Path) -> dict[str, str]:
    """Every file under ``path`` (or ``path`` itself) with a hash of its bytes."""
    if not path.exists():
        return {}
    if path.is_file():
        return {".": hashlib.sha256(path.read_bytes()).hexdigest()}
    return {
        str(p.relative_to(path)): hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else "dir"
        for p in sorted(path.rglob("*"))
    }


def run_cli(*args: str, cwd: Path = ROOT, timeout: float = 90) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "worldgen", "bake", *args],
        cwd=cwd,
        env=ENV,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def session_alive(sid: int) -> list[int]:
    """Living (not zombie) processes of session ``sid``, from /proc."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
            except (FileNotFoundError, ProcessLookupError):
                continue
            if fields[0] != "Z" and int(fields[3]) == sid:
                found.append(int(entry))
    return found


def stop_session(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM the process (the dask CLIs then stop their children), SIGKILL its session if it lingers."""
    if proc.poll() is None:
        proc.terminate()
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
    if not wait_until(lambda: not session_alive(proc.pid), timeout=30, interval=0.05):
        os.killpg(proc.pid, signal.SIGKILL)
        assert wait_until(lambda: not session_alive(proc.pid), timeout=10, interval=0.05)


@pytest.fixture(scope="module")
def client() -> Iterator[Client]:
    """A real local cluster (distributed.LocalCluster): two worker processes of one thread each."""
    with local_cluster(2) as cluster, Client(cluster) as c:
        yield c
    # The cluster's workers were spawned by multiprocessing, which leaves its resource tracker process
    # running until the interpreter exits; stop it with the cluster (it restarts if anything needs it),
    # so that the suite's end-of-session check finds no child process.
    resource_tracker._resource_tracker._stop()


@pytest.fixture(scope="module")
def reference() -> World:
    return generate(SEED, 0, 0, WIDTH, HEIGHT)


@pytest.fixture(scope="module")
def baked(client: Client, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One bake of (SEED, WIDTH x HEIGHT, CHUNK) on the local cluster, shared by the reading tests."""
    path = tmp_path_factory.mktemp("baked") / "world.zarr"
    result = bake(path, seed=SEED, width=WIDTH, height=HEIGHT, chunk=CHUNK, scheduler=client)
    assert (result.blocks, result.already_baked, result.baked) == (12, 0, 12)
    assert result.cells == WIDTH * HEIGHT
    return path


@pytest.fixture(scope="module")
def deployment(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real deployment: ``dask scheduler`` and two ``dask worker`` processes on 127.0.0.1."""
    folder = tmp_path_factory.mktemp("deployment")
    scheduler_file = folder / "scheduler.json"
    procs: list[subprocess.Popen[bytes]] = []

    def start(name: str, *args: str) -> subprocess.Popen[bytes]:
        with open(folder / f"{name}.log", "wb") as log:
            proc = subprocess.Popen(
                [sys.executable, "-m", "dask", *args],
                cwd=folder,
                env=ENV,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own session, so that everything it starts can be found
            )
        procs.append(proc)
        return proc

    def address() -> str | None:
        try:
            found = json.loads(scheduler_file.read_text())["address"]
        except (FileNotFoundError, ValueError, KeyError):
            return None  # not written yet, or half written
        return str(found)

    try:
        scheduler = start(
            "scheduler", "scheduler", "--host", "127.0.0.1", "--port", "0", "--no-dashboard",
            "--dashboard-address", LOCAL_HTTP,
            "--scheduler-file", str(scheduler_file),
        )  # fmt: skip
        assert wait_until(lambda: address() or scheduler.poll() is not None, timeout=60, interval=0.05)
        where = address()
        assert where, (folder / "scheduler.log").read_text()
        assert where.startswith("tcp://127.0.0.1:")
        for k in range(2):
            start(
                f"worker{k}", "worker", where, "--host", "127.0.0.1", "--nthreads", "1", "--nworkers", "1",
                "--no-dashboard", "--name", f"test-worker-{k}",
            )  # fmt: skip
        with Client(where) as c:
            c.wait_for_workers(2, timeout=60)
            assert len(c.scheduler_info()["workers"]) == 2
        yield where
    finally:
        for proc in reversed(procs):  # workers first, then the scheduler
            stop_session(proc)


def test_local_cluster_bake_equals_generate(baked: Path, reference: World) -> None:
    world = open_baked(baked)
    assert (world.seed, world.size, world.chunk) == (SEED, (WIDTH, HEIGHT), CHUNK)
    assert world.biomes == BIOMES
    assert world.species == SPECIES
    assert world.layers == LAYERS
    assert {"elevation", "moisture", "temperature", "biome", "heights"} <= set(LAYERS)
    assert world.complete
    whole = world.read(0, 0, WIDTH, HEIGHT)
    assert whole.complete
    assert whole.baked.shape == (HEIGHT, WIDTH)
    assert_same_world(whole.world, reference)
    # Regions cut anywhere, across block edges, equal generate() of that region.
    for x0, y0, w, h in [(100, 37, 200, 150), (127, 127, 2, 2), (499, 299, 1, 1), (0, 130, 500, 1)]:
        region = world.read(x0, y0, w, h)
        assert region.complete
        assert_same_world(region.world, generate(SEED, x0, y0, w, h))


def test_the_store_is_plain_zarr_with_one_array_per_layer(baked: Path, reference: World) -> None:
    group = zarr.open_group(baked, mode="r")
    assert group.attrs["seed"] == SEED
    assert group.attrs["biomes"] == list(BIOMES)
    assert group.attrs["species"] == list(SPECIES)
    assert group.attrs["generator"]["fingerprint"]
    for name in LAYERS:
        array = group[name]
        assert isinstance(array, zarr.Array)
        assert array.metadata.zarr_format == 3
        assert array.chunks == (CHUNK, CHUNK)
        assert array.compressors, f"{name} is not compressed"
        assert np.array_equal(array[...], getattr(reference, name))
    # Creatures of block (row 1, column 2), read per chunk.
    count = int(group["creatures/count"][1, 2])
    slots = group["creatures/id"].chunks[1]
    ids = group["creatures/id"][1, 2 * slots : 2 * slots + count]
    c = reference.creatures
    inside = (c["x"] // CHUNK == 2) & (c["y"] // CHUNK == 1)
    assert count == inside.sum() > 0
    assert np.array_equal(ids, c["id"][inside])


def test_regions_outside_the_world_are_masked(baked: Path, reference: World) -> None:
    world = open_baked(baked)
    region = world.read(-20, 250, 100, 100)  # sticks out to the left and the bottom
    assert not region.complete
    want = np.zeros((100, 100), dtype=bool)
    want[:50, 20:] = True
    assert np.array_equal(region.baked, want)
    inside = generate(SEED, 0, 250, 80, 50)
    for name in world.layers:
        layer = getattr(region.world, name)
        assert layer[:50, 20:].tobytes() == getattr(inside, name).tobytes(), name
        assert not layer[~want].any(), name
    assert (region.world.x0, region.world.y0) == (-20, 250)
    assert region.world.creatures.tobytes() == inside.creatures.tobytes()
    nowhere = world.read(10_000, 10_000, 8, 8)
    assert not nowhere.baked.any()
    assert nowhere.world.creatures.size == 0


def test_reading_needs_zarr_only(baked: Path) -> None:
    code = (
        "import sys, worldgen.bake as b; r = b.open_baked(sys.argv[1]).read(0, 0, 64, 64); "
        "assert r.complete; print(sorted({m.split('.')[0] for m in sys.modules} & {'dask', 'distributed'}))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, str(baked)], env=ENV, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def test_deployment_bake_from_the_cli_equals_generate(
    deployment: str, tmp_path: Path, reference: World
) -> None:
    out = tmp_path / "world.zarr"
    # A chunk that divides neither side, baked by the two workers of the deployment; a path relative
    # to the command's directory, which is not the workers'.
    done = run_cli("--seed", str(SEED), "--size", f"{WIDTH}x{HEIGHT}", "--chunk", "96", "--out", "world.zarr",
                   "--scheduler", deployment, cwd=tmp_path)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert f"baking 24 on 2 worker processes (2 threads) of {deployment}" in done.stderr
    last = done.stderr.splitlines()[-2]  # the bar's last line, before the summary
    assert re.fullmatch(r"24/24 blocks \[#+\] 100%  [\d.]+ [kM]?cells/s  0:00:00 left", last), last
    world = open_baked(out)
    assert world.chunk == 96
    assert_same_world(world.read(0, 0, WIDTH, HEIGHT).world, reference)


@pytest.mark.slow
def test_a_bake_killed_with_sigkill_finishes_on_the_next_run(client: Client, tmp_path: Path) -> None:
    out, size, chunk = tmp_path / "world.zarr", 384, 32
    args = ("--seed", str(SEED), "--size", f"{size}x{size}", "--chunk", str(chunk), "--out", str(out))
    blocks = (size // chunk) ** 2

    def markers() -> int:
        try:
            return int(zarr.open_array(out / "done", mode="r").nchunks_initialized)
        except (FileNotFoundError, KeyError, ValueError, zarr.errors.NodeNotFoundError):
            return 0

    proc = subprocess.Popen(
        [sys.executable, "-m", "worldgen", "bake", *args, "--workers", "1", "--quiet"],
        cwd=ROOT,
        env=ENV,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,  # the bake, its local cluster and its workers: one group to kill
    )
    try:
        assert wait_until(lambda: markers() >= 3 or proc.poll() is not None, timeout=90, interval=0.01)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
        assert wait_until(lambda: not session_alive(proc.pid), timeout=10, interval=0.05)
    assert proc.returncode == -signal.SIGKILL
    killed_at = markers()
    assert 3 <= killed_at < blocks, "the bake was not stopped half-way"
    # What is marked done is already right; the rest reads as not baked.
    half = open_baked(out).read(0, 0, size, size)
    want = generate(SEED, 0, 0, size, size)
    assert 0 < half.baked.mean() < 1
    assert np.array_equal(half.world.elevation[half.baked], want.elevation[half.baked])

    again = run_cli(*args, "--workers", "1")
    assert again.returncode == 0, again.stderr
    assert (
        f"{killed_at} already baked, baking {blocks - killed_at} on 1 worker process (1 thread) "
        in again.stderr
    )
    assert_same_world(open_baked(out).read(0, 0, size, size).world, want)
    # Identical, slot for slot, to a bake that was never stopped.
    whole = tmp_path / "whole.zarr"
    bake(whole, seed=SEED, width=size, height=size, chunk=chunk, scheduler=client)
    resumed, fresh = zarr.open_group(out, mode="r"), zarr.open_group(whole, mode="r")
    names = sorted(name for name, _ in fresh.arrays()) + [
        f"creatures/{n}" for n, _ in fresh["creatures"].arrays()
    ]
    assert len(names) == len(LAYERS) + 1 + 5  # layers, done; id, species, x, y, count
    for name in names:
        assert np.array_equal(resumed[name][...], fresh[name][...]), name


def test_a_half_written_block_is_never_read_as_baked(client: Client, tmp_path: Path) -> None:
    out = tmp_path / "world.zarr"
    bake(out, seed=SEED, width=256, height=256, chunk=128, scheduler=client)
    group = zarr.open_group(out, mode="r+")
    # Block (0, 1) as a kill could leave it: arrays (partly) written, marker not set.
    group["done"][0, 1] = 0
    group["elevation"][0:128, 128:256] = np.float32(0.25)
    group["creatures/count"][0, 1] = 3
    world = open_baked(out)
    assert not world.complete
    region = world.read(0, 0, 256, 256)
    assert not region.baked[0:128, 128:256].any()
    assert region.baked[128:, :].all() and region.baked[:, :128].all()
    assert not region.world.elevation[0:128, 128:256].any()
    want = generate(SEED, 0, 0, 256, 256)
    kept = ~((want.creatures["x"] >= 128) & (want.creatures["y"] < 128))
    assert region.world.creatures.tobytes() == want.creatures[kept].tobytes()

    result = bake(out, seed=SEED, width=256, height=256, chunk=128, scheduler=client)
    assert (result.already_baked, result.baked) == (3, 1)
    assert_same_world(open_baked(out).read(0, 0, 256, 256).world, want)


def test_a_store_killed_while_it_was_made_is_finished(client: Client, tmp_path: Path) -> None:
    out = tmp_path / "world.zarr"
    # A chunk bigger than the world: one block, cut by the world on both sides.
    bake(out, seed=SEED, width=100, height=60, chunk=128, scheduler=client)
    shutil.rmtree(out / "moisture")
    shutil.rmtree(out / "done")
    with pytest.raises(
        BakeError, match=f"^{out} is a bake stopped while it made its arrays: run the same bake"
    ):
        open_baked(out)
    result = bake(out, seed=SEED, width=100, height=60, chunk=128, scheduler=client)
    assert (result.blocks, result.already_baked, result.baked) == (1, 0, 1)
    assert_same_world(open_baked(out).read(0, 0, 100, 60).world, generate(SEED, 0, 0, 100, 60))


def test_different_arguments_are_refused_saying_what_differs(baked: Path) -> None:
    before = snapshot(baked)
    with pytest.raises(BakeError) as caught:
        bake(baked, seed=SEED + 1, width=WIDTH, height=HEIGHT + 1, chunk=64)
    message = str(caught.value)
    assert f"{baked} holds a bake with different arguments" in message
    assert f"seed {SEED} in the store, {SEED + 1} asked" in message
    assert f"size {WIDTH}x{HEIGHT} in the store, {WIDTH}x{HEIGHT + 1} asked" in message
    assert f"chunk {CHUNK} in the store, 64 asked" in message
    assert "fingerprint" not in message  # the generator is the same
    assert snapshot(baked) == before


def test_the_same_arguments_on_a_finished_store_bake_nothing(baked: Path) -> None:
    before = snapshot(baked)
    result = bake(baked, seed=SEED, width=WIDTH, height=HEIGHT, chunk=CHUNK)  # no cluster is started
    assert (result.already_baked, result.baked) == (12, 0)
    assert snapshot(baked) == before


def test_a_world_too_big_for_the_disk_is_refused_with_the_figure(tmp_path: Path) -> None:
    out = tmp_path / "world.zarr"
    side = 2_000_000_000
    with pytest.raises(BakeError) as caught:
        bake(out, seed=SEED, width=side, height=side)
    message = str(caught.value)
    figure = re.fullmatch(
        rf"a {side}x{side} world needs up to ([\d.]+) PiB on disk for its 3814697265625 blocks to bake "
        rf"\(([\d.]+) bytes per cell before compression\), but {tmp_path} has only [\d.]+ [KMGTP]?i?B free",
        message,
    )
    assert figure, message
    layer_bytes = sum(getattr(_PROBE, name).itemsize for name in LAYERS)  # 14 for five layers
    assert layer_bytes <= float(figure[2]) < layer_bytes + 2  # plus creatures and files
    assert float(figure[1]) == pytest.approx(side * side * float(figure[2]) / 2**50, rel=1e-2)
    assert not out.exists()


def test_an_unwritable_path_is_refused(tmp_path: Path) -> None:
    a_file = tmp_path / "file"
    a_file.write_text("not a directory")
    with pytest.raises(BakeError, match=f"^cannot write {a_file}/world.zarr: {a_file} is not a directory$"):
        bake(a_file / "world.zarr", seed=SEED, width=64, height=64)
    assert a_file.read_text() == "not a directory"
    # /sys refuses new directories even to root (and is read-only in many containers).
    out = Path("/sys/computethread-bake-test/world.zarr")
    with pytest.raises(BakeError, match=rf"^cannot write {out}: /sys is not writable \(.+\)$"):
        bake(out, seed=SEED, width=64, height=64)
    assert not out.parent.exists()


def test_a_store_that_is_not_a_baked_world_is_refused(tmp_path: Path) -> None:
    other = tmp_path / "other"
    other.mkdir()
    (other / "notes.txt").write_text("mine")
    plain = tmp_path / "plain.zarr"
    zarr.create_group(plain, attributes={"seed": 3})
    a_file = tmp_path / "file.zarr"
    a_file.write_text("x")
    cases = {
        other: "(a directory that is not empty and holds no zarr.json): "
        "bake into a new path or an empty directory",
        plain: "(its attributes have no format 'computethread-baked-world')",
        a_file: "(it is a file, not a directory)",
    }
    for path, why in cases.items():
        before = snapshot(path)
        with pytest.raises(BakeError) as caught:
            bake(path, seed=SEED, width=64, height=64)
        assert str(caught.value) == f"{path} is not a baked world {why}"
        assert snapshot(path) == before
    with pytest.raises(
        BakeError, match="^.*plain.zarr is not a baked world \\(its attributes have no format"
    ):
        open_baked(plain)
    with pytest.raises(BakeError, match=r"^\S+nowhere is not a baked world \(no Zarr store there: .*$"):
        open_baked(tmp_path / "nowhere")


@pytest.mark.parametrize(
    ("chunk", "error", "message"),
    [
        (0, ValueError, "chunk must be a positive int, got 0"),
        (-5, ValueError, "chunk must be a positive int, got -5"),
        (1.5, TypeError, "chunk must be an int, got float 1.5"),
        (9000, ValueError, f"chunk 9000 is too big: a 9000x9000 block needs about "
         f"{estimated_bytes(9000, 9000) / 2**20:.0f} MiB to generate, more than worldgen's limit "
         "of 2048 MiB"),
    ],
)  # fmt: skip
def test_a_bad_chunk_is_refused(tmp_path: Path, chunk: object, error: type[Exception], message: str) -> None:
    out = tmp_path / "world.zarr"
    with pytest.raises(error, match=f"^{re.escape(message)}$"):
        bake(out, seed=SEED, width=10_000, height=10_000, chunk=chunk)  # type: ignore[arg-type]
    assert not out.exists()


def test_workers_with_a_scheduler_are_refused(tmp_path: Path) -> None:
    message = "workers is the size of the local cluster: a scheduler brings its own workers"
    with pytest.raises(ValueError, match=f"^{message}$"):
        bake(tmp_path / "w.zarr", seed=1, width=8, height=8, workers=2, scheduler="tcp://127.0.0.1:1")
    assert not (tmp_path / "w.zarr").exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--chunk", "0"], "argument --chunk: must be a positive int, got 0"),
        (["--chunk", "big"], "argument --chunk: must be a positive int, got 'big'"),
        (["--size", "0x5"], "argument --size: size must be at least 1x1 cells, got '0x5'"),
        (["--size", "64"], "argument --size: size must be WIDTHxHEIGHT in cells, like 8192x8192, got '64'"),
        (["--workers", "0"], "argument --workers: must be a positive int, got 0"),
        (["--out", ""], "argument --out: must be a path to the store, got an empty string"),
    ],
)
def test_the_cli_refuses_bad_arguments(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    out = tmp_path / "world.zarr"
    base = {"--seed": "1", "--size": "64x64", "--out": str(out)}
    base.update(dict(zip(args[::2], args[1::2], strict=True)))
    with pytest.raises(SystemExit) as exited:
        main(["bake", *(x for kv in base.items() for x in kv)])
    assert exited.value.code == 2
    assert capsys.readouterr().err.splitlines()[-1] == f"python -m worldgen bake: error: {message}"
    assert not out.exists()


def test_the_cli_reports_a_refusal_as_an_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "notes.txt").write_text("mine")
    assert main(["bake", "--seed", "1", "--size", "64x64", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"python -m worldgen bake: error: {tmp_path} is not a baked world (")


def test_progress_counts_blocks_rate_and_time_left() -> None:
    now = [100.0]
    out = io.StringIO()
    bar = Progress(out, blocks=10, cells=1000, tty=False, clock=lambda: now[0])
    for _ in range(3):
        now[0] += 1.0
        bar.advance(100)
    assert bar.line() == "3/10 blocks [#######-----------------]  30%  100 cells/s  0:00:07 left"
    for _ in range(7):
        now[0] += 1.0
        bar.advance(100)
    lines = out.getvalue().splitlines()
    # Not a terminal: one line per tenth of the work, no carriage returns.
    assert len(lines) == 10
    assert "\r" not in out.getvalue()
    assert lines[-1] == "10/10 blocks [########################] 100%  100 cells/s  0:00:00 left"


def test_progress_on_a_terminal_redraws_one_line_at_most_ten_times_a_second() -> None:
    now = [0.0]
    out = io.StringIO()
    bar = Progress(out, blocks=1000, cells=1000 * 4096, tty=True, clock=lambda: now[0])
    for _ in range(1000):
        now[0] += 0.01  # a block every 10 ms
        bar.advance(4096)
    bar.close()
    text = out.getvalue()
    assert "\n" not in text[:-1]
    draws = text.count("\r")
    assert 90 <= draws <= 101  # 10 s of blocks: at most one draw each 0.1 s, and the last one
    assert text.rsplit("\r", 1)[1].startswith(
        "1000/1000 blocks [########################] 100%  410 kcells/s"
    )


def test_an_unreachable_scheduler_leaves_nothing_written(tmp_path: Path) -> None:
    # The store used to be created first, then the connection failed (a reviewer's 30 s wait).
    import dask

    out = tmp_path / "never.zarr"
    with (
        dask.config.set({"distributed.comm.timeouts.connect": "1s"}),
        pytest.raises(
            BakeError, match=r"^cannot reach the scheduler at tcp://127\.0\.0\.1:1: .+; nothing was"
        ),
    ):
        bake(out, seed=1, width=64, height=64, chunk=32, scheduler="tcp://127.0.0.1:1")
    assert not out.exists()


def test_a_scheduler_address_that_does_not_parse_is_a_bake_error(tmp_path: Path) -> None:
    out = tmp_path / "never.zarr"
    with pytest.raises(
        BakeError, match=r"^cannot reach the scheduler at nonsense://x: unknown address scheme"
    ):
        bake(out, seed=1, width=64, height=64, chunk=32, scheduler="nonsense://x")  # was a plain ValueError
    assert not out.exists()


# -- found by a bake user's review (each failed before its fix) -----------------------------------------


def test_a_scheduler_with_no_workers_is_refused_before_anything_is_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from distributed import LocalCluster

    import worldgen.bake

    monkeypatch.setattr(worldgen.bake, "WORKERS_TIMEOUT", 1.0)
    out = tmp_path / "world.zarr"
    with LocalCluster(n_workers=0, processes=False, dashboard_address=LOCAL_HTTP) as empty:
        address = empty.scheduler_address
        with pytest.raises(BakeError, match=rf"^the scheduler at {address} has no workers \(waited 1 s"):
            bake(out, seed=SEED, width=64, height=64, chunk=32, scheduler=address)  # did hang
    assert not out.exists()


def test_a_store_to_finish_that_cannot_be_written_is_refused_first(
    client: Client, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import worldgen.bake

    out = tmp_path / "world.zarr"
    bake(out, seed=SEED, width=256, height=128, chunk=128, scheduler=client)
    zarr.open_group(out, mode="r+")["done"][0, 1] = 0  # one block left to bake

    class ReadOnly:
        @staticmethod
        def TemporaryDirectory(**_: object) -> object:  # tempfile's name
            raise OSError(30, "Read-only file system")

    monkeypatch.setattr(worldgen.bake, "tempfile", ReadOnly)  # as on a disk remounted read-only
    before = snapshot(out)
    with pytest.raises(
        BakeError, match=rf"^cannot write {out}: {out} is not writable \(Read-only file system\)$"
    ):
        bake(out, seed=SEED, width=256, height=128, chunk=128, scheduler=client)  # did start, then fail
    assert snapshot(out) == before


def test_a_chunk_too_big_to_write_as_zarr_chunks_is_refused(tmp_path: Path) -> None:
    out = tmp_path / "world.zarr"
    with pytest.raises(ValueError, match=r"^chunk 100000 is too big: Zarr writes whole 100000x100000 chunks"):
        bake(out, seed=SEED, width=1024, height=1024, chunk=100_000)  # did run out of memory
    assert not out.exists()


def test_another_chunk_is_the_only_difference_named(baked: Path) -> None:
    with pytest.raises(BakeError) as caught:
        bake(baked, seed=SEED, width=WIDTH, height=HEIGHT, chunk=64)
    message = str(caught.value)
    assert f"chunk {CHUNK} in the store, 64 asked" in message
    assert "layers" not in message  # the creature capacity follows the chunk: not a difference of its own


def test_a_corrupt_chunk_in_a_block_not_done_is_never_read(client: Client, tmp_path: Path) -> None:
    out = tmp_path / "world.zarr"
    bake(out, seed=SEED, width=256, height=256, chunk=128, scheduler=client)
    zarr.open_group(out, mode="r+")["done"][0, 1] = 0
    for chunk_file in (out / "elevation/c/0/1", out / "creatures/count/c/0/1", out / "creatures/x/c/0/1"):
        assert chunk_file.is_file()
        chunk_file.write_bytes(b"half written")
    region = open_baked(out).read(0, 0, 256, 256)  # raised: error during blosc decompression
    assert not region.baked[0:128, 128:256].any() and region.baked[128:, :].all()
    want = generate(SEED, 0, 0, 256, 256)
    assert np.array_equal(region.world.elevation[128:], want.elevation[128:])
    kept = ~((want.creatures["x"] >= 128) & (want.creatures["y"] < 128))
    assert region.world.creatures.tobytes() == want.creatures[kept].tobytes()


def test_a_finished_store_on_a_read_only_disk_bakes_nothing_and_says_nothing_is_wrong(
    baked: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import worldgen.bake

    class ReadOnly:
        @staticmethod
        def TemporaryDirectory(**_: object) -> object:  # tempfile's name
            raise OSError(30, "Read-only file system")

    monkeypatch.setattr(worldgen.bake, "tempfile", ReadOnly)
    result = bake(baked, seed=SEED, width=WIDTH, height=HEIGHT, chunk=CHUNK)  # nothing to write
    assert (result.already_baked, result.baked) == (12, 0)
