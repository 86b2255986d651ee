"""Malformed datasets: the right message (video and frame named), a non-zero exit, nothing written."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from vistr_cli.app import app
from vistr_core.data.check import check_dataset
from vistr_core.data.synthetic import generate_synthetic
from vistr_core.data.ytvis import load_ytvis
from vistr_core.errors import DatasetError

runner = CliRunner()


def _corrupt_missing_frame(data: dict, root: Path) -> None:
    (root / "train" / "JPEGImages" / data["videos"][1]["file_names"][2]).unlink()


def _corrupt_rle_size(data: dict, root: Path) -> None:
    ann = data["annotations"][0]
    t = next(t for t, s in enumerate(ann["segmentations"]) if s)
    ann["segmentations"][t]["size"] = [10, 10]


def _corrupt_length(data: dict, root: Path) -> None:
    data["annotations"][0]["segmentations"].pop()


def _corrupt_video_length(data: dict, root: Path) -> None:
    data["videos"][0]["length"] = 99


def _corrupt_category(data: dict, root: Path) -> None:
    data["annotations"][0]["category_id"] = 77


def _dup_video(data: dict, root: Path) -> None:
    data["videos"][1]["id"] = data["videos"][0]["id"]


def _dup_annotation(data: dict, root: Path) -> None:
    data["annotations"][1]["id"] = data["annotations"][0]["id"]


def _dup_category(data: dict, root: Path) -> None:
    data["categories"][1]["id"] = data["categories"][0]["id"]


CASES = {
    "missing_frame": (
        _corrupt_missing_frame,
        r"video 2 \(train_00001\) frame 2 \(train_00001/00002.jpg\): missing frame file",
    ),
    "rle_size": (
        _corrupt_rle_size,
        r"video 1 \(train_00000\) frame \d+ .*RLE size 10x10 \(HxW\) differs from the video size 32x40",
    ),
    "per_frame_lists": (
        _corrupt_length,
        r"annotation 1 \(video 1 \(train_00000\)\): 3 segmentations for a 4-frame video",
    ),
    "video_length": (_corrupt_video_length, r"video 1 \(train_00000\) has length 99 but 4 file_names"),
    "unknown_category": (_corrupt_category, r"unknown category id 77 \(known: 1, 2, 3\)"),
    "duplicate_video": (_dup_video, r"duplicate video id 1"),
    "duplicate_annotation": (_dup_annotation, r"duplicate annotation id 1"),
    "duplicate_category": (_dup_category, r"duplicate category id 1"),
}


@pytest.fixture
def dataset(tmp_path) -> Path:
    root = tmp_path / "ds"
    generate_synthetic(root, videos=3, valid_videos=1, frames=4, size=(32, 40), seed=2)
    return root


def _ann_file(root: Path) -> Path:
    return root / "train" / "instances.json"


def _apply(root: Path, corrupt) -> None:
    data = json.loads(_ann_file(root).read_text())
    corrupt(data, root)
    _ann_file(root).write_text(json.dumps(data))


def _snapshot(root: Path) -> set[str]:
    return {p.relative_to(root).as_posix() for p in root.rglob("*")}


def test_clean_dataset_is_ok(dataset):
    report = check_dataset(dataset, "train")
    assert report.ok and report.num_videos == 3 and report.num_categories == 3
    result = runner.invoke(app, ["data", "check", str(dataset)])
    assert result.exit_code == 0
    assert result.output.startswith(f"OK: 3 videos, {report.num_instances} instances, 3 categories")


@pytest.mark.parametrize("case", sorted(CASES))
def test_malformed_dataset(dataset, tmp_path, case):
    corrupt, pattern = CASES[case]
    _apply(dataset, corrupt)
    report = check_dataset(dataset, "train")
    assert any(re.search(pattern, p.message) for p in report.problems), report.problems
    assert all(p.message.startswith("instances.json: ") for p in report.problems)

    result = runner.invoke(app, ["data", "check", str(dataset)])
    assert result.exit_code == 1
    assert re.search(pattern, result.stdout)

    with pytest.raises(DatasetError, match="vistr data check"):
        load_ytvis(dataset, "train")

    before = _snapshot(dataset)
    for args in (
        ["data", "split", str(dataset), "--valid-fraction", "0.5"],
        ["data", "convert", str(dataset), str(tmp_path / "out"), "--to", "mots"],
    ):
        result = runner.invoke(app, args)
        assert result.exit_code == 1, args
        assert "Traceback" not in result.output
    assert _snapshot(dataset) == before and not (tmp_path / "out").exists()
    assert not any(p.name.startswith(".out") for p in tmp_path.iterdir())


def test_malformed_json_names_line_and_column(dataset, tmp_path):
    _ann_file(dataset).write_text('{"videos": [\n  {"id": 1,,}\n]}')
    with pytest.raises(DatasetError, match=r"not valid JSON: .* at line 2 column 12"):
        check_dataset(dataset, "train")
    result = runner.invoke(app, ["data", "check", str(dataset)])
    assert result.exit_code == 1 and "line 2 column 12" in result.output
    result = runner.invoke(app, ["data", "convert", str(dataset), str(tmp_path / "o"), "--to", "davis"])
    assert result.exit_code == 1 and not (tmp_path / "o").exists()


def test_structural_problems(dataset):
    _ann_file(dataset).write_text(json.dumps([1, 2]))
    assert "the top level is a list" in check_dataset(dataset, "train").problems[0].message
    _ann_file(dataset).write_text(json.dumps({"videos": [], "annotations": []}))
    assert "`categories` is missing" in check_dataset(dataset, "train").problems[0].message


def test_missing_video_folder_is_summarized(dataset):
    import shutil

    shutil.rmtree(dataset / "train" / "JPEGImages" / "train_00002")
    messages = [p.message for p in check_dataset(dataset, "train").problems]
    assert len(messages) == 4  # 3 listed + "1 more missing frame files"
    assert "video 3 (train_00002): 1 more missing frame files" in messages[-1]
    assert check_dataset(dataset, "train", check_files=False).ok
