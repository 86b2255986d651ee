"""A legend panel beside the frame: one row per track with its colour, id, class and score.

The panel is rendered once per video in two versions (tracks present in the frame in bright text,
absent ones dimmed); each frame copies the rows it needs, so the legend costs a small memcpy.
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

from .palette import track_color

_FONT = cv2.FONT_HERSHEY_SIMPLEX
_BACKGROUND = (24, 24, 28)
_BRIGHT = (240, 240, 240)
_DIM = (110, 110, 115)


class LegendPanel:
    """``uint8 [height, width, 3]`` panels listing ``entries`` = ``(track_id, text)``, in the given order.

    Rows that do not fit are summarised as ``+N more`` on the last row.
    """

    def __init__(self, entries: Sequence[tuple[int, str]], *, height: int, scale: float) -> None:
        thickness = max(1, round(scale * 2))
        (_, text_h), baseline = cv2.getTextSize("Ag#0", _FONT, scale, thickness)
        self.row_height = text_h + baseline + max(6, text_h // 2)
        pad = self.row_height // 3
        widest = max((cv2.getTextSize(t, _FONT, scale, thickness)[0][0] for _, t in entries), default=0)
        swatch = self.row_height - pad
        self.width = int(
            pad * 3 + swatch + max(widest, cv2.getTextSize("+000 more", _FONT, scale, thickness)[0][0])
        )
        self.width += self.width % 2  # keeps yuv420p frames even when added to an even frame
        rows = max(1, (height - pad) // self.row_height)
        shown = list(entries) if len(entries) <= rows else list(entries[: rows - 1])
        self.row_of = {track_id: k for k, (track_id, _) in enumerate(shown)}
        self.top = pad
        self.panels = []
        for text_color in (_DIM, _BRIGHT):
            panel = np.empty((height, self.width, 3), dtype=np.uint8)
            panel[:] = _BACKGROUND
            for k, (track_id, text) in enumerate(shown):
                y = pad + k * self.row_height
                cv2.rectangle(panel, (pad, y), (pad + swatch - 1, y + swatch - 1), track_color(track_id), -1)
                baseline_y = y + swatch - max(1, (swatch - text_h) // 2)
                cv2.putText(
                    panel,
                    text,
                    (2 * pad + swatch, baseline_y),
                    _FONT,
                    scale,
                    text_color,
                    thickness,
                    cv2.LINE_AA,
                )
            if len(shown) < len(entries):
                y = pad + len(shown) * self.row_height + swatch - 2
                more = f"+{len(entries) - len(shown)} more"
                cv2.putText(panel, more, (pad, y), _FONT, scale, _DIM, thickness, cv2.LINE_AA)
            panel.setflags(write=False)
            self.panels.append(panel)

    def draw(self, out: np.ndarray, present: Sequence[int]) -> None:
        """Write the panel into ``out`` ``[height, >= width, 3]`` (left-aligned; any extra width is
        background, so panes with different legends line up), highlighting the tracks in ``present``."""
        dim, bright = self.panels
        out[:, self.width :] = _BACKGROUND
        out = out[:, : self.width]
        out[:] = dim
        for track_id in present:
            k = self.row_of.get(int(track_id))
            if k is not None:
                y = self.top + k * self.row_height
                out[y : y + self.row_height] = bright[y : y + self.row_height]
