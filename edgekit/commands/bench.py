"""`edgekit bench` (measure artifacts on this host) and `edgekit runs list|show|export` (the results store)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from edgekit.commands.common import (
    RUN_ID_MAX,
    SEED_MAX,
    check_seconds,
    console,
    parse_int_list,
    print_json,
    threads_list_option,
    wide_option,
)

DB_HELP = "Results store (SQLite). Default: $EDGEKIT_DB, else ~/.local/share/edgekit/edgekit.db."


def _ms(value: float | None) -> str:
    """A latency in ms with 3 significant figures (— when missing, never 0)."""
    if value is None:
        return "—"
    return f"{value:.3g}" if value < 100 else f"{value:.0f}"


def _split(text: str | None) -> list[str] | None:
    return [t.strip() for t in text.split(",") if t.strip()] if text else None


def _provenance(r: Any, wide: bool) -> str:
    """Of latency and memory: `measured` (compact); with --wide also the energy's: `measured; energy modeled`."""
    if not wide or r.energy is None or r.energy.provenance == r.provenance:
        return r.provenance or ""
    return f"{r.provenance}; energy {r.energy.provenance}"


def render_results(results: list[Any], db_path: Path | None = None, wide: bool = False) -> None:
    """The table: latency percentiles, runs, provenance (compact, fits 80 columns); with `wide`, also mean ± σ,
    range, load/first, peak RSS and energy, each labelled. Names and provenance are never wrapped. Then the notes:
    a warning line per artifact, each kind's hint once; with `edgekit -v` the median's CI per artifact."""
    from rich.table import Table

    from edgekit.commands.common import verbosity

    table = Table(title="edgekit bench — latency in ms", title_justify="left", show_lines=False)
    cols = [("model", "left"), ("format/prec", "left"), ("runtime", "left"), ("status", "left"),
            ("p50", "right"), ("p90", "right"), ("p99", "right"), ("mean ± σ", "right"), ("min … max", "right"),
            ("runs", "right"), ("load", "right"), ("first", "right"), ("peak RSS MB", "right"),
            ("energy mJ/inf", "right"), ("provenance", "left")]
    compact = ("model", "format/prec", "status", "p50", "p90", "runs", "provenance")
    keep = [c for c, _ in cols if wide or c in compact]
    for col, just in cols:
        if col in keep:
            table.add_column(col, justify=just, no_wrap=col in ("model", "format/prec", "provenance", "status"),  # type: ignore[arg-type]
                             overflow="ellipsis")
    for r in results:
        sweep = r.config.get("sweep") or {}  # ×2: the threads the runtime really used; b8 s128: a sweep point
        name = f"{r.format}/{r.precision}" + (f" ×{r.runtime['threads']}" if r.runtime.get("threads") else "") + \
            "".join(f" {k[0]}{sweep[k]}" for k in ("batch", "seq_len") if k in sweep)
        rt = r.runtime.get("runtime") or ""
        if r.runtime.get("threads"):
            rt += f" ×{r.runtime['threads']}"
        if not r.ok:
            style = "yellow" if r.status == "skipped" else "red"
            cells = dict.fromkeys(keep, "—")
            cells.update({"model": r.model, "format/prec": name, "runtime": rt, "status": f"[{style}]{r.status}[/]",
                          "provenance": ""})
            table.add_row(*(cells[c] for c in keep))
            continue
        lat = r.latency
        mem = r.memory
        energy = "—"
        if r.energy is not None:
            energy = f"{r.energy.j_per_inference * 1e3:.3g}"
            if r.energy.error_band_j is not None:
                energy += f" ± {r.energy.error_band_j * 1e3:.2g}"
        cells = {"model": r.model, "format/prec": name, "runtime": rt, "status": "[green]ok[/]", "p50": _ms(lat.p50),
                 "p90": _ms(lat.p90), "p99": _ms(lat.p99), "mean ± σ": f"{_ms(lat.mean)} ± {_ms(lat.std)}",
                 "min … max": f"{_ms(lat.min)} … {_ms(lat.max)}", "runs": str(lat.n), "load": _ms(r.load_ms),
                 "first": _ms(r.first_ms),
                 "peak RSS MB": f"{mem.peak_rss_inference / 2**20:.1f}" if mem else "—", "energy mJ/inf": energy,
                 "provenance": _provenance(r, wide)}
        table.add_row(*(cells[c] for c in keep))
    out = console()
    width = out.width
    if wide:  # every column at its natural width, wider than the terminal if need be: nothing is cut or folded
        from rich.measure import Measurement

        out.width = max(width, Measurement.get(out, out.options.update(width=1000), table).maximum)
    out.print(table)
    out.width = width
    if verbosity() < 0:
        return
    notes: list[str] = []
    hints: dict[str, str] = {}  # one hint per warning kind, however many artifacts raised it
    skipped: dict[str, list[str]] = {}
    for r in results:
        if r.ok and r.latency and verbosity() > 0:
            lo, hi = r.latency.ci_median
            notes.append(f"{r.model} {r.format}/{r.precision}: median {_ms(r.latency.p50)} ms, "
                         f"{r.latency.ci_level:.0%} CI [{_ms(lo)}, {_ms(hi)}] (bootstrap)")
        for w in r.warnings:
            notes.append(f"warning {r.model} {r.format}/{r.precision}: {w.kind.value} — {w.detail}")
            hints.setdefault(w.kind.value, w.kind.hint())
        if r.status == "skipped":  # the same reason once, with every artifact it skipped
            skipped.setdefault(f"{r.error}", []).append(f"{r.model} {r.format}/{r.precision}")
    notes += [f"skipped {', '.join(names)}: {reason}" for reason, names in skipped.items()]
    notes += [f"hint ({kind}): {hint}" for kind, hint in hints.items()]
    assumptions = sorted({r.energy.assumption for r in results if r.energy and r.energy.provenance == "modeled"})
    notes += [f"energy (modeled): {a}" for a in assumptions]
    if not wide:
        notes.append("more columns (mean ± σ, range, load/first, memory, energy): --wide; the median's CI: edgekit -v")
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
    port: int = typer.Option(None, "--port", min=1, max=65535, help="Non-local target: SSH port."),
    known_hosts: str = typer.Option(None, "--known-hosts", help="known_hosts file (default ~/.ssh/known_hosts)."),
    trust_on_first_use: bool = typer.Option(False, "--trust-on-first-use",
                                            help="Record an unknown SSH host key once (a changed key is refused)."),
    identity: str = typer.Option(None, "--identity", help="SSH private key file (passwords: $EDGEKIT_SSH_PASSWORD)."),
    serial: str = typer.Option(None, "--serial", help="adb device serial (Android targets)."),
    emulate: bool = typer.Option(False, "--emulate", help="Arm targets: run under qemu-aarch64 (emulated timings)."),
    fmt: str = typer.Option(None, "--format", "-f", help="Format(s), comma list: onnx,tflite,torch,coreml."),
    precision: str = typer.Option(None, "--precision", "-p", help="Precision(s), comma list: fp32,fp16,int8,..."),
    threads: str = threads_list_option("Intra-op threads (default: the runtime's own); a comma list sweeps them, "
                                       "e.g. 1,2,4. The threads each run really used are recorded."),
    batch: str = typer.Option(None, "--batch", metavar="N[,N...]",
                              help="Batch size(s): dim 0 of every input; a comma list sweeps them, e.g. 1,8."),
    seq_len: str = typer.Option(None, "--seq-len", metavar="N[,N...]",
                                help="Sequence length(s) of sequence inputs (an axis named seq/sequence/tokens, or "
                                     "dim 1 of an integer input of rank 2); a comma list sweeps them."),
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
    trust: bool = typer.Option(False, "--trust",
                               help="Run a .pt2 that no edgekit manifest vouches for. Loading a .pt2 can run any "
                                    "code it carries: only for files you trust."),
    seed: int = typer.Option(0, "--seed", min=0, max=SEED_MAX,
                          help="Seed of the random inputs and of the bootstrap."),
    db: Path = typer.Option(None, "--db", help=DB_HELP),
    samples: bool = typer.Option(False, "--samples", help="With --json: include every latency sample."),
    group_name: str = typer.Option(None, "--group",
                                   help="Name the run group (default: a time stamp); `compare BEFORE AFTER` "
                                        "takes group names."),
    repeat: int = typer.Option(1, "--repeat", min=1, max=100,
                               help="Runs per artifact, interleaved (A B A B ...), each in a fresh process; "
                                    "`edgekit compare` needs 2+ per side."),
    wide: bool = wide_option(),
    as_json: bool = typer.Option(False, "--json", help="Print the result records as JSON."),
) -> None:
    """Benchmark artifacts on this host: latency statistics, load/first-inference time, memory, energy."""
    import re
    import shlex
    from dataclasses import replace

    from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeElapsedColumn

    from edgekit.bench.jobs import resolve_jobs
    from edgekit.bench.runner import BenchConfig, new_group, run_benchmark
    from edgekit.errors import EdgekitError
    from edgekit.store import ResultsStore

    for option, seconds in (("--min-time", min_time), ("--max-time", max_time), ("--idle", idle)):
        check_seconds(option, seconds)
    if min_time > max_time:
        raise EdgekitError(f"--min-time {min_time:g} s is above --max-time {max_time:g} s, so it could never be met",
                           "lower --min-time or raise --max-time")
    try:
        meter_argv = shlex.split(energy_command) if energy_command else None
    except ValueError as exc:  # an unbalanced quote
        raise EdgekitError(f"cannot read --energy-command {energy_command!r} ({exc})",
                           "quote it as a shell would, e.g. --energy-command 'meter --json'") from exc
    config = BenchConfig(warmup=warmup, runs=runs, min_time_s=min_time, max_time_s=max(max_time, 0.001),
                         threads=None, provider=provider, extra={"compile": True} if compile_ else {}, seed=seed,
                         energy=energy, energy_command=meter_argv,
                         idle_s=idle, target=target)
    if group_name is not None and not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}", group_name):
        raise EdgekitError(f"--group {group_name!r} is not a valid group name",
                           "use letters, digits, '.', '_' and '-' (up to 64 characters), e.g. --group before")
    from edgekit.bench.sweep import expand, sweep_points

    thread_values = parse_int_list("--threads", threads)
    points = sweep_points(thread_values, parse_int_list("--batch", batch), parse_int_list("--seq-len", seq_len))
    if target != "local" and (len(points) > 1 or batch or seq_len):
        raise EdgekitError("--batch, --seq-len and a list of --threads work with --target local only for now",
                           "give one --threads value for a device target, or benchmark locally")
    if thread_values:
        config.threads = thread_values[0]  # a device target takes one value (checked above)
    if target != "local" and repeat > 1:
        raise EdgekitError(f"--repeat {repeat} works with --target local only for now",
                           "run the device benchmark several times, or drop --repeat")
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

        jobs = resolve_jobs(ref, _split(fmt), _split(precision), inputs or None, export_progress=export_progress,
                            trust=trust)
        bar.remove_task(prep)
        group = group_name or new_group()
        results = []
        runs_planned = expand(jobs, points, repeat)  # interleaved: every artifact and sweep point, then again
        for rep, point, job in runs_planned:
            label = job.describe() + (f" {point.label()}" if point.label() else "") + \
                (f" (run {rep + 1}/{repeat})" if repeat > 1 else "")
            task = bar.add_task(f"{label}: starting", total=1000)

            def on_event(ev: dict[str, Any], task: Any = task, label: str = label) -> None:
                kind = ev.get("event")
                if kind == "phase":
                    bar.update(task, description=f"{label}: {ev['phase']}")
                elif kind == "progress" and ev.get("phase") == "timed":
                    frac = min(ev["done"] / max(1, ev["target"]),
                               ev["elapsed_s"] / ev["min_time_s"] if ev["min_time_s"] > 0 else 1.0)
                    bar.update(task, completed=int(1000 * min(1.0, frac)))

            run_config = replace(config, threads=point.threads, sweep=point.values())
            results.append(run_benchmark(job, run_config, store=store, group=group, on_event=on_event))
            bar.update(task, completed=1000, visible=False)
    store.close()
    if as_json:
        print_json([r.to_dict(samples=samples) for r in results])
    else:
        render_results(results, store.path, wide=wide)
    failed = [r for r in results if r.status in ("failed", "killed")]
    if len(failed) == 1 and len(results) == 1:
        raise EdgekitError(failed[0].error or "the benchmark failed")
    for r in failed:
        typer.echo(f"error: {r.model} {r.format}/{r.precision}: {r.error}", err=True)
    if failed:
        raise typer.Exit(2)


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
    run_id: int = typer.Argument(..., metavar="ID", min=1, max=RUN_ID_MAX),
    db: Path = typer.Option(None, "--db", help=DB_HELP),
    samples: bool = typer.Option(False, "--samples", help="Include every latency sample."),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Show one stored run in full."""
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
    app.command("bench")(bench_cmd)
    app.add_typer(runs_app, name="runs")
