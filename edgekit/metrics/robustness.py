"""Robustness metrics of edgekit (DESIGN.md, "Metrics"). All formulas live here.

Notation. S[m][d] in [0, 1] is model m's score in domain d (macro-F1 unless a task says otherwise): the mean over
the tasks of d of each task's score, where a task's score is the mean over its seeds. Averaging per domain first
means a domain with many tasks does not dominate. D is the set of domains scored, t the target domain of m, r the
reference model (the uncompressed general base), and

    mean_off(m) = mean over d in D, d != t, of S[m][d]

- DSI (domain specialisation index) = (S[m][t] - mean_off(m)) / (S[m][t] + mean_off(m)), in [-1, 1];
  0 = balanced, > 0 = stronger on the target than elsewhere. A model with no target gets DSI for every t and its
  maximum (`dsi_max`, at `dsi_argmax`).
- GG (generalisation gap vs the reference) = (mean_off(r) - mean_off(m)) / mean_off(r). 0.12 = the off-target
  domains lost 12 %; negative = better than the reference off-target. A model with no target uses all domains
  (mean_all) in place of mean_off.
- CDTR (cross-domain transfer ratio) = (mean_off(m) / mean_off(r)) / (S[m][t] / S[r][t]). 1 = the change relative
  to the reference carried over evenly to the other domains; < 1 = gains stayed in the target domain (or losses
  landed off-target); > 1 = the other domains fared better than the target. Undefined without a target.
- Compression intensity c = 1 - (bits per weight / 32) * (1 - sparsity): fp32 0, fp16 0.5, int8 0.75,
  int4 0.875, int8 with 50 % of weights pruned 0.875.
- Brittleness vs compression: Spearman rho between c and GG (and between c and 1 - CDTR) across variants, with a
  percentile bootstrap confidence interval; `brittleness()` resamples tasks (within each domain) and seeds and
  recomputes every variant's metric, `spearman_ci()` resamples (x, y) pairs.

Errors a user can cause (missing reference, a domain without scores, a zero where a ratio needs a non-zero) raise
EdgekitError naming the model and domain.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from edgekit.errors import EdgekitError

METRICS_SCHEMA_VERSION = 1
PRECISION_BITS: dict[str, float] = {
    "fp32": 32,
    "fp16": 16,
    "bf16": 16,
    "int8": 8,
    "int8-static": 8,
    "int4": 4,
}


# ------------------------------------------------------------------------------------------------ inputs
@dataclass(frozen=True)
class ScoreRow:
    """One score: model m, domain d, task, score in [0, 1], seed (0 when there is one run)."""

    model: str
    domain: str
    task: str
    score: float
    seed: int = 0

    def __post_init__(self) -> None:
        if not isinstance(self.score, int | float) or math.isnan(self.score) or not 0.0 <= self.score <= 1.0:
            raise EdgekitError(
                f"score {self.score!r} of {self.model}/{self.domain}/{self.task} is not in [0, 1]",
                "give scores as fractions (e.g. 0.83, not 83)",
            )


def as_row(item: ScoreRow | Sequence[Any] | Mapping[str, Any]) -> ScoreRow:
    """A ScoreRow from a row, a (model, domain, task, score[, seed]) tuple or a mapping with those keys."""
    if isinstance(item, ScoreRow):
        return item
    if isinstance(item, Mapping):
        return ScoreRow(
            str(item["model"]),
            str(item["domain"]),
            str(item["task"]),
            float(item["score"]),
            int(item.get("seed", 0)),
        )
    if len(item) not in (4, 5):
        raise EdgekitError(
            f"score row {item!r} needs 4 or 5 fields", "give (model, domain, task, score[, seed])"
        )
    seed = int(item[4]) if len(item) == 5 else 0
    return ScoreRow(str(item[0]), str(item[1]), str(item[2]), float(item[3]), seed)


class ScoreTable:
    """Scores indexed by model, domain, task and seed; the input of every metric here.

    Build it with `ScoreTable.from_rows(rows)` from (model, domain, task, score[, seed]) rows, whatever produced
    them: edgekit's own evaluation, the results store, lm-evaluation-harness JSON, or a CSV. A repeated
    (model, domain, task, seed) keeps the last row.
    """

    def __init__(self, rows: Iterable[ScoreRow]) -> None:
        self._scores: dict[str, dict[str, dict[str, dict[int, float]]]] = {}
        for row in rows:
            self._scores.setdefault(row.model, {}).setdefault(row.domain, {}).setdefault(row.task, {})[
                row.seed
            ] = row.score

    @classmethod
    def from_rows(cls, rows: Iterable[ScoreRow | Sequence[Any] | Mapping[str, Any]]) -> ScoreTable:
        return cls(as_row(r) for r in rows)

    def rows(self) -> list[ScoreRow]:
        return [
            ScoreRow(m, d, t, s, seed)
            for m, doms in self._scores.items()
            for d, tasks in doms.items()
            for t, seeds in tasks.items()
            for seed, s in seeds.items()
        ]

    def models(self) -> list[str]:
        return list(self._scores)

    def domains(self) -> list[str]:
        seen: dict[str, None] = {}
        for doms in self._scores.values():
            for d in doms:
                seen.setdefault(d, None)
        return list(seen)

    def __contains__(self, model: str) -> bool:
        return model in self._scores

    def require(self, model: str, role: str = "model") -> None:
        if model not in self._scores:
            known = ", ".join(self._scores) or "none"
            raise EdgekitError(
                f"{role} {model!r} has no scores (models with scores: {known})",
                f"evaluate {model} first, or name one of the models listed",
            )

    def domain_score(self, model: str, domain: str) -> float:
        """S[m][d] = mean over tasks of d of (mean over seeds of the task's score)."""
        self.require(model)
        tasks = self._scores[model].get(domain)
        if not tasks:
            raise EdgekitError(
                f"model {model!r} has no scores in domain {domain!r}",
                f"evaluate {model} on {domain}, or leave {domain} out (--domains)",
            )
        return float(np.mean([np.mean(list(seeds.values())) for seeds in tasks.values()]))

    def domain_scores(self, model: str, domains: Sequence[str] | None = None) -> dict[str, float]:
        return {d: self.domain_score(model, d) for d in (domains or self.domains())}

    def array(
        self, models: Sequence[str], domains: Sequence[str]
    ) -> tuple[np.ndarray, list[list[str]], list[int]]:
        """Scores as [models, domains, tasks (padded), seeds] with NaN where absent, plus task names per domain
        and the seeds; the bootstrap resamples its last two axes."""
        tasks = [sorted({t for m in models for t in self._scores.get(m, {}).get(d, {})}) for d in domains]
        seeds = sorted(
            {
                seed
                for m in models
                for task_scores in self._scores.get(m, {}).values()
                for by_seed in task_scores.values()
                for seed in by_seed
            }
        )
        width = max((len(t) for t in tasks), default=0)
        arr = np.full((len(models), len(domains), width, len(seeds)), np.nan)
        for i, m in enumerate(models):
            for j, d in enumerate(domains):
                for k, t in enumerate(tasks[j]):
                    for s_i, s in enumerate(seeds):
                        v = self._scores.get(m, {}).get(d, {}).get(t, {}).get(s)
                        if v is not None:
                            arr[i, j, k, s_i] = v
        return arr, tasks, seeds


# ------------------------------------------------------------------------------------------------ formulas
def mean_off(scores: Mapping[str, float], target: str | None) -> float:
    """mean over d != target of S[d]; with target None, the mean over all domains."""
    if target is not None and target not in scores:
        raise EdgekitError(f"target domain {target!r} has no score", f"pick one of {', '.join(scores)}")
    off = [v for d, v in scores.items() if d != target]
    if not off:
        raise EdgekitError(
            f"no domain besides the target {target!r} has scores: mean_off is undefined",
            "score the model on at least two domains",
        )
    return float(np.mean(off))


def dsi(s_target: float, off: float, model: str = "model") -> float:
    """DSI = (S[m][t] - mean_off(m)) / (S[m][t] + mean_off(m)), in [-1, 1]."""
    denom = s_target + off
    if denom <= 0:
        raise EdgekitError(
            f"DSI of {model} is undefined: its target score and off-target mean are both 0",
            "check that the model was trained and evaluated (all scores 0)",
        )
    return (s_target - off) / denom


def gg(off_m: float, off_r: float, reference: str = "reference") -> float:
    """GG = (mean_off(r) - mean_off(m)) / mean_off(r)."""
    if off_r <= 0:
        raise EdgekitError(
            f"GG is undefined: the reference {reference!r} scores 0 on every off-target domain",
            "pick a reference that was trained and evaluated (its scores are all 0)",
        )
    return (off_r - off_m) / off_r


def cdtr(
    s_m_target: float,
    off_m: float,
    s_r_target: float,
    off_r: float,
    model: str = "model",
    reference: str = "reference",
    target: str = "target",
) -> float:
    """CDTR = (mean_off(m) / mean_off(r)) / (S[m][t] / S[r][t])."""
    for value, who, what in (
        (off_r, reference, "off-target mean"),
        (s_r_target, reference, f"score in {target}"),
        (s_m_target, model, f"score in {target}"),
    ):
        if value <= 0:
            raise EdgekitError(
                f"CDTR of {model} is undefined: {who}'s {what} is 0 (a ratio needs it non-zero)",
                "check that both models were trained and evaluated on that domain",
            )
    return (off_m / off_r) / (s_m_target / s_r_target)


def compression_intensity(bits: float, sparsity: float = 0.0) -> float:
    """c = 1 - (bits per weight / 32) * (1 - sparsity). bits in (0, 32], sparsity (pruned fraction) in [0, 1]."""
    if not 0 < bits <= 32:
        raise EdgekitError(f"bits per weight {bits} is outside (0, 32]", "use e.g. 32, 16, 8 or 4")
    if not 0.0 <= sparsity <= 1.0:
        raise EdgekitError(f"sparsity {sparsity} is outside [0, 1]", "give the pruned fraction, e.g. 0.5")
    return 1.0 - (bits / 32.0) * (1.0 - sparsity)


def compression_intensity_of(precision: str, sparsity: float = 0.0) -> float:
    """c for a precision name (fp32, fp16, int8, int8-static, int4) and a pruned fraction."""
    if precision not in PRECISION_BITS:
        raise EdgekitError(f"unknown precision {precision!r}", f"use one of {', '.join(PRECISION_BITS)}")
    return compression_intensity(PRECISION_BITS[precision], sparsity)


# ------------------------------------------------------------------------------------------------ records
@dataclass(frozen=True)
class RobustnessMetrics:
    """DSI, GG, CDTR of one model against a reference. Fields None where undefined (no target: dsi, cdtr)."""

    model: str
    reference: str
    target: str | None
    domains: tuple[str, ...]
    s_target: float | None
    mean_off: float
    ref_s_target: float | None
    ref_mean_off: float
    dsi: float | None
    gg: float
    cdtr: float | None
    dsi_max: float | None = None
    dsi_argmax: str | None = None
    dsi_by_target: dict[str, float] = field(default_factory=dict)
    schema_version: int = METRICS_SCHEMA_VERSION

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["domains"] = list(self.domains)
        return d


def model_metrics(
    table: ScoreTable,
    model: str,
    reference: str,
    target: str | None = None,
    domains: Sequence[str] | None = None,
) -> RobustnessMetrics:
    """DSI / GG / CDTR of `model` against `reference` over `domains` (default: every domain in the table)."""
    table.require(reference, "reference model")
    table.require(model)
    doms = list(domains or table.domains())
    if target is not None and target not in doms:
        raise EdgekitError(
            f"target domain {target!r} of {model} is not among the domains scored ({', '.join(doms)})",
            "give a target from that list",
        )
    s_m = table.domain_scores(model, doms)
    s_r = table.domain_scores(reference, doms)
    off_m, off_r = mean_off(s_m, target), mean_off(s_r, target)
    if target is not None:
        return RobustnessMetrics(
            model=model,
            reference=reference,
            target=target,
            domains=tuple(doms),
            s_target=s_m[target],
            mean_off=off_m,
            ref_s_target=s_r[target],
            ref_mean_off=off_r,
            dsi=dsi(s_m[target], off_m, model),
            gg=gg(off_m, off_r, reference),
            cdtr=cdtr(s_m[target], off_m, s_r[target], off_r, model, reference, target),
        )
    by_t = {t: dsi(s_m[t], mean_off(s_m, t), model) for t in doms}
    best = max(by_t, key=lambda t: by_t[t])
    return RobustnessMetrics(
        model=model,
        reference=reference,
        target=None,
        domains=tuple(doms),
        s_target=None,
        mean_off=off_m,
        ref_s_target=None,
        ref_mean_off=off_r,
        dsi=None,
        gg=gg(off_m, off_r, reference),
        cdtr=None,
        dsi_max=by_t[best],
        dsi_argmax=best,
        dsi_by_target=by_t,
    )


def robustness(
    table: ScoreTable,
    reference: str,
    targets: Mapping[str, str | None] | None = None,
    models: Sequence[str] | None = None,
    domains: Sequence[str] | None = None,
) -> list[RobustnessMetrics]:
    """Metrics for each model (default: all in the table, reference included), with targets from `targets`."""
    table.require(reference, "reference model")
    targets = dict(targets or {})
    for m in targets:
        table.require(m)
    names = list(models or table.models())
    return [model_metrics(table, m, reference, targets.get(m), domains) for m in names]


# ------------------------------------------------------------------------------------------------ correlation
@dataclass(frozen=True)
class Correlation:
    """Spearman rho with a percentile bootstrap CI. rho None when undefined (a constant variable)."""

    rho: float | None
    ci_low: float | None
    ci_high: float | None
    n: int
    n_boot: int
    n_valid_boot: int
    confidence: float
    p_value: float | None = None
    x: str = "c"
    y: str = "GG"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def spearman(x: Sequence[float], y: Sequence[float]) -> tuple[float | None, float | None]:
    """Spearman rank correlation (ties get average ranks) and its p-value; (None, None) when undefined."""
    from scipy.stats import spearmanr

    xa, ya = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    if len(xa) != len(ya):
        raise EdgekitError(f"x has {len(xa)} values, y has {len(ya)}", "give one y per x")
    if len(xa) < 3:
        raise EdgekitError(f"a rank correlation needs at least 3 variants, got {len(xa)}", "add variants")
    if np.ptp(xa) == 0 or np.ptp(ya) == 0:
        return None, None
    res = spearmanr(xa, ya)
    return float(res.statistic), float(res.pvalue)


def _ci(values: list[float], confidence: float) -> tuple[float | None, float | None]:
    if not values:
        return None, None
    lo, hi = np.percentile(values, [100 * (1 - confidence) / 2, 100 * (1 + confidence) / 2])
    return float(lo), float(hi)


def spearman_ci(
    x: Sequence[float],
    y: Sequence[float],
    n_boot: int = 2000,
    confidence: float = 0.95,
    seed: int = 0,
    x_name: str = "c",
    y_name: str = "GG",
) -> Correlation:
    """Spearman rho of paired values with a percentile bootstrap CI over resampled pairs."""
    from scipy.stats import spearmanr

    rho, p = spearman(x, y)
    xa, ya = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    rng = np.random.default_rng(seed)
    boots: list[float] = []
    for _ in range(n_boot):
        idx = rng.integers(0, len(xa), len(xa))
        bx, by = xa[idx], ya[idx]
        if np.ptp(bx) == 0 or np.ptp(by) == 0:
            continue
        boots.append(float(spearmanr(bx, by).statistic))
    lo, hi = _ci(boots, confidence)
    return Correlation(rho, lo, hi, len(xa), n_boot, len(boots), confidence, p, x_name, y_name)


def brittleness(
    table: ScoreTable,
    reference: str,
    variants: Mapping[str, tuple[float, str | None]],
    metric: str = "gg",
    n_boot: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
    domains: Sequence[str] | None = None,
) -> Correlation:
    """Spearman rho between compression intensity c and GG (metric="gg") or 1 - CDTR (metric="1-cdtr") across
    `variants` (model -> (c, target domain)), with a bootstrap CI over tasks and seeds: each replicate draws, with
    replacement, the tasks of every domain and the seeds (the same draw for every model, so they stay paired),
    recomputes S[m][d] and each variant's metric, then rho."""
    if metric not in ("gg", "1-cdtr"):
        raise EdgekitError(f"unknown brittleness metric {metric!r}", "use gg or 1-cdtr")
    table.require(reference, "reference model")
    names = list(variants)
    for m in names:
        table.require(m)
    doms = list(domains or table.domains())
    models = [reference, *names]
    for m in models:
        table.domain_scores(m, doms)  # raises for a missing domain
    arr, task_names, _ = table.array(models, doms)
    cs = [variants[m][0] for m in names]
    targets = [variants[m][1] for m in names]
    if metric == "1-cdtr" and any(t is None for t in targets):
        raise EdgekitError("1 - CDTR needs a target domain for every variant", "give each variant its target")

    def metric_values(s: np.ndarray) -> list[float]:
        ref = dict(zip(doms, s[0], strict=True))
        out = []
        for i, (m, t) in enumerate(zip(names, targets, strict=True)):
            sm = dict(zip(doms, s[i + 1], strict=True))
            off_m, off_r = mean_off(sm, t), mean_off(ref, t)
            if metric == "gg":
                out.append(gg(off_m, off_r, reference))
            else:
                out.append(1.0 - cdtr(sm[t], off_m, ref[t], off_r, m, reference, t))  # type: ignore[index]
        return out

    def domain_means(a: np.ndarray) -> np.ndarray:
        with np.errstate(invalid="ignore"):
            per_task = np.nanmean(a, axis=3)  # over seeds
            return np.nanmean(per_task, axis=2)  # over tasks

    point = metric_values(domain_means(arr))
    rho, p = spearman(cs, point)
    rng = np.random.default_rng(seed)
    n_tasks = [len(t) for t in task_names]
    boots: list[float] = []
    from scipy.stats import spearmanr

    for _ in range(n_boot):
        seed_idx = rng.integers(0, arr.shape[3], arr.shape[3])
        sample = arr[:, :, :, seed_idx]
        s = np.empty((len(models), len(doms)))
        for j, nt in enumerate(n_tasks):
            t_idx = rng.integers(0, nt, nt)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)
                s[:, j] = np.nanmean(np.nanmean(sample[:, j, t_idx, :], axis=2), axis=1)
        if np.isnan(s).any():
            continue  # a draw left a model without a score in some domain
        try:
            vals = metric_values(s)
        except EdgekitError:
            continue  # a draw made a ratio undefined
        if np.ptp(vals) == 0 or np.ptp(cs) == 0:
            continue
        boots.append(float(spearmanr(cs, vals).statistic))
    lo, hi = _ci(boots, confidence)
    return Correlation(
        rho,
        lo,
        hi,
        len(names),
        n_boot,
        len(boots),
        confidence,
        p,
        "c",
        "GG" if metric == "gg" else "1 - CDTR",
    )
