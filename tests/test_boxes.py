"""Box conversions and the aligned (elementwise) overlaps against torchvision's pairwise ones."""

from __future__ import annotations

import pytest
import torch

from vistr_core.ops.boxes import (
    aligned_box_iou,
    aligned_generalized_box_iou,
    box_cxcywh_to_xyxy,
    box_iou,
    box_xyxy_to_cxcywh,
    generalized_box_iou,
)


def random_xyxy(n: int, generator: torch.Generator) -> torch.Tensor:
    corner = torch.rand(n, 2, generator=generator) * 0.7
    size = torch.rand(n, 2, generator=generator) * 0.5 + 0.01
    return torch.cat([corner, corner + size], dim=-1)


def test_convert_round_trip_and_values():
    boxes = torch.tensor([[0.5, 0.5, 0.2, 0.4]])
    xyxy = box_cxcywh_to_xyxy(boxes)
    assert torch.allclose(xyxy, torch.tensor([[0.4, 0.3, 0.6, 0.7]]))
    assert torch.allclose(box_xyxy_to_cxcywh(xyxy), boxes)


def test_aligned_iou_matches_pairwise_diagonal():
    g = torch.Generator().manual_seed(1)
    a, b = random_xyxy(20, g), random_xyxy(20, g)
    expected = box_iou(a, b).diagonal()
    assert torch.allclose(aligned_box_iou(a, b, eps=0.0), expected, atol=1e-6)
    # with the reference's smoothing, the difference is at most ~eps / union
    assert torch.allclose(aligned_box_iou(a, b), expected, atol=1e-4)


def test_aligned_giou_matches_pairwise_diagonal():
    g = torch.Generator().manual_seed(2)
    a, b = random_xyxy(20, g), random_xyxy(20, g)
    expected = generalized_box_iou(a, b).diagonal()
    assert torch.allclose(aligned_generalized_box_iou(a, b, eps=0.0), expected, atol=1e-6)
    assert torch.allclose(aligned_generalized_box_iou(a, b), expected, atol=1e-4)


def test_aligned_broadcasts_to_pairwise():
    g = torch.Generator().manual_seed(3)
    a, b = random_xyxy(5, g), random_xyxy(7, g)
    assert torch.allclose(aligned_box_iou(a[:, None], b[None], eps=0.0), box_iou(a, b), atol=1e-6)


def test_known_values_and_empty_boxes():
    a = torch.tensor([0.0, 0.0, 2.0, 2.0])
    b = torch.tensor([1.0, 1.0, 3.0, 3.0])
    # inter 1, union 7, hull 9
    assert aligned_box_iou(a, b, eps=0.0).item() == pytest.approx(1 / 7)
    assert aligned_generalized_box_iou(a, b, eps=0.0).item() == pytest.approx(1 / 7 - 2 / 9)
    zero = torch.zeros(4)
    # the +1e-6 smoothing: two empty boxes overlap perfectly instead of 0/0
    assert aligned_box_iou(zero, zero).item() == pytest.approx(1.0)
    assert torch.isfinite(aligned_generalized_box_iou(zero, zero))
