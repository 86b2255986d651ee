"""Masks as CVAT shapes: polygons (outer contours) and CVAT's bounding-box run-length masks.

Coordinates: CVAT's canvas pixel ``(x, y)`` covers ``[x, x+1) × [y, y+1)``. Polygons are written
through the centres of the mask's boundary pixels (contour points + 0.5), and read back by taking
the pixel each vertex lies in (``floor``) and filling the polygon with its boundary
(``cv2.fillPoly``), so a hole-free, one-part mask comes back pixel for pixel.

CVAT's mask shape (``<mask rle left top width height>``, what its exporter writes): ``rle`` lists
alternating run lengths, starting with background, over the ``width × height`` box at
``(left, top)`` in row-major order; ``width``/``height`` include both edge pixels.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

MIN_POLYGON_POINTS = 3  # CVAT refuses polygons with fewer vertices


@dataclass(frozen=True)
class MaskRle:
    """A CVAT mask shape: run lengths over the box ``[top:top+height, left:left+width]``."""

    counts: tuple[int, ...]
    left: int
    top: int
    width: int
    height: int


def outer_polygons(mask: np.ndarray) -> tuple[list[np.ndarray], bool]:
    """The outer contours of ``mask`` [H, W] bool as int ``[N, 2]`` (x, y) arrays, largest first,
    and whether the mask has a hole (a contour inside a part)."""
    contours, hierarchy = cv2.findContours(mask.astype(np.uint8), cv2.RETR_CCOMP, cv2.CHAIN_APPROX_SIMPLE)
    if hierarchy is None:
        return [], False
    parents = hierarchy[0][:, 3]
    outer = [c.reshape(-1, 2) for c, p in zip(contours, parents, strict=True) if p < 0]
    outer.sort(key=lambda c: -cv2.contourArea(c.astype(np.float32)))
    return outer, bool((parents >= 0).any())


def fill_polygons(polygons: list[np.ndarray], size: tuple[int, int]) -> np.ndarray:
    """bool [H, W]: the union of the polygons (float ``[N, 2]`` x, y in CVAT coordinates), edges included."""
    canvas = np.zeros(size, dtype=np.uint8)
    pixels = [np.floor(p).astype(np.int32) for p in polygons if len(p) >= 1]
    if pixels:
        cv2.fillPoly(canvas, pixels, 1)
        cv2.polylines(canvas, pixels, True, 1)  # 1-2 vertex "polygons" and thin slivers
    return canvas.astype(bool)


def as_single_polygon(mask: np.ndarray) -> np.ndarray | None:
    """``mask`` as one CVAT polygon (float ``[N, 2]``) if that polygon reproduces it exactly, else None
    (several parts, a hole, or too thin for a 3-point polygon)."""
    parts, hole = outer_polygons(mask)
    if hole or len(parts) != 1 or len(parts[0]) < MIN_POLYGON_POINTS:
        return None
    points = parts[0].astype(np.float64) + 0.5
    if not np.array_equal(fill_polygons([points], mask.shape), mask):
        return None
    return points


def polygons_for(mask: np.ndarray) -> list[np.ndarray]:
    """Every part of ``mask`` as a CVAT polygon (largest first). Holes are not representable and
    come back filled; a part too thin for 3 vertices becomes the box around its pixels."""
    polygons = []
    for part in outer_polygons(mask)[0]:
        if len(part) >= MIN_POLYGON_POINTS:
            polygons.append(part.astype(np.float64) + 0.5)
            continue
        (x0, y0), (x1, y1) = part.min(0), part.max(0) + 0.99  # corners inside the edge pixels
        polygons.append(np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]], dtype=np.float64))
    return polygons


def encode_cvat_rle(mask: np.ndarray) -> MaskRle:
    """The CVAT mask shape of a non-empty ``mask`` [H, W] bool (runs over its tight box)."""
    ys, xs = np.nonzero(mask)
    top, bottom, left, right = int(ys.min()), int(ys.max()), int(xs.min()), int(xs.max())
    flat = mask[top : bottom + 1, left : right + 1].ravel()
    changes = np.flatnonzero(np.diff(flat.astype(np.int8))) + 1
    bounds = np.concatenate([[0], changes, [flat.size]])
    runs = np.diff(bounds).tolist()
    if flat[0]:
        runs = [0, *runs]  # runs start with background
    return MaskRle(tuple(int(r) for r in runs), left, top, right - left + 1, bottom - top + 1)


def decode_cvat_rle(rle: MaskRle, size: tuple[int, int]) -> np.ndarray:
    """bool [H, W] of a CVAT mask shape; runs past the box or the frame are an error (ValueError)."""
    total = sum(rle.counts)
    if total != rle.width * rle.height:
        raise ValueError(f"rle covers {total} pixels but the box is {rle.width}x{rle.height}")
    height, width = size
    if rle.left < 0 or rle.top < 0 or rle.left + rle.width > width or rle.top + rle.height > height:
        raise ValueError(
            f"mask box {rle.left},{rle.top} {rle.width}x{rle.height} leaves the {width}x{height} frame"
        )
    values = np.zeros(len(rle.counts), dtype=bool)
    values[1::2] = True
    box = np.repeat(values, rle.counts).reshape(rle.height, rle.width)
    mask = np.zeros(size, dtype=bool)
    mask[rle.top : rle.top + rle.height, rle.left : rle.left + rle.width] = box
    return mask
