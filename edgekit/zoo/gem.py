"""GEM: the Generalized Edge Model with a Sparse Cross-Attention Router (SCAR).

Paper: "Fragile Mastery: Are Domain-Specific Trade-Offs Undermining On-Device Language Models?" (arXiv 2503.22698).
The paper describes GEM in words only; this is edgekit's implementation of that description (DESIGN.md, "GEM and
SCAR"):

- a compact pre-LN transformer encoder (token embedding + learned positions);
- SCAR layers in place of the feed-forward block: a pool of compute units (expert FFNs of *different* widths, so
  different cost), each with a learned key. Token states cross-attend to the unit keys (scaled dot product, softmax)
  to score them; each token keeps its top-k units whose score passes a threshold (the top-1 always stays), so the
  number of units per token varies between 1 and k. Kept scores are renormalised and gate a sum of unit outputs.
- two execution paths with identical results: the eager path is truly sparse (each unit runs only on the tokens
  that chose it: nonzero + index_select + index_add); the static path (topk + scatter mask + threshold + gated sum
  over stacked unit outputs) runs every unit on every token. The static path is used when `model.static` is set.
- two export forms, chosen by the config key `scar_export` (`GEM.scar_export` switches a built model): "static"
  (the default) traces the static path while torch.export/torch.onnx run (`torch.compiler.is_exporting()`), so
  ONNX, TFLite and CoreML accept it, but artifacts do not realise the router's savings; "sparse" traces the eager
  sparse path itself — per unit, NonZero over its mask column, Gather of those token rows, the unit's FFN on them,
  ScatterND-add back weighted by the gates — a graph with data-dependent shapes whose cost follows the routing.
  ONNX (opset 18) and onnxruntime run it; coremltools converts it (non_zero + scatter_nd; not executable on Linux);
  litert-torch cannot lower the data-dependent aten.nonzero, so there is no TFLite form (card `gem-tiny-sparse`,
  docs/zoo.md).
- a Switch-style load-balancing loss, n_units * sum_u(f_u * P_u) (f_u: fraction of routed assignments that went to
  unit u, P_u: mean router probability of u);
- hybrid quantization: `GEM.high_precision_modules()` names the router modules that quantizers must keep in float
  (their parameter names start with these prefixes: `<name>.query.weight`, `<name>.keys`);
- knowledge-preserving distillation: `knowledge_preserving_loss` = alpha * T^2 * weighted KL(teacher || student)
  + (1 - alpha) * cross-entropy, for domain specialisation without forgetting the general teacher.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from edgekit.zoo.layers import SelfAttention
from edgekit.zoo.registry import register_model

NEG_INF = -1e9
SCAR_EXPORTS = ("static", "sparse")


@dataclass(frozen=True)
class GEMConfig:
    """Sizes of one GEM configuration. Widths are FFN hidden sizes of the SCAR compute units."""

    vocab_size: int = 8192
    max_len: int = 128
    dim: int = 128
    depth: int = 4
    heads: int = 4
    unit_widths: tuple[int, ...] = (64, 128, 256, 384)
    top_k: int = 2
    threshold: float = 0.25
    key_dim: int = 64
    router: bool = True  # False = dense baseline: one FFN of width sum(unit_widths) (same parameter count)
    head: str = "classification"  # "classification" (pooled logits over num_classes) or "lm" (logits over vocab)
    num_classes: int = 8
    causal: bool = False
    tie_embeddings: bool = True  # LM head shares the token embedding matrix
    dense_width: int | None = None
    scar_export: str = "static"  # SCAR's exported graph: "static" (all units on all tokens) or "sparse" (see above)

    def __post_init__(self) -> None:
        if self.scar_export not in SCAR_EXPORTS:
            raise ValueError(f"scar_export must be one of {', '.join(SCAR_EXPORTS)}, not {self.scar_export!r}")
        if self.head not in ("classification", "lm"):
            raise ValueError(f"head must be 'classification' or 'lm', not {self.head!r}")
        if self.router and not 1 <= self.top_k <= len(self.unit_widths):
            raise ValueError(f"top_k={self.top_k} must be in 1..{len(self.unit_widths)} (the number of units)")
        if not 0.0 <= self.threshold < 1.0:
            raise ValueError(f"threshold={self.threshold} must be in [0, 1)")


class FeedForward(nn.Module):
    """One compute unit: Linear(d, w) -> GELU -> Linear(w, d)."""

    def __init__(self, dim: int, width: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, width)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(width, dim)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc2(self.act(self.fc1(x)))


class SCARRouter(nn.Module):
    """Cross-attention scoring of compute units: softmax(W_q x . keys^T / sqrt(d_k)) -> [..., n_units].

    Kept in high precision by hybrid quantization (see `GEM.high_precision_modules`).
    """

    def __init__(self, dim: int, n_units: int, key_dim: int) -> None:
        super().__init__()
        self.query = nn.Linear(dim, key_dim, bias=False)
        self.keys = nn.Parameter(torch.randn(n_units, key_dim) / math.sqrt(key_dim))
        self.scale = 1.0 / math.sqrt(key_dim)

    def forward(self, x: Tensor) -> Tensor:
        return torch.softmax(torch.matmul(self.query(x), self.keys.t()) * self.scale, dim=-1)


@dataclass
class RoutingStats:
    """What one SCAR layer decided on the last batch (eager runs only; not recorded while exporting)."""

    units_per_token: float  # mean number of units a (non-padding) token ran
    unit_fraction: list[float]  # share of routed assignments per unit
    tokens: int


class SCAR(nn.Module):
    """Sparse Cross-Attention Router over a pool of expert FFNs of different widths."""

    def __init__(self, dim: int, unit_widths: tuple[int, ...], top_k: int, threshold: float, key_dim: int,
                 export: str = "static") -> None:
        super().__init__()
        if export not in SCAR_EXPORTS:
            raise ValueError(f"export must be one of {', '.join(SCAR_EXPORTS)}, not {export!r}")
        self.unit_widths = tuple(unit_widths)
        self.units = nn.ModuleList(FeedForward(dim, w) for w in unit_widths)
        self.router = SCARRouter(dim, len(unit_widths), key_dim)
        self.top_k = top_k
        self.threshold = threshold
        self.static = False
        self.export = export  # the graph torch.export traces: "static" or "sparse"
        self.last_stats: RoutingStats | None = None
        self.last_aux_loss: Tensor | None = None

    def route(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Router probabilities, the 0/1 keep mask and the renormalised gates, each [..., n_units]."""
        probs = self.router(x)
        top_vals, top_idx = torch.topk(probs, self.top_k, dim=-1)
        # The top-1 unit is always kept; the others only when their score passes the threshold. (Written with cat
        # rather than `|`: coremltools has no bitwise-or.)
        keep = torch.ones_like(top_vals[..., :1])
        if self.top_k > 1:
            keep = torch.cat([keep, (top_vals[..., 1:] >= self.threshold).to(probs.dtype)], dim=-1)
        mask = torch.zeros_like(probs).scatter(-1, top_idx, keep)
        gates = probs * mask
        gates = gates / gates.sum(dim=-1, keepdim=True)
        return probs, mask, gates

    def forward(self, x: Tensor, valid: Tensor | None = None) -> Tensor:
        probs, mask, gates = self.route(x)
        exporting = torch.compiler.is_exporting() or torch.jit.is_tracing()
        if self.static or (exporting and self.export == "static"):
            stacked = torch.stack([unit(x) for unit in self.units], dim=-2)  # [..., U, d]
            out = torch.sum(gates.unsqueeze(-1) * stacked, dim=-2)
        else:
            out = self._sparse(x, mask, gates, skip_empty=not exporting)
        if not exporting:
            self._record(probs, mask, valid)
        return out

    def _sparse(self, x: Tensor, mask: Tensor, gates: Tensor, skip_empty: bool = True) -> Tensor:
        """Run each unit only on the tokens that kept it. Traced by torch.export (skip_empty=False: no Python branch
        on a row count), each unit becomes NonZero -> Gather rows -> FFN on [n_u, d] -> ScatterND(add): n_u is
        data-dependent, so the graph's cost follows the routing. A unit no token chose runs on zero rows."""
        shape = x.shape
        flat = x.reshape(-1, shape[-1])
        flat_mask = mask.reshape(-1, mask.shape[-1]) > 0
        flat_gates = gates.reshape(-1, gates.shape[-1])
        out = torch.zeros_like(flat)
        for u, unit in enumerate(self.units):
            idx = torch.nonzero(flat_mask[:, u], as_tuple=False).squeeze(-1)
            if skip_empty and idx.numel() == 0:
                continue
            y = unit(flat.index_select(0, idx)) * flat_gates.index_select(0, idx)[:, u : u + 1]
            out = out.index_put((idx,), y, accumulate=True)  # = index_add; coremltools converts only this one
        return out.reshape(shape)

    def _record(self, probs: Tensor, mask: Tensor, valid: Tensor | None) -> None:
        n_units = probs.shape[-1]
        p = probs.reshape(-1, n_units)
        m = mask.reshape(-1, n_units)
        if valid is not None:
            keep = valid.reshape(-1) > 0
            p, m = p[keep], m[keep]
        tokens = int(m.shape[0])
        if tokens == 0:
            self.last_stats, self.last_aux_loss = None, None
            return
        assigned = m.sum(dim=0)
        fraction = assigned / assigned.sum()
        self.last_aux_loss = load_balancing_loss(p, m)
        self.last_stats = RoutingStats(
            units_per_token=float(m.sum(dim=-1).mean()),
            unit_fraction=[float(f) for f in fraction],
            tokens=tokens,
        )


class GEMBlock(nn.Module):
    """Pre-LN encoder block whose feed-forward is SCAR (or a dense FFN for the baseline)."""

    def __init__(self, cfg: GEMConfig) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(cfg.dim)
        self.attn = SelfAttention(cfg.dim, cfg.heads)
        self.norm2 = nn.LayerNorm(cfg.dim)
        if cfg.router:
            self.ffn: nn.Module = SCAR(cfg.dim, cfg.unit_widths, cfg.top_k, cfg.threshold, cfg.key_dim,
                                       cfg.scar_export)
        else:
            self.ffn = FeedForward(cfg.dim, cfg.dense_width or sum(cfg.unit_widths))

    def forward(self, x: Tensor, bias: Tensor | None, valid: Tensor | None) -> Tensor:
        x = x + self.attn(self.norm1(x), bias)
        h = self.norm2(x)
        return x + (self.ffn(h, valid) if isinstance(self.ffn, SCAR) else self.ffn(h))


class GEM(nn.Module):
    """Generalized Edge Model. forward(input_ids [B, T] int64, attention_mask [B, T] optional) -> logits.

    Classification head: [B, num_classes] (masked mean pooling). LM head: [B, T, vocab_size].
    """

    def __init__(self, cfg: GEMConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.embed = nn.Embedding(cfg.vocab_size, cfg.dim)
        self.pos = nn.Parameter(torch.zeros(1, cfg.max_len, cfg.dim))
        nn.init.normal_(self.pos, std=0.02)
        self.blocks = nn.ModuleList(GEMBlock(cfg) for _ in range(cfg.depth))
        self.norm = nn.LayerNorm(cfg.dim)
        if cfg.head == "lm":
            self.head = nn.Linear(cfg.dim, cfg.vocab_size, bias=False)
            if cfg.tie_embeddings:
                self.head.weight = self.embed.weight
        else:
            self.head = nn.Linear(cfg.dim, cfg.num_classes)
        causal = torch.triu(torch.full((cfg.max_len, cfg.max_len), NEG_INF), diagonal=1)
        self.register_buffer("causal_bias", causal, persistent=False)

    # -- configuration ---------------------------------------------------------------------------------------
    @property
    def static(self) -> bool:
        """True when every SCAR layer uses the static (export) formulation."""
        layers = self.scar_layers()
        return bool(layers) and all(layer.static for layer in layers)

    @static.setter
    def static(self, value: bool) -> None:
        for layer in self.scar_layers():
            layer.static = bool(value)

    @property
    def scar_export(self) -> str:
        """The SCAR graph torch.export traces: "static" or "sparse" (GEMConfig.scar_export); settable."""
        return self.cfg.scar_export

    @scar_export.setter
    def scar_export(self, value: str) -> None:
        self.cfg = replace(self.cfg, scar_export=value)  # validates
        for layer in self.scar_layers():
            layer.export = value

    def scar_layers(self) -> list[SCAR]:
        return [b.ffn for b in self.blocks if isinstance(b.ffn, SCAR)]

    def high_precision_modules(self) -> list[str]:
        """Hybrid quantization: module names to keep in float (the SCAR routers); everything else may be int8.

        Parameter/initializer names of these modules start with the returned prefixes, e.g.
        `blocks.0.ffn.router.query.weight` and `blocks.0.ffn.router.keys`.
        """
        return [name for name, mod in self.named_modules() if isinstance(mod, SCARRouter)]

    # -- forward ---------------------------------------------------------------------------------------------
    def forward(self, input_ids: Tensor, attention_mask: Tensor | None = None) -> Tensor:
        seq = input_ids.shape[1]
        # Slice only when needed: a no-op slice becomes an `alias` node that coremltools rejects.
        pos = self.pos if seq == self.cfg.max_len else self.pos[:, :seq]
        x = self.embed(input_ids) + pos
        bias = None
        if self.cfg.causal:
            bias = self.causal_bias if seq == self.cfg.max_len else self.causal_bias[:seq, :seq]
        valid = None
        if attention_mask is not None:
            valid = attention_mask.to(x.dtype)
            pad = (1.0 - valid)[:, None, None, :] * NEG_INF
            bias = pad if bias is None else bias + pad
        for block in self.blocks:
            x = block(x, bias, valid)
        x = self.norm(x)
        if self.cfg.head == "lm":
            return self.head(x)
        if valid is None:
            pooled = x.mean(dim=1)
        else:
            pooled = (x * valid.unsqueeze(-1)).sum(dim=1) / valid.sum(dim=1, keepdim=True).clamp(min=1.0)
        return self.head(pooled)

    # -- what the last batch did -----------------------------------------------------------------------------
    def units_per_token(self) -> float | None:
        """Mean number of compute units a token ran, averaged over SCAR layers, for the last eager batch."""
        stats = [layer.last_stats for layer in self.scar_layers() if layer.last_stats is not None]
        if not stats:
            return None
        return sum(s.units_per_token for s in stats) / len(stats)

    def routing_stats(self) -> list[RoutingStats | None]:
        return [layer.last_stats for layer in self.scar_layers()]

    def load_balancing_loss(self) -> Tensor:
        """Sum over SCAR layers of the Switch-style auxiliary loss from the last forward (1.0 per layer = balanced)."""
        losses = [layer.last_aux_loss for layer in self.scar_layers() if layer.last_aux_loss is not None]
        if not losses:
            return torch.zeros(())
        return torch.stack(losses).sum()


def load_balancing_loss(probs: Tensor, mask: Tensor) -> Tensor:
    """Switch-style balance loss for one layer: n_units * sum_u(f_u * P_u).

    probs: router probabilities [..., U]; mask: kept units [..., U] (0/1). f_u = share of kept assignments that went
    to unit u; P_u = mean probability of unit u. Equals 1.0 when load and probability are uniform.
    """
    n_units = probs.shape[-1]
    p = probs.reshape(-1, n_units)
    m = mask.reshape(-1, n_units)
    fraction = m.sum(dim=0) / m.sum().clamp(min=1.0)
    return n_units * torch.sum(fraction.detach() * p.mean(dim=0))


def knowledge_preserving_loss(
    student_logits: Tensor,
    teacher_logits: Tensor,
    labels: Tensor | None = None,
    *,
    alpha: float = 0.5,
    temperature: float = 2.0,
    weights: Tensor | None = None,
    ignore_index: int = -100,
) -> Tensor:
    """Distillation from a general teacher while specialising: alpha * T^2 * KL + (1 - alpha) * CE.

    KL(softmax(teacher/T) || softmax(student/T)) per example, weighted by `weights` (e.g. higher on general-domain
    examples to limit forgetting), averaged. Logits are [N, C] or [B, T, C] (LM); labels [N] or [B, T].
    Without labels the loss is the weighted KL term alone.
    """
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha={alpha} must be in [0, 1]")
    c = student_logits.shape[-1]
    s = student_logits.reshape(-1, c)
    t = teacher_logits.reshape(-1, c).detach()
    log_p_s = F.log_softmax(s / temperature, dim=-1)
    log_p_t = F.log_softmax(t / temperature, dim=-1)
    kl = torch.sum(log_p_t.exp() * (log_p_t - log_p_s), dim=-1)  # [N]
    if weights is not None:
        w = weights.reshape(-1).to(kl.dtype)
        if w.numel() != kl.numel():  # per-sequence weights for per-token logits
            w = w.repeat_interleave(kl.numel() // w.numel())
        kl_term = (kl * w).sum() / w.sum().clamp(min=1e-12)
    else:
        kl_term = kl.mean()
    kd = temperature**2 * kl_term
    if labels is None:
        return kd
    ce = F.cross_entropy(s, labels.reshape(-1), ignore_index=ignore_index)
    return alpha * kd + (1.0 - alpha) * ce


def _build(base: GEMConfig, **cfg) -> GEM:
    if "unit_widths" in cfg:
        cfg["unit_widths"] = tuple(cfg["unit_widths"])
    return GEM(replace(base, **cfg))


TINY = GEMConfig()
SMALL = GEMConfig(dim=256, depth=4, heads=8, unit_widths=(64, 128, 256, 512), key_dim=64)


@register_model
def gem_tiny(**cfg) -> GEM:
    """GEM, d=128, 4 layers, SCAR units of widths 64/128/256/384, top-2, vocab 8192, 8-way classification."""
    return _build(TINY, **cfg)


@register_model
def gem_small(**cfg) -> GEM:
    """GEM, d=256, 4 layers, SCAR units of widths 64/128/256/512, top-2, vocab 8192."""
    return _build(SMALL, **cfg)


@register_model
def gem_dense_tiny(**cfg) -> GEM:
    """Dense baseline of gem-tiny: same encoder, one FFN of width sum(unit widths) = 832, no router."""
    return _build(replace(TINY, router=False), **cfg)


@register_model
def gem_lm_tiny(**cfg) -> GEM:
    """gem-tiny with a causal mask and a (tied) language-model head over the 8192-token vocabulary."""
    return _build(replace(TINY, head="lm", causal=True), **cfg)
