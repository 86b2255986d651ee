"""`vistr train` under hostile conditions: signals, broken data, stale temp files, wrong inputs.

Each case ends in one line (no traceback), a meaningful exit status, and a run folder that is
either resumable or gone."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest
from test_trainer import micro_preset  # tests/ is on sys.path under pytest
from typer.testing import CliRunner

import vistr_core.engine.trainer as trainer_mod
import vistr_core.presets
from vistr_cli.app import app
from vistr_core.checkpoint_io import read_checkpoint
from vistr_core.data.synthetic import generate_synthetic


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    root = tmp_path_factory.mktemp("synth") / "data"
    generate_synthetic(root, videos=3, valid_videos=1, frames=6, size=(48, 64), seed=5)
    return root


@pytest.fixture
def micro(monkeypatch):
    monkeypatch.setitem(vistr_core.presets.PRESETS, "micro", micro_preset())


def command(data: Path, out: Path, *extra: str, max_iters: int = 4) -> list[str]:
    return ["train", "--data", str(data), "--preset", "micro", "--out", str(out), "--max-iters", str(max_iters),
            "--workers", "0", "--device", "cpu", "--log-every", "1", "--lr-backbone", "0", "--quiet", *extra]  # fmt: skip


def one_error_line(result) -> str:
    lines = [ln for ln in result.output.splitlines() if ln.strip()]
    assert "Traceback" not in result.output
    assert len(lines) == 1, result.output
    assert lines[0].startswith("error: ")
    return lines[0]


@pytest.mark.parametrize(("sig", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_a_signal_saves_last_pt_and_exits_non_zero(dataset, tmp_path, micro, monkeypatch, sig, code):
    after_step = trainer_mod._after_step

    def signal_at_two(run, meter):
        after_step(run, meter)
        if run.position.step == 2:
            os.kill(os.getpid(), sig)

    monkeypatch.setattr(trainer_mod, "_after_step", signal_at_two)
    out = tmp_path / "run"
    result = CliRunner().invoke(app, command(dataset, out))
    assert result.exit_code == code, result.output
    assert read_checkpoint(out / "last.pt")["step"] == 2
    assert "--resume" in result.output
    monkeypatch.setattr(trainer_mod, "_after_step", after_step)
    resumed = CliRunner().invoke(app, command(dataset, out, "--resume"))
    assert resumed.exit_code == 0, resumed.output
    assert read_checkpoint(out / "last.pt")["step"] == 4
