"""Small building blocks for the fusion stage.

Attention is written out (no nn.MultiheadAttention / nn.TransformerEncoder) so that the
graph traces to plain ONNX ops with a real padding mask and no fast-path branches.
"""
from __future__ import annotations

import math

import torch
from torch import nn

MASK_VALUE = -1e4  # additive mask for padded keys; finite so fp16 graphs stay NaN-free


def projection(in_dim: int, out_dim: int, dropout: float) -> nn.Module:
    """The reference's modality projection: Linear -> ReLU -> Dropout."""
    return nn.Sequential(nn.Linear(in_dim, out_dim), nn.ReLU(), nn.Dropout(dropout))


def classifier(in_dim: int, hidden: int, num_classes: int, dropout: float) -> nn.Module:
    return nn.Sequential(nn.Linear(in_dim, hidden), nn.ReLU(), nn.Dropout(dropout), nn.Linear(hidden, num_classes))


def masked_mean(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """x [B,T,D], mask [B,T] (1 = real token) -> [B,D]."""
    m = mask.unsqueeze(-1).to(x.dtype)
    return (x * m).sum(1) / m.sum(1).clamp(min=1.0)


class MultiHeadAttention(nn.Module):
    def __init__(self, dim: int, num_heads: int, dropout: float):
        super().__init__()
        assert dim % num_heads == 0, f"fusion_dim {dim} must be divisible by num_heads {num_heads}"
        self.num_heads, self.head_dim = num_heads, dim // num_heads
        self.q, self.k, self.v, self.out = (nn.Linear(dim, dim) for _ in range(4))
        self.drop = nn.Dropout(dropout)

    def forward(self, query: torch.Tensor, key: torch.Tensor, key_mask: torch.Tensor | None = None):
        # query [B,Tq,D], key [B,Tk,D], key_mask [B,Tk] (1 = attend, 0 = padding)
        B, Tq, D = query.shape
        Tk = key.shape[1]
        q = self.q(query).view(B, Tq, self.num_heads, self.head_dim).transpose(1, 2)  # [B,h,Tq,hd]
        k = self.k(key).view(B, Tk, self.num_heads, self.head_dim).transpose(1, 2)    # [B,h,Tk,hd]
        v = self.v(key).view(B, Tk, self.num_heads, self.head_dim).transpose(1, 2)
        scores = q @ k.transpose(-2, -1) / math.sqrt(self.head_dim)                   # [B,h,Tq,Tk]
        if key_mask is not None:
            scores = scores + (1.0 - key_mask[:, None, None, :].to(scores.dtype)) * MASK_VALUE
        attn = self.drop(scores.softmax(dim=-1))
        return self.out((attn @ v).transpose(1, 2).reshape(B, Tq, D))                # [B,Tq,D]


class TransformerLayer(nn.Module):
    """Post-LN encoder layer, as nn.TransformerEncoderLayer (the reference uses that)."""

    def __init__(self, dim: int, num_heads: int, dropout: float):
        super().__init__()
        self.attn = MultiHeadAttention(dim, num_heads, dropout)
        self.ff = nn.Sequential(nn.Linear(dim, 4 * dim), nn.ReLU(), nn.Dropout(dropout), nn.Linear(4 * dim, dim))
        self.norm1, self.norm2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        x = self.norm1(x + self.drop(self.attn(x, x, mask)))
        return self.norm2(x + self.drop(self.ff(x)))


class TransformerEncoder(nn.Module):
    def __init__(self, dim: int, num_heads: int, num_layers: int, dropout: float):
        super().__init__()
        self.layers = nn.ModuleList(TransformerLayer(dim, num_heads, dropout) for _ in range(num_layers))

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        for layer in self.layers:
            x = layer(x, mask)
        return x
