"""INFNet: a task-aware information flow network for multi-task CTR prediction.

Paper: Li et al., "INFNet: A Task-aware Information Flow Network for Large-Scale Recommendation Systems"
(arXiv 2508.11565).

Mechanisms implemented (edgekit's reading of the paper):
- three token types: categorical tokens (one per categorical field, from a hashed embedding table), sequence tokens
  (the user's behaviour sequence, item embeddings + positions) and task tokens (one learned token per objective);
- each type keeps a few *proxy* tokens that summarise it (learned queries attending over the type's tokens);
- heterogeneous flow: cross-attention *with proxies*: each type's tokens attend to the proxies of the other two types
  instead of to all of their tokens, so cross-type interaction costs O(N * P) rather than O(N^2);
- homogeneous flow: type-specific Proxy Gated Units (PGU): a gated feed-forward unit per type whose gate is computed
  from the type's own proxy summary, x + W_o(W_v x * sigmoid(W_g x + U_g p));
- the two flows alternate in blocks; every task head reads its own task token (late fusion is avoided: task tokens
  take part in every block) and emits one logit (CTR, CVR, ...).
Inputs are int64 ids: `cat_ids` [B, fields] and `seq_ids` [B, seq_len] (0 = padding in the sequence).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from edgekit.zoo.layers import CrossAttention
from edgekit.zoo.registry import register_model


class ProxyPool(nn.Module):
    """P learned queries attend over a type's tokens -> [B, P, d] proxy tokens."""

    def __init__(self, dim: int, proxies: int, heads: int) -> None:
        super().__init__()
        self.queries = nn.Parameter(torch.randn(1, proxies, dim) * 0.02)
        self.attn = CrossAttention(dim, heads)

    def forward(self, tokens: Tensor, bias: Tensor | None = None) -> Tensor:
        q = self.queries.expand(tokens.shape[0], -1, -1)
        return q + self.attn(q, tokens, bias)


class ProxyGatedUnit(nn.Module):
    """Gated FFN whose gate also reads the type's proxy summary."""

    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(dim)
        self.value = nn.Linear(dim, hidden)
        self.gate = nn.Linear(dim, hidden)
        self.proxy_gate = nn.Linear(dim, hidden, bias=False)
        self.out = nn.Linear(hidden, dim)

    def forward(self, x: Tensor, proxy: Tensor) -> Tensor:
        h = self.norm(x)
        g = torch.sigmoid(self.gate(h) + self.proxy_gate(proxy.mean(dim=1, keepdim=True)))
        return x + self.out(self.value(h) * g)


class InformationBlock(nn.Module):
    """One heterogeneous step (proxy cross-attention between types) then one homogeneous step (PGU per type)."""

    TYPES = ("cat", "seq", "task")

    def __init__(self, dim: int, heads: int, proxies: int, hidden: int) -> None:
        super().__init__()
        self.pools = nn.ModuleDict({t: ProxyPool(dim, proxies, heads) for t in self.TYPES})
        self.norms = nn.ModuleDict({t: nn.LayerNorm(dim) for t in self.TYPES})
        self.cross = nn.ModuleDict({t: CrossAttention(dim, heads) for t in self.TYPES})
        self.pgus = nn.ModuleDict({t: ProxyGatedUnit(dim, hidden) for t in self.TYPES})

    def forward(self, tokens: dict[str, Tensor], seq_bias: Tensor) -> dict[str, Tensor]:
        proxies = {t: self.pools[t](self.norms[t](x), seq_bias if t == "seq" else None) for t, x in tokens.items()}
        out = {}
        for t, x in tokens.items():
            others = torch.cat([proxies[o] for o in self.TYPES if o != t], dim=1)  # heterogeneous flow via proxies
            x = x + self.cross[t](self.norms[t](x), others)
            out[t] = self.pgus[t](x, proxies[t])  # homogeneous flow
        return out


class INFNet(nn.Module):
    """forward(cat_ids [B, F] int64, seq_ids [B, L] int64) -> logits [B, num_tasks] (apply sigmoid for CTR/CVR)."""

    def __init__(
        self,
        num_fields: int = 16,
        vocab_size: int = 20000,
        item_vocab: int = 20000,
        seq_len: int = 32,
        dim: int = 64,
        heads: int = 4,
        proxies: int = 4,
        depth: int = 2,
        num_tasks: int = 2,
        hidden: int = 128,
    ) -> None:
        super().__init__()
        self.num_fields = num_fields
        self.cat_embed = nn.Embedding(vocab_size, dim)
        self.field_embed = nn.Parameter(torch.randn(1, num_fields, dim) * 0.02)
        self.item_embed = nn.Embedding(item_vocab, dim)
        self.seq_pos = nn.Parameter(torch.randn(1, seq_len, dim) * 0.02)
        self.task_tokens = nn.Parameter(torch.randn(1, num_tasks, dim) * 0.02)
        self.blocks = nn.ModuleList(InformationBlock(dim, heads, proxies, hidden) for _ in range(depth))
        self.norm = nn.LayerNorm(dim)
        self.task_heads = nn.Parameter(torch.randn(num_tasks, dim) * 0.02)
        self.task_bias = nn.Parameter(torch.zeros(num_tasks))

    def forward(self, cat_ids: Tensor, seq_ids: Tensor) -> Tensor:
        b = cat_ids.shape[0]
        tokens = {
            "cat": self.cat_embed(cat_ids) + self.field_embed,
            "seq": self.item_embed(seq_ids) + self.seq_pos,
            "task": self.task_tokens.expand(b, -1, -1),
        }
        # Padding items (id 0) are hidden from the sequence proxies; an all-padding row still sees its first slot.
        pad = (seq_ids == 0).to(tokens["seq"].dtype)
        pad = pad * torch.cat([torch.zeros_like(pad[:, :1]), torch.ones_like(pad[:, 1:])], dim=1)
        seq_bias = (pad * -1e9)[:, None, None, :]
        for blk in self.blocks:
            tokens = blk(tokens, seq_bias)
        task = self.norm(tokens["task"])  # [B, T, d]
        return (task * self.task_heads).sum(dim=-1) + self.task_bias  # one logit per task


@register_model
def infnet_tiny(**cfg) -> INFNet:
    """INFNet with 16 categorical fields, a 32-item behaviour sequence, 4 proxies per type, 2 tasks (CTR, CVR)."""
    return INFNet(**cfg)
