"""CATANet: content-aware token aggregation for lightweight image super-resolution.

Paper: Liu, Liu, Tang, Wu, "CATANet: Efficient Content-Aware Token Aggregation for Lightweight Image
Super-Resolution" (arXiv 2503.06896).

Mechanisms implemented:
- Content-Aware Token Aggregation (CATA): M token centers shared by all images; each token joins the group of its most
  similar center (cosine similarity, argmax). Centers are updated by an exponential moving average of their members
  during training only, and are fixed at inference.
- Intra-group self-attention (IASA): tokens are sorted by group (a `topk` over the key group * N + position, so the
  order is unique and identical in every runtime), cut into equal subgroups of `subgroup` tokens, and each subgroup
  attends to itself and the next subgroup (the paper's overlapping key windows), then the sort is undone.
- Inter-group cross-attention (IRCA): every token attends to the M centers to exchange global information.
- Local-region self-attention (LRSA) in windows and a conv feed-forward network, then a pixel-shuffle upsampler and
  a global residual on the bilinearly upsampled input.
Input: a low-resolution image [B, 3, H, W] (float); output: [B, 3, s*H, s*W].
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from edgekit.zoo.layers import SelfAttention, attention, merge_heads, split_heads, window_permutation
from edgekit.zoo.registry import register_model


class TokenAggregationAttention(nn.Module):
    """CATA grouping + IASA within sorted subgroups + IRCA to the centers."""

    def __init__(self, dim: int, heads: int, centers: int, subgroup: int, tokens: int, momentum: float = 0.99) -> None:
        super().__init__()
        if tokens % subgroup:
            raise ValueError(f"{tokens} tokens are not divisible into subgroups of {subgroup}")
        self.heads, self.subgroup, self.momentum = heads, subgroup, momentum
        self.register_buffer("centers", F.normalize(torch.randn(centers, dim), dim=-1))
        self.register_buffer("position", torch.arange(tokens, dtype=torch.float32), persistent=False)
        self.qkv = nn.Linear(dim, 3 * dim)
        self.center_kv = nn.Linear(dim, 2 * dim)
        self.proj = nn.Linear(dim, dim)
        self.proj_inter = nn.Linear(dim, dim)

    def assign(self, x: Tensor) -> Tensor:
        """Group index of each token: argmax cosine similarity to the centers, [B, N] (float, exact small ints)."""
        sim = torch.matmul(F.normalize(x, dim=-1), self.centers.t())  # [B, N, M]
        # argmax written as topk(1): the same index in every runtime
        return torch.topk(sim, 1, dim=-1)[1].squeeze(-1).to(x.dtype)

    @torch.no_grad()
    def _update_centers(self, x: Tensor, group: Tensor) -> None:
        onehot = F.one_hot(group.long().reshape(-1), self.centers.shape[0]).to(x.dtype)  # [B*N, M]
        sums = onehot.t() @ F.normalize(x.reshape(-1, x.shape[-1]), dim=-1)
        counts = onehot.sum(dim=0, keepdim=True).t()
        present = counts.squeeze(-1) > 0
        new = sums[present] / counts[present]
        self.centers[present] = F.normalize(self.momentum * self.centers[present] + (1 - self.momentum) * new, dim=-1)

    @staticmethod
    def _with_next(z: Tensor) -> Tensor:
        """[B, G, S, C] -> [B, G, 2S, C]: each subgroup followed by the next one (wrapping; slices, not roll)."""
        return torch.cat([z, torch.cat([z[:, 1:], z[:, :1]], dim=1)], dim=2)

    def forward(self, x: Tensor) -> Tensor:
        b, n, c = x.shape
        group = self.assign(x)
        if self.training and not torch.compiler.is_exporting():
            self._update_centers(x.detach(), group)
        # Sort tokens by group; the key is unique (group * N + position), so sorting is deterministic.
        key = group * float(n) + self.position
        order = torch.topk(-key, n, dim=-1)[1]  # ascending order, [B, N]
        idx = order.unsqueeze(-1).expand(b, n, c)
        q, k, v = (torch.gather(z, 1, idx) for z in self.qkv(x).chunk(3, dim=-1))
        # IASA: subgroup i attends to subgroups i and i+1 (wrapping), so neighbouring groups share information.
        g, s = n // self.subgroup, self.subgroup
        qg = split_heads(q.reshape(b * g, s, c), self.heads)
        k2, v2 = (self._with_next(z.reshape(b, g, s, c)) for z in (k, v))
        intra = attention(qg, split_heads(k2.reshape(b * g, 2 * s, c), self.heads),
                          split_heads(v2.reshape(b * g, 2 * s, c), self.heads))
        intra = merge_heads(intra).reshape(b, n, c)
        intra = torch.zeros_like(intra).scatter(1, idx, intra)  # undo the sort (float scatter; TFLite-safe)
        # IRCA: tokens attend to the shared centers.
        ck, cv = self.center_kv(self.centers).unsqueeze(0).chunk(2, dim=-1)
        q_all = split_heads(self.qkv(x)[..., :c], self.heads)
        inter = merge_heads(attention(q_all, split_heads(ck, self.heads), split_heads(cv, self.heads)))
        return self.proj(intra) + self.proj_inter(inter)


class ConvFFN(nn.Module):
    def __init__(self, dim: int, hidden: int, size: int) -> None:
        super().__init__()
        self.size = size
        self.fc1 = nn.Linear(dim, hidden)
        self.dw = nn.Conv2d(hidden, hidden, 3, padding=1, groups=hidden)
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: Tensor) -> Tensor:
        b, n, _ = x.shape
        h = F.gelu(self.fc1(x))
        h = h + self.dw(h.transpose(1, 2).reshape(b, -1, self.size, self.size)).flatten(2).transpose(1, 2)
        return self.fc2(F.gelu(h))


class TokenAggregationBlock(nn.Module):
    """CATA attention, then local-region self-attention, each followed by a ConvFFN (pre-LN, residual)."""

    def __init__(self, dim: int, heads: int, centers: int, subgroup: int, window: int, size: int) -> None:
        super().__init__()
        self.n1, self.cata = nn.LayerNorm(dim), TokenAggregationAttention(dim, heads, centers, subgroup, size * size)
        self.n2, self.ffn1 = nn.LayerNorm(dim), ConvFFN(dim, 2 * dim, size)
        self.n3, self.lrsa = nn.LayerNorm(dim), SelfAttention(dim, heads)
        self.n4, self.ffn2 = nn.LayerNorm(dim), ConvFFN(dim, 2 * dim, size)
        self.window_tokens = window * window
        perm = window_permutation(size, size, window)
        self.register_buffer("perm", perm, persistent=False)
        self.register_buffer("inv_perm", torch.argsort(perm), persistent=False)

    def forward(self, x: Tensor) -> Tensor:
        b, n, c = x.shape
        x = x + self.cata(self.n1(x))
        x = x + self.ffn1(self.n2(x))
        h = self.n3(x).index_select(1, self.perm).reshape(-1, self.window_tokens, c)
        x = x + self.lrsa(h).reshape(b, n, c).index_select(1, self.inv_perm)
        return x + self.ffn2(self.n4(x))


class CATANet(nn.Module):
    """forward(pixels [B, 3, H, W]) -> [B, 3, scale*H, scale*W] super-resolved image."""

    def __init__(
        self,
        img_size: int = 32,
        scale: int = 2,
        dim: int = 48,
        depth: int = 2,
        heads: int = 4,
        centers: int = 8,
        subgroup: int = 64,
        window: int = 8,
        in_chans: int = 3,
    ) -> None:
        super().__init__()
        self.size, self.scale = img_size, scale
        self.shallow = nn.Conv2d(in_chans, dim, 3, padding=1)
        self.blocks = nn.ModuleList(
            TokenAggregationBlock(dim, heads, centers, subgroup, window, img_size) for _ in range(depth)
        )
        self.norm = nn.LayerNorm(dim)
        self.after = nn.Conv2d(dim, dim, 3, padding=1)
        self.upsample = nn.Sequential(nn.Conv2d(dim, in_chans * scale * scale, 3, padding=1), nn.PixelShuffle(scale))

    def forward(self, pixels: Tensor) -> Tensor:
        feat = self.shallow(pixels)
        b, c, h, w = feat.shape
        x = feat.flatten(2).transpose(1, 2)
        for blk in self.blocks:
            x = blk(x)
        x = self.norm(x).transpose(1, 2).reshape(b, c, h, w)
        feat = feat + self.after(x)
        base = F.interpolate(pixels, scale_factor=float(self.scale), mode="bilinear", align_corners=False)
        return self.upsample(feat) + base


@register_model
def catanet_x2(**cfg) -> CATANet:
    """CATANet x2 super-resolution for 32x32 inputs: d=48, 2 blocks, 8 token centers, subgroups of 64 tokens."""
    return CATANet(**cfg)
