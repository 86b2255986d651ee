"""Writing training checkpoints: every rank contributes its RNG state, rank 0 writes."""

from __future__ import annotations

import shutil
from typing import TYPE_CHECKING

import torch.distributed as dist

from ..atomic import atomic_open
from ..checkpoint_io import write_checkpoint
from .distributed import barrier, is_distributed
from .rng import capture_rng_state
from .run_dir import LAST, numbered_checkpoint
from .train_state import training_payload

if TYPE_CHECKING:
    from .run_state import TrainingRun


def _all_rng_states() -> list[dict]:
    state = capture_rng_state()
    if not is_distributed():
        return [state]
    states: list[dict | None] = [None] * dist.get_world_size()
    dist.all_gather_object(states, state)
    return states  # type: ignore[return-value]


def save_checkpoint(run: TrainingRun, *, numbered: bool) -> None:
    """Write ``RUN/last.pt`` (and ``RUN/ckpt_<step>.pt`` when ``numbered``) atomically.

    Collective: every rank must call it (RNG states are gathered; a barrier follows the write).
    """
    from ..model.loading import model_checkpoint_payload

    if not numbered and run.saved == run.position:
        return  # last.pt already holds exactly this state (e.g. epoch end == end of training)
    rng_states = _all_rng_states()
    if run.ctx.is_main:
        payload = training_payload(
            model_checkpoint_payload(
                run.module,
                data_config=run.data_config,
                train_config=run.config,
                preset=run.preset,
                categories=run.categories,
            ),
            optimizer=run.optimizer,
            scheduler=run.scheduler,
            scaler=run.scaler,
            rng_states=rng_states,
            position=run.position,
        )
        last = run.run_dir / LAST
        if numbered:
            target = numbered_checkpoint(run.run_dir, run.position.step)
            write_checkpoint(payload, target)
            with open(target, "rb") as src, atomic_open(last, "wb") as dst:
                shutil.copyfileobj(src, dst)
        else:
            write_checkpoint(payload, last)
    run.saved = run.position
    barrier()
