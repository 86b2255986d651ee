"""Linking and track statistics, and the per-window post-processing against the reference recipe."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from vistr_core.inference.predictor import mask_logit_threshold, postprocess, upsample_masks
from vistr_core.inference.tracker import (
    TrackBook,
    active_slots,
    coverage_score,
    link_slots,
    majority_class,
    mask_boxes,
    sequence_iou,
)


def test_sequence_iou_matches_numpy():
    gen = torch.Generator().manual_seed(0)
    a = torch.rand(4, 3, 10, 12, generator=gen) > 0.6
    b = torch.rand(5, 3, 10, 12, generator=gen) > 0.6
    b[2] = False
    a[1] = False
    got = sequence_iou(a, b).numpy()
    for i in range(4):
        for j in range(5):
            inter = np.logical_and(a[i].numpy(), b[j].numpy()).sum()
            union = np.logical_or(a[i].numpy(), b[j].numpy()).sum()
            assert got[i, j] == pytest.approx(inter / union if union else 0.0)


def test_link_slots_recovers_a_permutation_and_respects_thresholds():
    gen = torch.Generator().manual_seed(1)
    masks = torch.rand(4, 2, 16, 16, generator=gen) > 0.5
    perm = torch.tensor([2, 0, 3, 1])  # later slot j shows earlier object perm[j]
    later = masks[perm]
    classes = torch.tensor([1, 2, 3, 4])
    pairs = link_slots(sequence_iou(masks, later), classes, classes[perm], link_iou=0.5, class_penalty=0.5)
    assert sorted(pairs) == sorted((int(perm[j]), j) for j in range(4))
    # the same masks with a disagreeing majority class lose 0.5 of affinity: IoU 1 - 0.5 still links at 0.5 ...
    wrong = classes[perm].clone()
    wrong[0] = 9
    pairs = link_slots(sequence_iou(masks, later), classes, wrong, link_iou=0.5, class_penalty=0.5)
    assert (int(perm[0]), 0) in pairs
    # ... but not when a stricter link threshold is asked for
    pairs = link_slots(sequence_iou(masks, later), classes, wrong, link_iou=0.6, class_penalty=0.5)
    assert (int(perm[0]), 0) not in pairs and len(pairs) == 3
    # disjoint masks never link
    empty = torch.zeros(4, 2, 16, 16, dtype=torch.bool)
    assert link_slots(sequence_iou(masks, empty), classes, classes, link_iou=0.5, class_penalty=0.5) == []


def test_slot_bonus_keeps_a_track_on_its_query_slot_when_masks_are_ambiguous():
    # two copies of one object: earlier slots (3, 4), later slots (4, 3); on masks alone the copies
    # swap (0.7 + 0.7 > 0.6 + 0.6), with the bonus each stays on its own query slot
    iou = torch.tensor([[0.7, 0.6], [0.6, 0.7]])
    same_slot = torch.tensor([[False, True], [True, False]])
    classes = torch.zeros(2, dtype=torch.long)
    kwargs = {"link_iou": 0.3, "class_penalty": 0.5, "same_slot": same_slot}
    assert sorted(link_slots(iou, classes, classes, **kwargs, slot_bonus=0.0)) == [(0, 0), (1, 1)]
    assert sorted(link_slots(iou, classes, classes, **kwargs, slot_bonus=0.3)) == [(0, 1), (1, 0)]
    # masks still decide when they differ by more than the bonus
    clear = torch.tensor([[0.9, 0.4], [0.4, 0.9]])
    assert sorted(link_slots(clear, classes, classes, **kwargs, slot_bonus=0.3)) == [(0, 0), (1, 1)]


@pytest.mark.parametrize(
    ("iou", "class_b", "bonus"),
    [
        (0.1, 0, 0.3),  # IoU 0.1 + bonus 0.3 would pass link_iou 0.3; the threshold is on the masks
        (0.7, 1, 1.0),  # across classes the penalty still counts: 0.7 - 0.5 < 0.3 whatever the bonus
    ],
)
def test_slot_bonus_never_makes_a_link_the_masks_do_not_support(iou, class_b, bonus):
    pairs = link_slots(
        torch.tensor([[iou]]),
        torch.tensor([0]),
        torch.tensor([class_b]),
        link_iou=0.3,
        class_penalty=0.5,
        same_slot=torch.tensor([[True]]),
        slot_bonus=bonus,
    )
    assert pairs == []


def test_slot_bonus_must_not_be_negative():
    from vistr_core.config import InferConfig
    from vistr_core.errors import ConfigError

    with pytest.raises(ConfigError, match="--slot-bonus must be >= 0, got -0.1"):
        InferConfig(slot_bonus=-0.1)


def test_majority_class_ties_go_to_lowest_index():
    labels = torch.tensor([[3, 3, 1, 1, 2], [5, 5, 5, 0, 0], [4, 4, 4, 4, 4]])
    assert majority_class(labels).tolist() == [1, 5, 4]


def test_track_book_scores_classes_filters_and_renumbers():
    book = TrackBook()
    a, b, c = book.new_track(), book.new_track(), book.new_track()
    for p, (score, label) in enumerate([(0.9, 2), (0.7, 2), (0.8, 1)]):
        book.tracks[b].add_frame(p + 3, score, label, nonempty=True)
    book.tracks[a].add_frame(5, 0.4, 1, nonempty=True)
    book.tracks[a].add_frame(6, 0.2, 1, nonempty=False)
    book.tracks[c].add_frame(0, 0.99, 3, nonempty=False)  # never visible: dropped
    tracks = book.finalize()
    assert [(t.track_id, t.provisional_id) for t in tracks] == [(1, b), (2, a)]  # by first appearance
    assert tracks[0].score == pytest.approx(0.8) and tracks[0].label == 2
    assert tracks[1].score == pytest.approx(0.3) and tracks[1].num_frames == 1
    assert [t.provisional_id for t in book.finalize(score_thr=0.5)] == [b]
    assert [t.provisional_id for t in book.finalize(min_track_len=2)] == [b]
    assert [t.provisional_id for t in book.finalize(max_tracks=1)] == [b]


def test_coverage_score_scales_by_the_share_of_frames_covered():
    assert coverage_score(0.8, 240, 240, 0.25) == pytest.approx(0.8)  # every frame: the plain mean
    assert coverage_score(0.8, 60, 240, 0.5) == pytest.approx(0.4)
    assert coverage_score(0.8, 60, 240, 0.0) == 0.8 and coverage_score(0.8, 60, None, 0.5) == 0.8


def test_track_book_ranks_pieces_below_whole_tracks_with_a_coverage_power():
    """A confident 10-frame piece against a less confident track over all 100 frames."""
    book = TrackBook()
    piece, whole = book.new_track(), book.new_track()
    for p in range(100):
        book.tracks[whole].add_frame(p, 0.7, 1, nonempty=True)
        if 40 <= p < 50:
            book.tracks[piece].add_frame(p, 0.9, 1, nonempty=True)
    plain = book.finalize(max_tracks=1, video_frames=100)
    assert [t.provisional_id for t in plain] == [piece] and plain[0].score == pytest.approx(0.9)
    weighted = book.finalize(video_frames=100, coverage_power=0.5)
    scores = {t.provisional_id: t.score for t in weighted}
    assert scores == pytest.approx({piece: 0.9 * 0.1**0.5, whole: 0.7})
    assert [t.provisional_id for t in book.finalize(max_tracks=1, video_frames=100, coverage_power=0.5)] == [
        whole
    ]
    assert [t.provisional_id for t in book.finalize(score_thr=0.5, video_frames=100, coverage_power=0.5)] == [
        whole
    ]


def test_mask_boxes_are_pixel_extents():
    masks = torch.zeros(2, 6, 8, dtype=torch.bool)
    masks[0, 1:3, 2:5] = True
    masks[1, 4, 7] = True  # one pixel: a box of area 1
    assert mask_boxes(masks).tolist() == [[2.0, 1.0, 5.0, 3.0], [7.0, 4.0, 8.0, 5.0]]


def test_postprocess_follows_the_reference_recipe():
    gen = torch.Generator().manual_seed(2)
    logits = torch.randn(2, 3, 4, 6, generator=gen) * 3  # B=2, n=3, T=4, K+1=6
    masks = torch.randn(2, 3, 4, 5, 7, generator=gen)
    preds = postprocess(logits, masks, unused_classes=[0])
    for b in range(2):
        probs = torch.softmax(logits[b], -1)[..., :-1].numpy()
        probs[..., 0] = -1
        np.testing.assert_allclose(preds[b].scores.numpy(), probs.max(-1), rtol=1e-6)
        np.testing.assert_array_equal(preds[b].labels.numpy(), probs.argmax(-1))
        assert (preds[b].labels != 0).all()
    assert torch.equal(preds[1].mask_logits, masks[1])


def test_upsample_is_bilinear_logits_then_sigmoid_threshold():
    gen = torch.Generator().manual_seed(3)
    logits = torch.randn(3, 9, 13, generator=gen)
    got = upsample_masks(logits, (37, 50), mask_logit_threshold(0.5))
    ref = F.interpolate(logits[None], size=(37, 50), mode="bilinear", align_corners=False)[0].sigmoid() > 0.5
    assert got.dtype == torch.bool and torch.equal(got, ref)
    strict = upsample_masks(logits, (37, 50), mask_logit_threshold(0.8))
    ref8 = F.interpolate(logits[None], size=(37, 50), mode="bilinear", align_corners=False)[0].sigmoid() > 0.8
    assert (strict != ref8).sum() <= 2  # equal up to float rounding at the boundary
    assert upsample_masks(logits[:0], (4, 4), 0.0).shape == (0, 4, 4)


def test_active_slots_ignore_padded_frames():
    logits = torch.full((3, 4, 2, 2), -1.0)
    logits[0, 1, 0, 0] = 2.0
    logits[2, 3, 1, 1] = 2.0  # only in a padded position
    assert active_slots(logits, num_real=3, logit_thr=0.0).tolist() == [0]
    assert active_slots(logits, num_real=4, logit_thr=0.0).tolist() == [0, 2]
