"""A scene of coloured squares and a fake VisTR that "segments" them, for the inference tests.

:class:`ColorSlotModel` thresholds the (un-normalized) frames into one mask per colour, at 1/4
resolution like VisTR, and puts colour c into a slot chosen by a permutation that changes on every
forward call, so track identities across windows can only come from the linker.
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from vistr_core.categories import CategoryMap
from vistr_core.config import DataConfig, ModelConfig

COLORS = ((230, 30, 30), (30, 220, 30), (40, 40, 230))  # red, green, blue
BACKGROUND = 60
SQUARE = 16


def object_boxes(t: int, height: int, width: int, speed: float = 1.0) -> list[tuple[int, int, int, int]]:
    """(y0, x0, y1, x1) of each coloured square in frame ``t``: each bounces left-right in its own band."""
    boxes = []
    span = width - SQUARE
    for c in range(len(COLORS)):
        pos = int(round(t * speed * (c + 1) + 7 * c)) % (2 * span)
        x0 = pos if pos < span else 2 * span - pos
        y0 = 4 + c * (height - SQUARE - 8) // max(len(COLORS) - 1, 1)
        boxes.append((y0, x0, y0 + SQUARE, x0 + SQUARE))
    return boxes


def scene_frame(
    t: int, height: int = 64, width: int = 96, speed: float = 1.0, hidden: dict[int, range] | None = None
) -> np.ndarray:
    """``uint8 [H, W, 3]`` RGB frame ``t`` of the scene; colour c is not drawn in frames ``hidden[c]``."""
    image = np.full((height, width, 3), BACKGROUND, np.uint8)
    boxes = object_boxes(t, height, width, speed)
    for c, (color, (y0, x0, y1, x1)) in enumerate(zip(COLORS, boxes, strict=True)):
        if t not in (hidden or {}).get(c, ()):
            image[y0:y1, x0:x1] = color
    return image


def object_masks(t: int, height: int = 64, width: int = 96, speed: float = 1.0) -> np.ndarray:
    """``bool [3, H, W]`` ground-truth masks of frame ``t``."""
    masks = np.zeros((len(COLORS), height, width), bool)
    for c, (y0, x0, y1, x1) in enumerate(object_boxes(t, height, width, speed)):
        masks[c, y0:y1, x0:x1] = True
    return masks


def write_scene_video(
    path: Path,
    count: int,
    *,
    height: int = 64,
    width: int = 96,
    speed: float = 1.0,
    rate: int = 25,
    hidden: dict[int, range] | None = None,
) -> Path:
    """An H.264 mp4 (lossless: qp 0, 4:4:4) of ``count`` scene frames."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=Fraction(rate), options={"qp": "0"})
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv444p"
        for t in range(count):
            frame = av.VideoFrame.from_ndarray(scene_frame(t, height, width, speed, hidden), format="rgb24")
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


class ColorSlotModel(nn.Module):
    """A VisTR stand-in: colour c → class index c + 1 (index 0 unused, like official weights)."""

    def __init__(self, num_frames: int = 8, num_instances: int = 5, *, permute: bool = True) -> None:
        super().__init__()
        self.config = ModelConfig(
            backbone="resnet18", num_frames=num_frames, num_instances=num_instances, num_classes=4
        )
        self.data_config = DataConfig(short_side=64, max_size=128)
        self.categories = CategoryMap((0, 1, 2, 3), ("__unused__", "red", "green", "blue"), frozenset({0}))
        self.anchor = nn.Parameter(torch.zeros(1))
        self.permute = permute
        self.calls = 0

    def forward(self, frames: Tensor, pad_mask: Tensor | None = None) -> dict[str, Tensor]:
        """frames: [B, T, 3, H, W] normalized → VisTR outputs with colours in permuted slots."""
        b, t, _, h, w = frames.shape
        n = self.config.num_instances
        mean = torch.tensor(self.data_config.mean).view(1, 1, 3, 1, 1)
        std = torch.tensor(self.data_config.std).view(1, 1, 3, 1, 1)
        rgb = (frames.float() * std + mean) * 255
        logits = torch.full((b, n, t, 5), -5.0)
        logits[..., -1] = 5.0  # empty slots say "no object"
        masks = torch.full((b, n, t, -(-h // 4), -(-w // 4)), -10.0)
        for i in range(b):
            generator = torch.Generator().manual_seed(1000 + self.calls)
            order = torch.randperm(n, generator=generator) if self.permute else torch.arange(n)
            self.calls += 1
            for c, color in enumerate(COLORS):
                target = torch.tensor(color, dtype=torch.float32).view(1, 3, 1, 1)
                hit = ((rgb[i] - target).abs().amax(1) < 60).float()  # [T, H, W]
                frac = F.avg_pool2d(hit[:, None], 4, ceil_mode=True)[:, 0]
                slot = int(order[c])
                masks[i, slot] = (frac - 0.5) * 20
                logits[i, slot, :, :] = -5.0
                logits[i, slot, :, c + 1] = 5.0
        return {"pred_logits": logits, "pred_boxes": torch.zeros(b, n, t, 4), "pred_masks": masks}


def fake_checkpoint_loading(monkeypatch, make_model) -> list:
    """Make every checkpoint `vistr segment` loads "load" as ``make_model()``; returns the list of
    checkpoints loaded (so tests can count loads). Keeps ``inference.segment._load``'s signature."""
    from vistr_core.inference import segment as segment_module

    loads: list = []

    def load(checkpoint, device, num_frames=None):
        loads.append(checkpoint)
        return make_model()

    monkeypatch.setattr(segment_module, "_load", load)
    return loads
