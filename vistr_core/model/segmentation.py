"""VisTR's instance sequence segmentation: attention maps, the FPN mask head and the 3-D head.

Shapes (B clips, T frames, n instance slots, d hidden, heads attention heads, /s feature stride):
the reference loops over frames and slots; here every (clip, slot, frame) triple is one batch
row, in [B, n, T] order, and per-frame tensors (memory, FPN adapters) are computed once per frame
and broadcast over the n slots.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..ops.deform_conv import DeformConv2d


def group_count(channels: int, groups: int = 8) -> int:
    """GroupNorm groups: gcd(groups, channels), so d=384 matches the reference's GN(8, .)."""
    return math.gcd(groups, channels)


class MHAttentionMap(nn.Module):
    """Per-frame attention maps between each slot's decoder output and that frame's memory.

    No value projection: the maps themselves are the output. Softmax runs jointly over
    heads x h x w (as in DETR), padding gets -inf.
    """

    def __init__(self, query_dim: int, hidden_dim: int, num_heads: int) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.hidden_dim = hidden_dim
        self.q_linear = nn.Linear(query_dim, hidden_dim)
        self.k_linear = nn.Linear(query_dim, hidden_dim)
        for lin in (self.q_linear, self.k_linear):
            nn.init.zeros_(lin.bias)
            nn.init.xavier_uniform_(lin.weight)
        self.normalize_fact = float(hidden_dim / num_heads) ** -0.5

    def forward(self, q: Tensor, memory: Tensor, pad_mask: Tensor | None) -> Tensor:
        """q: [B, n, T, d]; memory: [B, T, h, w, d]; pad_mask: [B, T, h, w] or None.

        Returns attention maps [B, n, T, heads, h, w].
        """
        b, n, t, _ = q.shape
        h, w = memory.shape[2:4]
        heads = self.num_heads
        qh = (self.q_linear(q) * self.normalize_fact).view(b, n, t, heads, -1)
        kh = self.k_linear(memory).view(b, t, h * w, heads, -1)
        # [B, T, heads, n, c] @ [B, T, heads, c, hw] -> [B, T, heads, n, hw]
        scores = qh.permute(0, 2, 3, 1, 4) @ kh.permute(0, 1, 3, 4, 2)
        scores = scores.permute(0, 3, 1, 2, 4)  # [B, n, T, heads, hw]
        if pad_mask is not None:
            scores = scores.masked_fill(pad_mask.view(b, 1, t, 1, h * w), float("-inf"))
        weights = F.softmax(scores.flatten(3), dim=-1)
        return weights.view(b, n, t, heads, h, w)


class MaskHeadSmallConv(nn.Module):
    """FPN-style mask head: per (slot, frame) [memory ; attention maps] at /32 -> features at /4.

    lay1..lay4 (3x3 conv + GroupNorm + ReLU) with backbone layers 3, 2, 1 fused through 1x1
    adapters and nearest upsampling, then a deformable 3x3 conv (offsets from a zero-initialized
    1x1 conv) + GroupNorm + ReLU. Widths: d+heads, d/2, d/4, d/8, d/16.

    ``attention_gain`` scales lay1's initial weights on the attention-map channels (1 = the
    reference's init). Why: the maps are probabilities summing to 1 over heads x h x w (~100
    cells in the tiny model), so at the reference init they reach lay1 ~100x weaker than the
    LayerNorm-ed memory. They are the only thing that tells one slot's mask from another's; from
    pretrained weights that scale has been learned, from scratch Adam needs thousands of steps to
    grow it, and meanwhile every slot segments all the objects at once.
    """

    def __init__(
        self, dim: int, fpn_dims: tuple[int, int, int], context_dim: int, *, attention_gain: float = 1.0
    ) -> None:
        super().__init__()
        widths = [dim, context_dim // 2, context_dim // 4, context_dim // 8, context_dim // 16]
        self.context_dim = context_dim
        self.lay1 = nn.Conv2d(dim, dim, 3, padding=1)
        self.gn1 = nn.GroupNorm(group_count(widths[0]), widths[0])
        self.lay2 = nn.Conv2d(dim, widths[1], 3, padding=1)
        self.gn2 = nn.GroupNorm(group_count(widths[1]), widths[1])
        self.lay3 = nn.Conv2d(widths[1], widths[2], 3, padding=1)
        self.gn3 = nn.GroupNorm(group_count(widths[2]), widths[2])
        self.lay4 = nn.Conv2d(widths[2], widths[3], 3, padding=1)
        self.gn4 = nn.GroupNorm(group_count(widths[3]), widths[3])
        self.gn5 = nn.GroupNorm(group_count(widths[4]), widths[4])
        self.conv_offset = nn.Conv2d(widths[3], 18, 1)
        self.dcn = DeformConv2d(widths[3], widths[4], 3, padding=1)
        self.adapter1 = nn.Conv2d(fpn_dims[0], widths[1], 1)
        self.adapter2 = nn.Conv2d(fpn_dims[1], widths[2], 1)
        self.adapter3 = nn.Conv2d(fpn_dims[2], widths[3], 1)
        self.out_channels = widths[4]
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_uniform_(m.weight, a=1)
                nn.init.zeros_(m.bias)
        with torch.no_grad():
            self.lay1.weight[:, context_dim:] *= attention_gain
        # Zero offsets: the deformable conv starts as a plain 3x3 conv.
        nn.init.zeros_(self.conv_offset.weight)
        nn.init.zeros_(self.conv_offset.bias)

    def _lay1(self, memory: Tensor, attn: Tensor) -> Tensor:
        """lay1 on [memory ; attn] without materializing the concatenation per slot.

        The conv is linear, so conv(cat(m, a)) = conv_m(m) + conv_a(a): the wide memory part
        runs once per frame and is broadcast over the n slots.
        memory: [B*T, d, h, w]; attn: [B, n, T, heads, h, w] -> [B*n*T, dim, h, w]
        """
        b, n, t, _, h, w = attn.shape
        d = self.context_dim
        weight, bias = self.lay1.weight, self.lay1.bias
        from_memory = F.conv2d(memory, weight[:, :d], bias, padding=1)  # [B*T, dim, h, w]
        attn = attn.flatten(0, 2).contiguous(memory_format=torch.channels_last)
        from_attn = F.conv2d(attn, weight[:, d:], None, padding=1)  # [B*n*T, dim, h, w]
        out = nhwc(from_attn).view(b, n, t, h, w, -1) + nhwc(from_memory).view(b, 1, t, h, w, -1)
        return nchw_view(out.flatten(0, 2))

    @staticmethod
    def _fuse(x: Tensor, lateral: Tensor, b: int, n: int, t: int) -> Tensor:
        """lateral (per frame) [B*T, C, H, W] + nearest-upsampled x [B*n*T, C, h, w] -> [B*n*T, C, H, W].

        The stride-2 case (H = 2h or 2h - 1, what ResNet strides give) is one broadcast add over
        [.., h, 2, w, 2, C] views, equal to F.interpolate(nearest) (source index i // 2) without
        materializing the upsampled tensor.
        """
        (h, w), (hl, wl) = x.shape[-2:], lateral.shape[-2:]
        c = x.shape[1]
        lat = nhwc(lateral)
        if (hl, wl) == (h, w):
            out = nhwc(x).view(b, n, t, h, w, c) + lat.view(b, 1, t, h, w, c)
        elif hl in (2 * h - 1, 2 * h) and wl in (2 * w - 1, 2 * w):
            lat = F.pad(lat, (0, 0, 0, 2 * w - wl, 0, 2 * h - hl))  # [B*T, 2h, 2w, C]
            out = nhwc(x).view(b, n, t, h, 1, w, 1, c) + lat.view(b, 1, t, h, 2, w, 2, c)
            out = out.view(b * n * t, 2 * h, 2 * w, c)[:, :hl, :wl]
        else:  # other ratios (e.g. dilated layer4): the general nearest interpolation
            up = F.interpolate(x, size=(hl, wl), mode="nearest")
            out = nhwc(up).view(b, n, t, hl, wl, c) + lat.view(b, 1, t, hl, wl, c)
        return nchw_view(out.reshape(b * n * t, hl, wl, c).contiguous())

    def forward(self, memory: Tensor, attn: Tensor, fpns: list[Tensor]) -> Tensor:
        """memory: [B*T, d, h, w]; attn: [B, n, T, heads, h, w];
        fpns: backbone layer3, layer2, layer1 as [B*T, C_l, H_l, W_l].

        Returns [B*n*T, d/16, H/4, W/4] in (clip, slot, frame) order, channels-last memory
        (oneDNN's fast layout; every tensor here stays channels-last).
        """
        b, n, t = attn.shape[:3]
        x = F.relu_(self.gn1(self._lay1(memory, attn)))
        x = F.relu_(self.gn2(self.lay2(x)))
        x = self._fuse(x, self.adapter1(fpns[0]), b, n, t)
        x = F.relu_(self.gn3(self.lay3(x)))
        x = self._fuse(x, self.adapter2(fpns[1]), b, n, t)
        x = F.relu_(self.gn4(self.lay4(x)))
        x = self._fuse(x, self.adapter3(fpns[2]), b, n, t)
        x = self.dcn(x, self.conv_offset(x))
        return F.relu_(self.gn5(x))


def nhwc(x: Tensor) -> Tensor:
    """[N, C, H, W] -> [N, H, W, C] contiguous (free for channels-last tensors)."""
    return x.permute(0, 2, 3, 1).contiguous()


def nchw_view(y: Tensor) -> Tensor:
    """[N, H, W, C] contiguous -> [N, C, H, W] view with channels-last strides."""
    return y.permute(0, 3, 1, 2)


# Sub-grid frames up to which SubgridDilatedConv3d runs as a 2-D conv. At 3 the block weight has
# zeros and the 2-D form was no faster (benchmarks/head_conv3d.py: 1.02x fp32, 0.93x bf16).
MAX_FOLDED_FRAMES = 2


class SubgridDilatedConv3d(nn.Conv3d):
    """A 3x3x3 Conv3d with dilation 2 and padding 2 whose backward runs on oneDNN on the CPU.

    PyTorch has no fast CPU kernel for dilated 3-D convolutions (``slow_conv_dilated3d``, whose
    backward costs 3-6x the undilated one). With dilation 2, an output at (t, y, x) reads only
    inputs of the same parity, so each of the 8 (t, y, x) parity sub-grids is an ordinary 3x3x3
    convolution with padding 1 on that sub-grid: exact, same parameters, same state-dict keys.
    Used when gradients are needed on the CPU; inference keeps the plain (reference) kernel.
    """

    def forward(self, x: Tensor) -> Tensor:
        """x: [N, C, T, H, W] -> [N, Cout, T, H, W]"""
        if x.is_cuda or not (torch.is_grad_enabled() and (x.requires_grad or self.weight.requires_grad)):
            return super().forward(x)
        n, c, t, h, w = x.shape
        x = F.pad(x, (0, w % 2, 0, h % 2, 0, t % 2))  # even sizes: the extra zeros act as padding
        t2, h2, w2 = (t + 1) // 2, (h + 1) // 2, (w + 1) // 2
        sub = x.reshape(n, c, t2, 2, h2, 2, w2, 2).permute(0, 3, 5, 7, 1, 2, 4, 6)
        cout = self.out_channels
        if t2 <= MAX_FOLDED_FRAMES:
            y = self._time_folded_conv(sub.transpose(4, 5).reshape(n * 8, t2 * c, h2, w2), t2)
            y = y.view(n, 2, 2, 2, t2, cout, h2, w2).permute(0, 5, 4, 1, 6, 2, 7, 3)
        else:
            y = F.conv3d(sub.reshape(n * 8, c, t2, h2, w2), self.weight, self.bias, padding=1)
            y = y.view(n, 2, 2, 2, cout, t2, h2, w2).permute(0, 4, 5, 1, 6, 2, 7, 3)
        return y.reshape(n, cout, 2 * t2, 2 * h2, 2 * w2)[:, :, :t, :h, :w]

    def _time_folded_conv(self, x: Tensor, t: int) -> Tensor:
        """The sub-grid's 3x3x3 conv (padding 1) over t frames as one 2-D conv.

        x: [M, t*C, H, W] (frame-major channels) -> [M, t*Cout, H, W]

        Output frame j reads input frame i through the weight's temporal tap i - j + 1, so the 2-D
        weight is the t x t block matrix of those taps, zero where |i - j| > 1 (none at t = 2, the
        tiny preset's 4 frames). Why: oneDNN's 3-D convolutions are slow for these few channels,
        the weight gradient above all; the 2-D form trains 1.7-3.1x faster (forward + backward,
        benchmarks/head_conv3d.py).
        """
        cout, c = self.weight.shape[:2]
        zero = self.weight.new_zeros(cout, c, 3, 3)
        rows = [
            torch.cat([self.weight[:, :, i - j + 1] if abs(i - j) <= 1 else zero for i in range(t)], 1)
            for j in range(t)
        ]
        bias = self.bias.repeat(t) if self.bias is not None else None
        return F.conv2d(x, torch.cat(rows), bias, padding=1)


class InstanceSequenceHead(nn.Sequential):
    """The per-instance 3-D conv head over the T frames: three dilated 3x3x3 convs with
    GroupNorm + ReLU, then a 1x1x1 conv to one mask logit. Indices match ``insmask_head.N``.

    ``prior``: the final bias starts at logit(prior), as for RetinaNet's classifier, so masks start
    near that foreground probability; None keeps the reference's init (near 0.5 everywhere). Why:
    objects cover a small part of a frame, and with a 0.5 start the logits' scale grows slowly
    under Adam, so the background stays at ~0.45 for hundreds of steps and the dice loss is spent
    on it instead of on the object boundaries.
    """

    def __init__(self, in_channels: int, *, prior: float | None = None) -> None:
        mid = in_channels // 2
        groups = group_count(mid, 4)
        super().__init__(
            SubgridDilatedConv3d(in_channels, mid, 3, padding=2, dilation=2),
            nn.GroupNorm(groups, mid),
            nn.ReLU(),
            SubgridDilatedConv3d(mid, mid, 3, padding=2, dilation=2),
            nn.GroupNorm(groups, mid),
            nn.ReLU(),
            SubgridDilatedConv3d(mid, mid, 3, padding=2, dilation=2),
            nn.GroupNorm(groups, mid),
            nn.ReLU(),
            nn.Conv3d(mid, 1, 1),
        )
        if prior is not None:
            nn.init.constant_(self[9].bias, math.log(prior / (1 - prior)))

    def forward(self, seg: Tensor, num_frames: int) -> Tensor:
        """seg: [N*T, C, H, W] in (sequence, frame) order -> mask logits [N, T, H, W].

        A channels-last [N*T, C, H, W] tensor is, in memory, [N, T, H, W, C]: exactly the
        channels-last-3d layout of the [N, C, T, H, W] Conv3d input, so no copy is needed.
        """
        _, c, h, w = seg.shape
        x = nhwc(seg).view(-1, num_frames, h, w, c).permute(0, 4, 1, 2, 3)
        for i in (0, 3, 6):
            x = F.relu_(self[i + 1](self[i](x)))
        last = self[9]  # the 1x1x1 conv to one channel, as a matrix-vector product
        return x.permute(0, 2, 3, 4, 1) @ last.weight.view(-1) + last.bias
