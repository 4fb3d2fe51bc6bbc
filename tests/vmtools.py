"""Helpers for runtime tests: process listing from /proc, waiting on a condition, shm segments."""

from __future__ import annotations

import os
import time
from collections.abc import Callable

from runtime import _payload


def wait_until(condition: Callable[[], object], timeout: float, interval: float = 0.005) -> bool:
    """Poll ``condition`` until it is true or ``timeout`` seconds pass; return whether it became true."""
    deadline = time.monotonic() + timeout
    while True:
        if condition():
            return True
        if time.monotonic() >= deadline:
            return bool(condition())
        time.sleep(interval)


def alive(pid: int) -> bool:
    """Whether process ``pid`` exists and is not a zombie."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            state = f.read().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state != "Z"


def children_of(pid: int) -> list[int]:
    """Living descendants of ``pid`` (children, grandchildren...), from /proc."""
    parents: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except (FileNotFoundError, ProcessLookupError):
            continue
        if fields[0] != "Z":
            parents[int(entry)] = int(fields[1])
    found: list[int] = []
    frontier = [pid]
    while frontier:
        parent = frontier.pop()
        kids = [child for child, ppid in parents.items() if ppid == parent]
        found += kids
        frontier += kids
    return sorted(found)


def segments(owner_pid: int | None = None) -> set[str]:
    """Names of the runtime's shared-memory segments (of one VM 0, if given)."""
    prefix = f"{_payload.SEGMENT_PREFIX}-" + ("" if owner_pid is None else f"{owner_pid}-")
    return {name for name in os.listdir(_payload.segment_dir()) if name.startswith(prefix)}
