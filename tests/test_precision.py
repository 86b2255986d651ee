"""Precision: what `auto` and `--amp` pick on each machine class, and the bf16 paths run on a CPU.

The CUDA autocast code paths (predictor, trainer) are the same code as CPU autocast with another
device type, so running them here under ``torch.autocast("cpu", torch.bfloat16)`` surfaces dtype
mismatches without a GPU. The machine classes are simulated by patching the CPU-flag probe.
"""

from __future__ import annotations

import json
import math

import pytest
import torch
from _segment_fakes import write_scene_video
from typer.testing import CliRunner

from vistr_cli.app import app
from vistr_core.categories import CategoryMap
from vistr_core.config import InferConfig
from vistr_core.engine import device as device_mod
from vistr_core.engine.checkpoint import read_checkpoint, write_checkpoint
from vistr_core.engine.device import PrecisionChoice, resolve_precision, training_precision
from vistr_core.errors import ConfigError, DeviceError
from vistr_core.inference.predictor import WindowPredictor
from vistr_core.model import build_vistr
from vistr_core.model.loading import model_checkpoint_payload
from vistr_core.presets import get_preset

CPU, CUDA = torch.device("cpu"), torch.device("cuda")


@pytest.fixture
def cpu_flags(monkeypatch):
    """Set this CPU's native bf16 support: "AMX", "AVX512-BF16" or None."""

    def set_support(value: str | None) -> None:
        monkeypatch.setattr(device_mod, "cpu_bf16_support", lambda *a: value)

    return set_support


# ---------------------------------------------------------------- detection and choice


@pytest.mark.parametrize(
    ("flags", "expected"),
    [
        ("fpu sse avx2 avx512f avx512_bf16 amx_bf16 amx_tile", "AMX"),
        ("fpu sse avx2 avx512f avx512_bf16 avx512_vnni", "AVX512-BF16"),
        ("fpu sse avx2 fma", None),
    ],
)
def test_cpu_bf16_support_reads_the_cpu_flags(tmp_path, flags, expected):
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text(f"processor\t: 0\nflags\t\t: {flags}\n\nprocessor\t: 1\nflags\t\t: {flags}\n")
    assert device_mod.cpu_bf16_support(cpuinfo) == expected


def test_cpu_bf16_support_falls_back_to_torch_without_proc(tmp_path, monkeypatch):
    monkeypatch.setattr(torch.backends.cpu, "get_cpu_capability", lambda: "AVX2")
    assert device_mod.cpu_bf16_support(tmp_path / "missing") is None
    monkeypatch.setattr(torch.backends.cpu, "get_cpu_capability", lambda: "AVX512_BF16")
    assert device_mod.cpu_bf16_support(tmp_path / "missing") == "AVX512-BF16"


def test_auto_on_each_cpu_class(cpu_flags):
    cpu_flags("AMX")
    assert resolve_precision("auto", CPU) == PrecisionChoice("bf16", "auto: CPU with native bf16 (AMX)")
    cpu_flags("AVX512-BF16")
    assert resolve_precision("auto", CPU).name == "bf16"
    cpu_flags(None)
    assert resolve_precision("auto", CPU) == PrecisionChoice(
        "fp32", "auto: this CPU has no native bf16 (AMX or AVX512-BF16)"
    )
    assert resolve_precision("bf16", CPU) == PrecisionChoice("bf16", "requested; emulated on this CPU")
    assert resolve_precision("fp32", CPU) == PrecisionChoice("fp32", "requested")


def test_auto_keeps_fp32_on_cpu_when_bf16_accuracy_is_not_accepted(cpu_flags, monkeypatch):
    cpu_flags("AMX")
    monkeypatch.setattr(device_mod, "AUTO_CPU_BF16", False)
    choice = resolve_precision("auto", CPU)
    assert choice.name == "fp32" and "accuracy" in choice.reason


def test_fp16_needs_cuda_and_unknown_precisions_are_refused(cpu_flags):
    cpu_flags("AMX")
    with pytest.raises(DeviceError) as info:
        resolve_precision("fp16", CPU)
    assert str(info.value) == "--precision fp16 needs a CUDA device (this is cpu); use bf16 or fp32"
    with pytest.raises(DeviceError, match="unknown precision 'fp8'"):
        resolve_precision("fp8", CPU)
    with pytest.raises(ConfigError) as config_info:
        InferConfig(precision="half")
    assert str(config_info.value) == "--precision must be one of auto, fp32, bf16, fp16, got 'half'"


def test_cuda_choices(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
    assert resolve_precision("auto", CUDA).name == "bf16"
    assert resolve_precision("fp16", CUDA).name == "fp16"
    assert training_precision(True, CUDA).name == "bf16"
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: False)
    assert resolve_precision("auto", CUDA).name == "fp32"  # auto never picks fp16 for inference
    with pytest.raises(DeviceError, match="no bf16 support; use fp16 or fp32"):
        resolve_precision("bf16", CUDA)
    assert training_precision(True, CUDA).name == "fp16"  # with the grad scaler


def test_amp_training_on_each_cpu_class(cpu_flags):
    assert training_precision(False, CPU) == PrecisionChoice("fp32", "--amp not set")
    cpu_flags("AVX512-BF16")
    assert training_precision(True, CPU) == PrecisionChoice(
        "bf16", "--amp on a CPU with native bf16 (AVX512-BF16)"
    )
    cpu_flags(None)
    choice = training_precision(True, CPU)
    assert choice.name == "fp32" and choice.reason.startswith("--amp ignored: this CPU has no native bf16")


def test_autocast_context():
    with device_mod.autocast(CPU, None):
        assert not torch.is_autocast_enabled("cpu")
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # torch warns about autocast to float32; asking for fp32 must not
        with device_mod.autocast(CPU, torch.float32):
            assert not torch.is_autocast_enabled("cpu")
    with device_mod.autocast(CPU, torch.bfloat16):
        assert torch.is_autocast_enabled("cpu") and torch.get_autocast_dtype("cpu") is torch.bfloat16


# ---------------------------------------------------------------- the bf16 paths, run on the CPU


def test_bf16_window_prediction_is_float32_and_close_to_fp32(one_torch_thread):
    """The predictor under CPU autocast: float32 outputs, per-frame scores and mask logits close to fp32."""
    torch.manual_seed(0)
    model = build_vistr(get_preset("tiny").model).eval()
    model.categories = CategoryMap.generic(model.config.num_classes)
    frames = torch.randn(2, model.config.num_frames, 3, 64, 96)
    fp32 = WindowPredictor(model, device=CPU)(frames)
    bf16 = WindowPredictor(model, device=CPU, dtype=torch.bfloat16)(frames)
    for a, b in zip(fp32, bf16, strict=True):
        assert b.scores.dtype == torch.float32 and b.mask_logits.dtype == torch.float32
        assert torch.isfinite(b.mask_logits).all()
        assert (a.scores - b.scores).abs().max() < 0.02
        assert not torch.equal(a.mask_logits, b.mask_logits)  # autocast really ran
        agree = ((a.mask_logits > 0) == (b.mask_logits > 0)).float().mean()
        assert agree > 0.97


def test_cpu_amp_training_steps_run_in_bf16(cpu_flags, tmp_path):
    """--amp on a CPU with native bf16: the trainer's autocast path, losses finite and close to fp32."""
    from test_trainer import FAST, micro_preset

    from vistr_core.data.synthetic import generate_synthetic
    from vistr_core.engine.trainer import train

    data = tmp_path / "data"
    generate_synthetic(data, videos=2, valid_videos=1, frames=6, size=(48, 64), seed=3)
    runs = {}
    for name, amp in (("fp32", False), ("bf16", True)):
        cpu_flags("AVX512-BF16")
        overrides = {**FAST, "max_iters": 2, "amp": amp}
        runs[name] = train(
            data, preset=micro_preset(), out_dir=tmp_path / name, overrides=overrides, device="cpu"
        )
    assert runs["bf16"].precision.name == "bf16" and runs["fp32"].precision.name == "fp32"
    assert read_checkpoint(runs["bf16"].last_checkpoint)["scaler"] is None  # bf16 needs no loss scaling
    first = [json.loads(line) for line in (tmp_path / "fp32" / "metrics.jsonl").read_text().splitlines()]
    low = [json.loads(line) for line in (tmp_path / "bf16" / "metrics.jsonl").read_text().splitlines()]
    for a, b in zip(first, low, strict=True):
        assert math.isfinite(b["loss"])
        assert a["loss"] != b["loss"] and abs(a["loss"] - b["loss"]) < 0.05 * a["loss"]


# ---------------------------------------------------------------- CLI


def _tiny_checkpoint(tmp_path):
    preset = get_preset("tiny")
    ckpt = tmp_path / "tiny.pt"
    payload = model_checkpoint_payload(
        build_vistr(preset.model), data_config=preset.data, categories=CategoryMap.generic(1), preset="tiny"
    )
    write_checkpoint(payload, ckpt)
    return ckpt


def test_segment_records_the_chosen_precision(tmp_path, cpu_flags):
    cpu_flags("AMX")
    ckpt = _tiny_checkpoint(tmp_path)
    video = write_scene_video(tmp_path / "clip.mp4", 5, height=48, width=80)
    result = CliRunner().invoke(app, ["segment", str(video), "-o", str(tmp_path / "out"), "-c", str(ckpt)])
    assert result.exit_code == 0, result.output
    assert "precision bf16 (auto: CPU with native bf16 (AMX))" in result.output.splitlines()
    meta = json.loads((tmp_path / "out" / "clip" / "meta.json").read_text())
    assert meta["settings"]["precision"] == {
        "precision": "bf16",
        "reason": "auto: CPU with native bf16 (AMX)",
    }
    assert meta["settings"]["infer"]["precision"] == "auto"

    args = ["segment", str(video), "-o", str(tmp_path / "out2"), "-c", str(ckpt), "--no-amp"]
    assert CliRunner().invoke(app, args).exit_code == 0
    meta = json.loads((tmp_path / "out2" / "clip" / "meta.json").read_text())
    assert meta["settings"]["precision"] == {"precision": "fp32", "reason": "requested"}


@pytest.mark.parametrize(
    ("flags", "code", "message"),
    [
        (
            ["--precision", "fp16"],
            1,
            "error: --precision fp16 needs a CUDA device (this is cpu); use bf16 or fp32",
        ),
        (  # contradicting options are a usage error, found before any video is opened
            ["--amp", "--precision", "fp32"],
            2,
            "error: --amp means --precision auto, which contradicts --precision fp32; give one",
        ),
    ],
)
def test_segment_refuses_impossible_precisions_in_one_line(tmp_path, flags, code, message):
    ckpt = _tiny_checkpoint(tmp_path)
    video = write_scene_video(tmp_path / "clip.mp4", 5, height=48, width=80)
    out = tmp_path / "out"
    args = ["segment", str(video), "-o", str(out), "-c", str(ckpt), "--device", "cpu", *flags]
    result = CliRunner().invoke(app, args)
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert result.exit_code == code and lines == [message]
    assert not out.exists() or not any(out.iterdir())
