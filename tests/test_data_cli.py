"""`vistr data synth | check | split | convert` end to end through the Typer app."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from vistr_cli.app import app

runner = CliRunner()
SMALL = ["--videos", "3", "--valid-videos", "1", "--frames", "4", "--size", "32x40"]


def test_synth_check_split_convert(tmp_path):
    ds = tmp_path / "ds"
    result = runner.invoke(app, ["data", "synth", "--out", str(ds), *SMALL, "--seed", "4"])
    assert result.exit_code == 0, result.output
    assert "train: 3 videos" in result.stdout and "valid: 1 videos" in result.stdout
    assert (ds / "train" / "instances.json").is_file() and (ds / "valid" / "JPEGImages").is_dir()

    again = runner.invoke(app, ["data", "synth", "--out", str(ds), *SMALL])
    assert again.exit_code == 1 and "--force" in again.output

    for split in ("train", "valid"):
        result = runner.invoke(app, ["data", "check", str(ds), "--split", split])
        assert result.exit_code == 0 and result.stdout.startswith("OK: ")

    result = runner.invoke(app, ["data", "split", str(ds), "--valid-fraction", "0.34", "--seed", "1"])
    assert result.exit_code == 0 and "--split split_valid" in result.stdout
    result = runner.invoke(app, ["data", "check", str(ds), "--split", "split_valid"])
    assert result.exit_code == 0 and result.stdout.startswith("OK: 1 videos")

    result = runner.invoke(
        app, ["data", "convert", str(ds), str(tmp_path / "mots"), "--to", "mots", "--mots", "png"]
    )
    assert result.exit_code == 0, result.output
    assert (tmp_path / "mots" / "instances").is_dir() and not (tmp_path / "mots" / "instances_txt").exists()
    result = runner.invoke(
        app, ["data", "convert", str(tmp_path / "mots"), str(tmp_path / "back"), "--to", "ytvis"]
    )
    assert result.exit_code == 0, result.output
    original = json.loads((ds / "train" / "instances.json").read_text())
    back = json.loads((tmp_path / "back" / "train" / "instances.json").read_text())
    assert back["annotations"] == original["annotations"] and back["videos"] == original["videos"]


def test_check_without_ground_truth_and_with_explicit_files(tmp_path):
    ds = tmp_path / "ds"
    assert runner.invoke(app, ["data", "synth", "--out", str(ds), *SMALL]).exit_code == 0
    data = json.loads((ds / "valid" / "instances.json").read_text())
    data["annotations"] = None
    (tmp_path / "test.json").write_text(json.dumps(data))
    result = runner.invoke(
        app,
        [
            "data",
            "check",
            "--annotations",
            str(tmp_path / "test.json"),
            "--images",
            str(ds / "valid" / "JPEGImages"),
        ],
    )
    assert result.exit_code == 0 and "no annotations" in result.stdout
    result = runner.invoke(app, ["data", "check", "--annotations", str(tmp_path / "test.json")])
    assert result.exit_code == 1  # frames are not beside the file


def test_bad_options_are_one_line_errors(tmp_path):
    result = runner.invoke(app, ["data", "synth", "--out", str(tmp_path / "x"), "--size", "big"])
    assert result.exit_code == 1 and "HxW" in result.output and "Traceback" not in result.output
    result = runner.invoke(app, ["data", "check", str(tmp_path / "nowhere")])
    assert result.exit_code == 1 and "does not exist" in result.output
    result = runner.invoke(
        app, ["data", "convert", str(tmp_path / "nowhere"), str(tmp_path / "y"), "--to", "mots"]
    )
    assert result.exit_code == 1 and not (tmp_path / "y").exists()
