"""Facts about the machine this process runs on that every layer may ask for (no edgekit imports)."""

from __future__ import annotations

import os
import platform
from pathlib import Path


def read_text(path: Path) -> str | None:
    """A small system file's text, stripped, or None when it cannot be read."""
    try:
        return path.read_text().strip()
    except (OSError, UnicodeDecodeError):
        return None


def cpu_model(root: Path = Path("/")) -> str:
    """The CPU's marketing name from /proc/cpuinfo ("model name", or "Hardware"/"Model" on Arm boards)."""
    text = read_text(root / "proc/cpuinfo") or ""
    found: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if sep and value.strip():
            found.setdefault(key.strip(), value.strip())
    for key in ("model name", "Model", "Hardware", "cpu model", "Processor"):
        if key in found:
            return found[key]
    return platform.processor() or platform.machine()


def cpus_used() -> list[int]:
    """The CPUs this process may run on (its affinity mask), falling back to all of them."""
    try:
        return sorted(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return list(range(os.cpu_count() or 1))
