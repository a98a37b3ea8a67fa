"""Plots of a Report as base64 PNG (matplotlib's Agg canvas, no pyplot state): latency distribution per artifact
and target, latency vs accuracy with the Pareto front per target, peak memory, energy per inference, and DSI / GG /
CDTR against compression intensity. Every axis that shows latency, memory or energy names the provenance."""

from __future__ import annotations

import base64
import io
from dataclasses import dataclass
from typing import Any

from edgekit.report.fmt import energy_scale
from edgekit.report.records import MetricPoint, Report, ReportRow

MIB = 1024 * 1024
PROV_HATCH = {"measured": "", "emulated": "xx", "predicted": "//", "modeled": ".."}
PROV_COLOR = {"measured": "#2b6cb0", "emulated": "#805ad5", "predicted": "#dd6b20", "modeled": "#38a169"}


@dataclass
class Plot:
    """One figure: id (HTML anchor), title, caption, and the PNG as base64."""

    id: str
    title: str
    caption: str
    png_b64: str
    kind: str


def _figure(width: float, height: float) -> Any:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _png(fig: Any) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return base64.b64encode(buf.getvalue()).decode("ascii")


def _slug(text: str) -> str:
    return "".join(c if c.isalnum() else "-" for c in text.lower()).strip("-")


def _provs(rows: list[ReportRow], attr: str) -> str:
    ps = sorted({getattr(r, attr).provenance for r in rows if getattr(r, attr) is not None})
    return ", ".join(ps) or "?"


def _name(r: ReportRow, models: int) -> str:
    return (f"{r.model} " if models > 1 else "") + r.artifact_label + (f" #{r.run_id}" if r.run_id else "")


def latency_distribution(rows: list[ReportRow], target: str) -> Plot | None:
    """Box plot (with every sample as a dot) of steady-state latencies per artifact on one target."""
    have = [r for r in rows if r.latency is not None and r.latency.samples_ms]
    if not have:
        return None
    have.sort(key=lambda r: (r.model, r.format, r.precision, r.run_id or 0))
    models = len({r.model for r in have})
    fig = _figure(8.5, 1.2 + 0.42 * len(have))
    ax = fig.add_subplot()
    data = [r.latency.samples_ms for r in have]  # type: ignore[union-attr]
    ax.boxplot(data, orientation="horizontal", showfliers=False, widths=0.6,
               medianprops={"color": "#c53030", "linewidth": 2})
    import numpy as np

    rng = np.random.default_rng(0)
    for i, xs in enumerate(data, start=1):
        ax.scatter(xs, i + rng.uniform(-0.18, 0.18, len(xs)), s=4, alpha=0.35, color="#2b6cb0", linewidths=0)
    lo, hi = min(min(d) for d in data), max(max(d) for d in data)
    if lo > 0 and hi / lo > 30:
        from matplotlib.ticker import LogLocator, ScalarFormatter

        ax.set_xscale("log")
        ax.xaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
        ax.xaxis.set_major_formatter(ScalarFormatter())
    ax.set_yticks(range(1, len(have) + 1),
                  [f"{_name(r, models)} ({r.latency.provenance})" for r in have])  # type: ignore[union-attr]
    ax.set_xlabel(f"latency per inference (ms, {_provs(have, 'latency')})")
    ax.grid(axis="x", alpha=0.3)
    ax.set_title(f"Latency distribution on {target}")
    n = sum(len(d) for d in data)
    return Plot(f"latency-{_slug(target)}", f"Latency distribution — {target}",
                f"{len(have)} artifacts, {n} timed runs; box = quartiles, red = median, whiskers = 1.5 IQR, dots = "
                "every run.", _png(fig), "latency")


def pareto_front(points: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """Points not dominated when latency is minimised and accuracy maximised, by increasing latency."""
    front: list[tuple[float, float]] = []
    best = float("-inf")
    for lat, acc in sorted(points, key=lambda p: (p[0], -p[1])):
        if acc > best:
            front.append((lat, acc))
            best = acc
    return front


def latency_vs_accuracy(rows: list[ReportRow], target: str, budgets: dict[str, dict[str, float]]) -> Plot | None:
    """p90 latency vs accuracy (macro-F1) of each artifact on one target, the Pareto front, and the budgets."""
    have = [r for r in rows if r.status == "ok" and r.latency is not None and r.latency.p90_ms is not None
            and r.accuracy is not None and r.accuracy.value is not None]
    if not have:
        return None
    fig = _figure(8.0, 5.0)
    ax = fig.add_subplot()
    pts = []
    for r in have:
        assert r.latency is not None and r.accuracy is not None
        x, y = r.latency.p90_ms, r.accuracy.value
        pts.append((x, y))
        marker = "o" if r.accuracy.scope == "variant" else "s"
        ax.scatter([x], [y], s=50, marker=marker, color=PROV_COLOR.get(r.latency.provenance, "#4a5568"), zorder=3)
        ax.annotate(f"{r.model} {r.artifact_label}", (x, y), textcoords="offset points", xytext=(5, 4), fontsize=8)
    front = pareto_front(pts)  # type: ignore[arg-type]
    if len(front) > 1:
        ax.step([p[0] for p in front], [p[1] for p in front], where="post", color="#c53030", linewidth=1.5,
                label="Pareto front", zorder=2)
    elif front:
        ax.scatter([front[0][0]], [front[0][1]], s=160, facecolors="none", edgecolors="#c53030", label="Pareto front")
    lat_limits = {b["p90_ms"] for m, b in budgets.items() if "p90_ms" in b and any(r.model == m for r in have)}
    acc_limits = {b["macro_f1"] for m, b in budgets.items() if "macro_f1" in b and any(r.model == m for r in have)}
    for v in sorted(lat_limits):
        ax.axvline(v, color="#718096", linestyle="--", linewidth=1, label=f"p90 budget {v:g} ms")
    for v in sorted(acc_limits):
        ax.axhline(v, color="#718096", linestyle=":", linewidth=1, label=f"macro-F1 budget {v:g}")
    ax.set_xlabel(f"p90 latency (ms, {_provs(have, 'latency')})")
    ax.set_ylabel("macro-F1 (circle: this artifact's scores, square: model-level)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="best")
    ax.set_title(f"Latency vs accuracy on {target}")
    return Plot(f"pareto-{_slug(target)}", f"Latency vs accuracy — {target}",
                "Up and to the left is better; the red steps join the artifacts no other beats on both axes.",
                _png(fig), "pareto")


def _bars(rows: list[ReportRow], values: list[float], errors: list[float | None] | None, provs: list[str],
          xlabel: str, title: str) -> Any:
    models = len({r.model for r in rows})
    fig = _figure(8.0, 1.2 + 0.42 * len(rows))
    ax = fig.add_subplot()
    ys = list(range(len(rows)))
    xerr = None
    if errors is not None and any(e is not None for e in errors):
        xerr = [e if e is not None else 0.0 for e in errors]  # no band recorded: no whisker (the bar is the value)
    ax.barh(ys, values, xerr=xerr, capsize=3, color=[PROV_COLOR.get(p, "#4a5568") for p in provs],
            hatch=None, edgecolor="white")
    for bar, p in zip(ax.patches, provs, strict=False):
        bar.set_hatch(PROV_HATCH.get(p, ""))
    ax.set_yticks(ys, [f"{_name(r, models)} @ {r.target} ({p})" for r, p in zip(rows, provs, strict=True)])
    ax.invert_yaxis()
    for y, v in zip(ys, values, strict=True):
        ax.annotate(f"{v:.3g}", (v, y), textcoords="offset points", xytext=(4, -3), fontsize=8)
    ax.margins(x=0.12)  # room for the value labels
    ax.set_xlabel(xlabel)
    ax.grid(axis="x", alpha=0.3)
    ax.set_title(title)
    return fig


def memory_bars(rows: list[ReportRow]) -> Plot | None:
    have = [r for r in rows if r.memory is not None and r.memory.peak_rss_bytes is not None]
    if not have:
        return None
    have.sort(key=lambda r: (r.target, r.model, r.format, r.precision))
    vals = [r.memory.peak_rss_bytes / MIB for r in have]  # type: ignore[union-attr]
    provs = [r.memory.provenance for r in have]  # type: ignore[union-attr]
    fig = _bars(have, vals, None, provs, f"peak RSS during inference (MiB, {_provs(have, 'memory')})",
                "Peak memory per artifact")
    return Plot("memory", "Peak memory", "Resident-set high-water mark of the benchmark process (its own child "
                "process per artifact) during inference.", _png(fig), "memory")


def energy_bars(rows: list[ReportRow]) -> Plot | None:
    have = [r for r in rows if r.energy is not None and r.energy.j_per_inference is not None]
    if not have:
        return None
    have.sort(key=lambda r: (r.target, r.model, r.format, r.precision))
    scale, unit = energy_scale(max(abs(r.energy.j_per_inference) for r in have))  # type: ignore[union-attr]
    vals = [r.energy.j_per_inference * scale for r in have]  # type: ignore[union-attr]
    errs = [r.energy.error_band_j * scale if r.energy.error_band_j is not None else None  # type: ignore[union-attr]
            for r in have]
    provs = [r.energy.provenance for r in have]  # type: ignore[union-attr]
    fig = _bars(have, vals, errs, provs, f"energy per inference above idle ({unit}, {_provs(have, 'energy')})",
                "Energy per inference")
    return Plot("energy", "Energy per inference", "Whiskers: the recorded error band. Hatched bars are modeled "
                "from the target's power profile, not read from a meter.", _png(fig), "energy")


def metrics_vs_compression(points: list[MetricPoint]) -> Plot | None:
    have = [p for p in points if p.compression_intensity is not None]
    if not have:
        return None
    fig = _figure(10.0, 3.6)
    axes = fig.subplots(1, 3)
    models = sorted({p.model for p in have})
    colors = ["#2b6cb0", "#c53030", "#38a169", "#805ad5", "#dd6b20", "#319795", "#d53f8c", "#718096"]
    for ax, (attr, label, ref) in zip(axes, (("dsi", "DSI (specialisation)", 0.0), ("gg", "GG (generalisation gap)",
                                                                                      0.0),
                                             ("cdtr", "CDTR (cross-domain transfer)", 1.0)), strict=True):
        for i, m in enumerate(models):
            pts = sorted((p.compression_intensity, getattr(p, attr), p.variant) for p in have
                         if p.model == m and getattr(p, attr) is not None)
            if not pts:
                continue
            ax.plot([q[0] for q in pts], [q[1] for q in pts], marker="o", color=colors[i % len(colors)], label=m)
        if not ax.lines:
            ax.text(0.5, 0.5, "not defined\n(the model card names no target domain)" if attr in ("dsi", "cdtr")
                    else "no values", transform=ax.transAxes, ha="center", va="center", color="#718096", fontsize=9)
        ax.axhline(ref, color="#a0aec0", linewidth=1, linestyle="--")
        ax.set_xlabel("compression intensity c")
        ax.set_title(label, fontsize=10)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    return Plot("metrics", "Robustness vs compression", "c = 1 − (bits/32)·(1 − sparsity); dashed lines mark "
                "'no change' (DSI 0 = balanced, GG 0 = as general as the reference, CDTR 1 = even transfer).",
                _png(fig), "metrics")


def report_plots(report: Report, budgets: dict[str, dict[str, float]]) -> list[Plot]:
    """Every plot the report's data supports, in reading order."""
    out: list[Plot | None] = []
    targets = sorted({r.target for r in report.rows})
    for t in targets:
        out.append(latency_distribution([r for r in report.rows if r.target == t], t))
    for t in targets:
        out.append(latency_vs_accuracy([r for r in report.rows if r.target == t], t, budgets))
    out.append(memory_bars(report.rows))
    out.append(energy_bars(report.rows))
    out.append(metrics_vs_compression(report.metrics))
    return [p for p in out if p is not None]
