"""Drawing instances onto a frame: translucent masks, contours, boxes and labels.

Everything is vectorized and confined to each instance's bounding box: the blend is two OpenCV
passes over the box (scale, then add the colour under the mask), contours come from
``cv2.findContours`` on the crop, and labels are pre-rendered patches (cached per text and colour)
copied in with one slice assignment. Pixels outside every mask are never written unless contours,
boxes or labels are drawn there.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

import cv2
import numpy as np

from ..config import LOW_SCORE
from .crops import MaskCrop, crops_from_masks
from .labels import place_labels
from .palette import text_color_for, track_color

_FONT = cv2.FONT_HERSHEY_SIMPLEX


@dataclass(frozen=True)
class OverlayStyle:
    """How instances are drawn.

    Attributes:
        alpha: mask opacity in [0, 1] (0 = masks not filled).
        contours: outline each mask in its colour.
        boxes: draw each instance's bounding box.
        labels: draw a label (class, score, ``#track``) by each instance, clear of its mask and of
            the other labels where there is room (see :mod:`.labels`).
        legend: add a legend panel (track, colour, class, score) to the right of the frame.
        score_thr: instances (tracks) scoring below this are not drawn (default: the low-score
            line :data:`~vistr_core.config.LOW_SCORE`).
        thickness: contour/box line width in pixels; None = scaled to the frame (2 px at 720p).
        font_scale: label text scale; None = scaled to the frame (0.6 at 720p).
    """

    alpha: float = 0.5
    contours: bool = True
    boxes: bool = False
    labels: bool = True
    legend: bool = False
    score_thr: float = LOW_SCORE
    thickness: int | None = None
    font_scale: float | None = None

    def __post_init__(self) -> None:
        if not 0.0 <= self.alpha <= 1.0:
            raise ValueError(f"alpha must be within [0, 1], got {self.alpha}")

    def line_width(self, height: int, width: int) -> int:
        return self.thickness or max(1, round(min(height, width) / 360))

    def text_scale(self, height: int, width: int) -> float:
        return self.font_scale or float(np.clip(min(height, width) / 1200, 0.35, 1.2))


def format_label(category: str | None, score: float | None, track_id: int | None) -> str:
    """``"person 0.93 #3"``: the parts that are known, in that order."""
    parts = []
    if category:
        parts.append(category)
    if score is not None:
        parts.append(f"{score:.2f}")
    if track_id is not None:
        parts.append(f"#{track_id}")
    return " ".join(parts)


@lru_cache(maxsize=1024)
def label_patch(text: str, color: tuple[int, int, int], scale: float) -> np.ndarray:
    """``uint8 [h, w, 3]``: ``text`` on a box of ``color``, in black or white by luminance."""
    thickness = max(1, round(scale * 2))
    (tw, th), baseline = cv2.getTextSize(text, _FONT, scale, thickness)
    pad = max(2, round(th * 0.3))
    patch = np.empty((th + baseline + 2 * pad, tw + 2 * pad, 3), dtype=np.uint8)
    patch[:] = color
    cv2.putText(patch, text, (pad, pad + th), _FONT, scale, text_color_for(color), thickness, cv2.LINE_AA)
    patch.setflags(write=False)
    return patch


def paste(canvas: np.ndarray, patch: np.ndarray, x: int, y: int) -> None:
    """Copy ``patch`` onto ``canvas`` with its top-left corner at (x, y), clipped to the canvas."""
    height, width = canvas.shape[:2]
    x0, y0 = max(0, x), max(0, y)
    x1, y1 = min(width, x + patch.shape[1]), min(height, y + patch.shape[0])
    if x1 > x0 and y1 > y0:
        canvas[y0:y1, x0:x1] = patch[y0 - y : y1 - y, x0 - x : x1 - x]


def _fill(canvas: np.ndarray, crop: MaskCrop, color: tuple[int, int, int], alpha: float) -> None:
    x0, y0, x1, y1 = crop.box
    roi = canvas[y0:y1, x0:x1]
    keep = 1.0 - alpha
    scaled = cv2.multiply(roi, (keep, keep, keep, 0.0), dtype=cv2.CV_8U)
    # Add the colour only under the mask, writing straight into the frame (roi is a view).
    cv2.add(scaled, tuple(alpha * c for c in color) + (0.0,), dst=roi, mask=crop.mask)


def _outline(canvas: np.ndarray, crop: MaskCrop, color: tuple[int, int, int], width: int) -> None:
    x0, y0 = crop.box[:2]
    contours, _ = cv2.findContours(crop.mask, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE, offset=(x0, y0))
    cv2.drawContours(canvas, contours, -1, color, width, cv2.LINE_AA)


def draw_crops(
    image: np.ndarray,
    crops: Sequence[MaskCrop | None],
    track_ids: Sequence[int],
    labels: Sequence[str] | None = None,
    *,
    style: OverlayStyle = OverlayStyle(),
    out: np.ndarray | None = None,
    keep_clear: Sequence[tuple[int, int, int, int]] = (),
) -> np.ndarray:
    """Draw instances given as crops (see :mod:`.crops`); later instances are drawn on top.

    Args:
        image: ``uint8 [H, W, 3]`` RGB frame (not modified unless it is ``out``).
        crops: per instance, its :class:`MaskCrop` or None (absent in this frame: nothing drawn).
        track_ids: per instance, its track id (>= 1): picks the colour.
        labels: per instance, the label text ("" or None list = no label).
        style: what to draw (``style.score_thr`` is not applied here: pass only what to draw).
        out: where to draw (may be ``image`` itself); a copy of ``image`` if None.
        keep_clear: ``(x0, y0, x1, y1)`` areas labels stay off where there is room (e.g. a caption
            drawn afterwards).

    Returns:
        ``uint8 [H, W, 3]``, the frame with the instances drawn.
    """
    canvas = image.copy() if out is None else out
    if out is not None and out is not image:
        canvas[:] = image
    height, width = canvas.shape[:2]
    line = style.line_width(height, width)
    colors = [track_color(int(t)) for t in track_ids]
    for crop, color in zip(crops, colors, strict=True):
        if crop is None:
            continue
        if style.alpha > 0:
            _fill(canvas, crop, color, style.alpha)
        if style.contours:
            _outline(canvas, crop, color, line)
        if style.boxes:
            x0, y0, x1, y1 = crop.box
            cv2.rectangle(canvas, (x0, y0), (x1 - 1, y1 - 1), color, line)
    if style.labels and labels is not None:
        scale = style.text_scale(height, width)
        patches = [
            label_patch(text, color, scale) if crop is not None and text else None
            for crop, color, text in zip(crops, colors, labels, strict=True)
        ]
        sizes = [None if p is None else (p.shape[0], p.shape[1]) for p in patches]
        spots = place_labels(crops, sizes, height, width, keep_clear=keep_clear)
        for patch, spot in zip(patches, spots, strict=True):
            if patch is not None and spot is not None:
                paste(canvas, patch, *spot)
    return canvas


def draw_frame(
    image: np.ndarray,
    masks: np.ndarray,
    track_ids: Sequence[int],
    labels: Sequence[str] | None = None,
    *,
    boxes: np.ndarray | None = None,
    style: OverlayStyle = OverlayStyle(),
    out: np.ndarray | None = None,
) -> np.ndarray:
    """Draw full-frame masks onto ``image``.

    Args:
        image: ``uint8 [H, W, 3]`` RGB.
        masks: ``bool/uint8 [N, H, W]`` (nonzero = instance).
        track_ids: ``[N]`` track ids (>= 1); colour = :func:`~.palette.track_color`.
        labels: ``[N]`` label texts (see :func:`format_label`) or None.
        boxes: ``[N, 4]`` (x0, y0, x1, y1, end exclusive) if known; found from the masks otherwise.
        style, out: as in :func:`draw_crops`.

    Returns:
        ``uint8 [H, W, 3]``.
    """
    if masks.ndim != 3 or masks.shape[1:] != image.shape[:2]:
        raise ValueError(f"masks {masks.shape} do not fit image {image.shape}: expected [N, H, W]")
    return draw_crops(image, crops_from_masks(masks, boxes), track_ids, labels, style=style, out=out)
