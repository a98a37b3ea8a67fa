"""`edgekit models list` and `edgekit models show NAME`: the built-in model cards with parameters and MACs."""

from __future__ import annotations

import typer

from edgekit.commands.common import console, print_json

models_app = typer.Typer(help="The model zoo: built-in model cards, their size and cost.", no_args_is_help=True)


def _shape(spec: dict) -> str:
    return f"{spec['name']}:{'x'.join(str(d) for d in spec['shape'])}:{spec['dtype']}"


@models_app.command("list")
def list_cmd(
    pattern: str = typer.Argument("*", help="Glob over card names, e.g. 'gem-*'."),
    macs: bool = typer.Option(False, "--macs", help="Also parameters and MACs: builds every model (seconds each)."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON (full records, with parameters and MACs)."),
) -> None:
    """List the built-in model cards: task, input, export formats; with --macs, parameters and MACs."""
    import fnmatch

    from edgekit.report import fmt
    from edgekit.specs import list_cards
    from edgekit.zoo.minilm import needs_missing_extra

    infos = None
    if macs or as_json:  # counting parameters and MACs builds every model: only when asked for
        from edgekit.zoo.catalog import list_infos

        with console(stderr=True).status("building models to count parameters and MACs"):
            infos = list_infos(pattern)
    if as_json:
        print_json([i.to_dict() for i in infos or []])
        return
    from rich.table import Table

    title = "edgekit model zoo" + (" (MACs for one forward pass on the card's input)" if macs else "")
    table = Table(title=title, title_justify="left")
    cols = ["name", "task", *(["params", "MACs"] if macs else []), "input", "formats", "paper"]
    for col in cols:
        table.add_column(col, justify="right" if col in ("params", "MACs") else "left",
                         no_wrap=col in ("name", "params", "MACs"))
    cards = [c for c in list_cards() if fnmatch.fnmatch(c.name, pattern) and not needs_missing_extra(c.model)]
    by_name = {i.name: i for i in infos or []}
    for c in cards:
        fmts = ", ".join(c.formats) + (f"; not {', '.join(c.unsupported)}" if c.unsupported else "")
        figures = []
        if macs:
            i = by_name[c.name]
            cost = fmt.si(i.macs) + (f" (sparse {fmt.si(i.macs_sparse)})" if i.macs_sparse is not None else "")
            figures = [fmt.si(i.params), cost]
        table.add_row(c.name, c.task, *figures, " ".join(_shape(s.to_dict()) for s in c.inputs), fmts, c.paper)
    out = console()
    out.print(table)
    if not macs:
        out.print("parameters and MACs: --macs (builds each model)", markup=False)


@models_app.command("show")
def show_cmd(
    name: str = typer.Argument(..., help="A card name (see `edgekit models list`) or a path to a .toml card."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Show one model card with its measured parameters and MACs, formats and unsupported formats with reasons."""
    from edgekit.report import fmt
    from edgekit.zoo.catalog import describe_card, resolve_card

    card = resolve_card(name)
    with console(stderr=True).status(f"building {card.name}"):
        info = describe_card(card)
    if as_json:
        print_json(info.to_dict())
        return
    out = console()
    out.print(f"[bold]{info.name}[/]  ({info.model}, {info.task})  {info.paper}")
    if info.description:
        out.print(info.description)
    out.print(f"parameters: {info.params:,} ({fmt.si(info.params)})")
    out.print(f"MACs (one forward pass, exported graph): {info.macs:,} ({fmt.si(info.macs)})")
    if info.macs_sparse is not None:
        upt = fmt.fixed(info.units_per_token, 2)
        out.print(f"MACs (eager sparse routing): {info.macs_sparse:,} ({fmt.si(info.macs_sparse)}); "
                  f"units per token on the sample input: {upt}")
    out.print("inputs: " + ", ".join(_shape(s) + (f" dynamic {s['dynamic']}" if s["dynamic"] else "")
                                     for s in info.inputs))
    out.print("outputs: " + ", ".join(info.outputs))
    out.print("exports to: " + ", ".join(info.formats))
    for format_name, reason in info.unsupported.items():
        out.print(f"[yellow]not {format_name}[/]: {reason}")
    if info.config:
        out.print("config: " + ", ".join(f"{k}={v}" for k, v in info.config.items()))
    if info.budgets:
        out.print("budgets: " + ", ".join(f"{k}={v:g}" for k, v in info.budgets.items()))
    if info.domain:
        out.print(f"domain: {info.domain}")
    if info.labels:
        out.print("labels: " + ", ".join(info.labels))
    if info.high_precision_modules:
        out.print("kept in float by quantizers (router): " + ", ".join(info.high_precision_modules))
    out.print(f"card: {info.source}")


def register(app: typer.Typer) -> None:
    app.add_typer(models_app, name="models")
