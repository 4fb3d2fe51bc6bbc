"""``python -m worldgen bake``: bake a world into a Zarr store on a Dask cluster (see worldgen.bake)."""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Sequence

_SIZE = re.compile(r"\s*(\d+)\s*[xX]\s*(\d+)\s*")


def size(text: str) -> tuple[int, int]:
    """``WxH`` as (width, height), each a positive int."""
    match = _SIZE.fullmatch(text)
    if not match:
        raise argparse.ArgumentTypeError(f"size must be WIDTHxHEIGHT in cells, like 8192x8192, got {text!r}")
    width, height = int(match[1]), int(match[2])
    if width <= 0 or height <= 0:
        raise argparse.ArgumentTypeError(f"size must be at least 1x1 cells, got {text!r}")
    return width, height


def positive(text: str) -> int:
    """A positive int."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a positive int, got {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive int, got {value}")
    return value


def path(text: str) -> str:
    """A path that is not empty (an empty one would mean the current directory)."""
    if not text:
        raise argparse.ArgumentTypeError("must be a path to the store, got an empty string")
    return text


def parser() -> argparse.ArgumentParser:
    from .bake import DEFAULT_CHUNK

    top = argparse.ArgumentParser(prog="python -m worldgen", description="worldgen tools")
    commands = top.add_subparsers(dest="command", required=True)
    bake = commands.add_parser(
        "bake",
        help="bake a world into a Zarr store on a Dask cluster",
        description=(
            "Bake the world of --seed, --size cells from cell (0, 0), into the Zarr v3 store --out: one "
            "array per layer, the creatures per chunk, and a marker per chunk. Run again with the same "
            "arguments, it finishes a bake that was stopped. Without --scheduler it starts a local Dask "
            "cluster of worker processes (one per core)."
        ),
    )
    bake.add_argument("--seed", type=int, required=True, help="world seed (any int)")
    bake.add_argument("--size", type=size, required=True, metavar="WxH", help="world size in cells")
    bake.add_argument(
        "--out", required=True, type=path, metavar="PATH", help="the store: a new path, or a bake to finish"
    )
    bake.add_argument(
        "--chunk", type=positive, default=DEFAULT_CHUNK, help=f"block side in cells (default {DEFAULT_CHUNK})"
    )
    where = bake.add_mutually_exclusive_group()
    where.add_argument(
        "--scheduler",
        metavar="ADDRESS",
        help="a running dask.distributed scheduler, like tcp://10.0.0.1:8786",
    )
    where.add_argument("--workers", type=positive, help="local worker processes (default: one per core)")
    bake.add_argument("--quiet", action="store_true", help="no progress bar")
    return top


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    from .bake import BakeError, bake

    width, height = args.size
    try:
        result = bake(
            args.out,
            seed=args.seed,
            width=width,
            height=height,
            chunk=args.chunk,
            scheduler=args.scheduler,
            workers=args.workers,
            progress=None if args.quiet else sys.stderr,
        )
    except (BakeError, TypeError, ValueError) as e:
        print(f"python -m worldgen bake: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted: run the same command again to finish the bake", file=sys.stderr)
        return 130
    except OSError as e:  # a disk that filled up, a store that went away: what is baked stays baked
        print(f"python -m worldgen bake: failed: {e}; run the same command again to finish", file=sys.stderr)
        return 1
    print(
        f"{result.path}: {result.blocks} blocks, {result.already_baked} already baked, "
        f"{result.baked} baked now in {result.seconds:.1f} s ({result.cells_per_second / 1e6:.2f} M cells/s)",
        file=sys.stderr,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
