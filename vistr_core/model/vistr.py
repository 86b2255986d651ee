"""VisTR: backbone -> 3-D position encoding -> transformer -> sequence heads + mask branch.

Module tree (= official checkpoint keys): ``vistr.{backbone,input_proj,transformer,query_embed,
class_embed,bbox_embed}``, ``bbox_attention``, ``mask_head``, ``insmask_head``.

The reference orders its n*T queries frame-major (query t*n + i is slot i in frame t); the
transformer keeps that order (so weights mean the same thing) and the outputs are reordered to
instance-major [B, n, T, ...] once, after the decoder.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..config import ModelConfig
from .backbone import Backbone, Joiner
from .cpu_memory import keep_freed_memory
from .deferred_masks import DeferredMasks, GroupedDeferredMasks, pad_mask_edges
from .position_encoding import PositionEmbeddingSine3D
from .segmentation import InstanceSequenceHead, MaskHeadSmallConv, MHAttentionMap
from .transformer import Transformer


class MLP(nn.Module):
    """Linear layers with ReLU in between (``layers.0 .. layers.{k-1}``)."""

    def __init__(self, input_dim: int, hidden_dim: int, output_dim: int, num_layers: int) -> None:
        super().__init__()
        dims = [input_dim] + [hidden_dim] * (num_layers - 1)
        outs = [hidden_dim] * (num_layers - 1) + [output_dim]
        self.layers = nn.ModuleList(nn.Linear(i, o) for i, o in zip(dims, outs, strict=True))

    def forward(self, x: Tensor) -> Tensor:
        for i, layer in enumerate(self.layers):
            x = layer(x)
            if i < len(self.layers) - 1:
                x = F.relu(x)
        return x


class VisTRDetector(nn.Module):
    """The detection part (checkpoint prefix ``vistr.``): features, transformer, class/box heads."""

    def __init__(
        self,
        backbone: Joiner,
        transformer: Transformer,
        *,
        num_classes: int,
        num_frames: int,
        num_instances: int,
    ) -> None:
        super().__init__()
        d = transformer.d_model
        self.num_frames = num_frames
        self.num_instances = num_instances
        self.transformer = transformer
        self.class_embed = nn.Linear(d, num_classes + 1)
        self.bbox_embed = MLP(d, d, 4, 3)
        self.query_embed = nn.Embedding(num_frames * num_instances, d)
        self.input_proj = nn.Conv2d(backbone.num_channels, d, kernel_size=1)
        self.backbone = backbone


class VisTR(nn.Module):
    """VisTR with the instance sequence segmentation branch.

    ``forward(frames, pad_mask=None)``: see :meth:`forward`. ``.config`` is the ModelConfig it was
    built from; :func:`vistr_core.load_model` also attaches ``.categories`` and ``.data_config``.
    """

    def __init__(
        self,
        detector: VisTRDetector,
        *,
        aux_loss: bool = True,
        mask_attention_gain: float = 1.0,
        mask_prior: float | None = None,
    ) -> None:
        super().__init__()
        self.vistr = detector
        d = detector.transformer.d_model
        heads = detector.transformer.nhead
        self.aux_loss = aux_loss
        self.bbox_attention = MHAttentionMap(d, d, heads)
        self.mask_head = MaskHeadSmallConv(
            d + heads, detector.backbone.fpn_channels, d, attention_gain=mask_attention_gain
        )
        self.insmask_head = InstanceSequenceHead(self.mask_head.out_channels, prior=mask_prior)
        self.config: ModelConfig | None = None

    @property
    def memory_stride(self) -> int:
        """Pixels per encoder token (32, or 16 with a dilated layer4)."""
        return self.vistr.backbone.stride

    @property
    def num_frames(self) -> int:
        return self.vistr.num_frames

    @property
    def num_instances(self) -> int:
        return self.vistr.num_instances

    def forward(
        self, frames: Tensor, pad_mask: Tensor | None = None, *, defer_masks: bool = False
    ) -> dict[str, Any]:
        """frames: [B, T, 3, H, W] ImageNet-normalized; pad_mask: [B, T, H, W] bool (True = padding).

        Returns ``pred_logits`` [B, n, T, K+1] (last = no object), ``pred_boxes`` [B, n, T, 4]
        (cx, cy, w, h in [0, 1]), ``pred_masks`` [B, n, T, ceil(H/4), ceil(W/4)] logits and, in
        training with aux_loss, ``aux_outputs`` (logits and boxes of the earlier decoder layers).
        In training also ``memory_logits`` [B, T, h, w, K+1] and ``memory_boxes`` [B, T, h, w, 4]:
        the class and box heads read on every encoder memory token (h, w = the token grid,
        ``memory_stride`` pixels a cell; zeros beyond a smaller clip's grid), for the training-only
        dense memory losses (:func:`vistr_core.losses.memory_class_loss`, ``memory_box_loss``).

        Padding: each clip is cropped to its valid (top-left anchored) extent and clips of equal
        size run together, so a padded clip gives exactly its unpadded result. Mask logits
        outside a clip's valid /4 area repeat the nearest valid value (edge replication).

        ``defer_masks``: ``pred_masks`` is a :class:`~vistr_core.model.deferred_masks.DeferredMasks`
        that computes the masks of the slots asked for (training: the matched ones), equal to
        these.
        """
        b, t, _, h, w = frames.shape
        if t != self.num_frames:
            raise ValueError(f"this model takes clips of {self.num_frames} frames, got {t}")
        if pad_mask is None or not bool(pad_mask.any()):
            return self._forward_clips(frames, None, defer_masks)
        extents = _valid_extents(pad_mask)
        if all(e == (h, w) for e in extents):
            return self._forward_clips(frames, pad_mask, defer_masks)
        groups: dict[tuple[int, int], list[int]] = {}
        for i, e in enumerate(extents):
            groups.setdefault(e, []).append(i)
        parts = []
        for (vh, vw), idx in groups.items():
            index = torch.tensor(idx, device=frames.device)
            sub_mask = pad_mask[index, :, :vh, :vw]
            out = self._forward_clips(
                frames[index, :, :, :vh, :vw], sub_mask if bool(sub_mask.any()) else None, defer_masks
            )
            parts.append((index, out))
        return _merge_groups(parts, b, mask_size=(-(-h // 4), -(-w // 4)))

    def _forward_clips(self, frames: Tensor, pad_mask: Tensor | None, defer_masks: bool) -> dict[str, Any]:
        """The reference computation for clips of one size: [B, T, 3, H, W] -> output dict."""
        b, t = frames.shape[:2]
        flat_mask = pad_mask.flatten(0, 1) if pad_mask is not None else None
        features = self.vistr.backbone[0](frames.flatten(0, 1), flat_mask)  # layer1..4, [B*T, C, h, w]
        feat4, mask4 = features[-1]
        hs, memory = self._transformer(feat4, mask4, b, t)
        logits = self.vistr.class_embed(hs)
        boxes = self.vistr.bbox_embed(hs).sigmoid()
        out: dict[str, Any] = {"pred_logits": logits[-1], "pred_boxes": boxes[-1]}
        if self.training and self.aux_loss:
            out["aux_outputs"] = [
                {"pred_logits": lg, "pred_boxes": bx} for lg, bx in zip(logits[:-1], boxes[:-1], strict=True)
            ]
        if self.training:
            out["memory_logits"] = self.vistr.class_embed(memory)  # [B, T, h, w, K+1]
            out["memory_boxes"] = self.vistr.bbox_embed(memory).sigmoid()  # [B, T, h, w, 4]
        mask4 = mask4.view(b, t, *mask4.shape[-2:]) if mask4 is not None else None
        fpns = [features[i][0] for i in (2, 1, 0)]  # layer3, layer2, layer1: [B*T, C, H_l, W_l]

        def branch(queries: Tensor, rows: Tensor | None) -> Tensor:
            return self._mask_branch(queries, memory, mask4, fpns, rows)

        if defer_masks:
            size = (-(-frames.shape[-2] // 4), -(-frames.shape[-1] // 4))
            out["pred_masks"] = DeferredMasks(branch, hs[-1], size)
        else:
            out["pred_masks"] = branch(hs[-1], None)
        return out

    def _mask_branch(
        self, queries: Tensor, memory: Tensor, mask4: Tensor | None, fpns: list[Tensor], rows: Tensor | None
    ) -> Tensor:
        """Mask logits [B', m, T, H/4, W/4] of ``queries`` [B', m, T, d] (decoder outputs) over the
        clips ``rows`` [B'] of memory [B, T, h, w, d], mask4 [B, T, h, w] and fpns [B*T, C, H_l, W_l]
        (None: all B clips)."""
        if rows is not None:
            b, t = memory.shape[:2]
            memory = memory[rows]
            mask4 = mask4[rows] if mask4 is not None else None
            fpns = [f.view(b, t, *f.shape[1:])[rows].flatten(0, 1) for f in fpns]
        b, t, hh, ww, d = memory.shape
        attn = self.bbox_attention(queries, memory, mask4)  # [B', m, T, heads, h, w]
        memory_maps = memory.view(b * t, hh, ww, d).permute(0, 3, 1, 2)  # channels-last view
        seg = self.mask_head(memory_maps, attn, fpns)
        masks = self.insmask_head(seg, t)  # [B'*m, T, H/4, W/4]
        return masks.view(b, queries.shape[1], t, *masks.shape[-2:])

    def _transformer(self, feat4: Tensor, mask4: Tensor | None, b: int, t: int) -> tuple[Tensor, Tensor]:
        """feat4: [B*T, C, h, w] layer4; mask4: [B*T, h, w] or None.

        Returns hs [layers, B, n, T, d] (instance-major) and memory [B, T, h, w, d].
        """
        det = self.vistr
        hh, ww = feat4.shape[-2:]
        pe_mask = mask4 if mask4 is not None else feat4.new_zeros((b * t, hh, ww), dtype=torch.bool)
        pos = det.backbone[1](pe_mask.view(b, t, hh, ww))  # [B, T, d, h, w]
        src = det.input_proj(feat4)  # [B*T, d, h, w]
        d = src.shape[1]
        tokens = src.permute(0, 2, 3, 1).reshape(b, t * hh * ww, d)  # frame-major (t, y, x)
        pos_tokens = pos.permute(0, 1, 3, 4, 2).reshape(b, t * hh * ww, d)
        key_mask = mask4.view(b, t * hh * ww) if mask4 is not None else None
        hs, memory = det.transformer(tokens, key_mask, det.query_embed.weight, pos_tokens)
        # Frame-major queries (t*n + i) -> instance-major.
        hs = hs.view(hs.shape[0], b, t, det.num_instances, d).transpose(2, 3)
        return hs, memory.view(b, t, hh, ww, d)


def _valid_extents(pad_mask: Tensor) -> list[tuple[int, int]]:
    """Per clip, the (rows, cols) up to the last non-padded pixel of any frame: pad_mask [B, T, H, W]."""
    valid = ~pad_mask
    rows = valid.any(dim=3).any(dim=1)  # [B, H]
    cols = valid.any(dim=2).any(dim=1)  # [B, W]
    extents = []
    for r, c in zip(rows, cols, strict=True):
        if not bool(r.any()):
            raise ValueError("a clip is padding everywhere (pad_mask all True)")
        extents.append((int(r.nonzero().max()) + 1, int(c.nonzero().max()) + 1))
    return extents


def _pad_grid(logits: Tensor, grid: list[int]) -> Tensor:
    """[B, T, h, w, C] -> [B, T, *grid, C], zeros below and to the right."""
    return F.pad(logits, (0, 0, 0, grid[1] - logits.shape[3], 0, grid[0] - logits.shape[2]))


def _merge_groups(
    parts: list[tuple[Tensor, dict[str, Any]]], b: int, *, mask_size: tuple[int, int]
) -> dict[str, Any]:
    """Scatter per-size-group outputs back into batch order."""
    order = torch.cat([idx for idx, _ in parts]).argsort()

    def gather(tensors: list[Tensor]) -> Tensor:
        return torch.cat(tensors)[order]

    outs = [o for _, o in parts]
    merged: dict[str, Any] = {
        "pred_logits": gather([o["pred_logits"] for o in outs]),
        "pred_boxes": gather([o["pred_boxes"] for o in outs]),
    }
    if isinstance(outs[0]["pred_masks"], DeferredMasks):
        merged["pred_masks"] = GroupedDeferredMasks([(idx, o["pred_masks"]) for idx, o in parts], mask_size)
    else:
        merged["pred_masks"] = gather([pad_mask_edges(o["pred_masks"], mask_size) for o in outs])
    if "memory_logits" in outs[0]:
        grid = [max(o["memory_logits"].shape[i] for o in outs) for i in (2, 3)]
        for key in ("memory_logits", "memory_boxes"):
            merged[key] = gather([_pad_grid(o[key], grid) for o in outs])
    if "aux_outputs" in outs[0]:
        merged["aux_outputs"] = [
            {k: gather([o["aux_outputs"][i][k] for o in outs]) for k in ("pred_logits", "pred_boxes")}
            for i in range(len(outs[0]["aux_outputs"]))
        ]
    return merged


def build_vistr(config: ModelConfig) -> VisTR:
    """Build VisTR (randomly initialized; backbone without pretrained weights) from ``config``.

    Process-wide side effect, once: on Linux/glibc, malloc is set to keep freed memory for reuse
    (:func:`vistr_core.model.cpu_memory.keep_freed_memory`). CPU forwards then skip re-faulting their
    re-allocated activations (an R50 36x300x540 clip measured 10.0 s instead of 16.3 s), but memory
    the process frees is not given back to the OS until it exits. ``VISTR_KEEP_FREED_MEMORY=0`` in
    the environment opts out.
    """
    keep_freed_memory()
    backbone = Backbone(config.backbone, dilation=config.dilation)
    joiner = Joiner(backbone, PositionEmbeddingSine3D(config.hidden_dim // 3))
    transformer = Transformer(
        d_model=config.hidden_dim,
        nhead=config.nheads,
        num_encoder_layers=config.enc_layers,
        num_decoder_layers=config.dec_layers,
        dim_feedforward=config.dim_feedforward,
        dropout=config.dropout,
        position_in_memory=config.position_in_memory,
    )
    detector = VisTRDetector(
        joiner,
        transformer,
        num_classes=config.num_classes,
        num_frames=config.num_frames,
        num_instances=config.num_instances,
    )
    model = VisTR(
        detector,
        aux_loss=config.aux_loss,
        mask_attention_gain=config.mask_attention_gain,
        mask_prior=config.mask_prior,
    )
    model.config = config
    return model
