"""Command line: ``python -m game [--seed S] [--size WxH] [--headless --frames N --screenshot out.png]``.

Windowed, the game runs until the player quits. Headless (SDL's dummy video driver, no window), it runs
exactly ``--frames`` frames at the same 60 FPS cap, generation included, optionally saves the last frame
and prints one JSON line of frame statistics. Either way VM 1 is closed on the way out.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
from typing import Any

WINDOW = (1280, 720)


def size_arg(text: str) -> tuple[int, int]:
    """Parse ``WxH``. Non-positive or huge numbers pass: VM 1 rejects them and the game shows the error."""
    parts = text.lower().split("x")
    try:
        width, height = (int(p) for p in parts)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected WIDTHxHEIGHT like 2048x2048, got {text!r}") from None
    return (width, height)


def parser() -> argparse.ArgumentParser:
    """The argument parser (also documents the options in ``--help``)."""
    p = argparse.ArgumentParser(
        prog="python -m game",
        description="ComputeThread demo: VM 0 draws at 60 FPS while VM 1 generates the world.",
        epilog="Keys: WASD/arrows or mouse drag pan, wheel zooms at the cursor, R makes a new world, "
        "H/F1 toggles the HUD, L the legend, click the minimap to jump, Esc quits.",
    )
    p.add_argument("--seed", type=int, default=None, help="world seed (default: random, shown on screen)")
    p.add_argument("--size", type=size_arg, default=(2048, 2048), help="world size in cells, WxH (2048x2048)")
    p.add_argument("--window", type=size_arg, default=WINDOW, help="window size in pixels (1280x720)")
    p.add_argument("--zoom", type=float, default=None, help="initial zoom in pixels per cell (default: fit)")
    p.add_argument("--headless", action="store_true", help="no window: run --frames frames and report")
    p.add_argument("--frames", type=int, default=600, help="frames to run headless (600)")
    p.add_argument("--screenshot", default=None, help="save the last frame as this PNG")
    p.add_argument("--no-hud", action="store_true", help="start with the HUD hidden")
    return p


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Run the game as ``args`` say; returns the summary printed in headless mode."""
    if args.headless:
        # Before pygame starts SDL: no window, no sound device.
        os.environ["SDL_VIDEODRIVER"] = "dummy"
        os.environ["SDL_AUDIODRIVER"] = "dummy"
    os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")
    import pygame

    import runtime
    from game.app import App, Settings
    from game.clock import FrameClock
    from game.error_scene import ErrorScene
    from game.generation import VMGenerator
    from game.sprites import load_image
    from game.stats import summarise

    pygame.display.init()
    pygame.font.init()
    try:
        try:
            # VMs fork from a template that has these imported, so a fresh VM (after R cancels a job)
            # is ready in milliseconds instead of importing numpy again.
            runtime.configure(preload=["numpy", "worldgen", "game.worlddata"])
        except RuntimeError:
            pass  # VMs already run in this process; the generator's setup imports the same modules
        generator = VMGenerator(1)
        generator.warm_up()  # VM 1 boots before the window opens, not during the first frames
        pygame.display.set_caption("ComputeThread demo: worlds from VM 1")
        pygame.display.set_icon(load_image("ui/icon.png"))
        flags = 0 if args.headless else pygame.RESIZABLE
        screen = pygame.display.set_mode(args.window, flags)
        settings = Settings(seed=args.seed, size=args.size, zoom=args.zoom)
        app = App(screen, FrameClock(), random.Random(), generator, settings)
        app.hud_visible = not args.no_hud
        try:
            stats = app.run(args.frames if args.headless else None)
            if args.screenshot:
                pygame.image.save(screen, args.screenshot)
        finally:
            app.close()
        error = app.scene.error if isinstance(app.scene, ErrorScene) else None
        arrived = app.world_arrived_frame
        return {
            "frames": app.frame_no,
            "seed": app.first_request.seed,
            "size": list(args.size),
            "generation_s": round(generator.last_seconds, 3) if generator.last_seconds else None,
            "world_frame": arrived,
            "generating": summarise(stats.by_phase("generating")),
            "after": summarise(stats.by_phase("swap", "world")),
            "swap_ms": round(max(stats.by_phase("swap"), default=0.0), 2),
            "over_20ms": sum(1 for t in stats.times if t > 20.0),
            "screenshot": args.screenshot,
            "error": error.splitlines()[-1] if error else None,
        }
    finally:
        pygame.quit()
        runtime.shutdown()  # no VM and no template process outlives the game


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``python -m game`` and the ``computethread-demo`` script; returns the exit code."""
    args = parser().parse_args(argv)
    if args.frames < 1:
        parser().error("--frames must be at least 1")
    if min(args.window) < 64:
        parser().error("--window must be at least 64x64 pixels")
    summary = run(args)
    if args.headless:
        print(json.dumps(summary), flush=True)
        if summary["error"] is not None:
            print(f"world generation failed: {summary['error']}", file=sys.stderr)
            return 1
        if summary["world_frame"] is None:
            print("the world did not arrive within --frames frames", file=sys.stderr)
            return 1
    return 0
