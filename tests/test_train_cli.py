"""`vistr train` end to end on a tiny synthetic set, and evaluation during training."""

from __future__ import annotations

import json

import pytest
from test_trainer import micro_preset  # tests/ is on sys.path under pytest
from typer.testing import CliRunner

import vistr_core.presets
from vistr_cli.app import app
from vistr_core import train
from vistr_core.data.synthetic import generate_synthetic
from vistr_core.errors import ConfigError


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    root = tmp_path_factory.mktemp("synth") / "data"
    generate_synthetic(root, videos=3, valid_videos=1, frames=6, size=(48, 64), seed=5)
    return root


@pytest.fixture
def micro(monkeypatch):
    """Register the micro preset so the CLI can select it by name."""
    monkeypatch.setitem(vistr_core.presets.PRESETS, "micro", micro_preset())


def test_cli_trains_and_refuses_to_overwrite(dataset, tmp_path, micro):
    out = tmp_path / "run"

    def command(max_iters: int, *extra: str) -> list[str]:
        return ["train", "--data", str(dataset), "--preset", "micro", "--out", str(out), "--max-iters",
                str(max_iters), "--workers", "0", "--device", "cpu", "--log-every", "1", "--lr-backbone", "0", "--quiet", *extra]  # fmt: skip

    result = CliRunner().invoke(app, command(2))
    assert result.exit_code == 0, result.output
    assert "precision: fp32 (--amp not set)" in result.output
    assert (out / "last.pt").is_file() and (out / "config.json").is_file()
    lines = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [line["step"] for line in lines] == [1, 2]
    assert {
        "loss",
        "loss_ce",
        "loss_bbox",
        "loss_giou",
        "loss_mask",
        "loss_dice",
        "lr",
        "it_s",
        "data_s",
    } <= set(lines[0])
    assert str(out / "last.pt") in result.stdout

    again = CliRunner().invoke(app, command(2))
    assert again.exit_code == 1
    assert "--resume" in again.output and "Traceback" not in again.output

    changed = CliRunner().invoke(app, command(3, "--resume", "--copy-paste", "0.5"))
    assert changed.exit_code == 1 and "cannot change copy_paste" in changed.output

    resumed = CliRunner().invoke(app, command(3, "--resume"))
    assert resumed.exit_code == 0, resumed.output
    assert json.loads((out / "metrics.jsonl").read_text().splitlines()[-1])["step"] == 3


def test_cli_reports_user_errors_in_one_line(dataset, tmp_path, micro):
    result = CliRunner().invoke(
        app, ["train", "--data", str(tmp_path / "nowhere"), "--preset", "micro", "--out", str(tmp_path / "r"),
              "--device", "cpu", "--quiet"],
    )  # fmt: skip
    assert result.exit_code == 1 and "Traceback" not in result.output
    bad = CliRunner().invoke(
        app, ["train", "--data", str(dataset), "--preset", "nope", "--out", str(tmp_path / "r2"), "--quiet"]
    )
    assert bad.exit_code == 1 and "unknown preset" in bad.output
    paste = CliRunner().invoke(
        app, ["train", "--data", str(dataset), "--preset", "micro", "--out", str(tmp_path / "r3"), "--copy-paste",
              "1.5", "--quiet"],
    )  # fmt: skip
    assert paste.exit_code == 2 and "--copy-paste" in paste.output and not (tmp_path / "r3").exists()


def test_periodic_evaluation(dataset, tmp_path):
    summary = train(
        dataset, preset=micro_preset(), out_dir=tmp_path / "r", device="cpu",
        overrides={"max_iters": 1, "eval_every": 1, "workers": 0, "lr_backbone": 0.0},
    )  # fmt: skip
    stats = summary.evaluations[1]
    assert set(stats) >= {"AP", "AP50", "AR10"} and all(-1 <= v <= 1 for v in stats.values())
    written = json.loads((tmp_path / "r" / "eval_000001.json").read_text())
    assert written["step"] == 1 and written["AP"] == stats["AP"]


def test_periodic_evaluation_without_an_evaluator_is_refused_before_any_write(dataset, tmp_path):
    """The training engine does not import inference: eval_every needs the evaluator vistr_core.train
    passes (or one of the caller's own)."""
    from vistr_core.engine.trainer import train as engine_train

    with pytest.raises(ConfigError, match="^eval_every needs an evaluator: train with vistr_core.train"):
        engine_train(
            dataset, preset=micro_preset(), out_dir=tmp_path / "r", device="cpu",
            overrides={"max_iters": 1, "eval_every": 1, "workers": 0},
        )  # fmt: skip
    assert not (tmp_path / "r").exists()
