"""The HTML view of a Report: one self-contained file (CSS, a little JavaScript and every plot inlined as base64
PNG; nothing is fetched from the network), rendered with jinja2 from templates/report.html.j2."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from edgekit.report import derived, fmt
from edgekit.report.markdown import PROVENANCE_LEGEND, fastest_lines, title
from edgekit.report.plots import report_plots
from edgekit.report.records import Report, ReportRow

TEMPLATES = Path(__file__).parent / "templates"


def _fig(value_text: str, provenance: str | None, suffix: str | None = None) -> dict[str, Any]:
    """A figure cell: the number and its provenance chip (no chip for a missing figure). `suffix` is the label text
    the plain-text form ends with (default " (provenance)"); the chip shows it without brackets."""
    if value_text == fmt.MISSING:
        return {"text": fmt.MISSING, "prov": None, "label": None}
    suffix = fmt.tag(provenance) if suffix is None else suffix
    text = value_text[: -len(suffix)] if suffix and value_text.endswith(suffix) else value_text
    return {"text": text, "prov": provenance, "label": suffix.strip()[1:-1] if suffix else provenance}


def _row_ctx(report: Report, r: ReportRow) -> dict[str, Any]:
    lat = r.latency
    lp = lat.provenance if lat else None
    checks = report.checks_for(r)
    budget = [c for c in checks if c.kind == "budget"]
    bstate = ("fail" if any(c.status in ("fail", "error") for c in budget) else
              "pass" if any(c.status == "pass" for c in budget) else "skipped" if budget else None)
    return {
        "row": r, "latency": _fig(fmt.latency_triple(lat), lp, fmt.latency_tag(lat) if lat else None), "ci": fmt.ci(lat),
        "load": _fig(fmt.ms(lat.load_ms if lat else None, lp), lp),
        "first": _fig(fmt.ms(lat.first_ms if lat else None, lp), lp),
        "memory": _fig(fmt.memory(r.memory), r.memory.provenance if r.memory else None),
        "energy": _fig(fmt.energy(r.energy), r.energy.provenance if r.energy else None),
        "parity": r.parity.verdict, "parity_text": fmt.parity(r)[2:], "accuracy": fmt.accuracy(r),
        "budget_state": bstate, "budget_text": fmt.budgets_cell(checks)[2:] if budget else fmt.MISSING,
        "p50_sort": lat.p50_ms if lat and lat.p50_ms is not None else "",
        "threads": derived.threads_text(r), "sweep": derived.sweep_text(r),
        "speedup": derived.speedup_text(report.rows, r), "speedup_sort": derived.speedup(report.rows, r) or "",
        "headroom": derived.headroom(report, r), "size": derived.size_text(r), "size_sort": r.size_bytes or "",
        "accuracy_delta": derived.accuracy_delta_text(report.rows, r),
        "top1": fmt.accuracy(r, "top1"), "top1_delta": derived.accuracy_delta_text(report.rows, r, "top1"),
        "netron": derived.NETRON_URL if r.artifact_path else None, "netron_title": derived.netron_title(r),
        "file": (r.artifact_path or "").replace("\\", "/").rsplit("/", 1)[-1],
    }


def render_html(report: Report) -> str:
    """The whole report as one HTML page."""
    import jinja2

    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(TEMPLATES)), autoescape=True,
                             undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    summary = report.summary()
    models = []
    for model in sorted({r.model for r in report.rows}):
        rows = derived.ordered([r for r in report.rows if r.model == model])  # fastest ok first, skipped last
        models.append({"name": model, "rows": [_row_ctx(report, r) for r in rows],
                       "budgets": report.budgets.get(model, {}),
                       "swept": any("batch" in r.sweep or "seq_len" in r.sweep for r in rows),
                       "top1": derived.has_top1(rows)})
    order = {"fail": 0, "error": 0, "skipped": 1, "pass": 2}
    checks = sorted(report.checks, key=lambda c: (order.get(c.status, 3), c.model, c.name))
    ids = [r.run_id for r in report.rows if r.run_id is not None]
    envs: dict[tuple, None] = {}
    for r in report.rows:
        envs.setdefault((r.target, r.env.get("cpu_model"), r.runtime, r.runtime_version, r.env.get("threads"),
                         r.env.get("governor")), None)
    return env.get_template("report.html.j2").render(
        title=title(report), report=report, summary=summary, models=models, checks=checks,
        plots=report_plots(report, report.budgets), fastest=[line[2:].replace("**", "") for line in fastest_lines(report)],
        legend=PROVENANCE_LEGEND, span=(f"runs #{min(ids)}–#{max(ids)}" if ids else "no runs"),
        bad_rows=[r for r in report.rows if r.status != "ok"], warned=[r for r in report.rows if r.warnings],
        envs=list(envs), fmt=fmt, badge=fmt.BADGE,
    )
