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


def _close(a, b, atol=1e-4):
    torch.testing.assert_close(a, b, atol=atol, rtol=1e-4)


def test_batch_of_two_equals_each_alone(tiny_model):
    clips = torch.randn(2, 3, 3, 64, 96)
    with torch.no_grad():
        both = tiny_model(clips)
        alone = [tiny_model(clips[i : i + 1]) for i in range(2)]
    for i in range(2):
        for key in ("pred_logits", "pred_boxes", "pred_masks"):
            _close(both[key][i], alone[i][key][0])


def test_zero_padding_changes_nothing_in_the_valid_region(tiny_model):
    """Clips of different sizes padded into one batch give their unpadded results."""
    a = torch.randn(3, 3, 61, 90)
    b = torch.randn(3, 3, 96, 77)
    batch = torch.zeros(2, 3, 3, 96, 90)
    mask = torch.ones(2, 3, 96, 90, dtype=torch.bool)
    batch[0, :, :, :61, :90], mask[0, :, :61, :90] = a, False
    batch[1, :, :, :96, :77], mask[1, :, :96, :77] = b, False
    with torch.no_grad():
        out = tiny_model(batch, mask)
        alone = [tiny_model(a[None]), tiny_model(b[None])]
    assert out["pred_masks"].shape == (2, 2, 3, 24, 23)
    for i, ref in enumerate(alone):
        _close(out["pred_logits"][i], ref["pred_logits"][0])
        _close(out["pred_boxes"][i], ref["pred_boxes"][0])
        h, w = ref["pred_masks"].shape[-2:]
        _close(out["pred_masks"][i, ..., :h, :w], ref["pred_masks"][0])
        assert torch.isfinite(out["pred_masks"][i]).all()


def test_pad_mask_without_padding_is_a_no_op(tiny_model):
    clip = torch.randn(1, 3, 3, 64, 64)
    with torch.no_grad():
        a = tiny_model(clip)
        b = tiny_model(clip, torch.zeros(1, 3, 64, 64, dtype=torch.bool))
    _close(a["pred_masks"], b["pred_masks"], atol=0)


def test_padding_inside_a_clip_follows_the_reference_masks(tiny_model):
    """Padding that cannot be cropped (one frame smaller than the others) runs masked, finitely."""
    clip = torch.randn(1, 3, 3, 64, 64)
    mask = torch.zeros(1, 3, 64, 64, dtype=torch.bool)
    mask[0, 1, :, 40:] = True
    with torch.no_grad():
        out = tiny_model(clip, mask)
    assert all(torch.isfinite(v).all() for k, v in out.items())


def test_gradients_reach_trainable_and_spare_frozen_parameters():
    torch.manual_seed(0)
    model = build_vistr(tiny_config(num_frames=2, num_instances=2, num_classes=3)).train()
    with torch.no_grad():  # a generic point: non-zero offsets and biases (many start at zero)
        for name, p in model.named_parameters():
            if name.endswith("bias") and p.requires_grad:
                p.normal_(0, 0.3 if "conv_offset" in name else 0.02)
    out = model(torch.randn(1, 2, 3, 64, 64))
    loss = out["pred_logits"].sum() + out["pred_boxes"].sum() + out["pred_masks"].sigmoid().sum()
    loss = loss + sum(a["pred_logits"].sum() + a["pred_boxes"].sum() for a in out["aux_outputs"])
    loss.backward()
    # The first decoder self-attention sees tgt = 0: its values are the bias alone and its output
    # does not depend on q/k, so its in_proj_weight gets an exactly zero gradient (as in DETR).
    inert = "vistr.transformer.decoder.layers.0.self_attn.in_proj_weight"
    frozen, trainable = [], []
    for name, p in model.named_parameters():
        (trainable if p.requires_grad else frozen).append(name)
        if name == inert:
            assert p.grad is not None
        elif p.requires_grad:
            assert p.grad is not None and p.grad.abs().sum() > 0, name
        else:
            assert p.grad is None, name
    body = "vistr.backbone.0.body."
    assert set(frozen) == {
        n for n, _ in model.named_parameters() if n.startswith((body + "conv1", body + "layer1"))
    }
    assert any(n.startswith(body + "layer2") for n in trainable)
    assert not any("bn" in n or "downsample.1" in n for n, _ in model.named_parameters())


def test_attention_equals_torch_multihead_attention():
    from vistr_core.model.transformer import MultiheadAttention

    torch.manual_seed(0)
    ours = MultiheadAttention(48, 8, dropout=0.1).eval()
    ref = torch.nn.MultiheadAttention(48, 8, dropout=0.1).eval()
    ref.load_state_dict(ours.state_dict())
    q, k, v = torch.randn(3, 2, 7, 48).unbind(0)
    k = torch.randn(2, 11, 48)
    v = torch.randn(2, 11, 48)
    pad = torch.zeros(2, 11, dtype=torch.bool)
    pad[1, 6:] = True
    expected, _ = ref(q.transpose(0, 1), k.transpose(0, 1), v.transpose(0, 1), key_padding_mask=pad)
    _close(ours(q, k, v, pad), expected.transpose(0, 1), atol=1e-5)
    expected_self, _ = ref(q.transpose(0, 1), q.transpose(0, 1), q.transpose(0, 1))
    _close(ours(q, q, q), expected_self.transpose(0, 1), atol=1e-5)


def test_position_encoding_layout():
    from vistr_core.model.position_encoding import PositionEmbeddingSine3D

    pe = PositionEmbeddingSine3D(4)
    pos = pe(torch.zeros(1, 2, 3, 5, dtype=torch.bool))  # [1, T, 12, h, w]
    assert pos.shape == (1, 2, 12, 3, 5)
    two_pi = 2 * torch.pi
    # channel 0 = sin(t-coordinate), t normalized to (t+1)/T * 2pi; channel 4 = sin(y); 8 = sin(x)
    torch.testing.assert_close(pos[0, 1, 0, 0, 0], torch.tensor(two_pi).sin(), atol=1e-5, rtol=0)
    torch.testing.assert_close(pos[0, 0, 1, 0, 0], torch.tensor(two_pi / 2).cos(), atol=1e-5, rtol=0)
    torch.testing.assert_close(pos[0, 0, 4, 2, 0], torch.tensor(two_pi).sin(), atol=1e-5, rtol=0)
    torch.testing.assert_close(pos[0, 0, 8, 0, 1], torch.tensor(two_pi * 2 / 5).sin(), atol=1e-5, rtol=0)
    torch.testing.assert_close(
        pos[0, 0, 10, 0, 1], torch.tensor(two_pi * 2 / 5 / 100).sin(), atol=1e-5, rtol=0
    )


def test_parameter_counts_match_the_reference():
    """vistr-facts.md section 2.7: 57,116,129 parameters, 56,893,729 trainable (stem + layer1 frozen)."""
    model = build_vistr(get_preset("vistr_r50").model)
    assert sum(p.numel() for p in model.parameters()) == 57_116_129
    assert sum(p.numel() for p in model.parameters() if p.requires_grad) == 56_893_729


@pytest.mark.parametrize("name", ["resnet18", "resnet50"])
def test_dc5_is_the_a_trous_form_of_the_strided_backbone(name):
    """DC5 (layer4 at stride 16) sampled at even positions equals the stride-32 layer4 with the
    same weights: exact for Bottleneck (torchvision's rewiring) and for BasicBlock (ours)."""
    from vistr_core.model.backbone import Backbone

    strided = Backbone(name).eval()
    dilated = Backbone(name, dilation=True).eval()
    dilated.load_state_dict(strided.state_dict())
    images = torch.randn(2, 3, 70, 100, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        coarse, fine = strided(images, None)[3][0], dilated(images, None)[3][0]
    assert fine.shape[-2:] == (5, 7) and coarse.shape[-2:] == (3, 4)
    torch.testing.assert_close(fine[..., ::2, ::2], coarse, atol=1e-4, rtol=1e-4)
    assert not torch.allclose(fine[..., 1::2, 1::2], coarse[..., :2, :3], atol=1e-2)


def test_tiny_dc5_model_runs_at_stride_16():
    model = build_vistr(tiny_config(dilation=True, num_frames=2, num_instances=2, num_classes=3)).eval()
    with torch.no_grad():
        out = model(torch.randn(1, 2, 3, 64, 96))
    assert out["pred_masks"].shape == (1, 2, 2, 16, 24)
    assert out["pred_logits"].shape == (1, 2, 2, 4)


@pytest.mark.parametrize(
    "shape",
    [(2, 6, 4, 8, 10), (1, 5, 3, 7, 9), (3, 4, 1, 2, 5), (1, 3, 6, 6, 8), (2, 3, 7, 5, 6), (1, 2, 12, 4, 5)],
)
def test_subgrid_dilated_conv3d_equals_the_dilated_kernel(shape):
    """The training path of the 3-D head's dilated convs: same values and gradients as PyTorch's
    dilated Conv3d, for even and odd T, H, W; sub-grids of 1-2 frames (folded into a 2-D conv)
    and of 3, 4 and 6 (the 3-D kernel)."""
    from vistr_core.model.segmentation import SubgridDilatedConv3d

    fast = SubgridDilatedConv3d(shape[1], 3, 3, padding=2, dilation=2)
    plain = torch.nn.Conv3d(shape[1], 3, 3, padding=2, dilation=2)
    plain.load_state_dict(fast.state_dict())
    x = torch.randn(shape)
    upstream = torch.randn(shape[0], 3, *shape[2:])
    grads = []
    for conv in (fast, plain):
        xi = x.clone().requires_grad_()
        out = conv(xi)
        out.backward(upstream)
        grads.append((out.detach(), xi.grad, conv.weight.grad, conv.bias.grad))
    for ours, ref in zip(*grads, strict=True):  # parameter gradients sum many float32 products
        torch.testing.assert_close(ours, ref, atol=1e-4, rtol=1e-5)
    with torch.no_grad():  # inference takes the plain kernel
        torch.testing.assert_close(fast(x), plain(x), atol=0, rtol=0)


def test_subgrid_dilated_conv3d_folds_longer_sub_grids_exactly(monkeypatch):
    """The 2-D fold with zero blocks (sub-grids of 3-4 frames, off by default for speed) still
    equals the dilated kernel, values and gradients."""
    import vistr_core.model.segmentation as segmentation

    monkeypatch.setattr(segmentation, "MAX_FOLDED_FRAMES", 4)
    test_subgrid_dilated_conv3d_equals_the_dilated_kernel((2, 3, 7, 5, 6))
    test_subgrid_dilated_conv3d_equals_the_dilated_kernel((1, 4, 6, 6, 8))


def test_subgrid_dilated_conv3d_weight_gradient_under_bf16_autocast():
    """The head's training path under ``--amp`` at the quickstart's shapes (T=4: sub-grids of 2
    frames, several instances): gradients within bf16 rounding of float64's. Guards the layout: in
    channels-last-3d, torch 2.14's CPU bf16 weight gradient of such a conv is ~90 % wrong."""
    from vistr_core.model.segmentation import SubgridDilatedConv3d

    torch.manual_seed(0)
    fast = SubgridDilatedConv3d(12, 6, 3, padding=2, dilation=2)
    plain = torch.nn.Conv3d(12, 6, 3, padding=2, dilation=2).double()
    plain.load_state_dict(fast.state_dict())
    x = torch.randn(4, 12, 4, 20, 27)
    upstream = torch.randn(4, 6, 4, 20, 27)
    with torch.autocast("cpu", torch.bfloat16):
        fast(x.clone().requires_grad_()).float().backward(upstream)
    plain(x.double()).backward(upstream.double())
    for ours, ref in ((fast.weight.grad, plain.weight.grad), (fast.bias.grad, plain.bias.grad)):
        assert float((ours.double() - ref).norm() / ref.norm()) < 2e-2


@pytest.mark.parametrize("name", ["resnet18", "resnet50"])
def test_batchnorm_calibration_normalizes_every_layer(name):
    """After calibrating on frames of two sizes, every BN output (run through torchvision's own
    module forward, where hooks fire) is zero-mean, unit-variance per channel over those frames."""
    from torchvision.ops.misc import FrozenBatchNorm2d

    from vistr_core.model.backbone import Backbone

    torch.manual_seed(0)
    backbone = Backbone(name)
    g = torch.Generator().manual_seed(1)
    frames = [torch.randn(3, 3, 64, 80, generator=g) + 0.5, torch.randn(2, 3, 48, 96, generator=g)]
    backbone.calibrate_batchnorm(frames)
    outputs: dict[str, list[torch.Tensor]] = {}
    hooks = [
        module.register_forward_hook(
            lambda m, i, o, key=key: outputs.setdefault(key, []).append(o.clone())
        )  # before the in-place ReLU
        for key, module in backbone.body.named_modules()
        if isinstance(module, FrozenBatchNorm2d)
    ]
    with torch.no_grad():
        for clip in frames:
            backbone.body(clip)
    for hook in hooks:
        hook.remove()
    assert len(outputs) == (20 if name == "resnet18" else 53)
    for key, parts in outputs.items():
        values = torch.cat([p.transpose(0, 1).flatten(1) for p in parts], 1).double()
        assert values.mean(1).abs().max() < 1e-3, key
        assert (values.var(1, unbiased=False) - 1).abs().max() < 1e-2, key
    # The folded fast path computes the same features as the module forward (float32 rounding
    # of the folded weights accumulates over 16 bottlenecks: compare against the feature scale).
    with torch.no_grad():
        fast = backbone(frames[0], None)[3][0]
        slow = backbone.body(frames[0])["3"]
    assert (fast - slow).abs().max() < 1e-3 * slow.abs().max()


def test_mask_head_init_options_change_only_the_initialization():
    """attention_gain scales exactly lay1's attention-map weights; prior sets the final bias to
    logit(prior); nothing else changes, the state-dict keys included."""
    torch.manual_seed(3)
    plain = build_vistr(tiny_config(num_frames=2, num_instances=2, mask_attention_gain=1.0, mask_prior=None))
    torch.manual_seed(3)
    tuned = build_vistr(tiny_config(num_frames=2, num_instances=2, mask_attention_gain=32.0, mask_prior=0.1))
    a, b = plain.state_dict(), tuned.state_dict()
    assert a.keys() == b.keys()
    d = plain.mask_head.context_dim
    torch.testing.assert_close(
        b["mask_head.lay1.weight"][:, :d], a["mask_head.lay1.weight"][:, :d], rtol=0, atol=0
    )
    torch.testing.assert_close(b["mask_head.lay1.weight"][:, d:], 32 * a["mask_head.lay1.weight"][:, d:])
    different = {k for k in a if not torch.equal(a[k], b[k])}
    assert different == {"mask_head.lay1.weight", "insmask_head.9.bias"}
    torch.testing.assert_close(b["insmask_head.9.bias"].sigmoid(), torch.tensor([0.1]))


@pytest.mark.parametrize(
    "changes, message",
    [({"mask_attention_gain": 0.0}, "mask_attention_gain must be positive"),
     ({"mask_prior": 1.0}, "mask_prior must be a probability")],
)  # fmt: skip
def test_mask_head_init_options_are_validated(changes, message):
    from vistr_core.errors import ConfigError

    with pytest.raises(ConfigError, match=message):
        tiny_config(**changes)


@pytest.mark.parametrize("position_in_memory", [False, True])
def test_position_in_memory_makes_alike_tokens_differ(position_in_memory):
    """Every token of a uniform clip has the same features. Attention adds the position to queries
    and keys only, so the memory tokens stay identical; with ``position_in_memory`` each token
    carries its place and they differ."""
    torch.manual_seed(0)
    config = tiny_config(num_frames=2, num_instances=2, num_classes=3, position_in_memory=position_in_memory)
    model = build_vistr(config).eval()
    transformer = model.vistr.transformer
    assert transformer.position_in_memory is position_in_memory
    tokens = torch.randn(1, 1, config.hidden_dim).expand(1, 2 * 3 * 4, -1)
    pos = model.vistr.backbone[1](torch.zeros(1, 2, 3, 4, dtype=torch.bool))  # [1, T, d, h, w]
    pos = pos.permute(0, 1, 3, 4, 2).reshape(1, -1, config.hidden_dim)
    with torch.no_grad():
        _, memory = transformer(tokens, None, model.vistr.query_embed.weight, pos)
    spread = (memory - memory.mean(1, keepdim=True)).abs().max()
    assert bool(spread > 1e-2) == position_in_memory
