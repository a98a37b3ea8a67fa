"""MoH: multi-head attention as a mixture of heads, in a small ViT.

Paper: Jin, Zhu, Yan, Yuan, "MoH: Multi-Head Attention as Mixture-of-Head Attention" (arXiv 2410.11842).

Mechanism implemented: multi-head attention written in summation form, O = sum_h g_h * H_h W_o^h, where the heads are
experts. A few *shared* heads are always on; the other heads are *routed*: each token keeps its top-k routed heads.
Two-stage routing as in the paper: g_h = a1 * softmax(W_s x)_h for shared heads and a2 * softmax(W_r x)_h (masked to
the token's top-k) for routed heads, with [a1, a2] = softmax(W_a x) balancing the two groups. The eager and exported
graphs both compute all heads and mask them (top-k + scatter), the static form the converters accept.
`MoHAttention.last_heads_per_token` records the mean number of active heads on the last eager batch.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from edgekit.zoo.layers import Mlp, PatchEmbed, attention, split_heads
from edgekit.zoo.registry import register_model


class MoHAttention(nn.Module):
    def __init__(self, dim: int, heads: int, shared_heads: int, topk: int) -> None:
        super().__init__()
        if dim % heads:
            raise ValueError(f"dim {dim} must be divisible by heads {heads}")
        routed = heads - shared_heads
        if shared_heads < 0 or routed < 1 or not 1 <= topk <= routed:
            raise ValueError(f"need 0 <= shared_heads < heads and 1 <= topk <= routed heads ({routed})")
        self.heads, self.shared, self.topk, self.head_dim = heads, shared_heads, topk, dim // heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.router_shared = nn.Linear(dim, max(shared_heads, 1), bias=False)
        self.router_routed = nn.Linear(dim, routed, bias=False)
        self.router_balance = nn.Linear(dim, 2, bias=False)
        self.last_heads_per_token: float | None = None

    def head_weights(self, x: Tensor) -> Tensor:
        """Per-token weight of every head, [B, N, heads]; routed heads outside the top-k are 0."""
        routed_scores = torch.softmax(self.router_routed(x), dim=-1)
        top_vals, top_idx = torch.topk(routed_scores, self.topk, dim=-1)
        routed = torch.zeros_like(routed_scores).scatter(-1, top_idx, top_vals)
        balance = torch.softmax(self.router_balance(x), dim=-1)
        if self.shared == 0:
            return routed
        shared = torch.softmax(self.router_shared(x), dim=-1)
        # Both groups scaled so an active head's weight is ~1 on average (the paper's 2 * alpha factor).
        return torch.cat([2.0 * balance[..., :1] * shared, 2.0 * balance[..., 1:] * routed], dim=-1)

    def forward(self, x: Tensor) -> Tensor:
        b, n, c = x.shape
        q, k, v = self.qkv(x).chunk(3, dim=-1)
        heads = attention(split_heads(q, self.heads), split_heads(k, self.heads), split_heads(v, self.heads))
        weights = self.head_weights(x)  # [B, N, H]
        heads = heads * weights.transpose(1, 2).unsqueeze(-1)  # weighted summation over heads
        out = heads.transpose(1, 2).reshape(b, n, c)
        if not torch.compiler.is_exporting():
            self.last_heads_per_token = float((weights > 0).sum(dim=-1).float().mean())
        return self.proj(out)


class MoHBlock(nn.Module):
    def __init__(self, dim: int, heads: int, shared_heads: int, topk: int, mlp_ratio: float) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn = MoHAttention(dim, heads, shared_heads, topk)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))

    def forward(self, x: Tensor) -> Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class MoHViT(nn.Module):
    """forward(pixels [B, 3, H, W]) -> logits [B, num_classes]."""

    def __init__(
        self,
        img_size: int = 64,
        patch: int = 8,
        dim: int = 192,
        depth: int = 6,
        heads: int = 8,
        shared_heads: int = 2,
        topk: int = 3,
        mlp_ratio: float = 2.0,
        num_classes: int = 10,
        in_chans: int = 3,
    ) -> None:
        super().__init__()
        self.embed = PatchEmbed(in_chans, dim, patch)
        self.cls = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos = nn.Parameter(torch.randn(1, (img_size // patch) ** 2 + 1, dim) * 0.02)
        self.blocks = nn.ModuleList(MoHBlock(dim, heads, shared_heads, topk, mlp_ratio) for _ in range(depth))
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, num_classes)

    def forward(self, pixels: Tensor) -> Tensor:
        x = self.embed(pixels)
        x = torch.cat([self.cls.expand(x.shape[0], -1, -1), x], dim=1) + self.pos
        for blk in self.blocks:
            x = blk(x)
        return self.head(self.norm(x[:, 0]))

    def heads_per_token(self) -> float | None:
        """Mean number of active heads per token over layers, for the last eager batch."""
        vals = [b.attn.last_heads_per_token for b in self.blocks if b.attn.last_heads_per_token is not None]
        return sum(vals) / len(vals) if vals else None


@register_model
def moh_vit_tiny(**cfg) -> MoHViT:
    """MoH-ViT for 64x64 images: patch 8, d=192, 6 layers, 8 heads (2 shared + top-3 of 6 routed = 62.5 % active)."""
    return MoHViT(**cfg)
