"""Compare two sets of benchmark runs: match rows on (model, format, precision, target), estimate the change of the
median latency with a bootstrap confidence interval of the ratio new/base, and give a verdict per row and overall.

Rules (docs/report.md):
- A row is "faster" / "slower" only when BOTH the ratio's CI excludes 1 AND a two-sided Mann-Whitney U test on the
  two sample sets is significant at `alpha` after Holm's correction over all tested rows (so many rows do not
  multiply false alarms). Welch's t-test p-value is reported alongside, for information.
- A "regression" (non-zero exit) is a slower row whose whole CI lies above 1 + fail_above: edgekit is confident the
  slowdown exceeds the threshold, so noise is never called a regression. A run that worked in BASE and failed in
  NEW is also a regression.
- Rows whose latency provenance differs (e.g. measured vs predicted) or is emulated are "not comparable"; rows
  without samples (CSV input) or with fewer than MIN_SAMPLES get no verdict.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from edgekit.report.records import Report, ReportRow

MIN_SAMPLES = 5
VERDICTS = ("faster", "slower", "no significant change", "not comparable", "no samples", "only in base",
            "only in new", "broken", "fixed", "failed in both")


@dataclass
class RowComparison:
    """One matched row. ratio = median(new) / median(base); ci = its bootstrap interval; p values two-sided."""

    model: str
    format: str
    precision: str
    target: str
    verdict: str
    regression: bool = False
    base_run: int | None = None
    new_run: int | None = None
    base_median_ms: float | None = None
    new_median_ms: float | None = None
    ratio: float | None = None
    ci: tuple[float, float] | None = None
    p_mannwhitney: float | None = None
    p_adjusted: float | None = None
    p_welch: float | None = None
    n_base: int = 0
    n_new: int = 0
    provenance: str | None = None
    note: str = ""

    @property
    def change(self) -> float | None:
        """Relative change of the median (+0.10 = 10 % slower)."""
        return None if self.ratio is None else self.ratio - 1.0

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["ci"] = list(self.ci) if self.ci else None
        d["change"] = self.change
        return d


@dataclass
class Comparison:
    base: str
    new: str
    rows: list[RowComparison]
    fail_above: float
    level: float
    alpha: float
    notes: list[str] = field(default_factory=list)

    @property
    def regressions(self) -> list[RowComparison]:
        return [r for r in self.rows if r.regression]

    def verdict(self) -> str:
        """regression | slower | faster | mixed | no significant change."""
        if self.regressions:
            return "regression"
        slower = any(r.verdict == "slower" for r in self.rows)
        faster = any(r.verdict == "faster" for r in self.rows)
        if slower and faster:
            return "mixed"
        if slower:
            return "slower"
        if faster:
            return "faster"
        return "no significant change"

    def to_dict(self) -> dict[str, Any]:
        return {"schema": "edgekit-compare", "schema_version": 1, "base": self.base, "new": self.new,
                "fail_above": self.fail_above, "ci_level": self.level, "alpha": self.alpha,
                "verdict": self.verdict(), "regressions": len(self.regressions),
                "rows": [r.to_dict() for r in self.rows], "notes": self.notes}


def bootstrap_ratio_ci(base: np.ndarray, new: np.ndarray, level: float = 0.95, n_resamples: int = 2000,
                       seed: int = 0) -> tuple[float, float]:
    """Percentile-bootstrap interval of median(new) / median(base), each side resampled independently, seeded.
    Resampling runs in chunks so memory stays bounded (about 4 M indices per side at a time)."""
    rng = np.random.default_rng(seed)

    def medians(xs: np.ndarray) -> np.ndarray:
        out = np.empty(n_resamples, dtype=np.float64)
        chunk = max(1, min(n_resamples, 4_000_000 // xs.size))
        for start in range(0, n_resamples, chunk):
            stop = min(n_resamples, start + chunk)
            out[start:stop] = np.median(xs[rng.integers(0, xs.size, size=(stop - start, xs.size))], axis=1)
        return out

    mb, mn = medians(base), medians(new)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratios = mn / mb
    ratios = ratios[np.isfinite(ratios)]
    alpha = (1.0 - level) / 2.0
    lo, hi = np.quantile(ratios, [alpha, 1.0 - alpha])
    return (float(lo), float(hi))


def holm(pvalues: list[float]) -> list[float]:
    """Holm-Bonferroni adjusted p-values (same order as given)."""
    m = len(pvalues)
    order = sorted(range(m), key=lambda i: pvalues[i])
    adjusted = [1.0] * m
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * pvalues[i]))
        adjusted[i] = running
    return adjusted


def _newest(rows: list[ReportRow]) -> dict[tuple[str, str, str, str], tuple[ReportRow, int]]:
    out: dict[tuple[str, str, str, str], tuple[ReportRow, int]] = {}
    for r in rows:
        prev = out.get(r.key)
        if prev is None or (r.run_id or 0) >= (prev[0].run_id or 0):
            out[r.key] = (r, (prev[1] if prev else 0) + 1)
        else:
            out[r.key] = (prev[0], prev[1] + 1)
    return out


def _median(r: ReportRow) -> float | None:
    lat = r.latency
    if lat is None:
        return None
    if lat.samples_ms:
        return float(np.median(lat.samples_ms))
    return lat.p50_ms


def compare_reports(base: Report, new: Report, *, fail_above: float = 0.05, level: float = 0.95,
                    alpha: float = 0.05, n_resamples: int = 2000, seed: int = 0, base_name: str = "BASE",
                    new_name: str = "NEW") -> Comparison:
    """Match the two reports' rows and judge each change (see the module docstring for the rules)."""
    from scipy import stats

    if not 0 < level < 1 or not 0 < alpha < 1:
        raise ValueError("level and alpha must lie in (0, 1)")
    b_rows, n_rows = _newest(base.rows), _newest(new.rows)
    notes = []
    for side, rows in (("BASE", b_rows), ("NEW", n_rows)):
        for key, (row, count) in rows.items():
            if count > 1:
                notes.append(f"{side} has {count} runs of {key[0]} {key[1]}/{key[2]} @ {key[3]}; the newest "
                             f"(#{row.run_id}) is compared")
    out: list[RowComparison] = []
    tested: list[tuple[RowComparison, float]] = []
    for idx, key in enumerate(sorted(set(b_rows) | set(n_rows))):
        model, fmt, prec, target = key
        rc = RowComparison(model=model, format=fmt, precision=prec, target=target, verdict="no samples")
        out.append(rc)
        b = b_rows.get(key, (None, 0))[0]
        n = n_rows.get(key, (None, 0))[0]
        if b is None or n is None:
            rc.verdict = "only in new" if b is None else "only in base"
            rc.base_run, rc.new_run = (b.run_id if b else None), (n.run_id if n else None)
            continue
        rc.base_run, rc.new_run = b.run_id, n.run_id
        rc.base_median_ms, rc.new_median_ms = _median(b), _median(n)
        if n.status != "ok" or b.status != "ok":
            if b.status == "ok":
                rc.verdict, rc.regression = "broken", True
                rc.note = f"NEW run {n.status}: {n.error or 'no reason recorded'}"
            elif n.status == "ok":
                rc.verdict, rc.note = "fixed", f"BASE run {b.status}"
            else:
                rc.verdict, rc.note = "failed in both", f"BASE {b.status}, NEW {n.status}"
            continue
        bp = b.latency.provenance if b.latency else None
        np_ = n.latency.provenance if n.latency else None
        rc.provenance = bp if bp == np_ else f"{bp} vs {np_}"
        if bp != np_ or bp == "emulated":
            rc.verdict = "not comparable"
            rc.note = ("emulated timings are not real latencies" if bp == np_ else
                       f"latency provenance differs ({bp} vs {np_})")
            continue
        if rc.base_median_ms and rc.new_median_ms is not None:
            rc.ratio = rc.new_median_ms / rc.base_median_ms
        xs = np.asarray(b.latency.samples_ms if b.latency else [], dtype=np.float64)
        ys = np.asarray(n.latency.samples_ms if n.latency else [], dtype=np.float64)
        rc.n_base, rc.n_new = int(xs.size), int(ys.size)
        if xs.size < MIN_SAMPLES or ys.size < MIN_SAMPLES:
            rc.verdict = "no samples"
            rc.note = (f"needs at least {MIN_SAMPLES} samples per side (have {xs.size} and {ys.size}); "
                       "compare runs from the store or JSON reports, not CSV")
            continue
        noisy = [f"{side}: {', '.join(sorted({w.split(':')[0] for w in r.warnings}))}" for side, r in
                 (("BASE", b), ("NEW", n)) if r.warnings]
        if noisy:
            rc.note = "noisy measurement (" + "; ".join(noisy) + ")"
        rc.ci = bootstrap_ratio_ci(xs, ys, level, n_resamples, seed + idx)
        rc.p_mannwhitney = float(stats.mannwhitneyu(ys, xs, alternative="two-sided").pvalue)
        welch = stats.ttest_ind(ys, xs, equal_var=False)
        rc.p_welch = float(welch.pvalue) if math.isfinite(welch.pvalue) else None
        tested.append((rc, rc.p_mannwhitney))
    for (rc, _p), adj in zip(tested, holm([p for _, p in tested]), strict=True):
        rc.p_adjusted = adj
        assert rc.ci is not None
        lo, hi = rc.ci
        significant = adj < alpha
        if significant and lo > 1.0:
            rc.verdict = "slower"
            rc.regression = lo > 1.0 + fail_above
            if not rc.regression and rc.ratio is not None and rc.ratio - 1 > fail_above:
                rc.note = "; ".join(filter(None, (f"slower by {rc.ratio - 1:+.1%}, but the CI reaches {lo - 1:+.1%}: "
                                                  f"not confidently beyond {fail_above:.0%}", rc.note)))
        elif significant and hi < 1.0:
            rc.verdict = "faster"
        else:
            rc.verdict = "no significant change"
    return Comparison(base=base_name, new=new_name, rows=out, fail_above=fail_above, level=level, alpha=alpha,
                      notes=notes)


def parse_threshold(text: str) -> float:
    """"5%" -> 0.05, "0.05" -> 0.05, "5" -> 0.05 (a bare number of 1 or more is a percentage)."""
    from edgekit.errors import EdgekitError

    raw = text.strip()
    try:
        value = float(raw.rstrip("%").strip())
    except ValueError as exc:
        raise EdgekitError(f"--fail-above {text!r} is not a percentage", "write it like 5% or 0.05") from exc
    frac = value / 100.0 if raw.endswith("%") or value >= 1 else value
    if not 0 <= frac < 10 or not math.isfinite(frac):
        raise EdgekitError(f"--fail-above {text!r} is out of range", "use a threshold between 0% and 1000%")
    return frac
