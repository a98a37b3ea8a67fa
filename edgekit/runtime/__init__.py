"""Runtime adapters, one per engine. Third parties add theirs through the `edgekit.runtimes` entry point group
(an entry point names a class with `name`, `formats`, `available()`, `version()`, `load(path, options)`)."""

from __future__ import annotations

from importlib.metadata import entry_points

from edgekit.errors import EdgekitError
from edgekit.runtime.base import Runtime, RuntimeOptions, Session

__all__ = ["Runtime", "RuntimeOptions", "Session", "all_runtimes", "get_runtime", "runtime_for_format"]


def _builtin() -> dict[str, Runtime]:
    from edgekit.runtime.coreml import CoreMLRuntime
    from edgekit.runtime.executorch import ExecuTorchRuntime
    from edgekit.runtime.litert import LiteRTRuntime
    from edgekit.runtime.onnxruntime import OnnxRuntime
    from edgekit.runtime.torch import TorchRuntime

    runtimes: list[Runtime] = [OnnxRuntime(), LiteRTRuntime(), TorchRuntime(), CoreMLRuntime(), ExecuTorchRuntime()]
    return {r.name: r for r in runtimes}


def all_runtimes() -> dict[str, Runtime]:
    """Built-ins plus plugins registered under the `edgekit.runtimes` entry point group."""
    found = _builtin()
    for ep in entry_points(group="edgekit.runtimes"):
        runtime = ep.load()()
        found[runtime.name] = runtime
    return found


def get_runtime(name: str) -> Runtime:
    runtimes = all_runtimes()
    if name not in runtimes:
        raise EdgekitError(f"unknown runtime {name!r}", f"use one of {', '.join(sorted(runtimes))}")
    return runtimes[name]


def runtime_for_format(fmt: str) -> Runtime:
    """The default runtime for an artifact format: the one its Format names (edgekit.formats), else the first
    runtime (plugins included) that declares it."""
    from edgekit.formats import all_formats, format_names

    runtimes = all_runtimes()
    known = all_formats().get(fmt)
    if known is not None and known.runtime in runtimes:
        return runtimes[known.runtime]
    for runtime in runtimes.values():
        if fmt in runtime.formats:
            return runtime
    raise EdgekitError(f"no runtime runs format {fmt!r}", f"use one of {', '.join(format_names())}")
