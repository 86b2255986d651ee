"""The training-only mask term of the matching cost (``cost_mask``): dice over valid frames."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from vistr_core.config import TrainConfig
from vistr_core.data.clip import ClipTargets
from vistr_core.matcher import SequenceMatcher, build_matcher, mask_dice_cost


def two_targets(height: int = 16, width: int = 16) -> ClipTargets:
    """Two same-class targets, 2 frames: target 0 the top-left quarter, target 1 the bottom-right
    one; target 1 is absent in frame 1."""
    masks = torch.zeros(2, 2, height, width, dtype=torch.bool)
    masks[0, :, :8, :8] = True
    masks[1, 0, 8:16, 8:16] = True
    valid = torch.tensor([[True, True], [True, False]])
    return ClipTargets(
        labels=torch.tensor([1, 1]),
        boxes=torch.tensor([[[0.25, 0.25, 0.5, 0.5]] * 2, [[0.75, 0.75, 0.5, 0.5], [0, 0, 0, 0]]]),
        masks=masks,
        valid=valid,
        video_id=0,
        frame_indices=torch.arange(2),
        size=(height, width),
        orig_size=(height, width),
        instance_ids=torch.arange(2),
    )


def mask_logits(quarters: list[tuple[int, int]], size: int = 4) -> torch.Tensor:
    """[T, size, size] logits at 1/4 resolution: +20 on the given quarter per frame, -20 elsewhere."""
    out = torch.full((len(quarters), size, size), -20.0)
    half = size // 2
    for t, (qy, qx) in enumerate(quarters):
        out[t, qy * half : (qy + 1) * half, qx * half : (qx + 1) * half] = 20.0
    return out


def test_dice_cost_is_zero_for_a_perfect_mask_and_one_for_a_disjoint_one():
    target = two_targets()
    pred = torch.stack([mask_logits([(0, 0), (0, 0)]), mask_logits([(1, 1), (0, 0)])])  # [2, T, 4, 4]
    cost = mask_dice_cost(pred, target)
    assert cost.shape == (2, 2)
    # smoothed dice: 1 - (2*4 + 1) / (4 + 4 + 1) = 0 for a perfect 4-cell match
    assert cost[0, 0].item() == pytest.approx(0.0, abs=1e-6)
    assert cost[0, 1].item() == pytest.approx(1 - 1 / 9, abs=1e-6)
    # slot 1 matches target 1 in its only valid frame; frame 1 (target absent) does not count
    assert cost[1, 1].item() == pytest.approx(0.0, abs=1e-6)
    assert cost[1, 0].item() == pytest.approx(((1 - 1 / 9) + 0.0) / 2, abs=1e-6)


def test_batch_padding_changes_nothing():
    target = two_targets()
    pred = torch.randn(3, 2, 4, 4)
    padded = torch.full((3, 2, 7, 9), 50.0)  # junk beyond the clip's 4x4 grid
    padded[:, :, :4, :4] = pred
    torch.testing.assert_close(mask_dice_cost(padded, target), mask_dice_cost(pred, target))


def test_the_mask_cost_decides_between_slots_the_boxes_cannot_tell_apart():
    """Same class and the same (uninformative) box in both slots: only the masks say which slot
    segments which object."""
    target = two_targets()
    logits = torch.zeros(1, 2, 2, 3)
    logits[..., 1] = 5.0
    boxes = torch.full((1, 2, 2, 4), 0.5)
    masks = torch.stack([mask_logits([(1, 1), (1, 1)]), mask_logits([(0, 0), (0, 0)])])[None]
    outputs = {"pred_logits": logits, "pred_boxes": boxes, "pred_masks": masks}
    ((slots, tgts),) = SequenceMatcher(cost_mask=5.0)(outputs, [target])
    assert dict(zip(slots.tolist(), tgts.tolist(), strict=True)) == {0: 1, 1: 0}
    # without masks in the outputs (the aux layers) it matches on class and box alone
    boxes[0, 1] = torch.tensor([0.25, 0.25, 0.5, 0.5])  # now slot 1's box fits target 0
    aux = {"pred_logits": logits, "pred_boxes": boxes}
    assert SequenceMatcher(cost_mask=5.0)(aux, [target])[0][1].tolist() == [1, 0]
    assert SequenceMatcher(cost_mask=5.0)(aux | {"pred_masks": masks}, [target])[0][1].tolist() == [1, 0]


def test_zero_weight_is_the_paper_matcher():
    assert build_matcher(TrainConfig()).cost_mask == 0.0
    assert build_matcher(dataclasses.replace(TrainConfig(), cost_mask=2.0)).cost_mask == 2.0
