"""Evaluation during training (``eval_every``): segment a split with the model being trained and
score it with the official YouTube-VIS metric. Rank 0 evaluates while the other ranks wait."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from ..atomic import atomic_write_json
from .distributed import barrier

if TYPE_CHECKING:
    from .trainer import _Run


def evaluate_run(run: _Run) -> dict[str, float]:
    """The 12 YouTube-VIS statistics of the current weights on ``run.eval_split`` (rank 0; other
    ranks return {}). Also written to ``RUN/eval_<step>.json``."""
    stats: dict[str, float] = {}
    if run.ctx.is_main:
        stats = evaluate_model(run)
        atomic_write_json(
            run.run_dir / f"eval_{run.position.step:06d}.json", {"step": run.position.step, **stats}, indent=2
        )
    barrier()
    return stats


def evaluate_model(run: _Run) -> dict[str, float]:
    from ..eval.ytvis_eval import evaluate_ytvis
    from ..inference.split import predict_split

    module = run.module
    # The segmenter reads the category map and the eval resize from the model, as load_model sets them.
    module.categories = run.categories
    module.data_config = run.data_config
    results, ground_truth = predict_split(run.data_root, run.eval_split, model=module, progress=run.progress)
    return {k: float(v) for k, v in evaluate_ytvis(ground_truth, results).stats.items()}


def check_eval_split(data_root: Path, split: str) -> None:
    """Fail at the start, not after hours of training, when the eval split has no ground truth."""
    from ..data.ytvis import load_ytvis
    from ..errors import ConfigError

    index = load_ytvis(data_root, split, check_files=False)
    if not index.has_annotations:
        raise ConfigError(
            f"--eval-every needs ground truth, but {index.annotation_file} has none (the official valid "
            "split is scored on CodaLab); hold out part of train with `vistr data split` and pass --eval-split"
        )
