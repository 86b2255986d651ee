"""Predicting (and scoring) a whole YouTube-VIS split, for ``vistr eval --data`` and the trainer's
periodic evaluation.

Every video of the split is segmented by the same :class:`VideoSegmenter` as ``vistr segment``
(windows, linking, post-processing), reading the frames listed in ``file_names`` from the split's
image folder. The results have the ground truth's video ids and one segmentation (or null) per
listed frame at the video's annotated size.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..categories import CategoryMap
from ..config import InferConfig
from ..data.ytvis import VideoInfo, YTVISIndex, load_ytvis, read_json, read_rgb
from ..engine.device import select_device
from ..engine.threads import ThreadGovernor, ThreadSetting
from ..errors import DatasetError
from ..ops.masks import encode_masks
from ..progress import ProgressCallback, ProgressUpdate, no_progress
from .segmenter import FrameInfo, VideoSegmenter
from .writers import track_entries


class _DatasetFrame:
    """A listed frame in the shape :meth:`VideoSegmenter.stream` reads."""

    __slots__ = ("index", "timestamp", "name", "image")

    def __init__(self, index: int, name: str, image: Any) -> None:
        self.index, self.timestamp, self.name, self.image = index, float(index), name, image


def _frames(index: YTVISIndex, video: VideoInfo) -> Iterator[_DatasetFrame]:
    for t, name in enumerate(video.file_names):
        yield _DatasetFrame(t, name, read_rgb(index.frame_path(video, t), expect=(video.height, video.width)))


def predict_video(segmenter: VideoSegmenter, index: YTVISIndex, video: VideoInfo) -> list[dict[str, Any]]:
    """The results entries of one dataset video (RLE strings held in memory: one video at a time)."""
    segmentations: dict[int, list[dict[str, Any] | None]] = {}
    for result in segmenter.stream(_frames(index, video)):
        for frame in result.frames:
            _collect(segmentations, frame.frame, frame.track_ids, frame.masks, video.length)
    tracks = segmenter.tracks()
    segmentations = _linked(segmentations, segmenter, video.length)
    final = {t.track_id: segmentations.get(t.provisional_id, [None] * video.length) for t in tracks}
    return track_entries(tracks, final, video_id=video.id, categories=segmenter.model.categories)


def _linked(
    segmentations: dict[int, list[dict[str, Any] | None]], segmenter: VideoSegmenter, length: int
) -> dict[int, list[dict[str, Any] | None]]:
    """The streamed per-track RLEs under the ids of :meth:`VideoSegmenter.tracks` (re-linking may
    give a streamed track's frames to several tracks, and several streamed tracks' to one)."""
    if segmenter.relinking is None:
        return segmentations
    linked: dict[int, list[dict[str, Any] | None]] = {}
    for provisional, frames in segmentations.items():
        for position, rle in enumerate(frames):
            if rle is not None:
                linked.setdefault(segmenter.linked_id(provisional, position), [None] * length)[position] = rle
    return linked


def _collect(
    segmentations: dict[int, list[dict[str, Any] | None]],
    frame: FrameInfo,
    track_ids: tuple[int, ...],
    masks: Any,
    length: int,
) -> None:
    for track_id, rle in zip(track_ids, encode_masks(masks), strict=True):
        segmentations.setdefault(track_id, [None] * length)[frame.position] = rle


def check_scorable(
    categories: CategoryMap, ground_truth: dict[str, Any], annotation_file: Path, checkpoint: Path | None
) -> None:
    """Refuse, before any prediction, a split with no ground truth tracks or with categories the
    model does not know (by id, or by name where the model's names are real ones): its score would
    be meaningless after minutes or hours of predicting."""
    if not ground_truth.get("annotations"):
        raise DatasetError(
            f"{annotation_file} has no annotations, so there is nothing to score against; "
            "predict it with `vistr segment`, or evaluate a split with ground truth (e.g. from `vistr data split`)"
        )
    model = categories.id_to_name()
    names = {int(c["id"]): str(c["name"]) for c in ground_truth.get("categories") or []}
    used = sorted({int(a["category_id"]) for a in ground_truth["annotations"]})
    unknown = [i for i in used if i not in model]
    renamed = [
        i
        for i in used
        if i in model and model[i] != f"class_{i}" and model[i].lower() != names.get(i, "").lower()
    ]
    if unknown or renamed:
        what = checkpoint if checkpoint is not None else "the model"
        bad = unknown[0] if unknown else renamed[0]
        their = "has no such id" if unknown else f"calls it {model[bad]!r}"
        raise DatasetError(
            f"{annotation_file} does not fit {what}: category {bad} {names.get(bad, '?')!r}: the checkpoint {their} "
            f"({len(unknown)} unknown, {len(renamed)} renamed of {len(used)}); evaluate the checkpoint trained on this dataset"
        )


def predict_split(
    data_root: Path,
    split: str,
    checkpoint: Path | None = None,
    *,
    model: nn.Module | None = None,
    device: str | torch.device = "auto",
    infer: InferConfig | None = None,
    progress: ProgressCallback = no_progress,
    threads: ThreadSetting = None,
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Segment every video of a YouTube-VIS split.

    Args:
        data_root: the dataset folder (layouts of :func:`vistr_core.data.ytvis.resolve_split`).
        split: e.g. ``"valid"``.
        checkpoint: what to load (on ``device``), unless ``model`` is given: e.g. the trainer's,
            possibly DDP-wrapped, used on its own device and put back in its train/eval mode after.
            A loaded checkpoint must fit the split (:func:`check_scorable`) before any prediction.
    Returns:
        ``(results, ground_truth)``: the YouTube-VIS results list (with ``track_id``) and the
        split's annotation JSON as a dict.
    """
    loaded = model is None
    if model is None:
        from .segment import _load

        model = _load(checkpoint, select_device(device) if isinstance(device, str) else device)
    else:  # the trainer's model, used where it is; DDP wraps it in .module
        model = getattr(model, "module", model)
    index = load_ytvis(data_root, split)
    ground_truth = read_json(index.annotation_file)
    if loaded:  # a given model is the caller's business (the trainer's fits its dataset)
        check_scorable(model.categories, ground_truth, index.annotation_file, checkpoint)
    was_training = model.training
    model.eval()
    try:
        with ThreadGovernor(threads) as governor:
            segmenter = VideoSegmenter(model, infer=infer)
            results: list[dict[str, Any]] = []
            for done, video in enumerate(index.videos):
                progress(ProgressUpdate("videos", done, len(index), description=video.name))
                results.extend(predict_video(segmenter, index, video))
                governor.update()
            progress(ProgressUpdate("videos", len(index), len(index), done=True))
    finally:
        model.train(was_training)
    return results, ground_truth


def score_split(
    model: nn.Module, data_root: Path, split: str, progress: ProgressCallback = no_progress
) -> dict[str, float]:
    """The 12 YouTube-VIS statistics of ``model`` on ``split`` (:func:`predict_split`, then the
    official metric): the trainer's periodic evaluation (an ``Evaluator``, passed by
    :func:`vistr_core.train`)."""
    from ..eval.ytvis_eval import evaluate_ytvis

    results, ground_truth = predict_split(data_root, split, model=model, progress=progress)
    return {k: float(v) for k, v in evaluate_ytvis(ground_truth, results).stats.items()}
