"""Clip-consistent augmentation and the evaluation preprocessing.

Training (:func:`train_transform`) makes ONE geometric draw per clip and applies it to every frame and
mask, so an object's motion is never distorted by augmentation:

1. multi-scale: the short side becomes one of ``train_scales`` (long side <= ``train_max_size``);
2. if ``crop_range`` is set: a random crop of (h, w) ~ U{min..min(side, max)} pixels at that scale,
   then the evaluation resize of the crop (short side ``short_side``, long side <= ``max_size``) —
   the reference's resize/crop/resize chain. Without ``crop_range`` the multi-scale size is final;
3. horizontal flip with probability ``flip_prob``.

The chain is composed analytically: the crop is mapped back to original pixels and the original
frames are resized once, straight to the output size (one interpolation instead of three, and the
large intermediate frames are never materialized). Instances that leave the crop get empty masks,
hence ``valid`` False (see :func:`vistr_core.data.clip.make_clip_targets`).

Photometric jitter follows (one draw per clip, so lighting does not flicker between frames):
brightness +-32/255 (additive), contrast and saturation x[0.5, 1.5], hue +-18 degrees, each with
probability 0.5, contrast before or after saturation/hue at random. Values are clamped to [0, 1]
after every step, never wrapped. Then mean/std normalization.

Resizing: frames use bilinear interpolation on uint8 (``torch.nn.functional.interpolate``,
``align_corners=False``, ``antialias=DataConfig.antialias``, True by default, which approximates the
reference's PIL bilinear resize); masks use ``nearest-exact`` (pixel-center aligned with the bilinear
grid). Output sizes follow torchvision's ``Resize(size, max_size)`` rule (:func:`resize_shape`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
import torchvision.transforms.v2.functional as TF
from torch import Tensor

from ..config import DataConfig


def resize_shape(height: int, width: int, short_side: int, max_size: int | None = None) -> tuple[int, int]:
    """``(new_h, new_w)`` with the short side ``short_side`` and the long side at most ``max_size``,
    aspect ratio kept (truncating, as torchvision's ``Resize(short_side, max_size=max_size)``)."""
    short, long = (height, width) if height <= width else (width, height)
    new_short, new_long = short_side, int(short_side * long / short)
    if max_size is not None and new_long > max_size:
        new_short, new_long = int(max_size * new_short / new_long), max_size
    new_short = max(new_short, 1)
    return (new_short, new_long) if height <= width else (new_long, new_short)


def eval_resize_shape(height: int, width: int, cfg: DataConfig) -> tuple[int, int]:
    """The evaluation frame size for an original ``height x width`` frame under ``cfg``."""
    return resize_shape(height, width, cfg.short_side, cfg.max_size)


@dataclass(frozen=True)
class GeometryDraw:
    """One clip's geometry: crop ``[y0:y1, x0:x1]`` of the original frames, resize the crop to
    ``out_size`` (H, W), then flip horizontally if ``flip``."""

    crop: tuple[int, int, int, int]  # y0, x0, y1, x1 in original pixels
    out_size: tuple[int, int]
    flip: bool = False


def eval_geometry(height: int, width: int, cfg: DataConfig) -> GeometryDraw:
    return GeometryDraw((0, 0, height, width), eval_resize_shape(height, width, cfg))


def draw_geometry(height: int, width: int, cfg: DataConfig, rng: np.random.Generator) -> GeometryDraw:
    """A random training geometry for an original ``height x width`` clip (module docstring)."""
    scale = int(rng.choice(cfg.train_scales))
    scaled_h, scaled_w = resize_shape(height, width, scale, cfg.train_max_size)
    if cfg.crop_range is None:
        crop, out_size = (0, 0, height, width), (scaled_h, scaled_w)
    else:
        lo, hi = cfg.crop_range
        crop_h = int(rng.integers(min(lo, scaled_h), min(hi, scaled_h) + 1))
        crop_w = int(rng.integers(min(lo, scaled_w), min(hi, scaled_w) + 1))
        top = int(rng.integers(0, scaled_h - crop_h + 1))
        left = int(rng.integers(0, scaled_w - crop_w + 1))
        sy, sx = height / scaled_h, width / scaled_w
        y0, x0 = min(round(top * sy), height - 1), min(round(left * sx), width - 1)
        y1 = min(max(round((top + crop_h) * sy), y0 + 1), height)
        x1 = min(max(round((left + crop_w) * sx), x0 + 1), width)
        crop = (y0, x0, y1, x1)
        out_size = eval_resize_shape(y1 - y0, x1 - x0, cfg)
    return GeometryDraw(crop, out_size, bool(rng.random() < cfg.flip_prob))


def apply_geometry(
    frames: Tensor, masks: Tensor, draw: GeometryDraw, *, antialias: bool = True
) -> tuple[Tensor, Tensor]:
    """Apply one draw to a whole clip.

    Args:
        frames: [T, 3, H, W] uint8 (channels-last memory is fastest).
        masks: [N, T, H, W] bool.
    Returns:
        frames [T, 3, h, w] uint8 and masks [N, T, h, w] bool, (h, w) = ``draw.out_size``.
    """
    y0, x0, y1, x1 = draw.crop
    frames = frames[..., y0:y1, x0:x1]
    masks = masks[..., y0:y1, x0:x1]
    if tuple(frames.shape[-2:]) != draw.out_size:
        frames = F.interpolate(
            frames, size=draw.out_size, mode="bilinear", align_corners=False, antialias=antialias
        )
        n, t = masks.shape[:2]
        if n:
            flat = masks.reshape(n * t, 1, *masks.shape[-2:]).to(torch.uint8)
            masks = (
                F.interpolate(flat, size=draw.out_size, mode="nearest-exact")
                .reshape(n, t, *draw.out_size)
                .bool()
            )
        else:
            masks = masks.new_zeros((0, t, *draw.out_size))
    if draw.flip:
        frames, masks = frames.flip(-1), masks.flip(-1)
    return frames, masks


def photometric_distort(frames: Tensor, rng: np.random.Generator) -> Tensor:
    """Color jitter with one draw for the whole clip, clamped to [0, 1].

    Args:
        frames: [T, 3, H, W] float in [0, 1].
    """
    if rng.random() < 0.5:
        frames = (frames + rng.uniform(-32, 32) / 255.0).clamp_(0.0, 1.0)
    contrast_first = rng.random() < 0.5
    contrast = rng.uniform(0.5, 1.5) if rng.random() < 0.5 else None
    saturation = rng.uniform(0.5, 1.5) if rng.random() < 0.5 else None
    hue = rng.uniform(-18, 18) / 360.0 if rng.random() < 0.5 else None
    if contrast is not None and contrast_first:
        frames = TF.adjust_contrast(frames, contrast)
    if saturation is not None:
        frames = TF.adjust_saturation(frames, saturation)
    if hue is not None:
        frames = TF.adjust_hue(frames, hue)
    if contrast is not None and not contrast_first:
        frames = TF.adjust_contrast(frames, contrast)
    return frames.clamp_(0.0, 1.0)


def normalize(frames: Tensor, cfg: DataConfig) -> Tensor:
    """[T, 3, H, W] float in [0, 1] -> mean/std normalized (in place when possible)."""
    mean = torch.tensor(cfg.mean, dtype=frames.dtype, device=frames.device).view(3, 1, 1)
    std = torch.tensor(cfg.std, dtype=frames.dtype, device=frames.device).view(3, 1, 1)
    return frames.sub_(mean).div_(std)


def _to_tensor(frames: np.ndarray | Tensor) -> Tensor:
    """RGB uint8 [T, H, W, 3] -> [T, 3, H, W] uint8 view (channels-last memory, no copy)."""
    tensor = torch.from_numpy(np.ascontiguousarray(frames)) if isinstance(frames, np.ndarray) else frames
    if tensor.dtype != torch.uint8 or tensor.ndim != 4 or tensor.shape[-1] != 3:
        raise ValueError(f"expected RGB uint8 frames [T, H, W, 3], got {tuple(tensor.shape)} {tensor.dtype}")
    return tensor.permute(0, 3, 1, 2)


def train_transform(
    frames: np.ndarray, masks: np.ndarray, cfg: DataConfig, rng: np.random.Generator
) -> tuple[Tensor, Tensor]:
    """Augment one training clip.

    Args:
        frames: [T, H, W, 3] uint8 RGB.
        masks: [N, T, H, W] bool.
    Returns:
        frames [T, 3, h, w] float32 normalized, masks [N, T, h, w] bool.
    """
    video = _to_tensor(frames)
    draw = draw_geometry(video.shape[-2], video.shape[-1], cfg, rng)
    video, out_masks = apply_geometry(video, torch.from_numpy(masks), draw, antialias=cfg.antialias)
    pixels = video.float().div_(255.0)
    if cfg.photometric:
        pixels = photometric_distort(pixels, rng)
    return normalize(pixels.contiguous(), cfg), out_masks


def eval_transform(frames: np.ndarray, masks: np.ndarray, cfg: DataConfig) -> tuple[Tensor, Tensor]:
    """The deterministic counterpart of :func:`train_transform` (evaluation resize + normalize)."""
    video = _to_tensor(frames)
    draw = eval_geometry(video.shape[-2], video.shape[-1], cfg)
    video, out_masks = apply_geometry(video, torch.from_numpy(masks), draw, antialias=cfg.antialias)
    return normalize(video.float().div_(255.0).contiguous(), cfg), out_masks


def preprocess_frames(frames: np.ndarray | Tensor, cfg: DataConfig) -> Tensor:
    """Frames as the model sees them at inference.

    Args:
        frames: [T, H, W, 3] uint8 RGB (numpy or torch).
    Returns:
        [T, 3, h, w] float32, resized to :func:`eval_resize_shape` (bilinear, ``cfg.antialias``) and
        mean/std normalized.
    """
    video = _to_tensor(frames)
    size = eval_resize_shape(video.shape[-2], video.shape[-1], cfg)
    if tuple(video.shape[-2:]) != size:
        video = F.interpolate(video, size=size, mode="bilinear", align_corners=False, antialias=cfg.antialias)
    return normalize(video.float().div_(255.0).contiguous(), cfg)
