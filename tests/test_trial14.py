"""Problems found by trying issue #14 as a player and as a developer reusing ``runtime`` (README only).

Each test here failed on the branch it was written on (trial14, from main bb2e012): it pins a bug, not a
feature, and passes once the bug is fixed.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pygame
import pytest

from game.chunkjob import CHUNK, build_chunk
from game.endless_camera import EndlessCamera
from game.streamer import ChunkStreamer, Tile


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


@pytest.fixture
def screen() -> Iterator[pygame.Surface]:
    pygame.display.init()
    yield pygame.display.set_mode((384, 384))
    pygame.quit()


def test_zoomed_in_a_coarser_stand_in_is_scaled_only_where_it_is_on_screen(
    screen: pygame.Surface, monkeypatch: pytest.MonkeyPatch
) -> None:
    """At zoom 32 a chunk is 4,096 pixels wide. A fine chunk already scales only its part on screen,
    but a missing chunk's coarser stand-in is scaled whole, to 4,096 x 4,096 (64 MiB), on every frame
    the chunk is missing: `python -m game --headless --frames 120 --seed 42 --vms 2 --zoom 32` (with or
    without --fly) had a 78-156 ms frame in each of 8 runs; max_ms was 56 at zoom 24, 28 at 16, and
    under 20 at 12 and below."""
    from dataclasses import replace

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
