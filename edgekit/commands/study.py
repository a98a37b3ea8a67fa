"""`edgekit study fragility`: parse, call edgekit.study.run_study, render. Heavy imports stay inside the command."""

from __future__ import annotations

from pathlib import Path

import typer

from edgekit.commands.common import console, fmt_num, print_json, threads_option
from edgekit.errors import EdgekitError


def _parse_seeds(text: str) -> tuple[int, ...]:
    try:
        seeds = tuple(int(x) for x in text.split(",") if x.strip())
    except ValueError as exc:
        raise EdgekitError(f"cannot read --seeds {text!r}", "give integers separated by commas, e.g. --seeds 0,1") from exc
    if not seeds:
        raise EdgekitError("no seeds given", "give at least one, e.g. --seeds 0,1")
    return seeds


def _render(result) -> None:
    from rich.table import Table

    out = console()
    if not out.is_terminal:
        out.width = max(out.width, 160)  # piped output: do not squeeze the tables to 80 columns
    cfg = result.config
    model = cfg["size"] if cfg.get("backbone", "scratch") == "scratch" else f"{cfg['backbone']} backbone (frozen)"
    table = Table(title=f"fragility study — {model} ({result.reference} = reference), targets "
                        f"{', '.join(cfg['targets'])}, seeds {', '.join(map(str, cfg['seeds']))}; macro-F1, ONNX "
                        "artifacts in onnxruntime")
    for col in ("variant", "method", "target", "c", "S\\[target]", "mean_off", "DSI", "GG", "CDTR", "seeds"):
        table.add_column(col, justify="left" if col in ("variant", "method", "target") else "right")
    ref = next((r for r in result.records if r.model == result.reference), None)
    if ref is not None:
        table.add_row(result.reference, "base", "—", fmt_num(0.0), "—",
                      fmt_num(sum(ref.scores.values()) / len(ref.scores)), "—", "0", "—", "")
    for m in result.metrics:
        table.add_row(m.model, {"ft": "fine-tune", "kd": "GEM distil"}.get(m.method, m.method), m.target,
                      fmt_num(m.c), fmt_num(m.s_target), fmt_num(m.mean_off), fmt_num(m.dsi), fmt_num(m.gg),
                      fmt_num(m.cdtr), str(m.seeds))
    out.print(table)
    corr = Table(title="brittleness vs compression: Spearman rho (95 % bootstrap CI over tasks and seeds)")
    for col in ("variants", "rho(c, ·)", "rho", "CI", "n"):
        corr.add_column(col, justify="left" if col in ("variants", "rho(c, ·)") else "right")
    for key, c in result.correlations.items():
        scope, _metric = key.split(":")
        corr.add_row({"all": "all", "ft": "fine-tuned", "kd": "GEM distilled"}[scope], c["y"], fmt_num(c["rho"]),
                     f"[{fmt_num(c['ci_low'])}, {fmt_num(c['ci_high'])}]", str(c["n"]))
    out.print(corr)
    claims = Table(title="the paper's claims on this suite")
    for col in ("claim", "paper", "measured (95 % CI over targets x seeds)", "verdict"):
        claims.add_column(col)
    for c in result.claims:
        style = "green" if c.verdict == "reproduced" else "red"
        claims.add_row(c.claim, c.paper, c.measured, f"[{style}]{c.verdict}[/{style}]")
    out.print(claims)
    for note in result.notes:
        out.print(f"note: {note}")
    t = result.timings_s
    features = f"backbone features {t['features']:.0f} s, " if "features" in t else ""
    out.print(f"wall time {result.wall_s:.1f} s ({features}train {t['train']:.0f} s, PyTorch eval "
              f"{t['evaluate_torch']:.0f} s, export+compress+ONNX eval {t['compress_evaluate']:.0f} s); "
              + (f"stored in {result.store} (group {result.group})" if result.store else "not stored"))
    lat = (getattr(result, "headline", None) or {}).get("latency_ms", {}).get("local", {}).get("per_compression", {})
    if lat:
        out.print("deployed latency, batch 1, longest test text (measured here, backbone + top in onnxruntime): "
                  + ", ".join(f"{c} p50 {v['p50']:.1f} / p90 {v['p90']:.1f} ms" for c, v in lat.items()))
    if cfg.get("budget_s"):
        out.print(f"budget: {cfg['budget_s'] / 60:.0f} min wall on a shared 2-core CPU, {cfg['threads']} thread(s) "
                  f"(docs/study.md); this run: {result.wall_s / 60:.1f} min")


def register(app: typer.Typer) -> None:
    study = typer.Typer(help="End-to-end studies over the toolchain (docs/study.md).", no_args_is_help=True)
    app.add_typer(study, name="study")

    @study.command("fragility")
    def fragility(
        targets: str = typer.Option(None, "--targets", "-t",
                                    help="Target domains, comma-separated, or 'all' (default healthcare,law; "
                                         "--quick: law)."),
        seeds: str = typer.Option(None, "--seeds", help="Training seeds (default 0,1; --quick: 0)."),
        size: str = typer.Option(None, "--size", help="tiny (gem-tiny vs gem-dense-tiny, the default) or small "
                                                      "(gem-small); --backbone scratch only."),
        backbone: str = typer.Option("scratch", "--backbone",
                                     help="scratch (train --size from random weights) or minilm (gem-minilm: the "
                                          "pretrained all-MiniLM-L6-v2, frozen, + 2 SCAR blocks, vs a dense MiniLM; "
                                          "all 8 domains; budget 30 min on 2 CPU cores; `make setup-minilm`)."),
        compressions: str = typer.Option(None, "--compressions",
                                         help="Comma-separated from fp32,fp16,int8,int8-static,int4,prune30,"
                                              "prune50,prune70 (default all; --quick: fp32,int8,prune50)."),
        quick: bool = typer.Option(False, "--quick", help="Tiny budget: 1 target, 1 seed, 3 compressions (~1 min)."),
        base_epochs: int = typer.Option(None, "--base-epochs", help="Epochs of the general base."),
        spec_epochs: int = typer.Option(None, "--spec-epochs", help="Epochs of each specialisation."),
        no_dense: bool = typer.Option(False, "--no-dense", help="Skip the dense baseline (claim 3 is then not measured)."),
        threads: int = threads_option("CPU threads for PyTorch and onnxruntime (default 1)."),
        out: Path = typer.Option(None, "--out", help="Keep the ONNX artifacts here (default: a deleted temp dir)."),
        cache_dir: Path = typer.Option(None, "--cache-dir", help="Suite cache root (default $EDGEKIT_CACHE)."),
        db: Path = typer.Option(None, "--db", help="Results store (default $EDGEKIT_DB or ~/.local/share/edgekit)."),
        no_store: bool = typer.Option(False, "--no-store", help="Do not write results to the store."),
        as_json: bool = typer.Option(False, "--json", help="Machine-readable output."),
    ) -> None:
        """Specialise a general GEM two ways, compress each variant, evaluate the deployed artifacts per domain,
        compute DSI / GG / CDTR vs compression intensity and check the paper's claims."""
        from dataclasses import replace

        from edgekit.evalsuite import DOMAINS, parse_domains
        from edgekit.study import StudyConfig, run_study
        from edgekit.study.config import COMPRESSIONS

        if backbone == "minilm":
            if size is not None:
                raise EdgekitError("--size applies to --backbone scratch only",
                                   "drop --size (--backbone minilm is gem-minilm vs a dense MiniLM of the same size)")
            from edgekit.study.pretrained import require_minilm

            require_minilm()
            cfg = StudyConfig.minilm_config(quick=quick)
        elif quick:
            cfg = StudyConfig.quick_config(size=size or "tiny", backbone=backbone)
        else:
            cfg = StudyConfig(size=size or "tiny", backbone=backbone)
        changes: dict = {}
        if targets:
            changes["targets"] = DOMAINS if targets.strip().lower() == "all" else parse_domains(targets)
        if seeds:
            changes["seeds"] = _parse_seeds(seeds)
        if compressions:
            items = tuple(x.strip() for x in compressions.split(",") if x.strip())
            bad = [x for x in items if x not in COMPRESSIONS]
            if bad or not items:
                raise EdgekitError(f"unknown compression {', '.join(bad) or '(none)'}",
                                   f"use any of {', '.join(COMPRESSIONS)}")
            changes["compressions"] = items
        for key, value in (("base_epochs", base_epochs), ("spec_epochs", spec_epochs), ("threads", threads)):
            if value is not None:
                changes[key] = value
        if no_dense:
            changes["dense_baseline"] = False
        cfg = replace(cfg, **changes)
        if as_json:
            result = run_study(cfg, db=db, store=not no_store, out_dir=out, cache_dir=cache_dir)
            print_json(result.to_dict())
            return
        err = console(stderr=True)
        with err.status("fragility study") as status:
            result = run_study(cfg, db=db, store=not no_store, out_dir=out, cache_dir=cache_dir,
                               progress=lambda msg: status.update(f"fragility study: {msg}"))
        _render(result)
