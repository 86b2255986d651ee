"""The training DataLoader: sharded, shuffled, seeded, resumable.

Order: a ``DistributedSampler`` (world size 1 when not distributed) shuffles the clip indices with
``seed + epoch`` and gives each rank its share; :class:`ClipSampler` turns index ``i`` into the key
``(i, seed, epoch)`` from which the dataset draws the clip's window and augmentation. So a given
(seed, epoch) yields the same batches whatever the number of workers, and
``set_epoch(epoch, skip_batches=k)`` restarts an epoch exactly at batch k (resume).

Workers decode JPEGs with OpenCV (one thread each, so workers do not oversubscribe the cores);
batches are pinned on CUDA hosts for asynchronous copies. Workers are forked (the index is shared
copy-on-write, and scripts need no ``__main__`` guard); OpenCV's thread pool is shut down in the
parent while they fork, because a child that inherits a pool with waiting threads deadlocks on its
locks (observed: a worker hung in ``cv2.setNumThreads``). Workers never touch CUDA.

A :class:`VistrError` raised in a worker (a corrupt frame) reaches the training loop re-created by
torch with the worker's whole traceback as its message; it is given back its own one line.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import cv2
import torch
import torch.distributed as dist
from torch.utils.data import BatchSampler, DataLoader, DistributedSampler, Sampler

from ..categories import CategoryMap
from ..config import DataConfig, Preset
from ..errors import ConfigError, VistrError
from ..presets import get_preset
from .clip import ClipBatch, collate_clips
from .dataset import YTVISClipDataset
from .ytvis import YTVISIndex, load_ytvis


class ClipSampler(Sampler[tuple[int, int, int]]):
    """Yields ``(index, seed, epoch)`` keys for this rank in the epoch's shuffled order."""

    def __init__(
        self, dataset_len: int, *, seed: int, rank: int = 0, world_size: int = 1, shuffle: bool = True
    ):
        self._order = DistributedSampler(
            range(dataset_len),
            num_replicas=world_size,
            rank=rank,
            shuffle=shuffle,
            seed=seed,
            drop_last=False,
        )
        self.seed = seed
        self.epoch = 0
        self.skip = 0

    def set_epoch(self, epoch: int, skip: int = 0) -> None:
        """Use epoch ``epoch``'s order, starting after its first ``skip`` keys."""
        self.epoch = epoch
        self.skip = skip
        self._order.set_epoch(epoch)

    def __iter__(self) -> Iterator[tuple[int, int, int]]:
        for position, index in enumerate(self._order):
            if position >= self.skip:
                yield (int(index), self.seed, self.epoch)

    def __len__(self) -> int:
        return len(self._order) - self.skip


class TrainLoader:
    """An iterable of :class:`ClipBatch` for one epoch at a time.

    ``len(loader)`` is the number of batches per epoch on this rank (full epoch, ignoring skips);
    call :meth:`set_epoch` before iterating each epoch.
    """

    def __init__(self, dataset: YTVISClipDataset, sampler: ClipSampler, loader: DataLoader, batch_size: int):
        self.dataset = dataset
        self.sampler = sampler
        self.loader = loader
        self.batch_size = batch_size
        self._batches_per_epoch = len(sampler) // batch_size

    def set_epoch(self, epoch: int, skip_batches: int = 0) -> None:
        """Select epoch ``epoch``; with ``skip_batches`` the epoch resumes after that many batches."""
        self.sampler.set_epoch(epoch, skip_batches * self.batch_size)

    def __iter__(self) -> Iterator[ClipBatch]:
        # Workers fork here (persistent: on the first epoch only); fork with OpenCV's pool stopped.
        threads = cv2.getNumThreads()
        cv2.setNumThreads(1)
        try:
            iterator = iter(self.loader)  # now, not on the first next(): it draws the base seed
        finally:
            cv2.setNumThreads(threads)
        return _plain_worker_errors(iterator)

    def __len__(self) -> int:
        return self._batches_per_epoch


def _plain_worker_errors(batches: Iterator[ClipBatch]) -> Iterator[ClipBatch]:
    try:
        yield from batches
    except VistrError as err:
        raise type(err)(worker_error_message(str(err))) from None


def worker_error_message(text: str) -> str:
    """The original one-line message inside torch's "Caught X in DataLoader worker process N.
    Original Traceback ..." text (whose last line is ``module.X: message``); other text unchanged."""
    if not text.startswith("Caught ") or "Original Traceback" not in text:
        return text
    last = [line for line in text.splitlines() if line.strip()][-1]
    name, sep, message = last.partition(": ")
    return message if sep and " " not in name else last


def _worker_init(worker_id: int) -> None:
    cv2.setNumThreads(1)
    torch.set_num_threads(1)


def _rank_and_world(distributed: bool) -> tuple[int, int]:
    if not distributed:
        return 0, 1
    if not (dist.is_available() and dist.is_initialized()):
        raise ConfigError(
            "distributed data loading needs torch.distributed initialized; launch with torchrun"
        )
    return dist.get_rank(), dist.get_world_size()


def build_train_loader(
    data: str | Path | YTVISIndex,
    split: str = "train",
    *,
    preset: Preset | str = "tiny",
    data_config: DataConfig | None = None,
    num_frames: int | None = None,
    category_map: CategoryMap | None = None,
    batch_size: int = 1,
    workers: int = 2,
    seed: int = 42,
    distributed: bool = False,
    epoch: int = 0,
    pin_memory: bool | None = None,
    train: bool = True,
) -> TrainLoader:
    """A loader of augmented training clips.

    Args:
        data: a dataset folder (``split`` resolved as in :func:`vistr_core.data.ytvis.resolve_split`),
            an annotation file, or an already loaded :class:`YTVISIndex`.
        preset: supplies T (``model.num_frames``) and the data config unless given explicitly.
        category_map: the model's class mapping (fine-tuning); default: the dataset's categories.
        workers: worker processes (0 = load in the calling process).
        distributed: shard by ``torch.distributed`` rank / world size.
        epoch: the first epoch's number (same as calling ``set_epoch(epoch)``).
        pin_memory: default True when CUDA is available.
        train: augment and sample random windows (False: first window, eval resize).
    """
    preset = get_preset(preset) if isinstance(preset, str) else preset
    data_config = data_config or preset.data
    num_frames = num_frames or preset.model.num_frames
    if batch_size < 1 or workers < 0:
        raise ConfigError(f"need batch_size >= 1 and workers >= 0, got {batch_size} and {workers}")
    index = data if isinstance(data, YTVISIndex) else load_ytvis(data, split)
    dataset = YTVISClipDataset(
        index, num_frames=num_frames, data_config=data_config, category_map=category_map, train=train
    )
    rank, world = _rank_and_world(distributed)
    sampler = ClipSampler(len(dataset), seed=seed, rank=rank, world_size=world, shuffle=train)
    sampler.set_epoch(epoch)
    if len(sampler) < batch_size:
        raise ConfigError(
            f"{len(sampler)} clip(s) per epoch on this process is fewer than batch size {batch_size}; "
            "lower --batch-size or raise clips_per_video"
        )
    loader = DataLoader(
        dataset,
        batch_sampler=BatchSampler(sampler, batch_size, drop_last=True),
        num_workers=workers,
        collate_fn=collate_clips,
        pin_memory=torch.cuda.is_available() if pin_memory is None else pin_memory,
        worker_init_fn=_worker_init if workers else None,
        persistent_workers=workers > 0,
        prefetch_factor=2 if workers else None,
    )
    return TrainLoader(dataset, sampler, loader, batch_size)
