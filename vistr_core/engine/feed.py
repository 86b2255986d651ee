"""Batches for the training loop, grouped for gradient accumulation and resumable mid-epoch."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import torch

from ..categories import CategoryMap
from ..config import DataConfig, TrainConfig
from ..data.clip import ClipBatch
from ..data.loader import TrainLoader, build_train_loader
from ..errors import ConfigError
from .distributed import DistContext
from .train_state import SavedRun


@dataclass
class TrainFeed:
    """The training loader plus accumulation: one *group* of ``accumulate`` batches per step."""

    loader: TrainLoader
    accumulate: int

    @property
    def categories(self) -> CategoryMap:
        return self.loader.dataset.category_map

    @property
    def steps_per_epoch(self) -> int:
        """Optimizer steps per epoch (a trailing incomplete group is not used)."""
        return len(self.loader) // self.accumulate

    def epoch_groups(self, epoch: int, skip_batches: int = 0) -> Iterator[tuple[list[ClipBatch], float]]:
        """Epoch ``epoch``'s groups after its first ``skip_batches`` batches, each with the seconds
        spent waiting for its data."""
        self.loader.set_epoch(epoch, skip_batches)
        remaining = self.steps_per_epoch * self.accumulate - skip_batches
        if remaining <= 0:
            return
        # Starting an iterator draws the DataLoader's base seed from torch's global generator; a
        # resumed run starts one at a different step than the original, so keep the global stream
        # (dropout's) untouched. Clip randomness is keyed by (seed, epoch, index) anyway.
        rng_state = torch.get_rng_state()
        batches = iter(self.loader)
        torch.set_rng_state(rng_state)
        for _ in range(remaining // self.accumulate):
            started = time.perf_counter()
            group = [next(batches) for _ in range(self.accumulate)]
            yield group, time.perf_counter() - started


def _check_same_categories(dataset: CategoryMap, saved: CategoryMap, data_root: Path, split: str) -> None:
    """A resumed run continues exactly only on the categories it was trained on."""
    theirs, ours = dataset.id_to_name(), saved.id_to_name()
    if theirs != ours:
        differ = sorted(i for i in theirs.keys() | ours.keys() if theirs.get(i) != ours.get(i))
        shown = ", ".join(f"{i}: {ours.get(i, '-')!r} vs {theirs.get(i, '-')!r}" for i in differ[:3])
        raise ConfigError(
            f"cannot resume on {data_root} ({split}): its categories differ from the checkpoint's ({shown}"
            f"{' ...' if len(differ) > 3 else ''}); resume on the run's dataset, or start a new run with --init-from"
        )


def build_feed(
    data_root: Path,
    split: str,
    ctx: DistContext,
    num_frames: int,
    data_config: DataConfig,
    config: TrainConfig,
    saved: SavedRun | None,
) -> TrainFeed:
    """The run's data; a resumed run keeps its checkpoint's category map."""
    loader = build_train_loader(
        data_root,
        split,
        data_config=data_config,
        num_frames=num_frames,
        category_map=saved.categories if saved is not None else None,
        batch_size=config.batch_size,
        workers=config.workers,
        seed=config.seed,
        distributed=ctx.distributed,
        pin_memory=ctx.device.type == "cuda",
    )
    feed = TrainFeed(loader, config.accumulate)
    if saved is not None:
        _check_same_categories(loader.dataset.index.category_map, saved.categories, data_root, split)
    if feed.steps_per_epoch == 0:
        raise ConfigError(
            f"--accumulate {config.accumulate} is more than the {len(loader)} batch(es) per epoch of {data_root}; "
            "lower --accumulate or --batch-size"
        )
    return feed
