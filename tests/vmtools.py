"""Helpers for tests: process listing from /proc, waiting on a condition, shm segments, running a VM 0
or the game in a fresh process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any


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


def shm_names() -> set[str]:
    """The shared-memory segments in /dev/shm (the runtime's are anonymous and must never appear there).

    POSIX semaphores (``sem.*``) live there too; other programs on a shared machine (multiprocessing,
    Dask) make and remove them at any moment, so they are left out: the runtime makes none.
    """
    names = os.listdir("/dev/shm") if os.path.isdir("/dev/shm") else []
    return {name for name in names if not name.startswith("sem.")}


def mapped_segments(pid: int | str = "self") -> int:
    """How many mappings of the runtime's shared-memory segments process ``pid`` has."""
    try:
        with open(f"/proc/{pid}/maps") as f:
            return sum(1 for line in f if "pyct-segment" in line)
    except FileNotFoundError:
        return 0


def held_segments(pid: int | str = "self") -> int:
    """How many descriptors of the runtime's segments process ``pid`` holds open."""
    count = 0
    try:
        for fd in os.listdir(f"/proc/{pid}/fd"):
            try:
                count += "pyct-segment" in os.readlink(f"/proc/{pid}/fd/{fd}")
            except FileNotFoundError:
                continue
    except FileNotFoundError:
        return 0
    return count


# pocketpy's exact messages. The runtime adds a hint as a PEP 678 note, which pytest.raises(match=...)
# sees after a newline; str(exception) is the message alone.
NOT_DONE = r"\Athread is not done yet(\n|\Z)"
NO_RETVAL = r"\Ano retval available(\n|\Z)"


ROOT = Path(__file__).resolve().parent.parent


def run_python(
    script: str,
    *options: str,
    cwd: Path = ROOT,
    env: dict[str, str] | None = None,
    timeout: float = 60,
) -> subprocess.CompletedProcess[str]:
    """Run ``script`` in a fresh interpreter (a VM 0 of its own): ``python <options> -c script``.

    Output is captured as text; ``timeout`` keeps a stuck script from hanging the suite.
    """
    return subprocess.run(
        [sys.executable, *options, "-c", script],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def start_game(
    *argv: str, cwd: Path, code: str | None = None, new_session: bool = False, no_display: bool = False
) -> subprocess.Popen[str]:
    """``python -m game argv`` (or ``python -c code``) outside the repository, importing this checkout.

    SDL draws with its dummy driver; ``no_display``: with no X, no Wayland and no driver asked for instead.
    """
    if no_display:
        hidden = ("DISPLAY", "WAYLAND_DISPLAY", "SDL_VIDEODRIVER")
        env = {k: v for k, v in os.environ.items() if k not in hidden}
    else:
        env = dict(os.environ, SDL_VIDEODRIVER="dummy", SDL_AUDIODRIVER="dummy")
    env["PYTHONPATH"] = os.pathsep.join(p for p in (os.environ.get("PYTHONPATH"), str(ROOT)) if p)
    command = [sys.executable, "-c", code, *argv] if code else [sys.executable, "-m", "game", *argv]
    return subprocess.Popen(
        command,
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=new_session,
    )


def headless_summary(*argv: str, cwd: Path, timeout: float = 120) -> dict[str, Any]:
    """Run ``python -m game --headless argv`` to the end; its JSON line (it must exit 0)."""
    run = start_game("--headless", *argv, cwd=cwd)
    try:
        out, err = run.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        run.kill()
        run.communicate()
        raise
    assert run.returncode == 0, err
    summary: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
    return summary


def undocumented_fields(summary: dict[str, Any]) -> list[str]:
    """The headless JSON line's keys (nested ones too) that README.md does not name in backquotes."""
    readme = (ROOT / "README.md").read_text()
    keys: list[str] = []
    for key, value in summary.items():
        keys.append(key)
        if isinstance(value, dict) and key != "vm_busy":  # vm_busy's keys are the VMs' names
            keys += list(value)
    return sorted({key for key in keys if f"`{key}`" not in readme})
