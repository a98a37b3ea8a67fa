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


@dataclass(frozen=True)
class StudyConfig:
    """The study's knobs. Epochs are passes over the (capped) training data; lr is AdamW's.

    The split is fixed (suite seed `split_seed`); `seeds` drive model initialisation, sampling and batching, so
    every variant is scored on the same test examples. seq_len 32 covers the 90th percentile of every domain's
    text length (longer texts are truncated)."""

    size: str = "tiny"
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
    quick: bool = False
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.size not in SIZES:
            raise EdgekitError(f"unknown study size {self.size!r}", f"use one of {', '.join(SIZES)}")
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
    def gem_model(self) -> str:
        return SIZES[self.size][0]

    @property
    def dense_model(self) -> str:
        return SIZES[self.size][1]

    @property
    def dense_overrides(self) -> dict[str, Any]:
        return dict(SIZES[self.size][2])

    @classmethod
    def quick_config(cls, **overrides: Any) -> StudyConfig:
        """A tiny budget for tests and smoke runs: 1 target, 1 seed, 3 compressions, a few hundred steps."""
        base = cls(targets=QUICK_TARGETS, seeds=(0,), compressions=QUICK_COMPRESSIONS, base_epochs=2,
                   base_max_per_domain=120, spec_epochs=2, spec_max_train=200, kd_transfer_per_domain=40,
                   n_boot=200, max_test_per_domain=120, quick=True)
        return replace(base, **overrides)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["targets"], d["seeds"], d["compressions"] = list(self.targets), list(self.seeds), list(self.compressions)
        return d
