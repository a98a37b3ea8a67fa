"""Runtime adapters, one per engine. They come from the `register_runtimes` plugin hook (edgekit.plugins): the
built-ins below register through it like a third-party plugin does. A runtime has `name`, `formats`, `available()`,
`version()`, `load(path, options)` (edgekit.runtime.base.Runtime). Packages that still use the older
`edgekit.runtimes` entry point group (an entry point naming such a class) are read once, with the built-ins."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from edgekit import plugins
from edgekit.errors import EdgekitError
from edgekit.runtime.base import Runtime, RuntimeOptions, Session

__all__ = ["Runtime", "RuntimeOptions", "Session", "all_runtimes", "get_runtime", "runtime_for_format"]

LEGACY_ENTRY_POINT_GROUP = "edgekit.runtimes"


@plugins.hookimpl
def register_runtimes(register: Callable[[Any], None]) -> None:
    """The built-in engines (this package is one of edgekit.plugins.DEFAULT_PLUGINS), then the older entry point
    group's runtimes. Each adapter imports its engine only when asked to load a model."""
    from importlib.metadata import entry_points

    from edgekit.runtime.coreml import CoreMLRuntime
    from edgekit.runtime.executorch import ExecuTorchRuntime
    from edgekit.runtime.litert import LiteRTRuntime
    from edgekit.runtime.onnxruntime import OnnxRuntime
    from edgekit.runtime.torch import TorchRuntime

    for runtime in (OnnxRuntime, LiteRTRuntime, TorchRuntime, CoreMLRuntime, ExecuTorchRuntime):
        register(runtime)
    for ep in entry_points(group=LEGACY_ENTRY_POINT_GROUP):
        register(ep.load())


_cache: tuple[int, dict[str, Runtime]] | None = None


def all_runtimes() -> dict[str, Runtime]:
    """Every registered runtime by name (built-ins first; a plugin's runtime of the same name replaces it). Built
    once per set of plugins."""
    global _cache
    gen = plugins.generation()
    if _cache is None or _cache[0] != gen:
        found: dict[str, Runtime] = {}
        for _plugin, (runtime, *_rest) in plugins.gather("register_runtimes"):
            instance = runtime() if isinstance(runtime, type) else runtime
            found[instance.name] = instance
        _cache = (gen, found)
    return dict(_cache[1])


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
