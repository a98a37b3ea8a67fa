"""The `edgekit` command line: parses arguments, calls the library, renders with rich. No logic here.

Each concern's commands live in edgekit/commands/<concern>.py and expose `register(app)`.
"""

from __future__ import annotations

import importlib
import os
import sys

import typer

from edgekit.errors import EdgekitError

# Converter libraries draw their own tqdm bars; edgekit shows one rich progress display instead.
os.environ.setdefault("TQDM_DISABLE", "1")

COMMAND_MODULES: tuple[str, ...] = (
    "export",
    "models",
    "bench",
    "evaluate",
    "report",
    "targets",
    "study",
)

app = typer.Typer(
    name="edgekit",
    help="Export PyTorch models to ONNX/TFLite/CoreML, prove parity, benchmark on edge targets, measure robustness.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


@app.callback()
def _root(
    debug: bool = typer.Option(False, "--debug", help="Show full tracebacks on errors."),
) -> None:
    if debug:
        os.environ["EDGEKIT_DEBUG"] = "1"


for _name in COMMAND_MODULES:
    importlib.import_module(f"edgekit.commands.{_name}").register(app)


def main() -> None:
    """Console entry point: user errors become one line on stderr and a non-zero exit."""
    try:
        rc = app(standalone_mode=False)
        if isinstance(rc, int) and rc:
            sys.exit(rc)
    except EdgekitError as exc:
        if os.environ.get("EDGEKIT_DEBUG") or "--debug" in sys.argv:
            raise
        typer.echo(f"error: {exc.one_line()}", err=True)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        typer.echo("error: interrupted — results completed so far are kept in the store", err=True)
        sys.exit(130)
    except (typer.Exit, SystemExit) as exc:  # noqa: B014
        code = getattr(exc, "exit_code", None) or getattr(exc, "code", 0) or 0
        sys.exit(code)
    except Exception as exc:  # click usage errors and the like
        import click

        if isinstance(exc, click.exceptions.ClickException):
            exc.show()
            sys.exit(exc.exit_code)
        if isinstance(exc, click.exceptions.Abort):
            sys.exit(1)
        raise


if __name__ == "__main__":
    main()
