"""Compare two sets of benchmark runs: match rows on (model, format, precision, target) and judge the change of the
median latency with runs — not samples — as the unit, because on a shared machine the spread between runs (load,
clock, cache and memory placement of a fresh process) is larger than the spread within one run.

Rules (docs/report.md):
- Each run contributes one number: the median of its steady-state samples (or its p50 when a report file holds no
  samples). With at least MIN_RUNS runs per side (`edgekit bench --repeat N`), the log-ratio of the two sides' mean
  log-medians gets a Welch t interval and a Welch t-test from the between-run spread; a run's spread is never taken
  smaller than the sampling error of its own median. Holm's correction runs over all tested rows.
- "faster" / "slower" need the Holm-adjusted p below `alpha` AND the ratio's CI excluding 1.
- A "regression" (non-zero exit) is a slower row whose whole CI lies above 1 + fail_above (the minimum effect that
  matters), or a row whose runs worked in BASE and failed in NEW. Noise is never called a regression.
- One run on a side cannot separate between-run noise from a change: the row is "inconclusive" (the ratio is shown,
  no verdict, no failure) and says how to fix it.
- Rows whose latency provenance differs (e.g. measured vs predicted) or is emulated are "not comparable".
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from edgekit.bench.stats import bootstrap_medians, percentile_interval
from edgekit.report.records import Report, ReportRow

MIN_RUNS = 2
REPEAT_HINT = "rerun both sides with `edgekit bench ... --repeat 3` (interleaved runs in fresh processes)"


@dataclass
class RowComparison:
    """One matched row. ratio = geometric mean of NEW's run medians / that of BASE's; ci = its Welch t interval
    over runs; p values two-sided (p_welch: Welch t-test on log run-medians; p_adjusted: Holm). n_base/n_new count
    runs; base_run/new_run are the newest run ids of each side, base_runs/new_runs all of them."""

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
    sweep: dict[str, int] = field(default_factory=dict)  # the sweep point (threads / batch / seq_len), if any
    base_runs: list[int] = field(default_factory=list)
    new_runs: list[int] = field(default_factory=list)
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
        return {"schema": "edgekit-compare", "schema_version": 2, "unit": "run", "base": self.base, "new": self.new,
                "fail_above": self.fail_above, "ci_level": self.level, "alpha": self.alpha,
                "verdict": self.verdict(), "regressions": len(self.regressions),
                "rows": [r.to_dict() for r in self.rows], "notes": self.notes}


def bootstrap_ratio_ci(base: np.ndarray, new: np.ndarray, level: float = 0.95, n_resamples: int = 2000,
                       seed: int = 0) -> tuple[float, float]:
    """Percentile-bootstrap interval of median(new) / median(base), each side resampled independently (by the bench
    statistics' bootstrap_medians, base first, one seeded generator)."""
    rng = np.random.default_rng(seed)
    mb, mn = bootstrap_medians(base, n_resamples, rng), bootstrap_medians(new, n_resamples, rng)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratios = mn / mb
    return percentile_interval(ratios[np.isfinite(ratios)], level)


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


MatchKey = tuple[str, str, str, str, tuple[tuple[str, int], ...]]


def _match_key(r: ReportRow) -> MatchKey:
    """(model, format, precision, target, sweep point): runs of one sweep point (threads / batch / seq_len of
    `bench --threads 1,2 ...`) are compared only with runs of the same point."""
    return (*r.key, tuple(sorted((r.sweep or {}).items())))


def _by_key(rows: list[ReportRow]) -> dict[MatchKey, list[ReportRow]]:
    """Rows grouped by match key, oldest run first."""
    out: dict[MatchKey, list[ReportRow]] = {}
    for r in sorted(rows, key=lambda r: r.run_id or 0):
        out.setdefault(_match_key(r), []).append(r)
    return out


def _median(r: ReportRow) -> float | None:
    lat = r.latency
    if lat is None:
        return None
    if lat.samples_ms:
        return float(np.median(lat.samples_ms))
    return lat.p50_ms


def _log_median_var(r: ReportRow) -> float:
    """Sampling variance of log(median) within one run, from its samples (0 without samples): the asymptotic
    variance of a median, (pi/2) var / n, on the log scale."""
    xs = np.asarray(r.latency.samples_ms if r.latency else [], dtype=np.float64)
    xs = xs[np.isfinite(xs) & (xs > 0)]
    if xs.size < 2:
        return 0.0
    return float(math.pi / 2 * np.var(np.log(xs), ddof=1) / xs.size)


@dataclass(frozen=True)
class RunSpread:
    """One side of a row: the log of each run's median latency and the variance used for it."""

    logs: np.ndarray
    var: float  # variance of one run's log-median: between-run, floored by the within-run sampling variance

    @classmethod
    def of(cls, rows: list[ReportRow]) -> RunSpread:
        logs = np.log(np.asarray([_median(r) for r in rows], dtype=np.float64))
        between = float(np.var(logs, ddof=1)) if logs.size > 1 else 0.0
        within = max((_log_median_var(r) for r in rows), default=0.0)
        return cls(logs, max(between, within))


def welch_log_ratio(base: RunSpread, new: RunSpread, level: float) -> tuple[float, tuple[float, float], float]:
    """Ratio exp(mean log new - mean log base), its Welch t interval at `level`, and the two-sided p-value."""
    from scipy import stats

    d = float(new.logs.mean() - base.logs.mean())
    vb, vn = base.var / base.logs.size, new.var / new.logs.size
    se = math.sqrt(vb + vn)
    if se == 0:
        return math.exp(d), (math.exp(d), math.exp(d)), 0.0 if d else 1.0
    df_den = (vb**2 / (base.logs.size - 1) if base.logs.size > 1 else 0.0) + \
        (vn**2 / (new.logs.size - 1) if new.logs.size > 1 else 0.0)
    df = (vb + vn) ** 2 / df_den if df_den > 0 else float(base.logs.size + new.logs.size - 2)
    t = float(stats.t.ppf(0.5 + level / 2, df))
    p = float(2 * stats.t.sf(abs(d) / se, df))
    return math.exp(d), (math.exp(d - t * se), math.exp(d + t * se)), p


def _status_verdict(rc: RowComparison, b: list[ReportRow], n: list[ReportRow]) -> bool:
    """Set broken / fixed / failed-in-both from run statuses; True when the row is decided by them."""
    b_bad = [r for r in b if r.status != "ok"]
    n_bad = [r for r in n if r.status != "ok"]
    if not n_bad and not b_bad:
        return False
    if n_bad and not b_bad:
        rc.verdict, rc.regression = "broken", True
        rc.note = (f"{len(n_bad)} of {len(n)} NEW run(s) {n_bad[-1].status}: "
                   f"{n_bad[-1].error or 'no reason recorded'}")
    elif b_bad and not n_bad:
        rc.verdict, rc.note = "fixed", f"BASE run {b_bad[-1].status}"
    else:
        rc.verdict, rc.note = "failed in both", f"BASE {b_bad[-1].status}, NEW {n_bad[-1].status}"
    return True


def compare_reports(base: Report, new: Report, *, fail_above: float = 0.05, level: float = 0.95,
                    alpha: float = 0.05, n_resamples: int = 2000, seed: int = 0, base_name: str = "BASE",
                    new_name: str = "NEW") -> Comparison:
    """Match the two reports' rows and judge each change over runs (see the module docstring for the rules).
    `n_resamples` and `seed` are kept for callers of the sample-level method (bootstrap_ratio_ci); the run-level
    Welch interval needs no resampling."""
    if not 0 < level < 1 or not 0 < alpha < 1:
        raise ValueError("level and alpha must lie in (0, 1)")
    validate_report(base, base_name)
    validate_report(new, new_name)
    b_rows, n_rows = _by_key(base.rows), _by_key(new.rows)
    notes: list[str] = []
    out: list[RowComparison] = []
    tested: list[tuple[RowComparison, float]] = []
    for key in sorted(set(b_rows) | set(n_rows)):
        model, fmt, prec, target, point = key
        rc = RowComparison(model=model, format=fmt, precision=prec, target=target, verdict="no samples",
                           sweep=dict(point))
        out.append(rc)
        b, n = b_rows.get(key, []), n_rows.get(key, [])
        rc.base_runs = [r.run_id for r in b if r.run_id is not None]
        rc.new_runs = [r.run_id for r in n if r.run_id is not None]
        rc.base_run = b[-1].run_id if b else None
        rc.new_run = n[-1].run_id if n else None
        if not b or not n:
            rc.verdict = "only in new" if not b else "only in base"
            continue
        if _status_verdict(rc, b, n):
            continue
        provs = {r.latency.provenance if r.latency else None for r in b + n}
        bp = b[-1].latency.provenance if b[-1].latency else None
        np_ = n[-1].latency.provenance if n[-1].latency else None
        rc.provenance = provs.pop() if len(provs) == 1 else f"{bp} vs {np_}"
        if rc.provenance != bp or bp == "emulated":
            rc.verdict = "not comparable"
            rc.note = ("emulated timings are not real latencies" if rc.provenance == "emulated" else
                       f"latency provenance differs ({rc.provenance})")
            continue
        usable_b = [r for r in b if (_median(r) or 0) > 0]
        usable_n = [r for r in n if (_median(r) or 0) > 0]
        rc.n_base, rc.n_new = len(usable_b), len(usable_n)
        if not usable_b or not usable_n:
            rc.verdict, rc.note = "no samples", "a side has no latency figure"
            continue
        sb, sn = RunSpread.of(usable_b), RunSpread.of(usable_n)
        rc.base_median_ms = float(np.exp(sb.logs.mean()))
        rc.new_median_ms = float(np.exp(sn.logs.mean()))
        rc.ratio = rc.new_median_ms / rc.base_median_ms
        noisy = [f"{side}: {', '.join(sorted({w.split(':')[0] for r in rs for w in r.warnings}))}"
                 for side, rs in (("BASE", usable_b), ("NEW", usable_n)) if any(r.warnings for r in rs)]
        noise_note = "noisy measurement (" + "; ".join(noisy) + ")" if noisy else ""
        if len(usable_b) < MIN_RUNS or len(usable_n) < MIN_RUNS:
            rc.verdict = "inconclusive"
            rc.note = "; ".join(filter(None, (
                f"{rc.n_base} run(s) vs {rc.n_new}: one run per side cannot tell between-run noise from a change "
                f"— {REPEAT_HINT}", noise_note)))
            continue
        rc.note = noise_note
        rc.ratio, rc.ci, rc.p_welch = welch_log_ratio(sb, sn, level)
        tested.append((rc, rc.p_welch))
    for (rc, _p), adj in zip(tested, holm([p for _, p in tested]), strict=True):
        rc.p_adjusted = adj
        assert rc.ci is not None and rc.ratio is not None
        lo, hi = rc.ci
        significant = adj < alpha
        if significant and lo > 1.0:
            rc.verdict = "slower"
            rc.regression = lo > 1.0 + fail_above
            if not rc.regression and rc.ratio - 1 > fail_above:
                rc.note = "; ".join(filter(None, (f"slower by {rc.ratio - 1:+.1%}, but the CI reaches {lo - 1:+.1%}: "
                                                  f"not confidently beyond {fail_above:.0%}", rc.note)))
        elif significant and hi < 1.0:
            rc.verdict = "faster"
        else:
            rc.verdict = "no significant change"
    if any(r.verdict == "inconclusive" for r in out):
        notes.append(f"inconclusive rows have one run on a side: {REPEAT_HINT}")
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


# -- reading: a report's figures must be what the schema says before any arithmetic touches them -------------------

_ROW_TEXT = ("model", "format", "precision", "target", "status")
_LATENCY_FIGURES = ("mean_ms", "std_ms", "min_ms", "max_ms", "p50_ms", "p90_ms", "p95_ms", "p99_ms", "load_ms",
                    "first_ms", "cv")


def _number_problem(value: Any, name: str, minimum: float | None = None, whole: bool = False) -> str | None:
    """What is wrong with a figure that must be a finite number (None = not reported, which is fine)."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or (
            isinstance(value, float) and not math.isfinite(value)):
        return f"{name} is {value!r}, not a finite number"
    if whole and isinstance(value, float) and not value.is_integer():
        return f"{name} is {value!r}, not a whole number"
    if minimum is not None and value < minimum:
        return f"{name} is {value!r}, below {minimum:g}"
    return None


def _latency_problem(lat: Any, where: str) -> str | None:
    if not isinstance(lat.provenance, str):
        return f"{where}.provenance is {lat.provenance!r}, not text"
    checks = [_number_problem(lat.n, f"{where}.n", 0, whole=True),
              *(_number_problem(getattr(lat, f), f"{where}.{f}", 0) for f in _LATENCY_FIGURES),
              _number_problem(lat.ci_level, f"{where}.ci_level", 0),
              _number_problem(lat.calibration_error, f"{where}.calibration_error")]
    if lat.ci_median_ms is not None:
        ci = lat.ci_median_ms
        if not isinstance(ci, list | tuple) or len(ci) != 2:
            return f"{where}.ci_median_ms is {list(ci) if isinstance(ci, tuple) else ci!r}, not [low, high]"
        checks += [_number_problem(x, f"{where}.ci_median_ms[{j}]") for j, x in enumerate(ci)]
    if not isinstance(lat.samples_ms, list):
        return f"{where}.samples_ms is {lat.samples_ms!r}, not a list of latencies"
    checks += [_number_problem(x, f"{where}.samples_ms[{j}]", 0) if x is not None else
               f"{where}.samples_ms[{j}] is null" for j, x in enumerate(lat.samples_ms)]
    return next((c for c in checks if c), None)


def _row_problem(row: ReportRow, where: str) -> str | None:
    for name in _ROW_TEXT:
        if not isinstance(getattr(row, name), str):
            return f"{where}.{name} is {getattr(row, name)!r}, not text"
    if row.run_id is not None and (isinstance(row.run_id, bool) or not isinstance(row.run_id, int)):
        return f"{where}.run_id is {row.run_id!r}, not a whole number"
    if not isinstance(row.warnings, list) or not all(isinstance(w, str) for w in row.warnings):
        return f"{where}.warnings is {row.warnings!r}, not a list of text"
    if row.error is not None and not isinstance(row.error, str):
        return f"{where}.error is {row.error!r}, not text"
    checks = [_number_problem(row.compression_intensity, f"{where}.compression_intensity")]
    if row.latency is not None:
        checks.append(_latency_problem(row.latency, f"{where}.latency"))
    if row.memory is not None:
        checks += [_number_problem(row.memory.peak_rss_bytes, f"{where}.memory.peak_rss_bytes", 0, whole=True),
                   _number_problem(row.memory.model_rss_bytes, f"{where}.memory.model_rss_bytes", whole=True)]
    if row.energy is not None:
        checks += [_number_problem(row.energy.j_per_inference, f"{where}.energy.j_per_inference"),
                   _number_problem(row.energy.error_band_j, f"{where}.energy.error_band_j", 0)]
    return next((c for c in checks if c), None)


def validate_report(report: Report, source: str) -> None:
    """Refuse a report whose rows hold the wrong types (text where a number belongs, NaN, a negative latency, an
    interval that is not [low, high]): one EdgekitError naming `source` (the file, or BASE/NEW) and the field, e.g.
    `rows[3].latency.p50_ms`, before any statistic is computed from it."""
    from edgekit.errors import EdgekitError

    for i, row in enumerate(report.rows):
        problem = _row_problem(row, f"rows[{i}]")
        if problem:
            raise EdgekitError(f"{source}: {problem}",
                               "re-create it with `edgekit report --json`, or correct that field (numbers without "
                               "quotes, null where a figure is missing)")
