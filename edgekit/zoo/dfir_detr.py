"""DFIR-DETR (light): dynamic K-sparse attention and frequency-domain refinement for small-object detection.

Paper: Gao et al., "DFIR-DETR: Frequency Domain Enhancement and Dynamic Feature Aggregation for Cross-Scene Small
Object Detection" (arXiv 2512.07078).

Mechanisms implemented, at edge size:
- DCFA / DAFB block: H = X + DWConv(X); Z = SGLU(H + DKSA(H)). Dynamic K-sparse attention (DKSA) keeps, for each
  query, only its K highest attention scores (the K-th largest value from `torch.topk` is the cut-off; the rest are
  masked before the softmax), cutting the useful work from O(N^2) to O(NK). SGLU is a spatial gated linear unit: one
  half of the hidden channels gates the other after a depthwise conv.
- FIRC3-style frequency block: a global filter in the frequency domain, X -> rfft2 -> * learned complex filter ->
  irfft2 (global receptive field), with a residual and a pointwise conv. Two formulations with identical results:
  `fft=False` (default) writes the real 2-D DFT as matrix products with precomputed cos/sin matrices, which ONNX,
  TFLite and CoreML all take; `fft=True` calls torch.fft.rfft2/irfft2, which ONNX accepts but litert-torch (only
  1-D FFT on the last axis) and coremltools (no rfft2) reject. The `dfir-detr-fft` card records that.
- DFPN-style neck: amplitude-normalised upsampling (the upsampled map is rescaled to the per-channel RMS of its
  input, so upsampling does not inflate features) and a dual-path shuffle conv (depthwise 3x3 and pointwise paths,
  channel shuffle) to fuse scales.
- DETR decoder: a fixed set of object queries with self-attention, cross-attention to the flattened multi-scale
  memory and FFN; heads give class logits (num_classes + 1 for "no object") and sigmoid boxes (cx, cy, w, h).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from edgekit.zoo.layers import CrossAttention, Mlp, SelfAttention, merge_heads, split_heads
from edgekit.zoo.registry import register_model

NEG_INF = -1e9


def conv_bn_act(cin: int, cout: int, stride: int = 1, kernel: int = 3, groups: int = 1) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, kernel, stride=stride, padding=kernel // 2, groups=groups, bias=False),
        nn.BatchNorm2d(cout),
        nn.SiLU(),
    )


class DynamicKSparseAttention(nn.Module):
    """Self-attention where each query keeps only its top-K scores."""

    def __init__(self, dim: int, heads: int, topk: int) -> None:
        super().__init__()
        self.heads, self.topk = heads, topk
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: Tensor) -> Tensor:
        q, k, v = (split_heads(z, self.heads) for z in self.qkv(x).chunk(3, dim=-1))
        scores = torch.matmul(q, k.transpose(-2, -1)) * (1.0 / math.sqrt(q.shape[-1]))
        k_eff = min(self.topk, scores.shape[-1])
        # K-th largest score per query. Read through the indices: when only topk's values are used, litert-torch
        # lowers topk to STABLEHLO_SORT, which the TFLite interpreter cannot run.
        _, top_idx = torch.topk(scores, k_eff, dim=-1)
        kth = torch.gather(scores, -1, top_idx[..., -1:])
        scores = torch.where(scores >= kth, scores, torch.full_like(scores, NEG_INF))
        return self.proj(merge_heads(torch.matmul(torch.softmax(scores, dim=-1), v)))


class SpatialGLU(nn.Module):
    """SGLU: fc1 -> split (value, gate); value * GELU(DWConv(gate)) -> fc2."""

    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.fc1 = nn.Conv2d(dim, 2 * hidden, 1)
        self.dw = nn.Conv2d(hidden, hidden, 3, padding=1, groups=hidden)
        self.fc2 = nn.Conv2d(hidden, dim, 1)

    def forward(self, x: Tensor) -> Tensor:
        value, gate = self.fc1(x).chunk(2, dim=1)
        return self.fc2(value * F.gelu(self.dw(gate)))


class DynamicAttentionFusionBlock(nn.Module):
    """DAFB: H = X + DW(X); Z = H' + SGLU(LN(H')), H' = H + DKSA(LN(H))."""

    def __init__(self, dim: int, heads: int, topk: int) -> None:
        super().__init__()
        self.dw = nn.Conv2d(dim, dim, 3, padding=1, groups=dim)
        self.norm1 = nn.GroupNorm(1, dim)
        self.attn = DynamicKSparseAttention(dim, heads, topk)
        self.norm2 = nn.GroupNorm(1, dim)
        self.sglu = SpatialGLU(dim, dim)

    def forward(self, x: Tensor) -> Tensor:
        b, c, h, w = x.shape
        x = x + self.dw(x)
        t = self.norm1(x).flatten(2).transpose(1, 2)
        x = x + self.attn(t).transpose(1, 2).reshape(b, c, h, w)
        return x + self.sglu(self.norm2(x))


def _dft_matrices(h: int, w: int) -> dict[str, Tensor]:
    """Cos/sin matrices for rfft2/irfft2 over an h x w map written as matmuls (float64 -> float32)."""
    kw = w // 2 + 1
    k = torch.arange(kw, dtype=torch.float64)[:, None]
    n = torch.arange(w, dtype=torch.float64)[None, :]
    ang_w = 2 * math.pi * k * n / w  # [kw, w]
    m = torch.arange(h, dtype=torch.float64)
    ang_h = 2 * math.pi * m[:, None] * m[None, :] / h  # [h, h]
    # irfft weights: each bin of the half spectrum counts twice except DC and (even w) Nyquist.
    c = torch.full((kw, 1), 2.0, dtype=torch.float64)
    c[0] = 1.0
    if w % 2 == 0:
        c[-1] = 1.0
    mats = {
        "cw_t": torch.cos(ang_w).t(),  # [w, kw]
        "sw_t": torch.sin(ang_w).t(),
        "ch": torch.cos(ang_h),  # [h, h]
        "sh": torch.sin(ang_h),
        "icw": c * torch.cos(ang_w) / w,  # [kw, w]
        "isw": c * torch.sin(ang_w) / w,
    }
    return {key: val.float() for key, val in mats.items()}


class FrequencyRefinement(nn.Module):
    """FIRC3-style global filter: x + PW(irfft2(rfft2(x) * W)), with W a learned complex filter per channel."""

    def __init__(self, dim: int, size: int, fft: bool = False) -> None:
        super().__init__()
        self.size, self.fft = size, fft
        self.weight = nn.Parameter(torch.randn(dim, size, size // 2 + 1, 2) * 0.02)  # (real, imag)
        with torch.no_grad():
            self.weight[..., 0] += 1.0  # start near the identity filter
        for key, val in _dft_matrices(size, size).items():
            self.register_buffer(key, val, persistent=False)
        self.norm = nn.BatchNorm2d(dim)
        self.pw = nn.Conv2d(dim, dim, 1)

    def filter_matmul(self, x: Tensor) -> Tensor:
        """rfft2 -> complex filter -> irfft2 as real matrix products (every converter takes matmul)."""
        zr = torch.matmul(x, self.cw_t)  # rfft along W: [B, C, H, kw]
        zi = -torch.matmul(x, self.sw_t)
        xr = torch.matmul(self.ch, zr) + torch.matmul(self.sh, zi)  # full DFT along H
        xi = torch.matmul(self.ch, zi) - torch.matmul(self.sh, zr)
        wr, wi = self.weight[..., 0], self.weight[..., 1]
        yr = xr * wr - xi * wi
        yi = xr * wi + xi * wr
        ur = (torch.matmul(self.ch, yr) - torch.matmul(self.sh, yi)) / self.size  # inverse DFT along H
        ui = (torch.matmul(self.ch, yi) + torch.matmul(self.sh, yr)) / self.size
        return torch.matmul(ur, self.icw) - torch.matmul(ui, self.isw)  # inverse real DFT along W

    def filter_fft(self, x: Tensor) -> Tensor:
        """The same filter with torch.fft (ONNX only; litert-torch and coremltools reject rfft2)."""
        spec = torch.fft.rfft2(x, norm="backward")
        spec = spec * torch.view_as_complex(self.weight)
        return torch.fft.irfft2(spec, s=(self.size, self.size), norm="backward")

    def forward(self, x: Tensor) -> Tensor:
        y = self.filter_fft(x) if self.fft else self.filter_matmul(x)
        return x + self.pw(F.silu(self.norm(y)))


class AmplitudeNormUpsample(nn.Module):
    """2x bilinear upsampling rescaled to the input's per-channel RMS (no feature inflation)."""

    def forward(self, x: Tensor) -> Tensor:
        up = F.interpolate(x, scale_factor=2.0, mode="bilinear", align_corners=False)
        rms_in = torch.sqrt(x.pow(2).mean(dim=(2, 3), keepdim=True) + 1e-6)
        rms_up = torch.sqrt(up.pow(2).mean(dim=(2, 3), keepdim=True) + 1e-6)
        return up * (rms_in / rms_up)


class DualPathShuffleConv(nn.Module):
    """Half the channels through a depthwise 3x3 (spatial detail), half through a 1x1; concat; channel shuffle."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.reduce = conv_bn_act(cin, cout, kernel=1)
        half = cout // 2
        self.spatial = conv_bn_act(half, half, kernel=3, groups=half)
        self.point = conv_bn_act(cout - half, cout - half, kernel=1)

    def forward(self, x: Tensor) -> Tensor:
        x = self.reduce(x)
        half = x.shape[1] // 2
        y = torch.cat([self.spatial(x[:, :half]), self.point(x[:, half:])], dim=1)
        b, c, h, w = y.shape
        return y.reshape(b, 2, c // 2, h, w).transpose(1, 2).reshape(b, c, h, w)  # channel shuffle


class DecoderLayer(nn.Module):
    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.n1, self.self_attn = nn.LayerNorm(dim), SelfAttention(dim, heads)
        self.n2, self.n_mem, self.cross = nn.LayerNorm(dim), nn.LayerNorm(dim), CrossAttention(dim, heads)
        self.n3, self.mlp = nn.LayerNorm(dim), Mlp(dim, 2 * dim)

    def forward(self, q: Tensor, memory: Tensor) -> Tensor:
        q = q + self.self_attn(self.n1(q))
        q = q + self.cross(self.n2(q), self.n_mem(memory))
        return q + self.mlp(self.n3(q))


class DFIRDETR(nn.Module):
    """forward(pixels [B, 3, 64, 64]) -> (logits [B, Q, num_classes + 1], boxes [B, Q, 4] in [0, 1])."""

    def __init__(
        self,
        img_size: int = 64,
        dims: tuple[int, int, int] = (32, 64, 128),
        dim: int = 96,
        heads: int = 4,
        topk: int = 32,
        queries: int = 16,
        decoder_depth: int = 2,
        num_classes: int = 6,
        fft: bool = False,
        in_chans: int = 3,
    ) -> None:
        super().__init__()
        c1, c2, c3 = dims
        self.fine, self.coarse = img_size // 4, img_size // 8
        self.stem = nn.Sequential(conv_bn_act(in_chans, c1, stride=2), conv_bn_act(c1, c2, stride=2))  # /4
        self.dcfa = DynamicAttentionFusionBlock(c2, heads, topk)
        self.down = conv_bn_act(c2, c3, stride=2)  # /8
        self.firc3 = FrequencyRefinement(c3, self.coarse, fft=fft)
        self.up = AmplitudeNormUpsample()
        self.fuse = DualPathShuffleConv(c2 + c3, dim)
        self.proj_coarse = nn.Conv2d(c3, dim, 1)
        self.pos = nn.Parameter(torch.randn(1, self.fine**2 + self.coarse**2, dim) * 0.02)
        self.query = nn.Parameter(torch.randn(1, queries, dim) * 0.02)
        self.decoder = nn.ModuleList(DecoderLayer(dim, heads) for _ in range(decoder_depth))
        self.norm = nn.LayerNorm(dim)
        self.class_head = nn.Linear(dim, num_classes + 1)
        self.box_head = Mlp(dim, dim, 4)

    def forward(self, pixels: Tensor) -> tuple[Tensor, Tensor]:
        p2 = self.dcfa(self.stem(pixels))  # [B, c2, 16, 16]
        p3 = self.firc3(self.down(p2))  # [B, c3, 8, 8]
        fused = self.fuse(torch.cat([p2, self.up(p3)], dim=1))  # [B, dim, 16, 16]
        memory = torch.cat(
            [fused.flatten(2).transpose(1, 2), self.proj_coarse(p3).flatten(2).transpose(1, 2)], dim=1
        ) + self.pos
        q = self.query.expand(pixels.shape[0], -1, -1)
        for layer in self.decoder:
            q = layer(q, memory)
        q = self.norm(q)
        return self.class_head(q), torch.sigmoid(self.box_head(q))


@register_model
def dfir_detr_tiny(**cfg) -> DFIRDETR:
    """Light DFIR-DETR for 64x64 images: DKSA (top-32 of 256 keys), matmul-DFT frequency block, 16 queries."""
    return DFIRDETR(**cfg)

