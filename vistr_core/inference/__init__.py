"""Inference on videos of any length: windows, prediction, identity linking, outputs.

- :mod:`.windows`: T-frame windows with overlap over a frame stream; which window outputs each frame.
- :mod:`.predictor`: one forward pass over a batch of windows and the reference post-processing.
- :mod:`.tracker`: Hungarian linking of instances across windows; per-track scores and classes.
- :mod:`.segmenter`: :class:`VideoSegmenter`, the streaming per-video API.
- :mod:`.writers`: the spool, results.json, PNG masks, MOTS text.
- :mod:`.segment`: :func:`segment_videos`, ``vistr segment`` as a library call.
- :mod:`.split`: :func:`predict_split` over a YouTube-VIS split (evaluation).
"""

from __future__ import annotations

from .segment import FrameRange, OutputOptions, SegmentSummary, VideoStatus, segment_videos
from .segmenter import FrameResult, VideoSegmenter, WindowResult
from .split import predict_split

__all__ = [
    "FrameRange",
    "FrameResult",
    "OutputOptions",
    "SegmentSummary",
    "VideoSegmenter",
    "VideoStatus",
    "WindowResult",
    "predict_split",
    "segment_videos",
]
