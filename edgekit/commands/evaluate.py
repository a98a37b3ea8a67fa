"""`edgekit eval`, `edgekit metrics` and `edgekit eval-data`: parse, call edgekit.evalsuite / edgekit.metrics,
render. Heavy imports stay inside the commands so the CLI starts fast."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from edgekit.commands.common import SEED_MAX, console, fmt_num, print_json, threads_option, wide_option
from edgekit.errors import EdgekitError

_CONFIG_HELP = "Model config override KEY=VALUE (repeatable), e.g. --config dim=64."


def _parse_config(items: list[str]) -> dict:
    import json

    cfg = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise EdgekitError(
                f"cannot read --config {item!r}", "write it as KEY=VALUE, e.g. --config depth=2"
            )
        try:
            cfg[key.strip()] = json.loads(value)
        except json.JSONDecodeError:
            cfg[key.strip()] = value
    return cfg


def _accepted(zoo_name: str, cfg: dict) -> dict:
    """The suite sizes a factory takes: all of them for `factory(**cfg)`, else only its named parameters."""
    import inspect

    from edgekit.zoo.registry import REGISTRY

    params = inspect.signature(REGISTRY.get(zoo_name).factory).parameters
    if any(p.kind is p.VAR_KEYWORD for p in params.values()):
        return cfg
    return {k: v for k, v in cfg.items() if k in params}


def _build_model(name: str, space_total: int, vocab_size: int, seq_len: int, overrides: dict):
    """A zoo model (or a model card's) with a joint classification head over the suite."""
    from edgekit.specs import find_card
    from edgekit.zoo import create_model

    card = find_card(name)
    zoo_name = card.model if card else name
    cfg = dict(card.config) if card else {}
    cfg.update({"num_classes": space_total, "vocab_size": vocab_size, "max_len": seq_len})
    cfg = _accepted(zoo_name, cfg)  # a pretrained model fixes its own vocabulary and length
    cfg.update(overrides)
    try:
        return create_model(zoo_name, **cfg)
    except TypeError as exc:
        raise EdgekitError(
            f"model {name!r} cannot be built as a text classifier ({exc})",
            "evaluate a sequence classifier that takes token ids (e.g. gem-tiny, gem-dense-tiny, gem-small)",
        ) from exc


def _load_checkpoint(model, path: Path) -> None:
    import torch

    if not path.is_file():
        raise EdgekitError(
            f"checkpoint {path} does not exist", "check the path (written by --save-checkpoint)"
        )
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise EdgekitError(
            f"cannot read checkpoint {path} ({type(exc).__name__}: {exc})",
            "give a state_dict saved with torch.save (edgekit eval --save-checkpoint)",
        ) from exc
    if isinstance(state, dict) and "state_dict" in state:
        state = state["state_dict"]
    try:
        model.load_state_dict(state)
    except (RuntimeError, TypeError, AttributeError) as exc:
        raise EdgekitError(
            f"checkpoint {path} does not fit this model ({str(exc).splitlines()[0]})",
            "use the same model, --config, --seq-len and --vocab-size as when it was saved",
        ) from exc


def _exported_from_checkpoint(path: Path) -> bool:
    """True when manifest.json beside the artifact records that it was exported from a checkpoint (trained weights:
    `edgekit export --checkpoint`, or a card's `checkpoint`)."""
    from edgekit.export.artifact import MANIFEST_NAME, Manifest

    if not (path.parent / MANIFEST_NAME).is_file():
        return False
    try:
        arts = Manifest.read(path.parent).artifacts
    except EdgekitError:
        return False
    mine = [a for a in arts if a.path and Path(a.path).name == path.name and a.details.get("weights")]
    if not mine:
        return False
    from edgekit.files import file_sha256

    return mine[0].sha256 == file_sha256(path)  # the very file the manifest describes


def _render_eval(result, note: str) -> None:
    from rich.table import Table

    kind = "PyTorch" if result.kind == "torch" else result.kind
    table = Table(title=f"{result.model} ({kind}) on the edgekit suite — test split, seed {result.seed}")
    for col in ("domain", "task", "classes", "n test", "macro-F1", "accuracy"):
        table.add_column(col, justify="left" if col in ("domain", "task") else "right")
    for s in result.scores:
        table.add_row(
            s.domain, s.task, str(s.n_classes), str(s.n_test), fmt_num(s.macro_f1), fmt_num(s.accuracy)
        )
    table.add_row("mean", "", "", "", fmt_num(result.mean_macro_f1), "", style="bold")
    out = console()
    out.print(table)
    if note:
        out.print(note)


def register(app: typer.Typer) -> None:
    @app.command("eval")
    def eval_cmd(
        model: str = typer.Argument(
            ..., help="A zoo model or card name (gem-tiny), or an exported .onnx / .tflite."
        ),
        domains: str = typer.Option(
            None, "--domains", "-d", help="Comma-separated domains (default: all eight)."
        ),
        seed: int = typer.Option(0, min=0, max=SEED_MAX, help="Split seed (and training seed)."),
        seq_len: int = typer.Option(
            None, "--seq-len", help="Tokens per example (default 64, or the artifact's)."
        ),
        vocab_size: int = typer.Option(8192, "--vocab-size", help="Hashed vocabulary size of the tokenizer."),
        train_epochs: int = typer.Option(
            0, "--train-epochs", help="Train a PyTorch model first (CPU, all eight train splits) for N epochs."
        ),
        max_train: int = typer.Option(None, "--max-train", help="Cap training examples per domain."),
        lr: float = typer.Option(2e-3, "--lr", help="Learning rate of --train-epochs (AdamW)."),
        checkpoint: Path = typer.Option(
            None, "--checkpoint", help="Load a state_dict (weights_only) before eval."
        ),
        save_checkpoint: Path = typer.Option(
            None, "--save-checkpoint", help="Save the state_dict after training."
        ),
        config: list[str] = typer.Option([], "--config", help=_CONFIG_HELP),
        trained: bool = typer.Option(
            False, "--trained", help="Artifacts: state that the exported weights were trained."
        ),
        threads: int = threads_option("Runtime threads for artifacts."),
        cache_dir: Path = typer.Option(
            None, "--cache-dir", help="Suite cache root (default $EDGEKIT_CACHE or ~/.cache/edgekit)."
        ),
        db: Path = typer.Option(
            None, "--db", help="Results store (default $EDGEKIT_DB or ~/.local/share/edgekit)."
        ),
        no_store: bool = typer.Option(False, "--no-store", help="Do not write the results to the store."),
        save_csv: Path = typer.Option(
            None, "--save-csv", help="Append the scores to a model,domain,task,score CSV."
        ),
        as_json: bool = typer.Option(False, "--json", help="Machine-readable output."),
    ) -> None:
        """Macro-F1 and accuracy per domain on the suite's test split, for a PyTorch model or an exported artifact."""
        from edgekit.evalsuite import SuiteConfig, full_label_space, load_suite, parse_domains
        from edgekit.evalsuite.evaluate import artifact_format, artifact_inputs
        from edgekit.formats import format_for_suffix

        chosen = parse_domains(domains)
        overrides = _parse_config(config)
        path = Path(model)
        is_artifact = format_for_suffix(path) is not None
        if is_artifact:
            if not path.exists():
                raise EdgekitError(
                    f"artifact {path} does not exist", "check the path (see the export's manifest.json)"
                )
            if train_epochs or checkpoint or save_checkpoint or config:
                raise EdgekitError(
                    "--train-epochs/--checkpoint/--save-checkpoint/--config apply to PyTorch models",
                    "train and save the PyTorch model, export it, then evaluate the artifact",
                )
            info = artifact_inputs(path, artifact_format(path))
            if seq_len is not None and info.seq_len is not None and seq_len != info.seq_len:
                raise EdgekitError(
                    f"{path} takes {info.seq_len} tokens per example, not --seq-len {seq_len}",
                    f"drop --seq-len or use --seq-len {info.seq_len}",
                )
            cfg = SuiteConfig(
                seed=seed, vocab_size=vocab_size, seq_len=info.seq_len or seq_len or 64, cache_dir=cache_dir
            )
        else:
            cfg = SuiteConfig(seed=seed, vocab_size=vocab_size, seq_len=seq_len or 64, cache_dir=cache_dir)
        if is_artifact:
            trained = trained or _exported_from_checkpoint(path)  # `export --checkpoint` says so in the manifest
        suite_cfg = cfg

        def work() -> tuple[Any, str]:
            """Load the suite, train if asked, score: the evaluation's result and the note to print."""
            cfg = suite_cfg
            data = load_suite(chosen, cfg)
            space = full_label_space(cfg)
            note = ""

            if is_artifact:
                from edgekit.evalsuite.evaluate import evaluate_artifact

                result = evaluate_artifact(
                    path, data, name=path.name, trained=trained, space=space, threads=threads
                )
                if not trained:
                    note = (
                        "note: pass --trained if the exported weights were trained on the suite; "
                        "scores of untrained weights are chance level"
                    )
            else:
                import torch

                # the initial weights too, so `--train-epochs N --seed S` trains the same model
                torch.manual_seed(seed)
                model_obj = _build_model(model, space.total, vocab_size, cfg.seq_len, overrides)
                tokenizer = getattr(model_obj, "suite_tokenizer", "hash")  # pretrained models bring their own
                if tokenizer != cfg.tokenizer_name:
                    import dataclasses

                    cfg = dataclasses.replace(cfg, tokenizer_name=tokenizer)
                    data = load_suite(chosen, cfg)
                was_trained = False
                if checkpoint:
                    _load_checkpoint(model_obj, checkpoint)
                    was_trained = True
                if train_epochs:
                    from edgekit.evalsuite.train import fit_classifier

                    train_data = load_suite(None, cfg)
                    with _progress(as_json) as tick:
                        report = fit_classifier(
                            model_obj,
                            train_data,
                            train_epochs,
                            seed,
                            lr=lr,
                            space=space,
                            max_train_per_domain=max_train,
                            progress=tick,
                        )
                    was_trained = True
                    if not as_json:
                        console(stderr=True).print(
                            f"trained {report.steps} steps on {report.examples} examples in {report.seconds:.1f} s "
                            f"(loss {fmt_num(report.losses[-1])})"
                        )
                    if save_checkpoint:
                        import torch

                        save_checkpoint.parent.mkdir(parents=True, exist_ok=True)
                        torch.save(model_obj.state_dict(), save_checkpoint)
                from edgekit.evalsuite.evaluate import evaluate_model

                result = evaluate_model(model_obj, data, name=model, trained=was_trained, space=space)
                if not was_trained:
                    note = (
                        "note: this model is untrained (zoo models ship without weights): scores are chance level; "
                        "use --train-epochs N or --checkpoint PATH"
                    )
            return result, note

        stored = None
        if no_store:
            result, note = work()
        else:
            from edgekit.evalsuite.evaluate import EvalResult
            from edgekit.evalsuite.persist import EvalRun, running_eval
            from edgekit.files import file_sha256

            # what is known before the work; `running` in the store while the suite loads, trains and scores
            known = EvalResult(model=path.name if is_artifact else model,
                               kind=artifact_format(path) if is_artifact else "torch",
                               trained=trained if is_artifact else bool(checkpoint or train_epochs), seed=seed,
                               seq_len=cfg.seq_len, vocab_size=vocab_size, scores=[],
                               artifact_sha256=file_sha256(path) if is_artifact else None)
            record = EvalRun(known, artifact_path=str(path) if is_artifact else None)
            with running_eval(db, record):
                record.result, note = work()
            result, stored = record.result, record.run_id
        if save_csv:
            from edgekit.evalsuite.score_files import write_csv_scores
            from edgekit.metrics.robustness import as_row

            write_csv_scores(save_csv, [as_row(r) for r in result.score_rows()])
        if as_json:
            doc = result.to_dict()
            doc["run_id"] = stored
            if note:
                doc["note"] = note
            print_json(doc)
            return
        _render_eval(result, note)
        if stored is not None:
            console().print(f"stored as run {stored}")

    @app.command("metrics")
    def metrics_cmd(
        sources: list[str] = typer.Argument(
            None,
            help="Score sources: .csv, .json (edgekit eval / lm-eval), "
            "`store` or a .db file (default: the store).",
        ),
        reference: str = typer.Option(
            ..., "--reference", "-r", help="The reference (uncompressed general) model."
        ),
        target: list[str] = typer.Option([], "--target", "-t", help="MODEL=DOMAIN: a model's target domain."),
        task_map: Path = typer.Option(None, "--task-map", help="TOML mapping lm-eval tasks to domains."),
        domains: str = typer.Option(
            None, "--domains", "-d", help="Comma-separated domains to use (default: all scored)."
        ),
        metric: str = typer.Option(
            "macro_f1", "--metric", help="Score read from eval results: macro_f1 or accuracy."
        ),
        db: Path = typer.Option(None, "--db", help="Results store to read when no SOURCE is given."),
        wide: bool = wide_option(),
        as_json: bool = typer.Option(False, "--json", help="Machine-readable output."),
    ) -> None:
        """DSI, GG and CDTR per model against a reference (formulas: docs/metrics.md)."""
        from edgekit.evalsuite.score_files import load_scores
        from edgekit.metrics.robustness import robustness

        if metric not in ("macro_f1", "accuracy"):
            raise EdgekitError(f"unknown --metric {metric!r}", "use macro_f1 or accuracy")
        targets: dict[str, str] = {}
        for item in target:
            name, sep, dom = item.rpartition("=")
            if not sep or not name or not dom:
                raise EdgekitError(
                    f"cannot read --target {item!r}", "write it as MODEL=DOMAIN, e.g. --target m=law"
                )
            targets[name] = dom
        srcs = list(sources or [])
        if not srcs:
            srcs = [str(db)] if db else ["store"]
        warnings: list[str] = []
        table = load_scores(srcs, task_map, metric, warnings)
        doms = [d.strip() for d in domains.split(",") if d.strip()] if domains else None
        results = robustness(table, reference, targets, domains=doms)
        used = list(results[0].domains) if results else []
        matrix = {m.model: table.domain_scores(m.model, used) for m in results}
        if as_json:
            print_json(
                {
                    "reference": reference,
                    "domains": used,
                    "metric": metric,
                    "metrics": [m.to_dict() for m in results],
                    "scores": matrix,
                    "warnings": warnings,
                }
            )
            return
        _render_metrics(results, matrix, used, reference, warnings, wide=wide)

    @app.command("eval-data")
    def eval_data_cmd(
        domains: str = typer.Option(
            None, "--domains", "-d", help="Comma-separated domains (default: all eight)."
        ),
        seed: int = typer.Option(0, min=0, max=SEED_MAX, help="Split seed."),
        rebuild: bool = typer.Option(False, "--rebuild", help="Rebuild the cache from the sources."),
        cache_dir: Path = typer.Option(
            None, "--cache-dir", help="Suite cache root (default $EDGEKIT_CACHE or ~/.cache/edgekit)."
        ),
        as_json: bool = typer.Option(False, "--json", help="Machine-readable output."),
    ) -> None:
        """Build (or read from the cache) the 8-domain evaluation suite and show its counts per domain."""
        from dataclasses import asdict

        from rich.table import Table

        from edgekit.evalsuite import SuiteConfig, load_suite

        cfg = SuiteConfig(seed=seed, cache_dir=cache_dir)
        data = load_suite(domains, cfg, rebuild=rebuild)
        rows = [{**asdict(d.counts()), "sources": d.sources} for d in data.values()]
        if as_json:
            print_json({"cache": str(cfg.cache_root()), "seed": seed, "domains": rows})
            return
        table = Table(title=f"edgekit evaluation suite (split seed {seed})")
        for col in ("domain", "task", "classes", "train", "val", "test", "sources"):
            table.add_column(col, justify="right" if col in ("classes", "train", "val", "test") else "left")
        for r in rows:
            table.add_row(
                r["domain"],
                r["task"],
                str(r["classes"]),
                str(r["train"]),
                str(r["val"]),
                str(r["test"]),
                ", ".join(r["sources"]),
            )
        console().print(table)
        console().print(f"cache: {cfg.cache_root()}")


_SHORT_DOMAIN = {"healthcare": "health", "commonsense": "common", "conversational": "convers",
                 "multilingual": "multiling", "domain_adaptive": "adaptive"}


def _render_metrics(results, matrix, domains, reference, warnings, wide: bool = False) -> None:
    """Two tables that fit the terminal: model names are never folded; when the domains do not fit under their
    full names, they get short ones (with a legend line) unless `wide` (then the table may be wider)."""
    from rich import box
    from rich.markup import escape
    from rich.measure import Measurement
    from rich.table import Table

    out = console()
    width = out.width

    def scores_table(short: bool, doms: list[str] = domains, part: str = "") -> Table:
        t = Table(title=escape("S[m][d]: mean score per domain (tasks averaged first)" + part),
                  box=box.SIMPLE_HEAD, show_edge=False, padding=0, title_justify="left")
        t.add_column("model", no_wrap=True)
        for d in doms:
            t.add_column(_SHORT_DOMAIN.get(d, d) if short else d, justify="right", no_wrap=True)
        for model, row in matrix.items():
            t.add_row(escape(model), *(fmt_num(row[d]) for d in doms))
        return t

    def natural(t: Table) -> int:
        return Measurement.get(out, out.options.update(width=1000), t).maximum

    scores = [scores_table(short=False)]
    short = not wide and natural(scores[0]) > width
    if short:  # short domain names; still too wide: the domains in parts, each as wide as the terminal
        parts: list[list[str]] = [[]]
        for d in domains:
            if parts[-1] and natural(scores_table(True, [*parts[-1], d])) > width:
                parts.append([])
            parts[-1].append(d)
        scores = [scores_table(True, p, f" ({i + 1}/{len(parts)})" if len(parts) > 1 else "")
                  for i, p in enumerate(parts)]
    table = Table(title=f"robustness vs reference {escape(reference)}", box=box.SIMPLE_HEAD, show_edge=False,
                  padding=0, title_justify="left")
    for col in ("model", "target", "S[t]", "mean_off", "DSI", "GG", "CDTR"):
        table.add_column(escape(col), justify="left" if col in ("model", "target") else "right", no_wrap=True)
    for m in results:
        where = _SHORT_DOMAIN.get(m.dsi_argmax, m.dsi_argmax) if short else m.dsi_argmax
        dsi_text = fmt_num(m.dsi) if m.target else f"{fmt_num(m.dsi_max)} ({where})"
        table.add_row(
            escape(m.model),
            m.target or "—",
            fmt_num(m.s_target),
            fmt_num(m.mean_off),
            dsi_text,
            fmt_num(m.gg),
            fmt_num(m.cdtr),
        )
    if wide:
        out.width = max(width, natural(scores[0]), natural(table))
    for t in scores:
        out.print(t)
    out.print(table)
    out.width = width
    if short:
        out.print("domains: " + ", ".join(f"{_SHORT_DOMAIN[d]} = {d}" for d in domains if d in _SHORT_DOMAIN)
                  + " (--wide: full names)", markup=False)
    out.print(
        escape(
            "DSI = (S[t]-mean_off)/(S[t]+mean_off); GG = (mean_off(r)-mean_off(m))/mean_off(r); "
            "CDTR = (mean_off(m)/mean_off(r))/(S[m][t]/S[r][t]). Without a target, GG uses all domains and DSI "
            "is the largest over the domains (that domain in brackets)."
        )
    )
    for w in warnings:
        console(stderr=True).print(escape(f"warning: {w}"))


class _progress:
    """A rich progress bar on stderr for training (silent with --json); yields the tick callback."""

    def __init__(self, quiet: bool) -> None:
        self.quiet = quiet
        self._bar = None

    def __enter__(self):
        if self.quiet:
            return None
        from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

        self._bar = Progress(
            TextColumn("training"),
            BarColumn(),
            TextColumn("{task.completed}/{task.total} steps"),
            TextColumn("loss {task.fields[loss]:.3f}"),
            TimeRemainingColumn(),
            console=console(stderr=True),
            transient=True,
        )
        self._bar.__enter__()
        self._task = self._bar.add_task("train", total=None, loss=float("nan"))

        def tick(step: int, total: int, loss: float) -> None:
            self._bar.update(self._task, completed=step, total=total, loss=loss)

        return tick

    def __exit__(self, *exc) -> None:
        if self._bar is not None:
            self._bar.__exit__(*exc)
