"""Small rendering helpers shared by the command modules."""

from __future__ import annotations

import json
from typing import Any

from rich.console import Console


def console(stderr: bool = False) -> Console:
    return Console(stderr=stderr, highlight=False)


def print_json(data: Any) -> None:
    """Machine output for `--json`: plain JSON on stdout, nothing else."""
    print(json.dumps(data, indent=2, default=str))


def fmt_num(value: float | None, digits: int = 3, unit: str = "") -> str:
    """Format a figure; a missing value is shown as '—', never as 0."""
    if value is None:
        return "—"
    text = f"{value:.{digits}g}" if abs(value) < 1e-3 and value != 0 else f"{value:.{digits}f}"
    return f"{text} {unit}".strip()
