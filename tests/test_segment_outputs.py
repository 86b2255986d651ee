"""What `vistr segment` writes: results.json, meta.json, PNG masks, MOTS text; frame folders and ranges."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
from _segment_fakes import ColorSlotModel, object_masks, scene_frame, write_scene_video
from PIL import Image
from pycocotools import mask as mask_utils

from vistr_core.config import InferConfig
from vistr_core.data.video_io import open_video
from vistr_core.inference.segment import FrameRange, OutputOptions, segment_videos
from vistr_core.render.palette import palette_for_png


def decode(segmentation) -> np.ndarray:
    rle = {"size": segmentation["size"], "counts": segmentation["counts"].encode()}
    return mask_utils.decode(rle).astype(bool)


def best_object(mask: np.ndarray, t: int) -> int:
    """Index of the scene object that ``mask`` overlaps most in frame ``t``."""
    return int(np.argmax([(mask & obj).sum() for obj in object_masks(t)]))


def test_results_meta_png_and_mots(tmp_path):
    video = write_scene_video(tmp_path / "clip.mp4", 21, rate=20)
    out = tmp_path / "out"
    summary = segment_videos(
        [video],
        out,
        model=ColorSlotModel(8),
        infer=InferConfig(overlap=2),
        device="cpu",
        outputs=OutputOptions(png=True, mots=True),
        video_id=7,
    )
    assert summary.ok and summary.videos[0].tracks == 3
    folder = out / "clip"
    assert sorted(p.name for p in folder.iterdir()) == [
        "masks",
        "meta.json",
        "results.json",
        "tracks.mots.txt",
    ]

    results = json.loads((folder / "results.json").read_text())
    assert len(results) == 3
    for r in results:
        assert set(r) == {"video_id", "category_id", "score", "segmentations", "track_id"}
        assert r["video_id"] == 7 and 0.0 < r["score"] <= 1.0
        assert len(r["segmentations"]) == 21
        for segmentation in r["segmentations"]:
            assert segmentation["size"] == [64, 96] and isinstance(segmentation["counts"], str)
        # the category is the object the masks cover (colour c -> category c + 1)
        assert best_object(decode(r["segmentations"][10]), 10) == r["category_id"] - 1

    meta = json.loads((folder / "meta.json").read_text())
    assert meta["width"] == 96 and meta["height"] == 64 and meta["frame_count"] == 21
    assert meta["fps"] == 20.0 and meta["kind"] == "file"
    assert meta["frame_indices"] == list(range(21))
    assert meta["timestamps"] == [round(t / 20, 6) for t in range(21)]
    assert meta["categories"] == {"1": "red", "2": "green", "3": "blue"}  # unused index 0 not listed
    assert meta["settings"]["overlap"] == 2 and meta["settings"]["window"] == 8
    assert meta["settings"]["infer"]["mask_thr"] == 0.5 and meta["settings"]["device"] == "cpu"
    assert [t["track_id"] for t in meta["tracks"]] == [1, 2, 3]
    assert meta["source"].endswith("clip.mp4") and meta["vistr_version"]

    pngs = sorted((folder / "masks").iterdir())
    assert [p.name for p in pngs] == [f"{i:05d}.png" for i in range(21)]
    image = Image.open(pngs[10])
    assert image.mode == "P" and image.size == (96, 64)
    assert image.getpalette()[:768] == palette_for_png()
    labels = np.array(image)
    for r in results:
        np.testing.assert_array_equal(labels == r["track_id"], decode(r["segmentations"][10]))

    lines = (folder / "tracks.mots.txt").read_text().splitlines()
    assert len(lines) == 21 * 3
    frame, obj_id, class_id, height, width, counts = lines[0].split(" ")
    assert (int(height), int(width)) == (64, 96)
    track = next(
        r
        for r in results
        if r["category_id"] == int(class_id) and int(obj_id) == int(class_id) * 1000 + r["track_id"]
    )
    mask = mask_utils.decode({"size": [64, 96], "counts": counts.encode()}).astype(bool)
    np.testing.assert_array_equal(mask, decode(track["segmentations"][int(frame)]))


def test_frame_folder_natural_order_and_frame_range(tmp_path):
    folder = tmp_path / "walk"
    folder.mkdir()
    for t in range(25):  # unpadded names: lexicographic order would put 10.png before 2.png
        cv2.imwrite(str(folder / f"{t}.png"), cv2.cvtColor(scene_frame(t), cv2.COLOR_RGB2BGR))
    out = tmp_path / "out"
    segment_videos(
        [folder],
        out,
        model=ColorSlotModel(8),
        device="cpu",
        frames=FrameRange(start=3, end=None, stride=2),
        outputs=OutputOptions(png=True),
    )
    meta = json.loads((out / "walk" / "meta.json").read_text())
    indices = list(range(3, 25, 2))
    assert meta["frame_indices"] == indices
    assert meta["frame_names"] == [f"{t}.png" for t in indices]
    assert meta["kind"] == "frames"
    results = json.loads((out / "walk" / "results.json").read_text())
    for r in results:
        assert len(r["segmentations"]) == len(indices)
        for k, t in enumerate(indices):  # masks follow the true frames, in order
            assert best_object(decode(r["segmentations"][k]), t) == r["category_id"] - 1
    assert sorted(p.name for p in (out / "walk" / "masks").iterdir()) == [f"{t:05d}.png" for t in indices]


def test_short_video_is_padded_and_filters_apply(tmp_path):
    video = write_scene_video(tmp_path / "short.mp4", 3)
    out = tmp_path / "out"
    summary = segment_videos(
        [video], out, model=ColorSlotModel(8), device="cpu", infer=InferConfig(max_tracks=2)
    )
    results = json.loads((out / "short" / "results.json").read_text())
    assert summary.videos[0].frames == 3 and len(results) == 2
    assert all(len(r["segmentations"]) == 3 for r in results)
    assert sorted(r["track_id"] for r in results) == [1, 2]
    segment_videos(
        [video], out, model=ColorSlotModel(8), device="cpu", infer=InferConfig(score_thr=1.0), force=True
    )
    assert json.loads((out / "short" / "results.json").read_text()) == []


def test_render_writes_an_overlay_video(tmp_path):
    video = write_scene_video(tmp_path / "clip.mp4", 10)
    out = tmp_path / "out"
    segment_videos(
        [video],
        out,
        model=ColorSlotModel(8),
        device="cpu",
        outputs=OutputOptions(render=True),
        frames=FrameRange(stride=2),
    )
    overlay = out / "clip" / "overlay.mp4"
    with open_video(overlay) as rendered:
        assert (rendered.width, rendered.height) == (96, 64)
        assert sum(1 for _ in rendered) == 5


def test_variable_frame_rate_timestamps_come_from_the_decoder(tmp_path):
    from _video_samples import write_video

    pts_ms = [0, 40, 80, 200, 240, 520, 560, 600, 1000, 1040]
    video = write_video(tmp_path / "vfr.mkv", len(pts_ms), pts_ms=pts_ms)
    out = tmp_path / "out"
    segment_videos([video], out, model=ColorSlotModel(8), device="cpu", frames=FrameRange(start=1))
    meta = json.loads((out / "vfr" / "meta.json").read_text())
    assert meta["frame_indices"] == list(range(1, 10))
    assert meta["timestamps"] == pytest.approx([ms / 1000 for ms in pts_ms[1:]])  # from the source start
    assert json.loads((out / "vfr" / "results.json").read_text()) == []  # no coloured objects here


def test_png_masks_with_more_than_255_tracks_are_16_bit(tmp_path):
    from vistr_core.inference.writers import write_png

    labels = np.zeros((4, 5), np.int32)
    labels[1, 2], labels[3, 4] = 7, 300
    write_png(tmp_path / "wide.png", labels, palette_for_png())
    image = Image.open(tmp_path / "wide.png")
    assert image.mode.startswith("I") and np.array_equal(np.array(image), labels)
    write_png(tmp_path / "narrow.png", np.minimum(labels, 255), palette_for_png())
    assert Image.open(tmp_path / "narrow.png").mode == "P"
