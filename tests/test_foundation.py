"""Configs, presets, category maps, atomic writes, checkpoint safety, device selection."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from vistr_cli.app import app
from vistr_core.atomic import atomic_directory, atomic_write_json, refuse_overwrite
from vistr_core.categories import CategoryMap
from vistr_core.checkpoint_io import read_checkpoint, write_checkpoint
from vistr_core.config import DataConfig, ModelConfig, TrainConfig, config_from_dict, config_to_dict
from vistr_core.engine import device as device_mod
from vistr_core.errors import CheckpointError, ConfigError, DeviceError, OutputExistsError
from vistr_core.ops.masks import decode_segmentation, encode_mask, rle_area, to_compressed_rle
from vistr_core.presets import PRESETS, get_preset


@pytest.mark.parametrize("cls", [ModelConfig, DataConfig, TrainConfig])
def test_config_json_round_trip(cls):
    cfg = cls()
    again = config_from_dict(cls, json.loads(json.dumps(config_to_dict(cfg))))
    assert again == cfg


def test_config_rejects_unknown_keys_and_bad_widths():
    with pytest.raises(ConfigError, match="unknown setting"):
        config_from_dict(ModelConfig, {"hidden": 3})
    with pytest.raises(ConfigError, match="divisible"):
        ModelConfig(hidden_dim=100)
    with pytest.raises(ConfigError, match="backbone"):
        ModelConfig(backbone="vgg")


def test_presets_match_the_paper():
    r50 = get_preset("vistr_r50").model
    assert (r50.backbone, r50.num_frames, r50.num_instances, r50.hidden_dim, r50.nheads) == (
        "resnet50",
        36,
        10,
        384,
        8,
    )
    assert (r50.enc_layers, r50.dec_layers, r50.dim_feedforward, r50.dropout, r50.num_classes) == (
        6,
        6,
        2048,
        0.1,
        41,
    )
    assert r50.num_queries == 360
    assert get_preset("vistr_r101").model.backbone == "resnet101"
    assert set(PRESETS) >= {"vistr_r50", "vistr_r101", "tiny"}
    with pytest.raises(ConfigError, match="choose one of"):
        get_preset("huge")


def test_category_map_official_and_round_trip():
    cats = CategoryMap.ytvis2019_official()
    assert cats.num_classes == 41 and cats.index_of(1) == 1 and cats.id_to_name()[40] == "tennis_racket"
    assert 0 not in cats.id_to_name()
    assert CategoryMap.from_json(json.loads(json.dumps(cats.to_json()))) == cats
    custom = CategoryMap.from_categories([{"id": 7, "name": "b"}, {"id": 3, "name": "a"}])
    assert custom.ids == (3, 7) and custom.index_of(7) == 1
    with pytest.raises(ConfigError):
        custom.index_of(5)


def test_atomic_directory_keeps_old_content_on_failure(tmp_path):
    out = tmp_path / "out"
    with atomic_directory(out) as d:
        (d / "a.txt").write_text("one")
    with pytest.raises(OutputExistsError, match="--force"):
        with atomic_directory(out):
            pass
    with pytest.raises(RuntimeError):
        with atomic_directory(out, force=True) as d:
            (d / "a.txt").write_text("two")
            raise RuntimeError("crash")
    assert (out / "a.txt").read_text() == "one"
    assert [p.name for p in tmp_path.iterdir()] == ["out"]
    with atomic_directory(out, force=True) as d:
        (d / "a.txt").write_text("two")
    assert (out / "a.txt").read_text() == "two"


def test_atomic_json_and_refuse_overwrite(tmp_path):
    path = tmp_path / "x.json"
    atomic_write_json(path, {"a": [1, 2]})
    assert json.loads(path.read_text()) == {"a": [1, 2]}
    with pytest.raises(OutputExistsError):
        refuse_overwrite(path, force=False)
    refuse_overwrite(path, force=True)


def test_rle_forms_decode_identically():
    mask = np.zeros((7, 9), dtype=bool)
    mask[2:5, 3:8] = True
    rle = encode_mask(mask)
    assert isinstance(rle["counts"], str) and rle["size"] == [7, 9]
    assert rle_area(rle) == 15
    # Uncompressed RLE: column-major run lengths starting with background.
    flat = mask.flatten(order="F")
    runs, current, count = [], False, 0
    for v in flat:
        if v == current:
            count += 1
        else:
            runs.append(count)
            current, count = v, 1
    runs.append(count)
    uncompressed = {"size": [7, 9], "counts": runs}
    polygon = [[3, 2, 8, 2, 8, 5, 3, 5]]  # box edges on pixel borders
    for segm in (rle, uncompressed, {"size": [7, 9], "counts": rle["counts"].encode()}):
        assert np.array_equal(decode_segmentation(segm, 7, 9), mask)
    assert decode_segmentation(polygon, 7, 9).sum() > 0
    assert to_compressed_rle(polygon, 7, 9)["size"] == [7, 9]


def test_checkpoint_round_trip_and_refusals(tmp_path):
    good = tmp_path / "good.pt"
    write_checkpoint({"model": {"w": torch.ones(2)}, "step": 3}, good)
    assert read_checkpoint(good)["step"] == 3

    with pytest.raises(CheckpointError, match="not found"):
        read_checkpoint(tmp_path / "missing.pt")

    truncated = tmp_path / "trunc.pt"
    truncated.write_bytes(good.read_bytes()[:100])
    with pytest.raises(CheckpointError, match="truncated"):
        read_checkpoint(truncated)

    class Evil:
        def __reduce__(self):
            return (os.system, ("echo pwned",))

    evil = tmp_path / "evil.pt"
    torch.save({"model": {}, "args": Evil()}, evil)
    with pytest.raises(CheckpointError, match="refused"):
        read_checkpoint(evil)

    for name, content in (("notes.txt", "hello"), ("garbage.pth", "garbage")):
        text = tmp_path / name
        text.write_text(content)
        with pytest.raises(CheckpointError, match="not a PyTorch checkpoint") as info:
            read_checkpoint(text)
        assert "run code" not in str(info.value)

    listy = tmp_path / "list.pt"
    torch.save([torch.ones(1)], listy)
    with pytest.raises(CheckpointError, match="not a dict"):
        read_checkpoint(listy)


def test_device_selection(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert device_mod.select_device("auto").type == "cpu"
    assert device_mod.select_device("cpu").type == "cpu"
    with pytest.raises(DeviceError, match="no CUDA"):
        device_mod.select_device("cuda")
    with pytest.raises(DeviceError):
        device_mod.select_device("tpu")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert device_mod.select_device("auto") == torch.device("cuda")
    assert device_mod.select_device("cuda:1") == torch.device("cuda:1")
    with pytest.raises(DeviceError, match="only 2"):
        device_mod.select_device("cuda:2")


def test_cli_version_and_help():
    runner = CliRunner()
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0 and "vistr 0.1.0" in result.output
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    for name in ("segment", "train", "eval", "render", "data"):
        assert name in result.output


def test_dilation_is_available_for_every_backbone():
    for name in ("resnet18", "resnet34", "resnet50", "resnet101"):
        assert ModelConfig(backbone=name, dilation=True).dilation
