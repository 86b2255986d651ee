"""A torch Dataset of T-frame clips from a YouTube-VIS index.

Epoch: ``clips_per_video`` clips of every video (item ``i`` is a clip of video ``i % num_videos``),
each at a random window (:mod:`vistr_core.data.sampling`) with a random augmentation
(:mod:`vistr_core.data.transforms`). The reference instead uses every *frame* as a sample, so one of
its epochs is ~L (up to 36) of ours; iteration budgets, not epochs, are what compare.

Determinism: an item key is ``(index, seed, epoch)``; all randomness of that clip comes from
``numpy.random.default_rng([seed, epoch, index])``, independent of worker count, worker
assignment and order — the property exact resume needs. A plain int key uses ``(index, 0, 0)``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset

from ..categories import CategoryMap
from ..config import DataConfig
from ..errors import ConfigError, DatasetError
from .clip import ClipTargets, make_clip_targets
from .copy_paste import ClipObjects, choose_donor_object, paste_object
from .sampling import sample_clip_indices
from .transforms import decode_reduction, draw_geometry, eval_geometry, snap_crop, transform_clip
from .ytvis import VideoInfo, YTVISIndex

ClipKey = int | tuple[int, int, int]


class YTVISClipDataset(Dataset):
    """``dataset[key] -> (frames [T, 3, h, w] float32 normalized, ClipTargets)``.

    Args:
        index: the loaded split (:func:`vistr_core.data.ytvis.load_ytvis`); it must have annotations.
        num_frames: T, frames per clip.
        data_config: preprocessing and augmentation settings.
        category_map: dataset category id -> model class index; default: the index's categories.
        train: random windows + augmentation; otherwise the first window and the eval resize.
        clips_per_video: clips per video per epoch (default ``data_config.clips_per_video``).
    """

    def __init__(
        self,
        index: YTVISIndex,
        *,
        num_frames: int,
        data_config: DataConfig,
        category_map: CategoryMap | None = None,
        train: bool = True,
        clips_per_video: int | None = None,
    ) -> None:
        if not index.has_annotations:
            raise DatasetError(
                f"{index.annotation_file} has no annotations (a valid/test file?); training needs ground truth"
            )
        if not index.videos:
            raise DatasetError(f"{index.annotation_file} lists no videos")
        if train and index.num_instances == 0:
            raise DatasetError(
                f"{index.annotation_file} has no annotated objects (its annotations list is empty); "
                "training needs at least one; check the file with `vistr data check`"
            )
        self.index = index
        self.num_frames = num_frames
        self.data_config = data_config
        self.category_map = category_map or index.category_map
        self.train = train
        self.clips_per_video = clips_per_video or data_config.clips_per_video
        self._label_of = self._labels_for(index, self.category_map)

    @staticmethod
    def _labels_for(index: YTVISIndex, category_map: CategoryMap) -> dict[int, int]:
        labels = {}
        for cat in index.categories:
            try:
                labels[cat["id"]] = category_map.index_of(cat["id"])
            except ConfigError:
                raise DatasetError(
                    f"{index.annotation_file}: category {cat['id']} ({cat['name']}) is not one of the model's "
                    f"categories {category_map.id_to_name()}; train a new model or remap the dataset"
                ) from None
        return labels

    def __len__(self) -> int:
        return len(self.index.videos) * self.clips_per_video

    def __getitem__(self, key: ClipKey) -> tuple[Tensor, ClipTargets]:
        item, seed, epoch = (key, 0, 0) if isinstance(key, int) else key
        position = item % len(self.index.videos)
        video = self.index.videos[position]
        rng = np.random.default_rng([seed, epoch, item])
        clip, indices = self._load_objects(video, rng if self.train else None)
        if self.train and self.data_config.copy_paste > 0 and rng.random() < self.data_config.copy_paste:
            clip = self._paste_from_another_video(clip, position, rng)
        targets = make_clip_targets(
            clip.masks,
            clip.labels,
            clip.instance_ids,
            video_id=video.id,
            frame_indices=torch.from_numpy(indices),
            orig_size=(video.height, video.width),
        )
        return clip.frames, targets

    def _load_objects(
        self, video: VideoInfo, rng: np.random.Generator | None
    ) -> tuple[ClipObjects, np.ndarray]:
        """One window of ``video``, decoded and transformed (random when ``rng`` is given).

        Returns:
            the clip's frames [T, 3, h, w] and objects (masks [N, T, h, w]); frame indices [T] int64.
        """
        cfg = self.data_config
        indices = sample_clip_indices(video.length, self.num_frames, rng, max_stride=cfg.max_stride)
        if rng is not None:
            draw = draw_geometry(video.height, video.width, cfg, rng)
        else:
            draw = eval_geometry(video.height, video.width, cfg)
        # Decode JPEGs only as large as the output needs (the crop and masks are snapped to match).
        reduction = decode_reduction(draw, enabled=cfg.reduced_decode)
        draw = snap_crop(draw, reduction, video.height, video.width)
        frames = self.index.read_frames(video, indices, reduction=reduction)
        masks, tracks = self.index.decode_masks(video, indices, crop=draw.crop)
        pixels, clip_masks = transform_clip(
            frames, masks, draw, cfg, rng, reduction=reduction, masks_cropped=True
        )
        labels = torch.tensor([self._label_of[tr.category_id] for tr in tracks], dtype=torch.int64)
        ids = torch.tensor([tr.id for tr in tracks], dtype=torch.int64)
        return ClipObjects(frames=pixels, masks=clip_masks, labels=labels, instance_ids=ids), indices

    def _paste_from_another_video(self, clip: ClipObjects, own: int, rng: np.random.Generator) -> ClipObjects:
        """``clip`` with one object of a random other video (of a class the clip has, when
        ``data_config.copy_paste_same_class`` and the donor has one) pasted on top."""
        videos = self.index.videos
        if len(videos) < 2:
            return clip
        donor_video = videos[(own + 1 + int(rng.integers(len(videos) - 1))) % len(videos)]  # any but ``own``
        donor, _ = self._load_objects(donor_video, rng)
        wanted = clip.labels if self.data_config.copy_paste_same_class else clip.labels[:0]
        which = choose_donor_object(donor, wanted, rng)
        if which is None:
            return clip
        # A negative id: the pasted object is no annotation of this video.
        return paste_object(clip, donor, which, pasted_id=-int(donor.instance_ids[which]) - 1)

    def describe(self) -> dict[str, Any]:
        """Counts for logs and reports."""
        return {
            "videos": len(self.index.videos),
            "instances": self.index.num_instances,
            "categories": self.category_map.num_classes,
            "clips_per_epoch": len(self),
        }
