"""Latency statistics for one benchmark: summary figures, a bootstrap confidence interval of the median, and
hyperfine-style noise warnings, each with an actionable hint.

All latencies are in milliseconds. Percentiles use linear interpolation between order statistics (numpy's
default, `np.percentile(..., method="linear")`); the standard deviation is the sample one (ddof=1), as hyperfine.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import Any

import numpy as np

# hyperfine (src/outlier_detection.rs): a point is an outlier when its modified z-score (x - median) / MAD exceeds
# 1.4826 * 10, i.e. it lies more than ten robust standard deviations from the median (1.4826 * MAD ~ sigma).
OUTLIER_THRESHOLD = 1.4826 * 10.0
# edgekit's own thresholds (documented in docs/bench.md).
HIGH_CV = 0.10  # coefficient of variation (std / mean) above which a run is called noisy
FREQ_CHANGE = 0.05  # relative CPU frequency change between the start and the end of the timed runs
THERMAL_CHANGE_C = 5.0  # temperature rise in degrees Celsius between the start and the end of the timed runs


class NoiseWarning(StrEnum):
    """A reason to distrust a measurement. `hint()` says what to do about it."""

    OUTLIERS = "outliers"
    HIGH_CV = "high_cv"
    FIRST_RUN_SLOWER = "first_run_slower"
    CPU_FREQUENCY_CHANGED = "cpu_frequency_changed"
    THERMAL_STATE_CHANGED = "thermal_state_changed"
    TIME_CAP_REACHED = "time_cap_reached"

    def hint(self) -> str:
        return _HINTS[self]


_HINTS: dict[NoiseWarning, str] = {
    NoiseWarning.OUTLIERS: "statistical outliers were detected: re-run on a quiet system (close other programs, "
    "plug in the power, pin the benchmark with `taskset`) or raise --runs so they weigh less",
    NoiseWarning.HIGH_CV: "the latency varies a lot from run to run (high coefficient of variation): use a quiet "
    "system, fix the CPU governor to `performance`, or set --threads to fewer cores than the machine has",
    NoiseWarning.FIRST_RUN_SLOWER: "the first timed run was much slower than the rest: caches were still cold, "
    "raise --warmup",
    NoiseWarning.CPU_FREQUENCY_CHANGED: "the CPU frequency changed during the timed runs: set the governor to "
    "`performance` (cpupower frequency-set -g performance) or disable turbo boost",
    NoiseWarning.THERMAL_STATE_CHANGED: "the temperature rose during the timed runs, so the CPU may have throttled: "
    "let the device cool down, add cooling, or shorten --min-time",
    NoiseWarning.TIME_CAP_REACHED: "the --max-time cap stopped the benchmark before --runs were done: raise "
    "--max-time or lower --runs",
}


@dataclass(frozen=True)
class BenchWarning:
    """One warning raised for one benchmark, with the figure that triggered it."""

    kind: NoiseWarning
    detail: str

    def to_dict(self) -> dict[str, str]:
        return {"kind": self.kind.value, "detail": self.detail, "hint": self.kind.hint()}


@dataclass
class LatencySummary:
    """Summary of the steady-state latencies, in ms. `ci_median` is the bootstrap interval (low, high)."""

    n: int
    mean: float
    std: float
    min: float
    max: float
    p50: float
    p90: float
    p95: float
    p99: float
    cv: float
    mad: float
    ci_median: tuple[float, float]
    ci_level: float
    outliers: int
    total_s: float

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["ci_median"] = list(self.ci_median)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> LatencySummary:
        d = dict(d)
        d["ci_median"] = tuple(d["ci_median"])
        return cls(**{k: v for k, v in d.items() if k in cls.__dataclass_fields__})


def modified_zscores(samples: Sequence[float] | np.ndarray) -> np.ndarray:
    """(x - median) / MAD, as hyperfine computes it. When MAD is 0 (over half the values identical) hyperfine
    divides by the machine epsilon instead: the identical values score 0 and any value that differs from them is an
    outlier (`[10] * 7 + [100]` has one, as in hyperfine's test_detect_outliers_if_mad_becomes_0)."""
    xs = np.asarray(samples, dtype=np.float64)
    if xs.size == 0:
        return xs
    med = np.median(xs)
    mad = float(np.median(np.abs(xs - med)))
    if mad <= 0.0:
        mad = float(np.finfo(np.float64).eps)
    return (xs - med) / mad


EXACT_BOOTSTRAP_ABOVE = 5000  # samples; above this the bootstrap distribution of the median is computed exactly


def exact_bootstrap_median_ci(samples: Sequence[float] | np.ndarray, level: float = 0.95) -> tuple[float, float]:
    """The percentile-bootstrap interval of the (lower) median with infinitely many resamples, computed exactly:
    a resample's median is <= x_(k) exactly when at least m = ceil(n/2) of its n draws are <= x_(k), so
    P(M* <= x_(k)) = P(Binomial(n, k/n) >= m) = I_{k/n}(m, n - m + 1) (regularised incomplete beta).
    Deterministic, O(n log n); used for long benchmarks where resampling would cost seconds."""
    from scipy.special import betainc

    xs = np.sort(np.asarray(samples, dtype=np.float64))
    n = xs.size
    m = (n + 1) // 2
    cdf = betainc(m, n - m + 1, np.arange(1, n + 1) / n)
    alpha = (1.0 - level) / 2.0
    lo = int(np.searchsorted(cdf, alpha, side="left"))
    hi = int(np.searchsorted(cdf, 1.0 - alpha, side="left"))
    return (float(xs[min(lo, n - 1)]), float(xs[min(hi, n - 1)]))


def bootstrap_medians(samples: Sequence[float] | np.ndarray, n_resamples: int,
                      rng: np.random.Generator) -> np.ndarray:
    """The medians of `n_resamples` resamples (with replacement, same size) of `samples`, drawn from `rng`: the one
    resampling loop behind every bootstrap of a median (this module's CI, report/compare.py's ratio CI). Drawn in
    chunks so memory stays bounded (about 4 M indices at a time)."""
    xs = np.asarray(samples, dtype=np.float64)
    medians = np.empty(n_resamples, dtype=np.float64)
    chunk = max(1, min(n_resamples, 4_000_000 // xs.size))
    for start in range(0, n_resamples, chunk):
        stop = min(n_resamples, start + chunk)
        medians[start:stop] = np.median(xs[rng.integers(0, xs.size, size=(stop - start, xs.size))], axis=1)
    return medians


def percentile_interval(values: np.ndarray, level: float) -> tuple[float, float]:
    """The central `level` interval of bootstrap replicates (the percentile method)."""
    alpha = (1.0 - level) / 2.0
    low, high = np.quantile(values, [alpha, 1.0 - alpha])
    return (float(low), float(high))


def bootstrap_median_ci(
    samples: Sequence[float] | np.ndarray, level: float = 0.95, n_resamples: int = 2000, seed: int = 0
) -> tuple[float, float]:
    """Percentile-bootstrap confidence interval of the median, seeded (same samples + seed -> same interval).

    Resamples come from bootstrap_medians. Above
    EXACT_BOOTSTRAP_ABOVE samples the exact bootstrap distribution is used instead (see exact_bootstrap_median_ci),
    which is what resampling converges to and costs milliseconds instead of seconds."""
    xs = np.asarray(samples, dtype=np.float64)
    if xs.size == 0:
        return (math.nan, math.nan)
    if xs.size == 1:
        return (float(xs[0]), float(xs[0]))
    if xs.size > EXACT_BOOTSTRAP_ABOVE:
        return exact_bootstrap_median_ci(xs, level)
    return percentile_interval(bootstrap_medians(xs, n_resamples, np.random.default_rng(seed)), level)


def summarize(samples_ms: Sequence[float] | np.ndarray, ci_level: float = 0.95, seed: int = 0) -> LatencySummary:
    """Summary statistics of steady-state latencies (ms). Needs at least one sample."""
    xs = np.asarray(samples_ms, dtype=np.float64)
    if xs.size == 0:
        raise ValueError("no latency samples to summarise")
    mean = float(xs.mean())
    std = float(xs.std(ddof=1)) if xs.size > 1 else 0.0
    p50, p90, p95, p99 = (float(v) for v in np.percentile(xs, [50, 90, 95, 99]))
    med = float(np.median(xs))
    z = modified_zscores(xs)
    return LatencySummary(
        n=int(xs.size),
        mean=mean,
        std=std,
        min=float(xs.min()),
        max=float(xs.max()),
        p50=p50,
        p90=p90,
        p95=p95,
        p99=p99,
        cv=std / mean if mean > 0 else 0.0,
        mad=float(np.median(np.abs(xs - med))),
        ci_median=bootstrap_median_ci(xs, level=ci_level, seed=seed),
        ci_level=ci_level,
        outliers=int(np.count_nonzero(np.abs(z) > OUTLIER_THRESHOLD)),
        total_s=float(xs.sum()) / 1000.0,
    )


@dataclass
class ProbeSnapshot:
    """CPU frequencies (MHz, per CPU) and temperatures (degrees C, per thermal zone) read at one moment."""

    freq_mhz: dict[str, float] = field(default_factory=dict)
    temp_c: dict[str, float] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, d: dict[str, Any] | None) -> ProbeSnapshot:
        d = d or {}
        return cls(freq_mhz=dict(d.get("freq_mhz", {})), temp_c=dict(d.get("temp_c", {})))


def noise_warnings(
    samples_ms: Sequence[float] | np.ndarray,
    summary: LatencySummary | None = None,
    before: ProbeSnapshot | None = None,
    after: ProbeSnapshot | None = None,
    requested_runs: int | None = None,
    high_cv: float = HIGH_CV,
) -> list[BenchWarning]:
    """hyperfine-style warnings for one benchmark (see NoiseWarning for the list and hints)."""
    xs = np.asarray(samples_ms, dtype=np.float64)
    summary = summary or summarize(xs)
    out: list[BenchWarning] = []
    if summary.outliers:
        out.append(BenchWarning(NoiseWarning.OUTLIERS, f"{summary.outliers} of {summary.n} runs are outliers "
                            f"(modified z-score > {OUTLIER_THRESHOLD:.2f})"))
    if summary.n > 1 and summary.cv > high_cv:
        out.append(BenchWarning(NoiseWarning.HIGH_CV, f"coefficient of variation {summary.cv:.1%} > {high_cv:.0%}"))
    if xs.size > 2:
        z = modified_zscores(xs)
        if z[0] > OUTLIER_THRESHOLD:
            out.append(BenchWarning(NoiseWarning.FIRST_RUN_SLOWER,
                                f"first timed run {xs[0]:.3f} ms vs median {summary.p50:.3f} ms"))
    if before is not None and after is not None:
        for cpu, f0 in before.freq_mhz.items():
            f1 = after.freq_mhz.get(cpu)
            if f1 is not None and f0 > 0 and abs(f1 - f0) / f0 > FREQ_CHANGE:
                out.append(BenchWarning(NoiseWarning.CPU_FREQUENCY_CHANGED, f"{cpu}: {f0:.0f} -> {f1:.0f} MHz"))
                break
        for zone, t0 in before.temp_c.items():
            t1 = after.temp_c.get(zone)
            if t1 is not None and t1 - t0 > THERMAL_CHANGE_C:
                out.append(BenchWarning(NoiseWarning.THERMAL_STATE_CHANGED, f"{zone}: {t0:.1f} -> {t1:.1f} °C"))
                break
    if requested_runs is not None and summary.n < requested_runs:
        out.append(BenchWarning(NoiseWarning.TIME_CAP_REACHED, f"{summary.n} of {requested_runs} runs done"))
    return out
