"""The 3-D sine position encoding of VisTR (t, y, x), vistr-facts.md section 2.3."""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn


class PositionEmbeddingSine3D(nn.Module):
    """Sine/cosine encoding of normalized cumulative (t, y, x) coordinates.

    ``num_pos_feats`` (= d/3) channels per axis, interleaved [sin(c/d0), cos(c/d0), sin(c/d1), ...]
    with d_k = temperature^(2k/num_pos_feats); coordinates count unpadded positions (cumsum over
    not-mask), normalized to (0, 2π]. Channels are concatenated t, y, x.
    """

    def __init__(
        self, num_pos_feats: int, *, temperature: float = 10000.0, scale: float = 2 * math.pi
    ) -> None:
        super().__init__()
        if num_pos_feats % 2:
            raise ValueError(f"num_pos_feats must be even, got {num_pos_feats}")
        self.num_pos_feats = num_pos_feats
        self.temperature = temperature
        self.scale = scale

    def forward(self, pad_mask: Tensor) -> Tensor:
        """pad_mask: [B, T, h, w] bool (True = padding) -> pos [B, T, 3*num_pos_feats, h, w]."""
        not_mask = (~pad_mask).float()
        eps = 1e-6
        z = not_mask.cumsum(1)
        y = not_mask.cumsum(2)
        x = not_mask.cumsum(3)
        z = z / (z[:, -1:] + eps) * self.scale
        y = y / (y[:, :, -1:] + eps) * self.scale
        x = x / (x[:, :, :, -1:] + eps) * self.scale

        n = self.num_pos_feats
        dim_t = torch.arange(n, dtype=torch.float32, device=pad_mask.device)
        dim_t = self.temperature ** (2 * torch.div(dim_t, 2, rounding_mode="floor") / n)
        parts = []
        for coord in (z, y, x):
            p = coord[..., None] / dim_t  # [B, T, h, w, n]
            parts.append(torch.stack((p[..., 0::2].sin(), p[..., 1::2].cos()), dim=5).flatten(4))
        return torch.cat(parts, dim=4).permute(0, 1, 4, 2, 3)
