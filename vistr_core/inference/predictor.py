"""One forward pass over a batch of windows, and the reference's per-window post-processing.

Post-processing follows the official inference (vistr-facts.md section 7): class probabilities are a
softmax over K + 1 logits with "no object" then dropped; each slot's per-frame score is its largest
class probability and its per-frame class the argmax (indices the checkpoint marks unused, e.g. the
official index 0, can never win); masks are the mask logits upsampled bilinearly to the original
frame size and thresholded (sigmoid(x) > 0.5 is x > 0).

Mask logits stay at the model's 1/4 resolution until a frame is written (:func:`upsample_masks`),
so a window costs ``n * T * h/4 * w/4`` floats whatever the video's resolution.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..engine.device import autocast


@dataclass(frozen=True)
class WindowPrediction:
    """The model's answer for one window of T frames with n instance slots.

    Attributes:
        scores: [n, T] float32, per-frame score (largest class probability).
        labels: [n, T] int64, per-frame contiguous class index.
        mask_logits: [n, T, h, w] float32 at 1/4 of the model input size, on the model's device.
    """

    scores: Tensor
    labels: Tensor
    mask_logits: Tensor

    @property
    def num_slots(self) -> int:
        return int(self.scores.shape[0])


def mask_logit_threshold(mask_thr: float) -> float:
    """The logit above which sigmoid(logit) > ``mask_thr``."""
    if not 0.0 < mask_thr < 1.0:
        raise ValueError(f"mask threshold must be in (0, 1), got {mask_thr}")
    return math.log(mask_thr / (1.0 - mask_thr))


def postprocess(
    pred_logits: Tensor, pred_masks: Tensor, *, unused_classes: Sequence[int] = ()
) -> list[WindowPrediction]:
    """Per-frame scores and classes of every slot.

    Args:
        pred_logits: [B, n, T, K + 1], last index = no object.
        pred_masks: [B, n, T, h, w] mask logits.
        unused_classes: class indices never to report.
    Returns:
        B :class:`WindowPrediction`.
    """
    probs = pred_logits.float().softmax(-1)[..., :-1]
    if unused_classes:
        probs[..., list(unused_classes)] = -1.0
    scores, labels = probs.max(-1)
    masks = pred_masks.float()
    return [WindowPrediction(scores[b].cpu(), labels[b].cpu(), masks[b]) for b in range(scores.shape[0])]


def upsample_masks(mask_logits: Tensor, size: tuple[int, int], logit_thr: float) -> Tensor:
    """Binary masks at the original frame size.

    Args:
        mask_logits: [k, h, w] logits of k instances in one frame.
        size: (H, W) of the original frame.
    Returns:
        [k, H, W] bool on the CPU: bilinear upsampling of the logits, then ``> logit_thr``.
    """
    if mask_logits.shape[0] == 0:
        return torch.zeros((0, *size), dtype=torch.bool)
    up = F.interpolate(mask_logits[None].float(), size=size, mode="bilinear", align_corners=False)[0]
    return (up > logit_thr).cpu()


class WindowPredictor:
    """Runs ``model`` on batches of windows under ``torch.inference_mode`` (and autocast to
    ``dtype`` unless it is None, i.e. fp32). Outputs are returned in float32 whatever the dtype.

    ``model`` is a VisTR in eval mode with ``.categories`` (a CategoryMap).
    """

    def __init__(self, model: nn.Module, *, device: torch.device, dtype: torch.dtype | None = None) -> None:
        self.model = model
        self.device = device
        self.dtype = dtype
        self.unused_classes = sorted(model.categories.unused)

    @torch.inference_mode()
    def __call__(self, frames: Tensor) -> list[WindowPrediction]:
        """frames: [B, T, 3, H, W] normalized → B predictions."""
        frames = frames.to(self.device, non_blocking=True)
        with autocast(self.device, self.dtype):
            out = self.model(frames, None)
        return postprocess(out["pred_logits"], out["pred_masks"], unused_classes=self.unused_classes)
