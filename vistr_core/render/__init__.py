"""Rendering instance masks people want to look at: palettes, drawing, writers, overlays.

- :mod:`.palette`: one colour per track id, shared with the indexed PNG masks.
- :mod:`.crops`: masks as bounding-box crops, decoded straight from RLE.
- :mod:`.draw`: :class:`OverlayStyle`, :func:`draw_frame`, :func:`draw_crops`.
- :mod:`.writer`: H.264 / GIF / PNG-sequence writers, atomic.
"""

from __future__ import annotations

from .crops import MaskCrop, crops_from_masks, crops_from_rles
from .draw import OverlayStyle, draw_crops, draw_frame, format_label
from .palette import palette_for_png, palette_rgb, track_color
from .writer import FrameWriter, open_writer, output_kind, video_encoder

__all__ = [
    "FrameWriter",
    "MaskCrop",
    "OverlayStyle",
    "crops_from_masks",
    "crops_from_rles",
    "draw_crops",
    "draw_frame",
    "format_label",
    "open_writer",
    "output_kind",
    "palette_for_png",
    "palette_rgb",
    "track_color",
    "video_encoder",
]
