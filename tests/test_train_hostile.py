"""`vistr train` under hostile conditions: signals, broken data, stale temp files, wrong inputs.

Each case ends in one line (no traceback), a meaningful exit status, and a run folder that is
either resumable or gone."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest
import torch
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


@pytest.fixture
def corrupt_dataset(dataset, tmp_path):
    """The dataset with one training frame cut to 300 bytes; returns (root, the broken frame)."""
    import shutil

    root = tmp_path / "data"
    shutil.copytree(dataset, root)
    frame = sorted((root / "train" / "JPEGImages").rglob("*.jpg"))[0]
    frame.write_bytes(frame.read_bytes()[:300])
    return root, frame


@pytest.mark.parametrize("workers", ["0", "1"])
def test_a_corrupt_frame_is_one_line_and_leaves_no_run_folder(corrupt_dataset, tmp_path, micro, workers):
    root, frame = corrupt_dataset
    out = tmp_path / "run"
    args = command(root, out, max_iters=6)
    args[args.index("--workers") + 1] = workers
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 1
    line = one_error_line(result)
    assert str(frame) in line and "cannot be decoded" in line and "vistr data check" in line
    assert not out.exists()  # neither "drop --resume" nor "pass --resume": a clean slate


def test_a_failed_run_in_an_existing_empty_folder_keeps_the_folder(corrupt_dataset, tmp_path, micro):
    root, _ = corrupt_dataset
    out = tmp_path / "mine"
    out.mkdir()
    result = CliRunner().invoke(app, command(root, out))
    assert result.exit_code == 1
    assert out.is_dir() and list(out.iterdir()) == []


def test_stale_temp_files_are_removed_by_the_next_run(dataset, tmp_path, micro):
    out = tmp_path / "run"
    assert CliRunner().invoke(app, command(dataset, out, max_iters=2)).exit_code == 0
    stale = [out / ".last.pt.k3j2h1.tmp", out / ".ckpt_000002.pt.x8y7z6.tmp", out / ".config.json.a1b2c3.tmp"]
    for path in stale:
        path.write_bytes(b"\0" * 1000)
    theirs = [out / ".notes.tmp", out / ".last.pt.bak", out / "last.pt.tmp"]
    for path in theirs:
        path.write_text("the user's")
    result = CliRunner().invoke(app, command(dataset, out, "--resume", max_iters=3))
    assert result.exit_code == 0, result.output
    assert not any(p.exists() for p in stale)
    assert all(p.read_text() == "the user's" for p in theirs)


def _copy_with(dataset: Path, tmp_path: Path, change) -> Path:
    import json
    import shutil

    root = tmp_path / "data"
    shutil.copytree(dataset, root)
    path = root / "train" / "instances.json"
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data))
    return root


def test_training_on_zero_annotations_is_refused(dataset, tmp_path, micro):
    root = _copy_with(dataset, tmp_path, lambda d: d.update(annotations=[]))
    out = tmp_path / "run"
    result = CliRunner().invoke(app, command(root, out))
    assert result.exit_code == 1
    assert one_error_line(result) == (
        f"error: {root / 'train' / 'instances.json'} has no annotated objects (its annotations list is empty); "
        "training needs at least one; check the file with `vistr data check`"
    )
    assert not out.exists()


def test_resume_from_a_run_of_other_categories_is_refused(dataset, tmp_path, micro):
    first = tmp_path / "first"
    assert CliRunner().invoke(app, command(dataset, first, max_iters=1)).exit_code == 0

    def rename(data):
        data["categories"][0]["name"] = "renamed"

    other = _copy_with(dataset, tmp_path, rename)
    out = tmp_path / "second"
    result = CliRunner().invoke(app, command(other, out, "--resume-from", str(first / "last.pt")))
    assert result.exit_code == 1
    line = one_error_line(result)
    assert line.startswith(
        f"error: cannot resume on {other} (train): its categories differ from the checkpoint's ("
    )
    assert "vs 'renamed'" in line and "--init-from" in line
    assert not out.exists()


def test_init_from_a_checkpoint_that_would_run_code(dataset, tmp_path, micro):
    class RunsShell:
        def __reduce__(self):
            return (os.system, (f"touch {tmp_path / 'ran'}",))

    evil = tmp_path / "evil.pth"
    torch.save(
        {"model": {"w": torch.zeros(1)}, "args": [RunsShell()]}, evil, _use_new_zipfile_serialization=False
    )
    out = tmp_path / "run"
    result = CliRunner().invoke(app, command(dataset, out, "--init-from", str(evil)))
    assert result.exit_code == 1 and not (tmp_path / "ran").exists()
    assert one_error_line(result).startswith(f"error: checkpoint {evil} contains pickled Python objects")
    assert not out.exists()
