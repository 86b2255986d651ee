"""The run directory: what a training run writes and the rules for reusing one.

RUN/config.json          the run's configs, preset and categories (human-readable)
RUN/last.pt              the latest checkpoint (every checkpoint, epoch end, interruption, finish)
RUN/ckpt_000200.pt       numbered checkpoints every ``checkpoint_every`` steps
RUN/metrics.jsonl        one JSON object per logged step
RUN/eval_000200.json     periodic evaluation results (``eval_every``)

Files are written as ``RUN/.<name>.<random>.tmp`` and renamed into place; a run killed mid-write
(kill -9) leaves one behind, as large as a checkpoint. The next run in the folder removes them
(only names of that pattern, for our own files). A run that fails before saving any checkpoint
removes what it wrote (and the folder, if it made it), so the folder is never left half-made.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from types import TracebackType
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
# atomic_open's temporary names for those files
_OUR_TEMPS = tuple(f".{pattern}.*.tmp" for pattern in _OURS)


def numbered_checkpoint(run_dir: Path, step: int) -> Path:
    return run_dir / f"ckpt_{step:06d}.pt"


def prepare_run_dir(run_dir: Path, *, resume: bool, force: bool) -> None:
    """Create ``run_dir``; refuse a non-empty one unless resuming or ``force`` (which removes the
    previous run's files, and only those)."""
    if run_dir.exists() and not run_dir.is_dir():
        raise OutputExistsError(f"--out {run_dir} is a file; pass a directory for the run")
    remove_stale_temps(run_dir)
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


def remove_stale_temps(run_dir: Path) -> list[Path]:
    """Delete temporary files an interrupted write of ours left in ``run_dir``; the removed paths."""
    stale = [p for pattern in _OUR_TEMPS for p in run_dir.glob(pattern) if p.is_file()]
    for path in stale:
        path.unlink(missing_ok=True)
    return stale


class RunFolderGuard:
    """Context for one training call: when it fails having saved no checkpoint, the files it wrote
    go (and the folder, if this call created it), so the folder neither blocks a new run ("not
    empty") nor offers a --resume without ``last.pt``. Set ``owned`` once the folder is prepared."""

    def __init__(self, run_dir: Path) -> None:
        self.run_dir = run_dir
        self.existed = run_dir.exists()
        self.owned = False

    def __enter__(self) -> RunFolderGuard:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, err: BaseException | None, tb: TracebackType | None
    ) -> None:
        if kind is None or not self.owned or (self.run_dir / LAST).exists():
            return
        for pattern in _OURS + _OUR_TEMPS:
            for path in self.run_dir.glob(pattern):
                path.unlink(missing_ok=True)
        if not self.existed and self.run_dir.is_dir() and not any(self.run_dir.iterdir()):
            shutil.rmtree(self.run_dir, ignore_errors=True)


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
