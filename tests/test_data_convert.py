"""YouTube-VIS <-> MOTS (txt, png) <-> DAVIS round trips; held-out splits."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from PIL import Image

from vistr_core.data.convert import convert_dataset
from vistr_core.data.split import choose_valid_videos, split_dataset
from vistr_core.data.synthetic import generate_synthetic
from vistr_core.data.ytvis import load_ytvis, resolve_split
from vistr_core.errors import ConfigError, OutputExistsError


@pytest.fixture(scope="module")
def shapes(tmp_path_factory):
    root = tmp_path_factory.mktemp("conv") / "ds"
    generate_synthetic(root, videos=5, valid_videos=2, frames=7, size=(40, 56), seed=9, difficulty="hard")
    return root


def _all_masks(root, split="train", check_files=True):
    """{(video id, annotation id, category id): masks [L, H, W]} of a split."""
    files = resolve_split(root, split)
    index = load_ytvis(
        annotation_file=files.annotation_file, image_root=files.image_root, check_files=check_files
    )
    out = {}
    for video in index.videos:
        masks, tracks = index.decode_masks(video, list(range(video.length)))
        for track, m in zip(tracks, masks, strict=True):
            out[(video.id, track.id, track.category_id)] = m
    return out, index


def _assert_same_masks(a, b):
    assert a.keys() == b.keys()
    for key in a:
        assert np.array_equal(a[key], b[key]), key


@pytest.mark.parametrize(
    "via",
    [("mots", ("txt",)), ("mots", ("png",)), ("davis", ("txt", "png"))],
    ids=["mots-txt", "mots-png", "davis"],
)
def test_round_trip_keeps_every_pixel_identity_and_category(shapes, tmp_path, via):
    fmt, mots_formats = via
    convert_dataset(shapes, tmp_path / "mid", to=fmt, mots_formats=mots_formats)
    summary = convert_dataset(tmp_path / "mid", tmp_path / "back", to="ytvis")
    before, index_a = _all_masks(shapes)
    after, index_b = _all_masks(tmp_path / "back")
    _assert_same_masks(before, after)
    assert summary.overlap_pixels == 0
    assert index_a.categories == index_b.categories
    assert [(v.id, v.file_names) for v in index_a.videos] == [(v.id, v.file_names) for v in index_b.videos]
    original = json.loads((shapes / "train" / "instances.json").read_text())["annotations"]
    assert json.loads((tmp_path / "back" / "train" / "instances.json").read_text())["annotations"] == original
    name = index_a.videos[0].file_names[3]
    assert (tmp_path / "back" / "train" / "JPEGImages" / name).read_bytes() == (
        shapes / "train" / "JPEGImages" / name
    ).read_bytes()


def test_mots_files_follow_the_format(shapes, tmp_path):
    convert_dataset(shapes, tmp_path / "m", to="mots")
    _, index = _all_masks(shapes)
    video = index.videos[0]
    png = np.array(Image.open(tmp_path / "m" / "instances" / video.name / "00000.png"))
    assert png.dtype == np.uint16 or png.max() < 65536
    cats = {t.category_id for t in index.tracks(video.id)}
    assert {int(v) // 1000 for v in np.unique(png) if v} <= cats
    lines = (tmp_path / "m" / "instances_txt" / f"{video.name}.txt").read_text().splitlines()
    frame, obj, cls, h, w, _ = lines[0].split(" ")
    assert int(obj) // 1000 == int(cls) and (int(h), int(w)) == (40, 56) and int(frame) >= 0
    labels = (tmp_path / "m" / "labels.txt").read_text().splitlines()
    assert labels[0] == "background" and labels[1:] == [c["name"] for c in index.categories]


def test_davis_pngs_are_palette_indexed(shapes, tmp_path):
    convert_dataset(shapes, tmp_path / "d", to="davis")
    video = load_ytvis(shapes, "train").videos[1]
    img = Image.open(tmp_path / "d" / "Annotations" / video.name / "00002.png")
    assert img.mode == "P" and img.getpalette()[3:6] == [128, 0, 0]


@pytest.mark.parametrize("fmt", ["mots", "davis"])
def test_round_trip_keeps_the_source_split_name(shapes, tmp_path, fmt):
    convert_dataset(shapes, tmp_path / "mid", to=fmt, split="valid")
    convert_dataset(tmp_path / "mid", tmp_path / "back", to="ytvis")
    assert sorted(p.name for p in (tmp_path / "back").iterdir()) == ["valid"]  # not back/train/
    _assert_same_masks(_all_masks(shapes, "valid")[0], _all_masks(tmp_path / "back", "valid")[0])
    convert_dataset(tmp_path / "mid", tmp_path / "renamed", to="ytvis", split="held_out")
    assert sorted(p.name for p in (tmp_path / "renamed").iterdir()) == ["held_out"]  # --split wins


def test_without_sidecar_masks_and_categories_survive(shapes, tmp_path):
    convert_dataset(shapes, tmp_path / "m", to="mots")
    (tmp_path / "m" / "vistr.json").unlink()
    convert_dataset(tmp_path / "m", tmp_path / "back", to="ytvis")
    before, index_a = _all_masks(shapes)
    after, index_b = _all_masks(tmp_path / "back")
    # ids are renumbered, but the groups of masks and their categories are the same
    by_mask_a = sorted((k[2], m.tobytes()) for k, m in before.items())
    by_mask_b = sorted((k[2], m.tobytes()) for k, m in after.items())
    assert by_mask_a == by_mask_b
    assert index_b.category_map.names == index_a.category_map.names

    convert_dataset(shapes, tmp_path / "d", to="davis")
    (tmp_path / "d" / "vistr.json").unlink()
    convert_dataset(tmp_path / "d", tmp_path / "back2", to="ytvis")
    after2, index_c = _all_masks(tmp_path / "back2")
    assert sorted(m.tobytes() for m in before.values()) == sorted(m.tobytes() for m in after2.values())
    assert index_c.category_map.names == ("object",)


def test_overlaps_go_to_the_first_listed_track(tmp_path):
    root = tmp_path / "ov"
    generate_synthetic(root, videos=1, valid_videos=0, frames=2, size=(32, 32), seed=0)
    path = root / "train" / "instances.json"
    data = json.loads(path.read_text())
    from vistr_core.ops.masks import encode_mask

    a = np.zeros((32, 32), bool)
    a[4:20, 4:20] = True
    b = np.zeros((32, 32), bool)
    b[10:28, 10:28] = True
    data["annotations"] = [
        {"id": 1, "video_id": 1, "category_id": 1, "iscrowd": 0, "segmentations": [encode_mask(a), None]},
        {
            "id": 2,
            "video_id": 1,
            "category_id": 2,
            "iscrowd": 0,
            "segmentations": [encode_mask(b), encode_mask(b)],
        },
    ]
    path.write_text(json.dumps(data))
    summary = convert_dataset(root, tmp_path / "m", to="mots")
    assert summary.overlap_pixels == int((a & b).sum()) == 100
    convert_dataset(tmp_path / "m", tmp_path / "back", to="ytvis")
    after, _ = _all_masks(tmp_path / "back")
    assert np.array_equal(after[(1, 1, 1)][0], a) and np.array_equal(after[(1, 2, 2)][0], b & ~a)
    assert np.array_equal(after[(1, 2, 2)][1], b)


def test_convert_refuses_existing_output_and_bad_formats(shapes, tmp_path):
    (tmp_path / "x").mkdir()
    (tmp_path / "x" / "keep.txt").write_text("mine")
    with pytest.raises(OutputExistsError):
        convert_dataset(shapes, tmp_path / "x", to="mots")
    assert [p.name for p in (tmp_path / "x").iterdir()] == ["keep.txt"]
    with pytest.raises(ConfigError, match="--to 'coco'"):
        convert_dataset(shapes, tmp_path / "y", to="coco")
    with pytest.raises(ConfigError, match="nothing to convert"):
        convert_dataset(shapes, tmp_path / "y", to="ytvis")
    assert not (tmp_path / "y").exists()


# ---------------------------------------------------------------- split


def test_split_is_deterministic_disjoint_and_loadable(shapes, tmp_path):
    root = tmp_path / "ds"
    shutil.copytree(shapes, root)
    summary = split_dataset(root, valid_fraction=0.4, seed=3)
    assert (summary.train_videos, summary.valid_videos) == (3, 2)
    train = json.loads(summary.train_file.read_text())
    valid = json.loads(summary.valid_file.read_text())
    ids_t, ids_v = {v["id"] for v in train["videos"]}, {v["id"] for v in valid["videos"]}
    assert not ids_t & ids_v and ids_t | ids_v == {1, 2, 3, 4, 5}
    assert {a["video_id"] for a in valid["annotations"]} <= ids_v
    assert valid["info"]["vistr_split"]["image_root"] == "train/JPEGImages"

    files = resolve_split(root, "split_valid")
    assert files.annotation_file == summary.valid_file and files.image_root == root / "train" / "JPEGImages"
    masks_v, _ = _all_masks(root, "split_valid")
    masks_all, _ = _all_masks(root, "train")
    _assert_same_masks(masks_v, {k: m for k, m in masks_all.items() if k[0] in ids_v})

    with pytest.raises(OutputExistsError):
        split_dataset(root, valid_fraction=0.4, seed=3)
    again = split_dataset(root, valid_fraction=0.4, seed=3, force=True)
    assert json.loads(again.valid_file.read_text()) == valid
    other = split_dataset(root, valid_fraction=0.4, seed=4, name="other")
    assert (
        other.valid_file.name == "other_valid.json"
        and resolve_split(root, "other_train").annotation_file == other.train_file
    )
    ids = list(range(100))
    assert choose_valid_videos(ids, 0.1, 3) == choose_valid_videos(
        ids[::-1], 0.1, 3
    )  # file order is irrelevant
    assert (
        choose_valid_videos(ids, 0.1, 3) != choose_valid_videos(ids, 0.1, 4)
        and len(choose_valid_videos(ids, 0.1, 3)) == 10
    )


def test_split_rejects_bad_fractions(shapes, tmp_path):
    root = tmp_path / "ds"
    shutil.copytree(shapes, root)
    for fraction in (0.0, 1.0, 1.5):
        with pytest.raises(ConfigError, match="valid-fraction"):
            split_dataset(root, valid_fraction=fraction)
    assert not (root / "annotations").exists()


def test_foreign_mots_png_with_ignore_regions(tmp_path):
    """MOTS PNGs from another tool (no side-car): class 2 instances 1 and 2, an ignore region."""
    import cv2

    folder = tmp_path / "m" / "instances" / "seq7"
    folder.mkdir(parents=True)
    frames = np.zeros((3, 20, 30), np.uint16)
    frames[:, 2:8, 2:8] = 2001
    frames[1:, 10:15, 10:20] = 2002
    frames[:, 18:, :] = 10000
    for t, frame in enumerate(frames):
        cv2.imwrite(str(folder / f"{t:06d}.png"), frame)
    (tmp_path / "m" / "labels.txt").write_text("background\ncar\npedestrian\n")
    convert_dataset(tmp_path / "m", tmp_path / "y", to="ytvis")
    masks, index = _all_masks(tmp_path / "y", check_files=False)  # no frames to copy
    assert index.category_map.names == ("car", "pedestrian") and len(masks) == 2
    assert {k[2] for k in masks} == {2}
    got = sorted(m.tobytes() for m in masks.values())
    assert got == sorted((frames == v).tobytes() for v in (2001, 2002))
    assert index.videos[0].file_names == ("seq7/000000.jpg", "seq7/000001.jpg", "seq7/000002.jpg")
