"""`vistr eval --data --checkpoint` refuses a split it cannot score before predicting anything."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from vistr_cli.app import app
from vistr_core.categories import CategoryMap
from vistr_core.checkpoint_io import write_checkpoint
from vistr_core.data.synthetic import generate_synthetic
from vistr_core.errors import DatasetError
from vistr_core.inference import split as split_module
from vistr_core.inference.split import check_scorable
from vistr_core.model import build_vistr
from vistr_core.model.loading import model_checkpoint_payload
from vistr_core.presets import get_preset

GT = {
    "categories": [{"id": 1, "name": "car"}, {"id": 2, "name": "person"}],
    "annotations": [{"id": 1, "video_id": 1, "category_id": 2, "segmentations": []}],
}


def test_check_scorable_accepts_a_fitting_split_and_generic_names():
    check_scorable(CategoryMap((1, 2), ("car", "Person")), GT, Path("gt.json"), None)
    check_scorable(CategoryMap.generic(2), GT, Path("gt.json"), None)  # names unknown: ids decide
    check_scorable(CategoryMap((2, 9), ("person", "bus")), GT, Path("gt.json"), None)  # unused ids may differ


@pytest.mark.parametrize(
    ("categories", "message"),
    [
        (
            CategoryMap((1, 3), ("car", "person")),
            "gt.json does not fit c.pt: category 2 'person': the checkpoint has no such id "
            "(1 unknown, 0 renamed of 1); evaluate the checkpoint trained on this dataset",
        ),
        (
            CategoryMap((1, 2), ("car", "dog")),
            "gt.json does not fit c.pt: category 2 'person': the checkpoint calls it 'dog' "
            "(0 unknown, 1 renamed of 1); evaluate the checkpoint trained on this dataset",
        ),
    ],
)
def test_check_scorable_refuses_other_categories(categories, message):
    with pytest.raises(DatasetError) as info:
        check_scorable(categories, GT, Path("gt.json"), Path("c.pt"))
    assert str(info.value) == message


@pytest.mark.parametrize("annotations", [None, []])
def test_check_scorable_refuses_a_split_without_ground_truth(annotations):
    with pytest.raises(
        DatasetError, match=r"^gt.json has no annotations, so there is nothing to score against"
    ):
        check_scorable(CategoryMap.generic(2), {**GT, "annotations": annotations}, Path("gt.json"), None)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    root = tmp_path_factory.mktemp("synth") / "data"
    generate_synthetic(root, videos=1, valid_videos=1, frames=4, size=(48, 64), seed=2)
    return root


def _checkpoint(path: Path, categories: CategoryMap) -> Path:
    preset = get_preset("tiny")
    model = build_vistr(dataclasses.replace(preset.model, num_classes=categories.num_classes))
    write_checkpoint(model_checkpoint_payload(model, data_config=preset.data, categories=categories), path)
    return path


@pytest.mark.parametrize("case", ["other-categories", "no-annotations"])
def test_eval_refuses_before_predicting_and_writes_nothing(dataset, tmp_path, monkeypatch, case):
    gt = json.loads((dataset / "valid" / "instances.json").read_text())
    if case == "no-annotations":
        data = tmp_path / "data"
        (data / "valid").mkdir(parents=True)
        (data / "valid" / "JPEGImages").symlink_to(dataset / "valid" / "JPEGImages")
        (data / "valid" / "instances.json").write_text(json.dumps({**gt, "annotations": None}))
        categories = CategoryMap.from_categories(gt["categories"])
    else:
        data = dataset
        categories = CategoryMap((101, 102), ("zebra", "kite"))
    ckpt = _checkpoint(tmp_path / "run" / "c.pt", categories)
    monkeypatch.setattr(split_module, "predict_video", lambda *a: pytest.fail("predicted"))
    result = CliRunner().invoke(
        app, ["eval", "--data", str(data), "--split", "valid", "--checkpoint", str(ckpt), "--device", "cpu"]
    )
    assert result.exit_code == 1
    lines = [ln for ln in result.output.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in result.output
    assert ("does not fit" if case == "other-categories" else "has no annotations") in lines[0]
    assert sorted(p.name for p in (tmp_path / "run").iterdir()) == ["c.pt"]  # no eval_valid/


def test_eval_refuses_a_checkpoint_that_would_run_code(dataset, tmp_path):
    import os

    class RunsShell:
        def __reduce__(self):
            return (os.system, (f"touch {tmp_path / 'ran'}",))

    ckpt = tmp_path / "evil.pth"
    torch.save({"model": {}, "args": RunsShell()}, ckpt, _use_new_zipfile_serialization=False)
    result = CliRunner().invoke(
        app, ["eval", "--data", str(dataset), "--checkpoint", str(ckpt), "--device", "cpu"]
    )
    assert result.exit_code == 1 and not (tmp_path / "ran").exists()
    lines = [ln for ln in result.output.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith(
        f"error: checkpoint {ckpt} contains pickled Python objects"
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["evil.pth"]
