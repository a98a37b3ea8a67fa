"""FIT: Far-reaching Interleaved Transformers, as an image classifier.

Paper: Chen, Li, "FIT: Far-reaching Interleaved Transformers" (arXiv 2305.12689).

Mechanism implemented: the data tokens (image patches) are divided into groups (here: square windows of the patch
grid). Two kinds of layers interleave:
- *local* layers: ordinary self-attention + FFN inside each group of data tokens (O(n^2) per group of n tokens);
- *global* layers on a small set of latent tokens per group: latents first read their group's data tokens by
  cross-attention, then all latents of all groups run self-attention + FFN together (information travels between
  groups only through latents), then the data tokens write-back: each group's data tokens cross-attend to that group's
  latents.
The latents are learned and shared by groups (plus a per-group embedding). The class logits come from the mean of
the final latents.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from edgekit.zoo.layers import Block, CrossBlock, PatchEmbed, window_permutation
from edgekit.zoo.registry import register_model


class FITStage(nn.Module):
    """`local_depth` local layers, then read (data -> latents), `global_depth` global layers, write (latents -> data)."""

    def __init__(
        self, dim: int, heads: int, local_depth: int, global_depth: int, mlp_ratio: float, write: bool = True
    ) -> None:
        super().__init__()
        self.local = nn.ModuleList(Block(dim, heads, mlp_ratio) for _ in range(local_depth))
        self.read = CrossBlock(dim, heads, mlp_ratio)
        self.glob = nn.ModuleList(Block(dim, heads, mlp_ratio) for _ in range(global_depth))
        self.write = CrossBlock(dim, heads, mlp_ratio) if write else None  # the last stage's would feed nothing

    def forward(self, data: Tensor, latents: Tensor, groups: int) -> tuple[Tensor, Tensor]:
        # data: [B*G, n, d] (grouped), latents: [B*G, m, d]
        for blk in self.local:
            data = blk(data)
        latents = self.read(latents, data)
        bg, m, d = latents.shape
        z = latents.reshape(-1, groups * m, d)  # all groups' latents together
        for blk in self.glob:
            z = blk(z)
        latents = z.reshape(bg, m, d)
        if self.write is not None:
            data = self.write(data, latents)
        return data, latents


class FIT(nn.Module):
    """forward(pixels [B, 3, H, W]) -> logits [B, num_classes]."""

    def __init__(
        self,
        img_size: int = 64,
        patch: int = 4,
        dim: int = 128,
        heads: int = 4,
        group: int = 8,
        latents: int = 8,
        stages: int = 2,
        local_depth: int = 1,
        global_depth: int = 1,
        mlp_ratio: float = 2.0,
        num_classes: int = 10,
        in_chans: int = 3,
    ) -> None:
        super().__init__()
        grid = img_size // patch
        self.groups = (grid // group) ** 2
        self.group_tokens = group * group
        self.embed = PatchEmbed(in_chans, dim, patch)
        self.pos = nn.Parameter(torch.randn(1, grid * grid, dim) * 0.02)
        perm = window_permutation(grid, grid, group)
        self.register_buffer("perm", perm, persistent=False)
        self.latents = nn.Parameter(torch.randn(1, 1, latents, dim) * 0.02)
        self.group_embed = nn.Parameter(torch.randn(1, self.groups, 1, dim) * 0.02)
        self.stages = nn.ModuleList(
            FITStage(dim, heads, local_depth, global_depth, mlp_ratio, write=i < stages - 1) for i in range(stages)
        )
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, num_classes)

    def forward(self, pixels: Tensor) -> Tensor:
        x = self.embed(pixels) + self.pos  # [B, N, d]
        b, _, d = x.shape
        data = x.index_select(1, self.perm).reshape(-1, self.group_tokens, d)  # [B*G, n, d]
        latents = (self.latents + self.group_embed).expand(b, -1, -1, -1).reshape(-1, self.latents.shape[2], d)
        for stage in self.stages:
            data, latents = stage(data, latents, self.groups)
        return self.head(self.norm(latents.reshape(b, -1, d).mean(dim=1)))


@register_model
def fit_tiny(**cfg) -> FIT:
    """FIT for 64x64 images: patch 4 (256 tokens) in 4 groups of 8x8, 8 latents per group, d=128, 2 stages."""
    return FIT(**cfg)
