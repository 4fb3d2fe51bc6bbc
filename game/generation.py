"""World generation as a service the frame loop polls: VM 1 does the work, VM 0 never waits for it.

:class:`VMGenerator` owns ``ComputeThread(1)``. ``start()`` submits the job (or, if one is running,
cancels it and queues the newest request), ``poll()`` is called once a frame and returns the outcome the
frame the job ends. Nothing here blocks: ``is_done`` and ``progress`` are cheap reads, and a request made
while a cancelled job is still winding down is submitted by a later ``poll()``.

The :class:`Generator` protocol is what the scenes use, so the benchmark can put the same game on other
strategies (inline, ``threading.Thread``) for comparison.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Protocol

from game.worlddata import WorldData
from runtime import ComputeThread, report_progress

# What VM 1 imports in every fresh process (the first start and after a crash or a cancel), so the first
# job does not pay for importing numpy and worldgen.
VM_SETUP = "import numpy\nimport worldgen\nimport game.worlddata\ngame.worlddata.tune_vm()\n"
DEFAULT_JOB = "game.worlddata.build_world_data"


@dataclass(frozen=True)
class Request:
    """A world to generate: ``seed`` and a ``width`` x ``height`` region at the origin."""

    seed: int
    width: int
    height: int

    @property
    def size(self) -> tuple[int, int]:
        """``(width, height)``."""
        return (self.width, self.height)


@dataclass(frozen=True)
class Finished:
    """A job that returned a world."""

    request: Request
    world: WorldData
    seconds: float
    """Wall time from submit to the frame that saw the job done."""


@dataclass(frozen=True)
class Failed:
    """A job that raised, was given bad input, or whose VM died. ``error`` is the text to show."""

    request: Request
    error: str


Outcome = Finished | Failed


class Generator(Protocol):
    """How scenes ask for worlds. Every method returns at once."""

    @property
    def busy(self) -> bool:
        """True while a job runs or waits to be submitted."""
        ...

    @property
    def current(self) -> Request | None:
        """The request being worked on, if any."""
        ...

    @property
    def progress(self) -> tuple[float, str]:
        """``(fraction, stage)`` of the running job, as last reported; with no job running, how the last
        one ended (``(1.0, "done")`` once its world arrived), so a bar never drops back to 0 at the end."""
        ...

    @property
    def last_seconds(self) -> float | None:
        """How long the last finished job took."""
        ...

    def start(self, request: Request) -> None:
        """Generate ``request``, replacing (cancelling) any job still running."""
        ...

    def poll(self) -> Outcome | None:
        """Called once per frame: the outcome of the job if it ended since the last poll."""
        ...

    def close(self) -> None:
        """Stop any job and release the worker for good."""
        ...


class VMGenerator:
    """The real thing: ``ComputeThread(vm_index)`` runs ``job`` (an eval source naming a callable)."""

    def __init__(self, vm_index: int = 1, *, job: str = DEFAULT_JOB, setup: str = VM_SETUP) -> None:
        self.thread = ComputeThread(vm_index, setup=setup)
        self.job = job
        self._running: Request | None = None
        self._pending: Request | None = None
        self._submitted_at = 0.0
        self._last_seconds: float | None = None
        self._failed: Failed | None = None  # a submit that failed in VM 0, reported by the next poll
        self._ended: tuple[float, str] = (0.0, "")  # progress of the last job that ended

    def warm_up(self) -> None:
        """Block until VM 1 is up and its setup has run, as the seed does with ``thread.exec(...)``.

        Call it before the first frame (the game does, before opening the window): starting the
        template process and importing numpy and worldgen keep a core busy for a few hundred
        milliseconds, and that is better spent before the loop than during its first frames.
        A failing setup is not raised here; the first job reports it like any other failure.
        """
        try:
            self.thread.exec("pass")
        except RuntimeError:
            pass

    @property
    def busy(self) -> bool:
        return self._running is not None or self._pending is not None or self._failed is not None

    @property
    def current(self) -> Request | None:
        return self._pending or self._running

    @property
    def progress(self) -> tuple[float, str]:
        if self._pending is not None:
            return (0.0, "starting")
        if self._running is None:
            # The frame a world arrives still draws the loading bar: it must read full, not empty.
            return self._ended
        fraction, message = self.thread.progress
        return (float(fraction), str(message))

    @property
    def last_seconds(self) -> float | None:
        return self._last_seconds

    def start(self, request: Request) -> None:
        if self._running is not None and not self.thread.is_done:
            # Newest wins: stop the old job; the new one goes in once the VM reports done.
            self.thread.cancel()
            self._running = None
        self._pending = request
        self._submit_pending()

    def _submit_pending(self) -> None:
        if self._pending is None or not self.thread.is_done:
            return
        request, self._pending = self._pending, None
        try:
            self.thread.submit_call(
                self.job, request.seed, 0, 0, request.width, request.height, progress=report_progress
            )
        except Exception as exc:  # e.g. no VM could be started: the game shows it instead of crashing
            self._failed = Failed(request, f"{type(exc).__name__}: could not start the job: {exc}")
            return
        self._running = request
        self._submitted_at = time.perf_counter()

    def poll(self) -> Outcome | None:
        if self._failed is not None:
            failed, self._failed = self._failed, None
            return failed
        if self._pending is not None:
            self._submit_pending()
            return None
        if self._running is None or not self.thread.is_done:
            return None
        self._ended = self.progress
        request, self._running = self._running, None
        error = self.thread.last_error()
        if error is not None:
            return Failed(request, error)
        try:
            world = self.thread.last_retval()
        except Exception as exc:  # the value could not be rebuilt in VM 0
            return Failed(request, f"{type(exc).__name__}: the world could not be received: {exc}")
        self._last_seconds = time.perf_counter() - self._submitted_at
        if not isinstance(world, WorldData):
            return Failed(request, f"the generation job returned {type(world).__name__}, not WorldData")
        self._ended = (1.0, "done")
        return Finished(request, world, self._last_seconds)

    def close(self) -> None:
        self._running = self._pending = self._failed = None
        self.thread.close()


class NoGenerator:
    """No world job at all: the endless world streams its chunks from the pool instead of VM 1."""

    busy = False
    current: Request | None = None
    progress = (0.0, "")
    last_seconds: float | None = None

    def start(self, request: Request) -> None:
        raise ValueError("the endless world has no whole-world generator (start the game with --size)")

    def poll(self) -> Outcome | None:
        return None

    def close(self) -> None:
        pass
