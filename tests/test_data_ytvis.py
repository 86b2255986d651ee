"""Reading YouTube-VIS files: every layout, every segmentation encoding, files without ground truth."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
from pycocotools import mask as mask_utils

from vistr_core.data.ytvis import load_ytvis, resolve_split
from vistr_core.errors import DatasetError

H, W = 20, 30


def _write_frames(image_root: Path, video: str, length: int) -> list[str]:
    names = []
    for t in range(length):
        name = f"{video}/{5 * t:05d}.jpg"
        (image_root / video).mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(image_root / name), np.full((H, W, 3), 40 * t, np.uint8))
        names.append(name)
    return names


def _uncompressed_rle(mask: np.ndarray) -> dict:
    """COCO uncompressed RLE written independently: column-major runs starting with background."""
    flat = mask.flatten(order="F").astype(np.int8)
    changes = np.flatnonzero(np.diff(np.concatenate([[0], flat, [1 - flat[-1]]])))
    counts = np.diff(np.concatenate([[0], changes])).tolist()
    if sum(counts) < flat.size:
        counts.append(flat.size - sum(counts))
    return {"counts": [int(c) for c in counts], "size": [H, W]}


def _dataset(image_root: Path, *, annotations="present") -> dict:
    polygon = [[3.0, 2.0, 20.0, 4.0, 12.0, 15.0]]
    mask = mask_utils.decode(mask_utils.merge(mask_utils.frPyObjects(polygon, H, W))).astype(bool)
    compressed = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    compressed["counts"] = compressed["counts"].decode()
    files = _write_frames(image_root, "vid_a", 3)
    data = {
        "videos": [{"id": 7, "height": H, "width": W, "length": 3, "file_names": files}],
        "categories": [{"id": 4, "name": "dog"}, {"id": 2, "name": "cat"}],
        "annotations": [
            {
                "id": 11,
                "video_id": 7,
                "category_id": 4,
                "iscrowd": 0,
                "segmentations": [polygon, None, polygon],
            },
            {
                "id": 12,
                "video_id": 7,
                "category_id": 2,
                "segmentations": [_uncompressed_rle(mask), None, None],
            },
            {"id": 13, "video_id": 7, "category_id": 4, "segmentations": [None, compressed, compressed]},
        ],
    }
    if annotations == "null":
        data["annotations"] = None
    elif annotations == "absent":
        del data["annotations"]
    return data, mask


def test_polygon_uncompressed_and_compressed_rle_decode_identically(tmp_path):
    data, mask = _dataset(tmp_path / "train" / "JPEGImages")
    (tmp_path / "train" / "instances.json").write_text(json.dumps(data))
    index = load_ytvis(tmp_path, "train")
    video = index.videos[0]
    masks, tracks = index.decode_masks(video, [0, 1, 2])
    assert [t.id for t in tracks] == [11, 12, 13]
    assert mask.any() and np.array_equal(masks[0, 0], mask) and np.array_equal(masks[1, 0], mask)
    assert np.array_equal(masks[2, 1], mask) and np.array_equal(masks[0, 2], mask)
    assert not masks[0, 1].any() and not masks[1, 1:].any() and not masks[2, 0].any()
    assert index.category_map.ids == (2, 4) and index.category_map.names == ("cat", "dog")
    frames = index.read_frames(video, [2, 0, 2])
    assert frames.shape == (3, H, W, 3) and frames.dtype == np.uint8
    assert np.array_equal(frames[0], frames[2]) and abs(int(frames[0].mean()) - 80) <= 1


@pytest.mark.parametrize("annotations", ["null", "absent"])
def test_files_without_ground_truth_load(tmp_path, annotations):
    data, _ = _dataset(tmp_path / "valid" / "JPEGImages", annotations=annotations)
    (tmp_path / "valid" / "instances.json").write_text(json.dumps(data))
    index = load_ytvis(tmp_path, "valid")
    assert not index.has_annotations and index.tracks(7) == [] and len(index) == 1


def _place(root: Path, layout: str, data: dict, frames: Path) -> Path:
    """Arrange the same data and frames in ``layout``; returns the expected image root."""
    targets = {
        "2021": (root / "train" / "instances.json", root / "train" / "JPEGImages"),
        "2019": (root / "train.json", root / "train" / "JPEGImages"),
        "reference": (root / "annotations" / "instances_train_sub.json", root / "train" / "JPEGImages"),
        "ovis": (root / "annotations" / "annotations_train.json", root / "train"),
        "ovis_plain": (root / "annotations" / "train.json", root / "train"),
    }
    ann_file, image_root = targets[layout]
    ann_file.parent.mkdir(parents=True, exist_ok=True)
    ann_file.write_text(json.dumps(data))
    shutil.copytree(frames, image_root, dirs_exist_ok=True)
    return image_root


@pytest.mark.parametrize("layout", ["2021", "2019", "reference", "ovis", "ovis_plain"])
def test_layouts_are_detected(tmp_path, layout):
    data, mask = _dataset(tmp_path / "frames")
    image_root = _place(tmp_path / "ds", layout, data, tmp_path / "frames")
    files = resolve_split(tmp_path / "ds", "train")
    assert files.image_root == image_root
    index = load_ytvis(tmp_path / "ds", "train")
    assert np.array_equal(index.decode_masks(index.videos[0], [0])[0][0, 0], mask)


def test_reference_valid_split_accepts_val_alias(tmp_path):
    data, _ = _dataset(tmp_path / "frames", annotations="null")
    (tmp_path / "ds" / "annotations").mkdir(parents=True)
    (tmp_path / "ds" / "annotations" / "instances_val_sub.json").write_text(json.dumps(data))
    shutil.copytree(tmp_path / "frames", tmp_path / "ds" / "valid" / "JPEGImages")
    for split in ("valid", "val"):
        files = resolve_split(tmp_path / "ds", split)
        assert files.annotation_file.name == "instances_val_sub.json"
        assert files.image_root == tmp_path / "ds" / "valid" / "JPEGImages"


def test_explicit_annotation_file_and_split_folder(tmp_path):
    data, _ = _dataset(tmp_path / "train" / "JPEGImages")
    (tmp_path / "train" / "instances.json").write_text(json.dumps(data))
    assert len(load_ytvis(annotation_file=tmp_path / "train" / "instances.json")) == 1
    assert len(load_ytvis(tmp_path / "train" / "instances.json")) == 1
    assert resolve_split(tmp_path / "train", "train").annotation_file == tmp_path / "train" / "instances.json"
    other = tmp_path / "elsewhere.json"
    other.write_text(json.dumps(data))
    index = load_ytvis(annotation_file=other, image_root=tmp_path / "train" / "JPEGImages")
    assert index.image_root == tmp_path / "train" / "JPEGImages"


def test_unknown_split_lists_what_was_looked_for(tmp_path):
    (tmp_path / "ds").mkdir()
    with pytest.raises(DatasetError, match=r"no annotation file for split 'bogus'.*bogus/instances.json"):
        resolve_split(tmp_path / "ds", "bogus")
    with pytest.raises(DatasetError, match="does not exist"):
        resolve_split(tmp_path / "missing", "train")


def test_empty_mask_counts_as_absent(tmp_path):
    data, _ = _dataset(tmp_path / "train" / "JPEGImages")
    empty = mask_utils.encode(np.zeros((H, W, 1), np.uint8, order="F"))[0]
    data["annotations"][0]["segmentations"][1] = {"size": [H, W], "counts": empty["counts"].decode()}
    (tmp_path / "train" / "instances.json").write_text(json.dumps(data))
    index = load_ytvis(tmp_path, "train")
    assert index.tracks(7)[0].present().tolist() == [True, False, True]


def test_decode_masks_crop_equals_cropping_the_full_masks(tmp_path):
    data, _ = _dataset(tmp_path / "train" / "JPEGImages")
    (tmp_path / "train" / "instances.json").write_text(json.dumps(data))
    index = load_ytvis(tmp_path, "train")
    video = index.videos[0]
    full, _ = index.decode_masks(video, [2, 0, 1, 2])
    for crop in ((0, 0, H, W), (3, 5, 17, 22), (10, 0, 11, W)):
        part, _ = index.decode_masks(video, [2, 0, 1, 2], crop=crop)
        assert np.array_equal(part, full[..., crop[0] : crop[2], crop[1] : crop[3]])
