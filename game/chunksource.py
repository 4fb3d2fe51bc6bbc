"""Where chunks come from: the VM pool the game ships, and two in-process ways for the benchmark.

A source takes chunk requests with a priority, re-prioritises or drops the queued ones each frame, and
hands back the finished chunks within a time budget. :class:`PoolSource` runs :func:`build_chunk` on a
``runtime.ComputePool`` over VMs 1..N; :class:`ThreadSource` in a ``threading.Thread`` of VM 0 (one GIL
shared with the frame loop) and :class:`InlineSource` inside the frame itself are the baselines the
benchmark compares it with. No pygame here.
"""

from __future__ import annotations

import heapq
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol, cast

import runtime
from game.chunkjob import ChunkData, ChunkKey, build_chunk

POOL_SETUP = "from game.worlddata import no_huge_pages\nno_huge_pages()\n"
# Linux's SCHED_IDLE: the VM runs only on CPU time nothing else wants, so VM 0 waking for its frame never
# waits for a VM's time slice to end (a nice VM can still hold a core for a few ms under EEVDF).
IDLE_POLICY = (
    "import os\n"
    "if hasattr(os, 'sched_setscheduler') and hasattr(os, 'SCHED_IDLE'):\n"
    "    os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))\n"
)


@dataclass(frozen=True)
class WorkerState:
    """One worker (a VM, or the thread) for the HUD: busy now, jobs done and busy seconds so far."""

    name: str
    busy: bool
    jobs_done: int
    busy_seconds: float


@dataclass(frozen=True)
class SourceStats:
    queued: int
    in_flight: int
    jobs_done: int
    workers: tuple[WorkerState, ...]


@dataclass(frozen=True)
class Arrival:
    """A request that ended: its chunk, or the error that stopped it."""

    key: ChunkKey
    chunk: ChunkData | None
    error: str | None = None


NewPriority = Callable[[ChunkKey], float | None]


class ChunkSource(Protocol):
    """What the streamer needs from a source of chunks."""

    def request(self, seed: Any, key: ChunkKey, priority: float) -> None:
        """Queue chunk ``key`` of world ``seed`` (or of the baked world at that path, for a pool that
        reads one); higher ``priority`` first."""
        ...

    def reprioritize(self, new_priority: NewPriority) -> None:
        """Give each queued request a new priority, or drop it (None)."""
        ...

    def take(self, budget_ms: float) -> list[Arrival]:
        """The requests that ended since the last call, decoded within about ``budget_ms``."""
        ...

    def stats(self) -> SourceStats: ...

    def close(self) -> None: ...


class PoolSource:
    """Chunks from ``runtime.ComputePool(vms)``: the game's way."""

    def __init__(
        self,
        vms: int | None = None,
        *,
        idle_policy: bool = False,
        job: Callable[..., ChunkData] = build_chunk,
    ) -> None:
        setup = POOL_SETUP + (IDLE_POLICY if idle_policy else "")
        self.pool = runtime.ComputePool(vms, setup=setup, intake=True)
        self.job = job
        """``job(world, level, cx, cy)``: ``build_chunk`` (world: a seed), ``build_baked_chunk`` (a path)."""

    def warm_up(self, timeout: float = 30.0) -> None:
        """Start every VM (and run its setup) before the first frame, not during the first frames."""
        futures = [self.pool.submit(time.sleep, 0.05) for _ in self.pool.vm_indices]
        for future in futures:
            future.result(timeout)
        self.pool.intake()  # not chunks: drop them

    def request(self, seed: Any, key: ChunkKey, priority: float) -> None:
        self.pool.submit(self.job, seed, *key, priority=priority, key=key)

    def reprioritize(self, new_priority: NewPriority) -> None:
        self.pool.reprioritize(new_priority)

    def take(self, budget_ms: float) -> list[Arrival]:
        arrivals = []
        for future in self.pool.intake(budget_ms):
            key = cast(ChunkKey, future.key)
            if future.cancelled():
                continue
            error = future.exception()
            if error is not None:
                arrivals.append(Arrival(key, None, f"{type(error).__name__}: {error}"))
            else:
                arrivals.append(Arrival(key, future.result()))
        return arrivals

    def stats(self) -> SourceStats:
        s = self.pool.stats()
        workers = tuple(WorkerState(f"VM {v.vm_index}", v.busy, v.jobs_done, v.busy_seconds) for v in s.vms)
        return SourceStats(s.queued, s.in_flight, s.jobs_done, workers)

    def close(self) -> None:
        self.pool.close()


class _Queue:
    """A priority queue of chunk requests that can be re-prioritised (for the in-process sources)."""

    def __init__(self) -> None:
        self.heap: list[tuple[float, int, int, ChunkKey]] = []
        self.order = 0

    def push(self, seed: int, key: ChunkKey, priority: float) -> None:
        self.order += 1
        heapq.heappush(self.heap, (-priority, self.order, seed, key))

    def pop(self) -> tuple[int, ChunkKey] | None:
        if not self.heap:
            return None
        _, _, seed, key = heapq.heappop(self.heap)
        return seed, key

    def reprioritize(self, new_priority: NewPriority) -> None:
        kept = []
        for _, order, seed, key in self.heap:
            priority = new_priority(key)
            if priority is not None:
                kept.append((-priority, order, seed, key))
        heapq.heapify(kept)
        self.heap = kept


def _run(seed: int, key: ChunkKey) -> Arrival:
    try:
        return Arrival(key, build_chunk(seed, *key))
    except Exception as exc:  # shown as a failed chunk, as the pool's errors are
        return Arrival(key, None, f"{type(exc).__name__}: {exc}")


class ThreadSource:
    """Chunks from one ``threading.Thread`` of VM 0 (a baseline: it competes for VM 0's GIL)."""

    def __init__(self) -> None:
        self.queue = _Queue()
        self.lock = threading.Condition()
        self.done: list[Arrival] = []
        self.running = False
        self.jobs_done = 0
        self.busy_seconds = 0.0
        self.closed = False
        self.thread = threading.Thread(target=self._work, name="chunk thread", daemon=True)
        self.thread.start()

    def _work(self) -> None:
        while True:
            with self.lock:
                while not self.closed and not self.queue.heap:
                    self.lock.wait()
                if self.closed:
                    return
                item = self.queue.pop()
                self.running = True
            assert item is not None
            started = time.perf_counter()
            arrival = _run(*item)
            with self.lock:
                self.running = False
                self.jobs_done += 1
                self.busy_seconds += time.perf_counter() - started
                self.done.append(arrival)

    def request(self, seed: int, key: ChunkKey, priority: float) -> None:
        with self.lock:
            self.queue.push(seed, key, priority)
            self.lock.notify()

    def reprioritize(self, new_priority: NewPriority) -> None:
        with self.lock:
            self.queue.reprioritize(new_priority)

    def take(self, budget_ms: float) -> list[Arrival]:
        with self.lock:
            done, self.done = self.done, []
        return done

    def stats(self) -> SourceStats:
        with self.lock:
            worker = WorkerState("thread", self.running, self.jobs_done, self.busy_seconds)
            return SourceStats(len(self.queue.heap), int(self.running), self.jobs_done, (worker,))

    def close(self) -> None:
        with self.lock:
            self.closed = True
            self.lock.notify()
        self.thread.join()


class InlineSource:
    """Chunks made inside the frame (a baseline): one chunk per ``take`` call, the most urgent."""

    def __init__(self) -> None:
        self.queue = _Queue()
        self.jobs_done = 0
        self.busy_seconds = 0.0

    def request(self, seed: int, key: ChunkKey, priority: float) -> None:
        self.queue.push(seed, key, priority)

    def reprioritize(self, new_priority: NewPriority) -> None:
        self.queue.reprioritize(new_priority)

    def take(self, budget_ms: float) -> list[Arrival]:
        item = self.queue.pop()
        if item is None:
            return []
        started = time.perf_counter()
        arrival = _run(*item)
        self.jobs_done += 1
        self.busy_seconds += time.perf_counter() - started
        return [arrival]

    def stats(self) -> SourceStats:
        worker = WorkerState("inline", False, self.jobs_done, self.busy_seconds)
        return SourceStats(len(self.queue.heap), 0, self.jobs_done, (worker,))

    def close(self) -> None:
        self.queue = _Queue()
