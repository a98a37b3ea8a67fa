"""Figures the report derives from its rows, shared by the Markdown and HTML views: the order rows are shown in
(fastest ok artifact first, failed and skipped last), speed-up and accuracy change against the fp32 twin, headroom
to each latency budget, sweep series (latency against a swept value) and the Netron link."""

from __future__ import annotations

import math
from dataclasses import dataclass
from statistics import median

from edgekit.report import fmt
from edgekit.report.records import Report, ReportRow

NETRON_URL = "https://netron.app"
SWEEP_AXES = ("threads", "batch", "seq_len")
AXIS_LABEL = {"threads": "threads", "batch": "batch size", "seq_len": "sequence length"}
_STATUS_RANK = {"ok": 0, "skipped": 2}


def _p50(r: ReportRow) -> float | None:
    return r.latency.p50_ms if r.status == "ok" and r.latency is not None else None


def row_order(r: ReportRow) -> tuple:
    """Sort key: ok runs first, fastest first (p50) within a target; failed runs next, skipped runs last."""
    p50 = _p50(r)
    return (_STATUS_RANK.get(r.status, 1), r.target, p50 if p50 is not None else math.inf, r.format, r.precision,
            tuple(sorted(r.sweep.items())), r.run_id or 0)


def ordered(rows: list[ReportRow]) -> list[ReportRow]:
    return sorted(rows, key=row_order)


def _twins(rows: list[ReportRow], r: ReportRow) -> list[ReportRow]:
    """The fp32 runs of the same model, format, target and sweep point (same latency provenance), ok."""
    return [t for t in rows if t.model == r.model and t.format == r.format and t.target == r.target
            and t.precision == "fp32" and t.sweep == r.sweep and t.status == "ok" and _p50(t) is not None
            and r.latency is not None and t.latency is not None and t.latency.provenance == r.latency.provenance]


def speedup(rows: list[ReportRow], r: ReportRow) -> float | None:
    """p50 of the fp32 twin (median over its runs) / p50 of this run; None without both."""
    p50 = _p50(r)
    twins = _twins(rows, r)
    if p50 is None or p50 <= 0 or not twins:
        return None
    return median(_p50(t) for t in twins) / p50  # type: ignore[type-var]


def speedup_text(rows: list[ReportRow], r: ReportRow) -> str:
    s = speedup(rows, r)
    if s is None:
        return fmt.MISSING
    return f"{s:.2f}× (baseline)" if r.precision == "fp32" else f"{s:.2f}×"


ACCURACY_FIGURES = ("accuracy", "top1")  # the ReportRow fields that hold scores: macro-F1, top-1


def accuracy_delta(rows: list[ReportRow], r: ReportRow, figure: str = "accuracy") -> float | None:
    """This artifact's own score minus the fp32 reference's (the fp32 twin's own score, else the model's PyTorch
    fp32 evaluation); None unless this row was evaluated itself (scope variant) and a reference exists.
    `figure`: which score, "accuracy" (macro-F1) or "top1"."""
    if figure not in ACCURACY_FIGURES:
        raise ValueError(f"figure must be one of {ACCURACY_FIGURES}, not {figure!r}")

    def score(t: ReportRow, scope: str) -> float | None:
        acc = getattr(t, figure)
        return acc.value if acc is not None and acc.scope == scope else None

    own = score(r, "variant")
    if own is None:
        return None
    refs = [v for t in rows if t.model == r.model and t.format == r.format and t.precision == "fp32"
            and (v := score(t, "variant")) is not None]
    if not refs or r.precision == "fp32":
        refs = [v for t in rows if t.model == r.model and (v := score(t, "model")) is not None]
    return own - refs[0] if refs else None


def accuracy_delta_text(rows: list[ReportRow], r: ReportRow, figure: str = "accuracy") -> str:
    d = accuracy_delta(rows, r, figure)
    return fmt.MISSING if d is None else f"{d:+.3f}"


def has_top1(rows: list[ReportRow]) -> bool:
    """Whether any row has a top-1 figure: the views show the top-1 columns only then."""
    return any(r.top1 is not None and r.top1.value is not None for r in rows)


@dataclass
class Headroom:
    budget: str  # the budget key, e.g. p90_ms
    limit: float
    value: float
    provenance: str | None

    @property
    def ms(self) -> float:
        return self.limit - self.value

    @property
    def share(self) -> float:
        return self.ms / self.limit if self.limit else 0.0

    def text(self) -> str:
        name = self.budget.removesuffix("_ms")
        if self.ms >= 0:
            return f"{name}: {fmt.num(self.ms)} ms ({self.share:.0%}) left"
        return f"{name}: {fmt.num(-self.ms)} ms ({-self.share:.0%}) over"


def headroom(report: Report, r: ReportRow) -> list[Headroom]:
    """Distance to each latency budget checked on this run (limit − value, ms); negative = over budget."""
    from edgekit.report.budgets import LATENCY_BUDGETS

    return [Headroom(c.budget or c.name, float(c.limit), float(c.value), c.provenance) for c in report.checks_for(r)
            if c.kind == "budget" and c.budget in LATENCY_BUDGETS and c.value is not None and c.limit]


def headroom_text(report: Report, r: ReportRow) -> str:
    return "; ".join(h.text() for h in headroom(report, r)) or fmt.MISSING


def size_text(r: ReportRow) -> str:
    if r.size_bytes is None:
        return fmt.MISSING
    mib = r.size_bytes / 2**20
    return f"{mib:.2f} MiB" if mib < 10 else f"{mib:.1f} MiB"


def threads_text(r: ReportRow) -> str:
    return str(r.threads) if r.threads is not None else fmt.MISSING


def sweep_text(r: ReportRow) -> str:
    """The non-thread sweep values of a run, e.g. "batch 8, seq 128" (threads have their own column)."""
    names = {"batch": "batch", "seq_len": "seq"}
    return ", ".join(f"{names[k]} {r.sweep[k]}" for k in ("batch", "seq_len") if k in r.sweep) or fmt.MISSING


# -- sweeps ----------------------------------------------------------------------------------------------------------


@dataclass
class SweepSeries:
    """Latency of one artifact (model, format/precision, target, the other axes fixed) against one swept axis.
    `points`: value -> the p50 of every ok run at that value (several with --repeat)."""

    model: str
    axis: str
    label: str
    provenance: str
    points: dict[int, list[float]]

    def medians(self) -> list[tuple[int, float]]:
        return [(v, median(ps)) for v, ps in sorted(self.points.items())]


def swept_axes(rows: list[ReportRow]) -> list[str]:
    """The axes that take at least two values among these rows."""
    return [a for a in SWEEP_AXES if len({r.sweep[a] for r in rows if a in r.sweep}) >= 2]


def sweep_series(rows: list[ReportRow]) -> list[SweepSeries]:
    """For each model and each axis swept among its ok runs, one series per artifact and fixed other axes."""
    out: list[SweepSeries] = []
    for model in sorted({r.model for r in rows}):
        mrows = [r for r in rows if r.model == model and r.status == "ok" and _p50(r) is not None]
        for axis in swept_axes(mrows):
            series: dict[tuple, SweepSeries] = {}
            for r in mrows:
                if axis not in r.sweep:
                    continue
                others = tuple((k, v) for k, v in sorted(r.sweep.items()) if k != axis)
                prov = r.latency.provenance if r.latency else "?"
                key = (r.format, r.precision, r.target, prov, others)
                label = f"{r.artifact_label} @ {r.target}" + "".join(f", {k.replace('_', '-')} {v}" for k, v in others)
                s = series.setdefault(key, SweepSeries(model, axis, label, prov, {}))
                s.points.setdefault(r.sweep[axis], []).append(_p50(r))  # type: ignore[arg-type]
            out += [s for _k, s in sorted(series.items(), key=lambda kv: kv[1].label) if len(s.points) >= 2]
    return out


def netron_title(r: ReportRow) -> str:
    """What the Netron link says: Netron runs in the browser, the file is opened from this machine, never uploaded."""
    return (f"Open netron.app, then open {r.artifact_path or 'the artifact file'} there (File > Open): Netron reads "
            "it inside your browser; edgekit uploads nothing")
