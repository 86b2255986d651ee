"""VisTR forward contract: shapes, instance-major layout, aux outputs, batching, padding, gradients."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from vistr_core.config import ModelConfig
from vistr_core.model import VisTR, build_vistr
from vistr_core.presets import get_preset


def tiny_config(**changes) -> ModelConfig:
    return dataclasses.replace(get_preset("tiny").model, **changes)


@pytest.fixture(scope="module")
def tiny_model() -> VisTR:
    torch.manual_seed(0)
    return build_vistr(tiny_config(num_frames=3, num_instances=2, num_classes=5)).eval()


def test_output_contract_shapes(tiny_model):
    frames = torch.randn(2, 3, 3, 70, 90)
    with torch.no_grad():
        out = tiny_model(frames)
    assert out["pred_logits"].shape == (2, 2, 3, 6)
    assert out["pred_boxes"].shape == (2, 2, 3, 4)
    assert out["pred_masks"].shape == (2, 2, 3, 18, 23)  # ceil(70/4), ceil(90/4)
    assert ((out["pred_boxes"] >= 0) & (out["pred_boxes"] <= 1)).all()
    assert "aux_outputs" not in out
    assert tiny_model.config.hidden_dim == 192


def test_aux_outputs_in_training():
    model = build_vistr(tiny_config(num_frames=2, num_instances=3, num_classes=4)).train()
    out = model(torch.randn(1, 2, 3, 64, 64))
    aux = out["aux_outputs"]
    assert len(aux) == model.config.dec_layers - 1
    assert aux[0]["pred_logits"].shape == (1, 3, 2, 5)
    assert aux[0]["pred_boxes"].shape == (1, 3, 2, 4)


def test_wrong_clip_length_is_rejected(tiny_model):
    with pytest.raises(ValueError, match="3 frames"):
        tiny_model(torch.randn(1, 4, 3, 64, 64))
