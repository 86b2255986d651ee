"""Reading results lists for rendering: ids, formats, and messages for malformed input."""

from __future__ import annotations

import numpy as np
import pytest

from vistr_core.categories import CategoryMap
from vistr_core.errors import ResultsError
from vistr_core.ops.masks import encode_masks
from vistr_core.render.crops import crops_from_rles
from vistr_core.render.tracks import category_names, mask_size, read_results, tracks_from_results


def entry(video_id=1, frames=3, size=(8, 10), **extra):
    masks = np.zeros((frames, *size), np.uint8)
    masks[:, 2:5, 3:7] = 1
    return {
        "video_id": video_id,
        "category_id": 2,
        "score": 0.8,
        "segmentations": encode_masks(masks),
        **extra,
    }


def test_track_ids_default_to_position_plus_one():
    tracks, video = tracks_from_results([entry(), entry(track_id=7), entry()])
    assert [t.track_id for t in tracks] == [1, 7, 3] and video == 1
    assert tracks[0].label({2: "dog"}) == "dog 0.80 #1" and tracks[0].label({}) == "class 2 0.80 #1"


def test_uncompressed_rle_and_nulls_are_accepted():
    mask = np.zeros((8, 10), np.uint8)
    mask[1:4, 2:6] = 1
    flat = mask.T.reshape(-1)  # column-major runs, background first
    changes = np.flatnonzero(np.diff(flat)) + 1
    counts = np.diff(np.concatenate(([0], changes, [flat.size]))).tolist()
    tracks, _ = tracks_from_results(
        [
            {
                "video_id": 1,
                "category_id": 1,
                "score": 0.5,
                "segmentations": [{"size": [8, 10], "counts": counts}, None],
            }
        ]
    )
    crop = crops_from_rles([tracks[0].rles[0]])[0]
    assert tracks[0].rles[1] is None and crop.box == (2, 1, 6, 4) and crop.mask.all()


def test_several_videos_need_a_video_id():
    results = [entry(video_id=1), entry(video_id=2), entry(video_id=2)]
    with pytest.raises(ResultsError, match=r"holds 2 videos \(1, 2\); pass --video-id"):
        tracks_from_results(results)
    tracks, video = tracks_from_results(results, video_id=2)
    assert len(tracks) == 2 and video == 2
    with pytest.raises(ResultsError, match="pass --video-id with one of its videos: 1, 2"):
        tracks_from_results(results, video_id=5)


@pytest.mark.parametrize(
    ("results", "message"),
    [
        ([{"video_id": 1, "score": 1.0}], "no 'segmentations' list"),
        ([entry(), entry(frames=4)], r"different frame counts \[3, 4\]"),
        ([{**entry(), "score": "high"}], "lacks a valid"),
        ([{**entry(), "segmentations": [[1, 2, 3, 4, 5, 6]]}], "not an RLE"),
    ],
)
def test_malformed_results_say_what_is_wrong(results, message):
    with pytest.raises(ResultsError, match=message):
        tracks_from_results(results)


def test_mixed_mask_sizes_are_refused():
    tracks, _ = tracks_from_results([entry(), entry(size=(9, 10))])
    with pytest.raises(ResultsError, match="mixes mask sizes"):
        mask_size(tracks, "r.json")
    assert mask_size(tracks[:1], "r.json") == (8, 10)


def test_read_results_errors(tmp_path):
    with pytest.raises(ResultsError, match="does not exist"):
        read_results(tmp_path / "none.json")
    (tmp_path / "obj.json").write_text('{"a": 1}')
    with pytest.raises(ResultsError, match="not a YouTube-VIS results list"):
        read_results(tmp_path / "obj.json")
    (tmp_path / "bad.json").write_text("[1,")
    with pytest.raises(ResultsError, match="not valid JSON at line 1"):
        read_results(tmp_path / "bad.json")


def test_category_names_from_any_form():
    assert category_names({"1": "cat"}) == {1: "cat"} and category_names(None) == {}
    official = CategoryMap.ytvis2019_official()
    assert category_names(official) == dict(official.id_to_name())
