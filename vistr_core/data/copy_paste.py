"""Instance copy-paste for clips: one object of another video pasted, frame by frame, over a clip.

A training-only augmentation (Ghiasi et al. 2021, "Simple Copy-Paste", applied per clip): the donor
object keeps its own motion through the T frames, lies on top of the clip's objects (their masks lose
what it covers; one it hides completely is dropped by :func:`~vistr_core.data.clip.make_clip_targets`)
and becomes one more target. Preferring a donor of a class the clip already has makes clips with two
objects of one class common, which is what teaches a model trained from scratch to give them two
slots (README: "Several objects from scratch").
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor


@dataclass
class ClipObjects:
    """A clip before its targets are derived: frames and per-object masks, labels and ids.

    Attributes:
        frames: [T, 3, h, w] float32, normalized.
        masks: [N, T, h, w] bool.
        labels: [N] int64 contiguous class indices.
        instance_ids: [N] int64 annotation ids.
    """

    frames: Tensor
    masks: Tensor
    labels: Tensor
    instance_ids: Tensor


def choose_donor_object(donor: ClipObjects, wanted_labels: Tensor, rng: np.random.Generator) -> int | None:
    """Index of the donor object to paste: one visible in some frame, of a class in ``wanted_labels``
    when the donor has one, any visible one otherwise; None when the donor shows no object.

    Args:
        wanted_labels: [K] int64, classes to prefer (empty: no preference).
    """
    visible = donor.masks.flatten(1).any(dim=1)  # [N]
    candidates = torch.nonzero(visible).flatten()
    if candidates.numel() == 0:
        return None
    preferred = candidates[torch.isin(donor.labels[candidates], wanted_labels)]
    pool = preferred if preferred.numel() else candidates
    return int(pool[int(rng.integers(pool.numel()))])


def paste_object(clip: ClipObjects, donor: ClipObjects, which: int, pasted_id: int) -> ClipObjects:
    """``clip`` with donor object ``which`` pasted on top in every frame.

    The donor's frames and mask are resized to the clip's (h, w) first (bilinear / nearest), so clips
    of different sizes and aspect ratios combine; both must have the same T.

    Returns:
        frames [T, 3, h, w]; masks [N + 1, T, h, w] (the clip's, minus the pasted pixels, then the
        pasted object's); labels [N + 1]; instance_ids [N + 1] (``pasted_id`` last).
    """
    if donor.frames.shape[0] != clip.frames.shape[0]:
        raise ValueError(
            f"clip and donor need the same T, got {clip.frames.shape[0]} and {donor.frames.shape[0]}"
        )
    size = tuple(clip.frames.shape[-2:])
    donor_frames = donor.frames
    donor_mask = donor.masks[which]  # [T, h', w']
    if tuple(donor_frames.shape[-2:]) != size:
        donor_frames = F.interpolate(donor_frames, size=size, mode="bilinear", align_corners=False)
        donor_mask = F.interpolate(donor_mask[:, None].float(), size=size, mode="nearest")[:, 0] > 0.5
    frames = torch.where(donor_mask[:, None], donor_frames, clip.frames)
    masks = torch.cat([clip.masks & ~donor_mask, donor_mask[None]], dim=0)
    labels = torch.cat([clip.labels, donor.labels[which : which + 1]])
    ids = torch.cat([clip.instance_ids, torch.tensor([pasted_id], dtype=torch.int64)])
    return ClipObjects(frames=frames, masks=masks, labels=labels, instance_ids=ids)
