"""`edgekit report` (Markdown / HTML / JSON / CSV / JUnit over stored runs) and `edgekit compare BASE NEW`."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import typer

from edgekit.commands.common import RUN_ID_MAX, console, print_json

DB_HELP = "Results store (SQLite). Default: $EDGEKIT_DB, else ~/.local/share/edgekit/edgekit.db."
_IDS = re.compile(r"^\d+(-\d+)?(,\d+(-\d+)?)*$")
MAX_RUN_IDS = 100_000  # ids one selection may name (a range is expanded in memory)


def parse_run_ids(items: list[str]) -> list[int]:
    """"3" "5,7" "10-12" -> [3, 5, 7, 10, 11, 12]."""
    from edgekit.errors import EdgekitError

    ids: list[int] = []
    for item in items:
        text = item.strip().lstrip("#")
        if not _IDS.match(text):
            raise EdgekitError(f"{item!r} is not a run id", "give run ids like 12, 12,14 or 12-20 (`edgekit runs list`)")
        for part in text.split(","):
            lo, _, hi = part.partition("-")
            if hi and int(hi) < int(lo):
                raise EdgekitError(f"run id range {part} runs backwards", f"write it as {hi}-{lo}")
            if int(hi or lo) > RUN_ID_MAX or len(ids) + int(hi or lo) - int(lo) >= MAX_RUN_IDS:
                raise EdgekitError(f"run ids {item} name more than {MAX_RUN_IDS} runs (or an id above {RUN_ID_MAX})",
                                   "give the ids `edgekit runs list` shows, or use --last N / --all")
            ids.extend(range(int(lo), int(hi or lo) + 1))
    return list(dict.fromkeys(ids))


def default_out(report: Any) -> Path:
    groups = sorted({r.group for r in report.rows if r.group})
    name = groups[-1] if len(groups) == 1 else f"report-{report.generated[:19].replace(':', '').replace('-', '')}"
    return Path("reports") / name


def report_cmd(
    run_ids: list[str] = typer.Argument(None, metavar="[RUN_IDS]...",
                                        help="Run ids (12, 12,14, 12-20). Default: the newest group of runs."),
    last: int = typer.Option(None, "--last", max=RUN_ID_MAX, help="The newest N benchmark runs."),
    all_runs: bool = typer.Option(False, "--all", help="Every benchmark run in the store."),
    group: str = typer.Option(None, "--group", help="The runs of one group (one `edgekit bench` invocation)."),
    last_group: bool = typer.Option(False, "--last-group", help="The runs of the newest group (the default)."),
    since: str = typer.Option(None, "--since", help="Runs started at or after this ISO 8601 time (UTC if no offset)."),
    formats: str = typer.Option("md,html,json,csv,junit", "--format", "-f",
                                help="Comma list of md,html,json,csv,junit (or all)."),
    out: Path = typer.Option(None, "--out", "-o",
                             help="Output stem: reports/NAME writes reports/NAME.md, .html, .json, .csv, .junit.xml "
                                  "(default: reports/<group>)."),
    db: Path = typer.Option(None, "--db", help=DB_HELP),
    check: bool = typer.Option(False, "--check", help="Exit 1 when a budget or parity check fails."),
    as_json: bool = typer.Option(False, "--json", help="Print the written paths and the summary as JSON."),
) -> None:
    """Write a report of stored benchmark runs: tables, plots, budgets pass/fail, parity, JUnit for CI."""
    from rich.markup import escape

    from edgekit.report import Selection, build_report, open_store, parse_formats, write_report

    fmts = parse_formats(formats)
    sel = Selection(run_ids=parse_run_ids(run_ids or []), last=last, all_runs=all_runs, group=group,
                    last_group=last_group, since=since)
    store = open_store(db)
    try:
        report = build_report(store, sel)
    finally:
        store.close()
    paths = write_report(report, fmts, out or default_out(report))
    summary = report.summary()
    if as_json:
        print_json({"paths": {k: str(v) for k, v in paths.items()}, "summary": summary})
    else:
        out_c = console()
        b, p = summary["budgets"], summary["parity"]
        out_c.print(f"{summary['runs']} runs · budgets {b['pass']} pass / {b['fail'] + b['error']} fail / "
                    f"{b['skipped']} n/a · parity {p['pass']} pass / {p['fail'] + p['error']} fail / "
                    f"{p['skipped']} n/a · verdict [{'green' if summary['verdict'] == 'pass' else 'red'}]"
                    f"{summary['verdict']}[/]", soft_wrap=True)
        for c in report.checks:
            if c.status in ("fail", "error"):
                out_c.print(f"  [red]{c.status}[/] {escape(f'{c.model} {c.name}: {c.message}')}", soft_wrap=True)
        for fmt, path in paths.items():
            out_c.print(f"{fmt:>5}: {path}", markup=False, soft_wrap=True)
    if check and report.verdict() == "fail":
        raise typer.Exit(1)


def load_side(spec: str, db: Path | None, label: str) -> Any:
    """BASE or NEW of a comparison: a report file (.json/.csv), run ids, or a group name in the store."""
    from edgekit.errors import EdgekitError
    from edgekit.report import Selection, build_report, open_store
    from edgekit.report.tabular import read_report_file

    path = Path(spec).expanduser()
    if path.suffix.lower() in (".json", ".csv") or path.is_file():
        return read_report_file(path)
    store = open_store(db)
    try:
        if _IDS.match(spec.strip().lstrip("#")):
            return build_report(store, Selection(run_ids=parse_run_ids([spec])), budgets_from_cards=False)
        groups = {r.group for r in store.list_runs() if r.group}
        if spec not in groups:
            raise EdgekitError(f"{label} {spec!r} is not a report file, run ids, or a group in {store.path}",
                               "give a .json/.csv report, run ids like 12-20, or a group (`edgekit runs list`)")
        return build_report(store, Selection(group=spec), budgets_from_cards=False)
    finally:
        store.close()


def render_comparison(cmp: Any) -> None:
    from rich.table import Table

    from edgekit.report import fmt

    table = Table(title=f"edgekit compare — {cmp.base} → {cmp.new} (median latency)", title_justify="left")
    for col, just in (("model", "left"), ("artifact", "left"), ("target", "left"), ("base p50 ms", "right"),
                      ("new p50 ms", "right"), ("runs", "right"), ("change", "right"),
                      (f"{cmp.level:.0%} CI", "right"), ("p (Welch, Holm)", "right"), ("verdict", "left"), ("note", "left")):
        table.add_column(col, justify=just, overflow="fold")  # type: ignore[arg-type]
    style = {"faster": "green", "slower": "yellow", "broken": "red"}
    for r in cmp.rows:
        verdict = r.verdict + (" — REGRESSION" if r.regression else "")
        st = "red" if r.regression else style.get(r.verdict, "")
        ci = f"[{fmt.pct(r.ci[0] - 1)}, {fmt.pct(r.ci[1] - 1)}]" if r.ci else "—"
        prov = f" ({r.provenance})" if r.provenance else ""
        point = "".join(f" {k[0]}{v}" if k != "threads" else f" ×{v}" for k, v in r.sweep.items())
        table.add_row(r.model, f"{r.format}/{r.precision}{point}", r.target, fmt.sig(r.base_median_ms) + prov,
                      fmt.sig(r.new_median_ms) + prov, f"{r.n_base}/{r.n_new}", fmt.pct(r.change), ci,
                      fmt.sig(r.p_adjusted, 2), f"[{st}]{verdict}[/]" if st else verdict,
                      r.note)
    out = console()
    if not out.is_terminal:
        out.width = max(out.width, 180)
    out.print(table)
    for note in cmp.notes:
        out.print(note, markup=False)
    overall = cmp.verdict()
    color = {"regression": "red", "slower": "yellow", "faster": "green", "mixed": "yellow"}.get(overall, "")
    text = f"overall: {overall}" + (f" ({len(cmp.regressions)} row(s) confidently slower by more than "
                                    f"{cmp.fail_above:.0%})" if cmp.regressions else "")
    out.print(f"[{color}]{text}[/]" if color else text)


def compare_cmd(
    base: str = typer.Argument(..., help="Baseline: run ids (12-20), a group, or a report .json/.csv."),
    new: str = typer.Argument(..., help="Candidate: run ids, a group, or a report .json/.csv."),
    fail_above: str = typer.Option("5%", "--fail-above",
                                   help="Exit 1 when a row is confidently slower than this (CI above 1 + threshold)."),
    level: float = typer.Option(0.95, "--ci", min=0.5, max=0.999, help="Confidence level of the interval."),
    alpha: float = typer.Option(0.05, "--alpha", min=0.0001, max=0.5, help="Significance level (Holm-corrected)."),
    resamples: int = typer.Option(2000, "--resamples", min=200, hidden=True,
                                  help="Unused since runs are the unit (kept so old scripts still run)."),
    seed: int = typer.Option(0, "--seed", hidden=True, help="Unused since runs are the unit (kept for old scripts)."),
    db: Path = typer.Option(None, "--db", help=DB_HELP),
    as_json: bool = typer.Option(False, "--json", help="Print the comparison as JSON."),
) -> None:
    """Compare two sets of runs (runs are the unit: use `bench --repeat 3`): change of the median latency with a
    Welch CI over runs, a verdict per row and overall; exit 1 on a regression beyond --fail-above."""
    from edgekit.errors import EdgekitError
    from edgekit.report.compare import compare_reports, parse_threshold

    threshold = parse_threshold(fail_above)
    b = load_side(base, db, "BASE")
    n = load_side(new, db, "NEW")
    cmp = compare_reports(b, n, fail_above=threshold, level=level, alpha=alpha, n_resamples=resamples, seed=seed,
                          base_name=base, new_name=new)
    if all(r.verdict in ("only in base", "only in new") for r in cmp.rows):
        raise EdgekitError(f"BASE {base!r} and NEW {new!r} share no (model, format, precision, target) row",
                           "compare runs of the same artifacts on the same target")
    if as_json:
        print_json(cmp.to_dict())
    else:
        render_comparison(cmp)
    if cmp.regressions:
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    app.command("report")(report_cmd)
    app.command("compare")(compare_cmd)
