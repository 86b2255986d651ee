"""Deferred masks (``VisTR.forward(..., defer_masks=True)``): the masks of the slots asked for equal
the full forward's, and training on them gives the same losses and gradients."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from tests.test_losses import clip_targets
from vistr_core.config import TrainConfig
from vistr_core.data.clip import mask_boxes
from vistr_core.losses import build_criterion
from vistr_core.model import build_vistr
from vistr_core.model.deferred_masks import DeferredMasks, GroupedDeferredMasks
from vistr_core.presets import get_preset

T, N, K = 2, 4, 3


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    config = dataclasses.replace(get_preset("tiny").model, num_frames=T, num_instances=N, num_classes=K)
    return build_vistr(config).train()


def _frames(batch: int, height: int = 64, width: int = 96) -> torch.Tensor:
    return torch.randn(batch, T, 3, height, width, generator=torch.Generator().manual_seed(batch))


def _close(a: torch.Tensor, b: torch.Tensor) -> None:
    torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4)


def test_selected_slots_equal_the_full_forward(model):
    frames = _frames(3)
    with torch.no_grad():
        full = model(frames)["pred_masks"]
        deferred = model(frames, defer_masks=True)["pred_masks"]
    assert isinstance(deferred, DeferredMasks)
    assert deferred.shape == tuple(full.shape)
    # Uneven requests: clip 2 asks for three slots (one twice), clip 0 for one, clip 1 for none.
    clips = torch.tensor([2, 0, 2, 2])
    slots = torch.tensor([3, 1, 0, 3])
    _close(deferred.select(clips, slots), full[clips, slots])
    _close(deferred.materialize(), full)
    assert deferred.select(
        torch.tensor([], dtype=torch.int64), torch.tensor([], dtype=torch.int64)
    ).shape == (
        0,
        T,
        *full.shape[-2:],
    )


def test_padded_batch_of_two_sizes_dispatches_to_each_group(model):
    """A 64x96 clip batched with a 40x64 one (padded): each group's masks, edge-padded, as forward."""
    frames = _frames(2)
    pad_mask = torch.zeros(2, T, 64, 96, dtype=torch.bool)
    pad_mask[1, :, 40:] = True
    pad_mask[1, :, :, 64:] = True
    frames[1][pad_mask[1][:, None].expand(-1, 3, -1, -1)] = 0
    with torch.no_grad():
        full = model(frames, pad_mask)["pred_masks"]
        deferred = model(frames, pad_mask, defer_masks=True)["pred_masks"]
    assert isinstance(deferred, GroupedDeferredMasks)
    clips, slots = torch.tensor([1, 0, 1]), torch.tensor([2, 2, 0])
    _close(deferred.select(clips, slots), full[clips, slots])
    _close(deferred.materialize(), full)


def _targets(height: int = 64, width: int = 96):
    """Clip 0: two objects (one only in frame 1); clip 1: one object."""
    first = torch.zeros(2, T, height, width, dtype=torch.bool)
    first[0, :, 8:30, 10:40] = True
    first[1, 1, 35:60, 50:90] = True
    second = torch.zeros(1, T, height, width, dtype=torch.bool)
    second[0, :, 20:50, 30:70] = True
    return [
        clip_targets([0, 2], mask_boxes(first), first.flatten(2).any(-1), first),
        clip_targets([1], mask_boxes(second), second.flatten(2).any(-1), second),
    ]


def _losses_and_grads(model, criterion, targets, defer: bool, autocast: bool = False):
    model.zero_grad(set_to_none=True)
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
        outputs = model(_frames(2), defer_masks=defer)
    losses = criterion(outputs, targets)
    losses["loss"].backward()
    grads = {name: p.grad.clone() for name, p in model.named_parameters() if p.grad is not None}
    return {k: v.detach() for k, v in losses.items()}, grads


def test_training_losses_and_gradients_are_unchanged(model):
    criterion = build_criterion(K, TrainConfig(loss_memory=1.0, loss_memory_box=1.0))
    targets = _targets()
    full_losses, full_grads = _losses_and_grads(model, criterion, targets, defer=False)
    losses, grads = _losses_and_grads(model, criterion, targets, defer=True)
    assert full_losses["loss_dice"] > 0
    for name, value in full_losses.items():
        _close(losses[name], value)
    assert grads.keys() == full_grads.keys()
    assert any(name.startswith("mask_head.") for name in grads)
    for name, grad in full_grads.items():
        _close(grads[name], grad)


def test_deferred_masks_run_under_the_forwards_autocast(model):
    """The criterion runs outside autocast; the deferred branch must still run in bf16 as the
    forward did: its masks equal the bf16 forward's and differ from the fp32 forward's."""
    frames = _frames(2)
    clips, slots = torch.tensor([0, 1]), torch.tensor([1, 3])
    with torch.no_grad():
        fp32 = model(frames)["pred_masks"][clips, slots]
        with torch.autocast("cpu", dtype=torch.bfloat16):
            bf16 = model(frames)["pred_masks"][clips, slots]
            deferred = model(frames, defer_masks=True)["pred_masks"]
        selected = deferred.select(clips, slots)  # outside the autocast block, as in the criterion
    assert selected.dtype == bf16.dtype
    torch.testing.assert_close(selected, bf16, rtol=0, atol=0)
    assert (selected.float() - fp32).abs().max() > 1e-3


def test_clips_without_objects_still_give_the_mask_head_a_gradient(model):
    """DDP expects a gradient for every parameter, also when nothing was matched."""
    criterion = build_criterion(K, TrainConfig())
    empty = torch.zeros(0, T, 64, 96, dtype=torch.bool)
    targets = [clip_targets([], torch.zeros(0, T, 4), torch.zeros(0, T, dtype=torch.bool), empty)] * 2
    losses, grads = _losses_and_grads(model, criterion, targets, defer=True)
    assert losses["loss_mask"] == 0 and losses["loss_dice"] == 0
    assert any(name.startswith("insmask_head.") for name in grads)
