"""Draw the demo's pixel-art sprites and UI images and save them as PNGs next to this file.

Run ``python assets/make_sprites.py`` after editing the art below; the PNGs it writes are committed, so the
game never needs this script at run time. Each picture is a grid of characters, one per pixel: ``.`` is
transparent and every other character is a colour from that picture's palette. Keeping the art as text
makes it reviewable in a diff and reproducible bit for bit.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")

import pygame

HERE = Path(__file__).resolve().parent

Colour = tuple[int, int, int, int]

# Shared by every sprite: a near-black outline keeps the small figures readable on any biome colour.
OUTLINE: Colour = (22, 18, 30, 255)
EYE: Colour = (10, 8, 12, 255)
WHITE: Colour = (246, 244, 236, 255)

# 16x16 creatures, facing right. Rows shorter than 16 characters are padded with transparency.
CREATURES: dict[str, tuple[list[str], dict[str, Colour]]] = {
    "wolf": (
        [
            "................",
            "................",
            "..........K.K...",
            ".........KgKgK..",
            ".........KggggK.",
            "KK.......KgegggK",
            "KgK.....KgggggwK",
            ".KgKKKKKKggggKK.",
            ".KggggggggggdK..",
            "..KggggggggggK..",
            "..KgwwwwwwwggK..",
            "..KgKKKKKKKgK...",
            "..KgK....KgK....",
            "..KgK....KgK....",
            "..KKK....KKK....",
            "................",
        ],
        {"g": (138, 140, 150, 255), "d": (96, 98, 110, 255), "w": (214, 214, 220, 255), "e": EYE},
    ),
    "bear": (
        [
            "................",
            "................",
            "..........KK.KK.",
            ".........KbbKbbK",
            "..KKKKKKKbbbbbbK",
            ".KbbbbbbbbbbebbK",
            "KbbbbbbbbbbbbbtK",
            "KbbbbbbbbbbbbbKK",
            "KbbbbbbbbbbbbK..",
            "KbbbbbbbbbbbbK..",
            "KbddbbbbbbbddK..",
            ".KbbKKKKKKbbK...",
            ".KbbK....KbbK...",
            ".KKKK....KKKK...",
            "................",
            "................",
        ],
        {"b": (124, 78, 44, 255), "d": (88, 52, 28, 255), "t": (200, 160, 120, 255), "e": EYE},
    ),
    "fish": (
        [
            "................",
            "................",
            "................",
            "................",
            "....KKKKK.......",
            "..KKoooooKK...KK",
            ".KoooooyooooKKoK",
            "KoeoooyoooooooK.",
            "KooooooyoooooK..",
            ".KoooooyooooKKoK",
            "..KKoooooKK...KK",
            "....KKKKK.......",
            "................",
            "................",
            "................",
            "................",
        ],
        {"o": (255, 138, 36, 255), "y": (255, 214, 90, 255), "e": EYE},
    ),
    "bird": (
        [
            "................",
            "................",
            "...KK...........",
            "..KrrK....KKK...",
            "..KrrrK..KrrrK..",
            "...KrrrKKrrkrK..",
            "....KrrrrrrrrKyK",
            "...KrrrrrrrrrKK.",
            "..KwwrrrrrrrrK..",
            "..KwwwrrrrrrK...",
            "...KKwwwwwKK....",
            ".....KKyKyK.....",
            "......K.K.......",
            "................",
            "................",
            "................",
        ],
        {"r": (214, 40, 52, 255), "w": (250, 196, 200, 255), "y": (250, 190, 40, 255), "k": EYE},
    ),
    "lizard": (
        [
            "................",
            "................",
            "................",
            "................",
            "................",
            "..........KKK...",
            "...K.K...KllkK..",
            "..KlKlK.KlllllK.",
            "KKllllllllllKK..",
            "KllyllyllllK....",
            ".KKllllllllK....",
            "...KlKKKKlK.....",
            "...KK....KK.....",
            "................",
            "................",
            "................",
        ],
        {"l": (92, 186, 64, 255), "y": (220, 230, 90, 255), "k": EYE},
    ),
    # Drawn for any species the generator adds that has no picture of its own.
    "unknown": (
        [
            "................",
            "................",
            "................",
            ".....KKKKKK.....",
            "....KppppppK....",
            "...KppwppwppK...",
            "...KppkppkppK...",
            "...KppppppppK...",
            "...KppKKKKppK...",
            "...KppppppppK...",
            "....KppppppK....",
            ".....KKKKKK.....",
            "................",
            "................",
            "................",
            "................",
        ],
        {"p": (190, 110, 220, 255), "w": WHITE, "k": EYE},
    ),
}

# 32x32 window icon: a stylised island with a peak and a sun.
ICON = (
    [
        "................................",
        "................................",
        "........................yyy.....",
        ".......................yyyyy....",
        "......................yyyyyyy...",
        "......................yyyyyyy...",
        ".......................yyyyy....",
        "........................yyy.....",
        "................................",
        "...............KK...............",
        "..............KssK..............",
        ".............KssssK.............",
        "............KssmmssK............",
        "...........KmmmmmmmmK...........",
        "..........KmmmmmmmmmmK..........",
        ".........KmmmmmmmmfffmK.........",
        "........KfmmmmmmmfffffmK........",
        ".......KffffmmmmffffffffK.......",
        "......KffffffffffffffffffK......",
        ".....KgffffffffffffffffffgK.....",
        "....KggggfffffffffffffgggggK....",
        "...Kbbggggggggggggggggggggbbk...",
        "..KbbbbbbbggggggggggggbbbbbbbK..",
        ".WWWbbbbbbbbbbbbbbbbbbbbbbbbWWW.",
        "WWWWWWWWWbbbbbbbbbbbbbbbWWWWWWWW",
        "wwwwwWWWWWWWWWWWWWWWWWWWWWWwwwww",
        "wwwwwwwwwwwWWWWWWWWWWwwwwwwwwwww",
        "wwwwwwwwwwwwwwwwwwwwwwwwwwwwwwww",
        "wwwwwwwwwwwwwwwwwwwwwwwwwwwwwwww",
        "wwwwwwwwwwwwwwwwwwwwwwwwwwwwwwww",
        "................................",
        "................................",
    ],
    {
        "y": (255, 208, 80, 255),
        "s": WHITE,
        "m": (128, 120, 118, 255),
        "f": (46, 120, 62, 255),
        "g": (120, 178, 84, 255),
        "b": (226, 206, 150, 255),
        "k": OUTLINE,
        "W": (70, 140, 210, 255),
        "w": (28, 72, 150, 255),
    },
)


def picture(rows: list[str], colours: dict[str, Colour], size: int) -> pygame.Surface:
    """Turn a character grid into a ``size`` x ``size`` RGBA surface."""
    if len(rows) != size or any(len(row) > size for row in rows):
        raise ValueError(f"art must be {size} rows of at most {size} characters")
    palette = {".": (0, 0, 0, 0), "K": OUTLINE, **colours}
    surface = pygame.Surface((size, size), pygame.SRCALPHA)
    for y, row in enumerate(rows):
        for x, char in enumerate(row.ljust(size, ".")):
            surface.set_at((x, y), palette[char])
    return surface


def main() -> int:
    """Write ``sprites/<species>.png`` and ``ui/icon.png``; print what was written."""
    (HERE / "sprites").mkdir(exist_ok=True)
    (HERE / "ui").mkdir(exist_ok=True)
    written = []
    for name, (rows, colours) in CREATURES.items():
        path = HERE / "sprites" / f"{name}.png"
        pygame.image.save(picture(rows, colours, 16), str(path))
        written.append(path)
    icon_path = HERE / "ui" / "icon.png"
    pygame.image.save(picture(*ICON, size=32), str(icon_path))
    written.append(icon_path)
    for path in written:
        print(path.relative_to(HERE.parent))
    return 0


if __name__ == "__main__":
    sys.exit(main())
