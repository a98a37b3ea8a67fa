"""CoreML adapter: predicts only on macOS (coremltools' runtime is macOS-only); elsewhere it says so."""

from __future__ import annotations

import platform
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from edgekit.errors import EdgekitError
from edgekit.runtime.base import RuntimeOptions, dist_version, ordered_feeds


class RuntimeUnavailableError(EdgekitError):
    """The runtime cannot execute on this host; callers skip (not fail) the run."""


COMPUTE_UNITS = ("ALL", "CPU_ONLY", "CPU_AND_GPU", "CPU_AND_NE")


class CoreMLSession:
    def __init__(self, path: Path, options: RuntimeOptions) -> None:
        import coremltools as ct

        units = options.provider or "ALL"
        if units not in COMPUTE_UNITS:
            raise EdgekitError(f"unknown CoreML compute units {units!r}", f"use one of {', '.join(COMPUTE_UNITS)}")
        self._model = ct.models.MLModel(str(path), compute_units=getattr(ct.ComputeUnit, units))
        spec = self._model.get_spec()
        self.input_names = [i.name for i in spec.description.input]
        self.output_names = [o.name for o in spec.description.output]
        self._units = units
        self._version = ct.__version__

    def run(self, feeds: Mapping[str, np.ndarray]) -> list[np.ndarray]:
        values = ordered_feeds(self, feeds)
        out = self._model.predict(dict(zip(self.input_names, values, strict=True)))
        return [np.asarray(out[n]) for n in self.output_names]

    def describe(self) -> dict[str, Any]:
        return {"runtime": "coreml", "version": self._version, "threads": None, "provider": self._units}


class CoreMLRuntime:
    name = "coreml"
    formats = ("coreml",)

    def available(self) -> bool:
        return platform.system() == "Darwin"

    def version(self) -> str | None:
        return dist_version("coremltools")

    def load(self, path: Path, options: RuntimeOptions | None = None) -> CoreMLSession:
        if not self.available():
            raise RuntimeUnavailableError(
                "CoreML runs only on macOS; this host is " + platform.system(),
                "run it on a Mac (`--target macos`) — on Linux edgekit converts and validates the package only",
            )
        return CoreMLSession(Path(path), options or RuntimeOptions())
