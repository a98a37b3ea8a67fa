"""The Format registry: the one place that knows each artifact format's suffixes, precisions, converter packages,
runtime, spec-version reader and export/quantize functions.

Functions are named by import path ("module:function") and imported only when asked for, so importing the registry
stays cheap. The formats come from the `register_formats` plugin hook (edgekit.plugins): the built-ins below register
through it like a third-party plugin does; adding a format means one new export module plus one registration.
`register_format` adds one in this process (scripts, tests).

Converter packages that are not part of the core install come with an extra (pyproject.toml): a missing converter's
fix names it, e.g. `pip install 'edgekit[tflite]'`.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edgekit import plugins
from edgekit.errors import EdgekitError

__all__ = ["Format", "all_formats", "format_for_suffix", "format_names", "get_format", "install_fix",
           "missing_package", "register_format"]


@dataclass(frozen=True)
class Format:
    """One artifact format. `suffixes[0]` is the suffix edgekit writes; the others are also recognised."""

    name: str
    suffixes: tuple[str, ...]
    precisions: tuple[str, ...]
    converter_packages: tuple[str, ...]
    runtime: str  # the default runtime's name (edgekit.runtime)
    exporter: str  # "module:function" that writes the fp32 artifact
    quantizer: str | None = None  # "module:function" that derives a quantized variant from the fp32 file
    spec_version: str | None = None  # "module:function" path -> opset / schema version, or None
    extra: str | None = None  # the pip extra that installs converter_packages (None: the core install has them)

    @property
    def suffix(self) -> str:
        return self.suffixes[0]

    def load(self, attr: str) -> Callable[..., Any]:
        """Import the function named by `attr` ("exporter", "quantizer" or "spec_version")."""
        target = getattr(self, attr)
        if target is None:
            raise EdgekitError(f"format {self.name!r} has no {attr}", "use a format that declares one")
        module, _, func = target.partition(":")
        return getattr(importlib.import_module(module), func)


_LOCAL: list[Format] = []  # added in this process with register_format, after the plugins' formats
_cache: tuple[int, int, dict[str, Format]] | None = None  # (plugins generation, len(_LOCAL), registry)


def _add(registry: dict[str, Format], fmt: Format, plugin: str = "this process") -> Format:
    """Add (or replace) a format. Suffixes are stored lower-case with their leading dot; one suffix, one format."""
    if not isinstance(fmt, Format):
        raise EdgekitError(f"edgekit plugin {plugin!r} registered {type(fmt).__name__} as a format",
                           "register edgekit.formats.Format(...) objects")
    suffixes = tuple(s.lower() if s.startswith(".") else "." + s.lower() for s in fmt.suffixes)
    if not suffixes:
        raise EdgekitError(f"format {fmt.name!r} declares no suffix", "give at least one suffix, e.g. '.onnx'")
    for other in registry.values():
        clash = set(other.suffixes) & set(suffixes)
        if other.name != fmt.name and clash:
            raise EdgekitError(f"format {fmt.name!r} claims suffix {sorted(clash)[0]} of format {other.name!r}",
                               "give the new format a suffix of its own")
    fmt = Format(**{**fmt.__dict__, "suffixes": suffixes})
    registry[fmt.name] = fmt
    return fmt


def _registry() -> dict[str, Format]:
    """The formats the plugins registered (built-ins first), then register_format's; rebuilt when either changes."""
    global _cache
    gen = plugins.generation()
    if _cache is None or _cache[:2] != (gen, len(_LOCAL)):
        registry: dict[str, Format] = {}
        for plugin, (fmt, *_rest) in plugins.gather("register_formats"):
            _add(registry, fmt, plugin)
        for fmt in _LOCAL:
            _add(registry, fmt)
        _cache = (gen, len(_LOCAL), registry)
    return _cache[2]


def register_format(fmt: Format) -> Format:
    """Add (or replace) a format in this process. Packages register theirs through the `register_formats` hook."""
    added = _add(dict(_registry()), fmt)  # checked against the registry before it is kept
    _LOCAL.append(fmt)
    return added


def all_formats() -> dict[str, Format]:
    """Every registered format by name, in registration order."""
    return dict(_registry())


def format_names() -> tuple[str, ...]:
    return tuple(_registry())


def get_format(name: str) -> Format:
    registry = _registry()
    if name not in registry:
        raise EdgekitError(f"unknown format {name!r}", f"use one of {', '.join(registry)}")
    return registry[name]


def format_for_suffix(path: str | Path) -> Format | None:
    """The format whose suffix `path` ends with (case-insensitive), or None."""
    name = Path(path).name.lower()
    for fmt in _registry().values():
        if any(name.endswith(s) for s in fmt.suffixes):
            return fmt
    return None


def install_fix(fmt: str, missing: str | None = None) -> str:
    """How to install a format's converter: its pip extra (`pip install 'edgekit[tflite]'`), else the missing
    package (a core dependency: the install is broken) or the format's packages."""
    known = _registry().get(fmt)
    if known is not None and known.extra:
        return f"pip install 'edgekit[{known.extra}]'"
    if missing:
        return f"pip install {missing}"
    packages = [p for p in known.converter_packages if p != "torch"] if known is not None else []
    return f"pip install {' '.join(packages) or 'edgekit'}"


def missing_package(fmt: str, module: str | None) -> str:
    """The distribution behind a module that failed to import ("litert_torch" -> "litert-torch") when it is one of
    the format's converter packages, else the format's first converter package (after torch)."""
    known = _registry().get(fmt)
    packages = [p for p in known.converter_packages if p != "torch"] if known is not None else []
    top = (module or "").split(".")[0]
    for candidate in (top.replace("_", "-"), top):
        if candidate and (candidate in packages or candidate == "torch"):
            return candidate
    return packages[0] if packages else (top or fmt)


@plugins.hookimpl
def register_formats(register: Callable[[Format], Any]) -> None:
    """The built-in formats (this module is one of edgekit.plugins.DEFAULT_PLUGINS)."""
    ex = "edgekit.export."
    register(Format("onnx", (".onnx",), ("fp32", "fp16", "int8", "int8-static", "int4"),
                           ("torch", "onnx", "onnxscript", "onnxslim", "onnxruntime"), "onnxruntime",
                    ex + "onnx:export_onnx", ex + "quantize:quantize_onnx", ex + "onnx:onnx_opset"))
    register(Format("tflite", (".tflite",), ("fp32", "fp16", "int8", "int8-static", "int4"),
                    ("torch", "litert-torch", "ai-edge-litert", "ai-edge-quantizer"), "litert",
                    ex + "tflite:export_tflite", ex + "tflite:quantize_tflite", ex + "tflite:tflite_schema_version",
                    extra="tflite"))
    # CoreML: edgekit writes ML Program packages; a legacy .mlmodel is recognised everywhere (bench, eval, predict).
    register(Format("coreml", (".mlpackage", ".mlmodel"), ("fp32", "fp16", "int8", "int4"),
                    ("torch", "coremltools"), "coreml", ex + "coreml:export_coreml", extra="coreml"))
    register(Format("torch", (".pt2",), ("fp32",), ("torch",), "torch", ex + "torchprog:export_torch"))
    register(Format("executorch", (".pte",), ("fp32", "int8", "int8-static"),
                    ("torch", "executorch", "torchao"), "executorch",
                    ex + "executorch:export_executorch", spec_version=ex + "executorch:pte_spec_version",
                    extra="executorch"))
