"""Building blocks shared by the zoo architectures, written in export-friendly form.

Every block here uses only operators that torch.onnx (dynamo, opset 18), litert-torch and coremltools accept:
matmul, softmax, layer norm, gather with constant or computed indices, reshape/permute of rank <= 5. Attention is
written out as matmul + softmax (no fused kernels) so that the three converters see the same graph.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn


def attention(q: Tensor, k: Tensor, v: Tensor, bias: Tensor | None = None) -> Tensor:
    """Scaled dot-product attention over the last two axes: softmax(q k^T / sqrt(d) + bias) v.

    q: [..., Lq, d], k/v: [..., Lk, d]; `bias` broadcasts to [..., Lq, Lk] (use a large negative value to mask).
    """
    scores = torch.matmul(q, k.transpose(-2, -1)) * (1.0 / math.sqrt(q.shape[-1]))
    if bias is not None:
        scores = scores + bias
    return torch.matmul(torch.softmax(scores, dim=-1), v)


def split_heads(x: Tensor, heads: int) -> Tensor:
    """[B, L, H*d] -> [B, H, L, d]."""
    b, n, c = x.shape
    return x.reshape(b, n, heads, c // heads).transpose(1, 2)


def merge_heads(x: Tensor) -> Tensor:
    """[B, H, L, d] -> [B, L, H*d]."""
    b, h, n, d = x.shape
    return x.transpose(1, 2).reshape(b, n, h * d)


class Mlp(nn.Module):
    """Linear -> GELU -> Linear (the transformer feed-forward block)."""

    def __init__(self, dim: int, hidden: int, out: int | None = None) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, out or dim)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc2(self.act(self.fc1(x)))


class SelfAttention(nn.Module):
    """Multi-head self-attention; `bias` is added to the attention scores ([B or 1, H or 1, L, L])."""

    def __init__(self, dim: int, heads: int, qkv_bias: bool = True) -> None:
        super().__init__()
        if dim % heads:
            raise ValueError(f"dim {dim} must be divisible by heads {heads}")
        self.heads = heads
        self.qkv = nn.Linear(dim, 3 * dim, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: Tensor, bias: Tensor | None = None) -> Tensor:
        q, k, v = self.qkv(x).chunk(3, dim=-1)
        out = attention(split_heads(q, self.heads), split_heads(k, self.heads), split_heads(v, self.heads), bias)
        return self.proj(merge_heads(out))


class CrossAttention(nn.Module):
    """Multi-head cross-attention: queries from `x`, keys/values from `context`."""

    def __init__(self, dim: int, heads: int, context_dim: int | None = None, qkv_bias: bool = True) -> None:
        super().__init__()
        if dim % heads:
            raise ValueError(f"dim {dim} must be divisible by heads {heads}")
        self.heads = heads
        self.q = nn.Linear(dim, dim, bias=qkv_bias)
        self.kv = nn.Linear(context_dim or dim, 2 * dim, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: Tensor, context: Tensor, bias: Tensor | None = None) -> Tensor:
        k, v = self.kv(context).chunk(2, dim=-1)
        q = split_heads(self.q(x), self.heads)
        out = attention(q, split_heads(k, self.heads), split_heads(v, self.heads), bias)
        return self.proj(merge_heads(out))


class Block(nn.Module):
    """Pre-LN transformer block: x + attn(LN(x)); x + mlp(LN(x))."""

    def __init__(self, dim: int, heads: int, mlp_ratio: float = 2.0) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn = SelfAttention(dim, heads)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))

    def forward(self, x: Tensor, bias: Tensor | None = None) -> Tensor:
        x = x + self.attn(self.norm1(x), bias)
        return x + self.mlp(self.norm2(x))


class CrossBlock(nn.Module):
    """Pre-LN cross-attention block: x + xattn(LN(x), LN(ctx)); x + mlp(LN(x))."""

    def __init__(self, dim: int, heads: int, mlp_ratio: float = 2.0) -> None:
        super().__init__()
        self.norm_q = nn.LayerNorm(dim)
        self.norm_kv = nn.LayerNorm(dim)
        self.attn = CrossAttention(dim, heads)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))

    def forward(self, x: Tensor, context: Tensor) -> Tensor:
        x = x + self.attn(self.norm_q(x), self.norm_kv(context))
        return x + self.mlp(self.norm2(x))


class PatchEmbed(nn.Module):
    """Non-overlapping patches by a strided conv: [B, C, H, W] -> [B, (H/p)*(W/p), dim]."""

    def __init__(self, in_chans: int, dim: int, patch: int) -> None:
        super().__init__()
        self.proj = nn.Conv2d(in_chans, dim, kernel_size=patch, stride=patch)

    def forward(self, x: Tensor) -> Tensor:
        return self.proj(x).flatten(2).transpose(1, 2)


def window_permutation(height: int, width: int, window: int, dilated: bool = False) -> Tensor:
    """Token order that groups a row-major [height x width] grid into groups of window*window tokens.

    dilated=False: adjacent windows (Swin/CrossFormer short-distance groups).
    dilated=True: tokens sampled with a fixed interval height//window (CrossFormer long-distance groups): group
    (a, b) holds positions (a + I*p, b + I*q). Gathering with this index, then reshaping to
    [B * groups, window*window, C], groups the tokens; `torch.argsort(perm)` undoes it.
    """
    if height % window or width % window:
        raise ValueError(f"grid {height}x{width} is not divisible by window {window}")
    idx = torch.arange(height * width).reshape(height, width)
    if not dilated:
        g = idx.reshape(height // window, window, width // window, window).permute(0, 2, 1, 3)
    else:
        ih, iw = height // window, width // window  # intervals
        g = idx.reshape(window, ih, window, iw).permute(1, 3, 0, 2)
    return g.reshape(-1).contiguous()


def group_offsets(window: int, stride: int = 1) -> Tensor:
    """Relative (dy, dx) between every pair of positions in a window*window group, times `stride`: [w^4, 2]."""
    ys, xs = torch.meshgrid(torch.arange(window), torch.arange(window), indexing="ij")
    pos = torch.stack([ys.reshape(-1), xs.reshape(-1)], dim=-1).float() * stride
    return (pos[:, None, :] - pos[None, :, :]).reshape(-1, 2)


def count_parameters(model: nn.Module) -> int:
    """Number of parameters (weights), not counting buffers."""
    return sum(p.numel() for p in model.parameters())
