"""Identities across windows on generated videos, with a fake model whose slot order changes per window."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from _segment_fakes import ColorSlotModel, object_masks, write_scene_video
from pycocotools import mask as mask_utils

from vistr_core.config import InferConfig
from vistr_core.data.video_io import open_video
from vistr_core.errors import ConfigError
from vistr_core.inference.segment import segment_videos
from vistr_core.inference.segmenter import VideoSegmenter, default_max_gap


def decode(segmentation):
    return mask_utils.decode(
        {"size": segmentation["size"], "counts": segmentation["counts"].encode()}
    ).astype(bool)


def iou(a: np.ndarray, b: np.ndarray) -> float:
    union = np.logical_or(a, b).sum()
    return float(np.logical_and(a, b).sum() / union) if union else 0.0


def test_long_video_keeps_one_id_per_object(tmp_path):
    """360 frames, 8-frame windows, slots permuted in every window: 3 objects → exactly 3 ids."""
    video = write_scene_video(tmp_path / "long.mp4", 360, speed=1.5)
    model = ColorSlotModel(num_frames=8, num_instances=5)
    summary = segment_videos(
        [video], tmp_path / "out", model=model, infer=InferConfig(overlap=2), device="cpu"
    )
    assert summary.ok and summary.videos[0].frames == 360
    assert model.calls >= 59  # ceil((360 - 8) / 6) + 1 windows
    # the linker had real work: the fake's slot for "red" changes between consecutive windows
    orders = [
        torch.randperm(5, generator=torch.Generator().manual_seed(1000 + k)) for k in range(model.calls)
    ]
    assert sum(int(a[0]) != int(b[0]) for a, b in zip(orders, orders[1:], strict=False)) > 30

    results = json.loads((tmp_path / "out" / "long" / "results.json").read_text())
    assert sorted(r["track_id"] for r in results) == [1, 2, 3]
    assert sorted(r["category_id"] for r in results) == [1, 2, 3]  # red, green, blue; 0 is unused
    for r in results:
        color = r["category_id"] - 1
        assert len(r["segmentations"]) == 360 and all(s is not None for s in r["segmentations"])
        overlaps = [
            iou(decode(s), object_masks(t, speed=1.5)[color]) for t, s in enumerate(r["segmentations"])
        ]
        assert min(overlaps) > 0.6, (
            f"track {r['track_id']} lost its object at frame {int(np.argmin(overlaps))}"
        )


def test_one_window_and_overlapping_windows_agree(tmp_path):
    """The same 24 frames as one 24-frame window and as 8-frame windows overlapping by 3."""
    video = write_scene_video(tmp_path / "slow.mp4", 24, speed=0.25)
    outputs = {}
    for name, model, overlap in (("single", ColorSlotModel(24), 0), ("windows", ColorSlotModel(8), 3)):
        segment_videos(
            [video], tmp_path / name, model=model, infer=InferConfig(overlap=overlap), device="cpu"
        )
        results = json.loads((tmp_path / name / "slow" / "results.json").read_text())
        outputs[name] = {r["category_id"]: r for r in results}
    assert outputs["single"].keys() == outputs["windows"].keys() == {1, 2, 3}
    for category, single in outputs["single"].items():
        windowed = outputs["windows"][category]
        assert windowed["score"] == single["score"]
        assert windowed["segmentations"] == single["segmentations"]
        assert windowed["track_id"] == single["track_id"]


def test_streaming_api_yields_window_results_with_original_size_masks(tmp_path):
    video_path = write_scene_video(tmp_path / "v.mp4", 20)
    segmenter = VideoSegmenter(ColorSlotModel(8), infer=InferConfig(overlap=2), device="cpu")
    positions = []
    with open_video(video_path) as video:
        for result in segmenter.stream(video):
            for frame in result.frames:
                positions.append(frame.frame.position)
                assert frame.masks.shape == (len(frame.track_ids), 64, 96) and frame.masks.dtype == bool
                assert len(frame.track_ids) == 3
    assert positions == list(range(20))
    tracks = segmenter.tracks()
    assert [t.track_id for t in tracks] == [1, 2, 3] and all(t.num_frames == 20 for t in tracks)


def test_batched_windows_give_the_same_results(tmp_path):
    video = write_scene_video(tmp_path / "v.mp4", 40)
    outputs = []
    for batch in (1, 3):
        model = ColorSlotModel(8)
        out = tmp_path / f"b{batch}"
        segment_videos(
            [video], out, model=model, infer=InferConfig(overlap=2, window_batch=batch), device="cpu"
        )
        outputs.append(json.loads((out / "v" / "results.json").read_text()))
    assert outputs[0] == outputs[1] and len(outputs[0]) == 3


@pytest.mark.parametrize("limit", [None, 5])  # the default (T = 8), and exactly the gap
def test_a_track_resumes_after_a_short_gap(tmp_path, limit):
    """Red vanishes in frames 42-46, so the windows [36, 43] and [42, 49] share no red frame and
    cannot be linked: within --max-gap red comes back under its own id; with a limit of 4 (one frame
    short) or 0 it starts a new track."""
    video = write_scene_video(tmp_path / "gap.mp4", 80, speed=0.5, hidden={0: range(42, 47)})
    outputs = {}
    for max_gap in (limit, 4, 0):
        out = tmp_path / f"gap{max_gap}"
        infer = InferConfig(overlap=2, max_gap=max_gap, relink_colour=None)  # the window rule alone
        segment_videos([video], out, model=ColorSlotModel(8), infer=infer, device="cpu")
        outputs[max_gap] = json.loads((out / "gap" / "results.json").read_text())
    resumed = [r for r in outputs[limit] if r["category_id"] == 1]
    assert len(outputs[limit]) == 3 and len(resumed) == 1
    red = [decode(s) if s is not None else None for s in resumed[0]["segmentations"]]
    assert [m is not None and m.any() for m in red] == [not 42 <= t < 47 for t in range(80)]
    assert outputs[0] == outputs[4]  # 0 disables resuming
    split = [r for r in outputs[4] if r["category_id"] == 1]
    assert len(outputs[4]) == 4 and len(split) == 2
    for t in range(80):  # the two pieces together are the resumed track, frame by frame
        pieces = [decode(r["segmentations"][t]) for r in split if r["segmentations"][t] is not None]
        pieces = [m for m in pieces if m.any()]
        assert len(pieces) == (0 if 42 <= t < 47 else 1)
        if pieces:
            assert np.array_equal(pieces[0], red[t])


def test_a_track_does_not_resume_after_a_longer_gap(tmp_path):
    """Red hidden for 28 frames, more than the default --max-gap (24 for T = 8) plus half the overlap."""
    assert default_max_gap(8) == 24 and default_max_gap(36) == 36
    video = write_scene_video(tmp_path / "gap.mp4", 80, speed=0.5, hidden={0: range(30, 58)})
    counts = {}
    for relink_colour in (None, InferConfig.relink_colour):
        out = tmp_path / f"o{relink_colour}"
        infer = InferConfig(overlap=2, relink_colour=relink_colour)
        segment_videos([video], out, model=ColorSlotModel(8), infer=infer, device="cpu")
        results = json.loads((out / "gap" / "results.json").read_text())
        counts[relink_colour] = sorted(r["category_id"] for r in results)
    assert counts[None] == [1, 1, 2, 3]
    # re-linking (the default) sees both pieces whole and waits up to 4 x --max-gap: one red track
    assert counts[InferConfig.relink_colour] == [1, 2, 3]


@pytest.mark.parametrize(
    ("hidden", "resumes_at", "splits_at"),
    [
        (range(42, 48), -0.2, 0.3),  # back 10 px further on: the boxes overlap (GIoU about 0.2)
        (range(42, 54), -0.2, 0.0),  # back 19 px further on: the boxes a few pixels apart (GIoU < 0)
    ],
)
def test_a_moved_track_resumes_on_its_box_overlap(tmp_path, hidden, resumes_at, splits_at):
    """Red (speed 1.5 px/frame, 16 px wide) is hidden and comes back further on. At --resume-iou
    -0.2 (the default) it resumes its track, whether the last and first masks' boxes overlap or lie a
    little apart; at a higher threshold it starts a second one. Green and blue keep one track each."""
    assert InferConfig.resume_iou == resumes_at
    video = write_scene_video(tmp_path / "moved.mp4", 80, speed=1.5, hidden={0: hidden})
    counts = {}
    for resume_iou in (resumes_at, splits_at):
        out = tmp_path / f"r{resume_iou}"
        infer = InferConfig(overlap=2, resume_iou=resume_iou, relink_colour=None)  # the rule alone
        segment_videos([video], out, model=ColorSlotModel(8), infer=infer, device="cpu")
        results = json.loads((out / "moved" / "results.json").read_text())
        counts[resume_iou] = sorted(r["category_id"] for r in results)
        links = json.loads((out / "moved" / "meta.json").read_text())["links"]
        gap_links = [link for link in links if link["kind"] == "gap"]
        assert len(gap_links) == (1 if resume_iou == resumes_at else 0)
    assert counts[resumes_at] == [1, 2, 3] and counts[splits_at] == [1, 1, 2, 3]


def test_a_track_does_not_resume_far_from_where_it_was_lost(tmp_path):
    """Green (3 px/frame) is hidden in frames 2-16, well within --max-gap, and comes back 48 px
    further on: its boxes do not overlap, so it starts a second track; red and blue keep one."""
    video = write_scene_video(tmp_path / "far.mp4", 40, speed=1.5, hidden={1: range(2, 17)})
    out = tmp_path / "o"
    segment_videos([video], out, model=ColorSlotModel(8), infer=InferConfig(overlap=2), device="cpu")
    results = json.loads((out / "far" / "results.json").read_text())
    assert sorted(r["category_id"] for r in results) == [1, 2, 2, 3]


def test_coverage_power_scales_only_tracks_missing_from_frames(tmp_path):
    """Red is hidden in 6 of 80 frames: its score is the plain mean x (74 / 80) ** power; green and
    blue, in every frame, keep the plain mean, and the masks do not change."""
    video = write_scene_video(tmp_path / "cov.mp4", 80, speed=1.5, hidden={0: range(42, 48)})
    outputs = {}
    for power in (0.0, 0.5):
        out = tmp_path / f"p{power}"
        infer = InferConfig(overlap=2, coverage_power=power)
        segment_videos([video], out, model=ColorSlotModel(8), infer=infer, device="cpu")
        outputs[power] = {r["category_id"]: r for r in json.loads((out / "cov" / "results.json").read_text())}
    assert outputs[0.0].keys() == outputs[0.5].keys() == {1, 2, 3}
    for category, plain in outputs[0.0].items():
        weighted = outputs[0.5][category]
        factor = (74 / 80) ** 0.5 if category == 1 else 1.0
        assert weighted["score"] == pytest.approx(plain["score"] * factor, abs=2e-6)
        assert weighted["segmentations"] == plain["segmentations"]


def test_resume_iou_must_be_in_range():
    for value in (1.5, -1.5):
        with pytest.raises(ConfigError, match=f"--resume-iou must be in \\[-1, 1\\], got {value}"):
            InferConfig(resume_iou=value)


def test_max_gap_must_not_be_negative():
    with pytest.raises(ConfigError, match="--max-gap must be >= 0, got -1"):
        InferConfig(max_gap=-1)


class DuplicatingModel(ColorSlotModel):
    """ColorSlotModel whose last slot repeats red's masks with a lower score (a briefly trained
    VisTR's typical mistake: two slots on one object)."""

    def forward(self, frames, pad_mask=None):
        out = super().forward(frames, pad_mask)
        for i in range(frames.shape[0]):
            red, spare = self.red_and_spare(out, i)
            out["pred_masks"][i, spare] = out["pred_masks"][i, red]
        return out

    def red_and_spare(self, out, i):
        """Slots of red and of an empty slot in batch item ``i``; the spare becomes red, less sure."""
        red = int(out["pred_logits"][i, :, 0, 1].argmax())
        spare = next(s for s in range(self.config.num_instances) if out["pred_masks"][i, s].max() < 0)
        out["pred_logits"][i, spare, :, :] = -5.0
        out["pred_logits"][i, spare, :, 1] = 1.0  # red, but less sure
        return red, spare


def _segment_each(tmp_path, video, model, name, **settings):
    """results.json of ``video`` segmented once per InferConfig setting: {value: results}."""
    ((option, values),) = settings.items()
    outputs = {}
    for value in values:
        out = tmp_path / f"{option}{value}"
        infer = InferConfig(overlap=2, **{option: value})
        segment_videos([video], out, model=model(), infer=infer, device="cpu")
        outputs[value] = json.loads((out / name / "results.json").read_text())
    return outputs


def test_dedup_drops_the_lower_scoring_copy_of_an_object(tmp_path):
    video = write_scene_video(tmp_path / "dup.mp4", 40, speed=1.0)
    outputs = _segment_each(tmp_path, video, lambda: DuplicatingModel(8), "dup", dedup_iou=(None, 0.5))
    reds = [r for r in outputs[None] if r["category_id"] == 1]
    assert len(outputs[None]) == 4 and len(reds) == 2  # the reference's behaviour: both kept
    assert sorted(r["category_id"] for r in outputs[0.5]) == [1, 2, 3]
    kept = next(r for r in outputs[0.5] if r["category_id"] == 1)
    # the surer copy stays in every window (without dedup, linking mixes the two copies' windows)
    assert kept["score"] >= max(r["score"] for r in reds) and kept["score"] > 0.999


def test_suppress_duplicates_keeps_the_best_of_each_overlapping_group():
    from vistr_core.inference.tracker import suppress_duplicates

    masks = torch.zeros(4, 2, 8, 8, dtype=torch.bool)
    masks[0, :, :4, :4] = True
    masks[1, :, :4, :3] = True  # IoU 0.75 with 0
    masks[2, :, 4:, 4:] = True
    masks[3, :, :4, :2] = True  # IoU 0.5 with 0, 0.67 with 1
    scores = torch.tensor([0.6, 0.9, 0.5, 0.4])
    assert suppress_duplicates(masks, scores, 0.7) == [1, 2, 3]  # 0 overlaps the surer 1
    assert suppress_duplicates(masks, scores, 0.5) == [1, 2]  # 3 overlaps 1 by 0.67
    assert suppress_duplicates(masks, scores, 0.8) == [0, 1, 2, 3]


@pytest.mark.parametrize("value", [0.0, 1.0, -0.2])
def test_dedup_iou_must_be_a_fraction(value):
    with pytest.raises(ConfigError, match="--dedup-iou must be in"):
        InferConfig(dedup_iou=value)


class SwappingCopiesModel(ColorSlotModel):
    """Two slots on red, in a fixed slot order: slot 0 sure (class prob ~1), slot 4 unsure (~0.5).
    Each misses one pixel of red: slot 0 its first pixel in even windows and its last in odd ones,
    slot 4 the other. By mask IoU alone the sure slot's track jumps to the unsure copy at every
    window seam (IoU 1 against (N - 2) / N); the same query slot is the better cue."""

    def __init__(self) -> None:
        super().__init__(num_frames=8, num_instances=5, permute=False)

    def forward(self, frames, pad_mask=None):
        window = self.calls
        out = super().forward(frames, pad_mask)
        red = out["pred_masks"][0, 0] > 0  # [T, h, w]: slot 0 holds red when slots are not permuted
        pixels = torch.nonzero(red[0])  # the object does not move (speed 0)
        no_first, no_last = red.clone(), red.clone()
        no_first[:, pixels[0, 0], pixels[0, 1]] = False
        no_last[:, pixels[-1, 0], pixels[-1, 1]] = False
        sure, unsure = (no_first, no_last) if window % 2 == 0 else (no_last, no_first)
        out["pred_masks"][0, 0] = torch.where(sure, 10.0, -10.0)
        out["pred_masks"][0, 4] = torch.where(unsure, 10.0, -10.0)
        out["pred_logits"][0, 4, :, :] = -5.0
        out["pred_logits"][0, 4, :, 1] = -3.5  # red, about 0.5 sure
        return out


def test_slot_bonus_keeps_each_copy_on_its_own_track(tmp_path):
    video = write_scene_video(tmp_path / "swap.mp4", 40, speed=0.0)
    outputs = _segment_each(tmp_path, video, SwappingCopiesModel, "swap", slot_bonus=(0.0, 0.3))
    red_scores = {
        bonus: sorted(r["score"] for r in results if r["category_id"] == 1)
        for bonus, results in outputs.items()
    }
    # masks only: both red tracks alternate between the sure and the unsure slot
    assert len(red_scores[0.0]) == 2 and max(red_scores[0.0]) < 0.9
    # with the bonus the sure slot's track is sure in every frame
    assert len(red_scores[0.3]) == 2 and red_scores[0.3][1] > 0.99 and red_scores[0.3][0] < 0.7


def test_merge_copies_groups_overlapping_instances_of_one_class():
    from vistr_core.inference.tracker import merge_copies

    masks = torch.zeros(5, 2, 8, 8, dtype=torch.bool)
    masks[0, :, :4, :3] = True  # left part of an object
    masks[1, :, :4, 1:4] = True  # right part: IoU 0.5 with 0
    masks[2, :, :4, 2:4] = True  # IoU 0 with 0, 0.67 with 1: only joins a group led by 1
    masks[3, :, :4, :4] = True  # covers all of them, but another class
    masks[4, :, 4:, 4:] = True  # elsewhere
    scores = torch.tensor([0.9, 0.6, 0.5, 0.8, 0.7])
    classes = torch.tensor([1, 1, 1, 2, 1])
    assert merge_copies(masks, scores, classes, 0.3) == [[0, 1], [2], [3], [4]]
    assert merge_copies(masks, scores, classes, 0.6) == [[0], [1, 2], [3], [4]]
    assert merge_copies(masks, scores, classes, 0.7) == [[0], [1], [2], [3], [4]]
    scores[1] = 0.95  # the surer copy leads; 0 and 2 both overlap it (members by decreasing score)
    assert merge_copies(masks, scores, classes, 0.3) == [[1, 0, 2], [3], [4]]


class SplittingModel(DuplicatingModel):
    """ColorSlotModel that splits red over two slots: its usual slot keeps red's mask cells up to
    the middle column and a spare slot, less sure, those from the middle column on (a briefly
    trained VisTR's typical mistake: each copy covers part of the object; they share a column)."""

    def forward(self, frames, pad_mask=None):
        out = ColorSlotModel.forward(self, frames, pad_mask)
        for i in range(frames.shape[0]):
            red, spare = self.red_and_spare(out, i)
            whole = out["pred_masks"][i, red].clone()  # [T, h, w]
            columns = torch.nonzero((whole > 0).any(0).any(0))[:, 0]
            left, right = whole.clone(), whole.clone()
            middle = int(columns[len(columns) // 2])
            left[..., middle + 1 :] = -10.0
            right[..., :middle] = -10.0
            out["pred_masks"][i, red], out["pred_masks"][i, spare] = left, right
        return out


def test_merge_iou_folds_an_object_split_over_two_slots_into_one_track(tmp_path):
    video = write_scene_video(tmp_path / "split.mp4", 40, speed=1.0)
    outputs = _segment_each(tmp_path, video, lambda: SplittingModel(8), "split", merge_iou=(None, 0.15))
    truth = [object_masks(t)[0] for t in range(40)]

    def video_iou(track):
        masks = [decode(s) if s else np.zeros_like(truth[0]) for s in track["segmentations"]]
        inter = sum(np.logical_and(m, g).sum() for m, g in zip(masks, truth, strict=True))
        return inter / sum(np.logical_or(m, g).sum() for m, g in zip(masks, truth, strict=True))

    reds = [r for r in outputs[None] if r["category_id"] == 1]
    assert len(reds) >= 2 and max(video_iou(r) for r in reds) < 0.8  # each copy holds a part
    merged = [r for r in outputs[0.15] if r["category_id"] == 1]
    assert sorted(r["category_id"] for r in outputs[0.15]) == [1, 2, 3]
    assert video_iou(merged[0]) > 0.95 and merged[0]["score"] > 0.999  # the sure slot, whole object


@pytest.mark.parametrize("value", [0.0, 1.0, -0.2])
def test_merge_iou_must_be_a_fraction(value):
    with pytest.raises(ConfigError, match="--merge-iou must be in"):
        InferConfig(merge_iou=value)


def test_suppress_duplicates_equals_greedy_suppression_on_random_windows():
    from vistr_core.inference.tracker import sequence_iou, suppress_duplicates

    generator = torch.Generator().manual_seed(0)
    for _ in range(50):
        masks = torch.rand(6, 2, 6, 6, generator=generator) > 0.6
        scores = torch.rand(6, generator=generator)
        iou = sequence_iou(masks, masks)
        kept: list[int] = []
        for i in torch.argsort(scores, descending=True).tolist():
            if all(float(iou[i, j]) <= 0.3 for j in kept):
                kept.append(i)
        assert suppress_duplicates(masks, scores, 0.3) == sorted(kept)
