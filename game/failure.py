"""What the error screen tells a player: what went wrong, in plain words, and what they can do next.

A failed generation arrives as the text VM 1 produced (a traceback, or the runtime's "VM 1 died" line).
:func:`advise` reads it once and decides what the screen says and what Enter does: a world too big for
worldgen's memory limit is offered again at a size that fits (retrying the same size could only fail
again), a VM that died or a job that raised is offered again as it was, or with another seed.
Plain text in, plain data out: no pygame, so the tests can check every kind of failure directly.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

import worldgen
from game.generation import Request

# worldgen's refusal: "... would need about 309960 MiB, more than the memory limit of 2048 MiB (...)".
_TOO_BIG = re.compile(r"would need about (\d+) MiB, more than the memory limit of (\d+) MiB")
# Aim under the limit: memory grows a little faster than the cell count for thin worlds.
SIZE_MARGIN = 0.9
THIN = 64  # cells: worldgen's memory per cell grows as a strip gets thinner than about this


@dataclass(frozen=True)
class Advice:
    """What the error screen says and offers for one failure."""

    title: str
    message: str
    """One or two sentences for a player: what happened, what they can do."""
    retry: Request
    """What Enter starts: the same request, or a smaller one when the size was the problem."""
    retry_label: str
    """What Enter does, for the key hint ("try again", "try 7168x7168")."""
    new_seed: bool
    """Whether N (the same size with another seed) is offered: not when the size was the problem."""
    details: bool
    """Whether the error's own text is worth showing (a bug report needs it; a size that is too big does
    not)."""


def _round_down(side: int) -> int:
    """A side a player reads at a glance: a multiple of 256 from 1024 up, of 16 from 64 up."""
    step = 256 if side >= 1024 else 16 if side >= 64 else 1
    return max(1, side // step * step)


def smaller_size(width: int, height: int, needed: float, limit: float) -> tuple[int, int]:
    """A size of the same shape whose memory need fits under ``limit``, from one that ``needed`` more.

    Memory grows with the cell count, so the cell count shrinks by ``limit / needed`` (with a margin):
    both sides alike, or only the long one of a strip thinner than :data:`THIN` cells.
    """
    share = SIZE_MARGIN * limit / needed
    if min(width, height) < THIN:  # only the long side shrinks: a thinner strip costs more per cell
        new_w = width if width < THIN else max(1, math.floor(width * share))
        new_h = height if height < THIN else max(1, math.floor(height * share))
    else:
        scale = math.sqrt(share)
        new_w, new_h = max(1, math.floor(width * scale)), max(1, math.floor(height * scale))
    new_w, new_h = _round_down(new_w), _round_down(new_h)
    if (new_w, new_h) == (width, height):  # never offer the same size again
        new_w, new_h = max(1, width // 2), max(1, height // 2)
    # Memory is not quite proportional to cells (fixed costs, halos): check with worldgen's own bound.
    while (new_w, new_h) != (1, 1) and worldgen.estimated_bytes(new_w, new_h) > SIZE_MARGIN * limit * 2**20:
        new_w, new_h = max(1, _round_down(new_w * 9 // 10)), max(1, _round_down(new_h * 9 // 10))
    return (new_w, new_h)


def advise(error: str, request: Request) -> Advice:
    """What to tell a player about ``error``, which ended the generation of ``request``."""
    lines = [line.strip() for line in error.splitlines() if line.strip()]
    last = lines[-1] if lines else "unknown error"
    size = f"{request.width}x{request.height}"
    too_big = _TOO_BIG.search(error)
    if too_big is not None or "memory limit" in last:
        if too_big is not None:
            needed, limit = float(too_big.group(1)), float(too_big.group(2))
            width, height = smaller_size(request.width, request.height, needed, limit)
            need = f"{needed / 1024:.0f} GiB" if needed >= 1024 else f"{needed:.0f} MiB"
            allowed = f"{limit / 1024:g} GiB" if limit >= 1024 else f"{limit:g} MiB"
            why = f"A {size} world needs about {need} of memory; a world may use {allowed}."
        else:
            width, height = max(1, request.width // 2), max(1, request.height // 2)
            why = f"A {size} world needs more memory than a world may use."
        smaller = Request(request.seed, width, height)
        return Advice(
            title="This world is too big",
            message=f"{why} Press Enter to make it {width}x{height} instead.",
            retry=smaller,
            retry_label=f"try {width}x{height}",
            new_seed=False,
            details=False,
        )
    if last.startswith("VM ") and " died during the job" in last:
        return Advice(
            title="The world maker stopped",
            message="VM 1, the process that makes the worlds, stopped during this one. The game itself "
            "is fine: Enter tries again in a fresh VM 1.",
            retry=request,
            retry_label="try again",
            new_seed=True,
            details=True,
        )
    return Advice(
        title="The world could not be made",
        message="Something went wrong while making this world. The details are below.",
        retry=request,
        retry_label="try again",
        new_seed=True,
        details=True,
    )
