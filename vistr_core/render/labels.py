"""Where each instance's label goes: clear of its own mask and of the other labels, inside the frame.

Labels are placed one at a time, the instance drawn last (the best-scoring, see
:func:`~.overlay.render_overlay`) first, so the most important labels get the best places. Each
label takes the first candidate place, in this order, that fits:

1. just above the object's box (left-aligned, then right-aligned), then just below it;
2. beside the box (right, then left; top-aligned, then bottom-aligned);
3. stacked: one label height further above or below the box per step, nearest first, so labels
   of objects that share a place (duplicate tracks) line up instead of hiding each other;
4. inside the box's top-left corner (the last resort, e.g. an object that fills the frame).

A place *fits* when it lies inside the frame and covers no other label, no pixel of its own mask
and no pixel of another mask. When no place does, the first one that covers other masks but
neither its own mask nor a label is taken, then one that covers only its own mask, then the first
place inside the frame. Candidates are shifted sideways into the frame, never cut off by its edge.

"The object's box" is the box of its mask's largest connected piece (:func:`anchor_box`): a mask
in pieces (stray pixels far away, a slot that covers two objects at once) has a box spanning them
all, and a label placed by that box can sit where no piece of its object is.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import cv2
import numpy as np

from .crops import MaskCrop

Rect = tuple[int, int, int, int]  # x0, y0, x1, y1; end exclusive

_CLEAR, _OVER_OTHERS, _OVER_OWN, _OVER_LABEL = range(4)


def _candidates(box: Rect, h: int, w: int, height: int, width: int) -> Iterator[tuple[int, int]]:
    """Top-left corners to try for an ``h x w`` label of the object in ``box`` (see the module doc)."""
    x0, y0, x1, y1 = box
    yield from ((x0, y0 - h), (x1 - w, y0 - h), (x0, y1), (x1 - w, y1))
    yield from ((x1, y0), (x1, y1 - h), (x0 - w, y0), (x0 - w, y1 - h))
    for step in range(1, (height + h - 1) // h + 1):
        above, below = y0 - h * (step + 1), y1 + h * step
        if above < 0 and below + h > height:
            break
        yield from ((x0, above), (x0, below))


#: Pieces are found on the mask subsampled to at most this many pixels a side: finding them at full
#: size costs 0.56 ms for a 300x300 crop against 0.03 ms at 64x64 (OpenCV, one thread, AMD EPYC),
#: and would double the cost of drawing a 720p frame of ten tracks.
_PIECE_GRID = 64


def anchor_box(crop: MaskCrop) -> Rect:
    """The frame box ``(x0, y0, x1, y1)`` of ``crop``'s largest connected piece (8-connected).

    Pieces are found on the mask subsampled every ``step`` pixels (``step`` keeps it within
    ``_PIECE_GRID`` a side); the largest piece's box is then read from the full-size mask around
    it, exact unless another piece lies within one step of it. A mask whose one piece spans its
    box, or whose pieces all vanish when subsampled, keeps ``crop.box``.
    """
    h, w = crop.mask.shape
    step = max(1, -(-max(h, w) // _PIECE_GRID))
    coarse = np.ascontiguousarray(crop.mask[::step, ::step])
    count, _, stats, _ = cv2.connectedComponentsWithStats(coarse, connectivity=8)
    if count < 2:  # every piece vanished when subsampled
        return crop.box
    largest = 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
    cx, cy, cw, ch = (int(v) for v in stats[largest, :4])
    if count == 2 and (cx, cy, cw, ch) == (0, 0, coarse.shape[1], coarse.shape[0]):
        return crop.box  # one piece that spans the crop (the common case): nothing to refine
    # The piece's full-size pixels lie between its samples and the next samples outside it; the
    # window holds at least its sample at (cy * step, cx * step), so its box is never empty.
    x0, y0 = max(0, (cx - 1) * step + 1), max(0, (cy - 1) * step + 1)
    x1, y1 = min(w, (cx + cw) * step), min(h, (cy + ch) * step)
    px, py, pw, ph = cv2.boundingRect(crop.mask[y0:y1, x0:x1])
    bx, by = crop.box[:2]
    return (bx + x0 + px, by + y0 + py, bx + x0 + px + pw, by + y0 + py + ph)


def _covers(rect: Rect, crop: MaskCrop) -> bool:
    """Whether a label at ``rect`` would hide any pixel of ``crop``'s mask."""
    x0, y0, x1, y1 = rect
    bx0, by0, bx1, by1 = crop.box
    ix0, iy0, ix1, iy1 = max(x0, bx0), max(y0, by0), min(x1, bx1), min(y1, by1)
    if ix1 <= ix0 or iy1 <= iy0:
        return False
    return bool(crop.mask[iy0 - by0 : iy1 - by0, ix0 - bx0 : ix1 - bx0].any())


def _conflict(
    rect: Rect, crop: MaskCrop, placed: Sequence[Rect], others: Sequence[MaskCrop]
) -> tuple[int, int]:
    """How badly a label at ``rect`` hides things: a ``_CLEAR`` … ``_OVER_LABEL`` rank, then (for
    ``_OVER_LABEL``) the area of other labels it covers, so that without room labels overlap least."""
    x0, y0, x1, y1 = rect
    hidden = sum(
        max(0, min(x1, px1) - max(x0, px0)) * max(0, min(y1, py1) - max(y0, py0))
        for px0, py0, px1, py1 in placed
    )
    if hidden:
        return _OVER_LABEL, hidden
    if _covers(rect, crop):
        return _OVER_OWN, 0
    return (_OVER_OTHERS if any(_covers(rect, other) for other in others) else _CLEAR), 0


def _place_one(
    crop: MaskCrop,
    size: tuple[int, int],
    placed: Sequence[Rect],
    others: Sequence[MaskCrop],
    frame: tuple[int, int],
) -> tuple[int, int]:
    height, width = frame
    h, w = size
    best: tuple[int, int] | None = None
    best_rank = (_OVER_LABEL + 1, 0)
    anchor = anchor_box(crop)
    for x, y in _candidates(anchor, h, w, height, width):
        x = min(max(x, 0), max(width - w, 0))  # shifted sideways into the frame
        if y < 0 or y + h > height:
            continue
        rank = _conflict((x, y, x + w, y + h), crop, placed, others)
        if rank < best_rank:
            best, best_rank = (x, y), rank
            if rank[0] == _CLEAR:
                break
    if best is not None and best_rank[0] < _OVER_OWN:
        return best
    # Nothing outside the object is free: its box's top-left corner, unless a label is there.
    x0, y0 = anchor[:2]
    corner = (min(max(x0, 0), max(width - w, 0)), min(max(y0, 0), max(height - h, 0)))
    if (
        best is None
        or _conflict((*corner, corner[0] + w, corner[1] + h), crop, placed, others)[0] <= _OVER_OWN
    ):
        return corner
    return best


def place_labels(
    crops: Sequence[MaskCrop | None],
    sizes: Sequence[tuple[int, int] | None],
    height: int,
    width: int,
    *,
    keep_clear: Sequence[Rect] = (),
) -> list[tuple[int, int] | None]:
    """Top-left corners ``(x, y)`` for the instances' labels (see the module docstring).

    Args:
        crops: per instance, its mask crop (None = absent in this frame: no label).
        sizes: per instance, its label's ``(h, w)`` in pixels (None = no label).
        height, width: the frame size.
        keep_clear: ``(x0, y0, x1, y1)`` areas that labels avoid like other labels (a pane title).

    Returns:
        per instance, where its label's top-left corner goes, or None for no label.
    """
    spots: list[tuple[int, int] | None] = [None] * len(crops)
    placed: list[Rect] = list(keep_clear)
    for k in reversed(range(len(crops))):  # drawn last = most important = placed first
        crop, size = crops[k], sizes[k]
        if crop is None or size is None:
            continue
        others = [c for j, c in enumerate(crops) if j != k and c is not None]
        x, y = _place_one(crop, size, placed, others, (height, width))
        spots[k] = (x, y)
        placed.append((x, y, x + size[1], y + size[0]))
    return spots
