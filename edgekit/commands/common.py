"""Small rendering helpers shared by the command modules."""

from __future__ import annotations

import json
import math
import os
from typing import Any

import typer
from rich.console import Console

from edgekit.errors import EdgekitError


def verbosity() -> int:
    """-1 with `edgekit -q`, 1 with `edgekit -v`, else 0 (set by the root callback in edgekit/cli.py)."""
    try:
        return int(os.environ.get("EDGEKIT_VERBOSITY", "0"))
    except ValueError:
        return 0


def console(stderr: bool = False) -> Console:
    """A rich console. Not a terminal (piped, captured): $COLUMNS wide if set, else 120 — never wider by force.
    With `edgekit -q` the stderr console (progress, status, notes) prints nothing."""
    out = Console(stderr=stderr, highlight=False, quiet=stderr and verbosity() < 0)
    if not out.is_terminal and not os.environ.get("COLUMNS", "").strip().isdigit():
        out.width = 120
    return out


def wide_option() -> Any:
    """`--wide`: every column; the default is a compact table that fits 80 columns."""
    return typer.Option(False, "--wide", "-w", help="Show every column (the default table fits 80 columns).")


def print_json(data: Any) -> None:
    """Machine output for `--json`: plain JSON on stdout, nothing else."""
    print(json.dumps(data, indent=2, default=str))


def fmt_num(value: float | None, digits: int = 3, unit: str = "", signed: bool = False) -> str:
    """edgekit.report.fmt.fixed, imported when first called: command modules import this one at start-up, and the
    report package is not loaded for a command that prints no figure."""
    from edgekit.report.fmt import fixed

    return fixed(value, digits, unit, signed)


SEED_MAX = 2**32 - 1  # numpy's and the converters' seeds are unsigned 32-bit
RUN_ID_MAX = 2**63 - 1  # SQLite INTEGER


def max_threads() -> int:
    """The most threads a `--threads` option accepts: 4 x this host's logical cores."""
    return 4 * (os.cpu_count() or 1)


def check_threads(value: int | None) -> int | None:
    """Callback of every `--threads` option: None (the runtime's default) or 1 .. max_threads()."""
    if value is not None and not 1 <= value <= max_threads():
        raise EdgekitError(f"--threads {value} is outside 1..{max_threads()} "
                           f"(4 x the {os.cpu_count() or 1} logical cores of this host)",
                           "give a thread count in that range, or leave --threads out for the runtime's default")
    return value


def threads_option(help_text: str) -> Any:
    """A `--threads` option, checked by check_threads when the command line is parsed."""
    return typer.Option(None, "--threads", help=help_text, callback=check_threads)


def check_seconds(option: str, value: float | None) -> None:
    """A duration option must be a finite number of seconds (`inf` and `1e309` would never end)."""
    if value is not None and not math.isfinite(value):
        raise EdgekitError(f"{option} {value} is not a finite number of seconds", f"give {option} in seconds, e.g. 2")


def parse_int_list(option: str, text: str | None) -> list[int] | None:
    """`--threads 1,2,4`, `--batch 1,8`, `--seq-len 64,128`: a comma list of positive integers (duplicates dropped,
    order kept), or None when the option was not given. Text that is not such a list is a usage error."""
    if text is None:
        return None
    items = [t.strip() for t in str(text).split(",")]
    try:
        values = [int(t) for t in items]
    except ValueError:
        raise typer.BadParameter(f"{text!r} is not an integer or a comma list of integers (e.g. 1,2,4)",
                                 param_hint=f"'{option}'") from None
    bad = [v for v in values if v < 1]
    if bad and option != "--threads":  # --threads says its own range below
        raise EdgekitError(f"{option} {bad[0]} is not a positive size", f"give {option} as positive integers, e.g. 1,8")
    return list(dict.fromkeys(values))


def check_threads_list(text: str | None) -> str | None:
    """Callback of a sweepable `--threads 1,2,4`: each value checked by check_threads (the text is kept; the
    command reads it with parse_int_list)."""
    for v in parse_int_list("--threads", text) or []:
        check_threads(v)
    return text


def threads_list_option(help_text: str) -> Any:
    """A `--threads N[,N...]` option (a sweep when it lists several), each value checked by check_threads."""
    return typer.Option(None, "--threads", metavar="N[,N...]", help=help_text, callback=check_threads_list)
