"""predict_split: every video of a YouTube-VIS split through the same segmenter."""

from __future__ import annotations

import json

import cv2
import numpy as np
import torch
from _segment_fakes import ColorSlotModel, object_masks, scene_frame
from pycocotools import mask as mask_utils

from vistr_core.config import InferConfig
from vistr_core.data.ytvis import track_json
from vistr_core.inference.split import predict_split


def make_split(root, videos: dict[int, int]):
    """A 2021-layout split of scene videos ({video_id: length}) with exact ground truth."""
    split = root / "valid"
    entries, annotations = [], []
    for video_id, length in videos.items():
        folder = split / "JPEGImages" / f"vid{video_id}"
        folder.mkdir(parents=True)
        names = []
        for t in range(length):
            cv2.imwrite(str(folder / f"{t:05d}.png"), cv2.cvtColor(scene_frame(t), cv2.COLOR_RGB2BGR))
            names.append(f"vid{video_id}/{t:05d}.png")
        entries.append({"id": video_id, "height": 64, "width": 96, "length": length, "file_names": names})
        masks = np.stack([object_masks(t) for t in range(length)], axis=1)  # [3, T, H, W]
        for c in range(3):
            annotations.append(track_json(len(annotations) + 1, video_id, c + 1, masks[c]))
    categories = [{"id": 1, "name": "red"}, {"id": 2, "name": "green"}, {"id": 3, "name": "blue"}]
    gt = {"videos": entries, "annotations": annotations, "categories": categories}
    (split / "instances.json").write_text(json.dumps(gt))
    return gt


def test_predict_split_returns_results_and_ground_truth(tmp_path):
    gt = make_split(tmp_path, {5: 20, 9: 4})
    model = ColorSlotModel(8)
    model.train()
    results, ground_truth = predict_split(
        tmp_path, "valid", model=model, device="cpu", infer=InferConfig(overlap=2)
    )
    assert model.training  # the trainer's mode is restored
    assert ground_truth["videos"] == gt["videos"]
    assert sorted({r["video_id"] for r in results}) == [5, 9]
    lengths = {5: 20, 9: 4}
    for r in results:
        assert len(r["segmentations"]) == lengths[r["video_id"]]
        for t, segmentation in enumerate(r["segmentations"]):
            mask = mask_utils.decode(
                {"size": segmentation["size"], "counts": segmentation["counts"].encode()}
            )
            truth = object_masks(t)[r["category_id"] - 1]
            inter, union = np.logical_and(mask, truth).sum(), np.logical_or(mask, truth).sum()
            assert inter / union > 0.6
    assert sorted((r["video_id"], r["category_id"]) for r in results) == [
        (v, c) for v in (5, 9) for c in (1, 2, 3)
    ]


def test_predict_split_with_a_random_tiny_model(tmp_path):
    """A real (random-weight) VisTR: the structure holds whatever it predicts."""
    from vistr_core.categories import CategoryMap
    from vistr_core.model import build_vistr
    from vistr_core.presets import get_preset

    make_split(tmp_path, {1: 5})
    preset = get_preset("tiny")
    model = build_vistr(preset.model).eval()
    model.categories = CategoryMap.generic(1)
    model.data_config = preset.data
    with torch.no_grad():
        results, _ = predict_split(tmp_path, "valid", model=model, infer=InferConfig(mask_thr=0.3))
    for r in results:
        assert r["video_id"] == 1 and r["category_id"] == 1 and len(r["segmentations"]) == 5
