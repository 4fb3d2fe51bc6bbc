"""The frame loop on VM 0: handle events, a fixed-timestep update, draw, then ``Clock.tick``.

The app owns the window surface, the clock, the random generator (for new seeds), the world generator
(VM 1) or, for the endless world, the source of chunks (the VM pool), and the active scene; all are passed
in, so tests fix the rng and the clock and script the input. Once a frame, ``update`` polls the generator
(a non-blocking read) and hands any outcome to the scene. It is the scenes' host (``game.scene.Host``):
scenes ask it to ``go`` somewhere and :meth:`App.go` alone decides which scene comes next.
"""

from __future__ import annotations

import random
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Protocol

import pygame

from game.camera import MAX_ZOOM
from game.chunksource import ChunkSource
from game.endless_scene import EndlessScene
from game.error_scene import ErrorScene
from game.frame_gc import FrameGC
from game.generation import Failed, Finished, Generator, Outcome, Request
from game.hud import Hud
from game.loading_scene import LoadingScene
from game.scene import Back, Retry, Scene, Step
from game.stats import FrameStats
from game.streamer import ChunkStreamer
from game.ui import Text
from game.world_scene import WorldScene

TICK = 1 / 60  # seconds per fixed update
MAX_TICKS_PER_FRAME = 5  # after a long stall, catch up a little instead of spiralling


class ClockLike(Protocol):
    """What the loop needs from ``pygame.time.Clock``: ``tick(fps)`` waits and returns elapsed ms."""

    def tick(self, framerate: float = 0, /) -> float: ...


@dataclass
class Settings:
    """Options from the command line."""

    seed: int | None = None
    size: tuple[int, int] | None = (2048, 2048)
    """The finite world's size; None for the endless world (streamed in chunks)."""
    fps: int = 60
    zoom: float | None = None
    """Initial zoom (screen pixels per cell); None fits the whole world on screen."""
    lockstep: bool = False
    """Headless runs: every frame advances the game by exactly one tick whatever the wall clock says, and
    the HUD shows that game clock, so the same command draws the same pictures. Frame times are still
    measured for the statistics."""

    at: tuple[float, float] = (0.0, 0.0)
    """Endless world: where the view starts (world cells)."""
    fly: tuple[float, float] | None = None
    """Endless world: fly at this many cells per second (headless flights)."""
    cache_mb: float = 256.0
    """Endless world: the chunk cache's memory cap."""
    world: str | None = None
    """A baked world's path: its chunks are read from the store (``seed`` is the store's)."""
    bounds: tuple[int, int, int, int] | None = None
    """A baked world's cells ``(0, 0, width, height)``: chunks wholly outside are drawn dark, not read."""

    def __post_init__(self) -> None:
        # The camera would quietly turn 0, a negative or nan into the fit zoom and inf into the largest.
        if self.zoom is not None and not (0 < self.zoom <= MAX_ZOOM):
            raise ValueError(
                f"zoom must be above 0 and at most {MAX_ZOOM:g} screen pixels per cell, got {self.zoom!r}"
            )


class App:
    """The game: a scene stack of one, the generator, the HUD and the frame statistics."""

    def __init__(
        self,
        screen: pygame.Surface,
        clock: ClockLike,
        rng: random.Random,
        generator: Generator,
        settings: Settings,
        chunks: ChunkSource | None = None,
    ) -> None:
        self.screen = screen
        self.clock = clock
        self.rng = rng
        self.generator = generator
        self.settings = settings
        self.text = Text()
        self.hud = Hud(self.text)
        self.hud_visible = True
        self.stats = FrameStats()
        self.hud_stats = self.stats
        """What the HUD's FPS and graph show: the measured frames, or in lockstep the game clock."""
        if settings.lockstep:
            # The game clock: every frame is one tick, always; a full, flat graph from the first frame.
            self.hud_stats = FrameStats()
            for _ in range(self.hud_stats.graph_size):
                self.hud_stats.add(1000 / settings.fps, 0.0, "game clock")
        self.running = True
        self.frame_no = 0
        self.gc = FrameGC()
        """No full garbage collection in the middle of play (see ``game.frame_gc``)."""
        self.script: dict[int, list[pygame.event.Event]] = {}
        self.world_arrived_frame: int | None = None
        """The first frame that showed a world."""
        self.shown_frame: int | None = None
        """In :meth:`run_shown`: the first frame that showed the world or the error."""
        self._accumulator = 0.0
        self._elapsed_ms = 0.0
        self._last_frame_end = time.perf_counter()
        self._swapped = False
        self._last_work_ms = 0.0
        self._dt_ms = 0.0
        self._next_scene: Scene | None = None
        self._last_phase = "idle"
        self.last_world: WorldScene | None = None
        self.streamer: ChunkStreamer | None = None
        seed = settings.seed if settings.seed is not None else self.new_seed()
        self.scene: Scene
        if settings.size is None:
            if chunks is None:
                raise ValueError("the endless world (Settings.size None) needs a chunk source")
            self.first_request = Request(seed, 0, 0)
            self.streamer = ChunkStreamer(
                chunks, seed, int(settings.cache_mb * 2**20), world=settings.world, bounds=settings.bounds
            )
            self.scene = EndlessScene(self, self.streamer, settings.at, settings.zoom, settings.fly)
            self.world_arrived_frame = 0
        else:
            self.first_request = Request(seed, *settings.size)
            self.scene = LoadingScene(self, self.first_request)
        self.scene.enter()

    def new_seed(self) -> int:
        """A fresh seed from the app's rng."""
        return self.rng.randrange(1, 2**31)

    def now_ms(self) -> float:
        """Milliseconds of game time: the sum of the clock's ticks (in lockstep, one tick per frame), so a
        fixed clock gives fixed pictures."""
        return self._elapsed_ms

    def draw_hud(self, screen: pygame.Surface, rect: pygame.Rect, seed: int, size: tuple[int, int]) -> None:
        """The HUD in ``rect`` (the scene's layout places it) for the world ``seed`` of ``size``."""
        self.hud.draw(
            screen, self.hud_stats, self.generator, seed, size, rect, game_clock=self.settings.lockstep
        )

    @property
    def has_last_world(self) -> bool:
        return self.last_world is not None

    def go(self, step: Step) -> None:
        """The one place that chooses the next scene, for a generation outcome or a scene's request."""
        if isinstance(step, Finished):
            if isinstance(self.scene, WorldScene):
                self.scene.set_world(step.world)  # R's new world replaces the shown one in place
            else:
                # Build the world scene now, show it next frame: the arrival's work is split over two
                # frames (receive + build here, the first full world draw there), keeping both short.
                self.switch_next_frame(WorldScene(self, step.world))
        elif isinstance(step, Failed):
            self.switch(ErrorScene(self, step.error, step.request))
        elif isinstance(step, Retry):
            self.generator.start(step.request)
            self.switch(self.last_world or LoadingScene(self, step.request))
        elif isinstance(step, Back) and self.last_world is not None:
            self.switch(self.last_world)

    def switch(self, scene: Scene) -> None:
        """Make ``scene`` the active one."""
        self.scene.leave()
        self.scene = scene
        if isinstance(scene, WorldScene):
            self.last_world = scene
        scene.enter()

    def switch_next_frame(self, scene: Scene) -> None:
        """Make ``scene`` the active one at the start of the next frame's update."""
        self._next_scene = scene

    def quit(self) -> None:
        """End the loop after this frame."""
        self.running = False

    def post(self, events: Iterable[pygame.event.Event], frame: int | None = None) -> None:
        """Script input: ``events`` are handled on ``frame`` (default: the next one) as if typed."""
        self.script.setdefault(self.frame_no if frame is None else frame, []).extend(events)

    # --- the three calls of a frame -----------------------------------------------------------------

    def handle_events(self) -> None:
        """Window and scripted events: quit and HUD toggles here, everything else to the scene."""
        for event in [*pygame.event.get(), *self.script.pop(self.frame_no, [])]:
            if event.type == pygame.QUIT or (event.type == pygame.KEYDOWN and event.key == pygame.K_ESCAPE):
                self.quit()
                return
            if event.type == pygame.KEYDOWN and event.key in (pygame.K_h, pygame.K_F1):
                self.hud_visible = not self.hud_visible
                continue
            self.scene.handle_event(event)

    def update(self, dt_ms: float) -> None:
        """Poll VM 1 once, then run as many fixed ticks as the elapsed ``dt_ms`` calls for."""
        if self._next_scene is not None:
            scene, self._next_scene = self._next_scene, None
            self.switch(scene)
            # The first frame of a new world (its first full draw) counts as part of the swap.
            self._swapped = isinstance(scene, WorldScene)
            if self._swapped and self.world_arrived_frame is None:
                self.world_arrived_frame = self.frame_no
        outcome: Outcome | None = self.generator.poll()
        if outcome is not None:
            self._swapped = self._swapped or isinstance(outcome, Finished)
            self.scene.on_generation(outcome)
            self.go(outcome)
        if self.settings.lockstep:
            dt_ms = TICK * 1000  # the wall clock's jitter must not change how far the game moves
        self._accumulator = min(self._accumulator + dt_ms / 1000, MAX_TICKS_PER_FRAME * TICK)
        # The epsilon lets a clock that reports exactly 1000/60 ms run exactly one tick per frame.
        while self._accumulator >= TICK - 1e-9:
            self.scene.update(TICK)
            self._accumulator -= TICK

    def draw(self) -> None:
        """Draw the scene and show it."""
        self.scene.draw(self.screen)
        pygame.display.flip()

    # -----------------------------------------------------------------------------------------------

    def frame(self, dt_ms: float) -> None:
        """One frame of the loop (without the wait), given the time since the previous frame."""
        generating = self.generator.busy
        self._swapped = False
        started = time.perf_counter()
        self.handle_events()
        if self.running:
            self.update(dt_ms)
            self.draw()
        work_ms = (time.perf_counter() - started) * 1000
        self.frame_no += 1
        # Stats: the interval a player sees is from this frame's end to the next one's, see run().
        self._last_work_ms = work_ms
        self._last_phase = (
            "swap" if self._swapped else "generating" if generating else "world" if self.in_world else "idle"
        )

    @property
    def in_world(self) -> bool:
        """True when a world is on screen."""
        return isinstance(self.scene, WorldScene | EndlessScene)

    def run(self, max_frames: int | None = None) -> FrameStats:
        """Loop until quit (or ``max_frames``), capped at ``settings.fps``; returns the frame times."""
        while self.running and (max_frames is None or self.frame_no < max_frames):
            self.frame(self._dt_ms)
            self.gc.after_frame()
            # The time this frame took, wait included, is what the next frame's update simulates.
            self._dt_ms = float(self.clock.tick(self.settings.fps))
            self._elapsed_ms += TICK * 1000 if self.settings.lockstep else self._dt_ms
            now = time.perf_counter()
            self.stats.add((now - self._last_frame_end) * 1000, self._last_work_ms, self._last_phase)
            self._last_frame_end = now
        return self.stats

    def run_shown(self, frames: int, wait_s: float) -> FrameStats:
        """Run until the loading scene is gone (the world or the error is on screen), then until
        ``frames`` frames have shown it, counting the first; give up waiting after ``wait_s`` seconds.

        This is what ``--headless --frames N`` runs: the last picture does not depend on how many frames
        generation took, so with ``Settings.lockstep`` the same command saves the same picture.
        """
        deadline = time.perf_counter() + wait_s
        while self.running and isinstance(self.scene, LoadingScene) and time.perf_counter() < deadline:
            self.step()
        if self.running and not isinstance(self.scene, LoadingScene):
            # The frame that just ran drew it for the first time (the endless world: the first frame).
            self.shown_frame = max(0, self.frame_no - 1)
            self.run(self.shown_frame + frames)
        return self.stats

    def step(self, frames: int = 1) -> None:
        """Run ``frames`` frames (tests use this with a clock that does not sleep)."""
        self.run(self.frame_no + frames)

    def close(self) -> None:
        """Leave the scene, stop VM 1 (or the pool) and unfreeze the garbage. Safe to call twice."""
        self.running = False
        self.scene.leave()
        self.generator.close()
        if self.streamer is not None:
            self.streamer.close()
        self.gc.close()
