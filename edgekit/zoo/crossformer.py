"""CrossFormer: cross-scale embedding and long/short distance attention.

Paper: Wang et al., "CrossFormer: A Versatile Vision Transformer Hinging on Cross-scale Attention"
(arXiv 2108.00154).

Mechanisms implemented:
- Cross-scale Embedding Layer (CEL): several convolutions with different kernel sizes but the same stride sample
  patches of different scales around each position; their outputs are concatenated along channels (larger kernels
  get fewer channels), so every embedding mixes scales. Used as the stem and as the patch merging between stages.
- Long Short Distance Attention (LSDA): blocks alternate Short-Distance Attention (attention inside groups of
  G x G adjacent embeddings) and Long-Distance Attention (attention inside groups of embeddings sampled with a fixed
  interval I = size / G). Grouping is a gather with a precomputed permutation and its inverse (rank <= 4 tensors,
  which every converter takes).
- Dynamic Position Bias (DPB): a small MLP maps the relative offset (dy, dx) of each pair in a group (times I for
  long-distance groups) to a per-head bias.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from edgekit.zoo.layers import Mlp, SelfAttention, group_offsets, window_permutation
from edgekit.zoo.registry import register_model


class CrossScaleEmbedding(nn.Module):
    """Convs of kernel sizes `kernels` (same stride) concatenated on channels: [B, C, H, W] -> [B, dim, H/s, W/s]."""

    def __init__(self, in_chans: int, dim: int, kernels: tuple[int, ...], stride: int) -> None:
        super().__init__()
        # Paper's split: the largest kernel gets the fewest channels (dim/2, dim/4, ..., remainder to the last).
        dims = [dim // (2 ** (i + 1)) for i in range(len(kernels) - 1)]
        dims.append(dim - sum(dims))
        self.convs = nn.ModuleList(
            nn.Conv2d(in_chans, d, kernel_size=k, stride=stride, padding=(k - stride) // 2)
            for k, d in zip(sorted(kernels), dims, strict=True)
        )
        self.norm = nn.BatchNorm2d(dim)

    def forward(self, x: Tensor) -> Tensor:
        return self.norm(torch.cat([conv(x) for conv in self.convs], dim=1))


class DynamicPositionBias(nn.Module):
    """MLP: relative offset (dy, dx) -> bias per head."""

    def __init__(self, heads: int, hidden: int = 16) -> None:
        super().__init__()
        self.mlp = nn.Sequential(
            nn.Linear(2, hidden), nn.LayerNorm(hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.LayerNorm(hidden),
            nn.ReLU(), nn.Linear(hidden, heads),
        )

    def forward(self, offsets: Tensor, group_tokens: int) -> Tensor:
        bias = self.mlp(offsets)  # [G^2 * G^2, heads]
        return bias.transpose(0, 1).reshape(1, -1, group_tokens, group_tokens)


class LSDABlock(nn.Module):
    """Pre-LN transformer block whose attention runs inside short- (adjacent) or long-distance (dilated) groups."""

    def __init__(self, dim: int, heads: int, size: int, group: int, long_distance: bool, mlp_ratio: float) -> None:
        super().__init__()
        if size % group:
            raise ValueError(f"feature size {size} must be divisible by group size {group}")
        self.group_tokens = group * group
        perm = window_permutation(size, size, group, dilated=long_distance)
        self.register_buffer("perm", perm, persistent=False)
        self.register_buffer("inv_perm", torch.argsort(perm), persistent=False)
        stride = size // group if long_distance else 1
        self.register_buffer("offsets", group_offsets(group, stride) / float(size), persistent=False)
        self.norm1 = nn.LayerNorm(dim)
        self.attn = SelfAttention(dim, heads)
        self.dpb = DynamicPositionBias(heads)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))

    def forward(self, x: Tensor) -> Tensor:
        b, n, c = x.shape
        h = self.norm1(x).index_select(1, self.perm).reshape(-1, self.group_tokens, c)  # [B*groups, G*G, C]
        h = self.attn(h, self.dpb(self.offsets, self.group_tokens))
        x = x + h.reshape(b, n, c).index_select(1, self.inv_perm)
        return x + self.mlp(self.norm2(x))


class CrossFormer(nn.Module):
    """forward(pixels [B, 3, H, W]) -> logits [B, num_classes]."""

    def __init__(
        self,
        img_size: int = 64,
        dims: tuple[int, ...] = (48, 96),
        depths: tuple[int, ...] = (2, 2),
        heads: tuple[int, ...] = (2, 4),
        groups: tuple[int, ...] = (4, 4),
        stem_kernels: tuple[int, ...] = (4, 8, 16, 32),
        merge_kernels: tuple[int, ...] = (2, 4),
        mlp_ratio: float = 2.0,
        num_classes: int = 10,
        in_chans: int = 3,
    ) -> None:
        super().__init__()
        self.embeds = nn.ModuleList()
        self.stages = nn.ModuleList()
        self.sizes: list[int] = []
        size = img_size // 4
        prev = in_chans
        for i, (dim, depth, head, group) in enumerate(zip(dims, depths, heads, groups, strict=True)):
            if i == 0:
                self.embeds.append(CrossScaleEmbedding(prev, dim, tuple(stem_kernels), stride=4))
            else:
                size //= 2
                self.embeds.append(CrossScaleEmbedding(prev, dim, tuple(merge_kernels), stride=2))
            self.sizes.append(size)
            # SDA and LDA alternate; LDA needs at least two groups per side.
            blocks = [LSDABlock(dim, head, size, group, long_distance=(j % 2 == 1 and size > group), mlp_ratio=mlp_ratio)
                      for j in range(depth)]
            self.stages.append(nn.ModuleList(blocks))
            prev = dim
        self.norm = nn.LayerNorm(dims[-1])
        self.head = nn.Linear(dims[-1], num_classes)

    def forward(self, pixels: Tensor) -> Tensor:
        x = pixels
        tokens = x
        for embed, blocks, size in zip(self.embeds, self.stages, self.sizes, strict=True):
            feat = embed(x)  # [B, C, s, s]
            tokens = feat.flatten(2).transpose(1, 2)
            for blk in blocks:
                tokens = blk(tokens)
            x = tokens.transpose(1, 2).reshape(tokens.shape[0], -1, size, size)
        return self.head(self.norm(tokens.mean(dim=1)))


@register_model
def crossformer_tiny(**cfg) -> CrossFormer:
    """CrossFormer for 64x64 images: CEL stem (kernels 4/8/16/32, stride 4), two stages of SDA/LDA blocks."""
    return CrossFormer(**cfg)
