"""CrossViT: dual-branch vision transformer fused by CLS-token cross-attention.

Paper: Chen, Fan, Panda, "CrossViT: Cross-Attention Multi-Scale Vision Transformer for Image Classification"
(arXiv 2103.14899).

Mechanism implemented: two branches tokenise the image with a small and a large patch size (different token
counts and widths); each multi-scale encoder stage runs the branches' own transformer blocks, then fuses them by
*cross-attention with the CLS token as the only query*: branch i's CLS token is projected to branch j's width,
attends over [CLS_i, patch tokens of j] (linear in the number of tokens), is projected back and replaces CLS_i.
The prediction is the mean of the two branches' CLS heads.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from edgekit.zoo.layers import Block, CrossAttention, PatchEmbed
from edgekit.zoo.registry import register_model


class CrossAttentionFusion(nn.Module):
    """CLS of the source branch (width d_s) queries the tokens of the target branch (width d_t)."""

    def __init__(self, d_src: int, d_tgt: int, heads: int) -> None:
        super().__init__()
        self.proj_in = nn.Sequential(nn.LayerNorm(d_src), nn.GELU(), nn.Linear(d_src, d_tgt))  # f(.)
        self.norm = nn.LayerNorm(d_tgt)
        self.attn = CrossAttention(d_tgt, heads)
        self.proj_out = nn.Sequential(nn.LayerNorm(d_tgt), nn.GELU(), nn.Linear(d_tgt, d_src))  # g(.)

    def forward(self, src: Tensor, tgt: Tensor) -> Tensor:
        cls = self.proj_in(src[:, :1])  # [B, 1, d_t]
        context = self.norm(torch.cat([cls, tgt[:, 1:]], dim=1))
        cls = cls + self.attn(self.norm(cls), context)  # query = CLS only: O(N) instead of O(N^2)
        return torch.cat([src[:, :1] + self.proj_out(cls), src[:, 1:]], dim=1)


class MultiScaleStage(nn.Module):
    def __init__(self, dims: tuple[int, int], depths: tuple[int, int], heads: tuple[int, int], mlp_ratio: float) -> None:
        super().__init__()
        self.branches = nn.ModuleList(
            nn.ModuleList(Block(d, h, mlp_ratio) for _ in range(n)) for d, n, h in zip(dims, depths, heads, strict=True)
        )
        self.fuse_s = CrossAttentionFusion(dims[0], dims[1], heads[1])  # small-patch CLS -> large-patch tokens
        self.fuse_l = CrossAttentionFusion(dims[1], dims[0], heads[0])  # large-patch CLS -> small-patch tokens

    def forward(self, xs: Tensor, xl: Tensor) -> tuple[Tensor, Tensor]:
        for blk in self.branches[0]:
            xs = blk(xs)
        for blk in self.branches[1]:
            xl = blk(xl)
        return self.fuse_s(xs, xl), self.fuse_l(xl, xs)


class CrossViT(nn.Module):
    """forward(pixels [B, 3, H, W]) -> logits [B, num_classes]."""

    def __init__(
        self,
        img_size: int = 64,
        patches: tuple[int, int] = (8, 16),
        dims: tuple[int, int] = (96, 192),
        depths: tuple[int, int] = (1, 1),
        heads: tuple[int, int] = (3, 6),
        stages: int = 3,
        mlp_ratio: float = 2.0,
        num_classes: int = 10,
        in_chans: int = 3,
    ) -> None:
        super().__init__()
        self.embeds = nn.ModuleList(PatchEmbed(in_chans, d, p) for d, p in zip(dims, patches, strict=True))
        self.cls = nn.ParameterList(nn.Parameter(torch.zeros(1, 1, d)) for d in dims)
        self.pos = nn.ParameterList(
            nn.Parameter(torch.randn(1, (img_size // p) ** 2 + 1, d) * 0.02) for d, p in zip(dims, patches, strict=True)
        )
        self.stages = nn.ModuleList(MultiScaleStage(tuple(dims), tuple(depths), tuple(heads), mlp_ratio) for _ in range(stages))
        self.norms = nn.ModuleList(nn.LayerNorm(d) for d in dims)
        self.heads = nn.ModuleList(nn.Linear(d, num_classes) for d in dims)

    def forward(self, pixels: Tensor) -> Tensor:
        tokens = []
        for i, embed in enumerate(self.embeds):
            x = embed(pixels)
            cls = self.cls[i].expand(x.shape[0], -1, -1)
            tokens.append(torch.cat([cls, x], dim=1) + self.pos[i])
        xs, xl = tokens
        for stage in self.stages:
            xs, xl = stage(xs, xl)
        logits = [head(norm(x[:, 0])) for x, norm, head in zip((xs, xl), self.norms, self.heads, strict=True)]
        return (logits[0] + logits[1]) * 0.5


@register_model
def crossvit_tiny(**cfg) -> CrossViT:
    """CrossViT for 64x64 images: patches 8 and 16, widths 96/192, 3 multi-scale stages, 10 classes."""
    return CrossViT(**cfg)
