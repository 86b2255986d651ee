"""Instance sequence matching: exact against brute force, batched = per video, and the
valid-frame fix of the reference's indexing bug (vistr-facts section 4.1)."""

from __future__ import annotations

import itertools

import pytest
import torch

from vistr_core.data.clip import ClipTargets
from vistr_core.matcher import SequenceMatcher, matched_frames, sequence_cost
from vistr_core.ops.boxes import aligned_box_iou, box_cxcywh_to_xyxy

WEIGHTS = {"cost_class": 1.0, "cost_bbox": 5.0, "cost_iou": 2.0}


def make_targets(labels, boxes, valid) -> ClipTargets:
    labels, boxes, valid = torch.as_tensor(labels), torch.as_tensor(boxes), torch.as_tensor(valid)
    n, t = valid.shape
    return ClipTargets(
        labels=labels.long(),
        boxes=boxes.float() * valid[..., None],
        masks=torch.zeros(n, t, 4, 4, dtype=torch.bool),
        valid=valid.bool(),
        video_id=0,
        frame_indices=torch.arange(t),
        size=(4, 4),
        orig_size=(4, 4),
        instance_ids=torch.arange(n),
    )


def random_case(g: torch.Generator, *, n: int, num_targets: int, frames: int, classes: int = 3):
    logits = torch.randn(1, n, frames, classes + 1, generator=g)
    pred = torch.cat(
        [torch.rand(1, n, frames, 2, generator=g), torch.rand(1, n, frames, 2, generator=g) * 0.5 + 0.05], -1
    )
    labels = torch.randint(0, classes, (num_targets,), generator=g)
    boxes = torch.cat(
        [
            torch.rand(num_targets, frames, 2, generator=g),
            torch.rand(num_targets, frames, 2, generator=g) * 0.5 + 0.05,
        ],
        -1,
    )
    valid = torch.rand(num_targets, frames, generator=g) > 0.3
    valid[:, 0] = True  # every target exists somewhere
    return {"pred_logits": logits, "pred_boxes": pred}, make_targets(labels, boxes, valid)


def naive_cost(outputs, target: ClipTargets) -> torch.Tensor:
    """The cost written as loops straight from the definition (valid frames only)."""
    prob = outputs["pred_logits"][0].softmax(-1)
    pred = outputs["pred_boxes"][0]
    n, frames = prob.shape[:2]
    cost = torch.zeros(n, target.num_instances)
    for i in range(n):
        for j in range(target.num_instances):
            ts = [t for t in range(frames) if target.valid[j, t]]
            cls = -sum(prob[i, t, target.labels[j]] for t in ts) / len(ts)
            l1 = sum((pred[i, t] - target.boxes[j, t]).abs().mean() for t in ts) / len(ts)
            iou = sum(
                aligned_box_iou(box_cxcywh_to_xyxy(pred[i, t]), box_cxcywh_to_xyxy(target.boxes[j, t]))
                for t in ts
            ) / len(ts)
            cost[i, j] = cls + 5 * l1 - 2 * iou
    return cost


def brute_force(cost: torch.Tensor) -> set[tuple[int, int]]:
    n, m = cost.shape
    best, best_pairs = float("inf"), None
    if m <= n:
        for slots in itertools.permutations(range(n), m):
            total = sum(cost[s, j].item() for j, s in enumerate(slots))
            if total < best:
                best, best_pairs = total, {(s, j) for j, s in enumerate(slots)}
    else:
        for tgts in itertools.permutations(range(m), n):
            total = sum(cost[i, j].item() for i, j in enumerate(tgts))
            if total < best:
                best, best_pairs = total, {(i, j) for i, j in enumerate(tgts)}
    return best_pairs


def as_pairs(indices) -> set[tuple[int, int]]:
    pred, tgt = indices
    return set(zip(pred.tolist(), tgt.tolist(), strict=True))


@pytest.mark.parametrize(("n", "num_targets"), [(4, 2), (4, 4), (3, 5), (5, 1)])
def test_equals_brute_force(n, num_targets):
    g = torch.Generator().manual_seed(10 * n + num_targets)
    matcher = SequenceMatcher(**WEIGHTS)
    for _ in range(5):
        outputs, target = random_case(g, n=n, num_targets=num_targets, frames=4)
        cost = sequence_cost(
            outputs["pred_logits"],
            outputs["pred_boxes"],
            target.labels,
            target.boxes,
            target.valid,
            **WEIGHTS,
        )[0]
        assert torch.allclose(cost, naive_cost(outputs, target), atol=1e-5)
        (indices,) = matcher(outputs, [target])
        assert len(indices[0]) == min(n, num_targets)
        assert as_pairs(indices) == brute_force(cost)


def test_batched_equals_per_video():
    g = torch.Generator().manual_seed(0)
    matcher = SequenceMatcher(**WEIGHTS)
    cases = [random_case(g, n=4, num_targets=k, frames=3) for k in (2, 0, 5, 3)]
    outputs = {key: torch.cat([c[0][key] for c in cases]) for key in ("pred_logits", "pred_boxes")}
    batched = matcher(outputs, [c[1] for c in cases])
    for (single_out, target), got in zip(cases, batched, strict=True):
        (expected,) = matcher(single_out, [target])
        assert torch.equal(got[0], expected[0]) and torch.equal(got[1], expected[1])
        assert got[0].dtype == torch.int64


def test_empty_targets():
    g = torch.Generator().manual_seed(0)
    outputs, _ = random_case(g, n=4, num_targets=1, frames=3)
    empty = make_targets(torch.zeros(0), torch.zeros(0, 3, 4), torch.zeros(0, 3, dtype=torch.bool))
    ((pred, tgt),) = SequenceMatcher(**WEIGHTS)(outputs, [empty])
    assert pred.numel() == 0 and tgt.numel() == 0 and pred.dtype == torch.int64
    batch, slot, frame, inst = matched_frames([(pred, tgt)], [empty])
    assert batch.numel() == slot.numel() == frame.numel() == inst.numel() == 0


def test_invariant_to_target_order():
    g = torch.Generator().manual_seed(5)
    matcher = SequenceMatcher(**WEIGHTS)
    outputs, target = random_case(g, n=5, num_targets=4, frames=4)
    perm = torch.tensor([2, 0, 3, 1])
    shuffled = make_targets(target.labels[perm], target.boxes[perm], target.valid[perm])
    (original,) = matcher(outputs, [target])
    (permuted,) = matcher(outputs, [shuffled])
    assert as_pairs(original) == {(s, perm[j].item()) for s, j in as_pairs(permuted)}


def test_more_targets_than_slots_matches_every_slot():
    g = torch.Generator().manual_seed(6)
    outputs, target = random_case(g, n=2, num_targets=6, frames=3)
    ((pred, tgt),) = SequenceMatcher(**WEIGHTS)(outputs, [target])
    assert pred.tolist() == [0, 1] and len(set(tgt.tolist())) == 2


def test_valid_frames_come_from_the_matched_target():
    """Target 0 exists in frames 0-1, target 1 in frames 2-3; slot 0 predicts target 1 and slot 1
    predicts target 0, so the assignment is not the identity. The reference took the valid frames
    of target j for the j-th assignment (slot 0 -> frames 0-1); the right ones are 2-3."""
    frames, classes = 4, 3
    box0, box1 = torch.tensor([0.25, 0.25, 0.2, 0.2]), torch.tensor([0.75, 0.75, 0.3, 0.3])
    valid = torch.tensor([[1, 1, 0, 0], [0, 0, 1, 1]], dtype=torch.bool)
    target = make_targets([0, 2], torch.stack([box0.expand(frames, 4), box1.expand(frames, 4)]), valid)
    logits = torch.full((1, 2, frames, classes + 1), -5.0)
    logits[0, 0, :, 2] = 5.0  # slot 0: class 2 and box 1
    logits[0, 1, :, 0] = 5.0  # slot 1: class 0 and box 0
    boxes = torch.stack([box1.expand(frames, 4), box0.expand(frames, 4)])[None]
    indices = SequenceMatcher(**WEIGHTS)({"pred_logits": logits, "pred_boxes": boxes}, [target])
    assert indices[0][0].tolist() == [0, 1] and indices[0][1].tolist() == [1, 0]

    _, slot, frame, inst = matched_frames(indices, [target])
    ours = {(s, f, i) for s, f, i in zip(slot.tolist(), frame.tolist(), inst.tolist(), strict=True)}
    assert ours == {(0, 2, 1), (0, 3, 1), (1, 0, 0), (1, 1, 0)}
    pred_idx, tgt_idx = indices[0]
    reference_bug = {
        (pred_idx[j].item(), t, tgt_idx[j].item()) for j in range(2) for t in range(frames) if valid[j, t]
    }
    assert reference_bug != ours  # the buggy expansion supervises slot 0 on frames where target 1 is absent
    assert all(target.valid[i, f] for _, f, i in ours)


def test_class_cost_averages_only_over_present_frames():
    # one slot, one target present in frame 0 only; the absent frames' predictions must not matter
    logits = torch.zeros(1, 1, 3, 3)
    logits[0, 0, 0, 1] = 10.0
    target = make_targets(
        [1], torch.tensor([[[0.5, 0.5, 0.2, 0.2]] * 3]), torch.tensor([[True, False, False]])
    )
    cost = sequence_cost(
        logits, torch.tensor([[[[0.5, 0.5, 0.2, 0.2]] * 3]]), target.labels, target.boxes, target.valid,
        cost_class=1.0, cost_bbox=0.0, cost_iou=0.0,
    )  # fmt: skip
    assert cost.item() == pytest.approx(-logits[0, 0, 0].softmax(-1)[1].item(), abs=1e-6)
