"""One colour per track id, shared by every output: overlays, legends and indexed PNG masks.

Index 0 is the background (black). Ids 1-18 take a curated table of well-separated colours (after
the widely used "20 distinct colours" list, without its greys, white and near-white beige); ids
beyond step the hue by the golden ratio (so consecutive ids are far apart on the colour wheel)
while cycling through three saturation/value levels. The table has 256 entries; id ``k > 255``
wraps to ``(k - 1) % 255 + 1`` so it never becomes the background.
"""

from __future__ import annotations

import colorsys
from functools import cache

import numpy as np

_CURATED = (
    (230, 25, 75),  # red
    (60, 180, 75),  # green
    (0, 130, 200),  # blue
    (255, 225, 25),  # yellow
    (245, 130, 48),  # orange
    (145, 30, 180),  # purple
    (70, 240, 240),  # cyan
    (240, 50, 230),  # magenta
    (210, 245, 60),  # lime
    (250, 190, 212),  # pink
    (0, 128, 128),  # teal
    (220, 190, 255),  # lavender
    (170, 110, 40),  # brown
    (128, 0, 0),  # maroon
    (170, 255, 195),  # mint
    (128, 128, 0),  # olive
    (0, 0, 128),  # navy
    (255, 215, 180),  # apricot
)
_GOLDEN = 0.6180339887498949
_LEVELS = ((0.85, 0.95), (0.6, 0.8), (0.95, 0.65))  # (saturation, value) cycled so neighbours differ
PALETTE_SIZE = 256


@cache
def _table() -> np.ndarray:
    table = np.zeros((PALETTE_SIZE, 3), dtype=np.uint8)
    table[1 : 1 + len(_CURATED)] = _CURATED
    for k in range(1 + len(_CURATED), PALETTE_SIZE):
        hue = (0.11 + k * _GOLDEN) % 1.0
        saturation, value = _LEVELS[k % len(_LEVELS)]
        table[k] = [round(255 * c) for c in colorsys.hsv_to_rgb(hue, saturation, value)]
    table.setflags(write=False)
    return table


def palette_index(track_id: int) -> int:
    """The palette entry of ``track_id`` (>= 1): itself up to 255, then wrapping over 1..255."""
    if track_id < 1:
        raise ValueError(f"track ids start at 1, got {track_id}")
    return (track_id - 1) % (PALETTE_SIZE - 1) + 1


def palette_rgb(num: int = PALETTE_SIZE) -> np.ndarray:
    """``uint8 [num, 3]``: row 0 black (background), row k the colour of track k (wrapping past 255)."""
    if num < 1:
        raise ValueError(f"num must be >= 1, got {num}")
    rows = np.arange(num)
    rows[1:] = (rows[1:] - 1) % (PALETTE_SIZE - 1) + 1
    return _table()[rows]


def track_color(track_id: int) -> tuple[int, int, int]:
    """RGB colour of one track."""
    r, g, b = _table()[palette_index(track_id)]
    return int(r), int(g), int(b)


def palette_for_png() -> list[int]:
    """Flat ``[r0, g0, b0, r1, ...]`` (768 ints) for ``PIL.Image.putpalette`` of indexed mask PNGs."""
    return _table().reshape(-1).tolist()


def text_color_for(background: tuple[int, int, int]) -> tuple[int, int, int]:
    """Black or white, whichever reads better on ``background`` (WCAG relative luminance)."""

    def linear(c: int) -> float:
        s = c / 255
        return s / 12.92 if s <= 0.04045 else ((s + 0.055) / 1.055) ** 2.4

    r, g, b = (linear(c) for c in background)
    luminance = 0.2126 * r + 0.7152 * g + 0.0722 * b
    # Contrast with black is (L + 0.05) / 0.05, with white 1.05 / (L + 0.05): equal at L ~ 0.179.
    return (0, 0, 0) if luminance > 0.179 else (255, 255, 255)
