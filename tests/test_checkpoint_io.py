"""Checkpoint reading: layering, the reference/DETR file format, and code that must never run."""

from __future__ import annotations

import argparse
import dataclasses
import os
import pickle
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
import torch

from vistr_core.checkpoint_io import checkpoint_args, read_checkpoint
from vistr_core.errors import CheckpointError, VistrWarning
from vistr_core.model import build_vistr
from vistr_core.model.loading import init_from_detr, load_model
from vistr_core.presets import get_preset


def test_checkpoint_io_sits_below_model_and_engine():
    code = (
        "import sys, vistr_core.checkpoint_io; "
        "print(sorted(m for m in sys.modules if m.startswith(('vistr_core.model', 'vistr_core.engine'))))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def tiny_model(**changes):
    cfg = dataclasses.replace(get_preset("tiny").model, num_frames=2, num_instances=2, **changes)
    return build_vistr(cfg).eval()


def reference_args(**values) -> argparse.Namespace:
    """Parsed options as the reference main.py holds them (a plain argparse.Namespace)."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--backbone", default="resnet50")
    parser.add_argument("--num_frames", type=int, default=36)
    parser.add_argument("--hidden_dim", type=int, default=384)
    parser.add_argument("--lr", type=float, default=1e-4)
    parser.add_argument("--masks", action="store_true")
    args = parser.parse_args([])
    for name, value in values.items():
        setattr(args, name, value)
    return args


def save_like_reference(path: Path, state: dict, args: argparse.Namespace) -> None:
    """What the reference VisTR / DETR main.py writes: model, optimizer, lr_scheduler, epoch, args,
    in the legacy (non-zip) serialization."""
    params = [torch.nn.Parameter(torch.zeros(3))]
    optimizer = torch.optim.AdamW(params, lr=1e-4)
    params[0].grad = torch.ones(3)
    optimizer.step()
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, 10)
    torch.save(
        {
            "model": state,
            "optimizer": optimizer.state_dict(),
            "lr_scheduler": scheduler.state_dict(),
            "epoch": 17,
            "args": args,
        },
        path,
        _use_new_zipfile_serialization=False,
    )


def test_reference_checkpoint_loads_with_its_args(tmp_path):
    model = tiny_model()
    cfg = model.config
    path = tmp_path / "checkpoint.pth"
    args = reference_args(backbone=cfg.backbone, num_frames=2, hidden_dim=cfg.hidden_dim)
    save_like_reference(path, model.state_dict(), args)
    assert checkpoint_args(read_checkpoint(path)) == vars(args)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # args that agree say nothing
        loaded = load_model(path)  # T = 2 from args (the default 36 does not divide 4 queries)
    assert loaded.config.num_frames == 2 and loaded.config.num_instances == 2
    for key, value in model.state_dict().items():
        torch.testing.assert_close(loaded.state_dict()[key], value, atol=0, rtol=0)


def test_reference_args_that_disagree_with_the_tensors_are_reported(tmp_path):
    model = tiny_model()
    path = tmp_path / "checkpoint.pth"
    save_like_reference(
        path, model.state_dict(), reference_args(backbone="resnet101", num_frames=4, hidden_dim=384)
    )
    with pytest.warns(VistrWarning) as record:
        loaded = load_model(path)
    assert len(record) == 1
    assert str(record[0].message) == (
        f"checkpoint {path}: its args say backbone='resnet101', hidden_dim=384, but the weights give "
        f"backbone={model.config.backbone!r}, hidden_dim={model.config.hidden_dim}; using the weights"
    )
    assert loaded.config.num_frames == 4  # the args' T divides the 4 queries: used


def detr_state(model) -> dict[str, torch.Tensor]:
    """DETR segmentation weights for ``model``'s widths (COCO class head, 100 queries, lay5/out_lay)."""
    state = {
        k: torch.randn(v.shape) if v.dtype.is_floating_point else v
        for k, v in model.state_dict().items()
        if not k.startswith(("mask_head.conv_offset", "mask_head.dcn", "insmask_head"))
    }
    d = model.config.hidden_dim
    state["vistr.class_embed.weight"] = torch.randn(92, d)
    state["vistr.query_embed.weight"] = torch.randn(100, d)
    state["mask_head.lay5.weight"] = torch.randn(d // 64, d // 16, 3, 3)
    state["mask_head.out_lay.weight"] = torch.randn(1, d // 64, 3, 3)
    return state


def test_detr_checkpoint_initializes_and_reports_its_args(tmp_path):
    model = tiny_model()
    state = detr_state(model)
    path = tmp_path / "384_coco_r50.pth"
    args = reference_args(backbone="resnet50", hidden_dim=256, masks=True)
    del args.num_frames  # DETR has no frames
    save_like_reference(path, state, args)
    with pytest.warns(VistrWarning, match=r"its args say .*hidden_dim=256, but the model being trained has"):
        report = init_from_detr(model, path)
    assert "vistr.transformer.decoder.norm.weight" in report.loaded
    for key in report.loaded:
        torch.testing.assert_close(model.state_dict()[key], state[key], atol=0, rtol=0)


class RunsShell:
    """Unpickling this runs a shell command that creates ``marker``."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def _wrap(payload, where: str):
    tensors = {"w": torch.zeros(2)}
    if where == "top":
        return payload
    if where == "nested":
        return {"model": tensors, "extra": [{"deep": (payload,)}]}
    return {"model": tensors, "args": argparse.Namespace(lr=1e-4, hook=payload)}  # inside the allowed class


def _write(path: Path, obj, how: str) -> None:
    if how == "raw":
        path.write_bytes(pickle.dumps(obj))
    elif how == "raw-protocol2":
        path.write_bytes(pickle.dumps(obj, protocol=2))
    elif how == "zip":
        torch.save(obj, path)
    else:
        torch.save(obj, path, _use_new_zipfile_serialization=False)


@pytest.mark.parametrize("where", ["top", "nested", "in-namespace"])
@pytest.mark.parametrize("how", ["raw", "raw-protocol2", "zip", "legacy"])
def test_code_in_a_pickle_never_runs(tmp_path, how, where):
    marker = tmp_path / "ran"
    path = tmp_path / "evil.pth"
    _write(path, _wrap(RunsShell(marker), where), how)
    for load in (read_checkpoint, load_model, lambda p: init_from_detr(tiny_model(), p)):
        with warnings.catch_warnings(record=True) as seen:
            warnings.simplefilter("always")
            with pytest.raises(CheckpointError, match="refused") as info:
                load(path)
        assert not marker.exists()
        assert seen == []  # no torch warning on the way
        message = str(info.value)
        assert "\n" not in message and str(path) in message
        if how.startswith("raw"):
            assert "raw Python pickle" in message
        else:
            assert "(posix.system)" in message or "(nt.system)" in message


def test_a_raw_pickle_without_code_is_refused_quietly(tmp_path):
    path = tmp_path / "plain.pkl"
    path.write_bytes(pickle.dumps({"model": {"w": [1.0, 2.0]}}))
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        with pytest.raises(CheckpointError) as info:
            read_checkpoint(path)
    assert seen == []
    assert str(info.value).startswith(
        f"checkpoint {path} is a raw Python pickle, not a torch.save file; refused"
    )


@pytest.mark.parametrize("legacy", [False, True], ids=["zip", "legacy"])
def test_truncated_checkpoint_says_truncated_without_torch_internals(tmp_path, legacy):
    full = tmp_path / "full.pth"
    torch.save({"model": tiny_model().state_dict()}, full, _use_new_zipfile_serialization=not legacy)
    for keep in (0.5, 0.9):
        cut = tmp_path / "cut.pth"
        data = full.read_bytes()
        cut.write_bytes(data[: int(len(data) * keep)])
        with pytest.raises(CheckpointError) as info:
            read_checkpoint(cut)
        assert str(info.value) == (
            f"checkpoint {cut} is truncated or damaged ({cut.stat().st_size} bytes); copy or download it again"
        )


def test_empty_file_is_refused(tmp_path):
    (tmp_path / "empty.pth").write_bytes(b"")
    with pytest.raises(CheckpointError, match="is empty"):
        read_checkpoint(tmp_path / "empty.pth")


def test_query_count_no_t_fits_tells_what_to_pass(tmp_path):
    torch.save({"model": tiny_model().state_dict()}, tmp_path / "q.pth")  # 4 queries, default T 36
    with pytest.raises(CheckpointError) as info:
        load_model(tmp_path / "q.pth")
    assert str(info.value) == (
        f"checkpoint {tmp_path / 'q.pth'} has 4 queries, which 36 frames do not divide; "
        "pass --num-frames (num_frames=) with a divisor of 4: 2, 4"
    )
    assert load_model(tmp_path / "q.pth", num_frames=4).config.num_instances == 1
