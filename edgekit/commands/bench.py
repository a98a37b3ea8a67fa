"""`edgekit bench` (measure artifacts on this host) and `edgekit runs list|show|export` (the results store)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from edgekit.commands.common import console, print_json

DB_HELP = "Results store (SQLite). Default: $EDGEKIT_DB, else ~/.local/share/edgekit/edgekit.db."


def _ms(value: float | None) -> str:
    """A latency in ms with 3 significant figures (— when missing, never 0)."""
    if value is None:
        return "—"
    return f"{value:.3g}" if value < 100 else f"{value:.0f}"


def _split(text: str | None) -> list[str] | None:
    return [t.strip() for t in text.split(",") if t.strip()] if text else None


def render_results(results: list[Any], db_path: Path | None = None) -> None:
    """The compact table: latency percentiles, mean ± σ, range, load/first, peak RSS, energy, each labelled."""
    from rich.table import Table

    table = Table(title="edgekit bench — latency in ms", title_justify="left", show_lines=False)
    for col, just in (("model", "left"), ("format/prec", "left"), ("runtime", "left"), ("status", "left"),
                      ("p50", "right"), ("p90", "right"), ("p99", "right"), ("mean ± σ", "right"),
                      ("min … max", "right"), ("runs", "right"), ("load", "right"), ("first", "right"),
                      ("peak RSS MB", "right"), ("energy mJ/inf", "right"), ("provenance", "left")):
        table.add_column(col, justify=just)  # type: ignore[arg-type]
    for r in results:
        name = f"{r.format}/{r.precision}"
        rt = r.runtime.get("runtime") or ""
        if r.runtime.get("threads"):
            rt += f" ×{r.runtime['threads']}"
        if not r.ok:
            style = "yellow" if r.status == "skipped" else "red"
            table.add_row(r.model, name, rt, f"[{style}]{r.status}[/]", *(["—"] * 10), "")
            continue
        lat = r.latency
        mem = r.memory
        energy = "—"
        if r.energy is not None:
            energy = f"{r.energy.j_per_inference * 1e3:.3g}"
            if r.energy.error_band_j is not None:
                energy += f" ± {r.energy.error_band_j * 1e3:.2g}"
        prov = f"latency, memory: {r.provenance}" + (f"; energy: {r.energy.provenance}" if r.energy else "")
        table.add_row(
            r.model, name, rt, "[green]ok[/]", _ms(lat.p50), _ms(lat.p90), _ms(lat.p99),
            f"{_ms(lat.mean)} ± {_ms(lat.std)}", f"{_ms(lat.min)} … {_ms(lat.max)}", str(lat.n),
            _ms(r.load_ms), _ms(r.first_ms), f"{mem.peak_rss_inference / 2**20:.1f}" if mem else "—", energy, prov,
        )
    out = console()
    if not out.is_terminal:
        out.width = max(out.width, 200)
    out.print(table)
    notes: list[str] = []
    for r in results:
        if r.ok and r.latency:
            lo, hi = r.latency.ci_median
            notes.append(f"{r.model} {r.format}/{r.precision}: median {_ms(r.latency.p50)} ms, "
                         f"{r.latency.ci_level:.0%} CI [{_ms(lo)}, {_ms(hi)}] (bootstrap)")
        for w in r.warnings:
            notes.append(f"warning {r.model} {r.format}/{r.precision}: {w.kind.value} — {w.detail}. "
                         f"{w.kind.hint()}")
        if r.status == "skipped":
            notes.append(f"skipped {r.model} {r.format}/{r.precision}: {r.error}")
    assumptions = sorted({r.energy.assumption for r in results if r.energy and r.energy.provenance == "modeled"})
    notes += [f"energy (modeled): {a}" for a in assumptions]
    ids = [str(r.run_id) for r in results if r.run_id is not None]
    if ids and db_path is not None:
        notes.append(f"stored as run {', '.join(ids)} in {db_path} (`edgekit runs show ID`)")
    for line in notes:
        out.print(line, overflow="fold", markup=False)


def bench_cmd(
    ref: str = typer.Argument(..., metavar="MODEL_OR_ARTIFACT",
                              help="An artifact (.onnx, .tflite, .pt2, .mlpackage), a manifest.json or export "
                                   "directory, or a model (card name, models/X.toml, file.py:factory)."),
    target: str = typer.Option("local", "--target", "-t",
                               help="Where to run: local, or a target profile (`edgekit targets list`)."),
    host: str = typer.Option(None, "--host", help="Non-local target: the device's address (ssh/macos)."),
    user: str = typer.Option(None, "--user", help="Non-local target: SSH user."),
    port: int = typer.Option(None, "--port", help="Non-local target: SSH port."),
    known_hosts: str = typer.Option(None, "--known-hosts", help="known_hosts file (default ~/.ssh/known_hosts)."),
    trust_on_first_use: bool = typer.Option(False, "--trust-on-first-use",
                                            help="Record an unknown SSH host key once (a changed key is refused)."),
    identity: str = typer.Option(None, "--identity", help="SSH private key file (passwords: $EDGEKIT_SSH_PASSWORD)."),
    serial: str = typer.Option(None, "--serial", help="adb device serial (Android targets)."),
    emulate: bool = typer.Option(False, "--emulate", help="Arm targets: run under qemu-aarch64 (emulated timings)."),
    fmt: str = typer.Option(None, "--format", "-f", help="Format(s), comma list: onnx,tflite,torch,coreml."),
    precision: str = typer.Option(None, "--precision", "-p", help="Precision(s), comma list: fp32,fp16,int8,..."),
    threads: int = typer.Option(None, "--threads", help="Intra-op threads (default: the runtime's own)."),
    provider: str = typer.Option(None, "--provider",
                                 help="onnxruntime execution provider / TFLite delegate (xnnpack|none) / CoreML units."),
    warmup: int = typer.Option(5, "--warmup", min=0, help="Warm-up runs before timing."),
    runs: int = typer.Option(50, "--runs", min=1, help="At least this many timed runs..."),
    min_time: float = typer.Option(1.0, "--min-time", min=0.0, help="...and at least this many seconds."),
    max_time: float = typer.Option(150.0, "--max-time", min=0.001, help="Stop after this many seconds, whatever."),
    inputs: list[str] = typer.Option([], "--input", "-i", help="Input NAME:1x3x224x224[:DTYPE], repeatable."),
    energy: str = typer.Option("auto", "--energy",
                               help="auto | none | modeled | rapl | odpm | hwmon | battery (auto: the first readable)."),
    energy_command: str = typer.Option(None, "--energy-command",
                                       help='External meter printing {"energy_j": J} or {"power_w": W}.'),
    idle: float = typer.Option(1.0, "--idle", min=0.0, help="Seconds of idle-power baseline (real probes only)."),
    compile_: bool = typer.Option(False, "--compile", help="torch: run under torch.compile."),
    seed: int = typer.Option(0, "--seed", help="Seed of the random inputs and of the bootstrap."),
    db: Path = typer.Option(None, "--db", help=DB_HELP),
    samples: bool = typer.Option(False, "--samples", help="With --json: include every latency sample."),
    as_json: bool = typer.Option(False, "--json", help="Print the result records as JSON."),
) -> None:
    """Benchmark artifacts on this host: latency statistics, load/first-inference time, memory, energy."""
    import shlex

    from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeElapsedColumn

    from edgekit.bench.jobs import resolve_jobs
    from edgekit.bench.runner import BenchConfig, new_group, run_benchmark
    from edgekit.errors import EdgekitError
    from edgekit.store import ResultsStore

    config = BenchConfig(warmup=warmup, runs=runs, min_time_s=min_time, max_time_s=max(max_time, 0.001),
                         threads=threads, provider=provider, extra={"compile": True} if compile_ else {}, seed=seed,
                         energy=energy, energy_command=shlex.split(energy_command) if energy_command else None,
                         idle_s=idle, target=target)
    if target != "local":  # a device through its transport, emulated, or predicted (edgekit/targets)
        from edgekit.commands.targets import bench_remote, device_options

        return bench_remote(ref, target, _split(fmt), _split(precision), inputs, config,
                            device_options(host, user, port, known_hosts, identity, trust_on_first_use, serial,
                                           emulate=emulate), db, as_json, samples)
    store = ResultsStore(db)  # opened first: a corrupt store is reported before any work
    err = console(stderr=True)
    with Progress(TextColumn("{task.description}"), BarColumn(), TaskProgressColumn(), TimeElapsedColumn(),
                  console=err, transient=True, disable=not err.is_terminal) as bar:
        prep = bar.add_task(f"resolving {ref}", total=None)

        def export_progress(f: str, p: str, phase: str) -> None:
            bar.update(prep, description=f"exporting {ref}: {f} {p} — {phase}")

        jobs = resolve_jobs(ref, _split(fmt), _split(precision), inputs or None, export_progress=export_progress)
        bar.remove_task(prep)
        group = new_group()
        results = []
        for job in jobs:
            task = bar.add_task(f"{job.describe()}: starting", total=1000)

            def on_event(ev: dict[str, Any], task: Any = task, job: Any = job) -> None:
                kind = ev.get("event")
                if kind == "phase":
                    bar.update(task, description=f"{job.describe()}: {ev['phase']}")
                elif kind == "progress" and ev.get("phase") == "timed":
                    frac = min(ev["done"] / max(1, ev["target"]),
                               ev["elapsed_s"] / ev["min_time_s"] if ev["min_time_s"] > 0 else 1.0)
                    bar.update(task, completed=int(1000 * min(1.0, frac)))

            results.append(run_benchmark(job, config, store=store, group=group, on_event=on_event))
            bar.update(task, completed=1000, visible=False)
    store.close()
    if as_json:
        print_json([r.to_dict(samples=samples) for r in results])
    else:
        render_results(results, store.path)
    failed = [r for r in results if r.status in ("failed", "killed")]
    if len(failed) == 1 and len(results) == 1:
        raise EdgekitError(failed[0].error or "the benchmark failed")
    for r in failed:
        typer.echo(f"error: {r.model} {r.format}/{r.precision}: {r.error}", err=True)
    if failed:
        raise typer.Exit(2)


runs_app = typer.Typer(help="Results stored by bench/eval: list, show, export.", no_args_is_help=True)


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
    status: str = typer.Option(None, "--status", help="running | ok | failed | killed | skipped"),
    limit: int = typer.Option(50, "--limit", min=1),
    db: Path = typer.Option(None, "--db", help=DB_HELP),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """List stored runs, newest first."""
    from rich.table import Table

    from edgekit.store import ResultsStore

    with ResultsStore(db) as store:
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
        energy = f"{row['energy_mj']:.3g} ({row['energy_provenance']})" if row["energy_mj"] is not None else "—"
        style = {"ok": "green", "skipped": "yellow", "running": "cyan"}.get(row["status"], "red")
        table.add_row(str(row["id"]), row["created"], row["kind"], row["model"] or "",
                      f"{row['format']}/{row['precision']}", row["runtime"] or "", f"[{style}]{row['status']}[/]",
                      _ms(row["p50_ms"]), _ms(row["p90_ms"]), energy, (row["error"] or "")[:80])
    out = console()
    if not out.is_terminal:
        out.width = max(out.width, 160)
    out.print(table)
    if not rows:
        out.print("no runs stored yet — `edgekit bench MODEL_OR_ARTIFACT` records one")


@runs_app.command("show")
def runs_show(
    run_id: int = typer.Argument(..., metavar="ID"),
    db: Path = typer.Option(None, "--db", help=DB_HELP),
    samples: bool = typer.Option(False, "--samples", help="Include every latency sample."),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Show one stored run in full."""
    from edgekit.store import ResultsStore

    with ResultsStore(db) as store:
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
        out.print(f"latency ({run.provenance}): p50 {_ms(lat['p50'])} ms  p90 {_ms(lat['p90'])}  p95 "
                  f"{_ms(lat['p95'])}  p99 {_ms(lat['p99'])}  mean {_ms(lat['mean'])} ± {_ms(lat['std'])}  "
                  f"range {_ms(lat['min'])} … {_ms(lat['max'])}  n={lat['n']}  median CI "
                  f"[{_ms(lat['ci_median'][0])}, {_ms(lat['ci_median'][1])}]")
        out.print(f"load {_ms(res.get('load_ms'))} ms, first inference {_ms(res.get('first_ms'))} ms")
    mem = res.get("memory")
    if mem:
        out.print(f"memory (measured): RSS before load {mem['rss_before_load'] / 2**20:.1f} MB, after load "
                  f"{mem['rss_after_load'] / 2**20:.1f} MB, peak during inference "
                  f"{mem['peak_rss_inference'] / 2**20:.1f} MB ({mem['peak_rss_scope']})")
    en = res.get("energy")
    if en:
        band = f" ± {en['error_band_j'] * 1e3:.2g}" if en.get("error_band_j") is not None else ""
        out.print(f"energy ({en['provenance']}): {en['j_per_inference'] * 1e3:.3g}{band} mJ/inference — "
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
    """Export stored runs as JSON (full records) or CSV (one flat row per run)."""
    from edgekit.store import ResultsStore

    with ResultsStore(db) as store:
        text = store.export(fmt, store.list_runs(kind=kind, model=model), with_samples=samples)
    if out is None:
        typer.echo(text, nl=False)
    else:
        out.write_text(text)
        console(stderr=True).print(f"wrote {out}")


def register(app: typer.Typer) -> None:
    app.command("bench")(bench_cmd)
    app.add_typer(runs_app, name="runs")
