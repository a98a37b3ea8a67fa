"""BiFormer: vision transformer with Bi-Level Routing Attention (BRA).

Paper: Zhu et al., "BiFormer: Vision Transformer with Bi-Level Routing Attention" (arXiv 2303.08810).

Mechanism implemented: the feature map is split into S x S regions. Coarse level: region-level queries and keys are
the means of each region's queries/keys; their affinity matrix A_r = Q_r K_r^T picks, per region, the top-k most
relevant regions (`torch.topk`). Fine level: the keys/values of those k regions are gathered (`torch.gather`, dense
tensors only) and every token of the region attends to the k * (tokens per region) gathered tokens. A local context
enhancement (LCE) term, a depthwise conv over V, is added as in the paper. Blocks follow BiFormer's layout:
depthwise-conv position embedding, BRA, MLP, each pre-normed with a residual.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from edgekit.zoo.layers import Mlp, attention, window_permutation
from edgekit.zoo.registry import register_model


class BiLevelRoutingAttention(nn.Module):
    """BRA over a [B, H*W, C] token grid (row-major) of side `size`, regions of `size // regions` tokens a side."""

    def __init__(self, dim: int, heads: int, size: int, regions: int, topk: int) -> None:
        super().__init__()
        if size % regions:
            raise ValueError(f"feature size {size} must be divisible by the number of regions per side {regions}")
        if not 1 <= topk <= regions * regions:
            raise ValueError(f"topk={topk} must be in 1..{regions * regions}")
        self.heads, self.size, self.regions, self.topk = heads, size, regions, topk
        self.region_tokens = (size // regions) ** 2
        perm = window_permutation(size, size, size // regions)
        self.register_buffer("perm", perm, persistent=False)
        self.register_buffer("inv_perm", torch.argsort(perm), persistent=False)
        self.qkv = nn.Linear(dim, 3 * dim)
        self.lce = nn.Conv2d(dim, dim, kernel_size=5, padding=2, groups=dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: Tensor) -> Tensor:
        b, n, c = x.shape
        r2, t, h = self.regions * self.regions, self.region_tokens, self.heads
        q, k, v = self.qkv(x).chunk(3, dim=-1)
        lce = self.lce(v.transpose(1, 2).reshape(b, c, self.size, self.size)).flatten(2).transpose(1, 2)
        # Tokens grouped by region: [B, R, T, C]
        q, k, v = (z.index_select(1, self.perm).reshape(b, r2, t, c) for z in (q, k, v))
        # Coarse level: region affinity and top-k routed regions per region.
        affinity = torch.matmul(q.mean(dim=2), k.mean(dim=2).transpose(-2, -1))  # [B, R, R]
        _, routed = torch.topk(affinity, self.topk, dim=-1)  # [B, R, k]
        # Gather the routed regions' keys and values: [B, R, k, T, C] -> [B, R, k*T, C]
        kv = torch.cat([k, v], dim=-1).unsqueeze(1).expand(b, r2, r2, t, 2 * c)
        idx = routed.reshape(b, r2, self.topk, 1, 1).expand(b, r2, self.topk, t, 2 * c)
        kv = torch.gather(kv, 2, idx).reshape(b * r2, self.topk * t, 2 * c)
        k_g, v_g = kv.chunk(2, dim=-1)
        # Fine level: token-to-token attention inside the union of routed regions, per head.
        qh = q.reshape(b * r2, t, h, c // h).transpose(1, 2)
        kh = k_g.reshape(b * r2, self.topk * t, h, c // h).transpose(1, 2)
        vh = v_g.reshape(b * r2, self.topk * t, h, c // h).transpose(1, 2)
        out = attention(qh, kh, vh).transpose(1, 2).reshape(b, r2 * t, c)
        out = out.index_select(1, self.inv_perm)
        return self.proj(out + lce)


class BiFormerBlock(nn.Module):
    def __init__(self, dim: int, heads: int, size: int, regions: int, topk: int, mlp_ratio: float) -> None:
        super().__init__()
        self.size = size
        self.pos = nn.Conv2d(dim, dim, kernel_size=3, padding=1, groups=dim)
        self.norm1 = nn.LayerNorm(dim)
        self.attn = BiLevelRoutingAttention(dim, heads, size, regions, topk)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))

    def forward(self, x: Tensor) -> Tensor:
        b, n, c = x.shape
        x = x + self.pos(x.transpose(1, 2).reshape(b, c, self.size, self.size)).flatten(2).transpose(1, 2)
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class BiFormer(nn.Module):
    """forward(pixels [B, 3, H, W]) -> logits [B, num_classes]."""

    def __init__(
        self,
        img_size: int = 64,
        dims: tuple[int, ...] = (64, 128),
        depths: tuple[int, ...] = (2, 2),
        heads: tuple[int, ...] = (2, 4),
        regions: tuple[int, ...] = (4, 2),
        topks: tuple[int, ...] = (4, 2),
        mlp_ratio: float = 3.0,
        num_classes: int = 10,
        in_chans: int = 3,
    ) -> None:
        super().__init__()
        self.downsamples = nn.ModuleList()
        self.stages = nn.ModuleList()
        self.sizes: list[int] = []
        size, prev = img_size // 4, in_chans
        for i, (dim, depth, head, reg, topk) in enumerate(zip(dims, depths, heads, regions, topks, strict=True)):
            if i == 0:  # overlapping conv stem, stride 4
                down = nn.Sequential(
                    nn.Conv2d(prev, dim // 2, 3, stride=2, padding=1), nn.BatchNorm2d(dim // 2), nn.GELU(),
                    nn.Conv2d(dim // 2, dim, 3, stride=2, padding=1), nn.BatchNorm2d(dim),
                )
            else:
                size //= 2
                down = nn.Sequential(nn.Conv2d(prev, dim, 3, stride=2, padding=1), nn.BatchNorm2d(dim))
            self.downsamples.append(down)
            self.sizes.append(size)
            self.stages.append(nn.ModuleList(BiFormerBlock(dim, head, size, reg, topk, mlp_ratio) for _ in range(depth)))
            prev = dim
        self.norm = nn.LayerNorm(dims[-1])
        self.head = nn.Linear(dims[-1], num_classes)

    def forward(self, pixels: Tensor) -> Tensor:
        x = pixels
        tokens = x
        for down, blocks, size in zip(self.downsamples, self.stages, self.sizes, strict=True):
            tokens = down(x).flatten(2).transpose(1, 2)
            for blk in blocks:
                tokens = blk(tokens)
            x = tokens.transpose(1, 2).reshape(tokens.shape[0], -1, size, size)
        return self.head(self.norm(tokens.mean(dim=1)))


@register_model
def biformer_tiny(**cfg) -> BiFormer:
    """BiFormer for 64x64 images: stage 1 16x16 tokens in 4x4 regions (top-4), stage 2 8x8 in 2x2 regions (top-2)."""
    return BiFormer(**cfg)
