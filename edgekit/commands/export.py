"""`edgekit export`: model -> ONNX / TFLite / CoreML artifacts with parity proofs and a manifest."""

from __future__ import annotations

from pathlib import Path

import typer

from edgekit.commands.common import SEED_MAX, console, fmt_num, print_json
from edgekit.errors import EdgekitError


def _verdict_style(verdict: str) -> str:
    return {"pass": "green", "fail": "red", "error": "red", "not-executed": "yellow",
            "inconclusive": "yellow"}.get(verdict, "")


def _kinds_lines(manifest) -> list[str]:
    """What each output was judged as, and whether that was declared or inferred (from the first checked artifact)."""
    for art in manifest.artifacts:
        if art.parity and art.parity.outputs:
            return [f"output {o['name']}: {_kind_words(o)} ({o['kind_source']}"
                    + ("; declare it with --task" if str(o["kind_source"]).startswith("inferred") else "") + ")"
                    for o in art.parity.outputs]
    return []


def _kind_words(o: dict) -> str:
    from edgekit.export.outputs import KINDS

    words = KINDS.get(str(o.get("kind")), (str(o.get("kind")), None))[0]
    return f"{words}, classes on axis {o['axis']}" if o.get("axis") is not None else words


def _payoff_cell(art) -> str:
    """"0.27x, 1.9x" (size ratio, quick measured speed-up vs the fp32 twin), red when it does not pay off."""
    pay = art.details.get("payoff")
    if not isinstance(pay, dict) or "size_ratio" not in pay:
        return "—"
    speed = pay.get("speed") or {}
    speedup = f"{fmt_num(speed['speedup'], 2)}x" if "speedup" in speed else "not run"
    text = f"{fmt_num(pay['size_ratio'], 2)}x, {speedup}"
    return f"[red]{text}[/]" if pay.get("flags") else text


def _payoff_warnings(art) -> list[str]:
    """What the table must not present silently: a variant larger or slower than fp32, random calibration."""
    pay = art.details.get("payoff")
    out = [f"{f}" for f in (pay.get("flags") or [])] if isinstance(pay, dict) else []
    if art.details.get("calibration_warning"):
        out.append(str(art.details["calibration_warning"]))
    return out


def _accuracy_cell(art) -> str:
    """"0.9120 (-0.0040)": top-1 on --eval-data and its change vs the fp32 twin (docs/export.md)."""
    acc = art.details.get("accuracy")
    if not isinstance(acc, dict) or acc.get("value") is None:
        return "—" if not isinstance(acc, dict) else f"[red]{acc.get('error', '—')}[/]"
    if art.precision == "fp32" and acc.get("delta_vs") == "PyTorch fp32":
        return fmt_num(acc["value"], 4)
    return f"{fmt_num(acc['value'], 4)} ({fmt_num(acc['delta'], 4, signed=True)})"


def render_manifest(manifest) -> None:
    from rich.table import Table

    table = Table(show_lines=False, title=f"{manifest.model} — exports and parity vs PyTorch", title_justify="left")
    for col, kw in (("format", {}), ("precision", {}), ("status", {}), ("size (KiB)", {"justify": "right"}),
                    ("vs fp32 (size, speed)", {"justify": "right"}), ("export (s)", {"justify": "right"}), ("parity", {}), ("scale", {"justify": "right"}),
                    ("max abs err", {"justify": "right"}), ("max rel err", {"justify": "right"}),
                    ("cosine", {"justify": "right"}),
                    ("top-1 agree", {"justify": "right"}), ("runtime / note", {"overflow": "fold"})):
        table.add_column(col, **kw)
    with_acc = any("accuracy" in a.details for a in manifest.artifacts)
    if with_acc:  # --eval-data: top-1 on the labelled data, and its change vs the fp32 twin
        table.add_column("top-1 (Δ fp32)", justify="right")
    for art in manifest.artifacts:
        p = art.parity
        if art.status != "ok":
            style = "dim" if art.status == "skipped" else "red"
            table.add_row(art.format, art.precision, f"[{style}]{art.status}[/]", "—", "—",
                          fmt_num(art.export_seconds, 2),
                          "—", "—", "—", "—", "—", "—", f"[{style}]{art.error}[/]", *(["—"] if with_acc else []))
            continue
        verdict = p.verdict if p else "—"
        if p and p.verdict == "not-executed":
            note = "validated, not run: CoreML runs only on macOS"
        elif p and p.note:
            note = p.note + (f"; first divergence: {p.first_divergence}" if p.first_divergence else "")
        elif p and p.first_divergence:
            note = f"first divergence: {p.first_divergence}"
        else:
            note = f"{p.runtime} {p.runtime_version}, {p.n_inputs} inputs" if p else ""
        if art.details.get("cache") == "hit":
            note = "(cached) " + note
        control = art.details.get("accuracy_control")
        if isinstance(control, dict) and control.get("note"):
            note += f"; accuracy control ({control['max_drop']:g}): {control['note']}"
        note += "".join(f"; [red]{w}[/]" for w in _payoff_warnings(art))
        table.add_row(
            art.format, art.precision, "ok", f"{(art.size_bytes or 0) / 1024:.1f}", _payoff_cell(art),
            fmt_num(art.export_seconds, 2),
            f"[{_verdict_style(verdict)}]{verdict}[/]",
            (f"{p.scale:.1e}" if p and p.scale is not None else "—"),
            (f"{p.max_abs:.1e}" if p and p.max_abs is not None else "—"),
            (f"{p.max_rel:.1e}" if p and p.max_rel is not None else "—"),
            fmt_num(p.cosine if p else None, 6), fmt_num(p.top1_agreement if p else None, 2), note,
            *([_accuracy_cell(art)] if with_acc else []),
        )
    out = console()
    if not out.is_terminal:
        out.width = max(out.width, 150)
    out.print(table)
    for line in _kinds_lines(manifest):
        out.print(line, highlight=False)


def export_cmd(
    model: str = typer.Argument(..., help="Built-in model or card name, models/NAME.toml, or path/to/file.py:factory."),
    formats: str = typer.Option("onnx,tflite,coreml", "--format", "-f",
                                help="Format(s), comma list: onnx,tflite,coreml,torch."),
    quantize: str = typer.Option("", "--precision", "-p",
                                 help="Precision(s) besides fp32 (always exported), comma list: "
                                      "fp16,int8,int8-static,int4."),
    formats_alias: str = typer.Option(None, "--formats", hidden=True, help="Old spelling of --format."),
    quantize_alias: str = typer.Option(None, "--quantize", hidden=True, help="Old spelling of --precision."),
    out: Path = typer.Option(Path("artifacts"), "--out", "-o", help="Output directory (artifacts/<model> by default)."),
    inputs: list[str] = typer.Option([], "--input", "-i", help="Input spec NAME:1x3x224x224[:DTYPE], repeatable."),
    random_inputs: int = typer.Option(4, "--random-inputs", help="Seeded random inputs checked for parity."),
    seed: int = typer.Option(0, "--seed", min=0, max=SEED_MAX),
    no_cache: bool = typer.Option(False, "--no-cache", help="Re-export even when an identical artifact exists."),
    calibration: Path = typer.Option(None, "--calibration", help="Calibration data for static int8: an .npz keyed "
                                     "by input name, or a folder of .npy files (else the card's own source, else "
                                     "random inputs, flagged)."),
    target: str = typer.Option("", "--target", help="Target the int8 variants are for: a target name (rpi4, "
                               "pixel6, ...), arm or x86. Arm gets S8S8 activations, x86 U8S8 (default: this host)."),
    localize: bool = typer.Option(False, "--localize", help="Name the first module whose output diverges from "
                                  "PyTorch (ONNX, TFLite), also when parity passes; a failed check always does."),
    task_spec: str = typer.Option("", "--task", help="What the outputs are, for parity: classification, segmentation, "
                             "lm, embedding, regression, detection, or per output NAME=KIND[:CLASS_AXIS] "
                             "(kinds: class, dense, tokens, embedding, regression, boxes). Inferred when absent."),
    checkpoint: Path = typer.Option(None, "--checkpoint", help="Trained weights: a state_dict file (torch.save; "
                                    "loaded with weights_only=True), e.g. from `edgekit eval CARD --save-checkpoint`."),
    eval_data: str = typer.Option(None, "--eval-data", help="Labelled data for top-1 accuracy per artifact: an .npz "
                                  "with one array per input (by name) and `labels`, or `suite` (the 8-domain suite's "
                                  "validation split, for a model with its joint head)."),
    max_accuracy_drop: float = typer.Option(None, "--max-accuracy-drop", min=0.0, max=1.0,
                                            help="int8 (ONNX, TFLite): keep the most sensitive layers float until "
                                                 "top-1 on --eval-data is within this of fp32 (e.g. 0.01)."),
    as_json: bool = typer.Option(False, "--json", help="Print the manifest as JSON."),
) -> None:
    """Export MODEL to ONNX, TFLite and CoreML (+ quantized variants) and prove each artifact matches PyTorch."""
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    from edgekit.export.pipeline import QUANTIZED, export_model, parse_list
    from edgekit.formats import format_names
    from edgekit.modelsource import load_model

    fmts = parse_list(formats_alias if formats_alias is not None else formats, format_names(), "format")
    precisions = tuple(p for p in parse_list(quantize_alias if quantize_alias is not None else quantize,
                                             ("fp32", *QUANTIZED), "precision") if p != "fp32")
    err = console(stderr=True)
    with err.status(f"loading {model}"):
        loaded = load_model(model, inputs, seed=seed, checkpoint=checkpoint)
        from edgekit.export.calibration import load_calibration, target_isa

        target_isa(target)  # an unknown --target or an unreadable --calibration is one line, before any export
        if calibration is not None:
            load_calibration(calibration, loaded.inputs)
        if max_accuracy_drop is not None and not eval_data:
            raise EdgekitError("--max-accuracy-drop needs labelled data to measure the drop",
                               "add --eval-data FILE.npz (inputs by name + labels), or --eval-data suite")
        if eval_data and eval_data != "suite":
            from edgekit.export.accuracy import load_eval_data

            load_eval_data(eval_data, loaded.inputs)  # a bad file is one line, before any export
        if task_spec:
            from edgekit.export.parity import declare_task

            declare_task(loaded, task_spec)
    out_dir = out / loaded.name if out == Path("artifacts") else out
    n_total = len(fmts) * (1 + len(precisions))
    with Progress(SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(), console=err,
                  transient=True, disable=as_json and not err.is_terminal) as bar:
        task = bar.add_task(f"exporting {loaded.name}", total=n_total)

        def progress(fmt: str, precision: str, phase: str) -> None:
            bar.update(task, description=f"{loaded.name}: {fmt} {precision} — {phase}")
            if phase in ("parity", "cached"):
                bar.advance(task)

        manifest = export_model(loaded, out_dir, fmts, precisions, n_random=random_inputs, seed=seed,
                                reuse=not no_cache, progress=progress, calibration=calibration, target=target,
                                localize=localize, eval_data=eval_data, max_accuracy_drop=max_accuracy_drop)
    if as_json:
        print_json(manifest.to_dict())
    else:
        render_manifest(manifest)
        console().print(f"manifest: {out_dir / 'manifest.json'}")
    failed = [a for a in manifest.artifacts if a.status == "failed" or (a.parity and a.parity.verdict in ("fail", "error"))]
    for art in failed:
        reason = art.error or (art.parity.note if art.parity and art.parity.note else f"parity {art.parity.verdict}")
        if art.parity and art.parity.first_divergence:
            reason += f"; first divergence: {art.parity.first_divergence}"
        typer.echo(f"error: {art.format} {art.precision}: {reason}", err=True)
    for art in manifest.artifacts:  # not a failed check, but never a pass either: say why
        if art.status == "ok" and art.parity and art.parity.verdict == "inconclusive":
            typer.echo(f"warning: {art.format} {art.precision}: parity inconclusive: {art.parity.note}", err=True)
    for art in manifest.artifacts:  # a variant that does not pay off, or was calibrated on random data
        if art.status == "ok":
            for line in _payoff_warnings(art):
                typer.echo(f"warning: {art.format} {art.precision}: {line}", err=True)
    for art in manifest.rejected:  # failed again, but the folder's earlier good artifact and its record are kept
        typer.echo(f"error: {art.format} {art.precision}: {art.error} (the earlier artifact is kept)", err=True)
    if failed or manifest.rejected:
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    app.command("export")(export_cmd)
