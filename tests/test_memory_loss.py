"""The training-only dense class loss on the encoder memory (``loss_memory``)."""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch

from tests.test_losses import clip_targets, one_instance_case
from vistr_core.config import TrainConfig
from vistr_core.losses import (
    build_criterion,
    memory_box_loss,
    memory_box_targets,
    memory_class_loss,
    memory_class_targets,
)
from vistr_core.model import build_vistr
from vistr_core.presets import get_preset

K = 2  # classes 0, 1; index 2 = background


def two_object_clip(height: int = 64, width: int = 96, frames: int = 2):
    """Class 1 fills cell (0, 0) of a 32-pixel grid; class 0 covers the left half of cell (1, 2)."""
    masks = torch.zeros(2, frames, height, width, dtype=torch.bool)
    masks[0, :, :32, :32] = True
    masks[1, :, 32:64, 64:80] = True
    valid = torch.ones(2, frames, dtype=torch.bool)
    return clip_targets([1, 0], torch.zeros(2, frames, 4), valid, masks)


def test_targets_are_class_shares_of_each_cell():
    share = memory_class_targets(two_object_clip(), 32, K)
    assert share.shape == (2, 2, 3, K + 1)
    torch.testing.assert_close(share.sum(-1), torch.ones(2, 2, 3))
    torch.testing.assert_close(share[0, 0, 0], torch.tensor([0.0, 1.0, 0.0]))
    torch.testing.assert_close(share[0, 1, 2], torch.tensor([0.5, 0.0, 0.5]))
    torch.testing.assert_close(share[1, 0, 1], torch.tensor([0.0, 0.0, 1.0]))


def test_partial_edge_cells_average_over_their_own_pixels():
    """A 40x40 clip on a 32-pixel grid: the edge cells hold 8 real pixels a side, padding counts for
    no class, so an object filling those 8 rows is all of that cell."""
    masks = torch.zeros(1, 1, 40, 40, dtype=torch.bool)
    masks[0, 0, 32:, :32] = True
    share = memory_class_targets(
        clip_targets([0], torch.zeros(1, 1, 4), torch.ones(1, 1, dtype=torch.bool), masks), 32, K
    )
    assert share.shape == (1, 2, 2, K + 1)
    torch.testing.assert_close(share[0, 1, 0], torch.tensor([1.0, 0.0, 0.0]))
    torch.testing.assert_close(share[0, 1, 1], torch.tensor([0.0, 0.0, 1.0]))


def test_loss_is_the_weighted_soft_cross_entropy():
    target = two_object_clip(frames=1)
    logits = torch.randn(1, 1, 2, 3, K + 1)
    weight = torch.tensor([1.0, 1.0, 0.1])
    share = memory_class_targets(target, 32, K)
    log_prob = logits[0].log_softmax(-1)
    expected = -(share * weight * log_prob).sum() / (share * weight).sum()
    assert memory_class_loss(logits, [target], weight, 32).item() == pytest.approx(expected.item(), rel=1e-6)
    # predicting the shares themselves costs less than a random guess
    perfect = share.clamp(min=1e-6).log()[None]
    assert (
        memory_class_loss(perfect, [target], weight, 32).item()
        < memory_class_loss(logits, [target], weight, 32).item()
    )


def test_a_smaller_clip_in_a_padded_batch_is_read_on_its_own_grid():
    small, big = two_object_clip(40, 60), two_object_clip(64, 96)
    weight = torch.tensor([1.0, 1.0, 0.1])
    small_logits, big_logits = torch.randn(1, 2, 2, 2, K + 1), torch.randn(1, 2, 2, 3, K + 1)
    padded = torch.zeros(1, 2, 2, 3, K + 1)
    padded[:, :, :, :2] = small_logits
    padded[:, :, :, 2:] = 99.0  # junk past the small clip's 2x2 grid
    together = memory_class_loss(torch.cat([padded, big_logits]), [small, big], weight, 32)
    parts = [
        (memory_class_targets(t, 32, K) * weight, lg[0].log_softmax(-1))
        for t, lg in ((small, small_logits), (big, big_logits))
    ]
    expected = -sum((q * lp).sum() for q, lp in parts) / sum(q.sum() for q, _ in parts)
    assert together.item() == pytest.approx(expected.item(), rel=1e-6)


def test_weight_zero_is_the_paper_recipe_and_a_weight_adds_the_term():
    outputs, target = one_instance_case()
    outputs["memory_logits"] = torch.randn(1, 2, 1, 1, K + 1)
    paper = build_criterion(K, TrainConfig())(outputs, [target])
    assert "loss_memory" not in paper
    dense = build_criterion(K, TrainConfig(loss_memory=2.0))(outputs, [target])
    assert dense["loss"].item() == pytest.approx(
        paper["loss"].item() + 2.0 * dense["loss_memory"].item(), rel=1e-6
    )


def tiny(**changes):
    config = dataclasses.replace(
        get_preset("tiny").model, num_frames=2, num_instances=2, num_classes=K, **changes
    )
    torch.manual_seed(0)
    return build_vistr(config)


@pytest.mark.parametrize("dilation, grid", [(False, (2, 3)), (True, (4, 6))])
def test_training_outputs_carry_memory_logits_on_the_token_grid(dilation, grid):
    model = tiny(dilation=dilation).train()
    assert model.memory_stride == (16 if dilation else 32)
    out = model(torch.randn(1, 2, 3, 64, 96))
    assert out["memory_logits"].shape == (1, 2, *grid, K + 1)
    assert out["memory_boxes"].shape == (1, 2, *grid, 4)
    with torch.no_grad():
        assert not {"memory_logits", "memory_boxes"} & set(model.eval()(torch.randn(1, 2, 3, 64, 96)))


def test_memory_logits_of_a_padded_batch_equal_each_clip_alone():
    model = tiny().train()
    a, b = torch.randn(2, 3, 40, 60), torch.randn(2, 3, 64, 96)
    batch = torch.zeros(2, 2, 3, 64, 96)
    mask = torch.ones(2, 2, 64, 96, dtype=torch.bool)
    batch[0, :, :, :40, :60], mask[0, :, :40, :60] = a, False
    batch[1], mask[1] = b, False
    with torch.no_grad():
        together = model(batch, mask)
        alone = [model(a[None]), model(b[None])]
    for key in ("memory_logits", "memory_boxes"):
        torch.testing.assert_close(together[key][0, :, :2, :2], alone[0][key][0], atol=1e-4, rtol=1e-4)
        torch.testing.assert_close(together[key][1], alone[1][key][0], atol=1e-4, rtol=1e-4)


def test_the_memory_loss_trains_the_encoder_and_leaves_inference_unchanged():
    """Its gradient reaches the encoder; eval outputs and the state dict keys are the paper's."""
    model = tiny().train()
    target = two_object_clip()
    out = model(torch.randn(1, 2, 3, 64, 96))
    loss = memory_class_loss(
        out["memory_logits"], [target], torch.tensor([1.0, 1.0, 0.1]), model.memory_stride
    )
    assert math.isfinite(loss.item())
    loss.backward()
    encoder_grad = model.vistr.transformer.encoder.layers[0].linear1.weight.grad
    assert encoder_grad is not None and encoder_grad.abs().sum() > 0
    assert model.vistr.transformer.decoder.layers[0].linear1.weight.grad is None
    assert set(model.state_dict()) == set(tiny().state_dict())


def test_box_targets_take_the_instance_covering_most_of_each_cell():
    target = two_object_clip()  # class 1 fills cell (0, 0); class 0 half of cell (1, 2)
    target = dataclasses.replace(
        target, boxes=torch.tensor([[[0.17, 0.25, 0.33, 0.5]] * 2, [[0.75, 0.75, 0.17, 0.5]] * 2])
    )
    boxes, keep = memory_box_targets(target, 32)
    assert keep.shape == (2, 2, 3) and boxes.shape == (2, 2, 3, 4)
    assert keep[:, 0, 0].all() and keep[:, 1, 2].all()  # full cell; exactly half a cell counts
    assert int(keep.sum()) == 4
    torch.testing.assert_close(boxes[1, 0, 0], target.boxes[0, 1])
    torch.testing.assert_close(boxes[0, 1, 2], target.boxes[1, 0])


def test_box_loss_is_zero_on_the_targets_and_ignores_uncovered_cells():
    target = dataclasses.replace(
        two_object_clip(), boxes=torch.tensor([[[0.17, 0.25, 0.33, 0.5]] * 2, [[0.75, 0.75, 0.17, 0.5]] * 2])
    )
    boxes, keep = memory_box_targets(target, 32)
    pred = torch.where(keep[..., None], boxes, torch.rand(2, 2, 3, 4))[None]  # junk where keep is False
    assert memory_box_loss(pred, [target], 32).item() == pytest.approx(0.0, abs=1e-6)
    shifted = pred.clone()
    shifted[0, 0, 0, 0, 0] += 0.1  # one covered cell's cx off by 0.1
    assert memory_box_loss(shifted, [target], 32).item() > 0.1 / 4


def test_clip_without_instances_gives_no_box_cells():
    empty = clip_targets(
        [],
        torch.zeros(0, 2, 4),
        torch.zeros(0, 2, dtype=torch.bool),
        torch.zeros(0, 2, 64, 96, dtype=torch.bool),
    )
    boxes, keep = memory_box_targets(empty, 32)
    assert boxes.shape == (2, 2, 3, 4) and not keep.any()
    assert memory_box_loss(torch.rand(1, 2, 2, 3, 4), [empty], 32).item() == 0.0
