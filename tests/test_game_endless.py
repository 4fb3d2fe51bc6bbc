"""The endless world: chunks streamed by the VM pool, seamless, cached, prioritised; creatures; flights.

The pool is real (``PoolSource`` over VMs); the in-process ``InlineSource`` (the same chunk job, called
in this process) stands in where a test is about the streamer's bookkeeping rather than the VMs.
"""

from __future__ import annotations

import gc
import random
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import numpy as np
import pygame
import pytest
from vmtools import headless_summary, mapped_segments, undocumented_fields

from game import layout
from game.app import App, Settings
from game.chunkjob import CHUNK, ChunkKey, build_chunk, colour_region, max_level, span
from game.chunksource import Arrival, InlineSource, NewPriority, PoolSource, SourceStats
from game.endless_camera import EndlessCamera
from game.endless_creatures import EndlessCreatures
from game.endless_scene import EndlessScene
from game.generation import NoGenerator
from game.streamer import ChunkStreamer, Tile
from game.ui import ELLIPSIS


class StepClock:
    def tick(self, framerate: float = 0, /) -> float:
        return 1000 / 60


@pytest.fixture(scope="module")
def screen() -> Iterator[pygame.Surface]:
    pygame.display.init()
    pygame.font.init()
    yield pygame.display.set_mode((3 * CHUNK, 3 * CHUNK))
    pygame.quit()


def stream_until_drawn(streamer: ChunkStreamer, camera: EndlessCamera, target: pygame.Surface) -> int:
    """Update and draw until no visible chunk is missing (30 s at most); the frames it took."""
    deadline = time.monotonic() + 30
    frames = 0
    while True:
        streamer.update(camera, (0.0, 0.0))
        streamer.draw(target, camera)
        frames += 1
        if streamer.placeholders == 0:
            return frames
        assert time.monotonic() < deadline, "the visible chunks did not arrive within 30 s"
        time.sleep(0.002)


# Fine chunks around the origin (negative chunk indices included), and two coarser levels of detail.
LEVELS = [(0, -1, -1), (1, 5, -2), (3, -2, 0)]


@pytest.mark.parametrize(("level", "left", "top"), LEVELS)
def test_a_streamed_3x3_block_is_pixel_identical_to_the_area_made_in_one_piece(
    screen: pygame.Surface, level: int, left: int, top: int
) -> None:
    seed = 31337
    size = span(level)
    camera = EndlessCamera(screen.get_size(), (left + 1.5) * size, (top + 1.5) * size, zoom=1 / (1 << level))
    assert camera.level == level and camera.origin() == (left * CHUNK, top * CHUNK)
    streamer = ChunkStreamer(PoolSource(2), seed, 64 << 20)
    try:
        stream_until_drawn(streamer, camera, screen)
        assert sorted(streamer.visible) == sorted(
            (level, i, j) for i in range(left, left + 3) for j in range(top, top + 3)
        )
        streamed = pygame.surfarray.array3d(screen).transpose(1, 0, 2)
    finally:
        streamer.close()
    whole, _ = colour_region(seed, left * size, top * size, 3 * CHUNK, 3 * CHUNK, 1 << level)
    assert np.array_equal(streamed, whole[..., :3])


def test_a_chunk_is_the_same_whichever_process_makes_it() -> None:
    here = build_chunk(5, 0, 3, -7)
    source = PoolSource(1)
    try:
        source.request(5, (0, 3, -7), 1.0)
        deadline = time.monotonic() + 30
        arrivals: list[Arrival] = []
        while not arrivals:
            arrivals = source.take(10.0)
            assert time.monotonic() < deadline
            time.sleep(0.005)
    finally:
        source.close()
    there = arrivals[0].chunk
    assert there is not None and there.key == (0, 3, -7)
    assert np.array_equal(there.image, here.image) and np.array_equal(there.biome, here.biome)
    assert np.array_equal(there.creatures, here.creatures) and len(here.creatures) > 0


class RecordingSource:
    """Queues requests without running them, so the test sees what the streamer asked for and dropped."""

    def __init__(self) -> None:
        self.queued: dict[ChunkKey, float] = {}
        self.order: list[ChunkKey] = []
        self.dropped: list[ChunkKey] = []

    def request(self, seed: int, key: ChunkKey, priority: float) -> None:
        self.queued[key] = priority
        self.order.append(key)

    def reprioritize(self, new_priority: NewPriority) -> None:
        for key in list(self.queued):
            priority = new_priority(key)
            if priority is None:
                del self.queued[key]
                self.dropped.append(key)
            else:
                self.queued[key] = priority

    def take(self, budget_ms: float) -> list[Arrival]:
        return []

    def stats(self) -> SourceStats:
        return SourceStats(len(self.queued), 0, 0, ())

    def close(self) -> None:
        pass


def test_visible_chunks_come_first_nearest_the_centre_then_the_ring_ahead_of_the_motion() -> None:
    source = RecordingSource()
    streamer = ChunkStreamer(source, 1, 64 << 20)
    camera = EndlessCamera((1280, 720), 0.0, 0.0, zoom=2.0)  # 640x360 cells: 5x3 chunks and parts
    streamer.update(camera, (1200.0, 0.0))  # flying right
    visible = set(streamer.visible)
    fine = source.order
    assert all(key[0] == 0 for key in fine)  # in flight, no coarse stand-ins: they slowed the fine ones
    first = fine[: len(visible)]
    assert set(first) == visible  # every visible chunk is asked for before any other fine one
    assert first[0] in {(0, -1, -1), (0, 0, -1), (0, -1, 0), (0, 0, 0)}  # the four around the centre
    centre = np.array([0.0, 0.0])
    distances = [float(np.hypot(*(np.array(k[1:]) + 0.5 - centre))) for k in first]
    assert distances == sorted(distances)
    ring = [key for key in fine if key not in visible]
    ahead = [key for key in ring if key[1] > 3]
    behind = [key for key in ring if key[1] < -3]
    assert len(ahead) >= 3 * len(behind) > 0  # the ring reaches further ahead than behind
    assert source.queued[ring[0]] > max(source.queued[key] for key in behind)


def test_after_a_jump_coarse_chunks_come_first_until_most_of_the_view_is_there() -> None:
    from dataclasses import replace

    from game.streamer import STAND_IN_UP, Tile

    source = RecordingSource()
    streamer = ChunkStreamer(source, 1, 64 << 20)
    camera = EndlessCamera((1280, 720), 0.0, 0.0, zoom=2.0)
    streamer.update(camera, (0.0, 0.0))
    # The whole view is missing: first the chunks two levels coarser over it (one for sixteen), then the
    # fine ones.
    coarse = [key for key in source.order if key[0] > 0]
    assert coarse and all(key[0] == STAND_IN_UP == 2 for key in coarse)
    assert source.order[: len(coarse)] == coarse
    assert {(2, i >> 2, j >> 2) for _, i, j in streamer.visible} == set(coarse)
    data = build_chunk(1, 0, 0, 0)
    for key in streamer.visible[: len(streamer.visible) * 2 // 3]:  # two thirds of the view arrive
        streamer.cache[key] = Tile(replace(data, key=key), pygame.Surface((CHUNK, CHUNK)))
    streamer.update(camera, (0.0, 0.0))
    assert not [key for key in source.queued if key[0] > 0]  # the coarse requests were dropped
    assert {key for key in source.dropped if key[0] == 2}


def test_queued_chunks_that_left_the_view_are_dropped_every_frame() -> None:
    source = RecordingSource()
    streamer = ChunkStreamer(source, 1, 64 << 20)
    camera = EndlessCamera((640, 360), 0.0, 0.0, zoom=1.0)
    streamer.update(camera, (0.0, 0.0))
    old = set(source.queued)
    camera.centre_on(10**9, -(10**9))  # far away
    streamer.update(camera, (0.0, 0.0))
    assert set(source.dropped) == old  # every stale request was cancelled, in one frame
    assert set(source.queued) == set(streamer.wanted)  # and the new view's chunks are queued instead
    assert not old & streamer.requested


def test_the_pool_drops_stale_chunks_after_a_jump_and_fills_the_new_view(screen: pygame.Surface) -> None:
    streamer = ChunkStreamer(PoolSource(1), 8, 64 << 20)
    camera = EndlessCamera(screen.get_size(), 0.0, 0.0, zoom=1.0)
    try:
        streamer.update(camera, (0.0, 0.0))
        before = set(streamer.requested)
        camera.centre_on(-(2**30), 2**30)
        stream_until_drawn(streamer, camera, screen)
        stale = [key for key in streamer.cache if key in before]
        # At most the jobs already sent to the VM ran; the queued rest was cancelled, never generated.
        assert len(stale) <= 4 and streamer.generated < len(before) + len(streamer.wanted)
        assert all(key in streamer.cache for key in streamer.visible)
    finally:
        streamer.close()


def test_the_cache_holds_no_vm_segment_so_each_chunk_arrives_in_a_segment_vm0_has_mapped(
    screen: pygame.Surface,
) -> None:
    # The cache keeps copies of a chunk's small arrays, not views of the segment it came in: the segment
    # goes back to its VM, which sends the next chunk in it, into VM 0's mapping of it. Kept views would
    # hold one segment (and one mapping) per cached chunk, and every chunk would cost a new mapping.
    streamer = ChunkStreamer(PoolSource(1), 5, 64 << 20)
    camera = EndlessCamera(screen.get_size(), 1.5 * CHUNK, 1.5 * CHUNK, zoom=1.0)
    try:
        before = mapped_segments()
        for step in range(6):
            camera.centre_on((1.5 + 3 * step) * CHUNK, 1.5 * CHUNK)
            stream_until_drawn(streamer, camera, screen)
        assert len(streamer.cache) >= 40 and streamer.generated >= 40
        gc.collect()
        # The chunks in flight and not yet released; never one per cached chunk.
        assert mapped_segments() - before <= 6
        tile = next(iter(streamer.cache.values()))
        assert tile.data.biome.base is None and tile.data.creatures.base is None  # copies of their own
    finally:
        streamer.close()


def test_the_cache_keeps_its_cap_dropping_the_least_recently_seen_and_a_chunk_comes_back_identical(
    screen: pygame.Surface,
) -> None:
    tile_bytes = 2 * CHUNK * CHUNK * 4  # about one chunk's Surface and arrays
    streamer = ChunkStreamer(InlineSource(), 77, 30 * tile_bytes)
    camera = EndlessCamera(screen.get_size(), 1.5 * CHUNK, 1.5 * CHUNK, zoom=1.0)
    try:
        stream_until_drawn(streamer, camera, screen)
        first = {key: pygame.surfarray.array3d(streamer.cache[key].surface) for key in streamer.visible}
        evicted: list[ChunkKey] = []
        streamer.on_evict = lambda key, tile: evicted.append(key)
        for step in range(1, 8):  # fly away, chunk by chunk
            camera.centre_on((1.5 + 3 * step) * CHUNK, 1.5 * CHUNK)
            stream_until_drawn(streamer, camera, screen)
            assert streamer.cached_bytes <= streamer.cache_bytes
        assert set(first) <= set(evicted)  # the first view went first: it was seen least recently
        assert streamer.peak_bytes <= streamer.cache_bytes + tile_bytes
        camera.centre_on(1.5 * CHUNK, 1.5 * CHUNK)  # and back
        stream_until_drawn(streamer, camera, screen)
        for key, pixels in first.items():
            assert np.array_equal(pygame.surfarray.array3d(streamer.cache[key].surface), pixels)
    finally:
        streamer.close()


def test_a_cache_smaller_than_the_view_never_drops_a_visible_or_wanted_chunk(screen: pygame.Surface) -> None:
    # --cache-mb 1 used to evict chunks on screen and in the ring ahead: the view flickered to slate.
    streamer = ChunkStreamer(InlineSource(), 77, 1)
    camera = EndlessCamera(screen.get_size(), 1.5 * CHUNK, 1.5 * CHUNK, zoom=1.0)
    try:
        evicted: list[ChunkKey] = []
        streamer.on_evict = lambda key, tile: evicted.append(key)
        for step in range(4):
            camera.centre_on((1.5 + step) * CHUNK, 1.5 * CHUNK)
            stream_until_drawn(streamer, camera, screen)
            assert all(key in streamer.cache for key in streamer.visible)
            assert not set(evicted) & (set(streamer.visible) | streamer.wanted.keys())
    finally:
        streamer.close()


def test_creatures_wander_across_chunk_borders_and_are_the_same_when_a_chunk_comes_back() -> None:
    pygame.display.init()
    creatures = EndlessCreatures(2024)
    chunks = {(i, j): build_chunk(2024, 0, i, j) for i in range(-2, 2) for j in range(-2, 2)}
    for data in chunks.values():
        creatures.chunk_arrived(data)
    creatures.area = (-2.0 * CHUNK, -2.0 * CHUNK, 2.0 * CHUNK, 2.0 * CHUNK)
    creatures.update()  # they join at the first tick
    ids = creatures.ids.copy()
    home = np.stack([np.floor(creatures.x / CHUNK), np.floor(creatures.y / CHUNK)], axis=1)
    assert creatures.count == sum(len(data.creatures) for data in chunks.values()) > 0
    for _ in range(1800):  # 30 seconds
        creatures.update()
    now = np.stack([np.floor(creatures.x / CHUNK), np.floor(creatures.y / CHUNK)], axis=1)
    assert np.array_equal(creatures.ids, ids)
    crossed = (now != home).any(axis=1)
    assert crossed.any()  # some walked into a neighbouring chunk
    # Every creature stands on its habitat in a loaded chunk.
    biome = creatures.biome_at(creatures.x, creatures.y)
    assert (biome >= 0).all() and creatures.allowed[creatures.species, biome].all()

    # A chunk leaves: the creatures standing in it go with it, and come back as they were.
    key = (int(now[crossed][0][0]), int(now[crossed][0][1]))
    inside = (now[:, 0] == key[0]) & (now[:, 1] == key[1])
    state = {i: (x, y) for i, x, y in zip(ids[inside], creatures.x[inside], creatures.y[inside], strict=True)}
    creatures.chunk_left((0, *key))
    assert not set(state) & set(creatures.ids.tolist())
    creatures.chunk_arrived(chunks[key])
    creatures.area = (0.0, 0.0, 0.0, 0.0)  # a tick that moves nobody: they join, as they were
    creatures.update()
    back = {i: (x, y) for i, x, y in zip(creatures.ids, creatures.x, creatures.y, strict=True) if i in state}
    assert back == state
    assert sorted(creatures.ids.tolist()) == sorted(ids.tolist())  # nobody doubled, nobody lost


def endless_app(screen: pygame.Surface, **settings: object) -> App:
    options: dict[str, object] = {"seed": 9, "size": None, "lockstep": True, "zoom": 1.0}
    options.update(settings)
    return App(screen, StepClock(), random.Random(3), NoGenerator(), Settings(**options), InlineSource())  # type: ignore[arg-type]


def test_the_jump_key_and_at_go_far_and_the_hud_says_where(screen: pygame.Surface) -> None:
    app = endless_app(screen, at=(2**31 - 10, -(2**31)))
    try:
        scene = app.scene
        assert isinstance(scene, EndlessScene)
        app.step()
        assert (round(scene.camera.x), round(scene.camera.y)) == (2**31 - 10, -(2**31) + 1)
        assert f"x {2**31 - 10}  y {-(2**31) + 1}" in scene.hud_lines()
        # Past the world's edge nothing is asked for; the visible part inside is.
        assert scene.streamer.visible and all(abs(k[1] * CHUNK) < 2**31 for k in scene.streamer.visible)
        app.post([pygame.event.Event(pygame.KEYDOWN, key=pygame.K_j, mod=0, unicode="j")])
        app.step()
        assert scene.jumps == 1
        assert abs(scene.camera.x - (2**31 - 10)) + abs(scene.camera.y + 2**31) > 2**20
        assert f"x {int(np.floor(scene.camera.x))}" in " ".join(scene.hud_lines())
    finally:
        app.close()


def test_in_a_small_window_the_hud_wraps_between_fields_instead_of_cutting_them(
    screen: pygame.Surface,
) -> None:
    small = pygame.Surface((400, 260))
    app = endless_app(small, at=(-2_000_000_000, 1_500_000_000))
    try:
        scene = app.scene
        assert isinstance(scene, EndlessScene)
        app.step(3)
        hud = scene._hud_layout(small)
        assert hud is not None
        rect, rows = hud
        texts = [text for text, _ in rows]
        text = app.text
        assert all(text.font(18).size(row)[0] <= rect.width - 20 for row in texts)
        assert not any(row.endswith(ELLIPSIS) for row in texts), texts  # nothing cut
        # Every field of every line is there, in order (the latency used to be cut off at this size).
        assert "  ".join(texts).split("  ") == "  ".join(scene.hud_lines()).split("  ")
        assert any(row.startswith("latency") for row in texts) and len(rows) > 4
        assert rect.bottom <= 260 - layout.STRIP_H  # and the panel still fits above the help strip
    finally:
        app.close()


def test_shift_flies_faster(screen: pygame.Surface) -> None:
    app = endless_app(screen)
    try:
        scene = app.scene
        assert isinstance(scene, EndlessScene)
        app.post([pygame.event.Event(pygame.KEYDOWN, key=pygame.K_d, mod=0, unicode="d")])
        app.step(30)
        slow = scene.camera.x
        app.post([pygame.event.Event(pygame.KEYDOWN, key=pygame.K_LSHIFT, mod=0, unicode="")])
        app.step(30)
        assert scene.camera.x - slow == pytest.approx(8 * slow, rel=0.05)
    finally:
        app.close()


def test_a_headless_flight_prints_the_streaming_figures(tmp_path: Path) -> None:
    summary = headless_summary(
        "--frames",
        "90",
        "--seed",
        "4",
        "--vms",
        "2",
        "--fly",
        "1200,-300",
        "--window",
        "640x360",
        cwd=tmp_path,
    )
    assert summary["mode"] == "endless" and summary["frames"] == 90 and summary["size"] is None
    assert summary["chunks"] >= 4  # at least the first view's (how many more depends on the machine)
    assert summary["at"] == [1800, -450]  # 1.5 s at 1200,-300 cells/s
    latency = summary["chunk_latency_frames"]
    assert 0 <= latency["p50"] <= latency["p95"] <= latency["max"]
    assert 0 < summary["placeholder_frames"] <= 90  # the first frame shows no chunk yet
    assert set(summary["vm_busy"]) == {"VM 1", "VM 2"} and all(
        0 <= v <= 1 for v in summary["vm_busy"].values()
    )
    assert sum(summary["vm_busy"].values()) > 0
    assert 0 < summary["cache_mib_peak"] <= 256
    assert undocumented_fields(summary) == []  # every field of the line is explained in the README


def test_zoomed_out_a_wide_view_costs_about_as_many_chunk_jobs_as_a_close_one() -> None:
    assert max_level() >= 4
    counts = {}
    for cells in (640, 5000, 20000):
        camera = EndlessCamera((1280, 720), 12345.0, -6789.0, zoom=1280 / cells)
        streamer = ChunkStreamer(RecordingSource(), 1, 1 << 20)
        streamer.update(camera, (0.0, 0.0))
        left, _, right, _ = camera.visible()
        assert right - left == pytest.approx(cells, rel=0.35)
        if camera.zoom < 1:  # zoomed out: 128 to 255 pixels a chunk, each sample 1 to 2 pixels wide
            assert camera.level > 0 and CHUNK <= camera.chunk_pixels < 2 * CHUNK
        counts[cells] = len(streamer.visible)
    assert counts[640] == min(counts.values())
    assert max(counts.values()) <= 4 * counts[640]  # not the 61x (or 977x) more cells
    zoomed_in = EndlessCamera((1280, 720), zoom=8.0)
    assert zoomed_in.level == 0 and zoomed_in.chunk_pixels == 8 * CHUNK


class FlakySource(InlineSource):
    """Every chunk's first job fails (as when a VM dies during it); the next one works."""

    def __init__(self) -> None:
        super().__init__()
        self.failed_once: set[ChunkKey] = set()

    def take(self, budget_ms: float) -> list[Arrival]:
        item = self.queue.pop()
        if item is None:
            return []
        seed, key = item
        if key not in self.failed_once:
            self.failed_once.add(key)
            return [Arrival(key, None, "RuntimeError: VM 1 died during the job: killed by SIGKILL")]
        return [Arrival(key, build_chunk(seed, *key))]


def test_a_chunk_whose_job_failed_shows_a_placeholder_and_is_asked_for_again(screen: pygame.Surface) -> None:
    streamer = ChunkStreamer(FlakySource(), 3, 64 << 20)
    camera = EndlessCamera(screen.get_size(), 1.5 * CHUNK, 1.5 * CHUNK, zoom=1.0)
    try:
        for _ in range(30):
            streamer.update(camera, (0.0, 0.0))
            streamer.draw(screen, camera)
        assert streamer.placeholders == 9 and set(streamer.visible) <= set(streamer.failed)
        assert not streamer.cache
        frames = stream_until_drawn(streamer, camera, screen)
        assert 60 < frames < 200  # not at once (a failing job is not hammered), but it comes
        assert not set(streamer.visible) & set(streamer.failed)
        assert all(key in streamer.cache for key in streamer.visible)
    finally:
        streamer.close()


def test_a_queued_chunk_never_gets_back_a_priority_it_had() -> None:
    # The pool's queue (#13's first cut) can fail with TypeError when a job goes back to a priority it had
    # (its dead heap entry ties with the live one); hovering and turning left and right would do that.
    source = RecordingSource()
    streamer = ChunkStreamer(source, 12, 64 << 20)
    camera = EndlessCamera((1280, 720), 0.0, 0.0, zoom=0.5)
    seen: dict[ChunkKey, set[float]] = {}
    for frame in range(20):
        streamer.update(camera, (100.0 * (-1) ** frame, 0.0))
        for key, priority in source.queued.items():
            assert priority not in seen.setdefault(key, set())
            seen[key].add(priority)


def test_a_missing_chunk_is_a_calm_placeholder_or_its_coarser_chunk_cut_to_size(
    screen: pygame.Surface,
) -> None:
    from dataclasses import replace

    from game.streamer import PLACEHOLDER, Tile

    streamer = ChunkStreamer(RecordingSource(), 5, 64 << 20)  # nothing ever arrives
    camera = EndlessCamera(screen.get_size(), 1.5 * CHUNK, 1.5 * CHUNK, zoom=1.0)
    pictures = []
    for _ in range(3):
        streamer.update(camera, (0.0, 0.0))
        streamer.draw(screen, camera)
        pictures.append(pygame.surfarray.array3d(screen))
    assert streamer.placeholders == 9 and streamer.placeholder_frames == 3
    assert all(np.array_equal(pictures[0], p) for p in pictures)  # the same every frame: no flicker
    assert (pictures[0] == np.array(PLACEHOLDER, dtype=np.uint8)).all()  # one flat colour
    # A coarser chunk of the same place in the cache stands in, cut and scaled to the missing one.
    coarse = pygame.Surface((CHUNK, CHUNK))
    half = CHUNK // 2
    for n, colour in enumerate([(200, 0, 0), (0, 200, 0), (0, 0, 200), (200, 200, 0)]):
        coarse.fill(colour, ((n % 2) * half, (n // 2) * half, half, half))
    data = replace(build_chunk(5, 0, 0, 0), key=(1, 0, 0))
    streamer.cache[(1, 0, 0)] = Tile(data, coarse)
    streamer.update(camera, (0.0, 0.0))
    streamer.draw(screen, camera)
    assert tuple(screen.get_at((CHUNK // 2, CHUNK // 2)))[:3] == (200, 0, 0)  # chunk (0, 0): top-left quarter
    assert tuple(screen.get_at((CHUNK + 5, CHUNK + 5)))[:3] == (200, 200, 0)  # chunk (1, 1): bottom-right
    assert tuple(screen.get_at((2 * CHUNK + 5, 5)))[:3] == PLACEHOLDER  # chunk (2, 0): no parent cached


@pytest.mark.parametrize("zoom", [3, 6])  # a chunk 384 pixels wide (scaled whole) and 768 (only its part)
def test_zoomed_in_chunks_meet_exactly_and_show_their_cells_as_squares(
    screen: pygame.Surface, zoom: int
) -> None:
    seed = 99
    # The view's corner is at cell (120, -7): it crosses the chunk borders at x = 128 and y = 0.
    camera = EndlessCamera(screen.get_size(), 120 + 192 / zoom, -7 + 192 / zoom, zoom=float(zoom))
    assert camera.origin() == (120 * zoom, -7 * zoom) and camera.chunk_pixels == CHUNK * zoom
    streamer = ChunkStreamer(InlineSource(), seed, 64 << 20)
    try:
        stream_until_drawn(streamer, camera, screen)
        assert len(streamer.visible) == 4
        streamed = pygame.surfarray.array3d(screen).transpose(1, 0, 2)
    finally:
        streamer.close()
    cells = 384 // zoom
    whole, _ = colour_region(seed, 120, -7, cells, cells)
    expected = np.repeat(np.repeat(whole[..., :3], zoom, axis=0), zoom, axis=1)
    assert np.array_equal(streamed, expected)


@pytest.mark.parametrize(
    ("step", "x0", "y0", "more"),
    [(4, 1_499_998_976, -900_000_000, 1.5), (16, 1_500_000_000 - 1024, -900_000_000 - 1024, 3.0)],
)
def test_coarse_chunks_draw_rivers_as_lines_not_dots(step: int, x0: int, y0: int, more: float) -> None:
    import worldgen
    from game.terrain import RIVER_MARK

    image, world = colour_region(7, x0, y0, CHUNK, CHUNK, step)
    inner = (slice(1, 1 + CHUNK), slice(1, 1 + CHUNK))  # the halo cropped, as colour_region does
    biome, river = world.biome[inner], world.river[inner]
    land = ~np.isin(biome, sorted(worldgen.WATER_BIOMES))
    drawn = image[..., 3] == RIVER_MARK
    # A land sample is drawn as river exactly where a river bank lies within half a step of it.
    assert np.array_equal(drawn & land, (river < step / 2) & land)
    on_river = biome == worldgen.BIOMES.index("river")
    assert drawn[on_river].all()
    # The samples that fall on a river cell are scattered dots; the drawn rivers are several times more.
    assert drawn.sum() > more * on_river.sum() > 0


def test_a_headless_run_whose_screen_never_filled_has_no_flight_latency(tmp_path: Path) -> None:
    # One frame: no chunk has come yet, so no frame was full and there was no flight to time.
    summary = headless_summary("--frames", "1", "--seed", "4", "--vms", "1", cwd=tmp_path)
    assert summary["first_full_frame"] is None
    assert summary["flight_latency_frames"] is None


class SilentSource:
    """A chunk source whose chunks never arrive: every visible chunk stays a placeholder."""

    def request(self, seed: int, key: object, priority: float) -> None:
        pass

    def reprioritize(self, new_priority: object) -> None:
        pass

    def take(self, budget_ms: float) -> list[object]:
        return []

    def stats(self) -> object:
        from game.chunksource import SourceStats

        return SourceStats(0, 0, 0, ())

    def close(self) -> None:
        pass


def test_zoomed_in_a_coarser_stand_in_is_scaled_only_where_it_is_on_screen(
    screen: pygame.Surface, monkeypatch: pytest.MonkeyPatch
) -> None:
    """At zoom 32 a chunk is 4,096 pixels wide. A fine chunk already scales only its part on screen,
    but a missing chunk's coarser stand-in is scaled whole, to 4,096 x 4,096 (64 MiB), on every frame
    the chunk is missing: `python -m game --headless --frames 120 --seed 42 --vms 2 --zoom 32` (with or
    without --fly) had a 78-156 ms frame in each of 8 runs; max_ms was 56 at zoom 24, 28 at 16, and
    under 20 at 12 and below."""
    sizes: list[tuple[int, int]] = []
    scale = pygame.transform.scale

    def recording_scale(surface: pygame.Surface, size: tuple[int, int]) -> pygame.Surface:
        sizes.append((int(size[0]), int(size[1])))
        return scale(surface, size)

    monkeypatch.setattr(pygame.transform, "scale", recording_scale)
    camera = EndlessCamera(screen.get_size(), 6.0, 6.0, zoom=32.0)  # cells 0..12 of chunk (0, 0)
    assert camera.level == 0 and camera.chunk_pixels == 32 * CHUNK and camera.origin() == (0, 0)
    # Level 1's chunk (0, 0) samples every 2nd cell: its top-left quarter is the fine chunk (0, 0).
    # Each sample gets its own colour, so the test also sees which part was cut and where it went.
    coarse = pygame.Surface((CHUNK, CHUNK))
    pixels = np.zeros((CHUNK, CHUNK, 3), np.uint8)
    pixels[..., 0] = (np.arange(CHUNK)[:, None] * 37) % 256  # by sample column (surfarray is [x, y])
    pixels[..., 1] = (np.arange(CHUNK)[None, :] * 53) % 256  # by sample row
    pixels[..., 2] = 7
    pygame.surfarray.blit_array(coarse, pixels)
    streamer = ChunkStreamer(SilentSource(), 5, 64 << 20)  # type: ignore[arg-type]
    try:
        streamer.cache[(1, 0, 0)] = Tile(replace(build_chunk(5, 0, 0, 0), key=(1, 0, 0)), coarse)
        streamer.update(camera, (0.0, 0.0))
        streamer.draw(screen, camera)
        assert streamer.placeholders == 1 and streamer.blanks == 0  # the stand-in was drawn
        # Screen pixel p shows cell p // 32, that is level 1's sample p // 64.
        for x, y in [(0, 0), (10, 300), (100, 200), (383, 383), (200, 64)]:
            sx, sy = x // 64, y // 64
            assert tuple(screen.get_at((x, y)))[:3] == ((sx * 37) % 256, (sy * 53) % 256, 7), (x, y)
    finally:
        streamer.close()
    biggest = max(sizes, key=lambda s: s[0] * s[1])
    width, height = screen.get_size()
    # What is on screen, plus at most one sample (64 pixels) of rounding on each side.
    assert biggest[0] <= width + 128 and biggest[1] <= height + 128, (
        f"a stand-in scaled to {biggest[0]}x{biggest[1]} pixels for a {width}x{height} screen"
    )
