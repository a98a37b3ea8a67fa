"""TransNormerLLM with Lightning Attention: a linear-attention causal language model.

Papers: Qin et al., "Various Lengths, Constant Speed: Efficient Language Modeling with Lightning Attention"
(arXiv 2405.17381), and the TransNormerLLM architecture it uses (arXiv 2307.14995).

Mechanisms implemented:
- causal linear attention with a per-head exponential decay lambda_h (TransNormerLLM's LRPE-d decay):
  o_t = q_t sum_{s <= t} lambda^(t-s) k_s^T v_s, with phi = SiLU on queries and keys and no softmax;
- Lightning Attention's block computation: the sequence is cut into blocks of `block` tokens; inside a block the
  attention is computed the "left-product" way, (Q K^T * D) V with the decay mask D; between blocks the "right-product"
  (kernel) way, lambda^(i+1) Q KV, carrying a d x d state KV = lambda^B KV + (lambda^(B-1-j) K)^T V across blocks. No
  cumsum is needed. `naive=True` computes the same quantity with the full T x T decay mask (the reference the test
  compares against);
- gated linear attention (output gate U, SRMSNorm on the attention output), simple gated linear units (SGLU, no
  activation) as channel mixer, SRMSNorm (RMS norm without a gain) pre-norms, tied input/output embeddings.
forward(input_ids [B, T] int64) -> logits [B, T, vocab]. T must be a multiple of `block`.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from edgekit.zoo.registry import register_model


class SRMSNorm(nn.Module):
    """Simple RMS norm: x / sqrt(mean(x^2) + eps) (no learned gain), as in TransNormerLLM."""

    def __init__(self, eps: float = 1e-6) -> None:
        super().__init__()
        self.eps = eps

    def forward(self, x: Tensor) -> Tensor:
        return x * torch.rsqrt(x.pow(2).mean(dim=-1, keepdim=True) + self.eps)


def decay_rates(heads: int, layer: int, depth: int) -> Tensor:
    """TransNormerLLM decay: lambda_h = exp(-(8h/H) * (1 - l/L)), h = 1..H, layer l = 0..L-1."""
    h = torch.arange(1, heads + 1, dtype=torch.float64)
    return torch.exp(-(8.0 * h / heads) * (1.0 - layer / depth))


class LightningAttention(nn.Module):
    def __init__(self, dim: int, heads: int, block: int, seq_len: int, layer: int, depth: int) -> None:
        super().__init__()
        if seq_len % block:
            raise ValueError(f"seq_len {seq_len} must be a multiple of the block size {block}")
        self.heads, self.head_dim, self.block = heads, dim // heads, block
        self.qkvu = nn.Linear(dim, 4 * dim, bias=False)
        self.norm = SRMSNorm()
        self.out = nn.Linear(dim, dim, bias=False)
        lam = decay_rates(heads, layer, depth)  # [H]
        i = torch.arange(block, dtype=torch.float64)
        diff = i[:, None] - i[None, :]
        intra = torch.where(diff >= 0, lam[:, None, None] ** diff.clamp(min=0), torch.zeros(()))  # [H, B, B]
        self.register_buffer("intra_decay", intra.float(), persistent=False)
        self.register_buffer("q_decay", (lam[:, None] ** (i + 1)).float()[:, :, None], persistent=False)  # [H, B, 1]
        self.register_buffer("k_decay", (lam[:, None] ** (block - 1 - i)).float()[:, :, None], persistent=False)
        self.register_buffer("block_decay", (lam**block).float()[:, None, None], persistent=False)  # [H, 1, 1]
        t = torch.arange(seq_len, dtype=torch.float64)
        tdiff = t[:, None] - t[None, :]
        full = torch.where(tdiff >= 0, lam[:, None, None] ** tdiff.clamp(min=0), torch.zeros(()))
        self.register_buffer("full_decay", full.float(), persistent=False)  # [H, T, T], for the naive path
        self.naive = False

    def forward(self, x: Tensor) -> Tensor:
        b, t, c = x.shape
        q, k, v, u = self.qkvu(x).chunk(4, dim=-1)
        q, k = F.silu(q), F.silu(k)
        q, k, v = (z.reshape(b, t, self.heads, self.head_dim).transpose(1, 2) for z in (q, k, v))  # [B, H, T, d]
        o = self._naive(q, k, v) if self.naive else self._lightning(q, k, v)
        o = o.transpose(1, 2).reshape(b, t, c)
        return self.out(self.norm(o) * u)  # gated linear attention

    def _naive(self, q: Tensor, k: Tensor, v: Tensor) -> Tensor:
        t = q.shape[2]
        return torch.matmul(torch.matmul(q, k.transpose(-2, -1)) * self.full_decay[:, :t, :t], v)

    def _lightning(self, q: Tensor, k: Tensor, v: Tensor) -> Tensor:
        bsz, h, t, d = q.shape
        n = self.block
        kv = torch.zeros(bsz, h, d, d, dtype=q.dtype, device=q.device)
        outs = []
        for start in range(0, t, n):  # the number of blocks is static for a fixed sequence length
            qb, kb, vb = q[:, :, start : start + n], k[:, :, start : start + n], v[:, :, start : start + n]
            intra = torch.matmul(torch.matmul(qb, kb.transpose(-2, -1)) * self.intra_decay, vb)  # left product
            inter = torch.matmul(qb * self.q_decay, kv)  # right product with the carried state
            outs.append(intra + inter)
            kv = self.block_decay * kv + torch.matmul((kb * self.k_decay).transpose(-2, -1), vb)
        return torch.cat(outs, dim=2) if len(outs) > 1 else outs[0]


class SGLU(nn.Module):
    """Simple gated linear unit: W_o((W_u x) * (W_v x)), no activation."""

    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.u = nn.Linear(dim, hidden, bias=False)
        self.v = nn.Linear(dim, hidden, bias=False)
        self.o = nn.Linear(hidden, dim, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        return self.o(self.u(x) * self.v(x))


class TNLBlock(nn.Module):
    def __init__(self, dim: int, heads: int, hidden: int, block: int, seq_len: int, layer: int, depth: int) -> None:
        super().__init__()
        self.norm1, self.attn = SRMSNorm(), LightningAttention(dim, heads, block, seq_len, layer, depth)
        self.norm2, self.mlp = SRMSNorm(), SGLU(dim, hidden)

    def forward(self, x: Tensor) -> Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class TransNormerLM(nn.Module):
    """forward(input_ids [B, T] int64) -> logits [B, T, vocab_size]."""

    def __init__(
        self,
        vocab_size: int = 8192,
        seq_len: int = 64,
        dim: int = 128,
        depth: int = 4,
        heads: int = 4,
        hidden: int = 256,
        block: int = 16,
    ) -> None:
        super().__init__()
        self.embed = nn.Embedding(vocab_size, dim)
        nn.init.normal_(self.embed.weight, std=1.0 / math.sqrt(dim))
        self.blocks = nn.ModuleList(TNLBlock(dim, heads, hidden, block, seq_len, i, depth) for i in range(depth))
        self.norm = SRMSNorm()
        self.head = nn.Linear(dim, vocab_size, bias=False)
        self.head.weight = self.embed.weight

    @property
    def naive(self) -> bool:
        return all(b.attn.naive for b in self.blocks)

    @naive.setter
    def naive(self, value: bool) -> None:
        for b in self.blocks:
            b.attn.naive = bool(value)

    def forward(self, input_ids: Tensor) -> Tensor:
        x = self.embed(input_ids)
        for blk in self.blocks:
            x = blk(x)
        return self.head(self.norm(x))


@register_model
def transnormer_tiny(**cfg) -> TransNormerLM:
    """TransNormerLLM with Lightning Attention: d=128, 4 layers, 4 heads, blocks of 16 over 64 tokens, vocab 8192."""
    return TransNormerLM(**cfg)
