"""The training loop: exact resume, divergence, interruption, run-folder rules (CPU, tiny model)."""

from __future__ import annotations

import dataclasses
import json
import os
import signal

import pytest
import torch

from vistr_core.checkpoint_io import read_checkpoint
from vistr_core.data.synthetic import generate_synthetic
from vistr_core.engine.trainer import TrainingDivergedError, train
from vistr_core.errors import CheckpointError, ConfigError, OutputExistsError
from vistr_core.losses import SetCriterion
from vistr_core.presets import get_preset

# A frozen backbone skips its backward pass and optimizer state: tests run several times faster.
FAST = {"workers": 0, "log_every": 1, "checkpoint_every": 0, "lr_backbone": 0.0, "batch_size": 1}


def micro_preset(dropout: float = 0.0):
    """``tiny`` made smaller still: a few seconds per run on a CPU."""
    tiny = get_preset("tiny")
    model = dataclasses.replace(
        tiny.model,
        hidden_dim=96,
        dim_feedforward=128,
        enc_layers=1,
        dec_layers=2,
        num_frames=4,
        num_instances=3,
        dropout=dropout,
    )
    data = dataclasses.replace(
        tiny.data, short_side=40, max_size=56, train_scales=(32, 40), train_max_size=56, photometric=False
    )
    return dataclasses.replace(tiny, name="micro", model=model, data=data)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    root = tmp_path_factory.mktemp("synth") / "data"
    generate_synthetic(root, videos=4, valid_videos=1, frames=6, size=(48, 64), seed=3)
    return root


def run(dataset, out, dropout=0.0, **kwargs):
    overrides = {**FAST, **kwargs.pop("overrides", {})}
    preset = micro_preset(dropout)
    return train(dataset, preset=preset, out_dir=out, overrides=overrides, device="cpu", **kwargs)


def weights(path):
    return read_checkpoint(path)["model"]


def losses_logged(run_dir):
    lines = (run_dir / "metrics.jsonl").read_text().splitlines()
    return [{k: v for k, v in json.loads(line).items() if k not in ("it_s", "data_s")} for line in lines]


def test_resume_continues_exactly(dataset, tmp_path):
    # 4 clips per epoch at batch 1: the split at step 3 is mid-epoch, and the resumed half crosses
    # the epoch boundary (scheduler step, new shuffle) at step 4.
    # Dropout on: the global torch generator must be restored and advanced exactly as without a stop.
    # Both parameter groups train here (the backbone too), so both optimizer states must resume.
    full = {"max_iters": 6, "lr_backbone": 1e-5}
    straight = run(dataset, tmp_path / "straight", dropout=0.1, overrides=full)
    first = run(dataset, tmp_path / "split", dropout=0.1, overrides={**full, "max_iters": 3})
    assert (first.steps, first.epoch) == (3, 0)
    second = run(dataset, tmp_path / "split", dropout=0.1, overrides=full, resume=True)
    assert second.steps == 6 and second.resumed_from == tmp_path / "split" / "last.pt"
    a, b = weights(straight.last_checkpoint), weights(second.last_checkpoint)
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)
    # the log of the interrupted + resumed run reads like the uninterrupted one, loss for loss
    assert losses_logged(tmp_path / "straight") == losses_logged(tmp_path / "split")
    # ... including the tiny preset's training-only memory losses
    assert {"loss_memory", "loss_memory_box"} <= set(losses_logged(tmp_path / "straight")[-1])


def test_copy_paste_is_saved_with_the_run_and_resumes_exactly(dataset, tmp_path):
    """``copy_paste`` (a DataConfig field set through ``overrides``) changes the clips, is written
    with the run, and a resumed copy-paste run equals an uninterrupted one; changing it on resume is
    refused (the clips would change)."""
    pasting = {"max_iters": 5, "copy_paste": 1.0}
    straight = run(dataset, tmp_path / "straight", overrides=pasting)
    run(dataset, tmp_path / "split", overrides={**pasting, "max_iters": 2})
    second = run(dataset, tmp_path / "split", overrides=pasting, resume=True)
    a, b = weights(straight.last_checkpoint), weights(second.last_checkpoint)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert losses_logged(tmp_path / "straight") == losses_logged(tmp_path / "split")
    assert json.loads((tmp_path / "straight" / "config.json").read_text())["data"]["copy_paste"] == 1.0
    plain = run(dataset, tmp_path / "plain", overrides={"max_iters": 5})
    assert losses_logged(tmp_path / "plain")[0]["loss"] != losses_logged(tmp_path / "straight")[0]["loss"]
    with pytest.raises(ConfigError, match="copy_paste"):
        run(dataset, tmp_path / "split", overrides={"max_iters": 6, "copy_paste": 0.5}, resume=True)
    assert plain.steps == 5


def test_resume_may_move_the_lr_drop_while_no_rate_differs(dataset, tmp_path):
    """A run stopped before its learning rate dropped can resume with another ``lr_drop`` (how a
    schedule is shortened from a checkpoint): it then equals, weight for weight and loss for loss,
    the run that had that ``lr_drop`` from the start. Once the rates so far differ, it is refused."""
    # 4 clips per epoch: the drop after epoch 0 (lr_drop 1) falls at step 4.
    straight = run(dataset, tmp_path / "straight", overrides={"max_iters": 6, "lr_drop": 1})
    run(dataset, tmp_path / "split", overrides={"max_iters": 3, "lr_drop": 5})
    second = run(dataset, tmp_path / "split", overrides={"max_iters": 6, "lr_drop": 1}, resume=True)
    a, b = weights(straight.last_checkpoint), weights(second.last_checkpoint)
    assert all(torch.equal(a[k], b[k]) for k in a)
    logged = losses_logged(tmp_path / "split")
    assert logged == losses_logged(tmp_path / "straight")
    assert logged[2]["lr"] == pytest.approx(10 * logged[-1]["lr"])  # the moved drop took effect
    assert json.loads((tmp_path / "split" / "config.json").read_text())["train"]["lr_drop"] == 1
    # epoch 1 ran at lr/10 under lr_drop 1 but would run at lr under 5: not the same run
    with pytest.raises(ConfigError, match="lr_drop"):
        run(dataset, tmp_path / "straight", overrides={"max_iters": 8, "lr_drop": 5}, resume=True)


def test_checkpoint_contents_and_run_folder(dataset, tmp_path):
    summary = run(dataset, tmp_path / "r", overrides={"max_iters": 2, "checkpoint_every": 2})
    files = sorted(p.name for p in (tmp_path / "r").iterdir())
    assert files == ["ckpt_000002.pt", "config.json", "last.pt", "metrics.jsonl"]
    ckpt = read_checkpoint(summary.last_checkpoint)  # weights_only=True
    for key in (
        "format",
        "schema",
        "config",
        "categories",
        "model",
        "optimizer",
        "scheduler",
        "scaler",
        "rng",
    ):
        assert key in ckpt
    assert (ckpt["step"], ckpt["epoch"], ckpt["epoch_batches"], ckpt["world_size"]) == (2, 0, 2, 1)
    config = json.loads((tmp_path / "r" / "config.json").read_text())
    assert config["model"]["num_classes"] == 3  # the synthetic set's categories, not the preset's 1
    assert config["categories"]["names"] == ["circle", "square", "triangle"]
    from vistr_core import load_model

    model = load_model(summary.last_checkpoint)
    assert model.config.num_classes == 3 and not model.training


def test_refuses_existing_run_and_bad_resume(dataset, tmp_path):
    run(dataset, tmp_path / "r", overrides={"max_iters": 1})
    with pytest.raises(OutputExistsError, match="--resume"):
        run(dataset, tmp_path / "r", overrides={"max_iters": 1})
    with pytest.raises(ConfigError, match="lr"):
        run(dataset, tmp_path / "r", overrides={"max_iters": 2, "lr": 1.0}, resume=True)
    with pytest.raises(ConfigError, match="no last.pt"):
        run(dataset, tmp_path / "empty", resume=True)
    with pytest.raises(CheckpointError, match="not found"):
        run(dataset, tmp_path / "r", resume=tmp_path / "missing.pt")
    forced = run(dataset, tmp_path / "r", overrides={"max_iters": 1}, force=True)
    assert forced.steps == 1


def test_nan_loss_stops_naming_step_and_term(dataset, tmp_path, monkeypatch):
    original = SetCriterion.forward
    calls = {"n": 0}

    def poisoned(self, outputs, targets):
        losses = original(self, outputs, targets)
        calls["n"] += 1
        if calls["n"] == 2:
            losses["loss_giou"] = losses["loss_giou"] * float("nan")
            losses["loss"] = losses["loss"] + losses["loss_giou"]
        return losses

    monkeypatch.setattr(SetCriterion, "forward", poisoned)
    with pytest.raises(TrainingDivergedError, match=r"step 2: loss term loss_giou"):
        run(dataset, tmp_path / "r", overrides={"max_iters": 4, "checkpoint_every": 1})
    assert sorted(p.name for p in (tmp_path / "r").glob("*.pt")) == ["ckpt_000001.pt", "last.pt"]
    assert read_checkpoint(tmp_path / "r" / "last.pt")["step"] == 1  # nothing from the bad step


def test_sigint_saves_and_returns(dataset, tmp_path):
    def interrupt_at_two(update):
        if update.task == "iterations" and update.completed == 2:
            os.kill(os.getpid(), signal.SIGINT)

    summary = run(dataset, tmp_path / "r", overrides={"max_iters": 5}, progress=interrupt_at_two)
    assert summary.interrupted and summary.steps == 2
    assert read_checkpoint(summary.last_checkpoint)["step"] == 2
    resumed = run(dataset, tmp_path / "r", overrides={"max_iters": 3}, resume=True)
    assert resumed.steps == 3 and not resumed.interrupted


def test_rng_state_round_trips_through_weights_only_checkpoint(tmp_path):
    import random

    import numpy as np

    from vistr_core.engine.rng import capture_rng_state, restore_rng_state, seed_everything

    seed_everything(11)
    torch.save({"rng": capture_rng_state()}, tmp_path / "rng.pt")
    expected = (random.random(), np.random.rand(), torch.rand(3))
    random.random(), np.random.rand(), torch.rand(5)  # move every generator on
    restore_rng_state(torch.load(tmp_path / "rng.pt", weights_only=True)["rng"])
    got = (random.random(), np.random.rand(), torch.rand(3))
    assert got[0] == expected[0] and got[1] == expected[1] and torch.equal(got[2], expected[2])


def test_optimizer_gives_the_backbone_its_own_learning_rate():
    from vistr_core.config import TrainConfig
    from vistr_core.engine.optim import build_optimizer
    from vistr_core.model import build_vistr

    model = build_vistr(micro_preset().model)
    optimizer = build_optimizer(model, TrainConfig(lr=1e-4, lr_backbone=1e-5, weight_decay=1e-4))
    rest, backbone = optimizer.param_groups
    assert (rest["lr"], backbone["lr"]) == (1e-4, 1e-5)
    names = {id(p): n for n, p in model.named_parameters()}
    assert all("backbone" in names[id(p)] for p in backbone["params"])
    assert not any("backbone" in names[id(p)] for p in rest["params"])
    trainable = sum(p.requires_grad for p in model.parameters())
    assert len(rest["params"]) + len(backbone["params"]) == trainable


def test_fused_optimizer_steps_as_plain_adamw_and_resumes_its_checkpoints():
    """build_optimizer fuses AdamW on the CPU; its steps equal the unfused AdamW's (to float32
    rounding), and a checkpoint of an unfused run (before fusing) loads and goes on the same way."""
    import copy

    from vistr_core.config import TrainConfig
    from vistr_core.engine.optim import build_optimizer

    config = TrainConfig(lr=1e-2, lr_backbone=0.0, weight_decay=1e-2)
    torch.manual_seed(0)
    models = [torch.nn.Linear(8, 4) for _ in range(2)]
    models[1].load_state_dict(models[0].state_dict())
    fused = build_optimizer(models[0], config)
    plain = torch.optim.AdamW(models[1].parameters(), lr=1e-2, weight_decay=1e-2)
    assert fused.param_groups[0]["fused"] and not plain.param_groups[0]["fused"]

    def step(model, optimizer, x):
        optimizer.zero_grad()
        model(x).square().sum().backward()
        optimizer.step()

    for _ in range(3):
        x = torch.randn(5, 8)
        step(models[0], fused, x)
        step(models[1], plain, x)
    for a, b in zip(models[0].parameters(), models[1].parameters(), strict=True):
        torch.testing.assert_close(a, b, atol=1e-6, rtol=1e-5)
    resumed_model = torch.nn.Linear(8, 4)
    resumed_model.load_state_dict(models[1].state_dict())
    resumed = build_optimizer(resumed_model, config)
    resumed.load_state_dict(copy.deepcopy(plain.state_dict()))  # as read from a checkpoint file
    x = torch.randn(5, 8)
    step(resumed_model, resumed, x)
    step(models[1], plain, x)
    for a, b in zip(resumed_model.parameters(), models[1].parameters(), strict=True):
        torch.testing.assert_close(a, b, atol=0, rtol=0)


def test_optimizer_falls_back_to_unfused_where_torch_has_no_fused_kernel(monkeypatch):
    """torch < 2.4 refuses fused=True for CPU parameters (RuntimeError): training goes on unfused."""
    from vistr_core.config import TrainConfig
    from vistr_core.engine import optim

    real = torch.optim.AdamW

    def old_torch_adamw(params, **kwargs):
        if kwargs.get("fused"):
            raise RuntimeError(
                "`fused=True` requires all the params to be floating point Tensors of supported devices"
            )
        return real(params, **kwargs)

    monkeypatch.setattr(optim.torch.optim, "AdamW", old_torch_adamw)
    optimizer = optim.build_optimizer(torch.nn.Linear(3, 2), TrainConfig(lr=1e-3, lr_backbone=0.0))
    assert not optimizer.param_groups[0]["fused"] and optimizer.param_groups[0]["lr"] == 1e-3


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_mixed_precision_trains_and_resumes(dataset, tmp_path):
    import math

    from vistr_core.engine.device import training_precision

    overrides = {**FAST, "max_iters": 2, "amp": True}
    first = train(dataset, preset=micro_preset(), out_dir=tmp_path / "r", overrides=overrides, device="cuda")
    assert all(math.isfinite(v) for v in first.losses.values())
    ckpt = read_checkpoint(first.last_checkpoint)
    fp16 = training_precision(True, torch.device("cuda")).name == "fp16"
    assert first.precision.name == ("fp16" if fp16 else "bf16")
    assert (ckpt["scaler"] is not None) == fp16  # loss scaling only for fp16; bf16 needs none
    resumed = train(
        dataset, preset=micro_preset(), out_dir=tmp_path / "r", overrides={**overrides, "max_iters": 3},
        device="cuda", resume=True,
    )  # fmt: skip
    assert resumed.steps == 3


def test_backbone_calibration_runs_once_from_the_training_clips(dataset, tmp_path):
    """calibrate_backbone sets the frozen BN statistics before step 1, the same way every time;
    --init-from (pretrained statistics) and --resume (saved statistics) leave them alone."""
    stats = "vistr.backbone.0.body.layer4.1.bn2.running_var"
    calibrated = run(dataset, tmp_path / "a", overrides={"max_iters": 1, "calibrate_backbone": True})
    again = run(dataset, tmp_path / "b", overrides={"max_iters": 1, "calibrate_backbone": True})
    plain = run(dataset, tmp_path / "c", overrides={"max_iters": 1, "calibrate_backbone": False})
    var = weights(calibrated.last_checkpoint)[stats]
    assert torch.equal(var, weights(again.last_checkpoint)[stats])
    assert torch.equal(weights(plain.last_checkpoint)[stats], torch.ones_like(var))
    assert not torch.allclose(var, torch.ones_like(var), atol=0.1)
    start = run(
        dataset, tmp_path / "d", init_from=plain.last_checkpoint,
        overrides={"max_iters": 1, "calibrate_backbone": True},
    )  # fmt: skip
    assert torch.equal(weights(start.last_checkpoint)[stats], torch.ones_like(var))
