"""Numerical parity with the reference VisTR.

The fixture holds outputs of the official implementation for seeded weights. Shapes it does not
cover (other T, n, sizes, hidden widths) are checked against ``reference_forward`` below: a
loop-based re-statement of the reference (frames and slots in Python loops, torch's own
multi-head attention math, the concatenated mask-head input, torchvision's deformable conv),
itself checked against the fixture.
"""

from __future__ import annotations

import dataclasses
import importlib.util
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
import torchvision

from vistr_core.config import ModelConfig
from vistr_core.model import build_vistr
from vistr_core.model.loading import load_model
from vistr_core.presets import get_preset

PARITY = Path(__file__).parent / "fixtures" / "parity"


def _mha(attn, query, key, value, key_padding_mask=None):
    """Sequence-first [L, 1, d] multi-head attention through F.multi_head_attention_forward."""
    out, _ = F.multi_head_attention_forward(
        query, key, value, attn.embed_dim, attn.num_heads, attn.in_proj_weight, attn.in_proj_bias,
        None, None, False, 0.0, attn.out_proj.weight, attn.out_proj.bias,
        training=False, key_padding_mask=key_padding_mask, need_weights=False,
    )  # fmt: skip
    return out


def _transformer(tr, src, pos, query_embed):
    """src, pos: [L, 1, d] -> hs [layers, Q, d], memory [L, 1, d]."""
    for layer in tr.encoder.layers:
        q = src + pos
        src = layer.norm1(src + _mha(layer.self_attn, q, q, src))
        src = layer.norm2(src + layer.linear2(F.relu(layer.linear1(src))))
    memory = src
    query_pos = query_embed[:, None]
    tgt = torch.zeros_like(query_pos)
    hs = []
    for layer in tr.decoder.layers:
        q = tgt + query_pos
        tgt = layer.norm1(tgt + _mha(layer.self_attn, q, q, tgt))
        tgt = layer.norm2(tgt + _mha(layer.multihead_attn, tgt + query_pos, memory + pos, memory))
        tgt = layer.norm3(tgt + layer.linear2(F.relu(layer.linear1(tgt))))
        hs.append(tr.decoder.norm(tgt)[:, 0])
    return torch.stack(hs), memory


def _attention_maps(att, q, memory_f):
    """q: [n, d]; memory_f: [d, h, w] -> [n, heads, h, w], softmax over heads*h*w."""
    heads = att.num_heads
    qh = att.q_linear(q).view(q.shape[0], heads, -1) * att.normalize_fact
    k = F.conv2d(memory_f[None], att.k_linear.weight[:, :, None, None], att.k_linear.bias)[0]
    kh = k.view(heads, -1, *k.shape[-2:])
    w = torch.einsum("nkc,kchw->nkhw", qh, kh)
    return F.softmax(w.flatten(1), dim=-1).view(w.shape)


def _mask_head(mh, x, attn, fpns):
    """x: [d, h, w] (one frame), attn: [n, heads, h, w], fpns: three [C, H, W] -> [n, C5, H4, W4]."""
    n = attn.shape[0]
    x = torch.cat([x[None].expand(n, -1, -1, -1), attn], 1)
    x = F.relu(mh.gn1(mh.lay1(x)))
    x = F.relu(mh.gn2(mh.lay2(x)))
    for adapter, lay, gn, fpn in (
        (mh.adapter1, mh.lay3, mh.gn3, fpns[0]),
        (mh.adapter2, mh.lay4, mh.gn4, fpns[1]),
    ):
        cur = adapter(fpn[None]).expand(n, -1, -1, -1)
        x = cur + F.interpolate(x, size=cur.shape[-2:], mode="nearest")
        x = F.relu(gn(lay(x)))
    cur = mh.adapter3(fpns[2][None]).expand(n, -1, -1, -1)
    x = cur + F.interpolate(x, size=cur.shape[-2:], mode="nearest")
    offset = mh.conv_offset(x)
    x = torchvision.ops.deform_conv2d(x, offset, mh.dcn.weight, padding=(1, 1))
    return F.relu(mh.gn5(x))


@torch.no_grad()
def reference_forward(model, frames):
    """frames: [T, 3, H, W] -> frame-major pred_logits [T*n, K+1], pred_boxes [T*n, 4], pred_masks [T*n, H4, W4]."""
    det = model.vistr
    t, n = det.num_frames, det.num_instances
    feats = list(det.backbone[0].body(frames).values())  # layer1..4, each [T, C, h, w]
    src = det.input_proj(feats[3])
    d, h, w = src.shape[1:]
    pos = det.backbone[1](torch.zeros(1, t, h, w, dtype=torch.bool))[0]  # [T, d, h, w]
    seq = src.permute(0, 2, 3, 1).reshape(t * h * w, 1, d)
    pos_seq = pos.permute(0, 2, 3, 1).reshape(t * h * w, 1, d)
    if det.transformer.position_in_memory:  # not in the paper: the `tiny` preset's encoder input
        seq = seq + pos_seq
    hs, memory = _transformer(det.transformer, seq, pos_seq, det.query_embed.weight)
    logits = det.class_embed(hs[-1])
    boxes = det.bbox_embed(hs[-1]).sigmoid()
    memory = memory[:, 0].view(t, h, w, d).permute(0, 3, 1, 2)  # [T, d, h, w]
    per_frame = []
    for f in range(t):
        q = hs[-1][f * n : (f + 1) * n]
        attn = _attention_maps(model.bbox_attention, q, memory[f])
        per_frame.append(
            _mask_head(model.mask_head, memory[f], attn, [feats[2][f], feats[1][f], feats[0][f]])
        )
    seg = torch.stack(per_frame)  # [T, n, C, H4, W4]
    masks = []
    for i in range(n):
        x = seg[:, i].permute(1, 0, 2, 3)[None]  # [1, C, T, H4, W4]
        for layer in model.insmask_head:
            x = layer(x)
        masks.append(x[0, 0])  # [T, H4, W4]
    masks = torch.stack(masks, 1).flatten(0, 1)  # [T*n, H4, W4], frame-major
    return logits, boxes, masks


def seeded_state_dict(manifest, seed):
    spec = importlib.util.spec_from_file_location("seeded_weights", f"{PARITY}/seeded_weights.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.seeded_state_dict(manifest, seed)


@pytest.fixture(scope="module")
def case():
    return torch.load(f"{PARITY}/case_resnet50_T3_n4_96x128.pt", weights_only=True)


@pytest.fixture(scope="module")
def parity_model(case, tmp_path_factory):
    sd = seeded_state_dict(f"{PARITY}/case_resnet50_T3_n4.tsv", case["seed"])
    path = tmp_path_factory.mktemp("parity") / "official_T3_n4.pth"
    torch.save({"model": sd}, path)
    return load_model(path, num_frames=3)


def instance_major(x, t, n):
    """Reference [1, T*n, ...] (query t*n + i) -> [n, T, ...]."""
    return x[0].reshape(t, n, *x.shape[2:]).transpose(0, 1)


def test_official_format_matches_reference_outputs(case, parity_model):
    t, n = case["T"], case["n"]
    assert not parity_model.training
    with torch.no_grad():
        out = parity_model(case["input"][None])
    assert out["pred_logits"].shape == (1, n, t, 42)
    torch.testing.assert_close(
        out["pred_logits"][0], instance_major(case["pred_logits"], t, n), atol=1e-3, rtol=0
    )
    torch.testing.assert_close(
        out["pred_boxes"][0], instance_major(case["pred_boxes"], t, n), atol=1e-4, rtol=0
    )
    torch.testing.assert_close(
        out["pred_masks"][0], instance_major(case["pred_masks"], t, n), atol=1e-3, rtol=0
    )


def test_loop_reference_matches_fixture(case, parity_model):
    """Grounds tests/model_reference.py: the loop version reproduces the official outputs."""
    logits, boxes, masks = reference_forward(parity_model, case["input"])
    torch.testing.assert_close(logits, case["pred_logits"][0], atol=1e-3, rtol=0)
    torch.testing.assert_close(boxes, case["pred_boxes"][0], atol=1e-4, rtol=0)
    torch.testing.assert_close(masks, case["pred_masks"][0], atol=1e-3, rtol=0)


def _check_against_loops(model, frames):
    t, n = model.num_frames, model.num_instances
    with torch.no_grad():
        out = model(frames[None])
    logits, boxes, masks = reference_forward(model, frames)
    torch.testing.assert_close(
        out["pred_logits"][0], logits.view(t, n, -1).transpose(0, 1), atol=1e-4, rtol=1e-4
    )
    torch.testing.assert_close(out["pred_boxes"][0], boxes.view(t, n, 4).transpose(0, 1), atol=1e-5, rtol=0)
    torch.testing.assert_close(
        out["pred_masks"][0], masks.view(t, n, *masks.shape[1:]).transpose(0, 1), atol=1e-4, rtol=1e-4
    )


def _randomize_offsets(model):
    # Zero-initialized offsets would make the deformable conv a plain conv; exercise real offsets.
    with torch.no_grad():
        model.mask_head.conv_offset.weight.normal_(0, 0.05)
        model.mask_head.conv_offset.bias.normal_(0, 0.5)


@pytest.mark.parametrize(
    ("t", "n", "size"),
    [(1, 1, (64, 64)), (2, 3, (61, 83)), (5, 2, (97, 50)), (4, 4, (33, 129))],
)
def test_batched_equals_loops_tiny(t, n, size):
    torch.manual_seed(t * 10 + n)
    cfg = dataclasses.replace(get_preset("tiny").model, num_frames=t, num_instances=n, num_classes=3)
    model = build_vistr(cfg).eval()
    _randomize_offsets(model)
    _check_against_loops(model, torch.randn(t, 3, *size))


def test_batched_equals_loops_dilated_backbone():
    """DC5 (dilated layer4): the first mask-head fusion has no upsampling."""
    torch.manual_seed(5)
    cfg = ModelConfig(
        backbone="resnet50", dilation=True, hidden_dim=96, enc_layers=1, dec_layers=1,
        dim_feedforward=128, num_frames=2, num_instances=2, num_classes=3,
    )  # fmt: skip
    model = build_vistr(cfg).eval()
    _randomize_offsets(model)
    _check_against_loops(model, torch.randn(2, 3, 70, 90))


def test_batched_equals_loops_full_width_r50():
    """d=384, 8 heads, R50 FPN widths, odd frame size, T and n not in the fixture."""
    torch.manual_seed(3)
    model = build_vistr(ModelConfig(num_frames=2, num_instances=3, enc_layers=2, dec_layers=2)).eval()
    _randomize_offsets(model)
    _check_against_loops(model, torch.randn(2, 3, 75, 101))
