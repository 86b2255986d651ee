"""The training batch contract: one clip's targets, a padded batch of clips, and their collation.

Everything downstream of the data loader (matcher, losses, trainer) codes against these two types.

Conventions:
- Targets are **instance-major**: ``boxes[i, t]`` is instance ``i`` in clip frame ``t``.
- ``labels`` are contiguous model class indices (``CategoryMap.index_of(category_id)``), not dataset
  category ids.
- ``boxes`` are ``(cx, cy, w, h)`` normalized by the clip's *unpadded* ``(W, H)``; a box is always the
  tight box of its mask (recomputed after augmentation), and zeros where the instance is invalid.
- ``valid[i, t]`` is True exactly when ``masks[i, t]`` is non-empty.
- An instance that is invalid in *every* frame of a clip (it is absent from the sampled window, or a
  random crop cut it out) is **dropped** from the clip's targets: it carries no signal for the
  matcher and would only be matched against frames it is never in. A clip may therefore have N = 0.
- ``frame_indices[t]`` is the position in the video's ``file_names`` of clip frame ``t``; a short video
  padded by repetition repeats indices (see :mod:`vistr_core.data.sampling`).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch
from torch import Tensor


@dataclass
class ClipTargets:
    """The ground truth of one clip of T frames with N instances.

    Attributes:
        labels: [N] int64, contiguous class index.
        boxes: [N, T, 4] float32, cx cy w h normalized by the unpadded (W, H); zeros where invalid.
        masks: [N, T, H, W] bool at the clip's unpadded size ``size``.
        valid: [N, T] bool, the instance is visible (non-empty mask) in that frame.
        video_id: the dataset's video id.
        frame_indices: [T] int64, index into the video's frames (repeats when padded).
        size: (H, W) of the clip after transforms, before batch padding.
        orig_size: (H, W) of the video's original frames.
        instance_ids: [N] int64, the dataset's annotation ids.
    """

    labels: Tensor
    boxes: Tensor
    masks: Tensor
    valid: Tensor
    video_id: int
    frame_indices: Tensor
    size: tuple[int, int]
    orig_size: tuple[int, int]
    instance_ids: Tensor

    @property
    def num_instances(self) -> int:
        return int(self.labels.shape[0])

    @property
    def num_frames(self) -> int:
        return int(self.frame_indices.shape[0])

    def to(self, device: torch.device | str, non_blocking: bool = False) -> ClipTargets:
        """A copy with every tensor on ``device``."""
        return replace(
            self,
            labels=self.labels.to(device, non_blocking=non_blocking),
            boxes=self.boxes.to(device, non_blocking=non_blocking),
            masks=self.masks.to(device, non_blocking=non_blocking),
            valid=self.valid.to(device, non_blocking=non_blocking),
            frame_indices=self.frame_indices.to(device, non_blocking=non_blocking),
            instance_ids=self.instance_ids.to(device, non_blocking=non_blocking),
        )

    def pin_memory(self) -> ClipTargets:
        """A copy with every tensor in pinned host memory (used by the DataLoader on CUDA)."""
        return replace(
            self,
            labels=self.labels.pin_memory(),
            boxes=self.boxes.pin_memory(),
            masks=self.masks.pin_memory(),
            valid=self.valid.pin_memory(),
            frame_indices=self.frame_indices.pin_memory(),
            instance_ids=self.instance_ids.pin_memory(),
        )


@dataclass
class ClipBatch:
    """B clips of T frames, zero-padded to a common size.

    Attributes:
        frames: [B, T, 3, H, W] float32, mean/std normalized RGB, zero on padding (bottom/right).
        pad_mask: [B, T, H, W] bool, True on padding.
        targets: B :class:`ClipTargets`, each at its own unpadded size.
    """

    frames: Tensor
    pad_mask: Tensor
    targets: list[ClipTargets]

    def __len__(self) -> int:
        return len(self.targets)

    def to(self, device: torch.device | str, non_blocking: bool = False) -> ClipBatch:
        """A copy with frames, padding mask and every target on ``device``."""
        return ClipBatch(
            frames=self.frames.to(device, non_blocking=non_blocking),
            pad_mask=self.pad_mask.to(device, non_blocking=non_blocking),
            targets=[t.to(device, non_blocking=non_blocking) for t in self.targets],
        )

    def pin_memory(self) -> ClipBatch:
        """Called by ``torch.utils.data.DataLoader(pin_memory=True)`` on custom batch types."""
        return ClipBatch(
            frames=self.frames.pin_memory(),
            pad_mask=self.pad_mask.pin_memory(),
            targets=[t.pin_memory() for t in self.targets],
        )


def collate_clips(samples: list[tuple[Tensor, ClipTargets]]) -> ClipBatch:
    """Stack clips into a :class:`ClipBatch`, zero-padding bottom/right to the largest H and W.

    Args:
        samples: B pairs ``(frames [T, 3, H_b, W_b] float, targets)``; every clip has the same T.
    """
    if not samples:
        raise ValueError("collate_clips needs at least one sample")
    num_frames = {frames.shape[0] for frames, _ in samples}
    if len(num_frames) != 1:
        raise ValueError(f"clips in a batch must have the same number of frames, got {sorted(num_frames)}")
    t = num_frames.pop()
    height = max(frames.shape[-2] for frames, _ in samples)
    width = max(frames.shape[-1] for frames, _ in samples)
    first = samples[0][0]
    out = first.new_zeros((len(samples), t, 3, height, width))
    pad_mask = torch.ones((len(samples), t, height, width), dtype=torch.bool)
    for b, (frames, _) in enumerate(samples):
        h, w = frames.shape[-2:]
        out[b, :, :, :h, :w] = frames
        pad_mask[b, :, :h, :w] = False
    return ClipBatch(frames=out, pad_mask=pad_mask, targets=[target for _, target in samples])


def mask_boxes(masks: Tensor) -> Tensor:
    """Tight boxes of masks, normalized cx cy w h; zeros for empty masks.

    A mask covering columns x0..x1 (inclusive) gets ``w = (x1 + 1 - x0) / W`` — the pixel-extent
    convention of COCO ``bbox`` fields, so a full-frame mask is the box (0.5, 0.5, 1, 1).

    Args:
        masks: [..., H, W] bool.
    Returns:
        [..., 4] float32.
    """
    height, width = masks.shape[-2:]
    rows = masks.any(dim=-1)  # [..., H]
    cols = masks.any(dim=-2)  # [..., W]
    present = rows.any(dim=-1)
    y0 = rows.int().argmax(dim=-1)
    y1 = height - rows.flip(-1).int().argmax(dim=-1)
    x0 = cols.int().argmax(dim=-1)
    x1 = width - cols.flip(-1).int().argmax(dim=-1)
    boxes = torch.stack(
        [(x0 + x1) / (2 * width), (y0 + y1) / (2 * height), (x1 - x0) / width, (y1 - y0) / height], dim=-1
    ).float()
    return boxes * present.unsqueeze(-1)


def make_clip_targets(
    masks: Tensor,
    labels: Tensor,
    instance_ids: Tensor,
    *,
    video_id: int,
    frame_indices: Tensor,
    orig_size: tuple[int, int],
) -> ClipTargets:
    """Targets whose boxes and valid flags are derived from ``masks`` (so they can never disagree);
    instances with an empty mask in every frame are dropped.

    Args:
        masks: [N, T, H, W] bool, after all geometric transforms.
        labels: [N] int64 contiguous class indices.
        instance_ids: [N] int64 annotation ids.
        frame_indices: [T] int64.
    """
    valid = masks.flatten(2).any(dim=-1)  # [N, T]
    keep = valid.any(dim=1)
    masks = masks[keep]
    return ClipTargets(
        labels=labels[keep].long(),
        boxes=mask_boxes(masks),
        masks=masks,
        valid=valid[keep],
        video_id=int(video_id),
        frame_indices=frame_indices.long(),
        size=(int(masks.shape[-2]), int(masks.shape[-1])),
        orig_size=(int(orig_size[0]), int(orig_size[1])),
        instance_ids=instance_ids[keep].long(),
    )
