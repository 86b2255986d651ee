"""The best any window-linking rule could do with a given model: identities from the answer key.

``GroundTruthLinker`` segments a video with the model's own windows, slots, masks, scores and
deduplication, exactly as ``vistr segment``, but decides which slot continues which track from the
ground truth: in every window, the kept slots are matched one-to-one to the annotated objects
(Hungarian on the video mask IoU over the window's real frames, at the model's 1/4 mask resolution)
and a slot matched with IoU >= ``MIN_IOU`` takes its object's track; every other slot starts a new
track, and nothing is resumed after a gap. The video AP of these tracks bounds what a better linker
could reach: what it misses is the model's (masks, classes, duplicates), not the linking's.

Used by ``long_video_ap.py --ground-truth-linking``.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from scipy.optimize import linear_sum_assignment
from torch import Tensor

from vistr_core.config import InferConfig
from vistr_core.data.ytvis import load_ytvis, read_json
from vistr_core.inference.predictor import WindowPrediction
from vistr_core.inference.segmenter import VideoSegmenter
from vistr_core.inference.split import predict_video
from vistr_core.inference.tracker import sequence_iou
from vistr_core.inference.windows import Window
from vistr_core.ops.masks import decode_segmentation

MIN_IOU = 0.2
"""Smallest video mask IoU over a window at which a slot counts as showing an object."""


class GroundTruthLinker(VideoSegmenter):
    """A :class:`VideoSegmenter` whose window linking reads the answer key (module docstring).

    Call :meth:`start_video` with the video's annotated objects before streaming it.
    """

    def __init__(self, model: torch.nn.Module, *, infer: InferConfig) -> None:
        super().__init__(model, infer=dataclasses.replace(infer, max_gap=0))
        self.objects: dict[int, Tensor] = {}
        self.object_tracks: dict[int, int] = {}
        self._resized: dict[tuple[int, int], dict[int, Tensor]] = {}

    def start_video(self, objects: dict[int, Tensor]) -> None:
        """objects: annotation id -> [num_frames, H, W] bool masks at the video's size."""
        self.objects, self.object_tracks, self._resized = objects, {}, {}

    def _at_mask_size(self, size: tuple[int, int]) -> dict[int, Tensor]:
        """The objects' masks at the model's mask resolution: [num_frames, h, w] bool each."""
        if size not in self._resized:
            self._resized[size] = {
                key: F.interpolate(masks[:, None].float(), size=size, mode="area")[:, 0] > 0.5
                for key, masks in self.objects.items()
            }
        return self._resized[size]

    def _continue_tracks(
        self,
        previous: Any,
        window: Window,
        prediction: WindowPrediction,
        slots: np.ndarray,
        classes: Tensor,
        colours: Tensor | None = None,
    ) -> list[int | None]:
        """The answer key's track of each kept slot; ``classes`` and ``colours`` play no part."""
        ids: list[int | None] = [None] * len(slots)
        if not len(slots) or not self.objects:
            return ids
        masks = prediction.mask_logits[slots, : window.num_real].cpu() > self.logit_thr  # [k, T, h, w]
        objects = self._at_mask_size(tuple(masks.shape[-2:]))
        keys = list(objects)
        truth = torch.stack([objects[key][window.start : window.start + window.num_real] for key in keys])
        iou = sequence_iou(masks, truth).numpy()  # [k, objects]
        for j, o in zip(*linear_sum_assignment(iou, maximize=True), strict=True):
            if iou[j, o] >= MIN_IOU:
                if keys[o] not in self.object_tracks:
                    self.object_tracks[keys[o]] = self.book.new_track()
                ids[j] = self.object_tracks[keys[o]]
        return ids


def _objects(annotations: list[dict[str, Any]], height: int, width: int) -> dict[int, Tensor]:
    """One video's annotations -> annotation id: [num_frames, H, W] bool."""
    empty = np.zeros((height, width), dtype=bool)
    return {
        a["id"]: torch.from_numpy(
            np.stack(
                [empty if s is None else decode_segmentation(s, height, width) for s in a["segmentations"]]
            )
        )
        for a in annotations
    }


def predict_with_ground_truth_linking(
    model: torch.nn.Module, data_root: Path, split: str, infer: InferConfig
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Like :func:`vistr_core.inference.split.predict_split`, with :class:`GroundTruthLinker`."""
    index = load_ytvis(data_root, split)
    ground_truth = read_json(index.annotation_file)
    segmenter = GroundTruthLinker(model, infer=infer)
    results: list[dict[str, Any]] = []
    model.eval()
    for video in index.videos:
        annotations = [a for a in ground_truth["annotations"] if a["video_id"] == video.id]
        segmenter.start_video(_objects(annotations, video.height, video.width))
        results.extend(predict_video(segmenter, index, video))
    return results, ground_truth
