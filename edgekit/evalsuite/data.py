"""Build, cache, split and tokenize the eight domain tasks.

Pipeline per domain: builder (tasks.py) -> de-duplicate (a text seen under two labels is dropped; repeats keep one)
-> cap each class at `max_per_class` (seeded sample, lower priority first) -> drop classes smaller than
`min_per_class` -> cache as JSON -> at load time: seeded stratified train/val/test split and hashed token ids.

The cache holds the labelled texts only (no split, no ids), so seeds, sequence lengths and vocabulary sizes can
change without a rebuild. It lives in `SuiteConfig.cache_dir`, else $EDGEKIT_CACHE, else
$XDG_CACHE_HOME/edgekit (~/.cache/edgekit), under `evalsuite/v<SUITE_VERSION>/<domain>.json`.
"""

from __future__ import annotations

import json
import os
import tempfile
import zlib
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edgekit.errors import EdgekitError
from edgekit.evalsuite.sources import SourcePaths
from edgekit.evalsuite.tasks import DOMAINS, TASKS, Example, _WordNetCache, build_examples
from edgekit.evalsuite.tokenizer import HashTokenizer, words
from edgekit.paths import cache_root

SUITE_VERSION = 1
SELECTION_SEED = 20250328  # fixed: which examples a capped class keeps does not depend on the split seed
SPLITS = ("train", "val", "test")


@dataclass(frozen=True)
class SuiteConfig:
    """How to load the suite. `seed` drives the train/val/test split; sizes drive the tokenizer."""

    seed: int = 0
    vocab_size: int = 8192
    seq_len: int = 64
    val_fraction: float = 0.1
    test_fraction: float = 0.2
    cache_dir: Path | None = None
    sources: SourcePaths | None = None
    tokenizer_name: str = "hash"  # "hash" (HashTokenizer) or "minilm" (the pretrained MiniLM's WordPiece)

    def __post_init__(self) -> None:
        if not (
            0 < self.test_fraction < 1
            and 0 <= self.val_fraction < 1
            and self.val_fraction + self.test_fraction < 1
        ):
            raise EdgekitError(
                f"split fractions val={self.val_fraction}, test={self.test_fraction} leave no training data",
                "use fractions in (0, 1) that sum to less than 1 (default val 0.1, test 0.2)",
            )

    def tokenizer(self) -> HashTokenizer:
        """The text encoder: ids [N, seq_len] int64, 0 = padding. "minilm" needs `make setup-minilm`."""
        if self.tokenizer_name == "minilm":
            from edgekit.zoo.minilm import WordPieceTokenizer

            return WordPieceTokenizer(self.seq_len)  # same interface; vocab_size is its own (30522)
        if self.tokenizer_name != "hash":
            raise EdgekitError(f"unknown tokenizer {self.tokenizer_name!r}", "use 'hash' or 'minilm'")
        return HashTokenizer(self.vocab_size, self.seq_len)

    def source_paths(self) -> SourcePaths:
        return self.sources or SourcePaths.from_env()

    def cache_root(self) -> Path:
        base = Path(self.cache_dir) if self.cache_dir is not None else cache_root()
        return base / "evalsuite" / f"v{SUITE_VERSION}"


@dataclass
class DomainTexts:
    """One domain's labelled texts, as cached. `labels[i]` indexes `label_names`."""

    domain: str
    task: str
    description: str
    label_names: tuple[str, ...]
    texts: list[str]
    labels: list[int]
    sources: dict[str, str] = field(default_factory=dict)
    suite_version: int = SUITE_VERSION

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["label_names"] = list(self.label_names)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> DomainTexts:
        return cls(
            domain=d["domain"],
            task=d["task"],
            description=d["description"],
            label_names=tuple(d["label_names"]),
            texts=list(d["texts"]),
            labels=[int(x) for x in d["labels"]],
            sources=dict(d.get("sources", {})),
            suite_version=int(d.get("suite_version", 0)),
        )

    def split(self, config: SuiteConfig) -> np.ndarray:
        """Split name per example ('train' | 'val' | 'test'), stratified by label, seeded by (seed, domain)."""
        return stratified_split(
            self.labels, config.seed, self.domain, config.val_fraction, config.test_fraction
        )


@dataclass(frozen=True)
class DomainCounts:
    domain: str
    task: str
    classes: int
    train: int
    val: int
    test: int

    @property
    def total(self) -> int:
        return self.train + self.val + self.test


@dataclass
class DomainData:
    """One domain, split and tokenized: int64 ids [N, seq_len], int64 labels [N]."""

    domain: str
    task: str
    label_names: tuple[str, ...]
    train_ids: np.ndarray
    train_labels: np.ndarray
    val_ids: np.ndarray
    val_labels: np.ndarray
    test_ids: np.ndarray
    test_labels: np.ndarray
    seed: int
    vocab_size: int = 8192
    sources: dict[str, str] = field(default_factory=dict)

    @property
    def n_classes(self) -> int:
        return len(self.label_names)

    def arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, tuple[str, ...]]:
        """(train_ids, train_labels, test_ids, test_labels, label_names)."""
        return self.train_ids, self.train_labels, self.test_ids, self.test_labels, self.label_names

    def counts(self) -> DomainCounts:
        return DomainCounts(
            self.domain,
            self.task,
            self.n_classes,
            len(self.train_labels),
            len(self.val_labels),
            len(self.test_labels),
        )


@dataclass(frozen=True)
class LabelSpace:
    """A joint classification head over several domains: domain d owns logits [offset_d, offset_d + n_d).

    A multi-domain model outputs `total` logits; for an example of domain d only d's slice is read (argmax and
    cross-entropy over that slice), so the domains' label sets never compete.
    """

    domains: tuple[str, ...]
    sizes: tuple[int, ...]

    @property
    def total(self) -> int:
        return int(sum(self.sizes))

    def offset(self, domain: str) -> int:
        if domain not in self.domains:
            raise EdgekitError(
                f"domain {domain!r} is not in this label space", f"use one of {', '.join(self.domains)}"
            )
        i = self.domains.index(domain)
        return int(sum(self.sizes[:i]))

    def slice(self, domain: str) -> slice:
        start = self.offset(domain)
        return slice(start, start + self.sizes[self.domains.index(domain)])

    def to_dict(self) -> dict[str, Any]:
        return {"domains": list(self.domains), "sizes": list(self.sizes)}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> LabelSpace:
        return cls(tuple(d["domains"]), tuple(int(x) for x in d["sizes"]))

    @classmethod
    def of(cls, data: dict[str, DomainData]) -> LabelSpace:
        return cls(tuple(data), tuple(data[d].n_classes for d in data))


# ------------------------------------------------------------------------------------------------ building
def _normalise(text: str) -> str:
    return " ".join(words(text))


def curate(
    examples: Iterable[Example], max_per_class: int, min_per_class: int
) -> tuple[tuple[str, ...], list[str], list[int]]:
    """De-duplicate, cap and filter examples; returns (label_names sorted, texts, label indices)."""
    first: dict[str, Example] = {}
    labels_of: dict[str, set[str]] = {}
    for ex in examples:
        key = _normalise(ex.text)
        if not key:
            continue
        labels_of.setdefault(key, set()).add(ex.label)
        if key not in first or ex.priority < first[key].priority:
            first[key] = ex
    by_label: dict[str, list[Example]] = {}
    for key, ex in first.items():
        if len(labels_of[key]) == 1:
            by_label.setdefault(ex.label, []).append(ex)
    rng = np.random.default_rng(SELECTION_SEED)
    kept: dict[str, list[Example]] = {}
    for label in sorted(by_label):
        items = sorted(by_label[label], key=lambda e: e.text)
        order = rng.permutation(len(items))
        items = sorted(
            (items[i] for i in order), key=lambda e: e.priority
        )  # stable: shuffled within a priority
        if len(items) >= min_per_class:
            kept[label] = items[:max_per_class]
    names = tuple(sorted(kept))
    texts, labels = [], []
    for idx, name in enumerate(names):
        for ex in sorted(kept[name], key=lambda e: e.text):
            texts.append(ex.text)
            labels.append(idx)
    return names, texts, labels


def build_domain_texts(domain: str, paths: SourcePaths, wordnet: _WordNetCache | None = None) -> DomainTexts:
    """Read the sources and curate one domain (no cache)."""
    check_domain(domain)
    spec = TASKS[domain]
    built = build_examples(domain, paths, wordnet)
    names, texts, labels = curate(built.examples, spec.max_per_class, spec.min_per_class)
    if len(names) < 2:
        raise EdgekitError(
            f"the {domain} sources yield fewer than two classes with {spec.min_per_class}+ examples",
            f"check the installed packages ({', '.join(spec.packages)})",
        )
    return DomainTexts(domain, spec.task, spec.description, names, texts, labels, built.sources)


def stratified_split(
    labels: Sequence[int], seed: int, domain: str, val_fraction: float, test_fraction: float
) -> np.ndarray:
    """Split name per example. Within each class: a seeded shuffle, then round(n*test) test, round(n*val) val
    (each at least 1 when the class has 3+ examples), the rest train."""
    labels_arr = np.asarray(labels)
    out = np.empty(len(labels_arr), dtype=object)
    rng = np.random.default_rng([seed, zlib.crc32(domain.encode())])
    for label in np.unique(labels_arr):
        idx = np.flatnonzero(labels_arr == label)
        idx = idx[rng.permutation(len(idx))]
        n = len(idx)
        n_test = max(1, round(n * test_fraction)) if n >= 3 else 0
        n_val = (max(1, round(n * val_fraction)) if val_fraction > 0 else 0) if n >= 3 else 0
        out[idx[:n_test]] = "test"
        out[idx[n_test : n_test + n_val]] = "val"
        out[idx[n_test + n_val :]] = "train"
    return out


def check_domain(domain: str) -> str:
    if domain not in DOMAINS:
        raise EdgekitError(f"unknown domain {domain!r}", f"use one of {', '.join(DOMAINS)}")
    return domain


def parse_domains(text: str | Sequence[str] | None) -> tuple[str, ...]:
    """'law,finance' or ['law', 'finance'] or None (all eight) -> validated domain names in suite order."""
    if text is None:
        return DOMAINS
    items = text.split(",") if isinstance(text, str) else [x for t in text for x in t.split(",")]
    names = [x.strip() for x in items if x.strip()]
    for n in names:
        check_domain(n)
    if not names:
        raise EdgekitError("no domains given", f"use one or more of {', '.join(DOMAINS)}")
    return tuple(d for d in DOMAINS if d in names)


# ------------------------------------------------------------------------------------------------ cache
def _cache_path(domain: str, config: SuiteConfig) -> Path:
    return config.cache_root() / f"{domain}.json"


def load_texts(
    domain: str,
    config: SuiteConfig | None = None,
    rebuild: bool = False,
    wordnet: _WordNetCache | None = None,
) -> DomainTexts:
    """The curated texts of one domain: from the cache, else built from the sources and cached."""
    config = config or SuiteConfig()
    check_domain(domain)
    path = _cache_path(domain, config)
    if path.is_file() and not rebuild:
        try:
            texts = DomainTexts.from_dict(json.loads(path.read_text(encoding="utf-8")))
            if texts.suite_version == SUITE_VERSION and texts.domain == domain:
                return texts
        except (json.JSONDecodeError, KeyError, TypeError, ValueError):
            pass  # a damaged cache file is rebuilt
    texts = build_domain_texts(domain, config.source_paths(), wordnet)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{domain}.", suffix=".json")
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        json.dump(texts.to_dict(), fh, ensure_ascii=False)
    os.replace(tmp, path)
    return texts


def load_domain(domain: str, config: SuiteConfig | None = None, rebuild: bool = False) -> DomainData:
    """One domain, split (seeded, stratified) and tokenized."""
    config = config or SuiteConfig()
    return _to_data(load_texts(domain, config, rebuild), config)


def _to_data(texts: DomainTexts, config: SuiteConfig) -> DomainData:
    split = texts.split(config)
    tok = config.tokenizer()
    labels = np.asarray(texts.labels, dtype=np.int64)
    parts = {}
    for name in SPLITS:
        idx = np.flatnonzero(split == name)
        parts[name] = (tok.encode([texts.texts[i] for i in idx]), labels[idx])
    return DomainData(
        domain=texts.domain,
        task=texts.task,
        label_names=texts.label_names,
        train_ids=parts["train"][0],
        train_labels=parts["train"][1],
        val_ids=parts["val"][0],
        val_labels=parts["val"][1],
        test_ids=parts["test"][0],
        test_labels=parts["test"][1],
        seed=config.seed,
        vocab_size=tok.vocab_size,
        sources=dict(texts.sources),
    )


def load_suite(
    domains: Sequence[str] | str | None = None, config: SuiteConfig | None = None, rebuild: bool = False
) -> dict[str, DomainData]:
    """Domain -> DomainData for the given domains (default: all eight, in suite order)."""
    config = config or SuiteConfig()
    wordnet = _WordNetCache()
    return {d: _to_data(load_texts(d, config, rebuild, wordnet), config) for d in parse_domains(domains)}


def suite_arrays(
    domains: Sequence[str] | str | None = None, config: SuiteConfig | None = None
) -> dict[str, tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, tuple[str, ...]]]:
    """Domain -> (train_ids, train_labels, test_ids, test_labels, label_names)."""
    return {d: data.arrays() for d, data in load_suite(domains, config).items()}


def full_label_space(config: SuiteConfig | None = None) -> LabelSpace:
    """The joint head over all eight domains (in suite order) that multi-domain models use."""
    config = config or SuiteConfig()
    wordnet = _WordNetCache()
    sizes = tuple(len(load_texts(d, config, wordnet=wordnet).label_names) for d in DOMAINS)
    return LabelSpace(DOMAINS, sizes)
