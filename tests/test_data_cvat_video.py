"""CVAT for video 1.1: reading a file written the way CVAT writes it, and write → read round trips."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import cv2
import numpy as np
import pytest

from vistr_core.data.formats import cvat_video
from vistr_core.data.formats.cvat_shapes import MaskRle, decode_cvat_rle, encode_cvat_rle
from vistr_core.errors import DatasetError
from vistr_core.ops.masks import decode_segmentation, encode_mask

FIXTURE = Path(__file__).parent / "fixtures" / "cvat" / "annotations.xml"
H, W, L = 16, 20, 12


def _masks(annotation: dict) -> np.ndarray:
    """[L, H, W] bool of one YouTube-VIS annotation."""
    return np.stack(
        [
            np.zeros((H, W), bool) if s is None else decode_segmentation(s, H, W)
            for s in annotation["segmentations"]
        ]
    )


def _box(x0: int, x1: int, y0: int, y1: int) -> np.ndarray:
    mask = np.zeros((H, W), bool)
    mask[y0 : y1 + 1, x0 : x1 + 1] = True
    return mask


def test_reads_cvat_written_fixture() -> None:
    data = cvat_video.read(FIXTURE)
    assert [(c["id"], c["name"]) for c in data["categories"]] == [(1, "cat"), (2, "dog"), (3, "person")]
    (video,) = data["videos"]
    assert (video["name"], video["length"], video["height"], video["width"]) == ("walk_01", L, H, W)
    anns = {a["id"]: a for a in data["annotations"]}
    # vistr_track_id attributes become annotation ids; the grouped pair (no id) gets the next free one
    assert sorted(anns) == [3, 7, 8]
    assert data["info"]["cvat_ignored_shapes"] == 2  # the box track's two shapes

    cat = _masks(anns[7])
    assert anns[7]["category_id"] == 1 and anns[7]["score"] == pytest.approx(0.9)
    np.testing.assert_array_equal(cat[0], _box(2, 6, 2, 5))
    np.testing.assert_array_equal(cat[1], _box(3, 7, 2, 5))  # not in the file: interpolated
    np.testing.assert_array_equal(cat[2], _box(4, 8, 2, 5))
    np.testing.assert_array_equal(cat[3], _box(4, 8, 2, 5))  # keyframe="0" shape, as CVAT exports
    assert not cat[4:8].any()  # outside from frame 4 until the next shape
    for t in range(8, L):  # no closing outside: the track lasts to the end of the video
        np.testing.assert_array_equal(cat[t], _box(2, 6, 2, 5))

    grouped = _masks(anns[8])  # two polygons per frame, one object (group_id)
    assert anns[8]["category_id"] == 2
    for t in range(5):
        np.testing.assert_array_equal(grouped[t], _box(1, 4, 9, 12) | _box(14, 17, 9, 12))
    assert not grouped[5:].any()

    ring = _masks(anns[3])
    expected = _box(10, 14, 1, 5)
    expected[3, 12] = False  # the hole
    assert not ring[:2].any() and not ring[4:].any()
    np.testing.assert_array_equal(ring[2], expected)
    np.testing.assert_array_equal(ring[3], expected)
    assert anns[3]["areas"][2] == 24 and anns[3]["bboxes"][2] == [10.0, 1.0, 5.0, 5.0]


def test_cvat_rle_matches_cvat_decoding() -> None:
    """CVAT's run lengths: background first, row-major over the inclusive box."""
    mask = np.zeros((9, 11), bool)
    mask[2:7, 3:9] = True
    mask[4, 5] = False
    mask[2, 3] = False
    rle = encode_cvat_rle(mask)
    assert (rle.left, rle.top, rle.width, rle.height) == (3, 2, 6, 5)
    assert rle.counts[:3] == (1, 5 + 6 + 2, 1)
    np.testing.assert_array_equal(decode_cvat_rle(rle, mask.shape), mask)
    starts_on = np.ones((3, 3), bool)
    assert encode_cvat_rle(starts_on).counts == (0, 9)
    with pytest.raises(ValueError, match="covers 8 pixels"):
        decode_cvat_rle(MaskRle((0, 8), 0, 0, 3, 3), (3, 3))


def _dataset(tracks: list[tuple[int, int, np.ndarray]], extra: dict | None = None) -> dict:
    extra = extra or {}
    return {
        "videos": [{"id": 5, "name": "clip", "width": W, "height": H, "length": L, "file_names": []}],
        "categories": [{"id": 3, "name": "cat"}, {"id": 9, "name": "dog"}],
        "annotations": [
            {
                "id": ann_id,
                "video_id": 5,
                "category_id": cat,
                "segmentations": [encode_mask(m) if m.any() else None for m in masks],
                **extra.get(ann_id, {}),
            }
            for ann_id, cat, masks in tracks
        ],
    }


def _moving_tracks() -> list[tuple[int, int, np.ndarray]]:
    disk = np.zeros((L, H, W), bool)
    ring = np.zeros((L, H, W), bool)
    parts = np.zeros((L, H, W), bool)
    for t in range(L):
        if t not in (4, 5):  # absent in the middle: outside, then back
            canvas = np.zeros((H, W), np.uint8)
            cv2.circle(canvas, (4 + t // 2, 8), 3, 1, -1)
            disk[t] = canvas.astype(bool)
        canvas = np.zeros((H, W), np.uint8)
        cv2.circle(canvas, (13, 6), 4, 1, -1)
        cv2.circle(canvas, (13, 6), 1, 0, -1)
        ring[t] = canvas.astype(bool) if t >= 3 else False
        parts[t] = _box(0, 2, 13, 15) | _box(17, 19, 13, 15) if t < 7 else _box(8, 11, 12, 15)
    return [(11, 3, disk), (12, 9, ring), (40, 3, parts)]


def test_auto_round_trip_is_exact(tmp_path: Path) -> None:
    tracks = _moving_tracks()
    extra = {11: {"score": 0.75, "needs_review": True}, 12: {"score": 0.5}}
    written = cvat_video.write(_dataset(tracks, extra), tmp_path / "annotations.xml")
    assert written == 3
    root = ET.parse(tmp_path / "annotations.xml").getroot()
    kinds = [{s.tag for s in t} for t in root.iterfind("track")]
    assert kinds == [{"polygon"}, {"mask"}, {"mask"}]  # a hole / several parts: CVAT masks
    back = cvat_video.read(
        tmp_path / "annotations.xml", categories=[{"id": 3, "name": "cat"}, {"id": 9, "name": "dog"}]
    )
    anns = {a["id"]: a for a in back["annotations"]}
    assert sorted(anns) == [11, 12, 40]
    for ann_id, cat, masks in tracks:
        assert anns[ann_id]["category_id"] == cat
        np.testing.assert_array_equal(_masks(anns[ann_id]), masks)
    assert anns[11]["score"] == pytest.approx(0.75)


def test_written_track_keyframes_outside_and_attributes(tmp_path: Path) -> None:
    disk = _moving_tracks()[0]
    cvat_video.write(_dataset([disk], {11: {"score": 0.75, "needs_review": True}}), tmp_path / "a.xml")
    (track,) = ET.parse(tmp_path / "a.xml").getroot().iterfind("track")
    shapes = {int(s.get("frame")): s for s in track}
    assert sorted(shapes) == [0, 1, 2, 3, 4, 6, 7, 8, 9, 10, 11]  # every present frame + outside at 4
    assert shapes[4].get("outside") == "1" and shapes[4].get("keyframe") == "1"
    assert shapes[6].get("keyframe") == "1"  # back after the absence
    # the disk moves every second frame: frames equal to both neighbours are not keyframes
    assert shapes[0].get("keyframe") == "1"
    assert shapes[1].get("points") != shapes[2].get("points")
    assert shapes[1].get("keyframe") == "1" and shapes[2].get("keyframe") == "1"
    assert shapes[9].get("points") == shapes[8].get("points") and shapes[9].get("keyframe") == "1"
    assert shapes[11].get("keyframe") == "0"  # same as frame 10, last frame
    attrs = {a.get("name"): a.text for a in shapes[0].iterfind("attribute")}
    assert attrs == {"score": "0.7500", "vistr_track_id": "11", "needs_review": "true"}
    labels = [n.text for n in ET.parse(tmp_path / "a.xml").getroot().iterfind("meta/task/labels/label/name")]
    assert labels == ["cat", "dog"]


def test_polygon_mode_groups_parts_and_fills_holes(tmp_path: Path) -> None:
    tracks = _moving_tracks()
    written = cvat_video.write(_dataset(tracks), tmp_path / "p.xml", shapes="polygon")
    root = ET.parse(tmp_path / "p.xml").getroot()
    assert written == 4  # the two-part object became two tracks
    assert {s.tag for t in root.iterfind("track") for s in t} == {"polygon"}
    groups = [t.get("group_id") for t in root.iterfind("track")]
    assert groups == [None, None, "1", "1"]
    back = {a["id"]: a for a in cvat_video.read(tmp_path / "p.xml")["annotations"]}
    assert sorted(back) == [11, 12, 40]  # the group is one object again
    np.testing.assert_array_equal(_masks(back[40]), tracks[2][2])
    np.testing.assert_array_equal(_masks(back[11]), tracks[0][2])
    ring = _masks(back[12])
    filled = tracks[1][2].copy()
    filled[3:, 6, 13] = True
    filled[3:, 5:8, 13] = True
    filled[3:, 6, 12:15] = True
    np.testing.assert_array_equal(ring, filled)  # only the hole changed


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("<annotations><version>1.1", "is not valid XML"),
        ("<tasks/>", "is not a CVAT annotation file"),
        ('<annotations><image id="0" name="a.jpg"/></annotations>', "'CVAT for images' format"),
        (
            "<annotations><meta><task><size>3</size></task></meta></annotations>",
            "lacks <size> or <original_size>",
        ),
    ],
)
def test_malformed_files_are_named(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "bad.xml"
    path.write_text(text)
    with pytest.raises(DatasetError, match=message) as err:
        cvat_video.read(path)
    assert str(path) in str(err.value) and "CVAT for video 1.1" in str(err.value)
