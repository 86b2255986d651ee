"""benchmarks/ap_curve.py: which checkpoints of a run it scores, in what order, how it scores them
(as `vistr eval --checkpoint` does) and the table it prints (the README's AP curves come from it)."""

import json
import sys
from pathlib import Path

import pytest
import torch

from vistr_core.config import InferConfig

sys.path.insert(0, str(Path(__file__).parents[1] / "benchmarks"))
import ap_curve as bench  # noqa: E402

SEED101 = Path(__file__).parent / "fixtures" / "ytvis-eval" / "seed101"


def _checkpoints(run: Path, steps: dict[str, int]) -> None:
    run.mkdir()
    for name, step in steps.items():
        torch.save({"step": step}, run / name)


def test_numbered_checkpoints_by_step_and_last_unless_it_repeats_one(tmp_path):
    _checkpoints(
        tmp_path / "a", {"ckpt_001000.pt": 1000, "ckpt_000250.pt": 250, "last.pt": 1100, "notes.pt": 7}
    )
    _checkpoints(tmp_path / "b", {"ckpt_000500.pt": 500, "last.pt": 500})
    a, b = bench.run_checkpoints(tmp_path / "a"), bench.run_checkpoints(tmp_path / "b")
    assert [(step, path.name) for step, path in a] == [
        (250, "ckpt_000250.pt"),
        (1000, "ckpt_001000.pt"),
        (1100, "last.pt"),
    ]
    assert [(step, path.name) for step, path in b] == [(500, "ckpt_000500.pt")]
    (tmp_path / "empty").mkdir()
    with pytest.raises(SystemExit, match="--checkpoint-every"):
        bench.run_checkpoints(tmp_path / "empty")


def test_scores_as_vistr_eval_does(monkeypatch, tmp_path):
    gt = json.loads((SEED101 / "gt.json").read_text())
    preds = json.loads((SEED101 / "results.json").read_text())
    expected = json.loads((SEED101 / "expected.json").read_text())
    calls = []

    def fake_predict_split(data_root, split, checkpoint, *, infer):
        calls.append((data_root, split, checkpoint, infer))
        return preds, gt

    monkeypatch.setattr(bench, "predict_split", fake_predict_split)
    infer = InferConfig(precision="auto", dedup_iou=0.5, merge_iou=0.1)
    scores = bench.score(tmp_path / "last.pt", tmp_path / "data", "valid", infer)
    assert scores == {"AP": round(expected["AP"], 4), "AP50": round(expected["AP50"], 4)}
    assert calls == [(tmp_path / "data", "valid", tmp_path / "last.pt", infer)]


def test_table_has_a_row_per_step_and_a_dash_where_a_run_has_none():
    curves = {
        "r1": [{"step": 250, "AP": 0.1, "AP50": 0.2}, {"step": 500, "AP": 0.3, "AP50": 0.45678}],
        "r2": [{"step": 500, "AP": 0.5, "AP50": 0.8}],
    }
    assert bench.table(curves).splitlines() == [
        "| step | r1 | r2 |",
        "|---|---|---|",
        "| 250 | 0.100 / 0.200 | – |",
        "| 500 | 0.300 / 0.457 | 0.500 / 0.800 |",
    ]
