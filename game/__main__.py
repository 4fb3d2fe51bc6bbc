"""``python -m game``: the demo's command-line entry point."""

import sys


def main(argv: list[str] | None = None) -> int:
    """Run the demo. Not playable yet: the game issue builds it."""
    print("The demo is not built yet; see the game issue.", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
