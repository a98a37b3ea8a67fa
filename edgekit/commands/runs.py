"""`edgekit runs list|show|export|import-fallback|import`: the runs in the results store."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from edgekit.commands.common import RUN_ID_MAX, console, print_json

DB_HELP = "Results store (SQLite). Default: $EDGEKIT_DB, else ~/.local/share/edgekit/edgekit.db."


runs_app = typer.Typer(help="Results stored by bench/eval: list, show, export, import.", no_args_is_help=True)


def _run_line(r: Any) -> dict[str, Any]:
    lat = (r.result or {}).get("latency") or {}
    energy = (r.result or {}).get("energy") or {}
    return {"id": r.id, "created": r.created[:19].replace("T", " "), "kind": r.kind, "model": r.model,
            "format": r.format, "precision": r.precision, "target": r.target, "runtime": r.runtime,
            "status": r.status, "p50_ms": lat.get("p50"), "p90_ms": lat.get("p90"), "n": lat.get("n"),
            "energy_mj": energy.get("j_per_inference", None) and energy["j_per_inference"] * 1e3,
            "energy_provenance": energy.get("provenance"), "provenance": r.provenance, "error": r.error}


@runs_app.command("list")
def runs_list(
    kind: str = typer.Option(None, "--kind", help="bench | eval | ..."),
    model: str = typer.Option(None, "--model"),
    status: str = typer.Option(None, "--status", help="running | ok | failed | killed | skipped | interrupted"),
    limit: int = typer.Option(50, "--limit", min=1, max=RUN_ID_MAX),
    db: Path = typer.Option(None, "--db", help=DB_HELP),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """List stored runs, newest first."""
    from rich.table import Table

    from edgekit.errors import EdgekitError
    from edgekit.report import fmt
    from edgekit.store import RUN_STATUSES, ResultsStore

    if status is not None and status not in RUN_STATUSES:
        raise EdgekitError(f"unknown run status {status!r}", f"use one of {', '.join(RUN_STATUSES)}")
    with ResultsStore(db, read_only=True) as store:
        runs = store.list_runs(kind=kind, model=model, status=status, limit=limit)
        path = store.path
    rows = [_run_line(r) for r in runs]
    if as_json:
        print_json(rows)
        return
    table = Table(title=f"runs in {path}", title_justify="left")
    for col in ("id", "created (UTC)", "kind", "model", "format/prec", "runtime", "status", "p50 ms", "p90 ms",
                "energy mJ", "note"):
        table.add_column(col, justify="right" if col in ("id", "p50 ms", "p90 ms", "energy mJ") else "left")
    for row in rows:
        energy = f"{fmt.sig(row['energy_mj'])} ({row['energy_provenance']})" if row["energy_mj"] is not None else "—"
        style = {"ok": "green", "skipped": "yellow", "running": "cyan"}.get(row["status"], "red")
        table.add_row(str(row["id"]), row["created"], row["kind"], row["model"] or "",
                      f"{row['format']}/{row['precision']}", row["runtime"] or "", f"[{style}]{row['status']}[/]",
                      fmt.sig(row["p50_ms"]), fmt.sig(row["p90_ms"]), energy, (row["error"] or "")[:80])
    out = console()
    if not out.is_terminal:
        out.width = max(out.width, 160)
    out.print(table)
    if not rows:
        out.print("no runs stored yet — `edgekit bench MODEL_OR_ARTIFACT` records one")


@runs_app.command("show")
def runs_show(
    run_id: int = typer.Argument(..., metavar="ID", min=1, max=RUN_ID_MAX),
    db: Path = typer.Option(None, "--db", help=DB_HELP),
    samples: bool = typer.Option(False, "--samples", help="Include every latency sample."),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Show one stored run in full."""
    from edgekit.report import fmt
    from edgekit.store import ResultsStore

    with ResultsStore(db, read_only=True) as store:
        run = store.get_run(run_id)
        doc = run.to_dict()
        if samples or not as_json:
            doc["samples"] = {p: store.samples(run_id, p) for p in ("first", "warmup", "steady")}
    if as_json:
        print_json(doc)
        return
    out = console()
    if not out.is_terminal:
        out.width = max(out.width, 160)
    out.print(f"run {run.id} {run.kind} {run.model} {run.format}/{run.precision} on {run.target} — "
              f"{run.status} (created {run.created}, finished {run.finished or '—'})")
    if run.error:
        out.print(f"error: {run.error}", overflow="fold", markup=False)
    res = run.result or {}
    lat = res.get("latency")
    if lat:
        out.print(f"latency ({run.provenance}): p50 {fmt.sig(lat['p50'])} ms  p90 {fmt.sig(lat['p90'])}  p95 "
                  f"{fmt.sig(lat['p95'])}  p99 {fmt.sig(lat['p99'])}  mean {fmt.sig(lat['mean'])} ± "
                  f"{fmt.sig(lat['std'])}  range {fmt.sig(lat['min'])} … {fmt.sig(lat['max'])}  n={lat['n']}  median CI "
                  f"[{fmt.sig(lat['ci_median'][0])}, {fmt.sig(lat['ci_median'][1])}]")
        out.print(f"load {fmt.sig(res.get('load_ms'))} ms, first inference {fmt.sig(res.get('first_ms'))} ms")
    mem = res.get("memory")
    if mem:
        out.print(f"memory (measured): RSS before load {mem['rss_before_load'] / 2**20:.1f} MB, after load "
                  f"{mem['rss_after_load'] / 2**20:.1f} MB, peak during inference "
                  f"{mem['peak_rss_inference'] / 2**20:.1f} MB ({mem['peak_rss_scope']})")
    en = res.get("energy")
    if en:
        band = f" ± {fmt.sig(en['error_band_j'] * 1e3, 2)}" if en.get("error_band_j") is not None else ""
        out.print(f"energy ({en['provenance']}): {fmt.sig(en['j_per_inference'] * 1e3)}{band} mJ/inference — "
                  f"{en['assumption']}", overflow="fold", markup=False)
    for w in res.get("warnings", []):
        out.print(f"warning {w['kind']}: {w['detail']}. {w['hint']}", overflow="fold", markup=False)
    env = run.env or {}
    if env:
        out.print(f"env: {env.get('cpu_model')} ({len(env.get('cpus_used') or [])} CPUs used), "
                  f"{env.get('runtime')} {env.get('runtime_version')} threads={env.get('threads')} "
                  f"provider={env.get('provider')}, {env.get('host_os')}, edgekit {env.get('edgekit_version')}, "
                  f"artifact sha256 {str(env.get('artifact_sha256'))[:16]}…", overflow="fold")
    steady = doc["samples"]["steady"]
    out.print(f"{len(steady)} steady-state samples stored (`--json --samples` prints them)")


@runs_app.command("export")
def runs_export(
    fmt: str = typer.Option("json", "--format", "-f", help="json | csv"),
    out: Path = typer.Option(None, "--out", "-o", help="Write to this file instead of stdout."),
    kind: str = typer.Option(None, "--kind"),
    model: str = typer.Option(None, "--model"),
    samples: bool = typer.Option(False, "--samples",
                                 help="json: add samples to each run; csv: one row per latency sample."),
    db: Path = typer.Option(None, "--db", help=DB_HELP),
) -> None:
    """Export stored runs as JSON (full records) or CSV (one flat row per run). --out is written atomically."""
    from edgekit.store import ResultsStore, write_text_atomic

    with ResultsStore(db, read_only=True) as store:
        text = store.export(fmt, store.list_runs(kind=kind, model=model), with_samples=samples)
    if out is None:
        typer.echo(text, nl=False)
    else:
        write_text_atomic(out, text)
        console(stderr=True).print(f"wrote {out}", markup=False)


@runs_app.command("import-fallback")
def runs_import_fallback(
    file: Path = typer.Argument(..., metavar="FILE", help="A fallback record (*.fallback.json) named in an error line."),
    db: Path = typer.Option(None, "--db", help="Results store to import into. Default: the store named in FILE."),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Put a run whose final store write failed (store locked, disk full) back into the store."""
    from edgekit.errors import EdgekitError
    from edgekit.store import ResultsStore, read_fallback

    record = read_fallback(file)  # a bad file is one line before any store is opened
    target = db if db is not None else (Path(record.store) if record.store else None)
    if db is None and (target is None or not target.is_file()):
        raise EdgekitError(f"the results store {file} was meant for ({target or 'not named'}) does not exist",
                           "give the store to import into with --db PATH")
    with ResultsStore(target) as store:
        run_id = store.import_fallback(file)
        run = store.get_run(run_id)
    if as_json:
        print_json({"run_id": run_id, "status": run.status, "store": str(store.path)})
        return
    left = f"; {file} can be deleted" if file.exists() else ""
    console().print(f"imported run {run_id} ({run.kind} {run.model or ''}, {run.status}) into {store.path}{left}",
                    markup=False, soft_wrap=True)


@runs_app.command("import")
def runs_import(
    files: list[Path] = typer.Argument(..., metavar="FILE...",
                                       help="Runs exported as JSON (`edgekit runs export --format json --samples`)."),
    machine: str = typer.Option(None, "--machine",
                                help="Name of the machine the files came from (default: the one each export "
                                     "recorded)."),
    db: Path = typer.Option(None, "--db", help=DB_HELP),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Merge runs exported on other machines into this store: each run once (by its uuid), with its provenance and
    the machine it came from."""
    from edgekit.farm.merge import import_files
    from edgekit.store import ResultsStore

    with ResultsStore(db) as store:
        report = import_files(store, files, machine=machine)
        path = store.path
    if as_json:
        print_json({**report.to_dict(), "store": str(path)})
        return
    where = ", ".join(f"{n} from {m}" for m, n in sorted(report.machines.items())) or "none new"
    console().print(f"imported {len(report.imported)} run(s) into {path} ({where}); {report.duplicates} already "
                    "there (same uuid), skipped", markup=False, soft_wrap=True)


def register(app: typer.Typer) -> None:
    app.add_typer(runs_app, name="runs")
