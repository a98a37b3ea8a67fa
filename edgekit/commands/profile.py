"""`edgekit profile ARTIFACT`: per-operator times from the runtime's own profiler, summed per PyTorch module
(edgekit/profile/), shown as a table and stored as a run of kind "profile"."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from edgekit.commands.common import console, fmt_num, print_json, threads_option

DB_HELP = "Results store (SQLite). Default: $EDGEKIT_DB, else ~/.local/share/edgekit/edgekit.db."


def render_profile(outcome: Any, depth: int | None, top: int) -> None:
    from rich.table import Table

    prof = outcome.profile
    rows = prof.modules(depth)
    shown, rest = rows[:top], rows[top:]
    table = Table(title=f"edgekit profile — {outcome.model} {outcome.format}/{outcome.precision} on {prof.target} "
                        f"({prof.runtime} {prof.runtime_version}, {prof.threads} thread(s)); ms per inference, "
                        "measured", title_justify="left")
    for col in ("module", "ops", "calls", "total ms", "share", "costliest operators"):
        table.add_column(col, justify="left" if col in ("module", "costliest operators") else "right")
    for r in shown:
        table.add_row(r.module, str(r.ops), f"{r.calls:g}", fmt_num(r.total_ms), f"{r.share:.1%}",
                      ", ".join(r.op_types))
    if rest:
        table.add_row(f"({len(rest)} more modules)", str(sum(r.ops for r in rest)),
                      f"{sum(r.calls for r in rest):g}", fmt_num(sum(r.total_ms for r in rest)),
                      f"{sum(r.share for r in rest):.1%}", "")
    table.add_row("all operators", str(sum(r.ops for r in rows)), f"{sum(r.calls for r in rows):g}",
                  fmt_num(prof.ops_ms), "100.0%", "", style="bold")
    out = console()
    out.print(table)
    out.print(prof.summary_line(), overflow="fold", markup=False)


def profile_cmd(
    ref: str = typer.Argument(..., metavar="ARTIFACT",
                              help="An .onnx/.tflite file, an export directory / manifest.json, or a model (exported "
                                   "first, like `edgekit bench`)."),
    target: str = typer.Option("local", "--target", "-t", help="Where to profile (only `local` for now)."),
    fmt: str = typer.Option(None, "--format", "-f", help="Format(s), comma list (default: onnx)."),
    precision: str = typer.Option(None, "--precision", "-p", help="Precision(s), comma list: fp32,int8,..."),
    runs: int = typer.Option(50, "--runs", min=5, max=100000,
                             help="Profiled runs, alternating with as many unprofiled ones (the measured p50)."),
    threads: int = threads_option("Runtime threads (default: the runtime's own default)."),
    depth: int = typer.Option(None, "--depth", min=1, max=64,
                              help="Sum modules at this many dotted levels (2: blocks.0); default: full scope."),
    top: int = typer.Option(25, "--top", min=1, max=100000, help="Rows shown; the rest are summed in one."),
    inputs: list[str] = typer.Option([], "--input", "-i", help="Input NAME:1x3x224x224[:DTYPE], repeatable."),
    seed: int = typer.Option(0, "--seed", min=0, max=2**32 - 1, help="Seed of the random inputs."),
    db: Path = typer.Option(None, "--db", help=DB_HELP),
    as_json: bool = typer.Option(False, "--json", help="Print the profiles as JSON (every node)."),
) -> None:
    """Per-operator times from the runtime's own profiler (onnxruntime), summed per PyTorch module, beside the
    measured p50 of unprofiled runs. Stored as a run of kind `profile`; `edgekit report` shows where the time goes."""
    from edgekit.bench.jobs import resolve_jobs
    from edgekit.bench.runner import new_group
    from edgekit.errors import EdgekitError
    from edgekit.profile.run import profile_job
    from edgekit.store import ResultsStore

    if target != "local":
        from edgekit.targets.profile import load_target

        load_target(target)  # an unknown target is its own one-line error
        raise EdgekitError(f"profiling on target {target} is not built yet (the device agent returns whole-run "
                           "latencies only)", "profile here with --target local, or bench on the device")
    formats = [f.strip() for f in fmt.split(",") if f.strip()] if fmt else None
    precisions = [p.strip() for p in precision.split(",") if p.strip()] if precision else None
    if formats is None and not Path(ref).expanduser().is_file():
        formats = ["onnx"]
    jobs = resolve_jobs(ref, formats, precisions, inputs or None)
    outcomes = []
    group = new_group()
    with ResultsStore(db) as store:
        for job in jobs:
            outcomes.append(profile_job(job, runs=runs, threads=threads, seed=seed, target=target, store=store,
                                        group=group))
    if as_json:
        print_json([o.to_dict(depth) for o in outcomes])
    else:
        for o in outcomes:
            if o.profile is not None:
                render_profile(o, depth, top)
            else:
                console().print(f"{o.model} {o.format}/{o.precision}: {o.status} — {o.error}", overflow="fold",
                                markup=False)
    failed = [o for o in outcomes if o.status == "failed"]
    for o in failed:
        typer.echo(f"error: {o.model} {o.format}/{o.precision}: {o.error}", err=True)
    if failed:
        raise typer.Exit(2)


def register(app: typer.Typer) -> None:
    app.command("profile")(profile_cmd)
