"""The DETR encoder-decoder transformer as VisTR uses it (vistr-facts.md section 2.4).

Differences from ``torch.nn.Transformer``: post-norm layers with the position encoding added to
queries and keys in *every* attention layer; no final encoder norm; the decoder returns every
layer's output, each passed through the shared final LayerNorm. Tensors are batch-first here
([B, L, d]); attention uses ``scaled_dot_product_attention`` (fused, memory-efficient) with the
parameter names of ``nn.MultiheadAttention`` so checkpoints load unchanged.
"""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class MultiheadAttention(nn.Module):
    """Multi-head attention equal to ``nn.MultiheadAttention`` (same parameters and math), batch-first."""

    def __init__(self, embed_dim: int, num_heads: int, *, dropout: float = 0.0) -> None:
        super().__init__()
        if embed_dim % num_heads:
            raise ValueError(f"embed_dim {embed_dim} is not divisible by num_heads {num_heads}")
        self.embed_dim = embed_dim
        self.num_heads = num_heads
        self.dropout = dropout
        self.in_proj_weight = nn.Parameter(torch.empty(3 * embed_dim, embed_dim))
        self.in_proj_bias = nn.Parameter(torch.zeros(3 * embed_dim))
        self.out_proj = nn.Linear(embed_dim, embed_dim)
        nn.init.xavier_uniform_(self.in_proj_weight)
        nn.init.zeros_(self.out_proj.bias)

    def _heads(self, x: Tensor) -> Tensor:
        """[B, L, d] -> [B, heads, L, d/heads]"""
        b, length, _ = x.shape
        return x.view(b, length, self.num_heads, -1).transpose(1, 2)

    def forward(
        self, query: Tensor, key: Tensor, value: Tensor, key_padding_mask: Tensor | None = None
    ) -> Tensor:
        """query: [B, Lq, d], key/value: [B, Lk, d], key_padding_mask: [B, Lk] bool (True = ignore).

        Returns [B, Lq, d].
        """
        d = self.embed_dim
        w, b = self.in_proj_weight, self.in_proj_bias
        if query is key:
            # Self-attention with q = k: one projection GEMM for both.
            q, k = F.linear(query, w[: 2 * d], b[: 2 * d]).split(d, dim=-1)
        else:
            q = F.linear(query, w[:d], b[:d])
            k = F.linear(key, w[d : 2 * d], b[d : 2 * d])
        v = F.linear(value, w[2 * d :], b[2 * d :])
        attn_mask = None
        if key_padding_mask is not None:
            attn_mask = ~key_padding_mask[:, None, None, :]  # True = may attend
        out = F.scaled_dot_product_attention(
            self._heads(q),
            self._heads(k),
            self._heads(v),
            attn_mask=attn_mask,
            dropout_p=self.dropout if self.training else 0.0,
        )
        out = out.transpose(1, 2).reshape(query.shape[0], query.shape[1], d)
        return self.out_proj(out)


class TransformerEncoderLayer(nn.Module):
    """Post-norm: x = LN(x + SA(x + pos, x + pos, x)); x = LN(x + FFN(x))."""

    def __init__(self, d_model: int, nhead: int, dim_feedforward: int, dropout: float) -> None:
        super().__init__()
        self.self_attn = MultiheadAttention(d_model, nhead, dropout=dropout)
        self.linear1 = nn.Linear(d_model, dim_feedforward)
        self.dropout = nn.Dropout(dropout)
        self.linear2 = nn.Linear(dim_feedforward, d_model)
        self.norm1 = nn.LayerNorm(d_model)
        self.norm2 = nn.LayerNorm(d_model)
        self.dropout1 = nn.Dropout(dropout)
        self.dropout2 = nn.Dropout(dropout)

    def forward(self, src: Tensor, pos: Tensor, key_padding_mask: Tensor | None) -> Tensor:
        """src, pos: [B, L, d]; key_padding_mask: [B, L] or None -> [B, L, d]"""
        qk = src + pos
        src = self.norm1(src + self.dropout1(self.self_attn(qk, qk, src, key_padding_mask)))
        ffn = self.linear2(self.dropout(F.relu(self.linear1(src))))
        return self.norm2(src + self.dropout2(ffn))


class TransformerDecoderLayer(nn.Module):
    """Post-norm: self-attention over queries, cross-attention to memory, FFN."""

    def __init__(self, d_model: int, nhead: int, dim_feedforward: int, dropout: float) -> None:
        super().__init__()
        self.self_attn = MultiheadAttention(d_model, nhead, dropout=dropout)
        self.multihead_attn = MultiheadAttention(d_model, nhead, dropout=dropout)
        self.linear1 = nn.Linear(d_model, dim_feedforward)
        self.dropout = nn.Dropout(dropout)
        self.linear2 = nn.Linear(dim_feedforward, d_model)
        self.norm1 = nn.LayerNorm(d_model)
        self.norm2 = nn.LayerNorm(d_model)
        self.norm3 = nn.LayerNorm(d_model)
        self.dropout1 = nn.Dropout(dropout)
        self.dropout2 = nn.Dropout(dropout)
        self.dropout3 = nn.Dropout(dropout)

    def forward(
        self, tgt: Tensor, memory: Tensor, pos: Tensor, query_pos: Tensor, memory_mask: Tensor | None
    ) -> Tensor:
        """tgt, query_pos: [B, Q, d]; memory, pos: [B, L, d]; memory_mask: [B, L] -> [B, Q, d]"""
        qk = tgt + query_pos
        tgt = self.norm1(tgt + self.dropout1(self.self_attn(qk, qk, tgt)))
        cross = self.multihead_attn(tgt + query_pos, memory + pos, memory, memory_mask)
        tgt = self.norm2(tgt + self.dropout2(cross))
        ffn = self.linear2(self.dropout(F.relu(self.linear1(tgt))))
        return self.norm3(tgt + self.dropout3(ffn))


class TransformerEncoder(nn.Module):
    def __init__(self, layer: TransformerEncoderLayer, num_layers: int) -> None:
        super().__init__()
        self.layers = nn.ModuleList(copy.deepcopy(layer) for _ in range(num_layers))

    def forward(self, src: Tensor, pos: Tensor, key_padding_mask: Tensor | None) -> Tensor:
        for layer in self.layers:
            src = layer(src, pos, key_padding_mask)
        return src


class TransformerDecoder(nn.Module):
    """Returns all layers' outputs [num_layers, B, Q, d], each after the shared final ``norm``."""

    def __init__(self, layer: TransformerDecoderLayer, num_layers: int, d_model: int) -> None:
        super().__init__()
        self.layers = nn.ModuleList(copy.deepcopy(layer) for _ in range(num_layers))
        self.norm = nn.LayerNorm(d_model)

    def forward(
        self, tgt: Tensor, memory: Tensor, pos: Tensor, query_pos: Tensor, memory_mask: Tensor | None
    ) -> Tensor:
        outputs = []
        for layer in self.layers:
            tgt = layer(tgt, memory, pos, query_pos, memory_mask)
            outputs.append(self.norm(tgt))
        return torch.stack(outputs)


class Transformer(nn.Module):
    """Encoder over the L = T*h*w frame-major tokens of a clip, decoder over n*T learned queries.

    ``position_in_memory``: also add the position encoding to the encoder's input tokens (off in the
    paper). Why: attention layers add it to queries and keys only, so a token's *value* says where
    it is only through what the backbone's features happen to encode. From pretrained features that
    is enough; from a random backbone it is not (a linear probe on the memory of the quickstart's
    model read the token's column worse than a constant), and the box head, which reads memory
    values through the decoder, cannot learn where an object is, nor can the mask attention tell
    two alike objects apart by place.
    """

    def __init__(
        self,
        *,
        d_model: int = 384,
        nhead: int = 8,
        num_encoder_layers: int = 6,
        num_decoder_layers: int = 6,
        dim_feedforward: int = 2048,
        dropout: float = 0.1,
        position_in_memory: bool = False,
    ) -> None:
        super().__init__()
        self.position_in_memory = position_in_memory
        enc = TransformerEncoderLayer(d_model, nhead, dim_feedforward, dropout)
        dec = TransformerDecoderLayer(d_model, nhead, dim_feedforward, dropout)
        self.encoder = TransformerEncoder(enc, num_encoder_layers)
        self.decoder = TransformerDecoder(dec, num_decoder_layers, d_model)
        self.d_model = d_model
        self.nhead = nhead
        for p in self.parameters():
            if p.dim() > 1:
                nn.init.xavier_uniform_(p)

    def forward(
        self, src: Tensor, pad_mask: Tensor | None, query_embed: Tensor, pos: Tensor
    ) -> tuple[Tensor, Tensor]:
        """src, pos: [B, L, d]; pad_mask: [B, L] bool or None; query_embed: [Q, d].

        Returns ``hs`` [num_dec_layers, B, Q, d] and ``memory`` [B, L, d].
        """
        if self.position_in_memory:
            src = src + pos
        memory = self.encoder(src, pos, pad_mask)
        query_pos = query_embed[None].expand(src.shape[0], -1, -1)
        tgt = query_pos.new_zeros(query_pos.shape)
        hs = self.decoder(tgt, memory, pos, query_pos, pad_mask)
        return hs, memory
