"""The paper's claims (arXiv 2503.22698), each checked against what the study measured.

A unit is one (target domain, seed) pair; every statistic below is a mean over units, and its 95 % confidence
interval a percentile bootstrap over units (resampled with replacement). Criteria (stated so a verdict can be
re-derived from the numbers):

1. specialisation: plain fine-tuning raises the target score (mean gain > 0) while the general (off-target) F1
   falls 12-29 % (mean GG within [0.12, 0.29]). Reproduced when both hold.
2. forgetting: GEM's distillation reduces forgetting by 43 %. reduction = 1 - GG(kd) / GG(ft) (ratio of mean GGs).
   Reproduced when plain fine-tuning measurably forgets (GG(ft)'s CI above 0), the reduction's CI lies above 0 and
   reaches 0.43.
3. GEM vs dense: +7 % general F1 and parity in-domain, both specialised the same way (distillation).
   general gain = mean_off(GEM) / mean_off(dense) - 1; in-domain difference = S_t(GEM) / S_t(dense) - 1.
   Reproduced when the general gain's CI lies above 0 and reaches 0.07, and the in-domain difference is within
   +-3 % or its CI contains 0.
4. cross-domain F1 0.89: the GEM base (uncompressed, general) mean macro-F1 over all scored domains. Reproduced when
   its CI reaches 0.89.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

REPRODUCED = "reproduced"
NOT_REPRODUCED = "not reproduced"
PARITY_TOLERANCE = 0.03


@dataclass(frozen=True)
class Unit:
    """What one (target, seed) pair measured: per-domain macro-F1 of each uncompressed PyTorch model."""

    target: str
    seed: int
    base: dict[str, float]
    ft: dict[str, float]
    kd: dict[str, float]
    dense_kd: dict[str, float] | None = None


@dataclass(frozen=True)
class Stat:
    value: float | None
    ci_low: float | None
    ci_high: float | None

    def fmt(self, digits: int = 3, pct: bool = False) -> str:
        def f(x: float | None) -> str:
            if x is None:
                return "—"
            return f"{100 * x:+.1f} %" if pct else f"{x:.{digits}f}"

        if self.ci_low is None:
            return f(self.value)
        return f"{f(self.value)} [{f(self.ci_low)}, {f(self.ci_high)}]"


@dataclass(frozen=True)
class Claim:
    """One claim: what the paper says, what was measured (with CIs), the criterion and the verdict."""

    key: str
    claim: str
    paper: str
    measured: str
    criterion: str
    verdict: str
    numbers: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _off(s: dict[str, float], t: str) -> float:
    return float(np.mean([v for d, v in s.items() if d != t]))


def bootstrap(units: Sequence[Unit], fn: Callable[[Sequence[Unit]], float | None], n_boot: int = 1000,
              seed: int = 0) -> Stat:
    """fn over all units, and a 95 % percentile CI over units resampled with replacement (None with one unit)."""
    value = fn(units)
    if len(units) < 2 or value is None:
        return Stat(value, None, None)
    rng = np.random.default_rng(seed)
    vals = []
    for _ in range(n_boot):
        sample = [units[i] for i in rng.integers(0, len(units), len(units))]
        v = fn(sample)
        if v is not None and np.isfinite(v):
            vals.append(v)
    if not vals:
        return Stat(value, None, None)
    lo, hi = np.percentile(vals, [2.5, 97.5])
    return Stat(value, float(lo), float(hi))


def _mean(values: list[float]) -> float:
    return float(np.mean(values))


def gain(us: Sequence[Unit]) -> float:
    return _mean([u.ft[u.target] - u.base[u.target] for u in us])


def gg_of(key: str) -> Callable[[Sequence[Unit]], float]:
    def fn(us: Sequence[Unit]) -> float:
        return _mean([(_off(u.base, u.target) - _off(getattr(u, key), u.target)) / _off(u.base, u.target)
                      for u in us])
    return fn


def reduction(us: Sequence[Unit]) -> float | None:
    g_ft, g_kd = gg_of("ft")(us), gg_of("kd")(us)
    return None if g_ft <= 0 else 1.0 - g_kd / g_ft


def general_gain(us: Sequence[Unit]) -> float:
    return _mean([_off(u.kd, u.target) for u in us]) / _mean([_off(u.dense_kd, u.target) for u in us]) - 1.0  # type: ignore[arg-type]


def indomain_diff(us: Sequence[Unit]) -> float:
    return _mean([u.kd[u.target] for u in us]) / _mean([u.dense_kd[u.target] for u in us]) - 1.0  # type: ignore[index]


def cross_domain_f1(us: Sequence[Unit]) -> float:
    return _mean([_mean(list(u.base.values())) for u in us])


def evaluate_claims(units: Sequence[Unit], n_boot: int = 1000, seed: int = 0) -> list[Claim]:
    """One Claim per paper claim, in the order of the module docstring."""
    claims: list[Claim] = []
    g, gg_ft, gg_kd = (bootstrap(units, f, n_boot, seed) for f in (gain, gg_of("ft"), gg_of("kd")))
    ok = g.value is not None and g.value > 0 and gg_ft.value is not None and 0.12 <= gg_ft.value <= 0.29
    claims.append(Claim(
        "specialisation", "Specialisation raises the target-domain score while general F1 falls 12-29 %",
        "general F1 -12 % to -29 %",
        f"target gain {g.fmt()} F1; general F1 change {bootstrap(units, lambda us: -gg_of('ft')(us), n_boot, seed).fmt(pct=True)} "
        f"(GG {gg_ft.fmt()})",
        "mean target gain > 0 and mean GG of plain fine-tuning in [0.12, 0.29]",
        REPRODUCED if ok else NOT_REPRODUCED,
        {"target_gain": asdict(g), "gg_ft": asdict(gg_ft)},
    ))
    red = bootstrap(units, reduction, n_boot, seed)
    forgets = gg_ft.value is not None and (gg_ft.ci_low if gg_ft.ci_low is not None else gg_ft.value) > 0
    ok = (forgets and red.value is not None
          and (red.ci_low if red.ci_low is not None else red.value) > 0
          and (red.ci_high if red.ci_high is not None else red.value) >= 0.43)
    claims.append(Claim(
        "forgetting", "GEM's knowledge-preserving distillation reduces forgetting", "by 43 %",
        f"GG plain {gg_ft.fmt()}, GG distilled {gg_kd.fmt()}; reduction {red.fmt(pct=True)}"
        + ("" if red.value is not None else " (undefined: plain fine-tuning did not forget)"),
        "GG(ft) CI above 0 (plain fine-tuning forgets), reduction CI above 0 and reaching 0.43",
        REPRODUCED if ok else NOT_REPRODUCED,
        {"gg_ft": asdict(gg_ft), "gg_kd": asdict(gg_kd), "reduction": asdict(red)},
    ))
    if all(u.dense_kd is not None for u in units) and units:
        gen, ind = bootstrap(units, general_gain, n_boot, seed), bootstrap(units, indomain_diff, n_boot, seed)
        parity = abs(ind.value or 0.0) <= PARITY_TOLERANCE or (
            ind.ci_low is not None and ind.ci_low <= 0 <= (ind.ci_high or 0))
        ok = ((gen.ci_low if gen.ci_low is not None else gen.value or 0) > 0
              and (gen.ci_high if gen.ci_high is not None else gen.value or 0) >= 0.07 and parity)
        measured = f"general F1 {gen.fmt(pct=True)}, in-domain {ind.fmt(pct=True)} (GEM vs dense, both distilled)"
        numbers = {"general_gain": asdict(gen), "indomain_diff": asdict(ind)}
    else:
        ok, measured, numbers = False, "not measured (the dense baseline was not trained: --no-dense)", {}
    claims.append(Claim(
        "gem_vs_dense", "GEM beats a dense baseline of the same size off-target, at parity in-domain",
        "+7 % general, parity in-domain", measured,
        f"general gain CI above 0 and reaching +7 %; in-domain within +-{PARITY_TOLERANCE:.0%} or CI containing 0",
        REPRODUCED if ok else NOT_REPRODUCED, numbers,
    ))
    cd = bootstrap(units, cross_domain_f1, n_boot, seed)
    reach = cd.ci_high if cd.ci_high is not None else cd.value
    claims.append(Claim(
        "cross_domain_f1", "GEM's cross-domain F1", "0.89",
        f"{cd.fmt()} (GEM base, mean macro-F1 over the domains)", "CI (or value) reaches 0.89",
        REPRODUCED if reach is not None and reach >= 0.89 else NOT_REPRODUCED, {"cross_domain_f1": asdict(cd)},
    ))
    return claims
