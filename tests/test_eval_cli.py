"""`vistr eval` from the command line (typer CliRunner)."""

from __future__ import annotations

import csv
import json
import shutil
import sys
import types
from pathlib import Path

import pytest
from typer.testing import CliRunner

from vistr_cli.app import app
from vistr_core.config import InferConfig
from vistr_core.eval import PER_VIDEO_COLUMNS, STAT_NAMES

SEED101 = Path(__file__).parent / "fixtures" / "ytvis-eval" / "seed101"


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


@pytest.fixture
def files(tmp_path: Path) -> tuple[Path, Path]:
    gt, res = tmp_path / "gt.json", tmp_path / "results.json"
    shutil.copy(SEED101 / "gt.json", gt)
    shutil.copy(SEED101 / "results.json", res)
    return gt, res


def _error_line(result) -> str:
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1, result.output
    assert lines[0].startswith("error:")
    return lines[0]


def test_table_json_and_per_video_csv(runner, files, tmp_path):
    gt, res = files
    out, table = tmp_path / "out" / "metrics.json", tmp_path / "out" / "videos.csv"
    result = runner.invoke(
        app, ["eval", "--gt", str(gt), "--results", str(res), "--json", str(out), "--per-video", str(table)]
    )
    assert result.exit_code == 0, result.output
    for name in STAT_NAMES:
        assert name in result.output
    assert "0.1398" in result.output and "per-category AP" in result.output and "cat6" in result.output
    metrics = json.loads(out.read_text())
    expected = json.loads((SEED101 / "expected.json").read_text())
    assert list(metrics)[:12] == list(STAT_NAMES)
    for name in STAT_NAMES:
        assert metrics[name] == pytest.approx(expected[name], abs=1e-9)
    assert set(metrics["per_category"]) == {"1", "2", "3", "4", "5", "6"}
    assert set(metrics["per_category"]["1"]) == {"name", "AP"}
    with table.open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert tuple(rows[0]) == PER_VIDEO_COLUMNS
    assert {(int(r["video_id"]), int(r["category_id"])) for r in rows} >= {(305, 1), (310, 3)}
    assert sum(int(r["num_gt"]) + int(r["num_crowd"]) for r in rows) == 20


def test_refuses_to_overwrite_without_force(runner, files, tmp_path):
    gt, res = files
    out = tmp_path / "metrics.json"
    out.write_text("mine")
    result = runner.invoke(app, ["eval", "--gt", str(gt), "--results", str(res), "--json", str(out)])
    assert result.exit_code != 0
    assert "--force" in _error_line(result)
    assert out.read_text() == "mine"
    result = runner.invoke(
        app, ["eval", "--gt", str(gt), "--results", str(res), "--json", str(out), "--force"]
    )
    assert result.exit_code == 0, result.output
    assert "AP" in json.loads(out.read_text())


def _break_frame_count(res: Path) -> None:
    data = json.loads(res.read_text())
    data[3]["segmentations"].append(None)
    res.write_text(json.dumps(data))


def _unknown_video(res: Path) -> None:
    data = json.loads(res.read_text())
    data[0]["video_id"] = 4242
    res.write_text(json.dumps(data))


def _malformed(res: Path) -> None:
    res.write_text('[{"video_id": 301,\n "score": ,}]')


@pytest.mark.parametrize(
    ("breaker", "needle"),
    [(_break_frame_count, "video 302"), (_unknown_video, "video id 4242"), (_malformed, "results.json:2:")],
)
def test_bad_results_one_line_nonzero_nothing_written(runner, files, tmp_path, breaker, needle):
    gt, res = files
    breaker(res)
    out, table = tmp_path / "m.json", tmp_path / "v.csv"
    result = runner.invoke(
        app, ["eval", "--gt", str(gt), "--results", str(res), "--json", str(out), "--per-video", str(table)]
    )
    assert result.exit_code == 1
    assert needle in _error_line(result)
    assert not out.exists() and not table.exists()
    assert not list(tmp_path.glob(".*tmp"))


@pytest.mark.parametrize(
    "args",
    [
        [],
        ["--gt", "gt.json"],
        ["--results", "r.json"],
        ["--gt", "gt.json", "--results", "r.json", "--data", "d"],
        ["--gt", "gt.json", "--results", "r.json", "--device", "cpu"],
        ["--gt", "gt.json", "--results", "r.json", "--dedup-iou", "0.5"],
        ["--gt", "gt.json", "--results", "r.json", "--link-iou", "0.4"],
        ["--gt", "gt.json", "--results", "r.json", "--slot-bonus", "0"],
        ["--gt", "gt.json", "--results", "r.json", "--coverage-power", "0"],
        ["--data", "d"],
        ["--checkpoint", "c.pt", "--split", "valid"],
    ],
)
def test_modes_mixed_or_incomplete(runner, args):
    result = runner.invoke(app, ["eval", *args])
    assert result.exit_code == 1
    assert "--" in _error_line(result)


def _fake_split_module(monkeypatch, calls: list, payload):
    module = types.ModuleType("vistr_core.inference.split")
    monkeypatch.delenv("VISTR_THREADS", raising=False)

    def predict_split(
        data_root, split, checkpoint, *, device="auto", infer=None, progress=None, threads=None
    ):
        calls.append(
            {
                "data_root": data_root,
                "split": split,
                "checkpoint": checkpoint,
                "device": device,
                "infer": infer,
                "threads": threads,
            }
        )
        assert callable(progress)
        return payload

    module.predict_split = predict_split
    monkeypatch.setitem(sys.modules, "vistr_core.inference.split", module)


def test_checkpoint_mode_predicts_writes_results_and_scores(runner, monkeypatch, tmp_path):
    gt = json.loads((SEED101 / "gt.json").read_text())
    preds = json.loads((SEED101 / "results.json").read_text())
    calls: list = []
    _fake_split_module(monkeypatch, calls, (preds, gt))
    ckpt = tmp_path / "run" / "last.pt"
    ckpt.parent.mkdir()
    ckpt.write_bytes(b"x")
    out = tmp_path / "scores" / "metrics.json"
    result = runner.invoke(
        app,
        [
            "eval",
            "--data",
            str(tmp_path / "ytvis"),
            "--split",
            "train",
            "--checkpoint",
            str(ckpt),
            "--device",
            "cpu",
            "--json",
            str(out),
        ],
    )
    assert result.exit_code == 0, result.output
    assert calls == [
        {
            "data_root": tmp_path / "ytvis",
            "split": "train",
            "checkpoint": ckpt,
            "device": "cpu",
            "infer": InferConfig(precision="auto"),  # the CLI's default
            "threads": "auto",
        }
    ]
    assert json.loads((out.parent / "results.json").read_text()) == preds
    metrics = json.loads(out.read_text())
    expected = json.loads((SEED101 / "expected.json").read_text())
    assert metrics["AP"] == pytest.approx(expected["AP"], abs=1e-9)
    assert "AR100" in result.output


def test_checkpoint_mode_defaults_beside_the_checkpoint_and_refuses_overwrite(runner, monkeypatch, tmp_path):
    gt = json.loads((SEED101 / "gt.json").read_text())
    preds = json.loads((SEED101 / "results.json").read_text())
    calls: list = []
    _fake_split_module(monkeypatch, calls, (preds, gt))
    ckpt = tmp_path / "run" / "last.pt"
    ckpt.parent.mkdir()
    ckpt.write_bytes(b"x")
    args = ["eval", "--data", str(tmp_path), "--checkpoint", str(ckpt), "--amp"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert calls[0]["split"] == "valid" and calls[0]["infer"].precision == "auto"  # --amp's meaning
    folder = tmp_path / "run" / "eval_valid"
    assert (folder / "results.json").exists() and (folder / "metrics.json").exists()
    again = runner.invoke(app, args)
    assert again.exit_code == 1 and "--force" in _error_line(again)
    assert len(calls) == 1  # refused before running the model


def test_checkpoint_mode_refuses_a_metrics_file_named_results_json(runner, monkeypatch, tmp_path):
    calls: list = []
    _fake_split_module(monkeypatch, calls, ([], {}))
    result = runner.invoke(
        app,
        [
            "eval",
            "--data",
            str(tmp_path),
            "--checkpoint",
            str(tmp_path / "c.pt"),
            "--json",
            str(tmp_path / "results.json"),
        ],
    )
    assert result.exit_code == 1 and "metrics.json" in _error_line(result)
    assert calls == []


def test_help_lists_both_modes(runner):
    result = runner.invoke(app, ["eval", "--help"])
    assert result.exit_code == 0
    for option in (
        "--gt",
        "--results",
        "--data",
        "--split",
        "--checkpoint",
        "--json",
        "--per-video",
        "--force",
    ):
        assert option in result.output


def test_checkpoint_mode_end_to_end_with_a_tiny_random_model(runner, tmp_path):
    """The real predict_split and loader: a random-weight `tiny` checkpoint on a 2-video split."""
    import cv2
    import numpy as np
    from pycocotools import mask as mask_utils

    from vistr_core.categories import CategoryMap
    from vistr_core.checkpoint_io import write_checkpoint
    from vistr_core.eval import evaluate_ytvis
    from vistr_core.model import build_vistr
    from vistr_core.model.loading import model_checkpoint_payload
    from vistr_core.presets import get_preset

    h, w, rng = 48, 64, np.random.default_rng(0)
    videos, annotations = [], []
    for vid, length in ((1, 4), (2, 3)):
        folder = tmp_path / "ytvis" / "valid" / "JPEGImages" / f"v{vid}"
        folder.mkdir(parents=True)
        names, segs = [], []
        for t in range(length):
            frame = rng.integers(0, 60, (h, w, 3), dtype=np.uint8)
            mask = np.zeros((h, w), dtype=np.uint8)
            mask[10 + t : 30 + t, 15:40] = 1
            frame[mask.astype(bool)] = (200, 40, 40)
            cv2.imwrite(str(folder / f"{t:05d}.png"), frame)
            names.append(f"v{vid}/{t:05d}.png")
            rle = mask_utils.encode(np.asfortranarray(mask))
            segs.append({"size": [h, w], "counts": rle["counts"].decode()})
        videos.append({"id": vid, "height": h, "width": w, "length": length, "file_names": names})
        annotations.append(
            {
                "id": vid,
                "video_id": vid,
                "category_id": 1,
                "iscrowd": 0,
                "segmentations": segs,
                "areas": [500.0] * length,
            }
        )
    gt = {
        "videos": videos,
        "annotations": annotations,
        "categories": [{"id": i, "name": f"class_{i}"} for i in (1, 2)],
    }
    (tmp_path / "ytvis" / "valid" / "instances.json").write_text(json.dumps(gt))

    preset = get_preset("tiny")
    payload = model_checkpoint_payload(
        build_vistr(preset.model), data_config=preset.data, categories=CategoryMap.generic(1), preset="tiny"
    )
    ckpt = tmp_path / "run" / "tiny.pt"
    write_checkpoint(payload, ckpt)
    out = tmp_path / "scores" / "metrics.json"
    result = runner.invoke(
        app,
        [
            "eval",
            "--data",
            str(tmp_path / "ytvis"),
            "--checkpoint",
            str(ckpt),
            "--device",
            "cpu",
            "--json",
            str(out),
        ],
    )
    assert result.exit_code == 0, result.output
    predictions = json.loads((out.parent / "results.json").read_text())
    metrics = json.loads(out.read_text())
    rescored = evaluate_ytvis(gt, predictions).to_json()
    assert metrics == rescored
    assert all(-1.0 <= metrics[name] <= 1.0 for name in STAT_NAMES)


def test_checkpoint_mode_passes_the_linking_options(runner, monkeypatch, tmp_path):
    gt = json.loads((SEED101 / "gt.json").read_text())
    preds = json.loads((SEED101 / "results.json").read_text())
    calls: list = []
    _fake_split_module(monkeypatch, calls, (preds, gt))
    ckpt = tmp_path / "last.pt"
    ckpt.write_bytes(b"x")
    args = ["eval", "--data", str(tmp_path), "--checkpoint", str(ckpt), "--json", str(tmp_path / "m.json")]
    options = ["--link-iou", "0.4", "--slot-bonus", "0.1", "--dedup-iou", "0.5", "--coverage-power", "0"]
    result = runner.invoke(app, [*args, *options, "--precision", "fp32"])
    assert result.exit_code == 0, result.output
    assert calls[0]["infer"] == InferConfig(
        precision="fp32", link_iou=0.4, slot_bonus=0.1, dedup_iou=0.5, coverage_power=0.0
    )
    bad = runner.invoke(app, [*args, "--dedup-iou", "1.5", "--force"])
    assert bad.exit_code != 0 and "--dedup-iou must be in (0, 1)" in bad.output
