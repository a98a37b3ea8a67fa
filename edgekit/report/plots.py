"""Plots of a Report as base64 PNG (matplotlib's Agg canvas, no pyplot state): latency distribution per artifact
and target, latency vs accuracy with the Pareto front per target, peak memory, energy per inference, and DSI / GG /
CDTR against compression intensity. Every axis that shows latency, memory or energy names the provenance."""

from __future__ import annotations

import base64
import io
from dataclasses import dataclass, field
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
    figure: Any = field(default=None, repr=False, compare=False)  # the matplotlib Figure (tests measure it)



def _shared_legend(fig: Any, axes: Any) -> None:
    """One legend for all panels, outside the data on the right: each label once, from the first panel showing it."""
    handles: dict[str, Any] = {}
    for ax in axes:
        for h, lab in zip(*ax.get_legend_handles_labels(), strict=True):
            handles.setdefault(lab, h)
    if handles:
        fig.legend(list(handles.values()), list(handles), loc="outside right upper", fontsize=8)

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


def log_axis(ax: Any, which: str, lo: float, hi: float) -> None:
    """A log scale whose tick labels cannot collide: labelled major ticks only (1-2-5 within about 1.5 decades,
    then powers of ten, thinned to at most 6), plain numbers ("0.5", "20", "1000"), no labels on minor ticks."""
    import math

    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    decades = math.log10(hi / lo) if lo > 0 and hi > lo else 1.0
    subs = (1.0, 2.0, 5.0) if decades <= 1.5 else (1.0, 3.0) if decades <= 2.5 else (1.0,)
    (ax.set_xscale if which == "x" else ax.set_yscale)("log")
    axis = ax.xaxis if which == "x" else ax.yaxis
    axis.set_major_locator(LogLocator(base=10, subs=subs, numticks=6))
    axis.set_major_formatter(FuncFormatter(lambda v, _pos: f"{v:g}"))
    axis.set_minor_formatter(NullFormatter())


def value_axis(ax: Any, which: str, values: list[float]) -> None:
    """Log scale (log_axis) when the values span more than 30x, else linear with at most 6 ticks."""
    from matplotlib.ticker import MaxNLocator

    pos = [v for v in values if v > 0]
    lo, hi = (min(pos), max(pos)) if pos else (1.0, 1.0)
    if pos and len(pos) == len(values) and hi / lo > 30:
        log_axis(ax, which, lo, hi)
    else:
        (ax.xaxis if which == "x" else ax.yaxis).set_major_locator(MaxNLocator(nbins=6))


def _by_provenance(rows: list[ReportRow]) -> list[tuple[str, list[ReportRow]]]:
    """Rows split by latency provenance (measured, emulated, predicted, ...): each gets its own panel, so emulated
    seconds and measured milliseconds never share one axis."""
    order = {p: i for i, p in enumerate(("measured", "emulated", "predicted"))}
    provs = sorted({r.latency.provenance for r in rows if r.latency}, key=lambda p: (order.get(p, 9), p))
    return [(p, [r for r in rows if r.latency and r.latency.provenance == p]) for p in provs]


def latency_distribution(rows: list[ReportRow], target: str) -> Plot | None:
    """Box plot (with every sample as a dot) of steady-state latencies per artifact on one target, fastest at the
    top; one panel per latency provenance, each with its own axis."""
    have = [r for r in rows if r.latency is not None and r.latency.samples_ms]
    if not have:
        return None
    import numpy as np

    have.sort(key=lambda r: (float(np.median(r.latency.samples_ms)), r.model, r.format, r.precision,  # type: ignore[union-attr]
                             r.run_id or 0))
    models = len({r.model for r in have})
    groups = _by_provenance(have)
    fig = _figure(8.5, 0.9 * len(groups) + 0.8 + 0.42 * len(have))
    axes = fig.subplots(len(groups), 1, squeeze=False,
                        gridspec_kw={"height_ratios": [len(g) + 1 for _p, g in groups]})[:, 0]
    rng = np.random.default_rng(0)
    for ax, (prov, group) in zip(axes, groups, strict=True):
        data = [r.latency.samples_ms for r in group]  # type: ignore[union-attr]
        ax.boxplot(data, orientation="horizontal", showfliers=False, widths=0.6,
                   medianprops={"color": "#c53030", "linewidth": 2})
        for i, xs in enumerate(data, start=1):
            ax.scatter(xs, i + rng.uniform(-0.18, 0.18, len(xs)), s=4, alpha=0.35, color=PROV_COLOR.get(prov, "#2b6cb0"),
                       linewidths=0)
        value_axis(ax, "x", [x for d in data for x in d])
        ax.set_yticks(range(1, len(group) + 1), [_name(r, models) for r in group])
        ax.invert_yaxis()  # fastest on top
        ax.set_xlabel(f"latency per inference (ms, {prov})")
        ax.grid(axis="x", alpha=0.3)
        ax.set_title(f"{prov} on {target}", fontsize=10, loc="left")
    fig.suptitle(f"Latency distribution on {target}")
    n = sum(len(r.latency.samples_ms) for r in have)  # type: ignore[union-attr]
    return Plot(f"latency-{_slug(target)}", f"Latency distribution — {target}",
                f"{len(have)} runs, {n} timed runs; fastest first; box = quartiles, red = median, whiskers = 1.5 IQR, "
                "dots = every run" + ("; one panel per provenance, each on its own axis." if len(groups) > 1 else "."),
                _png(fig), "latency", fig)


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
    """p90 latency vs accuracy (macro-F1) of each artifact on one target, the Pareto front, and the budgets; one
    panel per latency provenance (each with its own latency axis), the legend outside the data."""
    have = [r for r in rows if r.status == "ok" and r.latency is not None and r.latency.p90_ms is not None
            and r.accuracy is not None and r.accuracy.value is not None]
    if not have:
        return None
    groups = _by_provenance(have)
    fig = _figure(4.0 + 4.2 * len(groups), 5.0)
    axes = fig.subplots(1, len(groups), squeeze=False, sharey=True)[0]
    lat_limits = {b["p90_ms"] for m, b in budgets.items() if "p90_ms" in b and any(r.model == m for r in have)}
    acc_limits = {b["macro_f1"] for m, b in budgets.items() if "macro_f1" in b and any(r.model == m for r in have)}
    for ax, (prov, group) in zip(axes, groups, strict=True):
        pts = []
        for r in group:
            assert r.latency is not None and r.accuracy is not None
            x, y = r.latency.p90_ms, r.accuracy.value
            pts.append((x, y))
            marker = "o" if r.accuracy.scope == "variant" else "s"
            ax.scatter([x], [y], s=50, marker=marker, color=PROV_COLOR.get(prov, "#4a5568"), zorder=3)
            ax.annotate(f"{r.model} {r.artifact_label}", (x, y), textcoords="offset points", xytext=(5, 4),
                        fontsize=8)
        front = pareto_front(pts)  # type: ignore[arg-type]
        if len(front) > 1:
            ax.step([p[0] for p in front], [p[1] for p in front], where="post", color="#c53030", linewidth=1.5,
                    label="Pareto front", zorder=2)
        elif front:
            ax.scatter([front[0][0]], [front[0][1]], s=160, facecolors="none", edgecolors="#c53030",
                       label="Pareto front")
        if prov != "emulated":  # emulated timings are not checked against latency budgets
            for v in sorted(lat_limits):
                ax.axvline(v, color="#718096", linestyle="--", linewidth=1, label=f"p90 budget {v:g} ms")
        for v in sorted(acc_limits):
            ax.axhline(v, color="#718096", linestyle=":", linewidth=1, label=f"macro-F1 budget {v:g}")
        value_axis(ax, "x", [p[0] for p in pts] + ([] if prov == "emulated" else sorted(lat_limits)))
        ax.set_xlabel(f"p90 latency (ms, {prov})")
        ax.grid(alpha=0.3)
        ax.set_title(f"{prov} on {target}", fontsize=10, loc="left")
        ax.margins(x=0.15)
    axes[0].set_ylabel("macro-F1 (circle: this artifact's scores, square: model-level)")
    _shared_legend(fig, axes)
    fig.suptitle(f"Latency vs accuracy on {target}")
    return Plot(f"pareto-{_slug(target)}", f"Latency vs accuracy — {target}",
                "Up and to the left is better; the red steps join the artifacts no other beats on both axes"
                + ("; one panel per provenance." if len(groups) > 1 else "."), _png(fig), "pareto", fig)


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
                "process per artifact) during inference.", _png(fig), "memory", fig)


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
                "from the target's power profile, not read from a meter.", _png(fig), "energy", fig)


def metric_lines(points: list[MetricPoint], attr: str) -> list[tuple[str, list[tuple[float, float]]]]:
    """The lines of one DSI / GG / CDTR panel: one per model and artifact format (variants "onnx/int8", "onnx/fp16"
    share the line "onnx"), each starting at its model's reference and sorted by compression intensity c. Variants
    at the same c on one line (int8 and int8-static) are joined at their mean, so a line never doubles back."""
    out = []
    for m in sorted({p.model for p in points}):
        mine = [p for p in points if p.model == m and p.compression_intensity is not None
                and getattr(p, attr) is not None]
        refs = [p for p in mine if "reference" in p.variant]
        families = sorted({p.variant.split("/")[0] for p in mine if p not in refs and "/" in p.variant})
        lines = [(f"{m} {f}", [p for p in mine if p.variant.split("/")[0] == f and "/" in p.variant] + refs)
                 for f in families]
        loose = [p for p in mine if p not in refs and "/" not in p.variant]  # study variants: named models
        if loose or not lines:
            lines.append((m, loose + refs))
        for label, pts in lines:
            by_c: dict[float, list[float]] = {}
            for p in pts:
                by_c.setdefault(float(p.compression_intensity), []).append(float(getattr(p, attr)))  # type: ignore[arg-type]
            out.append((label, [(c, sum(v) / len(v)) for c, v in sorted(by_c.items())]))
    return [(label, xy) for label, xy in out if xy]


def metrics_vs_compression(points: list[MetricPoint]) -> Plot | None:
    have = [p for p in points if p.compression_intensity is not None]
    if not have:
        return None
    fig = _figure(11.5, 3.6)
    axes = fig.subplots(1, 3)
    colors = ["#2b6cb0", "#c53030", "#38a169", "#805ad5", "#dd6b20", "#319795", "#d53f8c", "#718096"]
    labels = sorted({label for attr in ("dsi", "gg", "cdtr") for label, _xy in metric_lines(have, attr)})
    color = {label: colors[i % len(colors)] for i, label in enumerate(labels)}
    for ax, (attr, label, ref) in zip(axes, (("dsi", "DSI (specialisation)", 0.0), ("gg", "GG (generalisation gap)",
                                                                                      0.0),
                                             ("cdtr", "CDTR (cross-domain transfer)", 1.0)), strict=True):
        for name, xy in metric_lines(have, attr):
            ax.plot([q[0] for q in xy], [q[1] for q in xy], marker="o", color=color[name], label=name)
        if not ax.lines:
            ax.text(0.5, 0.5, "not defined\n(the model card names no target domain)" if attr in ("dsi", "cdtr")
                    else "no values", transform=ax.transAxes, ha="center", va="center", color="#718096", fontsize=9)
        ax.axhline(ref, color="#a0aec0", linewidth=1, linestyle="--")
        ax.set_xlabel("compression intensity c")
        ax.set_title(label, fontsize=10)
        ax.grid(alpha=0.3)
    _shared_legend(fig, axes)
    return Plot("metrics", "Robustness vs compression", "c = 1 − (bits/32)·(1 − sparsity); one line per model and "
                "format, from its reference, in order of c; dashed lines mark 'no change' (DSI 0 = balanced, GG 0 = "
                "as general as the reference, CDTR 1 = even transfer).", _png(fig), "metrics", fig)


def sweep_plot(model: str, axis: str, series: list[Any]) -> Plot:
    """p50 latency of each artifact against one swept value (threads, batch size or sequence length): a line through
    the medians, a dot per run; log axes where the values span more than 30x, the legend outside the data."""
    from matplotlib.ticker import FixedLocator, FuncFormatter, NullFormatter, NullLocator

    from edgekit.report.derived import AXIS_LABEL

    fig = _figure(8.5, 4.2)
    ax = fig.add_subplot()
    colors = ["#2b6cb0", "#c53030", "#38a169", "#805ad5", "#dd6b20", "#319795", "#d53f8c", "#718096"]
    xs_all: list[int] = []
    ys_all: list[float] = []
    for i, s in enumerate(series):
        med = s.medians()
        c = colors[i % len(colors)]
        ax.plot([m[0] for m in med], [m[1] for m in med], marker="o", color=c, label=f"{s.label} ({s.provenance})")
        for v, ps in s.points.items():
            ax.scatter([v] * len(ps), ps, s=12, color=c, alpha=0.45, linewidths=0)
            xs_all.append(v)
            ys_all += ps
    values = sorted(set(xs_all))
    if values[-1] / values[0] >= 4:
        ax.set_xscale("log", base=2)
    ax.xaxis.set_major_locator(FixedLocator(values))  # a tick at each swept value, labelled as the number
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _pos: f"{v:g}"))
    ax.xaxis.set_minor_locator(NullLocator())
    ax.xaxis.set_minor_formatter(NullFormatter())
    value_axis(ax, "y", ys_all)
    provs = sorted({s.provenance for s in series})
    ax.set_xlabel(AXIS_LABEL.get(axis, axis))
    ax.set_ylabel(f"p50 latency (ms, {', '.join(provs)})")
    ax.grid(alpha=0.3)
    ax.set_title(f"{model}: latency vs {AXIS_LABEL.get(axis, axis)}")
    fig.legend(loc="outside right upper", fontsize=8)
    return Plot(f"sweep-{_slug(model)}-{axis.replace('_', '-')}", f"{model} — latency vs {AXIS_LABEL.get(axis, axis)}",
                "p50 per run (dots) and the median over repeated runs (line), one line per artifact and target.",
                _png(fig), "sweep", fig)


def report_plots(report: Report, budgets: dict[str, dict[str, float]]) -> list[Plot]:
    """Every plot the report's data supports, in reading order."""
    out: list[Plot | None] = []
    targets = sorted({r.target for r in report.rows})
    for t in targets:
        out.append(latency_distribution([r for r in report.rows if r.target == t], t))
    for t in targets:
        out.append(latency_vs_accuracy([r for r in report.rows if r.target == t], t, budgets))
    from edgekit.report.derived import SWEEP_AXES, sweep_series

    series = sweep_series(report.rows)
    for model in sorted({s.model for s in series}):
        for axis in SWEEP_AXES:
            mine = [s for s in series if s.model == model and s.axis == axis]
            if mine:
                out.append(sweep_plot(model, axis, mine))
    out.append(memory_bars(report.rows))
    out.append(energy_bars(report.rows))
    out.append(metrics_vs_compression(report.metrics))
    return [p for p in out if p is not None]
