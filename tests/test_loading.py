"""Loading checkpoints: official manifests, our own format, DETR initialization, clear errors."""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path

import pytest
import torch

from vistr_core.categories import CategoryMap
from vistr_core.checkpoint_io import write_checkpoint
from vistr_core.errors import CheckpointError
from vistr_core.model import build_vistr
from vistr_core.model.loading import (
    infer_official_config,
    init_from_detr,
    load_model,
    model_checkpoint_payload,
    model_from_official_state,
)
from vistr_core.presets import get_preset

FIXTURES = Path(__file__).parent / "fixtures"


def manifest_state(name: str) -> dict[str, torch.Tensor]:
    """Zero tensors with every key and shape of an official manifest."""
    rows = (line.split("\t") for line in (FIXTURES / name).read_text().splitlines())
    return {key: torch.zeros([int(s) for s in shape.split("x")]) for key, shape in rows}


def tiny_model(**changes):
    cfg = dataclasses.replace(get_preset("tiny").model, num_frames=2, num_instances=2, **changes)
    return build_vistr(cfg).eval()


def one_line_error(excinfo) -> str:
    msg = str(excinfo.value)
    assert "\n" not in msg
    return msg


def test_official_r50_manifest_loads_every_key(tmp_path):
    state = manifest_state("official_vistr_r50_state_dict.tsv")
    path = tmp_path / "vistr_r50.pth"
    torch.save({"model": state}, path)
    model = load_model(path)
    assert not model.training
    cfg = model.config
    assert (cfg.backbone, cfg.hidden_dim, cfg.num_frames, cfg.num_instances, cfg.num_classes) == (
        "resnet50", 384, 36, 10, 41,
    )  # fmt: skip
    assert (cfg.enc_layers, cfg.dec_layers, cfg.dim_feedforward, cfg.nheads) == (6, 6, 2048, 8)
    loaded = model.state_dict()
    assert set(loaded) == set(state)
    assert all(loaded[k].shape == v.shape for k, v in state.items())
    assert model.categories == CategoryMap.ytvis2019_official()
    assert (model.data_config.short_side, model.data_config.max_size) == (300, 540)


def test_official_r101_manifest_loads_every_key():
    state = manifest_state("official_vistr_r101_state_dict.tsv")
    model = model_from_official_state(state)
    assert model.config.backbone == "resnet101"
    loaded = model.state_dict()
    assert set(loaded) == set(state)
    assert all(loaded[k].shape == v.shape for k, v in state.items())
    assert (model.data_config.short_side, model.data_config.max_size) == (280, 504)
    assert sum(p.numel() for p in model.parameters() if p.requires_grad) == 75_833_633  # vistr-facts 2.7


def test_frozen_batchnorm_has_no_num_batches_tracked():
    keys = tiny_model().state_dict()
    assert not any(k.endswith("num_batches_tracked") for k in keys)
    bn = tiny_model().vistr.backbone[0].body.bn1
    assert bn.eps == 1e-5 and not list(bn.parameters())


@pytest.mark.parametrize("backbone", ["resnet18", "resnet34", "resnet50"])
def test_config_inference_round_trips(backbone):
    model = tiny_model(backbone=backbone, num_classes=7, enc_layers=3, dec_layers=1)
    cfg = infer_official_config(model.state_dict(), num_frames=2)
    # Training-only settings (dropout, the mask head's init) leave no trace in a state dict, nor
    # does position_in_memory (a parameter-free addition): `vistr train` checkpoints carry their
    # config for these; an official-format file is the paper's model, which has it off.
    training_only = ("dropout", "mask_attention_gain", "mask_prior", "position_in_memory")
    assert dataclasses.replace(cfg, **{k: getattr(model.config, k) for k in training_only}) == model.config


def test_own_checkpoint_round_trip(tmp_path):
    torch.manual_seed(1)
    model = tiny_model(num_classes=3)
    cats = CategoryMap((3, 7, 9), ("cat", "dog", "owl"))
    data = get_preset("tiny").data
    payload = model_checkpoint_payload(model, data_config=data, preset="tiny", categories=cats)
    payload["optimizer"] = {}  # the trainer adds its own entries
    write_checkpoint(payload, tmp_path / "last.pt")
    loaded = load_model(tmp_path / "last.pt")
    assert loaded.config == model.config
    assert loaded.categories == cats
    assert loaded.data_config == data
    frames = torch.randn(1, 2, 3, 64, 80)
    with torch.no_grad():
        a, b = model(frames), loaded(frames)
    for key in ("pred_logits", "pred_boxes", "pred_masks"):
        torch.testing.assert_close(a[key], b[key], atol=0, rtol=0)
    assert json.loads(payload["config"])["preset"] == "tiny"


def test_own_checkpoint_rejects_other_num_frames(tmp_path):
    model = tiny_model()
    payload = model_checkpoint_payload(
        model, data_config=get_preset("tiny").data, categories=CategoryMap.generic(1)
    )
    write_checkpoint(payload, tmp_path / "m.pt")
    with pytest.raises(CheckpointError, match="num_frames=2") as excinfo:
        load_model(tmp_path / "m.pt", num_frames=3)
    one_line_error(excinfo)


def test_newer_schema_and_damaged_config_are_refused(tmp_path):
    model = tiny_model()
    payload = model_checkpoint_payload(
        model, data_config=get_preset("tiny").data, categories=CategoryMap.generic(1)
    )
    write_checkpoint({**payload, "schema": 99}, tmp_path / "new.pt")
    with pytest.raises(CheckpointError, match="upgrade vistr") as excinfo:
        load_model(tmp_path / "new.pt")
    one_line_error(excinfo)
    write_checkpoint({**payload, "config": "{not json"}, tmp_path / "bad.pt")
    with pytest.raises(CheckpointError, match="damaged config") as excinfo:
        load_model(tmp_path / "bad.pt")
    one_line_error(excinfo)


def test_wrong_file_is_refused(tmp_path):
    path = tmp_path / "notes.pth"
    path.write_text("these are not weights\n")
    with pytest.raises(CheckpointError, match=str(path)) as excinfo:
        load_model(path)
    one_line_error(excinfo)
    with pytest.raises(CheckpointError, match="not found"):
        load_model(tmp_path / "missing.pth")


def test_dict_without_model_is_refused(tmp_path):
    torch.save({"epoch": torch.tensor(3), "notes": "x"}, tmp_path / "other.pth")
    with pytest.raises(CheckpointError, match="no 'model' state dict") as excinfo:
        load_model(tmp_path / "other.pth")
    one_line_error(excinfo)


def test_truncated_file_is_refused(tmp_path):
    torch.save({"model": tiny_model().state_dict()}, tmp_path / "full.pth")
    data = (tmp_path / "full.pth").read_bytes()
    (tmp_path / "cut.pth").write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="truncated") as excinfo:
        load_model(tmp_path / "cut.pth")
    one_line_error(excinfo)


class _RunsCode:
    def __reduce__(self):
        return (os.getcwd, ())


def test_pickle_with_code_is_refused(tmp_path):
    torch.save({"model": {}, "args": _RunsCode()}, tmp_path / "evil.pth")
    with pytest.raises(CheckpointError, match="refused") as excinfo:
        load_model(tmp_path / "evil.pth")
    one_line_error(excinfo)


def test_wrong_shapes_name_the_key(tmp_path):
    state = tiny_model().state_dict()
    state["mask_head.lay2.weight"] = torch.zeros(5, 5, 3, 3)
    torch.save({"model": state}, tmp_path / "shapes.pth")
    with pytest.raises(CheckpointError, match=r"mask_head\.lay2\.weight \(5, 5, 3, 3\) vs model") as excinfo:
        load_model(tmp_path / "shapes.pth", num_frames=2)
    one_line_error(excinfo)


def test_missing_and_unexpected_keys_are_listed(tmp_path):
    state = tiny_model().state_dict()
    del state["insmask_head.9.bias"]
    state["extra.weight"] = torch.zeros(1)
    torch.save({"model": state}, tmp_path / "keys.pth")
    with pytest.raises(CheckpointError) as excinfo:
        load_model(tmp_path / "keys.pth", num_frames=2)
    msg = one_line_error(excinfo)
    assert "1 missing: insmask_head.9.bias" in msg and "1 unexpected: extra.weight" in msg


def test_num_frames_must_divide_queries(tmp_path):
    torch.save({"model": tiny_model().state_dict()}, tmp_path / "q.pth")  # 4 queries
    with pytest.raises(CheckpointError, match="4 queries, which 3 frames") as excinfo:
        load_model(tmp_path / "q.pth", num_frames=3)
    one_line_error(excinfo)


def detr_like_state(model) -> dict[str, torch.Tensor]:
    """A DETR segmentation checkpoint for ``model``'s widths: COCO class head, 100 queries, lay5/out_lay,
    no conv_offset / dcn / insmask_head."""
    state = {
        k: torch.randn(v.shape) if v.dtype.is_floating_point else v
        for k, v in model.state_dict().items()
        if not k.startswith(("mask_head.conv_offset", "mask_head.dcn", "insmask_head"))
    }
    d = model.config.hidden_dim
    state["vistr.class_embed.weight"] = torch.randn(92, d)
    state["vistr.class_embed.bias"] = torch.randn(92)
    state["vistr.query_embed.weight"] = torch.randn(100, d)
    state["mask_head.lay5.weight"] = torch.randn(d // 64, d // 16, 3, 3)
    state["mask_head.out_lay.weight"] = torch.randn(1, d // 64, 3, 3)
    return state


def test_init_from_detr_loads_what_fits(tmp_path):
    model = tiny_model(num_classes=4)
    state = detr_like_state(model)
    torch.save({"model": state}, tmp_path / "384_coco_r50.pth")
    before = {k: v.clone() for k, v in model.state_dict().items()}
    report = init_from_detr(model, tmp_path / "384_coco_r50.pth")
    after = model.state_dict()
    skipped = dict(report.skipped)
    assert "re-initialized" in skipped["vistr.class_embed.weight"]
    assert "vistr.query_embed.weight" in skipped
    assert "mask_head.lay5.weight" in skipped and "mask_head.out_lay.weight" in skipped
    assert {"mask_head.dcn.weight", "insmask_head.0.weight"} <= set(report.missing)
    assert "vistr.transformer.decoder.norm.weight" in report.loaded
    for key in report.loaded:
        torch.testing.assert_close(after[key], state[key], atol=0, rtol=0)
    for key in (*skipped, *report.missing):
        if key in before:
            torch.testing.assert_close(after[key], before[key], atol=0, rtol=0)
    assert "loaded" in report.summary()


def test_detr_file_is_not_a_model(tmp_path):
    torch.save({"model": detr_like_state(tiny_model())}, tmp_path / "detr.pth")
    with pytest.raises(CheckpointError, match="DETR segmentation initialization") as excinfo:
        load_model(tmp_path / "detr.pth")
    one_line_error(excinfo)


def test_init_from_vistr_checkpoint_with_other_classes(tmp_path):
    source = tiny_model(num_classes=3)
    torch.save({"model": source.state_dict()}, tmp_path / "src.pth")
    target = tiny_model(num_classes=6)
    report = init_from_detr(target, tmp_path / "src.pth")
    assert "vistr.query_embed.weight" in report.loaded  # same n*T: kept for fine-tuning
    assert dict(report.skipped)["vistr.class_embed.weight"].startswith("shape (4, 192)")
    assert not report.missing


def test_ddp_prefixed_state_dict_loads(tmp_path):
    model = tiny_model()
    torch.save({"model": {f"module.{k}": v for k, v in model.state_dict().items()}}, tmp_path / "ddp.pth")
    loaded = load_model(tmp_path / "ddp.pth", num_frames=2)
    torch.testing.assert_close(loaded.state_dict(), model.state_dict(), atol=0, rtol=0)
