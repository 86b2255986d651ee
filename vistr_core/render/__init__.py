"""Rendering instance masks people want to look at: palettes, drawing, writers, overlays.

- :mod:`.palette`: one colour per track id, shared with the indexed PNG masks.
- :mod:`.crops`: masks as bounding-box crops, decoded straight from RLE.
- :mod:`.draw`: :class:`OverlayStyle`, :func:`draw_frame`, :func:`draw_crops`, label patches.
- :mod:`.legend`: the legend panel.
- :mod:`.writer`: H.264 / GIF / PNG-sequence writers, atomic, encoding on a background thread.
- :mod:`.tracks`: tracks from results lists and ground-truth files.
- :mod:`.overlay`: :class:`OverlayWriter` (streaming), :func:`render_overlay`, :func:`render_ground_truth`.
- :mod:`.request`: :func:`run_render`, the whole of ``vistr render``.
"""

from __future__ import annotations

from .crops import MaskCrop, crops_from_masks, crops_from_rles
from .draw import OverlayStyle, draw_crops, draw_frame, format_label
from .overlay import OverlayWriter, PaneInstances, RenderSummary, render_ground_truth, render_overlay
from .palette import palette_for_png, palette_rgb, track_color
from .request import RenderRequest, run_render
from .writer import FrameWriter, open_writer, output_kind, video_encoder

__all__ = [
    "FrameWriter",
    "MaskCrop",
    "OverlayStyle",
    "OverlayWriter",
    "PaneInstances",
    "RenderRequest",
    "RenderSummary",
    "crops_from_masks",
    "crops_from_rles",
    "draw_crops",
    "draw_frame",
    "format_label",
    "open_writer",
    "output_kind",
    "palette_for_png",
    "palette_rgb",
    "render_ground_truth",
    "render_overlay",
    "run_render",
    "track_color",
    "video_encoder",
]
