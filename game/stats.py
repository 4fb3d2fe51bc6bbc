"""Frame timing: what the HUD graph shows, and what headless runs and the benchmark report.

A frame's time is the interval between the ends of two consecutive frames, the wait in ``Clock.tick``
included: that is what a player sees as smooth or stuttering. Each frame is tagged with the phase it ran
in ("generating", "swap" for the two frames of a world's arrival, "world", "idle"), so a run can be
summarised per phase; :func:`shown_summary` splits a headless run where its picture changed instead.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

SLOW_FRAME_MS = 20.0


def percentile(values: list[float], q: float) -> float:
    """The ``q``-th percentile (0..100) of ``values`` by linear interpolation; 0.0 when empty."""
    if not values:
        return 0.0
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100
    low = int(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def summarise(values: list[float]) -> dict[str, float | int]:
    """p50, p99, max and the count of frames over :data:`SLOW_FRAME_MS` (milliseconds, 2 decimals)."""
    return {
        "frames": len(values),
        "p50_ms": round(percentile(values, 50), 2),
        "p99_ms": round(percentile(values, 99), 2),
        "max_ms": round(max(values, default=0.0), 2),
        "over_20ms": sum(1 for v in values if v > SLOW_FRAME_MS),
    }


def shown_summary(times: list[float], shown_frame: int | None) -> dict[str, object]:
    """The frame counts of a headless run whose frame ``shown_frame`` (counting from 0) was the first to
    show the world or the error (None: neither came).

    ``frames`` are the frames from that one on, ``total_frames`` all of them, and the frame times are
    split at it: "generating" are the frames that showed the loading screen (the one that received the
    world included: it still drew the full bar), "after" the ``frames`` frames that showed the result.
    So ``total_frames == generating["frames"] + after["frames"] == shown_frame + frames``.
    """
    split = len(times) if shown_frame is None else shown_frame
    return {
        "frames": len(times) - split,
        "total_frames": len(times),
        "generating": summarise(times[:split]),
        "after": summarise(times[split:]),
    }


@dataclass
class FrameStats:
    """Every frame's time and phase, plus the last ``graph_size`` times for the HUD graph."""

    graph_size: int = 240
    times: list[float] = field(default_factory=list)
    work: list[float] = field(default_factory=list)
    phases: list[str] = field(default_factory=list)
    recent: deque[float] = field(default_factory=deque)

    def add(self, ms: float, work_ms: float, phase: str) -> None:
        """Record one frame: its interval ``ms``, the part spent working ``work_ms``, and its phase."""
        self.times.append(ms)
        self.work.append(work_ms)
        self.phases.append(phase)
        self.recent.append(ms)
        if len(self.recent) > self.graph_size:
            self.recent.popleft()

    def by_phase(self, *phases: str) -> list[float]:
        """Frame times of the frames in any of ``phases``."""
        return [t for t, p in zip(self.times, self.phases, strict=True) if p in phases]

    def fps(self, frames: int = 60) -> float:
        """Frames per second over the last ``frames`` frames."""
        tail = list(self.recent)[-frames:]
        total = sum(tail)
        return 1000.0 * len(tail) / total if total > 0 else 0.0
