"""Command line: ``python -m game [--seed S] [--size WxH | --vms N --at X,Y] [--headless --frames N ...]``.

Without ``--size`` the world is endless, streamed in chunks by a pool of VMs (``--vms``, ``--cache-mb``,
``--at``, and headless ``--fly VX,VY``); with it, one finite world is generated in one job on VM 1.

Windowed, the game runs until the player quits (with no display to show a window on, it exits at once
with code 2 and says to use ``--headless``). Headless (SDL's dummy video driver, no window), it runs
at the same 60 FPS cap until the world (or the generation error) is on screen, then exactly ``--frames``
frames more, counting the first that shows it; it optionally saves the last frame and prints one JSON
line of frame statistics. Headless frames are one game tick each and the HUD shows that game clock, so
the same command saves the same PNG (see ``Settings.lockstep``). Either way VM 1 is closed on the way
out. Every option is checked before anything starts, with an error naming its rule.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import random
import signal
import sys
import threading
from collections.abc import Iterator
from typing import Any

from game.camera import MAX_ZOOM
from game.chunkjob import max_level

WINDOW = (1280, 720)
# Below 320x200 the HUD's and the key help's text cannot be read; no display is larger than 8K, and SDL
# would shrink a larger window without a word (and draw 3-second frames at its largest).
MIN_WINDOW = (320, 200)
MAX_WINDOW = (7680, 4320)
WAIT_S = 120.0
# Options that take a value. argparse reads "--size -5x5" as an option named "-5x5"; such values are
# joined to their option ("--size=-5x5") so that the option's own rule reports them.
VALUE_OPTIONS = (
    "--seed",
    "--size",
    "--window",
    "--zoom",
    "--frames",
    "--timeout",
    "--screenshot",
    "--vms",
    "--cache-mb",
    "--at",
    "--fly",
    "--world",
)
MAX_VMS = 15
COORD = 1 << 31


def _pair(text: str) -> tuple[int, int]:
    parts = text.lower().split("x")
    try:
        width, height = (int(p) for p in parts)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected WIDTHxHEIGHT like 2048x2048, got {text!r}") from None
    return (width, height)


def _number(text: str) -> float:
    """``text`` as a float; NaN when it is not a number, which every range check then refuses."""
    try:
        return float(text)
    except ValueError:
        return math.nan


def vms_arg(text: str) -> int:
    """Parse ``--vms``: how many pool VMs, a whole number from 1 to 15."""
    try:
        vms = int(text)
    except ValueError:
        vms = 0
    if not 1 <= vms <= MAX_VMS:
        raise argparse.ArgumentTypeError(f"vms must be a whole number from 1 to {MAX_VMS}, got {text!r}")
    return vms


def cache_mb_arg(text: str) -> float:
    """Parse ``--cache-mb``: the chunk cache's cap in MiB, at least 1."""
    value = _number(text)
    if not (1 <= value < math.inf):
        raise argparse.ArgumentTypeError(f"cache-mb must be a number of MiB of at least 1, got {text!r}")
    return value


def _two_numbers(text: str, what: str) -> tuple[float, float]:
    parts = text.split(",")
    values = [_number(p) for p in parts] if len(parts) == 2 else [math.nan]
    if len(values) != 2 or not all(math.isfinite(v) for v in values):
        raise argparse.ArgumentTypeError(f"{what}, got {text!r}")
    return (values[0], values[1])


def at_arg(text: str) -> tuple[float, float]:
    """Parse ``--at X,Y``: the world cell the view starts on, each within [-2**31, 2**31)."""
    rule = "at must be X,Y in world cells, each from -2**31 to 2**31-1"
    x, y = _two_numbers(text, rule)
    if not all(-COORD <= v < COORD for v in (x, y)):
        raise argparse.ArgumentTypeError(f"{rule}, got {text!r}")
    return (x, y)


def fly_arg(text: str) -> tuple[float, float]:
    """Parse ``--fly VX,VY``: a flight speed in cells per second along x and y."""
    return _two_numbers(text, "fly must be VX,VY in cells per second, two finite numbers")


def size_arg(text: str) -> tuple[int, int]:
    """Parse the world size ``WxH``: at least 1x1 cells. Too large a world is VM 1's to refuse
    (worldgen knows its memory limit and says so on the error screen)."""
    width, height = _pair(text)
    if width < 1 or height < 1:
        raise argparse.ArgumentTypeError(f"the world size must be at least 1x1 cells, got {text!r}")
    return (width, height)


def window_arg(text: str) -> tuple[int, int]:
    """Parse the window size ``WxH``: from :data:`MIN_WINDOW` to :data:`MAX_WINDOW` pixels."""
    width, height = _pair(text)
    if not (MIN_WINDOW[0] <= width <= MAX_WINDOW[0] and MIN_WINDOW[1] <= height <= MAX_WINDOW[1]):
        low, high = "x".join(map(str, MIN_WINDOW)), "x".join(map(str, MAX_WINDOW))
        raise argparse.ArgumentTypeError(f"the window must be from {low} to {high} pixels, got {text!r}")
    return (width, height)


def zoom_arg(text: str) -> float:
    """Parse the initial zoom: a number above 0 and at most :data:`MAX_ZOOM` screen pixels per cell."""
    zoom = _number(text)
    if not (0 < zoom <= MAX_ZOOM):  # also false for nan
        rule = f"the zoom must be a number above 0 and at most {MAX_ZOOM:g} (screen pixels per cell)"
        raise argparse.ArgumentTypeError(f"{rule}, got {text!r}")
    return zoom


def frames_arg(text: str) -> int:
    """Parse ``--frames``: a whole number, at least 1."""
    try:
        frames = int(text)
    except ValueError:
        frames = 0
    if frames < 1:
        raise argparse.ArgumentTypeError(f"frames must be a whole number of at least 1, got {text!r}")
    return frames


def timeout_arg(text: str) -> float:
    """Parse ``--timeout``: seconds, above 0."""
    seconds = _number(text)
    if not (0 < seconds < math.inf):
        raise argparse.ArgumentTypeError(f"the timeout must be a number of seconds above 0, got {text!r}")
    return seconds


def screenshot_arg(text: str) -> str:
    """Check ``--screenshot`` before the run, not after it: a ``.png`` path in a writable directory."""
    if not text.lower().endswith(".png"):
        raise argparse.ArgumentTypeError(f"the screenshot must be a .png file, got {text!r}")
    folder = os.path.dirname(text) or "."
    if not os.path.isdir(folder):
        raise argparse.ArgumentTypeError(f"the screenshot's directory must exist, got {text!r}")
    if os.path.isdir(text):
        raise argparse.ArgumentTypeError(f"the screenshot must be a file, not a directory, got {text!r}")
    writable = os.access(text, os.W_OK) if os.path.exists(text) else os.access(folder, os.W_OK | os.X_OK)
    if not writable:
        raise argparse.ArgumentTypeError(f"the screenshot's file must be writable, got {text!r}")
    return text


def parser() -> argparse.ArgumentParser:
    """The argument parser (also documents the options in ``--help``)."""
    low, high = "x".join(map(str, MIN_WINDOW)), "x".join(map(str, MAX_WINDOW))
    p = argparse.ArgumentParser(
        prog="python -m game",
        description="ComputeThread demo: VM 0 draws at 60 FPS while a pool of VMs streams an endless "
        "world in chunks (or, with --size, VM 1 generates one finite world).",
        epilog="Keys: WASD/arrows or mouse drag pan (Shift: fast flight in the endless world), wheel "
        "zooms at the cursor, J jumps far away (endless), R makes a new world (--size), "
        "H/F1 toggles the HUD, L the legend, click the minimap to jump, Esc quits. "
        "Headless, the same command saves the same picture: every frame is one game tick, and the HUD "
        "shows that game clock (measured frame times are in the JSON line). "
        "A value may start with '-' (--size -5x5 is read as a size, and refused as one).",
    )
    p.add_argument("--seed", type=int, default=None, help="world seed, any integer (default: random)")
    p.add_argument(
        "--size",
        type=size_arg,
        default=None,
        help="a finite world of this size in cells, WxH, at least 1x1, generated in one job on VM 1 "
        "(which refuses worlds over its memory limit); default: the endless world",
    )
    p.add_argument(
        "--vms",
        type=vms_arg,
        default=None,
        help=f"endless world: pool VMs generating chunks, 1 to {MAX_VMS} (default: one per core)",
    )
    p.add_argument(
        "--cache-mb",
        type=cache_mb_arg,
        default=256.0,
        help="endless world: memory cap of the chunk cache in MiB, least recently seen dropped first (256)",
    )
    p.add_argument(
        "--at",
        type=at_arg,
        default=(0.0, 0.0),
        help="endless world: the cell X,Y the view starts on, within +-2**31 (0,0)",
    )
    p.add_argument(
        "--world",
        default=None,
        help="play the world baked at this path (python -m worldgen bake): the pool reads its chunks from "
        "the store; outside the baked area the map is dark (the view starts at its centre)",
    )
    p.add_argument(
        "--fly",
        type=fly_arg,
        default=None,
        help="endless world: fly at VX,VY cells per second (headless flights for tests and benchmarks)",
    )
    p.add_argument(
        "--window", type=window_arg, default=WINDOW, help=f"window size in pixels, {low} to {high} (1280x720)"
    )
    p.add_argument(
        "--zoom",
        type=zoom_arg,
        default=None,
        help=f"initial zoom in screen pixels per cell, above 0 and at most {MAX_ZOOM:g}; "
        "below the zoom that fits the world, the whole world is shown (default: fit; endless: 2)",
    )
    p.add_argument(
        "--headless",
        action="store_true",
        help="no window: wait for the world, run --frames frames of it, print one JSON line",
    )
    p.add_argument(
        "--frames",
        type=frames_arg,
        default=600,
        help="headless: frames to run once the world (or the error) is on screen, the first one "
        "included; the frames spent generating come before and are not counted (600)",
    )
    p.add_argument(
        "--timeout",
        type=timeout_arg,
        default=WAIT_S,
        help=f"headless: seconds to wait for the world before giving up with exit code 1 ({WAIT_S:g})",
    )
    p.add_argument(
        "--screenshot",
        type=screenshot_arg,
        default=None,
        help="save the last frame to this .png file (its directory must exist and be writable)",
    )
    p.add_argument("--no-hud", action="store_true", help="start with the HUD hidden")
    return p


ENDLESS_ONLY = ("vms", "cache_mb", "at", "fly")


def check_mode(options: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """Refuse the endless world's options with ``--size`` (they would be silently ignored); open a baked
    ``--world`` (a store that is not one is refused with the reader's reason) and take its seed."""
    if args.world is not None:
        if args.size is not None:
            options.error("--world plays a baked world, --size makes a finite one: give one of them")
        if args.seed is not None:
            options.error("--seed: a baked world (--world) has its own seed")
        from worldgen.bake import BakeError, open_baked

        try:
            store = open_baked(args.world)
        except BakeError as exc:
            options.error(f"--world: {exc}")
        args.seed = int(store.seed)
        args.bounds = (0, 0, int(store.width), int(store.height))
        if args.at == options.get_default("at"):
            args.at = (store.width / 2, store.height / 2)
    if args.size is None:
        coarsest = 1.0 / (1 << max_level())  # one screen pixel per sample of the coarsest level
        if args.zoom is not None and args.zoom < coarsest:
            options.error(
                f"--zoom: the endless world's zoom must be at least {coarsest:g} (one screen pixel per "
                f"sample of its coarsest level of detail), got {args.zoom:g}"
            )
        return
    given = [name for name in ENDLESS_ONLY if getattr(args, name) != options.get_default(name)]
    if given:
        flag = "--" + given[0].replace("_", "-")
        options.error(f"{flag} is for the endless world, which --size replaces by a finite one")


def join_dash_values(argv: list[str]) -> list[str]:
    """``--size -5x5`` -> ``--size=-5x5``: a value starting with "-" stays the option's value."""
    joined: list[str] = []
    i = 0
    while i < len(argv):
        arg = argv[i]
        follows = argv[i + 1] if i + 1 < len(argv) else None
        if arg in VALUE_OPTIONS and follows is not None and follows[:1] == "-" and follows[:2] != "--":
            joined.append(f"{arg}={follows}")
            i += 2
            continue
        joined.append(arg)
        i += 1
    return joined


@contextlib.contextmanager
def interrupts_deferred() -> Iterator[None]:
    """Finish the block before a Ctrl+C takes effect: stopping VM 1 and the template must not be cut
    short by a second Ctrl+C. A Ctrl+C during the block is raised as KeyboardInterrupt after it."""
    if threading.current_thread() is not threading.main_thread():
        yield  # only the main thread may set signal handlers (and only it receives SIGINT)
        return
    caught: list[int] = []
    previous = signal.signal(signal.SIGINT, lambda signum, frame: caught.append(signum))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
    if caught:
        raise KeyboardInterrupt


class NoDisplayError(RuntimeError):
    """A window was asked for, but SDL found no display and would draw off screen, unseen."""


# SDL's video drivers that draw into memory only. SDL picks "offscreen" by itself when it finds no
# display, and the game would then run unseen until killed.
OFF_SCREEN_DRIVERS = frozenset({"offscreen", "dummy"})


def check_display(driver: str, asked_for: str | None) -> None:
    """Refuse to run windowed on an off-screen ``driver`` that the user did not ask for by setting
    ``SDL_VIDEODRIVER`` (``asked_for``): say how to run without a window instead."""
    if driver not in OFF_SCREEN_DRIVERS or asked_for:
        return
    displays = [
        f"{name}={os.environ[name]!r}" for name in ("DISPLAY", "WAYLAND_DISPLAY") if os.environ.get(name)
    ]
    why = (
        f"SDL could not open {' or '.join(displays)}"
        if displays
        else "DISPLAY and WAYLAND_DISPLAY are not set"
    )
    raise NoDisplayError(
        f"python -m game: no display to open the window on ({why}; SDL fell back to its {driver!r} "
        "driver, which shows nothing). Run it on a desktop, or add --headless to run without a window "
        "(e.g. python -m game --headless --frames 600 --screenshot world.png)."
    )


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Run the game as ``args`` say; returns the summary printed in headless mode.

    Windowed, with no display to show the window on, raises :class:`NoDisplayError` before VM 1 starts.
    """
    asked_for = os.environ.get("SDL_VIDEODRIVER")
    if args.headless:
        # Before pygame starts SDL: no window, no sound device.
        os.environ["SDL_VIDEODRIVER"] = "dummy"
        os.environ["SDL_AUDIODRIVER"] = "dummy"
    os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")
    import pygame

    import runtime
    from game.app import App, Settings
    from game.chunkjob import build_baked_chunk, build_chunk
    from game.chunksource import PoolSource
    from game.clock import FrameClock
    from game.endless_scene import EndlessScene
    from game.error_scene import ErrorScene
    from game.generation import Generator, NoGenerator, VMGenerator
    from game.sprites import load_image
    from game.stats import shown_summary

    pygame.display.init()
    pygame.font.init()
    try:
        if not args.headless:
            check_display(pygame.display.get_driver(), asked_for)
        endless = args.size is None
        try:
            # VMs fork from a template that has these imported, so a fresh VM (after R cancels a job)
            # is ready in milliseconds instead of importing numpy again.
            baked = ["worldgen.bake", "zarr"] if args.world else []  # read by the pool's VMs
            runtime.configure(preload=["numpy", "worldgen", "game.worlddata", "game.chunkjob", *baked])
        except RuntimeError:
            pass  # VMs already run in this process; the generator's setup imports the same modules
        generator: Generator
        chunks: PoolSource | None = None
        if endless:
            generator = NoGenerator()
            chunks = PoolSource(args.vms, job=build_baked_chunk if args.world else build_chunk)
            chunks.warm_up()  # the VMs boot before the window opens, not during the first frames
            caption = f"ComputeThread demo: an endless world from {len(chunks.pool.vm_indices)} VMs"
        else:
            vm1 = VMGenerator(1)
            vm1.warm_up()  # VM 1 boots before the window opens, not during the first frames
            generator = vm1
            caption = "ComputeThread demo: worlds from VM 1"
        pygame.display.set_caption(caption)
        pygame.display.set_icon(load_image("ui/icon.png"))
        flags = 0 if args.headless else pygame.RESIZABLE
        screen = pygame.display.set_mode(args.window, flags)
        settings = Settings(
            seed=args.seed,
            size=args.size,
            zoom=args.zoom,
            lockstep=args.headless,
            at=args.at,
            fly=args.fly,
            cache_mb=args.cache_mb,
            world=args.world,
            bounds=getattr(args, "bounds", None),
        )
        app = App(screen, FrameClock(), random.Random(), generator, settings, chunks)
        app.hud_visible = not args.no_hud
        saved: str | None = None
        try:
            stats = app.run_shown(args.frames, args.timeout) if args.headless else app.run()
            if args.screenshot:
                try:
                    pygame.image.save(screen, args.screenshot)
                except (pygame.error, OSError) as exc:
                    # Checked before the run, yet the disk may fill or the directory go: report it
                    # with the run's results rather than losing them to a traceback.
                    saved = f"could not save the screenshot to {args.screenshot}: {exc}"
        finally:
            app.close()
        error = app.scene.error if isinstance(app.scene, ErrorScene) else None
        arrived = app.world_arrived_frame
        shown = app.shown_frame
        # What --frames counts: the frames that showed the world (or the error), the first included.
        counts = shown_summary(stats.times, shown)
        streamed: dict[str, Any] = {}
        if isinstance(app.scene, EndlessScene):
            scene = app.scene
            streamer = scene.streamer
            intake = sorted(streamer.intake_ms)
            streamed = {
                "mode": "baked" if args.world else "endless",
                "world": args.world,
                "at": [round(scene.camera.x), round(scene.camera.y)],
                "chunks": streamer.generated,
                "chunks_failed": len(streamer.failed),
                "chunk_error": streamer.last_error() or None,
                "chunk_latency_frames": streamer.latency_summary(),
                "first_full_frame": streamer.first_full_frame,
                "first_whole_frame": streamer.first_whole_frame,
                # None when no frame was ever full: then there was no flight to time, not a flight of 0.
                "flight_latency_frames": None
                if streamer.first_full_frame is None
                else streamer.latency_summary(streamer.flight_latencies()),
                "placeholder_frames": streamer.placeholder_frames,
                "vm_busy": scene.vm_busy(),
                "cache_mib_peak": round(streamer.peak_bytes / 2**20, 1),
                "intake_ms_per_chunk": {
                    "p50": round(intake[len(intake) // 2], 3) if intake else 0.0,
                    "max": round(intake[-1], 3) if intake else 0.0,
                },
            }
        return {
            "frames": counts["frames"],
            "total_frames": counts["total_frames"],
            "seed": app.first_request.seed,
            "size": list(args.size) if args.size else None,
            "generation_s": round(generator.last_seconds, 3) if generator.last_seconds else None,
            "world_frame": arrived,
            "generating": counts["generating"],
            "after": counts["after"],
            "swap_ms": round(max(stats.by_phase("swap"), default=0.0), 2),
            "over_20ms": sum(1 for t in stats.times if t > 20.0),
            "screenshot": args.screenshot if args.screenshot and saved is None else None,
            "screenshot_error": saved,
            "error": error.splitlines()[-1] if error else None,
            **streamed,
        }
    finally:
        with interrupts_deferred():
            pygame.quit()
            runtime.shutdown()  # no VM and no template process outlives the game


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``python -m game`` and the ``computethread-demo`` script; returns the exit code.

    Ctrl+C quits quietly with the shell's code for it, 130 (128 + SIGINT), once VM 1 is stopped.
    """
    try:
        options = parser()
        args = options.parse_args(join_dash_values(sys.argv[1:] if argv is None else argv))
        check_mode(options, args)
        summary = run(args)
    except KeyboardInterrupt:
        return 130
    except NoDisplayError as exc:
        print(exc, file=sys.stderr)
        return 2
    status = 0
    if args.headless:
        print(json.dumps(summary), flush=True)
        if summary["error"] is not None:
            print(f"world generation failed: {summary['error']}", file=sys.stderr)
            status = 1
        elif summary["world_frame"] is None:
            print(f"the world did not arrive within --timeout {args.timeout:g} s", file=sys.stderr)
            status = 1
    if summary["screenshot_error"] is not None:
        print(summary["screenshot_error"], file=sys.stderr)
        status = 1
    return status
