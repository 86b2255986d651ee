"""Evaluation during training (``eval_every``): score the model being trained on a split. Rank 0
evaluates while the other ranks wait.

The scoring itself (segment the split, apply the YouTube-VIS metric) is inference's work; it comes
in as the run's :data:`~vistr_core.engine.run_state.Evaluator` (:func:`vistr_core.train` passes
:func:`vistr_core.inference.split.score_split`), so training machinery never imports inference.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from ..atomic import atomic_write_json
from ..data.ytvis import load_ytvis
from ..errors import ConfigError
from .distributed import barrier

if TYPE_CHECKING:
    from .run_state import Evaluator, TrainingRun


def evaluate_run(run: TrainingRun) -> dict[str, float]:
    """The statistics of the current weights on ``run.eval_split`` (rank 0; other ranks return {}).
    Also written to ``RUN/eval_<step>.json``."""
    stats: dict[str, float] = {}
    if run.ctx.is_main:
        stats = evaluate_model(run)
        atomic_write_json(
            run.run_dir / f"eval_{run.position.step:06d}.json", {"step": run.position.step, **stats}, indent=2
        )
    barrier()
    return stats


def evaluate_model(run: TrainingRun) -> dict[str, float]:
    assert run.evaluator is not None  # check_eval_split refused the run before training started
    module = run.module
    # The evaluator reads the category map and the eval resize from the model, as load_model sets them.
    module.categories = run.categories
    module.data_config = run.data_config
    stats = run.evaluator(module, run.data_root, run.eval_split, run.progress)
    return {k: float(v) for k, v in stats.items()}


def check_eval_split(data_root: Path, split: str, evaluator: Evaluator | None) -> None:
    """Fail at the start, not after hours of training, when there is nothing to score with or the
    eval split has no ground truth."""
    if evaluator is None:
        raise ConfigError(
            "eval_every needs an evaluator: train with vistr_core.train (it scores with the YouTube-VIS "
            "metric), pass evaluator= to vistr_core.engine.trainer.train, or set eval_every to 0"
        )
    index = load_ytvis(data_root, split, check_files=False)
    if not index.has_annotations:
        raise ConfigError(
            f"--eval-every needs ground truth, but {index.annotation_file} has none (the official valid "
            "split is scored on CodaLab); hold out part of train with `vistr data split` and pass --eval-split"
        )
