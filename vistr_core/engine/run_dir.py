"""The run directory: what a training run writes and the rules for reusing one.

RUN/config.json          the run's configs, preset and categories (human-readable)
RUN/last.pt              the latest checkpoint (every checkpoint, epoch end, interruption, finish)
RUN/ckpt_000200.pt       numbered checkpoints every ``checkpoint_every`` steps
RUN/metrics.jsonl        one JSON object per logged step
RUN/eval_000200.json     periodic evaluation results (``eval_every``)
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from torch import nn

from ..atomic import atomic_write_text
from ..categories import CategoryMap
from ..config import DataConfig, TrainConfig
from ..errors import OutputExistsError

LAST = "last.pt"
METRICS = "metrics.jsonl"
CONFIG = "config.json"
_OURS = (LAST, METRICS, CONFIG, "ckpt_*.pt", "eval_*.json")


def numbered_checkpoint(run_dir: Path, step: int) -> Path:
    return run_dir / f"ckpt_{step:06d}.pt"


def prepare_run_dir(run_dir: Path, *, resume: bool, force: bool) -> None:
    """Create ``run_dir``; refuse a non-empty one unless resuming or ``force`` (which removes the
    previous run's files, and only those)."""
    if run_dir.exists() and not run_dir.is_dir():
        raise OutputExistsError(f"--out {run_dir} is a file; pass a directory for the run")
    if run_dir.is_dir() and any(run_dir.iterdir()) and not resume:
        if not force:
            raise OutputExistsError(
                f"run folder {run_dir} is not empty; pass --resume to continue it, --force to start over, "
                "or choose another --out"
            )
        for pattern in _OURS:
            for path in run_dir.glob(pattern):
                path.unlink()
    run_dir.mkdir(parents=True, exist_ok=True)


def write_run_config(
    run_dir: Path,
    model: nn.Module,
    data_config: DataConfig,
    train_config: TrainConfig,
    preset: str,
    categories: CategoryMap,
) -> None:
    """``RUN/config.json``: the configs exactly as checkpoints embed them, plus the categories."""
    from ..model.loading import model_checkpoint_payload

    payload = model_checkpoint_payload(
        model, data_config=data_config, train_config=train_config, preset=preset, categories=categories
    )
    config = json.loads(payload["config"])
    config["categories"] = json.loads(payload["categories"])
    atomic_write_text(run_dir / CONFIG, json.dumps(config, indent=2) + "\n")


class MetricsLog:
    """Appends one JSON line per logged step to ``RUN/metrics.jsonl``.

    On resume, lines past the resumed step (logged after the last checkpoint by the interrupted
    run) are dropped first, so the file reads as one uninterrupted run.
    """

    def __init__(self, path: Path, *, resume_step: int | None = None) -> None:
        self.path = path
        if resume_step is not None and path.exists():
            kept = [line for line in path.read_text().splitlines() if _step_of(line) <= resume_step]
            atomic_write_text(path, "".join(f"{line}\n" for line in kept))
        elif resume_step is None:
            path.unlink(missing_ok=True)

    def write(self, record: dict[str, Any]) -> None:
        with self.path.open("a", encoding="utf-8") as fh:
            fh.write(json.dumps(record) + "\n")


def _step_of(line: str) -> int:
    try:
        return int(json.loads(line)["step"])
    except (ValueError, KeyError, TypeError):
        return -1
