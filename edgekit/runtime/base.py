"""The runtime adapter interface: load an artifact, run it on named numpy inputs."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np


@dataclass(frozen=True)
class RuntimeOptions:
    """How to run: threads (None = runtime default), provider/delegate, extra engine-specific settings."""

    threads: int | None = None
    provider: str | None = None  # onnxruntime execution provider / TFLite delegate / CoreML compute units
    graph_optimization: str = "all"  # onnxruntime: disable|basic|extended|all
    extra: dict[str, Any] = field(default_factory=dict)


class Session(Protocol):
    """A loaded model ready to run."""

    input_names: list[str]
    output_names: list[str]

    def run(self, feeds: Mapping[str, np.ndarray]) -> list[np.ndarray]:
        """Run once; outputs in the model's declared order."""
        ...

    def describe(self) -> dict[str, Any]:
        """Runtime, version, threads, provider/delegate actually used."""
        ...


class Runtime(Protocol):
    name: str
    formats: tuple[str, ...]

    def available(self) -> bool: ...

    def version(self) -> str | None: ...

    def load(self, path: Path, options: RuntimeOptions | None = None) -> Session: ...


def module_available(module: str) -> bool:
    """True when `module` imports (a runtime's `available()` for engines that run on every host)."""
    try:
        __import__(module)
    except ImportError:
        return False
    return True


def dist_version(distribution: str) -> str | None:
    """Installed version of a Python distribution (e.g. "onnxruntime"), or None when it is not installed."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(distribution)
    except PackageNotFoundError:
        return None


def ordered_feeds(session: Session, feeds: Mapping[str, np.ndarray]) -> list[np.ndarray]:
    """Feeds in the session's input order: by name when names match, else by position."""
    if all(n in feeds for n in session.input_names):
        return [feeds[n] for n in session.input_names]
    values = list(feeds.values())
    if len(values) != len(session.input_names):
        from edgekit.errors import EdgekitError

        raise EdgekitError(
            f"the model takes {len(session.input_names)} inputs {session.input_names}, got {len(values)} "
            f"({list(feeds)})",
            "give one --input per model input",
        )
    return values
