"""Colour in linking and merging: two look-alikes of one class, told apart by their colours."""

from __future__ import annotations

import json
from fractions import Fraction

import av
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from _segment_fakes import ColorSlotModel

from vistr_core.config import InferConfig
from vistr_core.errors import ConfigError
from vistr_core.inference.segment import segment_videos
from vistr_core.inference.tracker import merge_copies

BRIGHT, DARK = (230, 30, 30), (140, 30, 90)  # one class ("red"), colours 108 apart
LEFT, RIGHT = (20, 36, 8, 24), (20, 36, 40, 56)  # y0, y1, x0, x1 of the two squares


def _look_alikes_video(path, count: int = 40, right: tuple[int, int, int, int] = RIGHT):
    """An mp4 of ``count`` frames: a bright red square at LEFT and a dark red one at ``right``."""
    image = np.full((64, 96, 3), 60, np.uint8)
    for color, (y0, y1, x0, x1) in ((BRIGHT, LEFT), (DARK, right)):
        image[y0:y1, x0:x1] = color
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=Fraction(25), options={"qp": "0"})
        stream.width, stream.height, stream.pix_fmt = 96, 64, "yuv444p"
        for _ in range(count):
            for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


class LookAlikesModel(ColorSlotModel):
    """Both squares are class "red". Slot 0 holds the bright one and slot 1 the dark one until
    window ``swap``, from which on they hold the other; in that window's first two frames (the ones
    it shares with the window before) both slots cover both squares, so their masks cannot tell
    which slot continues which track. A VisTR's slot does this when look-alikes cross."""

    def __init__(self, swap: int = 3) -> None:
        super().__init__(num_frames=8, num_instances=4, permute=False)
        self.swap = swap

    def forward(self, frames, pad_mask=None):
        window = self.calls
        self.calls += 1
        b, t, _, h, w = frames.shape
        mean = torch.tensor(self.data_config.mean).view(1, 1, 3, 1, 1)
        std = torch.tensor(self.data_config.std).view(1, 1, 3, 1, 1)
        rgb = ((frames.float() * std + mean) * 255)[0]  # [T, 3, H, W]
        squares = []
        for color in (BRIGHT, DARK):
            hit = (
                (rgb - torch.tensor(color, dtype=torch.float32).view(1, 3, 1, 1)).abs().amax(1) < 30
            ).float()
            squares.append(F.avg_pool2d(hit[:, None], 4, ceil_mode=True)[:, 0] > 0.5)  # [T, h, w]
        first, second = squares if window < self.swap else squares[::-1]
        if window == self.swap:
            first, second = first.clone(), second.clone()
            first[:2] = second[:2] = squares[0][:2] | squares[1][:2]
        logits = torch.full((1, 4, t, 5), -5.0)
        logits[..., -1] = 5.0
        masks = torch.full((1, 4, t, *squares[0].shape[-2:]), -10.0)
        for slot, mask in enumerate((first, second)):
            masks[0, slot] = torch.where(mask, 10.0, -10.0)
            logits[0, slot, :, -1] = -5.0
            logits[0, slot, :, 1] = 5.0  # both "red"
        return {"pred_logits": logits, "pred_boxes": torch.zeros(1, 4, t, 4), "pred_masks": masks}


def _tracks(tmp_path, video, model, **settings):
    """results.json of one segmentation of ``video``: [track]."""
    out = tmp_path / "_".join(f"{k}{v}" for k, v in settings.items())
    segment_videos([video], out, model=model, infer=InferConfig(overlap=2, **settings), device="cpu")
    return json.loads((out / video.stem / "results.json").read_text())


def _columns(segmentation) -> set[int]:
    from pycocotools import mask as mask_utils

    mask = mask_utils.decode({"size": segmentation["size"], "counts": segmentation["counts"].encode()})
    return set(np.flatnonzero(mask.any(0)).tolist())


def test_colour_keeps_each_look_alike_on_its_own_track(tmp_path):
    video = _look_alikes_video(tmp_path / "pair.mp4")
    for weight, swapped in ((0.0, True), (InferConfig.colour_weight, False)):
        tracks = _tracks(tmp_path, video, LookAlikesModel(), colour_weight=weight, relink_colour=None)
        assert len(tracks) == 2
        for track in tracks:
            first, last = _columns(track["segmentations"][0]), _columns(track["segmentations"][-1])
            # without colour the slot decides and each track ends on the other square
            assert (first == last) is not swapped, (weight, sorted(first), sorted(last))


class TouchingCopiesModel(LookAlikesModel):
    """Never swaps; slot 2 covers both squares with a lower score, so it overlaps each of them."""

    def __init__(self) -> None:
        super().__init__(swap=10**6)

    def forward(self, frames, pad_mask=None):
        out = super().forward(frames, pad_mask)
        both = (out["pred_masks"][0, 0] > 0) | (out["pred_masks"][0, 1] > 0)
        out["pred_masks"][0, 2] = torch.where(both, 10.0, -10.0)
        out["pred_logits"][0, 2, :, -1] = -5.0
        out["pred_logits"][0, 2, :, 1] = 1.0  # red, less sure
        return out


def test_merge_iou_never_joins_look_alikes_of_different_colours(tmp_path):
    """Slot 2's mask covers both squares and overlaps each by IoU 0.5: --merge-iou 0.3 would merge
    it into the surer slot 0 (the bright square, whose mask would then cover both) and leave the
    dark square's slot 1 on its own; its colour is the median of both squares, far from one of
    them, so with --merge-colour it stays an instance of its own and each square keeps its mask."""
    video = _look_alikes_video(tmp_path / "touch.mp4")
    for colour, merged in ((float("inf"), True), (InferConfig.merge_colour, False)):
        tracks = _tracks(tmp_path, video, TouchingCopiesModel(), merge_iou=0.3, merge_colour=colour)
        widths = sorted(len(_columns(track["segmentations"][0])) for track in tracks)
        if merged:  # the bright track's mask now covers both squares; slot 2 is gone
            assert len(tracks) == 2 and widths[-1] > 30
        else:
            assert len(tracks) == 3 and widths[:2] == [16, 16]


def test_merge_copies_keeps_instances_of_other_colours_apart():
    masks = torch.zeros(3, 1, 4, 8, dtype=torch.bool)
    masks[0, :, :, :4] = True
    masks[1, :, :, :3] = True  # IoU 0.75 with 0
    masks[2, :, :, 1:4] = True  # IoU 0.75 with 0
    scores, classes = torch.tensor([0.9, 0.8, 0.7]), torch.zeros(3, dtype=torch.int64)
    colours = torch.tensor([[200.0, 30, 30], [205.0, 30, 30], [120.0, 30, 80]])
    assert merge_copies(masks, scores, classes, 0.5) == [[0, 1, 2]]
    assert merge_copies(masks, scores, classes, 0.5, colours, colour_tol=12.0) == [[0, 1], [2]]
    unknown = colours.clone()
    unknown[2] = float("nan")  # an unknown colour keeps nobody apart
    assert merge_copies(masks, scores, classes, 0.5, unknown, colour_tol=12.0) == [[0, 1, 2]]


@pytest.mark.parametrize(
    ("setting", "message"),
    [
        ({"colour_weight": -0.1}, "--colour-weight must be >= 0"),
        ({"merge_colour": -1.0}, "--merge-colour must be >= 0"),
        ({"colour_scale": 0.0}, "colour_scale must be > 0"),
    ],
)
def test_colour_settings_are_checked(setting, message):
    with pytest.raises(ConfigError, match=message):
        InferConfig(**setting)
