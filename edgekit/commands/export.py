"""`edgekit export`: model -> ONNX / TFLite / CoreML artifacts with parity proofs and a manifest."""

from __future__ import annotations

from pathlib import Path

import typer

from edgekit.commands.common import console, fmt_num, print_json


def _verdict_style(verdict: str) -> str:
    return {"pass": "green", "fail": "red", "error": "red", "not-executed": "yellow"}.get(verdict, "")


def render_manifest(manifest) -> None:
    from rich.table import Table

    table = Table(show_lines=False, title=f"{manifest.model} — exports and parity vs PyTorch", title_justify="left")
    for col, kw in (("format", {}), ("precision", {}), ("status", {}), ("size (KiB)", {"justify": "right"}),
                    ("export (s)", {"justify": "right"}), ("parity", {}), ("max abs err", {"justify": "right"}),
                    ("cosine", {"justify": "right"}),
                    ("top-1 agree", {"justify": "right"}), ("runtime / note", {"overflow": "fold"})):
        table.add_column(col, **kw)
    for art in manifest.artifacts:
        p = art.parity
        if art.status != "ok":
            style = "dim" if art.status == "skipped" else "red"
            table.add_row(art.format, art.precision, f"[{style}]{art.status}[/]", "—", fmt_num(art.export_seconds, 2),
                          "—", "—", "—", "—", f"[{style}]{art.error}[/]")
            continue
        verdict = p.verdict if p else "—"
        if p and p.verdict == "not-executed":
            note = "validated, not run: CoreML runs only on macOS"
        elif p and p.note:
            note = p.note
        else:
            note = f"{p.runtime} {p.runtime_version}, {p.n_inputs} inputs" if p else ""
        if art.details.get("cache") == "hit":
            note = "(cached) " + note
        table.add_row(
            art.format, art.precision, "ok", f"{(art.size_bytes or 0) / 1024:.1f}", fmt_num(art.export_seconds, 2),
            f"[{_verdict_style(verdict)}]{verdict}[/]",
            (f"{p.max_abs:.1e}" if p and p.max_abs is not None else "—"),
            fmt_num(p.cosine if p else None, 6), fmt_num(p.top1_agreement if p else None, 2), note,
        )
    out = console()
    if not out.is_terminal:
        out.width = max(out.width, 150)
    out.print(table)


def export_cmd(
    model: str = typer.Argument(..., help="Built-in model or card name, models/NAME.toml, or path/to/file.py:factory."),
    formats: str = typer.Option("onnx,tflite,coreml", "--formats", "-f", help="Comma list: onnx,tflite,coreml,torch."),
    quantize: str = typer.Option("", "--quantize", "-q", help="Quantized variants: fp16,int8,int8-static,int4."),
    out: Path = typer.Option(Path("artifacts"), "--out", "-o", help="Output directory (artifacts/<model> by default)."),
    inputs: list[str] = typer.Option([], "--input", "-i", help="Input spec NAME:1x3x224x224[:DTYPE], repeatable."),
    random_inputs: int = typer.Option(4, "--random-inputs", help="Seeded random inputs checked for parity."),
    seed: int = typer.Option(0, "--seed"),
    no_cache: bool = typer.Option(False, "--no-cache", help="Re-export even when an identical artifact exists."),
    as_json: bool = typer.Option(False, "--json", help="Print the manifest as JSON."),
) -> None:
    """Export MODEL to ONNX, TFLite and CoreML (+ quantized variants) and prove each artifact matches PyTorch."""
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    from edgekit.export.pipeline import FORMATS, QUANTIZED, export_model, parse_list
    from edgekit.modelsource import load_model

    fmts = parse_list(formats, FORMATS, "format")
    precisions = parse_list(quantize, QUANTIZED, "precision")
    err = console(stderr=True)
    with err.status(f"loading {model}"):
        loaded = load_model(model, inputs, seed=seed)
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
                                reuse=not no_cache, progress=progress)
    if as_json:
        print_json(manifest.to_dict())
    else:
        render_manifest(manifest)
        console().print(f"manifest: {out_dir / 'manifest.json'}")
    failed = [a for a in manifest.artifacts if a.status == "failed" or (a.parity and a.parity.verdict in ("fail", "error"))]
    for art in failed:
        reason = art.error or (art.parity.note if art.parity and art.parity.note else f"parity {art.parity.verdict}")
        typer.echo(f"error: {art.format} {art.precision}: {reason}", err=True)
    if failed:
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    app.command("export")(export_cmd)
