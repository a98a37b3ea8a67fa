"""`edgekit targets list|show|check NAME` and `edgekit predict MODEL --target T`; also the `bench --target T` path
for non-local targets (`bench_remote`, called by edgekit/commands/bench.py). Tables are rendered by
commands/render.py."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from edgekit.commands.common import check_seconds, console, print_json
from edgekit.commands.render import render_predictions, render_results, wide_console

targets_app = typer.Typer(help="Device profiles: list, show, check (reach the device, report runtimes).",
                          no_args_is_help=True)
DB_HELP = "Results store (SQLite). Default: $EDGEKIT_DB, else ~/.local/share/edgekit/edgekit.db."


@targets_app.command("list")
def targets_list(as_json: bool = typer.Option(False, "--json", help="Print the profiles as JSON.")) -> None:
    """List the known targets (profiles in targets/, $EDGEKIT_TARGETS, plugins, and `local`)."""
    from rich.table import Table

    from edgekit.errors import EdgekitError
    from edgekit.report import fmt
    from edgekit.targets.profile import list_profiles, load_target

    rows = []
    for name in list_profiles():
        try:
            p = load_target(name)
            rows.append({"name": name, "kind": p.kind, "soc": p.soc, "cores": p.cores,
                         "fp32_gflops": p.peak_gflops.get("fp32"), "int8_gops": p.peak_gflops.get("int8"),
                         "bandwidth_gbs": p.memory_bandwidth_gbs,
                         "accelerator": f"{p.accelerator.name} ({fmt.sig(p.accelerator.tops, 4, 'TOPS')})"
                         if p.accelerator else None,
                         "power_w": f"{p.power.idle_w:g}/{p.power.active_w:g}", "transport": p.transport.kind,
                         "formats": list(p.formats), "error": None})
        except EdgekitError as exc:
            rows.append({"name": name, "error": exc.one_line()})
    if as_json:
        print_json(rows)
        return
    table = Table(title="edgekit targets", title_justify="left")
    for col in ("name", "kind", "SoC", "cores", "fp32 GFLOP/s", "int8 GOP/s", "GB/s", "accelerator",
                "idle/active W", "transport", "formats"):
        table.add_column(col)
    for r in rows:
        if r["error"]:
            table.add_row(r["name"], f"[red]{r['error']}[/]", *([""] * 9))
            continue
        table.add_row(r["name"], r["kind"], r["soc"], str(r["cores"] or "—"), fmt.sig(r["fp32_gflops"], 4),
                      fmt.sig(r["int8_gops"], 4), fmt.sig(r["bandwidth_gbs"], 4), r["accelerator"] or "—",
                      r["power_w"], r["transport"], ",".join(r["formats"]))
    wide_console().print(table)


@targets_app.command("show")
def targets_show(name: str = typer.Argument(..., metavar="NAME"),
                 as_json: bool = typer.Option(False, "--json", help="Print the profile as JSON.")) -> None:
    """Show a profile in full, each number with its source."""
    from edgekit.report import fmt
    from edgekit.targets.profile import load_target, numeric_fields, source_for

    p = load_target(name)
    if as_json:
        print_json(p.to_dict())
        return
    out = wide_console()
    out.print(f"[bold]{p.name}[/] — {p.description}  ({p.path})")
    out.print(f"SoC: {p.soc}   kind: {p.kind}   OS: {p.os or '—'}   memory: {p.memory or '—'}")
    for c in p.clusters:
        out.print(f"  cpu: {c.cores}x {c.name} @ {c.max_ghz:g} GHz, FLOP/cycle/core {c.flops_per_cycle}")
    out.print(f"peak GFLOP/s: {', '.join(f'{k} {fmt.sig(v, 4)}' for k, v in p.peak_gflops.items()) or '—'}   "
              f"bandwidth: {fmt.sig(p.memory_bandwidth_gbs, 4, 'GB/s')}   RAM: {fmt.sig(p.ram_gb, 4, 'GB')}")
    if p.accelerator:
        out.print(f"accelerator: {p.accelerator.name}, {fmt.sig(p.accelerator.tops, 4, 'TOPS')} "
                  f"({', '.join(p.accelerator.precisions)}) {p.accelerator.note}")
    out.print(f"power: idle {p.power.idle_w:g} W, active {p.power.active_w:g} W")
    out.print(f"formats: {', '.join(p.formats) or '—'}   runtimes: {', '.join(p.runtimes) or '—'}   "
              f"delegates: {', '.join(p.delegates) or '—'}")
    t = p.transport
    addr = {"ssh": f"{t.user or '?'}@{t.host or '<--host>'}:{t.port or 22}", "macos": f"{t.user or '?'}@"
            f"{t.host or '<--host>'}:{t.port or 22} (CoreML {t.compute_units})", "adb": f"serial {t.serial or 'any'}",
            "command": " ".join(t.command), "local": "this machine"}.get(t.kind, "")
    out.print(f"transport: {t.kind} {addr}; workdir {t.workdir}; timeout {t.timeout_s:g} s")
    d = p.predictor
    out.print(f"predictor defaults: compute eff. {d.compute_efficiency:g}, memory eff. {d.memory_efficiency:g}, "
              f"{d.op_overhead_us:g} µs/op ({d.source})", overflow="fold")
    out.print("[bold]sources[/]")
    for fld in numeric_fields(p):
        out.print(f"  {fld}: {source_for(p, fld)}", overflow="fold", markup=False)
    for key, text in p.sources.items():
        if key not in numeric_fields(p) and not any(f.startswith(key) for f in numeric_fields(p)):
            out.print(f"  {key}: {text}", overflow="fold", markup=False)


def device_options(host: str | None, user: str | None, port: int | None, known_hosts: str | None,
                    identity: str | None, tofu: bool, serial: str | None = None, python: str | None = None,
                    timeout: float | None = None, emulate: bool = False, compute_units: str | None = None,
                    benchmark_binary: str | None = None) -> Any:
    from edgekit.targets.remote import DeviceOptions

    return DeviceOptions(host=host, user=user, port=port, known_hosts=known_hosts, identity_file=identity,
                         trust_on_first_use=tofu, serial=serial, python=python, timeout_s=timeout, emulate=emulate,
                         compute_units=compute_units, benchmark_binary=benchmark_binary)


HOST = typer.Option(None, "--host", help="Device address (ssh/macos targets).")
USER = typer.Option(None, "--user", help="SSH user (default: the profile's).")
PORT = typer.Option(None, "--port", min=1, max=65535, help="SSH port (default: the profile's, else 22).")
KNOWN = typer.Option(None, "--known-hosts", help="known_hosts file (default ~/.ssh/known_hosts).")
IDENT = typer.Option(None, "--identity", help="SSH private key file. Passwords only via $EDGEKIT_SSH_PASSWORD.")
TOFU = typer.Option(False, "--trust-on-first-use",
                    help="Accept and record an unknown host key once (a changed key is always refused).")
SERIAL = typer.Option(None, "--serial", help="adb device serial (adb targets).")
PYTHON = typer.Option(None, "--python", help="Python on the device that runs the agent.")
TIMEOUT = typer.Option(None, "--timeout", min=0.001, help="Seconds one device call may take.")
EMULATE = typer.Option(False, "--emulate", help="Run on arm64 under qemu (timings labelled emulated).")


@targets_app.command("check")
def targets_check(
    name: str = typer.Argument(..., metavar="NAME"),
    host: str = HOST, user: str = USER, port: int = PORT, known_hosts: str = KNOWN, identity: str = IDENT,
    tofu: bool = TOFU, serial: str = SERIAL, python: str = PYTHON, timeout: float = TIMEOUT, emulate: bool = EMULATE,
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Reach the device and report its runtime versions, or say exactly why it cannot."""
    from edgekit.targets.remote import check_target

    check_seconds("--timeout", timeout)
    report = check_target(name, device_options(host, user, port, known_hosts, identity, tofu, serial, python,
                                                timeout, emulate))
    if as_json:
        print_json(report.to_dict())
        return
    out = wide_console()
    out.print(f"[green]reached[/] {report.target} via {report.transport} ({report.address})")
    for k, v in report.host.items():
        out.print(f"  {k}: {v}")
    out.print("runtimes:")
    for k, v in report.runtimes.items():
        out.print(f"  {k}: {v or '[dim]not installed[/]'}")
    for n in report.notes:
        out.print(f"note: {n}", overflow="fold")


def predict_cmd(
    ref: str = typer.Argument(..., metavar="MODEL_OR_ARTIFACT",
                              help="A model (card name, models/X.toml, file.py:factory), an .onnx file, or an export "
                                   "directory / manifest.json."),
    target: str = typer.Option(..., "--target", "-t", help="Target profile name (see `edgekit targets list`)."),
    precision: str = typer.Option("fp32", "--precision", "-p", help="Precision(s), comma list: fp32,int8,..."),
    fmt: str = typer.Option(None, "--format", "-f",
                            help="Format(s) to predict, comma list: onnx,tflite (default: the file's, else onnx)."),
    inputs: list[str] = typer.Option([], "--input", "-i", help="Input NAME:1x3x224x224[:DTYPE], repeatable."),
    db: Path = typer.Option(None, "--db", help=DB_HELP),
    as_json: bool = typer.Option(False, "--json", help="Print the predictions as JSON."),
) -> None:
    """Predict latency on a target from the artifact's own graph (ONNX or TFLite; roofline per operator, calibrated
    per operator class on profiles, else on measured runs of that target in the store). Figures are labelled
    `predicted`, with the calibration error; a format the target does not run is refused."""
    from edgekit.bench.jobs import resolve_jobs
    from edgekit.errors import EdgekitError
    from edgekit.formats import format_for_suffix
    from edgekit.store import ResultsStore
    from edgekit.targets.profile import load_target
    from edgekit.targets.remote import predict_jobs

    known = format_for_suffix(ref)
    file_fmt = known.name if known is not None else None
    if file_fmt not in (None, "onnx", "tflite"):
        raise EdgekitError(f"{Path(ref).name} is a {file_fmt} artifact, but predict reads ONNX and TFLite graphs",
                           "give the .onnx or .tflite file of the same export, its export directory, or the model")
    profile = load_target(target)
    precisions = [p.strip() for p in precision.split(",") if p.strip()]
    formats = [f.strip() for f in fmt.split(",") if f.strip()] if fmt else [file_fmt or "onnx"]
    jobs = resolve_jobs(ref, formats, precisions, inputs or None)
    with ResultsStore(db) as store:
        preds, notes = predict_jobs(jobs, profile, store)
    if as_json:
        print_json([p.to_dict() for p in preds])
        return
    render_predictions(preds, notes)


def bench_remote(ref: str, target: str, formats: list[str] | None, precisions: list[str] | None,
                 inputs: list[str] | None, config: Any, options: Any, db: Path | None, as_json: bool,
                 samples: bool) -> None:
    """`edgekit bench --target T` for a non-local target: the device through its transport when reachable (or
    emulated), else predicted figures. Renders like `edgekit bench`."""
    from edgekit.bench.jobs import resolve_jobs
    from edgekit.report import fmt
    from edgekit.store import ResultsStore
    from edgekit.targets.profile import load_target
    from edgekit.targets.remote import bench_on_target

    profile = load_target(target)
    if options.emulate and not formats:
        formats = ["onnx"]
    if not formats and profile.formats and not Path(ref).expanduser().exists():
        # the formats the device runs, plus ONNX: the predictor reads the ONNX graph when no device answers
        formats = sorted({f for f in profile.formats if f in ("onnx", "tflite", "coreml")} | {"onnx"})
    store = ResultsStore(db)
    try:
        jobs = resolve_jobs(ref, formats, precisions, inputs or None)
        from edgekit.bench.runner import new_group

        run = bench_on_target(jobs, target, config, options, store=store, group=new_group())
    finally:
        store.close()
    if as_json:
        doc = run.to_dict()
        if samples:
            doc["results"] = [r.to_dict(samples=True) for r in run.results]
        print_json(doc)
    elif run.mode == "predicted":
        console().print(run.notes[0], overflow="fold", markup=False)
        render_predictions(run.predictions, run.notes[1:])
    else:
        render_results(run.results, store.path)
        for r in run.results:
            parity = (r.runtime or {}).get("parity")
            if parity:
                console().print(f"arm64 parity {r.model} {r.format}/{r.precision}: {parity.get('verdict')} "
                                f"(max abs {fmt.sig(parity.get('max_abs'), 4)}, "
                                f"cosine {fmt.sig(parity.get('cosine'), 4)} vs "
                                f"{parity.get('reference')})", overflow="fold", markup=False)
    if run.error is not None:
        raise run.error
    failed = [r for r in run.results if r.status in ("failed", "killed")]
    for r in failed:
        typer.echo(f"error: {r.model} {r.format}/{r.precision}: {r.error}", err=True)
    if failed:
        raise typer.Exit(2)


def register(app: typer.Typer) -> None:
    app.add_typer(targets_app, name="targets")
    app.command("predict")(predict_cmd)
