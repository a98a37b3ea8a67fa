"""`edgekit bench`: measure artifacts on this host (a device target goes through commands/targets.py). The results
table is rendered by commands/render.py; `edgekit runs` lives in commands/runs.py."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from edgekit.commands.common import (
    SEED_MAX,
    check_seconds,
    console,
    parse_int_list,
    print_json,
    threads_list_option,
    wide_option,
)
from edgekit.commands.render import render_results

DB_HELP = "Results store (SQLite). Default: $EDGEKIT_DB, else ~/.local/share/edgekit/edgekit.db."


def _split(text: str | None) -> list[str] | None:
    return [t.strip() for t in text.split(",") if t.strip()] if text else None


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


def register(app: typer.Typer) -> None:
    app.command("bench")(bench_cmd)
