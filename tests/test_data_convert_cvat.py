"""`vistr data convert --to cvat / --from cvat`: YouTube-VIS -> CVAT for video 1.1 -> YouTube-VIS."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from scipy.ndimage import binary_fill_holes

from vistr_core.data.convert import convert_dataset, detect_format
from vistr_core.data.synthetic import generate_synthetic
from vistr_core.data.ytvis import load_ytvis, resolve_split


@pytest.fixture(scope="module")
def shapes(tmp_path_factory):
    root = tmp_path_factory.mktemp("cvat") / "ds"
    generate_synthetic(root, videos=4, valid_videos=1, frames=8, size=(48, 64), seed=4, difficulty="hard")
    return root


def _all_masks(root):
    """{(video id, annotation id, category id): masks [L, H, W]} of the train split."""
    files = resolve_split(root, "train")
    index = load_ytvis(annotation_file=files.annotation_file, image_root=files.image_root)
    out = {}
    for video in index.videos:
        masks, tracks = index.decode_masks(video, list(range(video.length)))
        out.update({(video.id, t.id, t.category_id): m for t, m in zip(tracks, masks, strict=True)})
    return out, index


def test_auto_shapes_round_trip_keeps_everything(shapes, tmp_path):
    convert_dataset(shapes, tmp_path / "cvat", to="cvat")
    assert detect_format(tmp_path / "cvat") == "cvat"
    names = sorted(p.name for p in (tmp_path / "cvat" / "annotations").iterdir())
    assert names == [f"train_{i:05d}.xml" for i in range(4)]
    labels = json.loads((tmp_path / "cvat" / "labels.json").read_text())
    assert [a["name"] for a in labels[0]["attributes"]] == ["score", "vistr_track_id", "needs_review"]
    convert_dataset(tmp_path / "cvat", tmp_path / "back", to="ytvis")
    original = json.loads((shapes / "train" / "instances.json").read_text())
    back = json.loads((tmp_path / "back" / "train" / "instances.json").read_text())
    assert back["annotations"] == original["annotations"]  # ids, classes, frames, every pixel
    assert back["categories"] == original["categories"]
    assert [(v["id"], v["file_names"]) for v in back["videos"]] == [
        (v["id"], v["file_names"]) for v in original["videos"]
    ]
    name = original["videos"][1]["file_names"][2]
    assert (tmp_path / "back" / "train" / "JPEGImages" / name).read_bytes() == (
        shapes / "train" / "JPEGImages" / name
    ).read_bytes()


def test_polygon_round_trip_keeps_identities_and_changes_pixels_only_by_rasterization(shapes, tmp_path):
    convert_dataset(shapes, tmp_path / "cvat", to="cvat", cvat_shapes="polygon")
    (tmp_path / "cvat" / "vistr.json").unlink()  # as if the files came from CVAT alone
    convert_dataset(tmp_path / "cvat", tmp_path / "back", to="ytvis")
    before, index_a = _all_masks(shapes)
    after, index_b = _all_masks(tmp_path / "back")
    # without the side-car: categories renumbered in label order, same names; ids from vistr_track_id
    names_a = {c["id"]: c["name"] for c in index_a.categories}
    names_b = {c["id"]: c["name"] for c in index_b.categories}
    assert sorted(names_a.values()) == sorted(names_b.values())
    to_b = {cid: next(k for k, n in names_b.items() if n == name) for cid, name in names_a.items()}
    assert {(v, a, to_b[c]) for v, a, c in before} == set(after)
    ious = []
    for (v, a, c), masks in before.items():
        got = after[(v, a, to_b[c])]
        assert np.array_equal(masks.any((1, 2)), got.any((1, 2)))  # the same frames
        filled = np.stack([binary_fill_holes(m) for m in masks])
        assert np.array_equal(got, filled), (v, a)  # polygons cannot hold holes: only they change
        ious.append((masks & got).sum() / (masks | got).sum())
    assert np.mean(ious) > 0.9, ious  # 0.933 here: rings lose their holes


def test_reads_unzipped_cvat_task_exports_with_their_frames(shapes, tmp_path):
    convert_dataset(shapes, tmp_path / "cvat", to="cvat")
    exports = tmp_path / "exports"
    for xml in sorted((tmp_path / "cvat" / "annotations").iterdir())[:2]:
        task = exports / xml.stem  # what unzipping CVAT's "CVAT for video 1.1" export gives
        (task / "images").mkdir(parents=True)
        shutil.copy(xml, task / "annotations.xml")
        frames = sorted((tmp_path / "cvat" / "images" / xml.stem).iterdir())
        for t, frame in enumerate(frames):
            shutil.copy(frame, task / "images" / f"frame_{t:06d}.jpg")
    summary = convert_dataset(exports, tmp_path / "back", to="ytvis")
    assert (summary.videos, summary.frames_copied) == (2, 16)
    back = json.loads((tmp_path / "back" / "train" / "instances.json").read_text())
    assert back["videos"][1]["file_names"][3] == "train_00001/frame_000003.jpg"
    original = json.loads((shapes / "train" / "instances.json").read_text())
    first_two = {v["id"] for v in original["videos"][:2]}
    want = [(a["id"], a["segmentations"]) for a in original["annotations"] if a["video_id"] in first_two]
    assert [(a["id"], a["segmentations"]) for a in back["annotations"]] == want
    assert (tmp_path / "back" / "train" / "JPEGImages" / "train_00001" / "frame_000003.jpg").read_bytes() == (
        shapes / "train" / "JPEGImages" / original["videos"][1]["file_names"][3]
    ).read_bytes()
