"""The ids an object shows in the rendered tracks (benchmarks/identities.py: the README's "keeps one
id" figures for long videos come from it)."""

import sys
from pathlib import Path

import numpy as np
import pytest

from vistr_core.ops.masks import encode_mask

sys.path.insert(0, str(Path(__file__).parents[1] / "benchmarks"))
import identities  # noqa: E402

FRAMES = 6


def _rle(x: int | None) -> dict | None:
    """A 6x6 square at column ``x`` of a 16x16 frame (None: absent)."""
    if x is None:
        return None
    mask = np.zeros((16, 16), np.uint8)
    mask[4:10, x : x + 6] = 1
    return encode_mask(mask)


def _truth(*objects: list[int | None]) -> dict:
    """One video; each object is its square's column per frame."""
    return {
        "videos": [{"id": 1, "width": 16, "height": 16, "length": FRAMES}],
        "categories": [{"id": 1, "name": "a"}],
        "annotations": [
            {
                "id": k + 1,
                "video_id": 1,
                "category_id": 1,
                "iscrowd": 0,
                "segmentations": [_rle(x) for x in xs],
            }
            for k, xs in enumerate(objects)
        ],
    }


def _track(xs: list[int | None], score: float = 0.9) -> dict:
    return {"video_id": 1, "category_id": 1, "score": score, "segmentations": [_rle(x) for x in xs]}


OBJECT = [0, 1, 2, 3, 4, 5]
MISSING = [None] * FRAMES


def test_one_track_on_the_whole_object_is_one_id() -> None:
    summary = identities.identity_summary(_truth(OBJECT), [_track(OBJECT)])
    assert summary == {
        "objects": 1, "one_id": 1.0, "own_id": 1.0, "ids_per_object": 1.0, "id_changes_per_object": 0.0,
        "frames_with_id": 1.0,
    }  # fmt: skip


def test_a_track_broken_in_two_is_two_ids_and_one_change() -> None:
    first, second = OBJECT[:3] + MISSING[3:], MISSING[:3] + OBJECT[3:]
    summary = identities.identity_summary(_truth(OBJECT), [_track(first), _track(second, 0.8)])
    assert (summary["one_id"], summary["ids_per_object"], summary["id_changes_per_object"]) == (0.0, 2.0, 1.0)
    assert summary["frames_with_id"] == 1.0


def test_hidden_tracks_and_poor_overlaps_show_no_id() -> None:
    """A track below the render threshold is hidden; one three columns off (IoU 0.33) is no match."""
    off = [x + 3 for x in OBJECT[:2]] + MISSING[2:]
    tracks = [_track(OBJECT[:4] + MISSING[4:]), _track(MISSING[:4] + OBJECT[4:], 0.2), _track(off)]
    summary = identities.identity_summary(_truth(OBJECT), tracks)
    assert summary["one_id"] == 1.0 and summary["frames_with_id"] == pytest.approx(4 / 6, abs=1e-4)
    assert identities.identity_summary(_truth(OBJECT), tracks, score_thr=0.1)["one_id"] == 0.0


def test_a_switch_and_back_counts_two_changes_and_the_best_overlap_wins() -> None:
    """Two tracks on one object's frames: in each frame the one that overlaps it more is its id."""
    a = [0, 1, 9, 9, 4, 5]  # elsewhere in frames 2-3
    b = [3, 3, 2, 3, 8, 8]  # covers frame 2 exactly, frame 3 exactly, else overlaps less than a
    ids = identities.ids_over_frames(*_tracks_of(_truth(OBJECT), [_track(a), _track(b)]))
    assert ids == [0, 0, 1, 1, 0, 0]
    assert identities.id_changes(ids) == 2 and identities.id_changes([None, 1, None, 1]) == 0


def test_objects_not_followed_count_against_one_id() -> None:
    summary = identities.identity_summary(_truth(OBJECT, [10] * FRAMES), [_track(OBJECT)])
    assert summary["objects"] == 2 and summary["one_id"] == 0.5 and summary["frames_with_id"] == 0.5


def _tracks_of(truth: dict, results: list[dict]):
    gt = identities.load_ground_truth(truth)
    return gt.tracks[0], identities.load_results(results, gt)


def test_a_track_that_switches_objects_is_one_id_for_each_but_not_their_own() -> None:
    """One track follows the first object until it leaves after frame 2, then the second, whose own
    track covered it until then."""
    first, second = [0, 1, 2, 3, 4, 5], [10] * FRAMES
    switching = first[:3] + second[3:]
    tracks = [_track(switching), _track(second[:3] + MISSING[3:])]
    summary = identities.identity_summary(_truth(first[:3] + MISSING[3:], second), tracks)
    assert summary["one_id"] == 0.5 and summary["own_id"] == 0.0  # the first: one id, shared
    apart = identities.identity_summary(_truth(first, second), [_track(first), _track(second)])
    assert apart["one_id"] == 1.0 and apart["own_id"] == 1.0
