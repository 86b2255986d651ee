"""The batch contract: targets derived from masks, padding in collation."""

from __future__ import annotations

import torch

from vistr_core.data.clip import ClipBatch, collate_clips, make_clip_targets, mask_boxes


def _targets(masks: torch.Tensor):
    n, t = masks.shape[:2]
    return make_clip_targets(
        masks,
        torch.arange(n),
        torch.arange(100, 100 + n),
        video_id=3,
        frame_indices=torch.arange(t),
        orig_size=(masks.shape[-2], masks.shape[-1]),
    )


def test_mask_boxes_pixel_extent_and_empty():
    masks = torch.zeros(3, 10, 20, dtype=torch.bool)
    masks[0, 2:5, 4:10] = True
    masks[1] = True
    boxes = mask_boxes(masks)
    torch.testing.assert_close(boxes[0], torch.tensor([7 / 20, 3.5 / 10, 6 / 20, 3 / 10]))
    torch.testing.assert_close(boxes[1], torch.tensor([0.5, 0.5, 1.0, 1.0]))
    assert torch.equal(boxes[2], torch.zeros(4))


def test_targets_valid_follows_masks_and_absent_instances_are_dropped():
    masks = torch.zeros(3, 2, 8, 8, dtype=torch.bool)
    masks[0, 0, 1:3, 1:3] = True
    masks[2, 1, 4:, 4:] = True
    tgt = _targets(masks)
    assert tgt.num_instances == 2 and tgt.num_frames == 2
    assert tgt.instance_ids.tolist() == [100, 102]
    assert tgt.labels.tolist() == [0, 2]
    assert tgt.valid.tolist() == [[True, False], [False, True]]
    assert torch.equal(tgt.boxes[0, 1], torch.zeros(4)) and tgt.boxes[1, 1, 2] == 0.5
    assert tgt.size == (8, 8)


def test_empty_clip_keeps_shapes():
    tgt = _targets(torch.zeros(2, 4, 6, 5, dtype=torch.bool))
    assert tgt.labels.shape == (0,) and tgt.boxes.shape == (0, 4, 4) and tgt.masks.shape == (0, 4, 6, 5)
    assert tgt.valid.shape == (0, 4)


def test_collate_pads_bottom_right_and_marks_padding():
    a = torch.randn(2, 3, 10, 20)
    b = torch.randn(2, 3, 12, 8)
    ta = _targets(torch.ones(1, 2, 10, 20, dtype=torch.bool))
    tb = _targets(torch.ones(1, 2, 12, 8, dtype=torch.bool))
    batch = collate_clips([(a, ta), (b, tb)])
    assert isinstance(batch, ClipBatch) and len(batch) == 2
    assert batch.frames.shape == (2, 2, 3, 12, 20) and batch.pad_mask.shape == (2, 2, 12, 20)
    assert torch.equal(batch.frames[0, :, :, :10, :20], a) and torch.equal(batch.frames[1, :, :, :, :8], b)
    assert batch.frames[0, :, :, 10:].abs().sum() == 0 and batch.frames[1, :, :, :, 8:].abs().sum() == 0
    assert not batch.pad_mask[0, :, :10, :20].any() and batch.pad_mask[0, :, 10:].all()
    assert batch.pad_mask.sum() == 2 * (2 * 20) + 2 * (12 * 12)
    moved = batch.to("cpu")
    assert moved.targets[1].size == (12, 8)
