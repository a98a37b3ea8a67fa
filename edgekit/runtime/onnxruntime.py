"""onnxruntime adapter (CPU by default; any installed execution provider can be chosen)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from edgekit.errors import EdgekitError
from edgekit.runtime.base import RuntimeOptions, dist_version, module_available, ordered_feeds

_OPT_LEVELS = {"disable": "ORT_DISABLE_ALL", "basic": "ORT_ENABLE_BASIC", "extended": "ORT_ENABLE_EXTENDED", "all": "ORT_ENABLE_ALL"}


# How onnxruntime says it has no operator: not in any registered schema, not a registered function/op of a custom
# domain, or no kernel for it (on this provider / for these types). Group "op" names it, "domain" when given.
_OPERATOR_ERRORS = (
    re.compile(r'In Node, \("[^"]*", (?P<op>[\w.]+), "(?P<domain>[\w.]*)".*No Op registered for'),
    re.compile(r"No Op registered for (?P<op>[\w.]+) with domain_version"),
    re.compile(r"(?P<domain>[\w.]*):(?P<op>[\w.]+)\(-?\d+\) is not a registered function/op"),
    re.compile(r"Could not find an implementation for (?P<op>[\w.]+)\((?P<version>\d+)\)"),
)


def load_error(path: Path, exc: Exception, version: str) -> EdgekitError:
    """One line for a file onnxruntime cannot load: an operator it does not support is named as such; anything
    else means a missing, truncated or invalid file."""
    text = str(exc)
    first = text.splitlines()[0][:200] if text else ""
    for pattern in _OPERATOR_ERRORS:
        m = pattern.search(text)
        if m:
            found = m.groupdict()
            op = f"{found['domain']}:{found['op']}" if found.get("domain") else found["op"]
            what = f" (opset {found['version']}) for these input types" if found.get("version") else ""
            return EdgekitError(
                f"{path} uses operator {op}{what}, which is not supported by the installed onnxruntime {version}",
                "run it with an onnxruntime that has this operator (a newer version, or the extension that registers "
                "its domain), or re-export the model without it",
            )
    if type(exc).__name__ == "InvalidGraph":  # it read the file, but the graph breaks ONNX's rules
        return EdgekitError(f"onnxruntime rejects the graph of {path} ({first})",
                            "the model is not a valid ONNX graph: export it again with `edgekit export`")
    return EdgekitError(
        f"onnxruntime cannot load {path} ({type(exc).__name__}: {first})",
        "the file is missing, truncated or not ONNX: export it again with `edgekit export`",
    )


def _process_threads() -> int | None:
    """Threads of this process now (psutil), or None when it cannot tell."""
    try:
        import psutil

        return psutil.Process().num_threads()
    except Exception:  # noqa: BLE001 - a count we cannot read is simply not used
        return None


def _intra_op_threads(sess: object, requested: int | None, before: int | None) -> tuple[int, str]:
    """The intra-op threads a session really uses, and where the number comes from. Set: the session's own
    intra_op_num_threads. Left default (0): onnxruntime sizes its pool to the physical cores (psutil's count here);
    the pool it started (its new threads + the calling thread, which also works) is the figure when it can be
    counted, else the physical-core count."""
    import psutil

    if requested:
        value = int(sess.get_session_options().intra_op_num_threads) or requested  # type: ignore[attr-defined]
        return value, "intra_op_num_threads (set by --threads)"
    physical = psutil.cpu_count(logical=False) or psutil.cpu_count() or 1
    after = _process_threads()
    if before is not None and after is not None and after > before:
        started = after - before + 1
        return started, (f"onnxruntime default (intra_op_num_threads=0): one per physical core; counted "
                         f"{started} ({started - 1} pool thread(s) + the caller), {physical} physical cores here")
    return physical, (f"onnxruntime default (intra_op_num_threads=0): one per physical core, {physical} here "
                      "(psutil.cpu_count(logical=False))")


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
        before = _process_threads()
        try:
            self._sess = ort.InferenceSession(str(path), so, providers=[provider])
        except Exception as exc:  # onnxruntime raises its own Fail/InvalidProtobuf types
            raise load_error(path, exc, ort.__version__) from exc
        self._threads, self._threads_source = _intra_op_threads(self._sess, options.threads, before)
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
            "threads": self._threads,
            "threads_source": self._threads_source,
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
