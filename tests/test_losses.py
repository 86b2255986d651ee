"""The set criterion on constructed inputs with hand-computed values."""

from __future__ import annotations

import math

import pytest
import torch

from vistr_core.config import TrainConfig
from vistr_core.data.clip import ClipTargets
from vistr_core.losses import build_criterion, dice_loss, focal_loss

NUM_CLASSES = 2  # logits: class 0, class 1, no-object (2)


def clip_targets(labels, boxes, valid, masks) -> ClipTargets:
    n, t = valid.shape
    return ClipTargets(
        labels=torch.as_tensor(labels, dtype=torch.int64),
        boxes=boxes,
        masks=masks,
        valid=valid,
        video_id=1,
        frame_indices=torch.arange(t),
        size=tuple(masks.shape[-2:]),
        orig_size=tuple(masks.shape[-2:]),
        instance_ids=torch.arange(n),
    )


def one_instance_case(mask_logit: float = 0.3):
    """n=2 slots, T=2 frames, one target (class 1) present in frame 0 only; slot 0 clearly matches."""
    logits = torch.tensor(
        [[[[0.1, 2.0, -1.0], [0.3, 1.5, 0.2]], [[0.5, -0.5, 1.0], [0.0, 0.2, 0.4]]]], requires_grad=True
    )  # [1, 2, 2, 3]
    pred_boxes = torch.tensor(
        [[[[0.5, 0.5, 0.4, 0.4], [0.5, 0.5, 0.4, 0.4]], [[0.1, 0.1, 0.05, 0.05], [0.1, 0.1, 0.05, 0.05]]]],
        requires_grad=True,
    )
    pred_masks = torch.full((1, 2, 2, 1, 1), mask_logit, requires_grad=True)  # H/4 x W/4 = 1 x 1
    masks = torch.zeros(1, 2, 4, 4, dtype=torch.bool)
    masks[0, 0, :2, :2] = True  # 4 of 16 pixels
    target = clip_targets(
        [1],
        torch.tensor([[[0.6, 0.6, 0.4, 0.4], [0.0, 0.0, 0.0, 0.0]]]),
        torch.tensor([[True, False]]),
        masks,
    )
    outputs = {"pred_logits": logits, "pred_boxes": pred_boxes, "pred_masks": pred_masks}
    return outputs, target


def ce(row: list[float], cls: int) -> float:
    return -row[cls] + math.log(sum(math.exp(v) for v in row))


def test_known_values():
    outputs, target = one_instance_case()
    criterion = build_criterion(NUM_CLASSES, TrainConfig())
    losses = criterion(outputs, [target])
    rows = outputs["pred_logits"][0].tolist()
    # slot 0 frame 0 -> class 1 (weight 1); slot 0 frame 1 (target absent) and slot 1 -> no-object (0.1)
    expected_ce = (
        ce(rows[0][0], 1) + 0.1 * (ce(rows[0][1], 2) + ce(rows[1][0], 2) + ce(rows[1][1], 2))
    ) / 1.3
    assert losses["loss_ce"].item() == pytest.approx(expected_ce, rel=1e-5)
    assert losses["loss_bbox"].item() == pytest.approx(0.2, rel=1e-5)  # |0.5-0.6| * 2, one pair
    # xyxy (.3,.3,.7,.7) vs (.4,.4,.8,.8): inter .09, union .23, hull .25
    assert losses["loss_giou"].item() == pytest.approx(1 - (0.09 / 0.23 - 0.02 / 0.25), abs=1e-4)
    p = 1 / (1 + math.exp(-0.3))
    pos = 0.25 * (1 - p) ** 2 * -math.log(p)
    neg = 0.75 * p**2 * -math.log(1 - p)
    assert losses["loss_mask"].item() == pytest.approx((4 * pos + 12 * neg) / 16, rel=1e-5)
    assert losses["loss_dice"].item() == pytest.approx(1 - (2 * 4 * p + 1) / (16 * p + 4 + 1), rel=1e-5)
    total = sum(
        losses[k].item() * w
        for k, w in [("loss_ce", 1), ("loss_bbox", 5), ("loss_giou", 2), ("loss_mask", 1), ("loss_dice", 1)]
    )
    assert losses["loss"].item() == pytest.approx(total, rel=1e-5)


def test_gradients_are_finite():
    outputs, target = one_instance_case()
    outputs["aux_outputs"] = [
        {"pred_logits": outputs["pred_logits"] * 0.5, "pred_boxes": outputs["pred_boxes"] * 0.9}
    ]
    losses = build_criterion(NUM_CLASSES, TrainConfig())(outputs, [target])
    assert {"loss_ce_0", "loss_bbox_0", "loss_giou_0"} <= set(losses)
    assert "loss_mask_0" not in losses
    losses["loss"].backward()
    for key in ("pred_logits", "pred_boxes", "pred_masks"):
        grad = outputs[key].grad
        assert grad is not None and torch.isfinite(grad).all() and grad.abs().sum() > 0


def test_aux_layers_are_matched_and_weighted_like_the_last():
    outputs, target = one_instance_case()
    aux = {"pred_logits": outputs["pred_logits"].detach(), "pred_boxes": outputs["pred_boxes"].detach()}
    with_aux = build_criterion(NUM_CLASSES, TrainConfig())({**outputs, "aux_outputs": [aux]}, [target])
    for name in ("loss_ce", "loss_bbox", "loss_giou"):
        assert with_aux[f"{name}_0"].item() == pytest.approx(with_aux[name].item(), rel=1e-6)
    plain = build_criterion(NUM_CLASSES, TrainConfig())(outputs, [target])
    extra = with_aux["loss_ce"] + 5 * with_aux["loss_bbox"] + 2 * with_aux["loss_giou"]
    assert with_aux["loss"].item() == pytest.approx((plain["loss"] + extra).item(), rel=1e-5)


def test_zero_targets_give_only_no_object_ce():
    outputs, _ = one_instance_case()
    empty = clip_targets(
        torch.zeros(0),
        torch.zeros(0, 2, 4),
        torch.zeros(0, 2, dtype=torch.bool),
        torch.zeros(0, 2, 4, 4, dtype=torch.bool),
    )
    losses = build_criterion(NUM_CLASSES, TrainConfig())(outputs, [empty])
    rows = outputs["pred_logits"][0].tolist()
    expected = sum(ce(r, 2) for slot in rows for r in slot) / 4  # weights cancel: all 0.1
    assert losses["loss_ce"].item() == pytest.approx(expected, rel=1e-5)
    for key in ("loss_bbox", "loss_giou", "loss_mask", "loss_dice"):
        assert losses[key].item() == 0.0
    losses["loss"].backward()
    assert all(torch.isfinite(outputs[k].grad).all() for k in ("pred_logits", "pred_boxes", "pred_masks"))


def test_normalized_by_valid_pairs_over_the_batch():
    # the same clip twice: per-pair sums double, the number of valid pairs doubles -> same values
    outputs, target = one_instance_case()
    single = build_criterion(NUM_CLASSES, TrainConfig())(outputs, [target])
    doubled = {k: torch.cat([v, v]) for k, v in outputs.items()}
    double = build_criterion(NUM_CLASSES, TrainConfig())(doubled, [target, target])
    for key in ("loss_ce", "loss_bbox", "loss_giou", "loss_mask", "loss_dice"):
        assert double[key].item() == pytest.approx(single[key].item(), rel=1e-5)


def test_padding_changes_nothing():
    """A 4x4 clip batched with an 8x8 clip (so padded to 8x8, its mask logits padded with junk)
    gives the same per-pair mask and box sums as each clip alone."""
    small_out, small = one_instance_case(mask_logit=0.3)
    big_out, big_small = one_instance_case(mask_logit=-0.7)
    big_masks = torch.zeros(1, 2, 8, 8, dtype=torch.bool)
    big_masks[0, 0, 2:7, 1:5] = True
    big = clip_targets(big_small.labels, big_small.boxes, big_small.valid, big_masks)
    big_out["pred_masks"] = torch.randn(1, 2, 2, 2, 2)
    padded_small = torch.full((1, 2, 2, 2, 2), 99.0)  # junk outside the small clip's valid 1x1
    padded_small[..., :1, :1] = small_out["pred_masks"]
    batched = {
        "pred_logits": torch.cat([small_out["pred_logits"], big_out["pred_logits"]]),
        "pred_boxes": torch.cat([small_out["pred_boxes"], big_out["pred_boxes"]]),
        "pred_masks": torch.cat([padded_small, big_out["pred_masks"]]),
    }
    criterion = build_criterion(NUM_CLASSES, TrainConfig())
    together = criterion(batched, [small, big])
    alone = [criterion(small_out, [small]), criterion(big_out, [big])]
    for key in ("loss_mask", "loss_dice", "loss_bbox", "loss_giou"):
        # one valid pair per clip: the batch normalizes by 2, each clip alone by 1
        assert 2 * together[key].item() == pytest.approx(
            alone[0][key].item() + alone[1][key].item(), rel=1e-5
        )


def test_focal_and_dice_reduce_to_known_limits():
    targets = torch.tensor([[[1.0, 0.0], [0.0, 1.0]]])
    perfect = (targets * 2 - 1) * 50
    assert focal_loss(perfect, targets, torch.tensor(1.0), alpha=0.25, gamma=2).item() < 1e-6
    assert dice_loss(perfect, targets, torch.tensor(1.0)).item() == pytest.approx(0.0, abs=1e-6)
    assert dice_loss(-perfect, targets, torch.tensor(1.0)).item() == pytest.approx(
        1 - 1 / 5, abs=1e-6
    )  # (0 + 1) / (2 + 2 + 1)
