"""`edgekit farm plan` (a CI workflow for a device matrix) and `edgekit farm run` (a lab of devices through Ray)."""

from __future__ import annotations

import shlex
import sys
from pathlib import Path
from typing import Any

import typer

from edgekit.commands.common import console, print_json

DB_HELP = "Results store (SQLite). Default: $EDGEKIT_DB, else ~/.local/share/edgekit/edgekit.db."

farm_app = typer.Typer(help="Device-farm runs: a CI matrix on self-hosted device runners, or a lab through Ray.",
                       no_args_is_help=True)


@farm_app.command("plan")
def plan_cmd(
    models: list[str] = typer.Option(..., "--models", "-m", help="Models (card names, files), comma-separated."),
    targets: list[str] = typer.Option(..., "--targets", "-t",
                                      help="Device labels, comma-separated: each is a self-hosted runner label."),
    formats: list[str] = typer.Option(["onnx"], "--formats", "--format", "-f", help="onnx, tflite, torch, coreml."),
    precisions: list[str] = typer.Option(["fp32"], "--precisions", "--precision", "-p",
                                         help="fp32, fp16, int8, int4."),
    repeat: int = typer.Option(3, "--repeat", min=2, max=100,
                               help="Interleaved runs per cell (`edgekit compare` needs 2+ per side)."),
    ci: str = typer.Option("github", "--ci", help="github (a GitHub Actions workflow) or json (a plain matrix)."),
    out: Path = typer.Option(None, "--out", "-o", help="Write here (e.g. .github/workflows/edgekit.yml), not stdout."),
    baseline: str = typer.Option(".edgekit/baseline.json", "--baseline",
                                 help="github: the baseline report (.json) in the repository to compare against."),
    fail_above: str = typer.Option("5%", "--fail-above", help="github: the regression that fails the workflow."),
    install: str = typer.Option(None, "--install",
                                help="github: the step that installs edgekit (default: pip install edgekit)."),
    bench_args: str = typer.Option("", "--bench-args",
                                   help="github: more `edgekit bench` options, e.g. '--runs 100 --min-time 2'."),
) -> None:
    """Expand models x formats x precisions x targets into a CI workflow: one job per cell on a self-hosted runner
    labelled with its device, then one job that merges the runs, checks budgets and compares with a baseline."""
    from edgekit.errors import EdgekitError
    from edgekit.farm.plan import DEFAULT_INSTALL, expand, render, split_list
    from edgekit.report.compare import parse_threshold
    from edgekit.store import write_text_atomic

    if ci not in ("github", "json"):
        raise EdgekitError(f"unknown --ci {ci!r}", "use --ci github or --ci json")
    parse_threshold(fail_above)
    try:
        extra = shlex.split(bench_args)
    except ValueError as exc:
        raise EdgekitError(f"cannot read --bench-args {bench_args!r} ({exc})", "quote it as a shell would") from exc
    owned = {"--target", "-t", "--format", "--precision", "--repeat", "--group", "--db"}
    clash = [a.split("=")[0] for a in extra if a.split("=")[0] in owned]
    if clash:
        raise EdgekitError(f"--bench-args sets {clash[0]}, which the plan sets per cell",
                           "give the matrix with --models/--formats/--precisions/--targets, and --repeat")
    cells = expand(split_list("--models", models), split_list("--formats", formats),
                   split_list("--precisions", precisions), split_list("--targets", targets))
    text = render(cells, ci, repeat=repeat, baseline=baseline, fail_above=fail_above,
                  install=install or DEFAULT_INSTALL, bench_args=[shlex.quote(a) for a in extra],
                  command_line=shlex.join(["edgekit", *sys.argv[1:]]) if sys.argv[1:2] == ["farm"] else "")
    if out is None:
        typer.echo(text, nl=False)
        return
    out.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(out, text)
    labels = list(dict.fromkeys(c.target for c in cells))
    err = console(stderr=True)
    err.print(f"wrote {out}: {len(cells)} cells on {len(labels)} device label(s) ({', '.join(labels)})", markup=False)
    if ci == "github":
        err.print(f"each device needs a self-hosted runner with its label ({', '.join(labels)}); for actionlint, "
                  "list them under `self-hosted-runner: labels:` in .github/actionlint.yaml", markup=False)


def _progress_line(ev: dict[str, Any]) -> str | None:
    kind = ev["event"]
    if kind == "start":
        before = f", {ev['done_before']} done before (resumed)" if ev["done_before"] else ""
        return f"farm group {ev['group']}: {ev['cells']} cells{before}, {ev['to_run']} to run"
    if kind == "dispatch":
        again = f" (attempt {ev['attempt']})" if ev["attempt"] > 1 else ""
        return f"[{ev['device']}] running {ev['cell']}{again}"
    if kind == "finished":
        from edgekit.report.fmt import sig

        p50 = f" p50 {sig(ev['p50_ms'])} ms" if ev.get("p50_ms") is not None else ""
        err = f" — {ev['error']}" if ev.get("error") and ev["status"] != "ok" else ""
        return (f"[{ev['device']}] {ev['status']} {ev['cell']}{p50} (run {ev['run_id']}; {ev['done']}/{ev['cells']} "
                f"cells done){err}")
    if kind == "retry":
        return f"[{ev['device']}] device failed on {ev['cell']} (attempt {ev['attempt']}), will retry: {ev['error']}"
    if kind == "device_down":
        return f"[{ev['device']}] gets no more cells: {ev['error']}"
    if kind == "gave_up":
        where = f"[{ev['device']}] " if ev.get("device") else ""
        return f"{where}gave up on {ev['cell']}: {ev['error']}"
    return None


def _render_summary(result: Any) -> None:
    from rich.table import Table

    table = Table(title=f"edgekit farm run — group {result.group}", title_justify="left")
    for col in ("device", "profile", "transport", "done", "failed", "retried", "busy s", "state"):
        table.add_column(col, justify="right" if col in ("done", "failed", "retried", "busy s") else "left")
    for st in result.devices.values():
        d = st.device
        table.add_row(d.name, d.profile, d.transport, str(st.done), str(st.failed), str(st.retried),
                      f"{st.busy_s:.1f}", f"[red]down[/]: {st.down}" if st.down else "[green]ok[/]")
    out = console()
    out.print(table)
    out.print(f"{len(result.completed)} cells measured, {len(result.skipped_done)} done before, "
              f"{len(result.failed)} failed, {len(result.unfinished)} not finished; wall {result.wall_s:.1f} s; "
              f"stored in {result.store} (group {result.group})", markup=False, soft_wrap=True)


@farm_app.command("run")
def run_cmd(
    farm: Path = typer.Option(..., "--farm", help="The lab: devices (and optionally the matrix) in TOML."),
    models: list[str] = typer.Option(None, "--models", "-m", help="Models, comma-separated (default: [matrix])."),
    formats: list[str] = typer.Option(None, "--formats", "--format", "-f", help="Default: [matrix], else onnx."),
    precisions: list[str] = typer.Option(None, "--precisions", "--precision", "-p",
                                         help="Default: [matrix], else fp32."),
    targets: list[str] = typer.Option(None, "--targets", "-t",
                                      help="Device labels (default: [matrix], else each device's first label)."),
    repeat: int = typer.Option(None, "--repeat", min=1, max=100, help="Runs per cell, each its own cell."),
    group: str = typer.Option(None, "--group",
                              help="The farm run's group: an existing one is resumed (finished cells are skipped)."),
    resume: bool = typer.Option(False, "--resume", help="Resume this lab's newest farm run in the store."),
    address: str = typer.Option(None, "--address",
                                help="An existing Ray cluster (host:6379, or auto); default: a local instance."),
    db: Path = typer.Option(None, "--db", help=DB_HELP),
    as_json: bool = typer.Option(False, "--json", help="Print the farm run's summary as JSON."),
) -> None:
    """Measure a matrix on a lab of devices through Ray: one job per device at a time, cells retried when their
    device fails, results stored as each cell finishes, resumable after an interruption."""
    import re
    import time

    from edgekit.errors import EdgekitError
    from edgekit.farm.engine import import_ray, latest_group, run_farm
    from edgekit.farm.lab import load_lab
    from edgekit.farm.plan import split_list
    from edgekit.store import ResultsStore

    import_ray()  # one line with the install command, before anything else
    lab = load_lab(farm)

    def opt(name: str, values: list[str] | None) -> list[str] | None:
        return split_list(name, values) if values else None

    cells = lab.cells(opt("--models", models), opt("--formats", formats), opt("--precisions", precisions),
                      opt("--targets", targets), repeat)
    if group is not None and not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}", group):
        raise EdgekitError(f"--group {group!r} is not a valid group name",
                           "use letters, digits, '.', '_' and '-' (up to 64 characters)")
    bench = {"warmup": 5, "runs": 50, "min_time_s": 1.0, "max_time_s": 150.0, **lab.bench}
    err = console(stderr=True)
    with ResultsStore(db) as store:
        if resume and group is None:
            group = latest_group(store, lab.name)
            if group is None:
                raise EdgekitError(f"no farm run of lab {lab.name!r} in {store.path} to resume",
                                   "run it without --resume first")
        group = group or f"farm-{lab.name}-{time.strftime('%Y%m%dT%H%M%S')}"

        def on_event(ev: dict[str, Any]) -> None:
            if ev["event"] == "interrupted":
                err.print(f"farm run interrupted; {len(ev['in_flight'])} cell(s) in flight were not stored — "
                          f"resume with: edgekit farm run --farm {shlex.quote(str(farm))} --group {ev['group']}",
                          markup=False, soft_wrap=True)
                return
            line = _progress_line(ev)
            if line:
                err.print(line, markup=False, soft_wrap=True, highlight=False)

        result = run_farm(lab, cells, bench, store, group, address=address or lab.address, on_event=on_event)
    if as_json:
        print_json(result.to_dict())
    else:
        _render_summary(result)
    if result.unfinished:
        for key, why in result.unfinished.items():
            typer.echo(f"error: cell {key} not finished: {why}", err=True)
        typer.echo(f"resume with: edgekit farm run --farm {shlex.quote(str(farm))} --group {group}", err=True)
        raise typer.Exit(3)
    if result.failed:
        raise typer.Exit(2)


def register(app: typer.Typer) -> None:
    app.add_typer(farm_app, name="farm")
