"""The demo's screens in any window the CLI allows (and smaller, as a resized window can be): the overlays
never cover each other, text stays inside its panel, the failure screen fits and shows the error line.
And headless runs: their last picture depends neither on the frame the world arrived nor on frame times.

No VM here: worlds come from ``build_world_data`` in this process through a generator stand-in.
"""

from __future__ import annotations

import itertools
import random
import re
from collections.abc import Iterator
from typing import cast

import numpy as np
import pygame
import pytest
from vmtools import run_python

import worldgen
from game import camera, layout, palette
from game.app import App, Settings
from game.error_scene import ErrorScene
from game.generation import Finished, Outcome, Request
from game.hud import TOOLTIP_REACH, Hud, tooltip_plan
from game.loading_scene import LoadingScene
from game.stats import FrameStats, shown_summary, summarise
from game.ui import Text
from game.world_scene import WorldScene
from game.worlddata import WorldData, build_world_data

# The CLI's smallest window, the reviewer's small ones, common ones, odd ones.
WINDOWS = [(320, 200), (400, 240), (400, 300), (600, 230), (640, 360), (800, 600), (1280, 720), (1920, 1080)]
SENTINEL = (255, 0, 255)


class StepClock:
    def tick(self, framerate: float = 0, /) -> float:
        return 1000 / 60


class WorldAfter:
    """A generator stand-in: ``world`` arrives on poll number ``polls``; ``busy`` can be forced (R)."""

    def __init__(self, world: WorldData | None, polls: int = 1) -> None:
        self.world = world
        self.polls = polls
        self.request: Request | None = None
        self.progress = (0.8, "colouring terrain")
        self.last_seconds: float | None = None

    @property
    def busy(self) -> bool:
        return self.request is not None

    @property
    def current(self) -> Request | None:
        return self.request

    def start(self, request: Request) -> None:
        self.request = request

    def poll(self) -> Outcome | None:
        if self.request is None or self.world is None:
            return None
        self.polls -= 1
        if self.polls > 0:
            return None
        request, self.request = self.request, None
        self.last_seconds = 0.25
        return Finished(request, self.world, 0.25)

    def close(self) -> None:
        self.request = None


@pytest.fixture(scope="module")
def display() -> Iterator[None]:
    pygame.display.init()
    pygame.font.init()
    pygame.display.set_mode((64, 64))
    yield
    pygame.quit()


@pytest.fixture(scope="module")
def world() -> WorldData:
    return build_world_data(5, 0, 0, 256, 192)


def overlapping(rects: list[pygame.Rect]) -> list[tuple[pygame.Rect, pygame.Rect]]:
    return [(a, b) for a, b in itertools.combinations(rects, 2) if a.colliderect(b)]


def test_world_overlays_never_overlap_and_stay_on_screen() -> None:
    sizes = [*WINDOWS, *itertools.product(range(320, 2000, 97), range(200, 1300, 83))]
    for view, hud, legend, banner, note in itertools.product(
        sizes, (True, False), (13, 4, None), (True, False), (None, 420)
    ):
        plan = layout.world_overlays(
            view, hud=hud, world_size=(2048, 1024), legend_rows=legend, banner=banner, note_width=note
        )
        screen = pygame.Rect((0, 0), view)
        panels = plan.panels()
        assert overlapping(panels) == [], (view, hud, legend, banner, note)
        assert all(screen.contains(rect) for rect in panels), (view, panels)
        if plan.legend is not None:
            assert legend is not None and plan.legend_rows <= legend
            # All rows, or a part with one more row saying how many are left out.
            rows = plan.legend_rows + (plan.legend_rows < legend)
            assert plan.legend.height == layout.LEGEND_HEAD_H + layout.LEGEND_ROW_H * rows


def test_a_roomy_window_shows_every_overlay_at_full_size() -> None:
    plan = layout.world_overlays(
        (1280, 720), hud=True, world_size=(2048, 2048), legend_rows=13, banner=True, note_width=320
    )
    assert plan.hud == pygame.Rect(8, 8, 300, layout.HUD_FULL_H) and plan.hud_graph
    assert plan.minimap == pygame.Rect(1090, 10, 180, 180)
    assert plan.legend is not None and plan.legend_rows == 13
    assert plan.banner is not None and plan.banner.width == 360 and plan.banner.centerx == 640
    assert plan.note is not None
    # Small windows keep the map usable: a compact HUD, a smaller minimap, no banner (the strip shows it).
    small = layout.world_overlays(
        (400, 300), hud=True, world_size=(2048, 2048), legend_rows=13, banner=True, note_width=320
    )
    assert small.hud is not None and not small.hud_graph
    assert small.minimap is not None and small.minimap.width < 180
    assert small.banner is None


def test_world_scene_places_its_overlays_by_the_layout_at_every_size(display: None, world: WorldData) -> None:
    generator = WorldAfter(world)
    app = App(pygame.Surface((1280, 720)), StepClock(), random.Random(1), generator, Settings(5))
    app.step(3)
    scene = app.scene
    assert isinstance(scene, WorldScene)
    generator.world = None  # from now on a regeneration never ends: the banner (or the strip) shows it
    for view in [*WINDOWS, (64, 64), (100, 700), (1000, 90)]:  # the last three: a window dragged small
        app.screen = pygame.Surface(view)
        generator.start(Request(9, 256, 192))
        app.step(2)
        plan = scene.overlays
        assert overlapping(plan.panels()) == [], view
        assert scene.minimap.visible == (plan.minimap is not None)
        if plan.minimap is not None:
            assert scene.minimap.rect == plan.minimap
            assert scene.minimap.image.get_size() == plan.minimap.size
            # A click on the (moved, resized) minimap still jumps to the right place.
            assert scene.minimap.to_world(plan.minimap.center) == pytest.approx((128, 96), abs=4)
        generator.close()
    app.close()


def test_loading_screen_parts_never_overlap(display: None) -> None:
    app = App(pygame.Surface((640, 360)), StepClock(), random.Random(1), WorldAfter(None), Settings(7))
    scene = app.scene
    assert isinstance(scene, LoadingScene)
    for view, hud in itertools.product([*WINDOWS, (64, 64), (250, 900)], (True, False)):
        app.hud_visible = hud
        app.screen = pygame.Surface(view)
        app.step()
        plan = scene.layout(view)
        screen = pygame.Rect((0, 0), view)
        assert overlapping(plan.panels()) == [], (view, hud)
        assert all(screen.contains(rect) for rect in plan.panels()), (view, plan)
        if view[0] >= 320 and view[1] >= 200:
            assert "bar" in plan.parts and "progress" in plan.parts, view  # what VM 1 is doing, always
    # A roomy window shows every part, the parade included.
    app.hud_visible = True
    plan = scene.layout((1280, 720))
    assert set(plan.parts) == {"icon", "title", "seed", "spinner", "bar", "progress", "counter"}
    assert plan.parade is not None and plan.hud is not None
    app.close()


class StateGenerator:
    """VM 1 busy at its widest state line (a 10-digit seed, the longest stage name), or idle after a
    long job."""

    def __init__(self, busy: bool) -> None:
        self.busy = busy
        self.current = Request(1337671203, 4096, 4096) if busy else None
        self.progress = (0.8, "colouring terrain")
        self.last_seconds = None if busy else 1234.56


def outside(surface: pygame.Surface, rect: pygame.Rect) -> np.ndarray:
    pixels = pygame.surfarray.array3d(surface)
    mask = np.ones(pixels.shape[:2], dtype=bool)
    mask[rect.left : rect.right, rect.top : rect.bottom] = False
    return cast(np.ndarray, pixels[mask])


@pytest.mark.parametrize("generator_state", ["generating", "idle"])
def test_hud_text_stays_inside_its_panel(display: None, generator_state: str) -> None:
    text = Text()
    hud = Hud(text)
    stats = FrameStats()
    for _ in range(300):
        stats.add(16.7, 2.0, "world")
    generator = StateGenerator(busy=generator_state == "generating")
    surface = pygame.Surface((700, 300))
    surface.fill(SENTINEL)
    rect = hud.draw(surface, stats, generator, 2147483647, (100000, 100000))
    assert (outside(surface, rect) == SENTINEL).all()
    # Narrower panels (small windows) cut their lines instead of overflowing.
    for width in (layout.HUD_MIN_WIDTH, 200, 250):
        surface.fill(SENTINEL)
        narrow = pygame.Rect(8, 8, width, layout.HUD_COMPACT_H)
        hud.draw(surface, stats, generator, 2147483647, (100000, 100000), narrow)
        assert (outside(surface, narrow) == SENTINEL).all(), width


def test_fit_cuts_text_to_the_width_and_marks_the_cut(display: None) -> None:
    text = Text()
    line = "VM 1: generating seed 1337671203  80% colouring terrain"
    assert text.fit(line, 18, 1000) == line
    for width in (280, 150, 40):
        cut = text.fit(line, 18, width)
        assert cut.endswith("...") and line.startswith(cut[:-3])
        assert text.font(18).size(cut)[0] <= width
        assert text.font(18).size(text.fit(line, 18, width + 30))[0] > text.font(18).size(cut)[0]
    assert text.fit(line, 18, 3) == ""


def test_wrap_cuts_long_words_into_pieces_that_fit(display: None) -> None:
    text = Text()
    # Wide characters first: a cut guessed from the average character width would be too wide.
    for word in ("W" * 60 + "i" * 300, "/site-packages/" + "M" * 80 + "l" * 200):
        for width in (60, 133, 400):
            lines = text.wrap(f"  {word} tail", 14, width)
            assert "".join(lines).replace(" ", "") == f"{word}tail"  # nothing lost
            assert all(text.font(14).size(line)[0] <= width for line in lines), width


def test_thin_worlds_too_long_for_smoothscale_are_shrunk_safely() -> None:
    # pygame-ce's smoothscale aborts the whole process ("double free or corruption") shrinking a
    # 140,000 x 1 source to 1,000 x 1 (so: a process of its own), and shrinking 60,000 rows to 180 gives
    # a green of 3 for 200.
    script = (
        "import os; os.environ['SDL_VIDEODRIVER'] = 'dummy'\n"
        "import numpy as np, pygame\n"
        "from game import render\n"
        "for shape in ((1, 140_000), (300_000, 2), (60_000, 2)):\n"
        "    pixels = np.zeros((*shape, 4), np.uint8); pixels[..., 1] = 200\n"
        "    size = (1000, 1) if shape[0] == 1 else (2, 180)\n"
        "    out = render.smoothscale(render.surface_from_rgbx(pixels), pixels, size)\n"
        "    assert out.get_size() == size and out.get_at((0, 0))[1] >= 195, out.get_at((0, 0))\n"
        "print('shrunk')\n"
    )
    done = run_python(script, timeout=60)
    assert (done.returncode, done.stdout.strip()) == (0, "shrunk"), done.stderr[-2000:]


LONG_TRACEBACK = "\n".join(
    [
        "Traceback (most recent call last):",
        *('  File "<vm1 exec #1>", line 4, in deep\n    return deep(n + 1)' for _ in range(30)),
        "ValueError: the world is flat",
    ]
)


@pytest.mark.parametrize("view", [*WINDOWS, (200, 100), (64, 64)], ids=lambda v: f"{v[0]}x{v[1]}")
def test_error_screen_fits_any_window_and_shows_the_error_line(display: None, view: tuple[int, int]) -> None:
    app = App(pygame.Surface(view), StepClock(), random.Random(1), WorldAfter(None), Settings(7))
    app.switch(ErrorScene(app, LONG_TRACEBACK, Request(7, 256, 256)))
    app.step(2)  # draws: it used to raise "Invalid resolution for Surface" below 242 pixels of height
    scene = app.scene
    assert isinstance(scene, ErrorScene)
    plan = scene.layout(view)
    screen = pygame.Rect((0, 0), view)
    keys, _, hint = plan.hint
    assert keys.startswith("Enter") and screen.contains(hint)
    texts = [rect for *_, rect in plan.blocks]
    assert all(rect.bottom <= hint.top for rect in texts)
    if plan.box is not None:
        assert plan.box.bottom <= hint.top  # the key hint is never covered
        assert all(plan.box.top >= rect.bottom for rect in texts)
        assert plan.box.top + 10 + plan.trace_size * len(plan.trace) <= plan.box.bottom - 10  # in its box
        assert plan.trace[-1] == "ValueError: the world is flat"  # the end of the traceback is shown
        assert plan.trace[0] == "..."  # 60 lines never fit: the cut is marked
    if view[0] >= 320 and view[1] >= 200:
        assert keys.startswith("Enter: try again") and plan.box is not None and texts, view
        assert any(line == "ValueError: the world is flat" for line, *_ in plan.blocks)
    app.close()


TOO_BIG = (
    "Traceback (most recent call last):\n"
    '  File "/game/worlddata.py", line 101, in build_world_data\n'
    "ValueError: a 100000x100000 region would need about 309960 MiB, more than the memory limit of 2048 "
    "MiB (pass memory_limit= to raise it)"
)


@pytest.mark.parametrize("view", [(320, 200), (640, 360), (1280, 720)], ids=lambda v: f"{v[0]}x{v[1]}")
def test_error_screen_speaks_to_the_player_and_enter_offers_a_size_that_fits(
    display: None, view: tuple[int, int]
) -> None:
    generator = WorldAfter(None)
    app = App(pygame.Surface(view), StepClock(), random.Random(1), generator, Settings(7))
    app.switch(ErrorScene(app, TOO_BIG, Request(7, 100000, 100000)))
    generator.close()  # forget the loading scene's request
    app.step()
    scene = app.scene
    assert isinstance(scene, ErrorScene)
    plan = scene.layout(view)
    shown = [line for line, *_ in plan.blocks] + plan.trace + [plan.hint[0]]
    assert shown[0] == "This world is too big"
    # What a player reads: no keyword arguments to pass, no traceback; a size the game can make.
    assert not any("memory_limit" in line or "Traceback" in line for line in shown), shown
    assert plan.box is None
    offered = re.match(r"Enter: try (\d+)x(\d+)", plan.hint[0])
    assert offered is not None, plan.hint[0]
    side = int(offered.group(1))
    # A square world that fits worldgen's own memory bound, and not needlessly small.
    assert offered.group(2) == offered.group(1) and side % 256 == 0
    assert worldgen.estimated_bytes(side, side) <= worldgen.DEFAULT_MEMORY_LIMIT
    assert worldgen.estimated_bytes(side + 1024, side + 1024) > 0.9 * worldgen.DEFAULT_MEMORY_LIMIT
    assert "N:" not in plan.hint[0]  # another seed would be just as big
    app.post([pygame.event.Event(pygame.KEYDOWN, key=pygame.K_n)])
    app.step()
    assert app.scene is scene and generator.request is None
    app.post([pygame.event.Event(pygame.KEYDOWN, key=pygame.K_RETURN)])
    app.step()
    assert generator.request == Request(7, side, side)
    assert isinstance(app.scene, LoadingScene) and app.scene.request == Request(7, side, side)
    app.close()


def test_error_screen_after_a_bug_offers_the_same_world_or_another_seed(display: None) -> None:
    generator = WorldAfter(None)
    app = App(pygame.Surface((640, 360)), StepClock(), random.Random(1), generator, Settings(7))
    error = ErrorScene(app, LONG_TRACEBACK, Request(7, 256, 256))
    app.switch(error)
    app.step()
    plan = error.layout((640, 360))
    assert plan.hint[0] == "Enter: try again    N: another seed    Esc: quit"
    assert plan.box is not None and plan.trace[-1] == "ValueError: the world is flat"  # for a bug report
    app.post([pygame.event.Event(pygame.KEYDOWN, key=pygame.K_RETURN)])
    app.step()
    assert generator.request == Request(7, 256, 256)
    app.switch(error)
    app.post([pygame.event.Event(pygame.KEYDOWN, key=pygame.K_n)])
    app.step()
    assert generator.request is not None and generator.request.seed != 7
    assert generator.request.size == (256, 256)
    app.close()


class JitterClock:
    """A busy machine's frame times: anything from 5 to 40 ms, differently in each run."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)

    def tick(self, framerate: float = 0, /) -> float:
        return self.rng.uniform(5.0, 40.0)


def headless_picture(world: WorldData, arrives_after: int, clock_seed: int, lockstep: bool) -> np.ndarray:
    """What ``--headless --frames 40 --zoom 2.5`` ends on, HUD on, for a world arriving on a given poll."""
    settings = Settings(5, (256, 192), zoom=2.5, lockstep=lockstep)
    generator = WorldAfter(world, polls=arrives_after)
    app = App(pygame.Surface((640, 360)), JitterClock(clock_seed), random.Random(1), generator, settings)
    app.run_shown(40, wait_s=30.0)
    assert app.shown_frame == app.world_arrived_frame and app.frame_no == app.shown_frame + 40
    picture = pygame.surfarray.array3d(app.screen)
    app.close()
    return cast(np.ndarray, picture)


def test_headless_pictures_do_not_depend_on_arrival_or_frame_times(display: None, world: WorldData) -> None:
    first = headless_picture(world, arrives_after=2, clock_seed=1, lockstep=True)
    later = headless_picture(world, arrives_after=9, clock_seed=2, lockstep=True)
    assert np.array_equal(first, later)
    # Without lockstep the same two runs differ (creatures moved by wall time, measured FPS in the HUD):
    # the comparison above can see the difference lockstep removes.
    assert not np.array_equal(
        headless_picture(world, arrives_after=2, clock_seed=1, lockstep=False),
        headless_picture(world, arrives_after=9, clock_seed=2, lockstep=False),
    )


@pytest.mark.parametrize("view", [(400, 260), (320, 200), (160, 100)], ids=lambda v: f"{v[0]}x{v[1]}")
def test_tooltip_stays_in_the_window_off_the_overlays_and_goes_with_the_pointer(
    display: None, world: WorldData, view: tuple[int, int]
) -> None:
    settings = Settings(5, lockstep=True)  # the HUD shows the game clock: the same from frame to frame
    app = App(pygame.Surface(view), StepClock(), random.Random(1), WorldAfter(world), settings)
    app.step(3)
    scene = app.scene
    assert isinstance(scene, WorldScene)
    scene.camera.zoom_at(3.0, view[0] / 2, view[1] / 2)  # creatures drawn: some tooltips name one
    scene.creatures.update = lambda: None  # type: ignore[method-assign]  # still frames: only the tooltip changes
    screen = pygame.Rect((0, 0), view)

    def frame(*events: pygame.event.Event) -> np.ndarray:
        app.post(list(events))
        app.step()
        return cast(np.ndarray, pygame.surfarray.array3d(app.screen))

    def move(pos: tuple[int, int]) -> pygame.event.Event:
        return pygame.event.Event(pygame.MOUSEMOTION, pos=pos, rel=(0, 0), buttons=(0, 0, 0))

    bare = frame()
    shown: list[tuple[int, int]] = []
    step = max(7, view[0] // 16)
    for pos in itertools.product(range(0, view[0], step), range(0, view[1], step)):
        picture = frame(move(pos))
        panels = scene.overlays.panels()
        changed = (picture != bare).any(axis=2)
        # The overlays (the key help, the legend, the HUD, the minimap) look as they did without a tooltip.
        for panel in panels:
            assert not changed[panel.left : panel.right, panel.top : panel.bottom].any(), (pos, panel)
        on_panel = any(panel.collidepoint(pos) for panel in panels)
        if scene.tooltip is None:
            assert not changed.any(), pos
            continue
        assert not on_panel, pos  # over a panel, the panel is what the pointer points at
        rect, lines = scene.tooltip
        shown.append(pos)
        assert lines and screen.contains(rect), (pos, rect)
        assert rect.collidelist(panels) < 0, (pos, rect, panels)
        assert not rect.collidepoint(pos), (pos, rect)  # never under the pointer
        xs, ys = np.nonzero(changed)
        assert rect.collidepoint(int(xs.min()), int(ys.min())) and rect.collidepoint(
            int(xs.max()), int(ys.max())
        )
    # The tooltip shows for most of the map; small windows show fewer lines, never none at all.
    assert len(shown) >= 0.3 * len(range(0, view[0], step)) * len(range(0, view[1], step)), shown
    # The pointer leaves the window: the tooltip goes, and the picture is the bare one again.
    frame(move(shown[len(shown) // 2]))
    assert scene.tooltip is not None
    assert np.array_equal(frame(pygame.event.Event(pygame.WINDOWLEAVE)), bare)
    assert scene.tooltip is None
    app.close()


def test_tooltip_keeps_near_the_pointer_with_fewer_lines_rather_than_far_away(display: None) -> None:
    # 400x260: beside the pointer at (350, 190) the minimap, the zoom note and the legend leave room for one
    # line; four lines would only fit in the top right corner, 100 pixels away, where no one looks.
    plan = layout.world_overlays(
        (400, 260), hud=True, world_size=(512, 384), legend_rows=13, banner=False, note_width=170
    )
    lines = ["Desert", "Wolf #00aa11", "height 6/10", "x 479  y 280"]
    placed = tooltip_plan(Text(), lines, (400, 260), (350, 190), plan.panels())
    assert placed is not None
    rect, shown = placed
    assert shown == ["Desert"]
    gap = pygame.Vector2(max(rect.left - 350, 350 - rect.right, 0), max(rect.top - 190, 190 - rect.bottom, 0))
    assert gap.length() <= TOOLTIP_REACH and rect.collidelist(plan.panels()) < 0
    # With no room near the pointer at all, the tooltip goes where there is room.
    blocked = [*plan.panels(), pygame.Rect(220, 140, 180, 90)]  # everything within reach of the pointer
    far = tooltip_plan(Text(), lines, (400, 260), (350, 190), blocked)
    assert far is not None and far[0].collidelist(blocked) < 0


def test_creatures_do_not_show_through_the_translucent_panels(display: None, world: WorldData) -> None:
    view = (640, 360)
    settings = Settings(5, lockstep=True)  # the HUD shows the game clock: the same from frame to frame
    app = App(pygame.Surface(view), StepClock(), random.Random(1), WorldAfter(world), settings)
    app.step(3)
    scene = app.scene
    assert isinstance(scene, WorldScene)
    scene.camera.zoom_at(3.0, view[0] / 2, view[1] / 2)
    creatures = scene.creatures
    creatures.update = lambda: None  # type: ignore[method-assign]  # still frames
    app.step()
    plan = scene.overlays
    translucent = [rect for rect in (plan.hud, plan.legend, plan.strip) if rect is not None]
    assert len(translucent) == 3
    # Creatures in the middle of each panel and astride its top edge (half of that sprite shows above).
    spots = [p for rect in translucent for p in (rect.center, (rect.centerx + 40, rect.top + 4))]
    for i, spot in enumerate(spots):
        creatures.x[i], creatures.y[i] = scene.camera.screen_to_world(*spot)
    app.step()
    with_creatures = pygame.surfarray.array3d(app.screen)
    creatures.x[:] = creatures.y[:] = -1000.0  # off the world: none drawn
    app.step()
    without = pygame.surfarray.array3d(app.screen)
    changed = (with_creatures != without).any(axis=2)
    for rect in translucent:
        assert not changed[rect.left : rect.right, rect.top : rect.bottom].any(), rect
        above = changed[rect.centerx + 30 : rect.centerx + 50, rect.top - 6 : rect.top]
        assert above.any(), rect  # the creature astride the edge was drawn, down to the panel
    app.close()


def test_panning_keeps_a_finite_world_in_view(display: None, world: WorldData) -> None:
    # A player holds a pan key for 0.5 s at the fit zoom, then zoomed in, for 5 s: the world must stay on
    # screen (it used to slide until its edge reached the middle, half the window empty).
    view = (640, 360)
    app = App(pygame.Surface(view), StepClock(), random.Random(1), WorldAfter(world), Settings(5))
    app.step(3)
    scene = app.scene
    assert isinstance(scene, WorldScene)
    app.hud_visible = scene.show_legend = False

    def hold(key: int, frames: int) -> None:
        app.post([pygame.event.Event(pygame.KEYDOWN, key=key)])
        app.step(frames)
        app.post([pygame.event.Event(pygame.KEYUP, key=key)])
        app.step()

    def empty_share() -> float:
        # The share of the view's width and height where no world is drawn, along the middle row and
        # column (above the help strip, whose translucent panel changes the background's colour).
        pixels = pygame.surfarray.array3d(app.screen)
        row = pixels[:, view[1] // 2]
        column = pixels[view[0] // 2, : view[1] - layout.STRIP_H]
        background = np.array(palette.BACKGROUND)
        return max(
            float((line == background).all(axis=1).sum()) / size
            for line, size in zip((row, column), view, strict=True)
        )

    app.step()
    fitted = empty_share()
    assert fitted == pytest.approx(0.25, abs=0.01)  # 256x192 cells at 1.875 pixels each: bars at the sides
    for key in (pygame.K_d, pygame.K_a, pygame.K_s, pygame.K_w):
        hold(key, 30)
        assert (scene.camera.x, scene.camera.y) == (world.width / 2, world.height / 2)
        assert empty_share() == fitted  # the bars beside the world only: it did not move
    scene.camera.zoom_at(2.0, view[0] / 2, view[1] / 2)
    for key in (pygame.K_d, pygame.K_s, pygame.K_a, pygame.K_w):
        hold(key, 300)
        assert empty_share() <= camera.EDGE_SLACK + 0.01, key
    app.close()


@pytest.mark.parametrize("frames", [1, 7])
def test_headless_counts_agree_with_each_other_and_the_readme(
    display: None, world: WorldData, frames: int
) -> None:
    app = App(
        pygame.Surface((320, 200)), StepClock(), random.Random(1), WorldAfter(world, polls=3), Settings(5)
    )
    app.run_shown(frames, wait_s=30.0)
    counts = shown_summary(app.stats.times, app.shown_frame)
    app.close()
    assert app.world_arrived_frame == app.shown_frame and app.shown_frame is not None
    # frames: N; total_frames: the frames spent generating plus N; world_frame counts from 0.
    assert counts["frames"] == frames
    assert counts["total_frames"] == app.frame_no == app.world_arrived_frame + frames
    generating, after = cast(dict[str, int], counts["generating"]), cast(dict[str, int], counts["after"])
    assert after["frames"] == frames
    assert generating["frames"] == app.world_arrived_frame
    # No result within the timeout: every frame was spent generating.
    assert shown_summary([16.7] * 5, None) == {
        "frames": 0,
        "total_frames": 5,
        "generating": summarise([16.7] * 5),
        "after": summarise([]),
    }


@pytest.mark.parametrize(
    "view", [(320, 200), (400, 300), (640, 360), (1280, 720)], ids=lambda v: f"{v[0]}x{v[1]}"
)
def test_error_screen_key_hint_is_never_covered_by_the_traceback(
    display: None, view: tuple[int, int]
) -> None:
    # Read from the pixels alone: the rows of the key hint are where "B: back" changes the picture, and
    # there a 60-line traceback must draw exactly what a one-line error does.
    app = App(pygame.Surface(view), StepClock(), random.Random(1), WorldAfter(None), Settings(7))

    def picture(error: str, back: bool) -> np.ndarray:
        app.last_world = cast(WorldScene, object()) if back else None  # what "B: back" offers
        app.switch(ErrorScene(app, error, Request(7, 256, 256)))
        app.step()
        return cast(np.ndarray, pygame.surfarray.array3d(app.screen))

    short = "ValueError: the world is flat"
    hint_rows = np.flatnonzero((picture(short, False) != picture(short, True)).any(axis=(0, 2)))
    assert hint_rows.size > 0
    rows = slice(int(hint_rows.min()), int(hint_rows.max()) + 1)
    assert np.array_equal(picture(short, False)[:, rows], picture(LONG_TRACEBACK, False)[:, rows])
    app.close()


@pytest.mark.parametrize("zoom", [0.0, -1.0, float("nan"), float("inf"), 1e9])
def test_settings_refuse_a_zoom_the_camera_would_silently_replace(zoom: float) -> None:
    with pytest.raises(
        ValueError, match=r"^zoom must be above 0 and at most 32 screen pixels per cell, got "
    ):
        Settings(zoom=zoom)
    assert Settings(zoom=32.0).zoom == 32.0 and Settings(zoom=0.01).zoom == 0.01
