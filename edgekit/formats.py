"""The Format registry: the one place that knows each artifact format's suffixes, precisions, converter packages,
runtime, spec-version reader and export/quantize functions.

Functions are named by import path ("module:function") and imported only when asked for, so importing the registry
stays cheap (stdlib only). The built-ins register through `register_format`, the same call a third party uses;
adding a format means one new export module plus one registration.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edgekit.errors import EdgekitError

__all__ = ["Format", "all_formats", "format_for_suffix", "format_names", "get_format", "register_format"]


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


_REGISTRY: dict[str, Format] = {}


def register_format(fmt: Format) -> Format:
    """Add (or replace) a format. Suffixes are stored lower-case with their leading dot; one suffix, one format."""
    suffixes = tuple(s.lower() if s.startswith(".") else "." + s.lower() for s in fmt.suffixes)
    if not suffixes:
        raise EdgekitError(f"format {fmt.name!r} declares no suffix", "give at least one suffix, e.g. '.onnx'")
    for other in _REGISTRY.values():
        clash = set(other.suffixes) & set(suffixes)
        if other.name != fmt.name and clash:
            raise EdgekitError(f"format {fmt.name!r} claims suffix {sorted(clash)[0]} of format {other.name!r}",
                               "give the new format a suffix of its own")
    fmt = Format(**{**fmt.__dict__, "suffixes": suffixes})
    _REGISTRY[fmt.name] = fmt
    return fmt


def all_formats() -> dict[str, Format]:
    """Every registered format by name, in registration order."""
    return dict(_REGISTRY)


def format_names() -> tuple[str, ...]:
    return tuple(_REGISTRY)


def get_format(name: str) -> Format:
    if name not in _REGISTRY:
        raise EdgekitError(f"unknown format {name!r}", f"use one of {', '.join(_REGISTRY)}")
    return _REGISTRY[name]


def format_for_suffix(path: str | Path) -> Format | None:
    """The format whose suffix `path` ends with (case-insensitive), or None."""
    name = Path(path).name.lower()
    for fmt in _REGISTRY.values():
        if any(name.endswith(s) for s in fmt.suffixes):
            return fmt
    return None


def _builtins() -> None:
    ex = "edgekit.export."
    register_format(Format("onnx", (".onnx",), ("fp32", "fp16", "int8", "int8-static", "int4"),
                           ("torch", "onnx", "onnxscript", "onnxslim", "onnxruntime"), "onnxruntime",
                           ex + "onnx:export_onnx", ex + "quantize:quantize_onnx", ex + "onnx:onnx_opset"))
    register_format(Format("tflite", (".tflite",), ("fp32", "fp16", "int8", "int8-static", "int4"),
                           ("torch", "litert-torch", "ai-edge-litert", "ai-edge-quantizer"), "litert",
                           ex + "tflite:export_tflite", ex + "tflite:quantize_tflite",
                           ex + "tflite:tflite_schema_version"))
    # CoreML: edgekit writes ML Program packages; a legacy .mlmodel is recognised everywhere (bench, eval, predict).
    register_format(Format("coreml", (".mlpackage", ".mlmodel"), ("fp32", "fp16", "int8", "int4"),
                           ("torch", "coremltools"), "coreml", ex + "coreml:export_coreml"))
    register_format(Format("torch", (".pt2",), ("fp32",), ("torch",), "torch", ex + "torchprog:export_torch"))
    register_format(Format("executorch", (".pte",), ("fp32", "int8", "int8-static"),
                           ("torch", "executorch", "torchao"), "executorch",
                           ex + "executorch:export_executorch", spec_version=ex + "executorch:pte_spec_version"))


_builtins()
