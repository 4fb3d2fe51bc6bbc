"""Small drawing helpers shared by the scenes and the HUD: cached text, panels, progress bars."""

from __future__ import annotations

import pygame

from game import palette

ELLIPSIS = "..."  # ASCII dots: any font a player's pygame falls back to has them


class Text:
    """Renders text with pygame's default font, caching each (string, size, colour) Surface.

    Font rendering costs far more than a blit, and most HUD lines repeat from frame to frame.
    """

    def __init__(self, max_entries: int = 600) -> None:
        self._fonts: dict[int, pygame.font.Font] = {}
        self._cache: dict[tuple[str, int, tuple[int, int, int]], pygame.Surface] = {}
        self._fits: dict[tuple[str, int, int], str] = {}
        self._max = max_entries

    def font(self, size: int) -> pygame.font.Font:
        """The default font at ``size`` pixels."""
        if size not in self._fonts:
            self._fonts[size] = pygame.font.Font(None, size)
        return self._fonts[size]

    def render(
        self, text: str, size: int = 20, colour: tuple[int, int, int] = palette.TEXT
    ) -> pygame.Surface:
        """``text`` as an anti-aliased Surface with a transparent background."""
        key = (text, size, colour)
        surface = self._cache.get(key)
        if surface is None:
            if len(self._cache) >= self._max:
                self._cache.clear()  # cheaper than LRU bookkeeping; refills within a frame or two
            surface = self.font(size).render(text, True, colour)
            self._cache[key] = surface
        return surface

    def fit(self, text: str, size: int, width: int) -> str:
        """``text`` if it is at most ``width`` pixels wide at ``size``, else its start with "..." that is.

        Panels have fixed widths and some strings do not (10-digit seeds, stage names from VM 1); a cut
        line is better than text running out of its panel over the map.
        """
        key = (text, size, width)
        fitted = self._fits.get(key)
        if fitted is None:
            font = self.font(size)
            full = font.size(text)[0]
            fitted = text
            if full > width:

                def fits(keep: int) -> bool:
                    return bool(font.size(text[:keep].rstrip() + ELLIPSIS)[0] <= width)

                # Start from the share of the characters that fit, then adjust a character at a time.
                keep = max(0, min(len(text) - 1, len(text) * width // max(1, full)))
                while keep > 0 and not fits(keep):
                    keep -= 1
                while keep + 1 < len(text) and fits(keep + 1):
                    keep += 1
                fitted = text[:keep].rstrip() + ELLIPSIS if keep > 0 and fits(keep) else ""
            if len(self._fits) >= self._max:
                self._fits.clear()
            self._fits[key] = fitted  # the HUD asks for the same lines every frame
        return fitted

    def fitting_size(self, text: str, sizes: tuple[int, ...], width: int) -> int:
        """The first of ``sizes`` at which ``text`` is at most ``width`` pixels wide, else the last one.

        Titles shrink in small windows instead of running off them (cut what still does not fit with
        :meth:`fit`).
        """
        return next((size for size in sizes if self.font(size).size(text)[0] <= width), sizes[-1])

    def first_fitting(self, phrasings: tuple[str, ...], size: int, width: int) -> str:
        """The first of ``phrasings`` (longest first) at most ``width`` pixels wide at ``size``, else the
        last one cut to fit: a help line says as much as the window has room for."""
        font = self.font(size)
        for line in phrasings:
            if font.size(line)[0] <= width:
                return line
        return self.fit(phrasings[-1], size, width)

    def wrap(self, text: str, size: int, width: int) -> list[str]:
        """Split ``text`` into lines no wider than ``width`` pixels (long words are cut)."""
        font = self.font(size)
        width = max(1, width)
        lines: list[str] = []
        for paragraph in text.splitlines() or [""]:
            paragraph = paragraph.replace("\t", "    ").rstrip()
            # Keep indentation (tracebacks read by it); the rest of the line wraps at spaces.
            indent = paragraph[: len(paragraph) - len(paragraph.lstrip(" "))]
            line = indent
            for word in paragraph.lstrip(" ").split(" "):
                candidate = f"{line} {word}" if line.strip() else line + word
                if font.size(candidate)[0] <= width:
                    line = candidate
                    continue
                if line.strip():
                    lines.append(line)
                while font.size(word)[0] > width and len(word) > 1:
                    cut = max(1, len(word) * width // max(1, font.size(word)[0]))
                    # That guess assumes characters of average width: wide ones first make the piece
                    # too wide, so measure and shorten it until it fits.
                    while cut > 1 and font.size(word[:cut])[0] > width:
                        cut -= 1
                    lines.append(word[:cut])
                    word = word[cut:]
                line = word
            lines.append(line)
        return lines


_shades: dict[tuple[int, int, int], pygame.Surface] = {}


def panel(target: pygame.Surface, rect: pygame.Rect, alpha: int = 215) -> None:
    """A translucent dark panel with a thin edge, the backdrop of every HUD element.

    An empty ``rect`` draws nothing (a Surface cannot have a negative size; tiny windows give such rects).
    """
    if rect.width <= 0 or rect.height <= 0:
        return
    key = (rect.width, rect.height, alpha)
    shade = _shades.get(key)
    if shade is None:
        if len(_shades) > 64:
            _shades.clear()  # tooltips come in many sizes; keep the cache small
        shade = _shades[key] = pygame.Surface(rect.size, pygame.SRCALPHA)
        shade.fill((*palette.PANEL, alpha))
    target.blit(shade, rect.topleft)
    pygame.draw.rect(target, palette.PANEL_EDGE, rect, 1, border_radius=3)


def progress_bar(
    target: pygame.Surface, rect: pygame.Rect, fraction: float, colour: tuple[int, int, int] = palette.ACCENT
) -> None:
    """A bar filled to ``fraction`` (clamped to 0..1)."""
    fraction = min(1.0, max(0.0, fraction))
    pygame.draw.rect(target, (40, 46, 62), rect, border_radius=4)
    if fraction > 0:
        filled = pygame.Rect(rect.x, rect.y, max(4, round(rect.width * fraction)), rect.height)
        pygame.draw.rect(target, colour, filled, border_radius=4)
    pygame.draw.rect(target, palette.PANEL_EDGE, rect, 1, border_radius=4)
