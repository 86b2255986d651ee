"""The synthetic generator: determinism, exact masks through the loader, visible-part semantics."""

from __future__ import annotations

import hashlib
import math
from pathlib import Path

import numpy as np
import pytest

from vistr_core.data.synthetic import DIFFICULTIES, SHAPES, generate_synthetic, render_video
from vistr_core.data.ytvis import load_ytvis, read_json
from vistr_core.errors import ConfigError, OutputExistsError

SMALL = {"videos": 4, "valid_videos": 2, "frames": 6, "size": (48, 64)}


def _tree_hash(root: Path) -> str:
    digest = hashlib.sha256()
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        digest.update(path.relative_to(root).as_posix().encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


def test_same_seed_same_bytes_and_different_seed_differs(tmp_path):
    for name, seed in (("a", 3), ("b", 3), ("c", 4)):
        generate_synthetic(tmp_path / name, seed=seed, difficulty="medium", **SMALL)
    assert _tree_hash(tmp_path / "a") == _tree_hash(tmp_path / "b")
    assert _tree_hash(tmp_path / "a") != _tree_hash(tmp_path / "c")


@pytest.mark.parametrize("difficulty", ["easy", "hard"])
def test_loaded_masks_equal_the_rendered_visible_masks(tmp_path, difficulty):
    summary = generate_synthetic(tmp_path / "d", seed=7, difficulty=difficulty, **SMALL)
    cfg = DIFFICULTIES[difficulty]
    categories = SHAPES[: cfg.num_categories]
    for split, code in (("train", 0), ("valid", 1)):
        index = load_ytvis(tmp_path / "d", split)
        assert len(index) == summary.splits[split][0] and index.num_instances == summary.splits[split][1]
        for v, video in enumerate(index.videos):
            _, objects, visible = render_video(
                np.random.default_rng([7, code, v]), cfg, categories, SMALL["frames"], SMALL["size"]
            )
            kept = [k for k in range(len(objects)) if visible[k].any()]
            masks, tracks = index.decode_masks(video, list(range(video.length)))
            assert np.array_equal(masks, visible[kept])
            assert [t.category_id for t in tracks] == [objects[k].category_id for k in kept]
            # visible parts never overlap (z-order occlusion)
            assert masks.sum(axis=0).max() <= 1


def test_annotation_fields_are_consistent(tmp_path):
    generate_synthetic(tmp_path / "d", seed=1, difficulty="hard", **SMALL)
    data = read_json(tmp_path / "d" / "train" / "instances.json")
    from pycocotools import mask as mask_utils

    nulls = 0
    for ann in data["annotations"]:
        assert ann["iscrowd"] == 0 and len(ann["segmentations"]) == SMALL["frames"]
        for segm, box, area in zip(ann["segmentations"], ann["bboxes"], ann["areas"], strict=True):
            if segm is None:
                assert box is None and area is None
                nulls += 1
                continue
            assert isinstance(segm["counts"], str) and segm["size"] == list(SMALL["size"])
            rle = {"size": segm["size"], "counts": segm["counts"].encode()}
            assert area == int(mask_utils.area(rle)) > 0
            assert box == pytest.approx(list(mask_utils.toBbox(rle)))
    assert nulls > 0  # objects enter/leave or get fully occluded in the hard setting


def test_easy_objects_are_large_and_few(tmp_path):
    generate_synthetic(tmp_path / "d", seed=0, videos=20, valid_videos=1, frames=4, size=(96, 128))
    index = load_ytvis(tmp_path / "d", "train")
    assert len(index.categories) == 3
    for video in index.videos:
        tracks = index.tracks(video.id)
        assert 1 <= len(tracks) <= 3


def test_single_has_one_large_object_per_video(tmp_path):
    from pycocotools import mask as mask_utils

    generate_synthetic(
        tmp_path / "d", seed=0, videos=12, valid_videos=1, frames=4, size=(96, 128), difficulty="single"
    )
    index = load_ytvis(tmp_path / "d", "train")
    assert len(index.categories) == 3
    for video in index.videos:
        (track,) = index.tracks(video.id)
        areas = [mask_utils.area({"size": [96, 128], "counts": r}) for r in track.rles if r is not None]
        assert max(areas) > 0.025 * 96 * 128  # a triangle of diameter 0.35 x 96 covers 0.03


def test_multi_has_crossing_objects_that_enter_and_leave(tmp_path):
    from pycocotools import mask as mask_utils

    generate_synthetic(
        tmp_path / "d", seed=0, videos=20, valid_videos=1, frames=24, size=(96, 128), difficulty="multi"
    )
    index = load_ytvis(tmp_path / "d", "train")
    counts = [len(index.tracks(video.id)) for video in index.videos]
    assert min(counts) >= 1 and max(counts) == 3 and sum(c >= 2 for c in counts) >= 10
    occluded = absent = 0
    for video in index.videos:
        tracks = index.tracks(video.id)
        absent += sum(any(r is None for r in track.rles) for track in tracks)
        for t in range(24):
            boxes = [
                mask_utils.toBbox({"size": [96, 128], "counts": tr.rles[t]})
                for tr in tracks
                if tr.rles[t] is not None
            ]
            # two visible boxes that intersect: the objects cross (masks never overlap)
            occluded += any(
                min(a[0] + a[2], b[0] + b[2]) > max(a[0], b[0]) and min(a[1] + a[3], b[1] + b[3]) > max(a[1], b[1])
                for i, a in enumerate(boxes) for b in boxes[i + 1 :]
            )  # fmt: skip
    assert occluded >= 10 and absent >= 3


def test_refuses_non_empty_out_without_force_and_accepts_empty(tmp_path):
    out = tmp_path / "d"
    out.mkdir()
    generate_synthetic(out, **SMALL)  # an existing empty folder is fine
    before = _tree_hash(out)
    with pytest.raises(OutputExistsError):
        generate_synthetic(out, seed=5, **SMALL)
    assert _tree_hash(out) == before
    generate_synthetic(out, seed=5, force=True, **SMALL)
    assert _tree_hash(out) != before


def test_bad_arguments(tmp_path):
    with pytest.raises(ConfigError, match="difficulty"):
        generate_synthetic(tmp_path / "x", difficulty="nightmare")
    with pytest.raises(ConfigError, match="too small"):
        generate_synthetic(tmp_path / "x", size=(8, 8))
    assert not (tmp_path / "x").exists()


@pytest.mark.parametrize("rate", [0.02, -0.02, 0.0])
def test_growth_turns_back_at_the_size_range(rate):
    """Long videos: the radius grows exponentially, then reflects off its range, never leaving it."""
    from vistr_core.data.synthetic import _Object, _radius

    obj = _Object(
        shape="circle", category_id=1, color=np.zeros(3), stripe=None, center=np.zeros(2),
        velocity=np.zeros(2), radius=10.0, growth=math.exp(rate), angle=0.0, spin=0.0,
        frames=(0, 1000), radius_range=(6.0, 20.0),
    )  # fmt: skip
    radii = np.array([_radius(obj, t) for t in range(1000)])
    assert radii.min() >= 6.0 - 1e-9 and radii.max() <= 20.0 + 1e-9
    steps = np.abs(np.diff(np.log(radii)))
    assert steps.max() <= abs(rate) + 1e-9  # continuous: never faster than the growth rate
    free = int(math.log(2.0 if rate > 0 else 0.6) / rate) if rate else 1000  # frames before a turn
    np.testing.assert_allclose(radii[:free], 10.0 * np.exp(rate * np.arange(free)))
    if rate:
        assert radii.max() > 19.5 and radii.min() < 6.2  # it reaches both ends
