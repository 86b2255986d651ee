"""Box conversions and overlaps.

Boxes are ``(cx, cy, w, h)`` normalized inside the model and ``(x0, y0, x1, y1)`` for overlaps.
*Pairwise* functions compare every box of one set with every box of another (torchvision's);
*aligned* functions compare ``boxes1[..., i]`` with ``boxes2[..., i]`` under broadcasting, which is
what the matcher (IoU of every slot with every target in every frame) and the losses (matched
pairs only) need without building and then discarding an N x M matrix.

The aligned overlaps add ``eps = 1e-6`` to numerator and denominator like the reference's
``multi_iou`` and ``generalized_box_iou``, so a pair of empty boxes has IoU 1 instead of 0/0.
"""

from __future__ import annotations

import torch
from torch import Tensor
from torchvision.ops import box_convert, box_iou, generalized_box_iou

__all__ = [
    "aligned_box_iou",
    "aligned_generalized_box_iou",
    "box_cxcywh_to_xyxy",
    "box_iou",
    "box_xyxy_to_cxcywh",
    "generalized_box_iou",
]

EPS = 1e-6


def box_cxcywh_to_xyxy(boxes: Tensor) -> Tensor:
    """[..., 4] (cx, cy, w, h) -> [..., 4] (x0, y0, x1, y1)."""
    return box_convert(boxes, in_fmt="cxcywh", out_fmt="xyxy")


def box_xyxy_to_cxcywh(boxes: Tensor) -> Tensor:
    """[..., 4] (x0, y0, x1, y1) -> [..., 4] (cx, cy, w, h)."""
    return box_convert(boxes, in_fmt="xyxy", out_fmt="cxcywh")


def _area(boxes: Tensor) -> Tensor:
    return (boxes[..., 2] - boxes[..., 0]) * (boxes[..., 3] - boxes[..., 1])


def _inter_union(boxes1: Tensor, boxes2: Tensor) -> tuple[Tensor, Tensor]:
    top_left = torch.maximum(boxes1[..., :2], boxes2[..., :2])
    bottom_right = torch.minimum(boxes1[..., 2:], boxes2[..., 2:])
    wh = (bottom_right - top_left).clamp(min=0)
    inter = wh[..., 0] * wh[..., 1]
    return inter, _area(boxes1) + _area(boxes2) - inter


def aligned_box_iou(boxes1: Tensor, boxes2: Tensor, eps: float = EPS) -> Tensor:
    """IoU of corresponding xyxy boxes: ``(inter + eps) / (union + eps)``.

    Args:
        boxes1, boxes2: [..., 4] xyxy, broadcastable against each other.
    Returns:
        [...] the broadcast shape without the last dimension.
    """
    inter, union = _inter_union(boxes1, boxes2)
    return (inter + eps) / (union + eps)


def aligned_generalized_box_iou(boxes1: Tensor, boxes2: Tensor, eps: float = EPS) -> Tensor:
    """Generalized IoU of corresponding xyxy boxes (Rezatofighi et al. 2019), in [-1, 1].

    ``GIoU = IoU - (hull - union) / hull`` with the smallest enclosing box as the hull.

    Args:
        boxes1, boxes2: [..., 4] xyxy, broadcastable against each other.
    Returns:
        [...] the broadcast shape without the last dimension.
    """
    inter, union = _inter_union(boxes1, boxes2)
    iou = (inter + eps) / (union + eps)
    hull_wh = (
        torch.maximum(boxes1[..., 2:], boxes2[..., 2:]) - torch.minimum(boxes1[..., :2], boxes2[..., :2])
    ).clamp(min=0)
    hull = hull_wh[..., 0] * hull_wh[..., 1]
    return iou - (hull - union) / (hull + eps)
