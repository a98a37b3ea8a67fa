"""`edgekit plugins`: the installed plugins (edgekit.plugins) and what each registered — formats, runtimes,
transports, targets; `--all` adds the built-ins, which register through the same hooks."""

from __future__ import annotations

import typer

from edgekit.commands.common import console, print_json

KINDS = ("formats", "runtimes", "transports", "targets")


def plugins_cmd(
    all_: bool = typer.Option(False, "--all", help="Also the built-in plugins (formats, runtimes, transports)."),
    as_json: bool = typer.Option(False, "--json", help="Print the plugins as JSON."),
) -> None:
    """List installed plugins (entry point group `edgekit`) and what each registered."""
    from rich.table import Table

    from edgekit.plugins import plugin_infos

    infos = plugin_infos(builtins=all_)
    if as_json:
        print_json(infos)
        return
    if not infos:
        console().print("no plugins installed (`edgekit plugins --all` shows the built-ins; docs/targets.md says "
                        "how to write one)", markup=False)
        return
    table = Table(title="edgekit plugins", title_justify="left")
    for col in ("name", "version", *KINDS):
        table.add_column(col, overflow="fold")
    for info in infos:
        table.add_row(info["name"], info["version"] or ("built-in" if info["builtin"] else "—"),
                      *(", ".join(info[k]) or "—" for k in KINDS))
    console().print(table)


def register(app: typer.Typer) -> None:
    app.command("plugins")(plugins_cmd)
