"""The Markdown view of a Report: a headline, the budget/parity checks, one table per model (rows: target x format x
precision) with the provenance label beside every latency, memory and energy figure. Fit to paste into a pull
request (GitHub-flavoured tables, no HTML)."""

from __future__ import annotations

from collections.abc import Iterable

from edgekit.report import fmt
from edgekit.report.records import Report, ReportRow

PROVENANCE_LEGEND = ("measured = timed/read on the real target · emulated = ran under an instruction-set emulator "
                     "(result real, timing not) · predicted = cost model · modeled = energy from a power model, "
                     "not a meter")


def cell(text: object) -> str:
    """Table-safe cell text: pipes escaped, newlines folded."""
    return str(text).replace("|", "\\|").replace("\n", " ").strip() or fmt.MISSING


def table(head: list[str], rows: Iterable[list[object]]) -> list[str]:
    out = ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
    out += ["| " + " | ".join(cell(c) for c in r) + " |" for r in rows]
    return out


def title(report: Report) -> str:
    models = sorted({r.model for r in report.rows})
    targets = sorted({r.target for r in report.rows})
    return f"edgekit report: {', '.join(models)} on {', '.join(targets)}"


def headline(report: Report) -> str:
    s = report.summary()
    runs = ", ".join(f"{n} {st}" for st, n in sorted(s["runs_by_status"].items()))
    failed = s["checks"]["fail"] + s["checks"]["error"]
    verdict = f"❌ {failed} check(s) failed" if failed else "✅ all checks pass"
    b, p = s["budgets"], s["parity"]
    return (f"**{verdict}** · {s['runs']} runs ({runs}) · budgets: {b['pass']} ✅ {b['fail'] + b['error']} ❌ "
            f"{b['skipped']} ⚪ · parity: {p['pass']} ✅ {p['fail'] + p['error']} ❌ {p['skipped']} ⚪")


def fastest_lines(report: Report) -> list[str]:
    """The fastest ok artifact per target (by p50), with its label."""
    out = []
    for target in sorted({r.target for r in report.rows}):
        ok = [r for r in report.rows if r.target == target and r.status == "ok" and r.latency
              and r.latency.p50_ms is not None and r.latency.provenance != "emulated"]
        if ok:
            best = min(ok, key=lambda r: r.latency.p50_ms)  # type: ignore[union-attr]
            assert best.latency is not None
            out.append(f"- fastest on **{target}**: {best.model} {best.artifact_label}, p50 "
                       f"{fmt.ms(best.latency.p50_ms, best.latency.provenance)}")
    return out


def model_table(report: Report, rows: list[ReportRow]) -> list[str]:
    head = ["target", "format", "precision", "status", "p50 / p90 / p99 (ms)", "median 95% CI", "load",
            "first inference", "peak memory", "energy / inference", "parity", "macro-F1", "budgets", "run"]
    body = []
    for r in sorted(rows, key=lambda r: (r.target, r.format, r.precision, r.run_id or 0)):
        lat = r.latency
        body.append([
            r.target, r.format, r.precision, r.status, fmt.latency_triple(lat), fmt.ci(lat),
            fmt.ms(lat.load_ms if lat else None, lat.provenance if lat else None),
            fmt.ms(lat.first_ms if lat else None, lat.provenance if lat else None),
            fmt.memory(r.memory), fmt.energy(r.energy), fmt.parity(r), fmt.accuracy(r),
            fmt.budgets_cell(report.checks_for(r)), f"#{r.run_id}" if r.run_id is not None else fmt.MISSING,
        ])
    return table(head, body)


def render_markdown(report: Report) -> str:
    """The whole report as Markdown text."""
    lines = [f"# {title(report)}", ""]
    sel = ", ".join(f"{k}={v}" for k, v in report.selection.items())
    ids = [r.run_id for r in report.rows if r.run_id is not None]
    span = f"runs #{min(ids)}–#{max(ids)}" if ids else "no runs"
    lines += [f"Generated {report.generated} by edgekit {report.edgekit_version} from `{report.store}` "
              f"({span}; selection: {sel}).", "", headline(report), ""]
    lines += fastest_lines(report)
    lines += ["", f"_Provenance: {PROVENANCE_LEGEND}._", ""]

    budget_checks = [c for c in report.checks if c.kind in ("budget", "run")]
    parity_bad = [c for c in report.checks if c.kind == "parity" and c.status != "pass"]
    if budget_checks or parity_bad:
        lines += ["## Budgets and checks", ""]
        lines += table(["result", "model", "check", "value", "detail"],
                       [[fmt.BADGE.get(c.status, c.status), c.model, c.name, fmt.check_value(c), c.message]
                        for c in sorted(budget_checks + parity_bad, key=lambda c: (c.status == "pass", c.model))])
        lines.append("")
    for model in sorted({r.model for r in report.rows}):
        rows = [r for r in report.rows if r.model == model]
        lines += [f"## {model}", ""] + model_table(report, rows) + [""]

    if report.metrics:
        lines += ["## Robustness vs compression", "",
                  "DSI = specialisation (its maximum over target domains when the card names none), GG = "
                  "generalisation gap vs the reference, CDTR = cross-domain transfer (needs a target domain); "
                  "c = compression intensity (docs/metrics.md).", ""]
        lines += table(["model", "variant", "c", "DSI", "GG", "CDTR", "target domain", "reference"],
                       [[m.model, m.variant, fmt.num(m.compression_intensity), fmt.num(m.dsi), fmt.num(m.gg),
                         fmt.num(m.cdtr), m.target_domain or fmt.MISSING, m.reference or fmt.MISSING]
                        for m in report.metrics])
        lines.append("")

    bad = [r for r in report.rows if r.status != "ok"]
    if bad:
        lines += ["## Failed and skipped runs", ""]
        lines += table(["run", "model", "artifact", "target", "status", "reason"],
                       [[f"#{r.run_id}", r.model, r.artifact_label, r.target, r.status, r.error or fmt.MISSING]
                        for r in bad])
        lines.append("")
    warned = [r for r in report.rows if r.warnings]
    if warned:
        lines += ["## Measurement warnings", ""]
        for r in warned:
            lines.append(f"- #{r.run_id} {r.label}: " + "; ".join(r.warnings))
        lines.append("")

    envs = {}
    for r in report.rows:
        e = r.env
        envs.setdefault((r.target, e.get("cpu_model"), r.runtime, r.runtime_version, e.get("threads"),
                         e.get("governor")), None)
    if envs:
        lines += ["## Environment", ""]
        lines += table(["target", "CPU", "runtime", "version", "threads", "governor"],
                       [[t, cpu or fmt.MISSING, rt or fmt.MISSING, ver or fmt.MISSING,
                         th if th is not None else fmt.MISSING, gov or fmt.MISSING]
                        for (t, cpu, rt, ver, th, gov) in envs])
        lines.append("")
    if report.notes:
        lines += ["## Notes", ""] + [f"- {n}" for n in report.notes] + [""]
    return "\n".join(lines).rstrip() + "\n"
