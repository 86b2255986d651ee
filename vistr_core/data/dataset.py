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
from .sampling import sample_clip_indices
from .transforms import decode_reduction, draw_geometry, eval_geometry, snap_crop, transform_clip
from .ytvis import YTVISIndex

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
        video = self.index.videos[item % len(self.index.videos)]
        rng = np.random.default_rng([seed, epoch, item])
        indices = sample_clip_indices(
            video.length,
            self.num_frames,
            rng if self.train else None,
            max_stride=self.data_config.max_stride,
        )
        cfg = self.data_config
        if self.train:
            draw = draw_geometry(video.height, video.width, cfg, rng)
        else:
            draw = eval_geometry(video.height, video.width, cfg)
        # Decode JPEGs only as large as the output needs (the crop and masks are snapped to match).
        reduction = decode_reduction(draw, enabled=cfg.reduced_decode)
        draw = snap_crop(draw, reduction, video.height, video.width)
        frames = self.index.read_frames(video, indices, reduction=reduction)
        masks, tracks = self.index.decode_masks(video, indices, crop=draw.crop)
        clip, clip_masks = transform_clip(
            frames, masks, draw, cfg, rng if self.train else None, reduction=reduction, masks_cropped=True
        )
        targets = make_clip_targets(
            clip_masks,
            torch.tensor([self._label_of[tr.category_id] for tr in tracks], dtype=torch.int64),
            torch.tensor([tr.id for tr in tracks], dtype=torch.int64),
            video_id=video.id,
            frame_indices=torch.from_numpy(indices),
            orig_size=(video.height, video.width),
        )
        return clip, targets

    def describe(self) -> dict[str, Any]:
        """Counts for logs and reports."""
        return {
            "videos": len(self.index.videos),
            "instances": self.index.num_instances,
            "categories": self.category_map.num_classes,
            "clips_per_epoch": len(self),
        }
