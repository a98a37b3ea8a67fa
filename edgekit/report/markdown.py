"""The Markdown view of a Report: a headline, the budget/parity checks, one table per model (rows: target x format x
precision) with the provenance label beside every latency, memory and energy figure. Fit to paste into a pull
request (GitHub-flavoured tables, no HTML).

Every user-derived string (model, target, store path, selection, errors, warnings, notes, check names) is written
through `text` (or `code`): it is shown, never rendered — a model named `<img src=x onerror=...>` stays text."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable

from edgekit.report import fmt
from edgekit.report.records import Report, ReportRow

PROVENANCE_LEGEND = ("measured = timed/read on the real target · emulated = ran under an instruction-set emulator "
                     "(result real, timing not) · predicted = cost model · modeled = energy from a power model, "
                     "not a meter")


_TAG_OPEN = re.compile(r"<(?=[A-Za-z/!?])")  # what would start raw HTML, an HTML comment or an autolink
_ENTITY = re.compile(r"&(?=#?[A-Za-z0-9]+;)")  # what would be read as a character reference
_LINK = re.compile(r"\](?=[(\[:])")  # the `](`, `][` and `]:` of links, images and link reference definitions


def text(value: object) -> str:
    """Inert Markdown for a user-derived string: raw-HTML openers and character references as entities, backslashes,
    pipes and link brackets escaped, newlines folded. A `<` that opens nothing (`p90 < 100`) stays as it is."""
    s = " ".join(str(value).splitlines())
    s = s.replace("\\", "\\\\")
    s = _ENTITY.sub("&amp;", s)
    s = _TAG_OPEN.sub("&lt;", s)
    s = _LINK.sub("\\\\]", s)
    return s.replace("|", "\\|")


def code(value: object) -> str:
    """A user-derived string as a code span (never interpreted), fenced with more backticks than it holds."""
    s = " ".join(str(value).splitlines())
    fence = "`" * (max((len(run) for run in re.findall(r"`+", s)), default=0) + 1)
    pad = " " if s.startswith("`") or s.endswith("`") else ""
    return f"{fence}{pad}{s}{pad}{fence}"


class Raw(str):
    """Cell text built here from escaped parts (a link to a fixed URL around a `code` span): written as it is."""


def cell(value: object) -> str:
    """Table-safe cell text: `text` (pipes escaped, newlines folded, HTML shown as text); a `Raw` cell as it is."""
    if isinstance(value, Raw):
        return str(value)
    return text(value).strip() or fmt.MISSING


def netron_cell(r: ReportRow) -> str:
    """A link to Netron (it opens files inside the browser; nothing is uploaded) and the artifact's file name."""
    from edgekit.report.derived import NETRON_URL

    if not r.artifact_path:
        return fmt.MISSING
    name = code(r.artifact_path.replace("\\", "/").rsplit("/", 1)[-1]).replace("|", "\\|")
    return Raw(f"[Netron]({NETRON_URL}) {name}")


def table(head: list[str], rows: Iterable[list[object]]) -> list[str]:
    out = ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
    out += ["| " + " | ".join(cell(c) for c in r) + " |" for r in rows]
    return out


def title(report: Report, esc: Callable[[object], str] = str) -> str:
    """The report's title; `esc` escapes each name (`text` for Markdown; the HTML view escapes it itself)."""
    models = sorted({r.model for r in report.rows})
    targets = sorted({r.target for r in report.rows})
    return f"edgekit report: {', '.join(map(esc, models))} on {', '.join(map(esc, targets))}"


def headline(report: Report) -> str:
    s = report.summary()
    runs = ", ".join(f"{n} {text(st)}" for st, n in sorted(s["runs_by_status"].items()))
    failed = s["checks"]["fail"] + s["checks"]["error"]
    verdict = f"❌ {failed} check(s) failed" if failed else "✅ all checks pass"
    b, p = s["budgets"], s["parity"]
    return (f"**{verdict}** · {s['runs']} runs ({runs}) · budgets: {b['pass']} ✅ {b['fail'] + b['error']} ❌ "
            f"{b['skipped']} ⚪ · parity: {p['pass']} ✅ {p['fail'] + p['error']} ❌ {p['skipped']} ⚪")


def fastest_lines(report: Report, esc: Callable[[object], str] = str) -> list[str]:
    """The fastest ok artifact per target (by p50), with its label; `esc` as in `title`."""
    out = []
    for target in sorted({r.target for r in report.rows}):
        ok = [r for r in report.rows if r.target == target and r.status == "ok" and r.latency
              and r.latency.p50_ms is not None and r.latency.provenance != "emulated"]
        if ok:
            best = min(ok, key=lambda r: r.latency.p50_ms)  # type: ignore[union-attr]
            assert best.latency is not None
            out.append(f"- fastest on **{esc(target)}**: {esc(best.model)} {esc(best.artifact_label)}, p50 "
                       f"{fmt.ms(best.latency.p50_ms, best.latency.provenance)}")
    return out


MODEL_TABLE_HEAD = ["target", "format", "precision", "status", "threads", "p50 / p90 / p99 (ms)", "median 95% CI",
                    "speed-up vs fp32", "latency budget headroom", "size", "load", "first inference", "peak memory",
                    "energy / inference", "parity", "macro-F1", "Δ macro-F1 vs fp32", "budgets", "open", "run"]
# After "Δ macro-F1 vs fp32" when any row of the table has a top-1 figure (edgekit eval, export --eval-data).
TOP1_HEAD = ["top-1", "Δ top-1 vs fp32"]


def model_table(report: Report, rows: list[ReportRow]) -> list[str]:
    """One row per run: ok runs fastest first (per target), failed and skipped runs last (derived.row_order)."""
    from edgekit.report import derived

    swept = any("batch" in r.sweep or "seq_len" in r.sweep for r in rows)
    top1 = derived.has_top1(rows)
    head = list(MODEL_TABLE_HEAD)
    if swept:
        head.insert(head.index("threads") + 1, "sweep")
    if top1:
        at = head.index("Δ macro-F1 vs fp32") + 1
        head[at:at] = TOP1_HEAD
    body = []
    for r in derived.ordered(rows):
        lat = r.latency
        line: list[object] = [
            r.target, r.format, r.precision, r.status, derived.threads_text(r), fmt.latency_triple(lat), fmt.ci(lat),
            derived.speedup_text(report.rows, r), derived.headroom_text(report, r), derived.size_text(r),
            fmt.ms(lat.load_ms if lat else None, lat.provenance if lat else None),
            fmt.ms(lat.first_ms if lat else None, lat.provenance if lat else None),
            fmt.memory(r.memory), fmt.energy(r.energy), fmt.parity(r), fmt.accuracy(r),
            derived.accuracy_delta_text(report.rows, r), fmt.budgets_cell(report.checks_for(r)), netron_cell(r),
            f"#{r.run_id}" if r.run_id is not None else fmt.MISSING,
        ]
        if swept:
            line.insert(head.index("sweep"), derived.sweep_text(r))
        if top1:
            at = head.index(TOP1_HEAD[0])
            line[at:at] = [fmt.accuracy(r, "top1"), derived.accuracy_delta_text(report.rows, r, "top1")]
        body.append(line)
    return table(head, body)


def sweep_tables(report: Report) -> list[str]:
    """Latency against each swept value (`bench --threads 1,2,4`, `--batch`, `--seq-len`): per model and axis, one
    row per artifact, one column per value; a cell is the p50 (ms), the median over repeated runs."""
    from edgekit.report import derived

    lines: list[str] = []
    for model in sorted({r.model for r in report.rows}):
        series = derived.sweep_series([r for r in report.rows if r.model == model])
        for axis in derived.SWEEP_AXES:
            ss = [s for s in series if s.axis == axis]
            if not ss:
                continue
            values = sorted({v for s in ss for v in s.points})
            lines += [f"### {text(model)}: p50 latency (ms) vs {derived.AXIS_LABEL[axis]}", ""]
            lines += table([derived.AXIS_LABEL[axis], *map(str, values)],
                           [[s.label + f" ({s.provenance})",
                             *(fmt.num(dict(s.medians()).get(v)) for v in values)] for s in ss])
            lines.append("")
    return (["## Sweeps", ""] + lines) if lines else []


def render_markdown(report: Report) -> str:
    """The whole report as Markdown text."""
    lines = [f"# {title(report, text)}", ""]
    sel = text(", ".join(f"{k}={v}" for k, v in report.selection.items()))
    ids = [r.run_id for r in report.rows if r.run_id is not None]
    span = f"runs #{min(ids)}–#{max(ids)}" if ids else "no runs"
    lines += [f"Generated {text(report.generated)} by edgekit {text(report.edgekit_version)} from {code(report.store)} "
              f"({span}; selection: {sel}).", "", headline(report), ""]
    lines += fastest_lines(report, text)
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
        lines += [f"## {text(model)}", ""] + model_table(report, rows) + [""]
    lines += sweep_tables(report)
    from edgekit.report.profiles import markdown_lines

    lines += markdown_lines(report.profiles)
    from edgekit.report.claims import markdown_lines as claim_lines

    lines += claim_lines(report.claims)

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
            lines.append(f"- #{r.run_id} {text(r.label)}: " + "; ".join(text(w) for w in r.warnings))
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
        lines += ["## Notes", ""] + [f"- {text(n)}" for n in report.notes] + [""]
    return "\n".join(lines).rstrip() + "\n"
