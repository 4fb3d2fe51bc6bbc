"""``python -m game`` and the ``computethread-demo`` console script: see :mod:`game.cli`."""

import sys

from game.cli import main

__all__ = ["main"]

if __name__ == "__main__":
    sys.exit(main())
