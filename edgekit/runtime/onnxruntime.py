"""onnxruntime adapter (CPU by default; any installed execution provider can be chosen)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from edgekit.errors import EdgekitError
from edgekit.runtime.base import RuntimeOptions, dist_version, module_available, ordered_feeds

_OPT_LEVELS = {"disable": "ORT_DISABLE_ALL", "basic": "ORT_ENABLE_BASIC", "extended": "ORT_ENABLE_EXTENDED", "all": "ORT_ENABLE_ALL"}


class OnnxRuntimeSession:
    def __init__(self, path: Path, options: RuntimeOptions) -> None:
        import onnxruntime as ort

        so = ort.SessionOptions()
        if options.threads:
            so.intra_op_num_threads = options.threads
            so.inter_op_num_threads = 1
        so.graph_optimization_level = getattr(ort.GraphOptimizationLevel, _OPT_LEVELS[options.graph_optimization])
        so.log_severity_level = 3
        available = ort.get_available_providers()
        provider = options.provider or "CPUExecutionProvider"
        if provider not in available:
            raise EdgekitError(
                f"onnxruntime execution provider {provider!r} is not available here", f"use one of {', '.join(available)}"
            )
        try:
            self._sess = ort.InferenceSession(str(path), so, providers=[provider])
        except Exception as exc:  # onnxruntime raises its own Fail/InvalidProtobuf types
            raise EdgekitError(
                f"onnxruntime cannot load {path} ({type(exc).__name__}: {str(exc).splitlines()[0][:200]})",
                "the file is missing, truncated or not ONNX: export it again with `edgekit export`",
            ) from exc
        self._options = options
        self._provider = provider
        self.input_names = [i.name for i in self._sess.get_inputs()]
        self.output_names = [o.name for o in self._sess.get_outputs()]
        self._ort_version = ort.__version__

    def run(self, feeds: Mapping[str, np.ndarray]) -> list[np.ndarray]:
        values = ordered_feeds(self, feeds)
        return self._sess.run(None, dict(zip(self.input_names, values, strict=True)))

    def prepare(self, feeds: Mapping[str, np.ndarray]):
        """A zero-argument call with the feeds bound once (the benchmark loop times only this call)."""
        bound = dict(zip(self.input_names, ordered_feeds(self, feeds), strict=True))
        run = self._sess.run
        return lambda: run(None, bound)

    def describe(self) -> dict[str, Any]:
        return {
            "runtime": "onnxruntime",
            "version": self._ort_version,
            "threads": self._options.threads,
            "provider": self._provider,
            "graph_optimization": self._options.graph_optimization,
        }


class OnnxRuntime:
    name = "onnxruntime"
    formats = ("onnx",)

    def available(self) -> bool:
        return module_available("onnxruntime")

    def version(self) -> str | None:
        return dist_version("onnxruntime")

    def providers(self) -> list[str]:
        import onnxruntime

        return list(onnxruntime.get_available_providers())

    def load(self, path: Path, options: RuntimeOptions | None = None) -> OnnxRuntimeSession:
        return OnnxRuntimeSession(Path(path), options or RuntimeOptions())
