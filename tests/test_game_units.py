"""Unit tests of the demo's pure parts: palette, terrain colouring, frame clock, statistics."""

from __future__ import annotations

import gc
import os

import numpy as np
import pytest
from vmtools import run_python

import worldgen
from game import palette, terrain
from game.clock import FrameClock
from game.failure import advise, smaller_size
from game.frame_gc import FrameGC
from game.generation import Request
from game.stats import FrameStats, percentile, summarise
from game.worlddata import build_world_data
from worldgen._generate import estimated_bytes


def test_every_worldgen_biome_has_its_own_palette_colour() -> None:
    missing = [name for name in worldgen.BIOMES if name not in palette.BIOME_COLOURS]
    assert missing == []
    colours = [palette.biome_colour(name) for name in worldgen.BIOMES]
    assert len(set(colours)) == len(colours)
    lut = palette.biome_lut(worldgen.BIOMES)
    assert lut.shape == (256, 3) and lut.dtype == np.uint8
    assert tuple(lut[0]) == palette.biome_colour(worldgen.BIOMES[0])


def test_an_unknown_biome_gets_the_same_colour_in_every_process() -> None:
    # VM 1 colours the terrain and VM 0 the legend: both must agree on a name the table lacks. String
    # hashes are randomised per process, so only processes with different hash seeds can show a colour
    # made from hash(); several names make an accidental match of all of them impossible in practice.
    names = ["crystal_caves", "mushroom_forest", "ash_plain", "coral_reef", "salt_flat"]
    assert not any(name in palette.BIOME_COLOURS for name in names)
    script = f"from game import palette; print([palette.biome_colour(n) for n in {names!r}])"
    seen = []
    for hash_seed in ("1", "2", "3"):
        env = dict(os.environ, PYTHONHASHSEED=hash_seed)
        done = run_python(script, env=env, timeout=60)
        assert done.returncode == 0, done.stderr[-2000:]
        seen.append(done.stdout.strip())
    assert seen[0] == seen[1] == seen[2] == str([palette.biome_colour(n) for n in names])


def test_terrain_image_is_rgbx_shaded_and_deeper_water_is_darker() -> None:
    world = worldgen.generate(4, 0, 0, 256, 256)
    image = terrain.colour_terrain(
        world.biome, world.elevation, worldgen.BIOMES, worldgen.WATER_BIOMES, worldgen.SEA_LEVEL
    )
    assert image.shape == (256, 256, 4) and image.dtype == np.uint8
    assert (image[..., 3] == 255).all()
    water = np.isin(world.biome, list(worldgen.WATER_BIOMES))
    assert water.any() and (~water).any()
    depth = worldgen.SEA_LEVEL - world.elevation
    brightness = image[..., :3].astype(int).sum(axis=2)
    deep = water & (depth > np.quantile(depth[water], 0.8))
    shallow = water & (depth < np.quantile(depth[water], 0.2))
    assert brightness[deep].mean() < brightness[shallow].mean()
    levels = terrain.mip_levels(image, smallest=16)
    assert [level.shape[:2] for level in levels] == [(256, 256), (128, 128), (64, 64), (32, 32), (16, 16)]
    assert levels[1][0, 0].tolist() == ((image[:2, :2].astype(int).sum(axis=(0, 1)) + 2) // 4).tolist()


def test_hillshade_lights_slopes_facing_north_west() -> None:
    ramp_down_to_nw = np.tile(np.linspace(0.0, 0.1, 32, dtype=np.float32), (32, 1))  # rises to the east
    shade = terrain.hillshade(ramp_down_to_nw + ramp_down_to_nw.T)
    flat = terrain.hillshade(np.zeros((32, 32), dtype=np.float32))
    assert np.allclose(flat, 1.0)
    assert shade[16, 16] > 1.0  # faces the light
    assert terrain.hillshade(-(ramp_down_to_nw + ramp_down_to_nw.T))[16, 16] < 1.0


class FakeTime:
    def __init__(self) -> None:
        self.now = 100.0
        self.slept: list[float] = []

    def clock(self) -> float:
        self.now += 1e-6  # reading the clock takes a little time, so a spin ends
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds + 0.002  # every sleep oversleeps by 2 ms


def test_frame_clock_keeps_the_cadence_despite_oversleeping() -> None:
    fake = FakeTime()
    clock = FrameClock(now=fake.clock, sleep=fake.sleep)
    start = fake.now
    ticks = [clock.tick(60) for _ in range(120)]
    # 2 ms late on every sleep, yet 120 frames take 2 s: each wait is shortened by the last overshoot.
    assert fake.now - start == pytest.approx(2.0, abs=0.01)
    assert sum(ticks) == pytest.approx(2000, abs=10)
    fake.now += 1.0  # a long stall: the clock starts a fresh cadence instead of rushing frames out
    assert clock.tick(60) > 900
    assert clock.tick(60) == pytest.approx(1000 / 60, abs=2.5)
    assert clock.tick(0) < 1  # no cap: no wait


def test_the_frame_loop_freezes_what_survived_a_young_collection_and_gives_it_back_at_the_end() -> None:
    gc.collect()
    frame_gc = FrameGC()
    try:
        frame_gc.after_frame()
        assert frame_gc.frozen == 0 and gc.get_freeze_count() == 0  # no young collection since: nothing
        survivors = [[n] for n in range(5000)]  # tracked containers the game keeps (cached chunks, say)
        gc.collect(1)  # what Python runs every few thousand allocations: promotes them to the old generation
        frame_gc.after_frame()
        # Frozen: no full collection will walk them (one took 25 ms with a few thousand chunks cached).
        assert frame_gc.frozen == 1 and gc.get_freeze_count() >= len(survivors)
        frame_gc.after_frame()
        assert frame_gc.frozen == 1  # nothing collected since the last frame: nothing to do
    finally:
        frame_gc.close()
    assert gc.get_freeze_count() == 0  # the game is over: the collector has them again


def test_percentiles_and_summary() -> None:
    assert percentile([], 99) == 0.0
    assert percentile([5.0], 50) == 5.0
    assert percentile([1.0, 2.0, 3.0, 4.0], 50) == pytest.approx(2.5)
    values = [16.7] * 98 + [25.0, 40.0]
    summary = summarise(values)
    assert summary["frames"] == 100 and summary["over_20ms"] == 2 and summary["max_ms"] == 40.0
    stats = FrameStats(graph_size=3)
    for ms, phase in [(16.0, "idle"), (17.0, "generating"), (30.0, "swap"), (16.0, "world")]:
        stats.add(ms, 1.0, phase)
    assert list(stats.recent) == [17.0, 30.0, 16.0]
    assert stats.by_phase("swap", "world") == [30.0, 16.0]
    assert stats.fps() == pytest.approx(3000 / 63)


@pytest.mark.parametrize("shape", [(1, 64), (64, 1), (1, 1)])
def test_one_cell_wide_terrain_is_shaded_along_its_length(shape: tuple[int, int]) -> None:
    ramp = np.linspace(0.0, 0.5, shape[0] * shape[1], dtype=np.float32).reshape(shape)
    shade = terrain.hillshade(ramp)
    assert shade.shape == shape and shade.dtype == np.float32
    if max(shape) > 1:
        assert (shade > 1.0).all()  # rising away from the light on its one axis: lit, as in wide worlds
    assert np.allclose(terrain.hillshade(np.zeros(shape, dtype=np.float32)), 1.0)
    # The whole job VM 1 runs (it used to fail with numpy's "Shape of array too small" message).
    world = build_world_data(3, 0, 0, shape[1], shape[0])
    assert (world.height, world.width) == shape and world.levels[0].shape == (*shape, 4)


def too_big(width: int, height: int, limit_mib: int = 2048) -> str:
    """worldgen's own refusal of a ``width`` x ``height`` world, as VM 1 reports it (the traceback)."""
    try:
        worldgen.generate(1, 0, 0, width, height, memory_limit=limit_mib << 20)
    except ValueError as exc:
        return f"Traceback (most recent call last):\n  ...\nValueError: {exc}"
    raise AssertionError(f"{width}x{height} was not refused")


@pytest.mark.parametrize(
    ("size", "limit_mib"),
    [
        ((100000, 100000), 2048),
        ((9000, 9000), 2048),
        ((1, 10**8), 2048),
        ((10**8, 3), 2048),
        ((1024, 1024), 16),
    ],
    ids=["huge", "just-over", "one-cell-wide", "three-cells-high", "small-limit"],
)
def test_a_world_too_big_is_offered_at_a_size_that_fits(size: tuple[int, int], limit_mib: int) -> None:
    request = Request(7, *size)
    advice = advise(too_big(*size, limit_mib), request)
    assert advice.title == "This world is too big"
    offered = advice.retry
    assert offered.seed == 7 and offered.size != size
    assert offered.width <= size[0] and offered.height <= size[1]
    # worldgen's up-front check passes the offered size: Enter does not retry an impossible one. (The
    # estimate is what that check compares; generating a 7680x7680 world here would take too long.)
    assert estimated_bytes(offered.width, offered.height) <= limit_mib << 20
    assert estimated_bytes(offered.width, offered.height) > (limit_mib << 20) / 4  # not needlessly small
    assert advice.retry_label == f"try {offered.width}x{offered.height}"
    assert f"{offered.width}x{offered.height}" in advice.message
    assert "memory_limit" not in advice.message and not advice.details and not advice.new_seed


def test_other_failures_offer_the_same_world_again_or_another_seed() -> None:
    request = Request(7, 256, 256)
    died = advise("VM 1 died during the job: killed by SIGKILL", request)
    bug = advise("Traceback (most recent call last):\n  ...\nZeroDivisionError: division by zero", request)
    for advice in (died, bug):
        assert advice.retry == request and advice.retry_label == "try again"
        assert advice.new_seed and advice.details
    assert died.title != bug.title
    # Sizes never grow, and the same size is never offered twice.
    assert smaller_size(10, 10, needed=100.0, limit=99.0) == (5, 5)
