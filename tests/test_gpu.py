"""The CUDA paths, checked against the CPU: skipped without a CUDA device (`pytest -m gpu`).

``benchmarks/gpu_check.sh`` runs these on a machine with one GPU. Tolerances:

- fp32 (TF32 off): CUDA equals the CPU within 1e-3 on the parity fixture (logits, boxes, mask logits).
- bf16 / fp16 autocast against the CPU in fp32: class probabilities within 0.05 (bf16) / 0.01
  (fp16), the same class argmax, and the mask sign (foreground or not) on >= 98 % / 99.5 % of pixels.
- deformable conv: torchvision's CUDA kernel equals our CPU path within 1e-4 (fp32).
- training: the first step's loss on CUDA in fp32 equals the CPU's within 1e-3 (relative).
"""

from __future__ import annotations

import importlib.util
import json
import math
import os
import socket
from pathlib import Path

import pytest
import torch

from vistr_core.engine.device import autocast, select_device

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device"),
]

PARITY = Path(__file__).parent / "fixtures" / "parity"
CUDA = torch.device("cuda")
TOLERANCE = {"bf16": (0.05, 0.98), "fp16": (0.01, 0.995)}  # probability, mask-sign agreement


@pytest.fixture(autouse=True)
def _no_tf32():
    """fp32 means fp32: TF32 matrix units would change results at the 1e-3 level."""
    old = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    yield
    torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = old


@pytest.fixture(scope="module")
def parity(tmp_path_factory):
    """(model on the CPU, input [T, 3, H, W], T) from the seeded parity weights."""
    from vistr_core import load_model

    spec = importlib.util.spec_from_file_location("seeded_weights", PARITY / "seeded_weights.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    case = torch.load(PARITY / "case_resnet50_T3_n4_96x128.pt", weights_only=True)
    path = tmp_path_factory.mktemp("parity") / "official.pth"
    torch.save({"model": module.seeded_state_dict(PARITY / "case_resnet50_T3_n4.tsv", case["seed"])}, path)
    return load_model(path, num_frames=case["T"]), case["input"]


def _forward(model, frames, device, dtype=None):
    model = model.to(device)
    with torch.inference_mode(), autocast(device, dtype):
        out = model(frames[None].to(device))
    model.to("cpu")
    return {k: out[k].float().cpu() for k in ("pred_logits", "pred_boxes", "pred_masks")}


def test_cuda_fp32_equals_cpu_on_the_parity_fixture(parity):
    model, frames = parity
    cpu, cuda = _forward(model, frames, torch.device("cpu")), _forward(model, frames, CUDA)
    for key in cpu:
        torch.testing.assert_close(cuda[key], cpu[key], atol=1e-3, rtol=0)


@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_cuda_autocast_stays_close_to_cpu_fp32(parity, precision):
    if precision == "bf16" and not torch.cuda.is_bf16_supported():
        pytest.skip("this GPU has no bf16")
    model, frames = parity
    dtype = torch.bfloat16 if precision == "bf16" else torch.float16
    cpu, low = _forward(model, frames, torch.device("cpu")), _forward(model, frames, CUDA, dtype)
    prob_tol, mask_agreement = TOLERANCE[precision]
    p_cpu, p_low = cpu["pred_logits"].softmax(-1), low["pred_logits"].softmax(-1)
    assert (p_cpu - p_low).abs().max() <= prob_tol
    assert torch.equal(p_cpu.argmax(-1), p_low.argmax(-1))
    assert ((cpu["pred_masks"] > 0) == (low["pred_masks"] > 0)).float().mean() >= mask_agreement


def test_torchvision_cuda_deform_conv_equals_our_cpu_path():
    from vistr_core.ops.deform_conv import deform_conv2d, deform_conv2d_cpu

    g = torch.Generator().manual_seed(0)
    x = torch.randn(3, 16, 20, 28, generator=g)
    offset = 2.5 * torch.randn(3, 18, 20, 28, generator=g)
    weight = torch.randn(8, 16, 3, 3, generator=g) / 12
    cpu = deform_conv2d_cpu(x, offset, weight, padding=1)
    cuda = deform_conv2d(x.to(CUDA), offset.to(CUDA), weight.to(CUDA), padding=1).cpu()
    torch.testing.assert_close(cuda, cpu, atol=1e-4, rtol=0)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    from vistr_core.data.synthetic import generate_synthetic

    root = tmp_path_factory.mktemp("synth") / "data"
    generate_synthetic(root, videos=4, valid_videos=1, frames=6, size=(48, 64), seed=3)
    return root


def _losses(run_dir: Path) -> list[float]:
    return [json.loads(line)["loss"] for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def _train(dataset, out, device, amp=False, steps=2):
    from test_trainer import FAST, micro_preset

    from vistr_core.engine.trainer import train

    overrides = {**FAST, "max_iters": steps, "amp": amp}
    return train(dataset, preset=micro_preset(), out_dir=out, overrides=overrides, device=device)


def test_cuda_fp32_training_step_equals_cpu(dataset, tmp_path):
    cpu = _losses(_train(dataset, tmp_path / "cpu", "cpu", steps=1).run_dir)
    cuda = _losses(_train(dataset, tmp_path / "cuda", "cuda", steps=1).run_dir)
    assert math.isclose(cuda[0], cpu[0], rel_tol=1e-3)


@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_cuda_amp_training_steps(dataset, tmp_path, monkeypatch, precision):
    """bf16 needs no loss scaling; fp16 (forced on a bf16 GPU) trains with the grad scaler."""
    from vistr_core.engine.checkpoint import read_checkpoint

    if precision == "fp16":
        monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: False)
    elif not torch.cuda.is_bf16_supported():
        pytest.skip("this GPU has no bf16")
    summary = _train(dataset, tmp_path / precision, "cuda", amp=True, steps=3)
    assert summary.precision.name == precision
    assert all(math.isfinite(v) for v in _losses(summary.run_dir))
    scaler = read_checkpoint(summary.last_checkpoint)["scaler"]
    assert (scaler is not None) == (precision == "fp16")


def test_single_process_nccl_ddp_equals_plain_model():
    import torch.distributed as dist
    from test_train_ddp import gradients, model_and_criterion, two_clips
    from torch.nn.parallel import DistributedDataParallel

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    frames, target = two_clips()[0]
    target = target.to(CUDA)
    plain, criterion = model_and_criterion()
    criterion = criterion.to(CUDA)
    criterion(plain.to(CUDA)(frames[None].to(CUDA)), [target])["loss"].backward()
    model, _ = model_and_criterion()
    dist.init_process_group("nccl", init_method=f"tcp://127.0.0.1:{port}", rank=0, world_size=1)
    try:
        ddp = DistributedDataParallel(model.to(CUDA), device_ids=[0])
        criterion(ddp(frames[None].to(CUDA)), [target])["loss"].backward()
    finally:
        dist.destroy_process_group()
    expected, got = gradients(plain), gradients(model)
    assert expected.keys() == got.keys()
    for name in expected:
        torch.testing.assert_close(got[name], expected[name], atol=1e-5, rtol=1e-4)


def test_cuda_device_selection():
    count = torch.cuda.device_count()
    assert select_device("cuda:0") == torch.device("cuda:0")
    with pytest.raises(Exception, match=f"only {count}"):
        select_device(f"cuda:{count}")


def test_segment_a_short_video_on_cuda(tmp_path):
    from _segment_fakes import write_scene_video
    from typer.testing import CliRunner

    from vistr_cli.app import app
    from vistr_core.categories import CategoryMap
    from vistr_core.engine.checkpoint import write_checkpoint
    from vistr_core.model import build_vistr
    from vistr_core.model.loading import model_checkpoint_payload
    from vistr_core.presets import get_preset

    preset = get_preset("tiny")
    ckpt = tmp_path / "tiny.pt"
    payload = model_checkpoint_payload(
        build_vistr(preset.model), data_config=preset.data, categories=CategoryMap.generic(1), preset="tiny"
    )
    write_checkpoint(payload, ckpt)
    video = write_scene_video(tmp_path / "clip.mp4", 9, height=48, width=80)
    args = ["segment", str(video), "-o", str(tmp_path / "out"), "-c", str(ckpt), "--device", "cuda"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    meta = json.loads((tmp_path / "out" / "clip" / "meta.json").read_text())
    assert meta["settings"]["device"].startswith("cuda")
    expected = "bf16" if torch.cuda.is_bf16_supported() else "fp32"
    assert meta["settings"]["precision"]["precision"] == expected
    assert os.path.getsize(tmp_path / "out" / "clip" / "results.json") > 2
