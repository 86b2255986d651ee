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

Photometric jitter follows (one draw per clip, so lighting does not flicker between frames), on
uint8 with lookup tables: brightness +-32 levels (additive), contrast x[0.5, 1.5] (multiplicative,
as the reference), saturation x[0.5, 1.5] and hue +-18 degrees in HSV, each with probability 0.5,
contrast before or after saturation/hue at random. Every step saturates at 0 and 255 instead of
wrapping around (the reference's uint8 cast wraps). Then mean/std normalization.

Resizing: frames use bilinear interpolation on uint8 (``torch.nn.functional.interpolate``,
``align_corners=False``, ``antialias=DataConfig.antialias``, True by default, which approximates the
reference's PIL bilinear resize to within 1-2 levels); masks use pixel-center nearest neighbour
(OpenCV ``INTER_NEAREST_EXACT`` = torch ``nearest-exact``), aligned with the bilinear grid. Output
sizes follow torchvision's ``Resize(size, max_size)`` rule (:func:`resize_shape`).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
import torch
import torch.nn.functional as F
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


def _resize_masks(masks: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """[N, T, H, W] bool -> [N, T, h, w] with OpenCV's pixel-center nearest neighbour (the same
    sampling as torch ``nearest-exact``, several times faster on CPU)."""
    n, t = masks.shape[:2]
    out = np.empty((n, t, *size), dtype=bool)
    for i in range(n):
        for j in range(t):
            out[i, j] = cv2.resize(
                masks[i, j].view(np.uint8), size[::-1], interpolation=cv2.INTER_NEAREST_EXACT
            ).view(bool)
    return out


def decode_reduction(draw: GeometryDraw, *, enabled: bool = True) -> int:
    """The JPEG decoding scale 1/r (r in 1, 2, 4, 8) that still leaves at least the output
    resolution: the largest r with crop size / r >= output size on both axes."""
    y0, x0, y1, x1 = draw.crop
    factor = min((y1 - y0) / draw.out_size[0], (x1 - x0) / draw.out_size[1])
    reduction = 1
    while enabled and reduction < 8 and factor >= 2 * reduction:
        reduction *= 2
    return reduction


def snap_crop(draw: GeometryDraw, reduction: int, height: int, width: int) -> GeometryDraw:
    """``draw`` with its crop widened to multiples of ``reduction`` (clipped to the frame), so a
    frame decoded at 1/r covers exactly the same region as the full-size masks."""
    if reduction == 1:
        return draw
    y0, x0, y1, x1 = draw.crop
    r = reduction
    crop = (y0 // r * r, x0 // r * r, min(-(-y1 // r) * r, height), min(-(-x1 // r) * r, width))
    return GeometryDraw(crop, draw.out_size, draw.flip)


def apply_geometry(
    frames: Tensor,
    masks: np.ndarray,
    draw: GeometryDraw,
    *,
    antialias: bool = True,
    reduction: int = 1,
    masks_cropped: bool = False,
) -> tuple[np.ndarray, np.ndarray]:
    """Apply one draw to a whole clip.

    Args:
        frames: [T, 3, H/r, W/r] uint8 tensor, r = ``reduction`` (frames decoded at 1/r size, see
            :func:`decode_reduction`; channels-last memory is fastest, see :func:`_to_tensor`).
        masks: [N, T, H, W] bool array at the full size, or already cut to ``draw.crop`` if
            ``masks_cropped`` (see ``YTVISIndex.decode_masks(crop=...)``).
    Returns:
        frames [T, h, w, 3] uint8 and masks [N, T, h, w] bool arrays, (h, w) = ``draw.out_size``.
    """
    y0, x0, y1, x1 = draw.crop
    r = reduction
    frames = frames[..., y0 // r : -(-y1 // r), x0 // r : -(-x1 // r)]
    if not masks_cropped:
        masks = masks[..., y0:y1, x0:x1]
    if tuple(frames.shape[-2:]) != draw.out_size:
        frames = F.interpolate(
            frames.contiguous(memory_format=torch.channels_last),
            size=draw.out_size,
            mode="bilinear",
            align_corners=False,
            antialias=antialias,
        )
        masks = _resize_masks(np.ascontiguousarray(masks), draw.out_size)
    pixels = frames.permute(0, 2, 3, 1).numpy()
    if draw.flip:
        pixels, masks = pixels[:, :, ::-1], masks[..., ::-1]
    return np.ascontiguousarray(pixels), np.ascontiguousarray(masks)


def _lut(levels: np.ndarray) -> np.ndarray:
    """A uint8 lookup table from float levels, clamped (never wrapped) to [0, 255]."""
    return np.clip(np.rint(levels), 0, 255).astype(np.uint8)


def photometric_distort(frames: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Color jitter with one draw for the whole clip; every step saturates at 0 and 255.

    Brightness and contrast are lookup tables on RGB, saturation and hue lookup tables on OpenCV's
    HSV (hue is an angle, so it rotates modulo 360 degrees, which is not an overflow).

    Args:
        frames: [T, H, W, 3] uint8 RGB.
    Returns:
        [T, H, W, 3] uint8 RGB.
    """
    levels = np.arange(256, dtype=np.float64)
    brightness = rng.uniform(-32, 32) if rng.random() < 0.5 else 0.0
    contrast_first = rng.random() < 0.5
    contrast = rng.uniform(0.5, 1.5) if rng.random() < 0.5 else None
    saturation = rng.uniform(0.5, 1.5) if rng.random() < 0.5 else None
    hue = rng.uniform(-18, 18) if rng.random() < 0.5 else None
    before = _lut(levels + brightness)
    if contrast is not None and contrast_first:
        before = _lut(before * contrast)
    after = _lut(levels * contrast) if contrast is not None and not contrast_first else None
    hsv_luts = None
    if saturation is not None or hue is not None:
        sat_lut = _lut(levels * (saturation or 1.0))
        shift = int(round((hue or 0.0) / 2.0))  # OpenCV 8-bit hue: 2 degrees per unit, 0..179
        hue_lut = ((np.arange(256) + shift) % 180).astype(np.uint8)
        hsv_luts = (hue_lut, sat_lut)
    out = np.empty_like(frames)
    for t, frame in enumerate(frames):
        frame = cv2.LUT(frame, before)
        if hsv_luts is not None:
            h, s, v = cv2.split(cv2.cvtColor(frame, cv2.COLOR_RGB2HSV))
            frame = cv2.cvtColor(
                cv2.merge((cv2.LUT(h, hsv_luts[0]), cv2.LUT(s, hsv_luts[1]), v)), cv2.COLOR_HSV2RGB
            )
        if after is not None:
            frame = cv2.LUT(frame, after)
        out[t] = frame
    return out


def normalize(frames: np.ndarray | Tensor, cfg: DataConfig) -> Tensor:
    """RGB uint8 [T, H, W, 3] -> float32 [T, 3, H, W], ``(x / 255 - mean) / std``."""
    video = torch.from_numpy(frames) if isinstance(frames, np.ndarray) else frames
    out = video.permute(0, 3, 1, 2).contiguous().float()
    scale = 1.0 / (255.0 * torch.tensor(cfg.std, dtype=torch.float32).view(3, 1, 1))
    shift = -torch.tensor(cfg.mean, dtype=torch.float32).view(3, 1, 1) / torch.tensor(cfg.std).view(3, 1, 1)
    return out.mul_(scale).add_(shift)


def _to_tensor(frames: np.ndarray | Tensor) -> Tensor:
    """RGB uint8 [T, H, W, 3] -> [T, 3, H, W] uint8 view (channels-last memory, no copy)."""
    tensor = torch.from_numpy(np.ascontiguousarray(frames)) if isinstance(frames, np.ndarray) else frames
    if tensor.dtype != torch.uint8 or tensor.ndim != 4 or tensor.shape[-1] != 3:
        raise ValueError(f"expected RGB uint8 frames [T, H, W, 3], got {tuple(tensor.shape)} {tensor.dtype}")
    return tensor.permute(0, 3, 1, 2)


def transform_clip(
    frames: np.ndarray,
    masks: np.ndarray,
    draw: GeometryDraw,
    cfg: DataConfig,
    rng: np.random.Generator | None,
    *,
    reduction: int = 1,
    masks_cropped: bool = False,
) -> tuple[Tensor, Tensor]:
    """Geometry ``draw``, photometric jitter (if ``rng`` and ``cfg.photometric``), normalization.

    Args:
        frames: [T, H/r, W/r, 3] uint8 RGB, r = ``reduction``.
        masks: [N, T, H, W] bool (or only the crop region if ``masks_cropped``).
    Returns:
        frames [T, 3, h, w] float32 normalized, masks [N, T, h, w] bool.
    """
    pixels, out_masks = apply_geometry(
        _to_tensor(frames),
        masks,
        draw,
        antialias=cfg.antialias,
        reduction=reduction,
        masks_cropped=masks_cropped,
    )
    if rng is not None and cfg.photometric:
        pixels = photometric_distort(pixels, rng)
    return normalize(pixels, cfg), torch.from_numpy(out_masks)


def train_transform(
    frames: np.ndarray, masks: np.ndarray, cfg: DataConfig, rng: np.random.Generator
) -> tuple[Tensor, Tensor]:
    """Augment one training clip (a random draw, then :func:`transform_clip`).

    Args:
        frames: [T, H, W, 3] uint8 RGB.
        masks: [N, T, H, W] bool.
    Returns:
        frames [T, 3, h, w] float32 normalized, masks [N, T, h, w] bool.
    """
    draw = draw_geometry(frames.shape[1], frames.shape[2], cfg, rng)
    return transform_clip(frames, masks, draw, cfg, rng)


def eval_transform(frames: np.ndarray, masks: np.ndarray, cfg: DataConfig) -> tuple[Tensor, Tensor]:
    """The deterministic counterpart of :func:`train_transform` (evaluation resize + normalize)."""
    draw = eval_geometry(frames.shape[1], frames.shape[2], cfg)
    return transform_clip(frames, masks, draw, cfg, None)


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
        video = F.interpolate(
            video.contiguous(memory_format=torch.channels_last),
            size=size,
            mode="bilinear",
            align_corners=False,
            antialias=cfg.antialias,
        )
    return normalize(video.permute(0, 2, 3, 1), cfg)
