"""What a fragility study runs: sizes, targets, seeds, training budgets and the compression variants."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from typing import Any

from edgekit.errors import EdgekitError

STUDY_SCHEMA_VERSION = 1
DEFAULT_TARGETS = ("healthcare", "law")
QUICK_TARGETS = ("law",)


@dataclass(frozen=True)
class Compression:
    """One compression of a specialised model. precision: fp32 | fp16 | int8 | int8-static | int4 (ONNX);
    sparsity: the fraction of weights zeroed by magnitude pruning (in PyTorch, before the fp32 export)."""

    name: str
    precision: str = "fp32"
    sparsity: float = 0.0


COMPRESSIONS: dict[str, Compression] = {
    c.name: c
    for c in (
        Compression("fp32"),
        Compression("fp16", "fp16"),
        Compression("int8", "int8"),
        Compression("int8-static", "int8-static"),
        Compression("int4", "int4"),
        Compression("prune30", "fp32", 0.3),
        Compression("prune50", "fp32", 0.5),
        Compression("prune70", "fp32", 0.7),
    )
}
QUICK_COMPRESSIONS = ("fp32", "int8", "prune50")

# Model sizes: (GEM zoo name, dense baseline zoo name, dense config overrides).
SIZES: dict[str, tuple[str, str, dict[str, Any]]] = {
    "tiny": ("gem-tiny", "gem-dense-tiny", {}),
    "small": ("gem-small", "gem-small", {"router": False}),
}
# Backbones: "scratch" trains the whole GEM of `size` from random weights (the default); "minilm" puts two SCAR
# blocks on the six pretrained all-MiniLM-L6-v2 layers (gem-minilm), backbone frozen (edgekit.study.pretrained).
BACKBONES = ("scratch", "minilm")
MINILM_MODELS: tuple[str, str, dict[str, Any]] = ("gem-minilm", "gem-minilm", {"router": False})
MINILM_NOT_INSTALLED = ("MiniLM not installed", "make setup-minilm")
# The --backbone minilm budget, stated in the command's output and docs/study.md: wall time (s) on the shared
# 2-core CPU for the default configuration (measured run in docs/study.md).
MINILM_BUDGET_S = 30 * 60
MINILM_QUICK_BUDGET_S = 5 * 60


@dataclass(frozen=True)
class StudyConfig:
    """The study's knobs. Epochs are passes over the (capped) training data; lr is AdamW's.

    The split is fixed (suite seed `split_seed`); `seeds` drive model initialisation, sampling and batching, so
    every variant is scored on the same test examples. seq_len 32 covers the 90th percentile of every domain's
    text length (longer texts are truncated). backbone: "scratch" | "minilm" (BACKBONES); feature_max_train:
    training texts per domain whose frozen-backbone features are computed and cached (minilm only); budget_s: the
    stated wall-time budget in seconds (reported beside the run's wall time, not enforced)."""

    size: str = "tiny"
    backbone: str = "scratch"
    targets: tuple[str, ...] = DEFAULT_TARGETS
    seeds: tuple[int, ...] = (0, 1)
    compressions: tuple[str, ...] = tuple(COMPRESSIONS)
    seq_len: int = 32
    vocab_size: int = 8192
    split_seed: int = 0
    base_epochs: int = 3
    base_max_per_domain: int = 500
    spec_epochs: int = 3
    spec_max_train: int = 600
    lr: float = 2e-3
    spec_lr: float = 1e-3
    batch_size: int = 64
    kd_alpha: float = 0.5
    kd_temperature: float = 2.0
    kd_general_weight: float = 1.0
    kd_transfer_per_domain: int = 200
    dense_baseline: bool = True
    threads: int = 1
    n_boot: int = 1000
    max_test_per_domain: int | None = None
    feature_max_train: int = 600
    budget_s: float | None = None
    quick: bool = False
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.size not in SIZES:
            raise EdgekitError(f"unknown study size {self.size!r}", f"use one of {', '.join(SIZES)}")
        if self.backbone not in BACKBONES:
            raise EdgekitError(f"unknown backbone {self.backbone!r}", f"use one of {', '.join(BACKBONES)}")
        bad = [c for c in self.compressions if c not in COMPRESSIONS]
        if bad:
            raise EdgekitError(f"unknown compression {', '.join(bad)}", f"use any of {', '.join(COMPRESSIONS)}")
        if not self.targets:
            raise EdgekitError("no target domains", "pass --targets healthcare,law (or all)")
        if not self.seeds:
            raise EdgekitError("no seeds", "pass --seeds 0,1")
        if len(set(self.seeds)) != len(self.seeds):
            raise EdgekitError(f"seeds {self.seeds} repeat", "give distinct seeds, e.g. --seeds 0,1")
        if min(self.base_epochs, self.spec_epochs) < 1:
            raise EdgekitError("training epochs must be at least 1", "use --base-epochs/--spec-epochs >= 1")

    @property
    def _models(self) -> tuple[str, str, dict[str, Any]]:
        return MINILM_MODELS if self.backbone == "minilm" else SIZES[self.size]

    @property
    def gem_model(self) -> str:
        return self._models[0]

    @property
    def dense_model(self) -> str:
        return self._models[1]

    @property
    def dense_overrides(self) -> dict[str, Any]:
        return dict(self._models[2])

    @classmethod
    def quick_config(cls, **overrides: Any) -> StudyConfig:
        """A tiny budget for tests and smoke runs: 1 target, 1 seed, 3 compressions, a few hundred steps."""
        base = cls(targets=QUICK_TARGETS, seeds=(0,), compressions=QUICK_COMPRESSIONS, base_epochs=2,
                   base_max_per_domain=120, spec_epochs=2, spec_max_train=200, kd_transfer_per_domain=40,
                   n_boot=200, max_test_per_domain=120, quick=True)
        return replace(base, **overrides)

    @classmethod
    def minilm_config(cls, quick: bool = False, **overrides: Any) -> StudyConfig:
        """The pretrained-backbone study (`--backbone minilm`, edgekit.study.pretrained): GEM-minilm vs a dense
        MiniLM of the same size, trained and scored on all eight domains; the six MiniLM layers frozen (their token
        features computed once per text and cached), only the two SCAR/dense blocks, norm and head trained.
        WordPiece ids, 64 tokens (the 90th percentile of six of the eight domains; batches are cut to their longest
        text, so the cost follows real lengths). Default: targets healthcare,law, seeds 0,1 (4 units), all 8
        compressions, at most 250 training texts per domain (200 for a specialisation), 200 test texts per domain -
        budget 30 min wall on the shared 2-core CPU (docs/study.md has the measured run). `quick`: one target, one
        seed, 3 compressions and tiny caps (a test/smoke budget, about 2 min; budget 5 min)."""
        base = cls(backbone="minilm", targets=DEFAULT_TARGETS, seeds=(0, 1), seq_len=64, base_epochs=3,
                   base_max_per_domain=250, spec_epochs=3, spec_max_train=200, lr=1e-3, spec_lr=5e-4,
                   batch_size=32, kd_transfer_per_domain=100, feature_max_train=250, max_test_per_domain=200,
                   budget_s=MINILM_BUDGET_S)
        if quick:
            base = replace(base, targets=QUICK_TARGETS, seeds=(0,), compressions=QUICK_COMPRESSIONS, base_epochs=1,
                           base_max_per_domain=40, spec_epochs=1, spec_max_train=40, kd_transfer_per_domain=8,
                           feature_max_train=40, max_test_per_domain=40, n_boot=100, quick=True,
                           budget_s=MINILM_QUICK_BUDGET_S)
        return replace(base, **overrides)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["targets"], d["seeds"], d["compressions"] = list(self.targets), list(self.seeds), list(self.compressions)
        return d
