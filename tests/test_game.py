"""The demo, headless: the loop, the world arriving, the picture, input, regeneration, failure, quitting.

Apps here run with a clock that never sleeps and reports exactly one 60 FPS tick per frame, a fixed rng
and scripted events, so every picture is reproducible; VM 1 is real (``VMGenerator``).
"""

from __future__ import annotations

import gc
import json
import os
import random
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pygame
import pytest
from vmtools import undocumented_fields

import runtime
from game import palette
from game.app import App, Settings
from game.camera import Camera
from game.error_scene import ErrorScene
from game.generation import Finished, Request, VMGenerator
from game.loading_scene import LoadingScene
from game.sprites import Creatures
from game.world_scene import WorldScene
from game.worlddata import build_world_data

VIEW = (640, 360)
ROOT = Path(__file__).resolve().parent.parent


class StepClock:
    """Never sleeps; every tick is exactly one 60 FPS frame, so simulations are reproducible."""

    def tick(self, framerate: float = 0, /) -> float:
        return 1000 / 60


@pytest.fixture(scope="module")
def screen() -> Iterator[pygame.Surface]:
    pygame.display.init()
    pygame.font.init()
    yield pygame.display.set_mode(VIEW)
    pygame.quit()


MakeApp = Callable[..., App]


@pytest.fixture
def make_app(screen: pygame.Surface) -> Iterator[MakeApp]:
    apps: list[App] = []

    def make(seed: int = 11, size: tuple[int, int] = (256, 256), **generator_options: str) -> App:
        generator = VMGenerator(1, **generator_options)
        app = App(screen, StepClock(), random.Random(5), generator, Settings(seed, size))
        apps.append(app)
        return app

    yield make
    for app in apps:
        app.close()


def run_until(app: App, done: Callable[[], bool], timeout: float = 30.0) -> int:
    """Step frames until ``done()``; a short sleep per frame leaves the CPU to VM 1. Returns frames run."""
    deadline = time.monotonic() + timeout
    frames = 0
    while not done():
        assert time.monotonic() < deadline, "timed out"
        app.step()
        frames += 1
        time.sleep(0.002)
    return frames


def world_scene(app: App) -> WorldScene:
    assert isinstance(app.scene, WorldScene), type(app.scene).__name__
    return app.scene


def clean_picture(app: App, frames: int = 30) -> np.ndarray:
    """After the world arrived: hide the overlays, run ``frames`` frames, return the screen as (W, H, 3)."""
    run_until(app, lambda: app.in_world)
    app.hud_visible = False
    world_scene(app).show_legend = False
    app.step(frames)
    return pygame.surfarray.array3d(app.screen)


def test_loading_scene_animates_every_frame_then_the_world_arrives(make_app: MakeApp) -> None:
    app = make_app()
    assert isinstance(app.scene, LoadingScene)
    frames = run_until(app, lambda: app.in_world)
    assert frames >= 1
    assert app.world_arrived_frame is not None
    scene = world_scene(app)
    assert (scene.world.width, scene.world.height) == (256, 256)
    assert scene.world.seed == 11
    ticks = scene.creatures.tick_count
    for _ in range(10):
        app.step()  # one frame at a time: each runs exactly one fixed tick with this clock
    assert scene.creatures.tick_count == ticks + 10
    assert app.frame_no == app.world_arrived_frame + 11
    # Arrival is spread over two frames: receive and build the scene, then its first full draw.
    assert app.stats.phases.count("swap") == 2
    assert app.generator.last_seconds is not None


def bar_fill(app: App) -> tuple[int, int]:
    """How many pixels of the loading bar's middle row are filled, and how wide the bar is."""
    assert isinstance(app.scene, LoadingScene)
    bar = app.scene.layout(app.screen.get_size()).parts["bar"]
    row = pygame.surfarray.array3d(app.screen)[bar.left : bar.right, bar.centery]
    return int((row == np.array(palette.ACCENT)).all(axis=1).sum()), bar.width


def test_loading_bar_never_drops_back_when_the_world_arrives(make_app: MakeApp) -> None:
    app = make_app(size=(1024, 1024))
    app.hud_visible = False
    fills = []
    width = 0
    while not app.in_world:
        app.step()
        if isinstance(app.scene, LoadingScene):  # the frame that received the world drew the bar too
            filled, width = bar_fill(app)
            fills.append(filled)
        time.sleep(0.002)
    assert fills == sorted(fills), fills
    assert fills[-1] >= width - 4, (fills, width)  # full on the last loading frame


def test_generator_progress_reads_done_from_the_frame_the_world_arrives(make_app: MakeApp) -> None:
    app = make_app(size=(512, 512))  # its loading scene submitted the job; polled by hand here
    generator = app.generator
    outcome = None
    while outcome is None:
        outcome = generator.poll()
        time.sleep(0.002)
    assert isinstance(outcome, Finished)
    # The frame whose poll() returned the world still draws the loading bar from progress: full.
    assert generator.progress == (1.0, "done")
    generator.start(Request(12, 64, 64))  # the next job starts from the beginning
    assert generator.busy and generator.progress[0] == 0.0


@pytest.mark.parametrize("size", [(1, 64), (64, 1), (1, 1)], ids=["1x64", "64x1", "1x1"])
def test_one_cell_wide_worlds_play_and_regenerate(make_app: MakeApp, size: tuple[int, int]) -> None:
    app = make_app(size=size)
    run_until(app, lambda: app.in_world or isinstance(app.scene, ErrorScene))
    scene = world_scene(app)  # not the error scene ("Shape of array too small ... gradient")
    assert (scene.world.width, scene.world.height) == size
    app.step(2)
    app.post([pygame.event.Event(pygame.KEYDOWN, key=pygame.K_r)])  # R keeps the size
    run_until(app, lambda: scene.swaps == 1 or isinstance(app.scene, ErrorScene))
    assert app.scene is scene and (scene.world.width, scene.world.height) == size


def test_screenshot_shows_six_biome_colours_and_creature_sprites(make_app: MakeApp) -> None:
    app = make_app(
        seed=118, size=(256, 256)
    )  # a 256x256 corner with eight biomes (climate spans thousands of cells)
    run_until(app, lambda: app.in_world)
    scene = world_scene(app)
    scene.camera.zoom = 2.0
    scene.camera.centre_on(128, 128)
    picture = clean_picture(app)
    camera, world = scene.camera, scene.world
    # Sample the centre of every cell on screen, away from the minimap and the help strip.
    ys, xs = np.mgrid[0 : world.height, 0 : world.width]
    sx = ((xs + 0.5 - camera.x) * camera.zoom + VIEW[0] / 2).astype(int)
    sy = ((ys + 0.5 - camera.y) * camera.zoom + VIEW[1] / 2).astype(int)
    on = (sx >= 0) & (sx < VIEW[0]) & (sy >= 0) & (sy < VIEW[1] - 30)
    on &= ~((sx >= scene.minimap.rect.left - 4) & (sy <= scene.minimap.rect.bottom + 4))
    seen = picture[sx[on], sy[on]].astype(int)
    biomes = world.biome[ys[on], xs[on]]
    matched = set()
    for biome in np.unique(biomes):
        name = world.biome_names[biome]
        median = np.median(seen[biomes == biome], axis=0)
        expected = np.array(palette.biome_colour(name))
        if int(biome) in world.water_ids:
            matched.add(name)  # water is coloured by depth; it must at least be blue
            assert median[2] > median[0], name
        elif np.abs(median - expected).max() <= 40:  # hillshade moves a cell's colour, not a biome's median
            matched.add(name)
    assert len(matched) >= 6, matched
    # Creatures: drawn with their sprites, whose exact colours are on screen.
    assert scene.creatures.drawn > 0
    fish_orange = (picture == np.array([255, 138, 36])).all(axis=2).sum()
    outline = (picture == np.array([22, 18, 30])).all(axis=2).sum()
    assert outline > 20
    if "fish" in world.species_names:
        assert fish_orange > 0


def test_same_seed_same_picture_other_seed_other_picture(make_app: MakeApp) -> None:
    def picture(seed: int) -> np.ndarray:
        app = make_app(seed=seed)
        try:
            return clean_picture(app)
        finally:
            app.close()  # VM 1 is free for the next app

    first, again, other = picture(21), picture(21), picture(22)
    assert np.array_equal(first, again)
    assert not np.array_equal(first, other)


def test_keys_drag_wheel_and_minimap_move_the_camera(make_app: MakeApp) -> None:
    app = make_app(size=(512, 512))
    run_until(app, lambda: app.in_world)
    scene = world_scene(app)
    scene.camera.zoom = 4.0
    scene.camera.centre_on(256, 256)

    app.post([pygame.event.Event(pygame.KEYDOWN, key=pygame.K_d)])
    app.step(10)
    app.post([pygame.event.Event(pygame.KEYUP, key=pygame.K_d)])
    app.step()
    assert scene.camera.x > 256 + 10
    assert scene.camera.y == pytest.approx(256)

    x = scene.camera.x
    app.post(
        [
            pygame.event.Event(pygame.MOUSEMOTION, pos=(300, 200), rel=(0, 0), buttons=(0, 0, 0)),
            pygame.event.Event(pygame.MOUSEBUTTONDOWN, pos=(300, 200), button=1),
            pygame.event.Event(pygame.MOUSEMOTION, pos=(220, 200), rel=(-80, 0), buttons=(1, 0, 0)),
            pygame.event.Event(pygame.MOUSEBUTTONUP, pos=(220, 200), button=1),
        ]
    )
    app.step()
    assert scene.camera.x == pytest.approx(x + 80 / 4.0)

    # On the map, clear of the panels (over a panel, the panel is what the pointer points at: no tooltip).
    app.post([pygame.event.Event(pygame.MOUSEMOTION, pos=(400, 250), rel=(0, 0), buttons=(0, 0, 0))])
    app.step()
    anchor = scene.camera.screen_to_world(400, 250)
    app.post([pygame.event.Event(pygame.MOUSEWHEEL, x=0, y=2, precise_x=0.0, precise_y=2.0, flipped=False)])
    app.step()
    assert scene.camera.zoom == pytest.approx(4.0 * 1.25**2)
    assert scene.camera.screen_to_world(400, 250) == pytest.approx(anchor)
    lines = scene.hover_lines()
    assert lines is not None and scene.tooltip is not None
    assert any(line.startswith("height ") for line in lines)
    assert any(line.startswith("elevation ") for line in lines)

    mini = scene.minimap.rect
    app.post(
        [
            pygame.event.Event(pygame.MOUSEBUTTONDOWN, pos=mini.center, button=1),
            pygame.event.Event(pygame.MOUSEBUTTONUP, pos=mini.center, button=1),
        ]
    )
    app.step()
    assert scene.camera.x == pytest.approx(256, abs=4)
    assert scene.camera.y == pytest.approx(256, abs=4)


def test_regenerate_swaps_in_a_new_world_while_frames_keep_running(make_app: MakeApp) -> None:
    app = make_app(seed=31, size=(384, 384))
    run_until(app, lambda: app.in_world)
    scene = world_scene(app)
    app.post([pygame.event.Event(pygame.KEYDOWN, key=pygame.K_r)])
    app.step()
    first_new = app.generator.current
    assert app.generator.busy and first_new is not None
    # R again while generating: the first job is cancelled, the newest wins.
    app.post([pygame.event.Event(pygame.KEYDOWN, key=pygame.K_r)])
    app.step()
    newest = app.generator.current
    assert newest is not None and newest.seed != first_new.seed
    frames = run_until(app, lambda: scene.swaps == 1)
    assert frames >= 1  # the old world stayed on screen, frames ran, while VM 1 worked
    assert app.scene is scene
    assert scene.world.seed == newest.seed
    assert not app.generator.busy
    assert "generating" in app.stats.phases


@pytest.mark.parametrize(
    ("size", "job", "expected"),
    [
        ((0, 256), None, "ValueError"),
        ((256, 256), "lambda *args, **kwargs: 1 / 0", "ZeroDivisionError"),
        ((256, 256), "lambda *args, **kwargs: __import__('os')._exit(3)", "died"),
        ((256, 256), "lambda *args, **kwargs: 42", "returned int"),
    ],
    ids=["bad-size", "exception", "vm-dies", "not-a-world"],
)
def test_failed_generation_shows_the_error_scene(
    make_app: MakeApp, size: tuple[int, int], job: str | None, expected: str
) -> None:
    app = make_app(size=size, **({"job": job} if job else {}))
    run_until(app, lambda: isinstance(app.scene, ErrorScene))
    scene = app.scene
    assert isinstance(scene, ErrorScene)
    assert expected in scene.error
    app.step(3)  # the error scene draws and the loop keeps going
    assert app.running


def test_retry_after_a_failure_brings_the_world(make_app: MakeApp) -> None:
    setup = (
        "import game.worlddata\n"
        "calls = []\n"
        "def flaky(*args, **kwargs):\n"
        "    calls.append(1)\n"
        "    if len(calls) == 1:\n"
        "        raise RuntimeError('first try fails')\n"
        "    return game.worlddata.build_world_data(*args, **kwargs)\n"
    )
    app = make_app(job="flaky", setup=setup)
    run_until(app, lambda: isinstance(app.scene, ErrorScene))
    assert "first try fails" in app.scene.error  # type: ignore[attr-defined]
    app.post([pygame.event.Event(pygame.KEYDOWN, key=pygame.K_RETURN)])
    run_until(app, lambda: app.in_world)
    assert world_scene(app).world.seed == 11


def test_enter_after_a_world_too_big_brings_a_world_that_fits(make_app: MakeApp) -> None:
    # VM 1 on a machine with a 16 MiB limit: worldgen refuses 1024x1024 up front, as it refuses 100000x100000
    # at its default 2 GiB. Enter must not ask for the same impossible size again.
    setup = (
        "import worldgen, game.worlddata\n"
        "def small_machine(seed, x0, y0, width, height, **kwargs):\n"
        "    worldgen.generate(seed, x0, y0, width, height, memory_limit=16 << 20)  # refuses, or fits\n"
        "    return game.worlddata.build_world_data(seed, x0, y0, width, height, **kwargs)\n"
    )
    app = make_app(size=(1024, 1024), job="small_machine", setup=setup)
    run_until(app, lambda: isinstance(app.scene, ErrorScene))
    scene = app.scene
    assert isinstance(scene, ErrorScene) and "memory limit" in scene.error
    app.post([pygame.event.Event(pygame.KEYDOWN, key=pygame.K_RETURN)])
    run_until(app, lambda: app.in_world or (isinstance(app.scene, ErrorScene) and app.scene is not scene))
    world = world_scene(app).world  # not a second error screen
    assert (world.width, world.height) == scene.advice.retry.size  # what the screen offered
    assert world.width < 1024 and world.height < 1024


def _descendants(pid: int) -> set[int]:
    parents: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat", encoding="ascii", errors="replace") as stat:
                    fields = stat.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if fields[0] != "Z":  # a zombie has exited; it only waits to be reaped
                parents[int(entry)] = int(fields[1])
    found: set[int] = set()
    frontier = {pid}
    while frontier:
        frontier = {child for child, parent in parents.items() if parent in frontier} - found
        found |= frontier
    return found


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="needs /proc")
def test_quitting_stops_vm_1_and_leaves_no_process(make_app: MakeApp) -> None:
    app = make_app(size=(2048, 2048))  # big enough that VM 1 is still busy when we quit
    app.step(3)
    assert app.generator.busy
    gc.collect(1)  # as Python does every few thousand allocations: the loop freezes the survivors
    app.step()
    assert app.gc.frozen >= 1 and gc.get_freeze_count() > 0
    assert _descendants(os.getpid())
    app.post([pygame.event.Event(pygame.KEYDOWN, key=pygame.K_ESCAPE)])
    app.step()
    assert not app.running
    app.close()
    app.close()  # idempotent
    assert gc.get_freeze_count() == 0  # the collector has them all again
    runtime.shutdown()  # the template process too: the game's CLI does this on exit
    deadline = time.monotonic() + 2.0
    while _descendants(os.getpid()) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert _descendants(os.getpid()) == set()


def test_creatures_wander_but_never_leave_their_habitat(screen: pygame.Surface) -> None:
    world = build_world_data(8, 0, 0, 256, 256)
    creatures = Creatures(world)
    start_x, start_y = creatures.x.copy(), creatures.y.copy()

    def at_home() -> np.ndarray:
        cells = world.biome[creatures.y.astype(int), creatures.x.astype(int)]
        return creatures.allowed[creatures.species, cells]

    assert at_home().all()
    for _ in range(300):
        creatures.update()
        assert at_home().all()
    moved = np.hypot(creatures.x - start_x, creatures.y - start_y)
    assert (moved > 1.0).mean() > 0.5  # most of them went somewhere
    again = Creatures(world)
    for _ in range(300):
        again.update()
    assert np.array_equal(again.x, creatures.x) and np.array_equal(again.y, creatures.y)  # deterministic


def test_vm_1_side_does_not_import_pygame() -> None:
    code = "import sys, game.worlddata, game.generation; sys.exit('pygame' in sys.modules)"
    # game.generation imports runtime but not pygame either; only the scenes and the renderer do.
    assert subprocess.run([sys.executable, "-c", code], cwd=ROOT, timeout=60).returncode == 0


def test_camera_zoom_keeps_the_point_under_the_cursor() -> None:
    camera = Camera.fitting((1000, 800), (640, 360))
    assert camera.zoom == pytest.approx(360 / 800)
    camera.zoom_at(8.0, 320, 180)
    before = camera.screen_to_world(200, 100)
    camera.zoom_at(1.5, 200, 100)
    assert camera.screen_to_world(200, 100) == pytest.approx(before)
    camera.pan_pixels(-1e9, 0)
    # Clamped: the world's right edge may come a quarter of the view in, no further.
    assert camera.world_to_screen(1000, 0)[0] == pytest.approx(640 * 0.75)


@pytest.mark.slow
def test_headless_cli_prints_one_json_line_and_saves_the_screenshot(tmp_path: Path) -> None:
    shot = tmp_path / "shot.png"
    cmd = [sys.executable, "-m", "game", "--headless", "--frames", "90", "--seed", "3", "--size", "256x256"]
    done = subprocess.run(
        [*cmd, "--screenshot", str(shot)], capture_output=True, text=True, timeout=60, cwd=ROOT
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.strip().splitlines()
    assert len(lines) == 1
    summary = json.loads(lines[0])
    assert summary["frames"] == 90
    assert summary["seed"] == 3
    assert summary["world_frame"] is not None
    assert summary["error"] is None
    for phase in ("generating", "after"):
        assert {"p50_ms", "p99_ms", "max_ms", "over_20ms"} <= set(summary[phase])
    assert pygame.image.load(str(shot)).get_size() == (1280, 720)
    # --frames counts the frames that showed the world; the ones spent generating come first, and the
    # frame-time summaries count the same frames (the README's definitions).
    assert summary["total_frames"] == summary["world_frame"] + 90
    assert summary["after"]["frames"] == 90
    assert summary["generating"]["frames"] == summary["world_frame"]
    assert undocumented_fields(summary) == []  # every field of the line is explained in the README

    # A size VM 1 refuses (over worldgen's memory limit): the error, in the JSON line and on stderr.
    bad = subprocess.run([*cmd[:-1], "100000x100000"], capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert bad.returncode == 1
    assert "world generation failed" in bad.stderr
    assert "memory limit" in json.loads(bad.stdout)["error"]
