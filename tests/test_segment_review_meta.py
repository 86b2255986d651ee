"""What `vistr segment` records for `vistr review`: link affinities and per-frame scores and classes."""

from __future__ import annotations

import json

from _segment_fakes import ColorSlotModel, write_scene_video

from vistr_core.config import InferConfig
from vistr_core.inference.segment import OutputOptions, segment_videos


def test_meta_records_links_and_per_frame_scores(tmp_path):
    video = write_scene_video(tmp_path / "clip.mp4", 21, rate=20)
    summary = segment_videos(
        [video], tmp_path / "out", model=ColorSlotModel(8), infer=InferConfig(overlap=2), device="cpu"
    )
    assert summary.ok
    folder = tmp_path / "out" / "clip"
    meta = json.loads((folder / "meta.json").read_text())
    results = {r["track_id"]: r for r in json.loads((folder / "results.json").read_text())}
    # windows of 8 frames overlapping by 2 start at 0, 6, 12 and 13 (the last aligned to the end)
    for track in meta["tracks"]:
        links = [link for link in meta["links"] if link["track_id"] == track["track_id"]]
        assert [link["position"] for link in links] == [6, 12, 13]
        for link in links:  # the fake segments perfectly: the shared frames agree exactly
            assert link["kind"] == "window" and link["iou"] == link["affinity"] == 1.0
        segmentations = results[track["track_id"]]["segmentations"]
        assert [s is not None for s in track["frame_scores"]] == [s is not None for s in segmentations]
        present = [c for c in track["frame_categories"] if c is not None]
        assert present and set(present) == {track["category_id"]}
        assert all(0.0 < s <= 1.0 for s in track["frame_scores"] if s is not None)


def test_segment_cvat_writes_annotations_with_review_flags(tmp_path):
    video = write_scene_video(tmp_path / "clip.mp4", 21, rate=20)
    segment_videos(
        [video],
        tmp_path / "out",
        model=ColorSlotModel(8),
        infer=InferConfig(overlap=2),
        device="cpu",
        outputs=OutputOptions(cvat=True),
    )
    from vistr_core.data.formats import cvat_video

    folder = tmp_path / "out" / "clip"
    back = cvat_video.read(folder / "annotations.xml")
    results = {r["track_id"]: r for r in json.loads((folder / "results.json").read_text())}
    assert {a["id"] for a in back["annotations"]} == set(results)
    names = json.loads((folder / "meta.json").read_text())["categories"]
    by_name = {c["name"]: c["id"] for c in back["categories"]}
    for ann in back["annotations"]:
        result = results[ann["id"]]
        assert ann["category_id"] == by_name[names[str(result["category_id"])]]
        assert [s is None for s in ann["segmentations"]] == [s is None for s in result["segmentations"]]
        assert ann["score"] == round(result["score"], 4)
