"""Where the overlays go for a window size, so they never cover each other.

The HUD, the minimap, the legend, the regeneration banner and the zoom note each have a preferred size
and corner. Windows are resizable and can be small, so the rectangles are placed one at a time, most
important first, each where it does not touch the ones already placed; an overlay shrinks (the minimap,
the legend's rows, the HUD's frame graph) or is left out when there is no room for it. The tooltip
follows the pointer into the room the others leave. Everything here is plain arithmetic on
``pygame.Rect`` (nothing is drawn), so the tests can sweep many window sizes.
"""

from __future__ import annotations

from dataclasses import dataclass

import pygame

GAP = 8  # between an overlay and the window edge or another overlay
STRIP_H = 26  # the key-help strip along the bottom
HUD_WIDTH = 300
HUD_FULL_H = 152  # three text lines and the frame-time graph
HUD_COMPACT_H = 72  # the three text lines only
HUD_MIN_WIDTH = 160  # narrower, the HUD's lines would be cut to nothing
GRAPH_MIN_VIEW = (640, 480)  # smaller windows get the compact HUD, leaving room for the map
MINIMAP_MAX = 180
MINIMAP_MIN = 48  # smaller, a click on it could not aim anywhere
MINIMAP_FRAME = 2  # the frame drawn around the minimap image
LEGEND_WIDTH = 210
LEGEND_HEAD_H = 30  # the title; rows start below it
LEGEND_ROW_H = 19
LEGEND_MIN_ROWS = 3  # a legend of one or two of a dozen biomes would cover the map and explain little
BANNER_SIZE = (360, 54)
BANNER_MIN_WIDTH = 240  # narrower, the banner's label would be cut short: the strip shows progress instead
NOTE_H = 24
NOTE_MIN_WIDTH = 140
# The tooltip goes below and right of the pointer's tip, clear of the arrow drawn there (about 12x19
# pixels on common desktops); left of or above the pointer it keeps a small gap.
POINTER_BOX = (16, 20)
POINTER_GAP = 6
TOOLTIP_GAP = 2  # between the tooltip and the window's edge or an overlay


def hud_rect(view: tuple[int, int], visible: bool = True, bottom: int = STRIP_H) -> pygame.Rect | None:
    """The HUD panel at the top left (None when hidden or there is no room above ``bottom`` pixels).

    It has its frame graph (:data:`HUD_FULL_H`) from :data:`GRAPH_MIN_VIEW` up, three lines below that.
    """
    if not visible:
        return None
    w, h = view
    graph = w >= GRAPH_MIN_VIEW[0] and h >= GRAPH_MIN_VIEW[1]
    rect = pygame.Rect(GAP, GAP, min(HUD_WIDTH, w - 2 * GAP), HUD_FULL_H if graph else HUD_COMPACT_H)
    if rect.width < HUD_MIN_WIDTH or rect.bottom > h - bottom - GAP:
        return None
    return rect


def minimap_size(world_size: tuple[int, int], box: int) -> tuple[int, int]:
    """The minimap image's size: the world scaled to fit a ``box`` x ``box`` square."""
    w, h = world_size
    scale = box / max(w, h, 1)
    return (max(1, round(w * scale)), max(1, round(h * scale)))


def free_spans(width: int, top: int, bottom: int, taken: list[pygame.Rect]) -> list[tuple[int, int]]:
    """The x intervals in ``[GAP, width - GAP)`` of the band ``top..bottom`` that no ``taken`` rect
    (with a ``GAP`` around it) reaches."""
    spans = [(GAP, width - GAP)]
    for rect in taken:
        if rect.bottom + GAP <= top or rect.top - GAP >= bottom:
            continue
        cut_left, cut_right = rect.left - GAP, rect.right + GAP
        spans = [
            piece
            for left, right in spans
            for piece in ((left, min(right, cut_left)), (max(left, cut_right), right))
            if piece[1] > piece[0]
        ]
    return spans


def _centred_in(spans: list[tuple[int, int]], centre: int, want: int, least: int) -> pygame.Rect | None:
    """A ``want``-wide (at least ``least``) x range near ``centre`` inside one of ``spans``, as a Rect of
    height 0; the span holding ``centre`` is preferred, else the widest."""
    if not spans:
        return None
    holding = [s for s in spans if s[0] <= centre < s[1]]
    left, right = holding[0] if holding else max(spans, key=lambda s: s[1] - s[0])
    width = min(want, right - left)
    if width < least:
        return None
    x = min(max(centre - width // 2, left), right - width)
    return pygame.Rect(x, 0, width, 0)


@dataclass(frozen=True)
class WorldOverlays:
    """The world scene's overlays for one window size; None means "not shown" (hidden or no room)."""

    strip: pygame.Rect
    """The key-help strip; it shows the regeneration progress when there is no room for the banner."""
    hud: pygame.Rect | None
    minimap: pygame.Rect | None
    """The minimap image; its frame is :data:`MINIMAP_FRAME` pixels around it."""
    minimap_box: int
    legend: pygame.Rect | None
    legend_rows: int
    """Biome rows the legend has room for (fewer than it has: the last row says how many more)."""
    banner: pygame.Rect | None
    note: pygame.Rect | None

    @property
    def hud_graph(self) -> bool:
        """True when the HUD has room for its frame-time graph."""
        return self.hud is not None and self.hud.height >= HUD_FULL_H

    def panels(self) -> list[pygame.Rect]:
        """Every rectangle an overlay covers (the minimap with its frame)."""
        framed = self.minimap.inflate(2 * MINIMAP_FRAME, 2 * MINIMAP_FRAME) if self.minimap else None
        rects = [self.strip, self.hud, framed, self.legend, self.banner, self.note]
        return [rect for rect in rects if rect is not None]


def world_overlays(
    view: tuple[int, int],
    *,
    hud: bool,
    world_size: tuple[int, int],
    legend_rows: int | None,
    banner: bool,
    note_width: int | None,
) -> WorldOverlays:
    """Place the world scene's overlays in a ``view``-sized window.

    ``hud``: the HUD is switched on; ``legend_rows``: the legend's biome count (None: switched off);
    ``banner``: a new world is being generated; ``note_width``: the zoom note's width (None: no note).
    Order of importance: help strip, HUD, minimap, legend, banner, note. The legend is placed before the
    banner so that it does not jump when a regeneration starts; the banner goes where there is room.
    """
    w, h = view
    strip = pygame.Rect(0, h - STRIP_H, w, STRIP_H)
    bottom = h - STRIP_H - GAP  # the lowest row an overlay may reach
    taken = [strip]
    hud_panel = hud_rect(view, hud)
    if hud_panel is not None:
        taken.append(hud_panel)

    minimap: pygame.Rect | None = None
    box = 0
    limit = min(MINIMAP_MAX, w // 4, h // 3)
    # Beside the HUD at the top right, or below it: whichever leaves the larger map.
    for top in sorted({GAP, *(r.bottom + GAP for r in taken if r is not strip)}):
        for size in range(limit, max(box, MINIMAP_MIN - 1), -1):
            image_w, image_h = minimap_size(world_size, size)
            framed = pygame.Rect(0, 0, image_w + 2 * MINIMAP_FRAME, image_h + 2 * MINIMAP_FRAME)
            framed.topright = (w - GAP, top)
            clear = framed.inflate(2 * GAP, 2 * GAP).collidelist(taken) < 0
            if framed.left >= GAP and framed.bottom <= bottom and clear:
                box = size
                minimap = framed.inflate(-2 * MINIMAP_FRAME, -2 * MINIMAP_FRAME)
                break
    if minimap is not None:
        taken.append(minimap.inflate(2 * MINIMAP_FRAME, 2 * MINIMAP_FRAME))

    legend: pygame.Rect | None = None
    rows = 0
    if legend_rows is not None and legend_rows > 0:
        width = min(LEGEND_WIDTH, w - 2 * GAP)
        # It grows up from the strip until it would come within GAP of something above it.
        above = [r for r in taken if r is not strip and r.right + GAP > GAP and r.left - GAP < GAP + width]
        ceiling = max([GAP, *(r.bottom + GAP for r in above)])
        room = (bottom - ceiling - LEGEND_HEAD_H) // LEGEND_ROW_H
        # All rows, or as many as fit with one more row saying how many are left out.
        rows = legend_rows if room >= legend_rows else room - 1
        if rows >= min(legend_rows, LEGEND_MIN_ROWS) and width >= LEGEND_WIDTH // 2:
            height = LEGEND_HEAD_H + LEGEND_ROW_H * min(legend_rows, room)
            legend = pygame.Rect(GAP, bottom - height, width, height)
            taken.append(legend)
        else:
            rows = 0

    banner_rect: pygame.Rect | None = None
    if banner:
        top = GAP + 2
        span = _centred_in(
            free_spans(w, top, top + BANNER_SIZE[1], taken), w // 2, BANNER_SIZE[0], BANNER_MIN_WIDTH
        )
        if span is not None and top + BANNER_SIZE[1] <= bottom:
            banner_rect = pygame.Rect(span.x, top, span.width, BANNER_SIZE[1])
            taken.append(banner_rect)

    note: pygame.Rect | None = None
    if note_width is not None:
        top = bottom - NOTE_H
        span = _centred_in(free_spans(w, top, bottom, taken), w // 2, note_width, NOTE_MIN_WIDTH)
        if span is not None and top >= GAP:
            note = pygame.Rect(span.x, top, span.width, NOTE_H)

    return WorldOverlays(strip, hud_panel, minimap, box, legend, rows, banner_rect, note)


def tooltip_rect(
    view: tuple[int, int],
    size: tuple[int, int],
    pointer: tuple[int, int],
    avoid: list[pygame.Rect],
    reach: float | None = None,
) -> pygame.Rect | None:
    """Where a ``size`` tooltip goes for the pointer at ``pointer`` in a ``view``-sized window.

    It stays inside the window, off every ``avoid`` rectangle (the overlays: a tooltip over the legend or
    the key help would hide what they say) and off the pointer's arrow, and if ``reach`` is given, within
    that many pixels of the pointer; of the places that allow, the one nearest the usual spot below-right
    of the pointer. None when there is no such place.
    """
    w, h = view
    tw, th = size
    px, py = pointer
    arrow = pygame.Rect(px - 1, py - 1, POINTER_BOX[0] + 1, POINTER_BOX[1] + 1)
    # A small gap keeps the tooltip's edge from merging with an overlay's or the window's.
    blocked = [rect.inflate(2 * TOOLTIP_GAP, 2 * TOOLTIP_GAP) for rect in avoid] + [arrow]
    low_x, high_x, low_y, high_y = TOOLTIP_GAP, w - TOOLTIP_GAP - tw, TOOLTIP_GAP, h - TOOLTIP_GAP - th
    preferred = (px + POINTER_BOX[0], py + POINTER_BOX[1])
    # Candidate edges: beside the pointer, against the window's edges and against each overlay's edges.
    xs = {preferred[0], px - POINTER_GAP - tw, px - tw // 2, low_x, high_x}
    ys = {preferred[1], py - POINTER_GAP - th, py - th // 2, low_y, high_y}
    for rect in blocked:
        xs |= {rect.right, rect.left - tw}
        ys |= {rect.bottom, rect.top - th}
    places = sorted(
        ((x, y) for x in xs if low_x <= x <= high_x for y in ys if low_y <= y <= high_y),
        key=lambda p: ((p[0] - preferred[0]) ** 2 + (p[1] - preferred[1]) ** 2, p),
    )
    for x, y in places:
        rect = pygame.Rect(x, y, tw, th)
        if reach is not None:
            dx = max(rect.left - px, px - rect.right, 0)
            dy = max(rect.top - py, py - rect.bottom, 0)
            if dx * dx + dy * dy > reach * reach:
                continue
        if rect.collidelist(blocked) < 0:
            return rect
    return None
