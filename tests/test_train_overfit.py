"""Slow: the `tiny` preset learns a small synthetic set (loss falls, AP on it rises above chance)."""

from __future__ import annotations

import dataclasses
import json

import pytest

from vistr_core import train
from vistr_core.data.synthetic import generate_synthetic
from vistr_core.presets import get_preset

STEPS = 400


@pytest.fixture(scope="module")
def overfit(tmp_path_factory):
    """One untrained-ish run (1 step) and one of STEPS steps on two easy videos, both scored on
    those same videos with the official metric."""
    tmp = tmp_path_factory.mktemp("overfit")
    root = tmp / "data"
    generate_synthetic(root, videos=2, valid_videos=1, frames=6, size=(64, 80), seed=1, difficulty="easy")
    tiny = get_preset("tiny")
    # small frames and light augmentation, so a few hundred CPU steps suffice to memorize two videos
    data = dataclasses.replace(
        tiny.data, short_side=64, max_size=96, train_scales=(64,), train_max_size=96, photometric=False
    )
    preset = dataclasses.replace(tiny, data=data)
    # 2 clips per epoch: count in steps (no epoch cap, no learning-rate drop)
    overrides = {
        "max_iters": STEPS,
        "epochs": STEPS,
        "lr_drop": STEPS,
        "workers": 0,
        "log_every": 20,
        "checkpoint_every": 10**6,  # only the final last.pt
    }
    start = train(
        root, preset=preset, out_dir=tmp / "start", device="cpu", eval_split="train",
        overrides={**overrides, "max_iters": 1, "eval_every": 1},
    )  # fmt: skip
    summary = train(
        root, preset=preset, out_dir=tmp / "run", device="cpu", eval_split="train",
        overrides={**overrides, "eval_every": STEPS},
    )  # fmt: skip
    losses = [json.loads(line)["loss"] for line in (tmp / "run" / "metrics.jsonl").read_text().splitlines()]
    return start, summary, losses


@pytest.mark.slow
def test_loss_falls_steadily(overfit):
    _, _, losses = overfit
    quarter, half = len(losses) // 4, len(losses) // 2
    assert sum(losses[half:]) / (len(losses) - half) < sum(losses[:half]) / half
    assert sum(losses[-quarter:]) / quarter < 0.6 * sum(losses[:quarter]) / quarter, losses


@pytest.mark.slow
def test_ap_on_training_videos_rises_well_above_chance(overfit):
    start, summary, _ = overfit
    chance, trained = start.evaluations[1]["AP"], summary.evaluations[STEPS]["AP"]
    assert trained > 0.25 and trained > chance + 0.2, (chance, trained)
