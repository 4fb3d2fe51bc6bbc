"""A baked world (#16) played: the pool's VMs read and colour its chunks from the Zarr store.

One small world is baked here, with Dask in this process (threads, no cluster processes to start).
"""

from __future__ import annotations

import argparse
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from vmtools import headless_summary

from game import cli
from game.chunkjob import CHUNK, OUTSIDE_PIXEL, build_baked_chunk, build_chunk

SEED = 5
SIZE = (3 * CHUNK + 64, 2 * CHUNK)  # the last column of chunks is half baked


@pytest.fixture(scope="module")
def baked(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    from distributed import Client

    from worldgen.bake import bake

    path = tmp_path_factory.mktemp("baked") / "world.zarr"
    with Client(processes=False, n_workers=1, threads_per_worker=2, dashboard_address=None) as client:
        bake(path, seed=SEED, width=SIZE[0], height=SIZE[1], chunk=CHUNK, scheduler=client)
    yield str(path)


def test_a_baked_chunk_is_the_generated_one_and_outside_the_bake_is_dark(baked: str) -> None:
    # Colouring reads each cell's neighbours: the cells next to the unbaked outside (row 0 here, whose
    # neighbours at y = -1 are not baked) are coloured as the edge of the baked world, the rest as generate's.
    inner = build_baked_chunk(baked, 0, 1, 0)
    made = build_chunk(SEED, 0, 1, 0)
    assert inner.seed == SEED
    assert np.array_equal(inner.image[1:], made.image[1:])
    assert np.array_equal(inner.creatures, made.creatures) and len(made.creatures) > 0
    edge = build_baked_chunk(baked, 0, 3, 0)  # cells 384..511: baked up to 447
    made = build_chunk(SEED, 0, 3, 0)
    assert np.array_equal(edge.image[1:, :63, :3], made.image[1:, :63, :3])
    assert (edge.image[:, 64:, :3] == np.array(OUTSIDE_PIXEL, dtype=np.uint8)).all()
    assert (edge.biome[:, 64:] == 255).all()  # no creature's habitat out there
    assert (edge.creatures["x"] < SIZE[0]).all()
    coarse = build_baked_chunk(baked, 1, 0, 0)  # samples every 2nd cell, the same as generate's
    made = build_chunk(SEED, 1, 0, 0)
    assert np.array_equal(coarse.image[1:, 1:], made.image[1:, 1:])


@pytest.fixture
def no_run(monkeypatch: pytest.MonkeyPatch) -> list[argparse.Namespace]:
    accepted: list[argparse.Namespace] = []

    def run(args: argparse.Namespace) -> dict[str, object]:
        accepted.append(args)
        return {"error": None, "world_frame": 1, "screenshot_error": None}

    monkeypatch.setattr(cli, "run", run)
    return accepted


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--world", "{missing}"], "--world: {missing} is not a baked world (no Zarr store there: "),
        (["--world", "{baked}", "--size", "64x64"], "--world plays a baked world, --size makes a finite one"),
        (["--world", "{baked}", "--seed", "3"], "--seed: a baked world (--world) has its own seed"),
    ],
)
def test_bad_world_options_are_refused_with_their_rule(
    capsys: pytest.CaptureFixture[str],
    no_run: list[argparse.Namespace],
    baked: str,
    tmp_path: Path,
    argv: list[str],
    message: str,
) -> None:
    paths = {"missing": str(tmp_path / "none.zarr"), "baked": baked}
    with pytest.raises(SystemExit) as stop:
        cli.main([arg.format(**paths) for arg in argv])
    assert stop.value.code == 2 and no_run == []
    assert message.format(**paths) in capsys.readouterr().err


def test_the_world_option_takes_the_stores_seed_and_starts_at_its_centre(
    no_run: list[argparse.Namespace], baked: str
) -> None:
    assert cli.main(["--world", baked]) == 0
    (args,) = no_run
    assert (args.seed, args.at, args.bounds) == (SEED, (SIZE[0] / 2, SIZE[1] / 2), (0, 0, *SIZE))


def test_a_headless_game_plays_the_baked_world(baked: str, tmp_path: Path) -> None:
    summary = headless_summary(
        "--frames",
        "120",
        "--world",
        baked,
        "--vms",
        "2",
        "--zoom",
        "1",
        "--window",
        "640x360",
        cwd=tmp_path,
    )
    assert (summary["mode"], summary["world"], summary["seed"]) == ("baked", baked, SEED)
    assert summary["at"] == [SIZE[0] // 2, SIZE[1] // 2]
    # Only chunks with baked cells are read: 4 x 2 of them cover the world, plus its coarser ones.
    assert 8 <= summary["chunks"] <= 8 + 4
    assert summary["first_full_frame"] is not None  # the whole view drawn: the dark outside needs no chunk


def test_a_chunk_that_fails_to_read_is_counted_and_named(baked: str, tmp_path: Path) -> None:
    # A store damaged after its bake (a chunk of a block marked done): the game draws the rest, and the
    # HUD line and the JSON say which error (a reviewer saw only a cut-off "fail..." and "error": null).
    import shutil

    damaged = tmp_path / "damaged.zarr"
    shutil.copytree(baked, damaged)
    (damaged / "elevation" / "c" / "0" / "0").write_bytes(b"not a blosc chunk")
    summary = headless_summary(
        "--frames", "90", "--world", str(damaged), "--vms", "1", "--zoom", "2", "--at", "64,64",
        "--window", "640x360",
        cwd=tmp_path,
    )  # fmt: skip
    assert summary["chunks_failed"] >= 1
    assert "blosc" in summary["chunk_error"].lower() or "decompress" in summary["chunk_error"].lower()
    assert summary["error"] is None  # the game itself carried on
