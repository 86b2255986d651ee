"""A frozen backbone: folded weights kept between forwards, and computed in bf16 while the rest trains in fp32.

The fast path must give exactly what the reference path (fold BatchNorm into every conv on each
forward, under autocast where one is active) gives, follow every change of the weights, leave a
training backbone alone, and the trainer must pick it only where it is meant to.
"""

from __future__ import annotations

import json

import pytest
import torch
from test_precision import CPU, CUDA, cpu_flags  # noqa: F401  (fixture)
from test_trainer import FAST, dataset, losses_logged, micro_preset, weights  # noqa: F401  (fixture)

from vistr_core.engine.device import PrecisionChoice, frozen_backbone_precision
from vistr_core.engine.trainer import train
from vistr_core.errors import ConfigError, DeviceError
from vistr_core.model.backbone import Backbone, _resnet_stages

FP32 = PrecisionChoice("fp32", "--amp not set")


@pytest.fixture
def backbone():
    torch.manual_seed(0)
    model = Backbone("resnet18")
    model.calibrate_batchnorm([torch.randn(2, 3, 64, 96)])
    return model.requires_grad_(False)


def reference(backbone: Backbone, images: torch.Tensor) -> list[torch.Tensor]:
    """The per-forward fold of before, in whatever autocast is active."""
    x = images.contiguous(memory_format=torch.channels_last)
    return [feat for (feat,) in _resnet_stages(backbone.body, [x])]


def features(backbone: Backbone, images: torch.Tensor) -> list[torch.Tensor]:
    return [feat for feat, _ in backbone(images, None)]


def test_kept_folded_weights_give_the_reference_features_bit_for_bit(backbone):
    images = torch.randn(3, 3, 64, 96)
    for _ in range(2):  # the second forward reads the kept weights
        for fast, slow in zip(features(backbone, images), reference(backbone, images), strict=True):
            assert fast.dtype == torch.float32 and torch.equal(fast, slow)


def test_kept_folded_weights_follow_every_change(backbone):
    images = torch.randn(2, 3, 64, 96)
    features(backbone, images)  # fills the cache
    backbone.body.layer2[0].bn1.running_mean.add_(0.5)  # an in-place statistic change
    assert torch.equal(features(backbone, images)[-1], reference(backbone, images)[-1])
    other = Backbone("resnet18")
    backbone.load_state_dict(other.state_dict())  # loading a checkpoint
    assert torch.equal(features(backbone, images)[-1], reference(backbone, images)[-1])
    backbone.calibrate_batchnorm([images])
    assert torch.equal(features(backbone, images)[-1], reference(backbone, images)[-1])
    backbone.double()  # a move to another dtype (new storages)
    assert torch.equal(features(backbone, images.double())[-1], reference(backbone, images.double())[-1])


@pytest.mark.parametrize("autocast", [False, True])
def test_kept_folded_weights_are_never_copied_again(backbone, autocast):
    """The kept weights are in the activations' channels-last layout, so a later forward copies no
    weight (oneDNN copies an NCHW weight into that layout on every call)."""
    from torch.profiler import ProfilerActivity, profile

    images = torch.randn(2, 3, 64, 96)
    weight_shapes = {tuple(m.weight.shape) for m in backbone.modules() if isinstance(m, torch.nn.Conv2d)}
    with torch.no_grad(), torch.autocast("cpu", torch.bfloat16, enabled=autocast):
        features(backbone, images)  # fills the cache
        with profile(activities=[ProfilerActivity.CPU], record_shapes=True) as prof:
            features(backbone, images)
    copied = [
        e.input_shapes[0]
        for e in prof.events()
        if e.name == "aten::copy_" and tuple(e.input_shapes[0]) in weight_shapes
    ]
    assert len(weight_shapes) > 5 and copied == []


def test_under_autocast_the_same_bf16_features_as_autocast_gives(backbone):
    images = torch.randn(2, 3, 64, 96)
    with torch.autocast("cpu", torch.bfloat16):
        fast, slow = features(backbone, images), reference(backbone, images)
    for a, b in zip(fast, slow, strict=True):
        assert a.dtype == torch.bfloat16 and torch.equal(a, b)


def test_compute_dtype_runs_bf16_and_returns_the_input_dtype(backbone):
    images = torch.randn(2, 3, 64, 96)
    fp32 = features(backbone, images)
    with torch.autocast("cpu", torch.bfloat16):
        autocast = reference(backbone, images)
    backbone.compute_dtype = torch.bfloat16
    low = features(backbone, images)
    for a, b, c in zip(low, autocast, fp32, strict=True):
        assert a.dtype == torch.float32 and torch.equal(a, b.float())
        assert not torch.equal(a, c) and torch.allclose(a, c, rtol=0.05, atol=0.05 * c.abs().max().item())


def test_a_training_backbone_ignores_compute_dtype_and_gets_gradients(backbone):
    backbone.body.layer4.requires_grad_(True)
    backbone.compute_dtype = torch.bfloat16
    images = torch.randn(1, 3, 64, 96)
    out = features(backbone, images)
    assert all(f.dtype == torch.float32 for f in out)
    assert torch.equal(out[-1], reference(backbone, images)[-1])  # fp32: compute_dtype not used
    out[-1].sum().backward()
    assert backbone.body.layer4[0].conv1.weight.grad is not None
    with torch.no_grad():  # without gradients the fast path may run even on trainable weights
        assert features(backbone, images)[-1].dtype == torch.float32


# ---------------------------------------------------------------- what the trainer picks


def test_auto_picks_bf16_for_a_frozen_backbone_on_native_bf16_only(cpu_flags):  # noqa: F811
    cpu_flags("AVX512-BF16")
    choice = frozen_backbone_precision("auto", frozen=True, run=FP32, device=CPU)
    assert choice == PrecisionChoice("bf16", "auto: frozen, CPU with native bf16 (AVX512-BF16)")
    assert frozen_backbone_precision("fp32", frozen=True, run=FP32, device=CPU).name == "fp32"
    trains = frozen_backbone_precision("auto", frozen=False, run=FP32, device=CPU)
    assert trains.name == "fp32" and "trains" in trains.reason
    with pytest.raises(ConfigError, match="needs a frozen backbone"):
        frozen_backbone_precision("bf16", frozen=False, run=FP32, device=CPU)
    amp = frozen_backbone_precision("fp32", frozen=True, run=PrecisionChoice("bf16", "--amp"), device=CPU)
    assert amp.name == "bf16" and "--amp" in amp.reason  # the whole model follows --amp
    cpu_flags(None)
    assert frozen_backbone_precision("auto", frozen=True, run=FP32, device=CPU).name == "fp32"
    emulated = frozen_backbone_precision("bf16", frozen=True, run=FP32, device=CPU)
    assert emulated.name == "bf16" and "emulated" in emulated.reason


@pytest.mark.parametrize("bf16", [True, False])
def test_cuda_choices(monkeypatch, bf16):
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: bf16)
    assert frozen_backbone_precision("auto", frozen=True, run=FP32, device=CUDA).name == (
        "bf16" if bf16 else "fp32"
    )
    if not bf16:
        with pytest.raises(DeviceError, match="no bf16 support"):
            frozen_backbone_precision("bf16", frozen=True, run=FP32, device=CUDA)


def test_bad_setting_is_refused():
    from vistr_core.config import TrainConfig

    with pytest.raises(ConfigError, match=r"--backbone-precision\) must be one of auto, fp32, bf16"):
        TrainConfig(backbone_precision="fp16")


def run(dataset, out, **overrides):  # noqa: F811
    return train(dataset, preset=micro_preset(), out_dir=out, overrides={**FAST, **overrides}, device="cpu")


def test_training_with_a_bf16_backbone_resumes_exactly_and_differs_from_fp32(dataset, tmp_path, cpu_flags):  # noqa: F811
    cpu_flags("AVX512-BF16")
    straight = run(dataset, tmp_path / "straight", max_iters=4)
    assert straight.backbone_precision.name == "bf16" and straight.precision.name == "fp32"
    run(dataset, tmp_path / "split", max_iters=2)
    resumed = train(
        dataset, preset=micro_preset(), out_dir=tmp_path / "split", overrides={**FAST, "max_iters": 4},
        device="cpu", resume=True,
    )  # fmt: skip
    a, b = weights(straight.last_checkpoint), weights(resumed.last_checkpoint)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert losses_logged(tmp_path / "straight") == losses_logged(tmp_path / "split")
    fp32 = run(dataset, tmp_path / "fp32", max_iters=4, backbone_precision="fp32")
    assert fp32.backbone_precision == PrecisionChoice("fp32", "requested")
    low, high = losses_logged(tmp_path / "straight"), losses_logged(tmp_path / "fp32")
    assert low != high  # the backbone really ran in bf16 ...
    assert all(
        abs(x["loss"] - y["loss"]) < 0.05 * y["loss"] for x, y in zip(low, high, strict=True)
    )  # ... closely
    saved = json.loads((tmp_path / "fp32" / "config.json").read_text())
    assert saved["train"]["backbone_precision"] == "fp32"


def test_cli_refuses_a_bad_backbone_precision_in_one_line_and_writes_nothing(dataset, tmp_path):  # noqa: F811
    from typer.testing import CliRunner

    from vistr_cli.app import app

    out = tmp_path / "run"
    args = [
        "train",
        "--data",
        str(dataset),
        "--preset",
        "tiny",
        "--out",
        str(out),
        "--backbone-precision",
        "fp16",
    ]
    result = CliRunner().invoke(app, args)
    assert result.exit_code != 0
    assert "--backbone-precision) must be one of auto, fp32, bf16" in result.output
    assert not out.exists()
