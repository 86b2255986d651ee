"""Tiny test videos whose pixels spell out their frame index (shared by the video and render tests)."""

from __future__ import annotations

from collections.abc import Sequence
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np

BLOCK = 8  # index bits are 8x8 black/white blocks: they survive lossy compression


def index_image(index: int, height: int = 32, width: int = 48) -> np.ndarray:
    """``uint8 [H, W, 3]`` RGB: the top row of 8x8 blocks is ``index`` in binary (LSB first)."""
    image = np.full((height, width, 3), 96, np.uint8)
    for bit in range(width // BLOCK):
        value = 255 if (index >> bit) & 1 else 0
        image[:BLOCK, bit * BLOCK : (bit + 1) * BLOCK] = value
    return image


def read_index(image: np.ndarray) -> int:
    """Invert :func:`index_image` on a decoded (possibly lossy) frame."""
    index = 0
    for bit in range(image.shape[1] // BLOCK):
        block = image[1 : BLOCK - 1, bit * BLOCK + 1 : (bit + 1) * BLOCK - 1]
        if block.mean() > 128:
            index |= 1 << bit
    return index


def write_video(
    path: Path,
    count: int,
    *,
    size: tuple[int, int] = (48, 32),
    rate: int = 25,
    pts_ms: Sequence[int] | None = None,
    codec: str = "mpeg4",
    rotation: int | None = None,
) -> Path:
    """Write ``count`` index frames (``size`` = (W, H)); ``pts_ms`` gives irregular timestamps (VFR)."""
    width, height = size
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=rate)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        if pts_ms is not None:
            stream.time_base = Fraction(1, 1000)
        if rotation is not None:
            stream.set_display_rotation(rotation)
        for i in range(count):
            frame = av.VideoFrame.from_ndarray(index_image(i, height, width), format="rgb24")
            if pts_ms is not None:
                frame.pts, frame.time_base = pts_ms[i], Fraction(1, 1000)
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def write_frames(folder: Path, names: Sequence[str], *, size: tuple[int, int] = (48, 32)) -> Path:
    """Write frame ``k`` (index_image(k)) under ``names[k]`` in ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    width, height = size
    for k, name in enumerate(names):
        cv2.imwrite(str(folder / name), cv2.cvtColor(index_image(k, height, width), cv2.COLOR_RGB2BGR))
    return folder
