"""Clip-consistent augmentation: properties over many random draws; the eval preprocessing."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torchvision.transforms.v2.functional as TF
from PIL import Image

from vistr_core.config import DataConfig
from vistr_core.data.clip import make_clip_targets, mask_boxes
from vistr_core.data.transforms import (
    draw_geometry,
    eval_resize_shape,
    photometric_distort,
    preprocess_frames,
    resize_shape,
    train_transform,
)
from vistr_core.presets import get_preset

REFERENCE = get_preset("vistr_r50").data  # flip, multi-scale, crop, final resize, photometric
TINY = get_preset("tiny").data  # no crop: multi-scale is final
SEEDS = range(40)


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _clip(t: int = 4, h: int = 90, w: int = 120, seed: int = 0):
    """Frames where each object is painted in its own pure color on black, and its masks."""
    rng = np.random.default_rng(seed)
    frames = np.zeros((t, h, w, 3), np.uint8)
    masks = np.zeros((3, t, h, w), bool)
    colors = [(255, 0, 0), (0, 255, 0), (0, 0, 255)]
    for n in range(3):
        for k in range(t):
            oh, ow = int(rng.integers(h // 8, h // 4)), int(rng.integers(w // 8, w // 4))
            y, x = rng.integers(0, h - oh), rng.integers(0, w - ow)
            masks[n, k, y : y + oh, x : x + ow] = True
            masks[n, k] &= ~masks[:n, k].any(0)  # later objects behind earlier ones
    if t > 1:
        masks[2, 1] = False  # absent in one frame
    for n in range(3):
        frames[masks[n]] = colors[n]
    return frames, masks


def _reference_boxes(masks: np.ndarray) -> np.ndarray:
    """Normalized cxcywh boxes computed independently with np.nonzero."""
    h, w = masks.shape[-2:]
    out = np.zeros((*masks.shape[:-2], 4))
    for idx in np.ndindex(masks.shape[:-2]):
        ys, xs = np.nonzero(masks[idx])
        if len(ys):
            x0, x1, y0, y1 = xs.min(), xs.max() + 1, ys.min(), ys.max() + 1
            out[idx] = [(x0 + x1) / 2 / w, (y0 + y1) / 2 / h, (x1 - x0) / w, (y1 - y0) / h]
    return out


def _targets(masks: torch.Tensor):
    n, t = masks.shape[:2]
    return make_clip_targets(
        masks, torch.zeros(n), torch.arange(n), video_id=1, frame_indices=torch.arange(t), orig_size=(1, 1)
    )


@pytest.mark.parametrize("cfg", [REFERENCE, TINY], ids=["reference", "tiny"])
def test_boxes_valid_and_masks_stay_consistent_for_every_draw(cfg):
    frames, masks = _clip(h=400, w=520) if cfg is REFERENCE else _clip()
    for seed in SEEDS:
        out_frames, out_masks = train_transform(frames, masks, cfg, np.random.default_rng(seed))
        assert out_frames.shape[0] == 4 and out_masks.shape[1:] == (4, *out_frames.shape[-2:])
        tgt = _targets(out_masks)
        kept = out_masks.flatten(2).any(-1).any(-1)
        assert torch.equal(tgt.masks, out_masks[kept])
        assert torch.equal(tgt.valid, tgt.masks.flatten(2).any(-1))
        np.testing.assert_allclose(tgt.boxes.numpy(), _reference_boxes(tgt.masks.numpy()), atol=1e-6)


def test_frames_and_masks_share_the_geometry():
    """Object colors in the augmented frames land inside the augmented masks (crop, scale and flip
    applied identically); the photometric part is off so colors are recognizable."""
    cfg = DataConfig(**{**REFERENCE.__dict__, "photometric": False})
    frames, masks = _clip(h=400, w=520)
    mean = torch.tensor(cfg.mean).view(3, 1, 1)
    std = torch.tensor(cfg.std).view(3, 1, 1)
    flips = 0
    for seed in SEEDS:
        rng = np.random.default_rng(seed)
        flips += draw_geometry(400, 520, cfg, np.random.default_rng(seed)).flip
        out, out_masks = train_transform(frames, masks, cfg, rng)
        rgb = out * std + mean
        for n in range(3):
            colored = rgb[:, n] > 0.6  # this object's color channel
            inside = out_masks[n]
            if inside.sum() < 50:
                continue
            agree = (colored & inside).sum() / (colored | inside).sum()
            assert agree > 0.8, (seed, n, float(agree))
    assert 5 < flips < 35


@pytest.mark.parametrize("cfg", [REFERENCE, TINY], ids=["reference", "tiny"])
def test_identical_frames_stay_identical(cfg):
    frames, masks = _clip(t=1, h=300, w=400)
    frames = np.repeat(frames, 3, axis=0)
    masks = np.repeat(masks, 3, axis=1)
    for seed in range(15):
        out, out_masks = train_transform(frames, masks, cfg, np.random.default_rng(seed))
        for t in range(1, 3):
            assert torch.equal(out[t], out[0]) and torch.equal(out_masks[:, t], out_masks[:, 0])


def test_same_draw_same_output_and_draws_vary():
    frames, masks = _clip(h=300, w=400)
    a = train_transform(frames, masks, REFERENCE, np.random.default_rng(3))
    b = train_transform(frames, masks, REFERENCE, np.random.default_rng(3))
    c = train_transform(frames, masks, REFERENCE, np.random.default_rng(4))
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    assert a[0].shape != c[0].shape or not torch.equal(a[0], c[0])


def test_crop_marks_instances_that_leave_it_invalid():
    """A tiny object in a corner is cut out by most crops: then it is dropped (invalid everywhere)."""
    cfg = DataConfig(crop_range=(200, 220), train_scales=(400,), train_max_size=1000, photometric=False)
    frames = np.zeros((2, 400, 500, 3), np.uint8)
    masks = np.zeros((2, 2, 400, 500), bool)
    masks[0, :, 2:12, 2:12] = True  # top-left corner
    masks[1, 0, 150:250, 200:300] = True  # center, present in frame 0 only
    outcomes = set()
    for seed in SEEDS:
        _, out_masks = train_transform(frames, masks, cfg, np.random.default_rng(seed))
        tgt = _targets(out_masks)
        assert torch.equal(tgt.valid, tgt.masks.flatten(2).any(-1))
        outcomes.add(tuple(tgt.instance_ids.tolist()))
        if 1 in tgt.instance_ids.tolist():
            assert tgt.valid[tgt.instance_ids.tolist().index(1)].tolist() == [True, False]
    assert (1,) in outcomes  # the corner object was cropped away in some draws


def test_photometric_saturates_instead_of_overflowing():
    gray_ramp = np.repeat(np.arange(256, dtype=np.uint8)[None, None, :, None], 3, axis=3)  # [1, 1, 256, 3]
    clip = np.repeat(gray_ramp, 3, axis=0)
    colors = np.random.default_rng(0).integers(0, 256, (3, 8, 8, 3), dtype=np.uint8)
    colors[1] = colors[0]
    changed = 0
    for seed in range(80):
        out = photometric_distort(clip, np.random.default_rng(seed))
        levels = out[0, 0, :, 0].astype(int)
        # gray stays gray and the tone curve stays monotonic: a wrapped value would break it
        assert (out == out[..., :1]).all() and (np.diff(levels) >= 0).all()
        assert levels[-1] >= (255 - 32) * 0.5 - 1 and levels[0] <= 32 * 1.5 + 1
        changed += not np.array_equal(out, clip)
        # one draw per clip: identical frames stay identical
        col = photometric_distort(colors, np.random.default_rng(seed))
        assert np.array_equal(col[0], col[1])
    assert changed > 40


@pytest.mark.parametrize("hw", [(720, 1280), (1280, 720), (300, 540), (480, 854), (100, 1000), (37, 41)])
def test_resize_shape_matches_torchvision_resize(hw):
    for short, max_size in ((300, 540), (280, 504), (128, 224), (360, None)):
        expected = TF.resize(torch.zeros(1, *hw), [short], max_size=max_size).shape[-2:]
        assert resize_shape(*hw, short, max_size) == tuple(expected)
    assert eval_resize_shape(720, 1280, REFERENCE) == (300, 533)


def test_preprocess_frames_matches_the_reference_pil_pipeline():
    """The reference: PIL bilinear resize (antialiased), ToTensor, Normalize."""
    rng = np.random.default_rng(0)
    smooth = rng.integers(0, 256, (2, 45, 80, 3), dtype=np.uint8)
    frames = np.stack([np.array(Image.fromarray(f).resize((320, 180), Image.BILINEAR)) for f in smooth])
    out = preprocess_frames(frames, REFERENCE)
    h, w = eval_resize_shape(180, 320, REFERENCE)
    assert out.shape == (2, 3, h, w) and out.dtype == torch.float32
    mean, std = torch.tensor(REFERENCE.mean).view(3, 1, 1), torch.tensor(REFERENCE.std).view(3, 1, 1)
    for t in range(2):
        pil = np.array(Image.fromarray(frames[t]).resize((w, h), Image.BILINEAR))
        expected = (torch.from_numpy(pil).permute(2, 0, 1).float() / 255 - mean) / std
        diff = ((out[t] - expected) * std * 255).abs()
        assert diff.max() <= 2.01 and diff.mean() < 0.5
    assert torch.equal(preprocess_frames(torch.from_numpy(frames), REFERENCE), out)


def test_mask_boxes_agree_with_independent_reference():
    masks = torch.from_numpy(np.random.default_rng(1).random((5, 3, 17, 23)) > 0.97)
    masks[0, 0] = False
    np.testing.assert_allclose(mask_boxes(masks).numpy(), _reference_boxes(masks.numpy()), atol=1e-6)
