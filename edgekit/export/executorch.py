"""PyTorch -> ExecuTorch program (.pte): torch.export -> to_edge_transform_and_lower (XNNPACK partitioner) -> .pte.

Precisions (docs/export.md, "ExecuTorch"):
- fp32: the float graph, with every operator XNNPACK takes delegated to it.
- int8-static: PT2E with XNNPACK's quantizer, symmetric per-channel int8 weights and int8 activations whose ranges
  come from the calibration inputs (export.calibration: --calibration, the card's source, else random — said so).
- int8: XNNPACK's dynamic scheme (int8 per-channel weights, activations quantized per run) for linear-heavy graphs;
  for a convolution-heavy graph with calibration inputs it is the static scheme, which XNNPACK runs faster
  (the same choice the TFLite exporter makes).
Modules a model keeps in float (`high_precision_modules()`, GEM's router) are left out of quantization.

Every artifact records its delegate and a delegation audit: how many operators the delegate took, and which stay on
ExecuTorch's portable CPU kernels (listed by operator with counts).

The `executorch` package is optional (`make setup-executorch`); without it, or with a build that does not import
with the installed torch, the export fails with one line that names the package and the fix.
"""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path
from typing import Any

from edgekit.errors import EdgekitError
from edgekit.modelsource import LoadedModel
from edgekit.runtime.executorch import CHECKED_VERSION, INSTALL_FIX, executorch_problem, require_executorch

__all__ = ["CHECKED_VERSION", "INSTALL_FIX", "delegation_audit", "executorch_problem", "export_executorch",
           "pte_spec_version", "require_executorch"]

DELEGATE = "XnnpackBackend"
_PTE_MAGIC = re.compile(rb"ET\d\d")


def _partitioner():
    from executorch.backends.xnnpack.partition.xnnpack_partitioner import XnnpackPartitioner

    return XnnpackPartitioner()


def _exportable(module: Any) -> Any:
    """The module as ExecuTorch can lower it: non-persistent buffers (constant tables such as DFT matrices) made
    persistent on a copy — executorch 1.5's constant dim-order pass fails on them ("Missing input spec for lifted
    tensor"). Persistence only decides what state_dict saves; the values and the graph are the same."""
    import copy

    if not any(m._non_persistent_buffers_set for m in module.modules()):
        return module
    module = copy.deepcopy(module)
    for m in module.modules():
        m._non_persistent_buffers_set.clear()
    return module


def _conv_heavy(module: Any) -> bool:
    """True when convolution weights outweigh linear weights (MobileNet, ResNet): static int8 pays off there."""
    import torch

    conv = sum(m.weight.numel() for m in module.modules() if isinstance(m, torch.nn.modules.conv._ConvNd))
    linear = sum(m.weight.numel() for m in module.modules() if isinstance(m, torch.nn.Linear))
    return conv > linear


def _in_modules(node: Any, names: list[str]) -> bool:
    """True when an FX node comes from one of the named submodules (its nn_module_stack passes through one)."""
    stack = node.meta.get("nn_module_stack") or {}
    for path, _ in stack.values():
        path = str(path).removeprefix("L['self'].").removeprefix("L__self__.")
        path = re.sub(r"\[['\"]?([^'\"\]]+)['\"]?\]", r".\1", path).replace("._modules.", ".").strip(".")
        if any(path == n or path.startswith(n + ".") for n in names):
            return True
    return False


def _quantized_program(loaded: LoadedModel, scheme: str, calibration: list[dict], keep_float: list[str]):
    """PT2E: export for training, annotate with XNNPACK's quantizer, calibrate (static), convert, export again."""
    import torch
    from executorch.backends.xnnpack.quantizer.xnnpack_quantizer import (
        XNNPACKQuantizer,
        get_symmetric_quantization_config,
    )
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e

    args = loaded.example_tensors()
    quantizer = XNNPACKQuantizer()
    quantizer.set_global(get_symmetric_quantization_config(is_per_channel=True, is_dynamic=scheme == "dynamic"))
    if keep_float:
        quantizer.set_filter_function(lambda node: not _in_modules(node, keep_float))
    graph = torch.export.export(_exportable(loaded.module), args).module()
    prepared = prepare_pt2e(graph, quantizer)
    feeds = calibration if scheme == "static" else calibration[:1]
    with torch.no_grad():
        for feed in feeds or [None]:
            prepared(*(loaded.example_tensors(feed) if feed is not None else args))
    converted = convert_pt2e(prepared)
    return torch.export.export(converted, args)


# Bookkeeping nodes, not compute: tuple unpacking, and the quantize/dequantize pairs XNNPACK fuses into its int8
# kernels (counted apart, as `quant_nodes`).
_BOOKKEEPING = ("getitem", "executorch_call_delegate")
_QUANT_PREFIX = ("quantized_decomposed.", "torchao.")


def delegation_audit(program: Any) -> dict[str, Any]:
    """Which operators the delegate took and which stay on ExecuTorch's portable CPU kernels, from the lowered
    edge program: {"delegate", "subgraphs", "delegated_ops", "portable_ops", "quant_nodes", "delegated",
    "portable", "portable_in"}. `delegated` / `portable` map an operator to its count; `portable_in` maps each
    portable operator to the module classes it comes from (innermost nn.Module of its call stack)."""
    graph_module = program.exported_program().graph_module
    delegated: Counter[str] = Counter()
    portable: Counter[str] = Counter()
    portable_in: dict[str, set[str]] = {}
    quant = 0
    subgraphs = 0
    for node in graph_module.graph.nodes:
        if node.op == "get_attr" and node.name.startswith("lowered_module"):
            subgraphs += 1
            lowered = getattr(graph_module, node.target)
            for inner in lowered.original_module.graph.nodes:
                if inner.op != "call_function":
                    continue
                name = _op_name(inner.target)
                if name.startswith(_QUANT_PREFIX):
                    quant += 1
                elif name not in _BOOKKEEPING:
                    delegated[name] += 1
        elif node.op == "call_function":
            name = _op_name(node.target)
            if name in _BOOKKEEPING:
                continue
            if name.startswith(_QUANT_PREFIX):
                quant += 1
                continue
            portable[name] += 1
            stack = list((node.meta.get("nn_module_stack") or {}).values())
            owner = _class_name(stack[-1][1]) if stack else "(top level)"
            portable_in.setdefault(name, set()).add(owner)
    return {"delegate": DELEGATE, "subgraphs": subgraphs,
            "delegated_ops": sum(delegated.values()), "portable_ops": sum(portable.values()), "quant_nodes": quant,
            "delegated": dict(sorted(delegated.items())), "portable": dict(sorted(portable.items())),
            "portable_in": {op: sorted(owners) for op, owners in sorted(portable_in.items())}}


def _class_name(kind: Any) -> str:
    text = getattr(kind, "__name__", None) or str(kind)
    return text.rsplit(".", 1)[-1].strip("'>")


def _op_name(target: Any) -> str:
    """aten.mean.dim for an edge/aten operator, the function's name for anything else."""
    name = getattr(target, "__name__", None) or str(target)
    text = str(target)
    m = re.search(r"(aten|quantized_decomposed|torchao|dim_order_ops|xnnpack)[.:]+(\w+)(?:\.(\w+))?", text)
    if m:
        return f"{m[1]}.{m[2]}" + (f".{m[3]}" if m[3] and m[3] != "default" else "")
    return name.split(".")[-1]


def export_executorch(loaded: LoadedModel, path: Path, precision: str = "fp32",
                      calibration: list[dict] | None = None, keep_float: list[str] | None = None) -> dict[str, Any]:
    """Write a .pte lowered to XNNPACK; return the manifest details (delegate, audit, quantization scheme)."""
    require_executorch()
    import torch
    from executorch.exir import to_edge_transform_and_lower

    from edgekit.runtime.base import dist_version

    details: dict[str, Any] = {"converter": "torch.export -> to_edge_transform_and_lower(XnnpackPartitioner)"}
    if precision == "fp32":
        program = torch.export.export(_exportable(loaded.module), loaded.example_tensors())
    elif precision in ("int8", "int8-static"):
        calibration = list(calibration or [])
        static = precision == "int8-static" or (bool(calibration) and _conv_heavy(loaded.module))
        if static and not calibration:
            raise EdgekitError("executorch static int8 needs calibration inputs and none were given",
                               "pass --calibration FILE.npz (keyed by input name)")
        scheme = "static" if static else "dynamic"
        program = _quantized_program(loaded, scheme, calibration, list(keep_float or []))
        details["scheme"] = (
            "static int8 (XNNPACKQuantizer: per-channel symmetric int8 weights, int8 activations calibrated)"
            if static else "dynamic int8 (XNNPACKQuantizer: per-channel int8 weights, activations quantized per run)")
        if static:
            details["calibration_inputs"] = len(calibration)
        if keep_float:
            details["kept_float"] = list(keep_float)
    else:
        raise EdgekitError(f"executorch has no {precision} variant in edgekit", "use fp32, int8 or int8-static")
    lowered = to_edge_transform_and_lower(program, partitioner=[_partitioner()])
    details["delegate"] = DELEGATE
    details["delegation"] = delegation_audit(lowered)
    buffer = lowered.to_executorch().buffer
    path.write_bytes(buffer)
    details["executorch"] = dist_version("executorch") or "unknown"
    return details


def pte_spec_version(path: Path) -> str | None:
    """The .pte flatbuffer identifier (e.g. "ET12"), read from bytes 4..8 of the file."""
    with open(path, "rb") as fh:
        head = fh.read(8)
    ident = head[4:8]
    return ident.decode() if _PTE_MAGIC.fullmatch(ident) else None


def portable_summary(details: dict[str, Any]) -> str:
    """One line for tables: "XNNPACK took 57/60 ops; portable: aten.mean.dim x2, aten.embedding x1"."""
    audit = details.get("delegation") or {}
    total = int(audit.get("delegated_ops", 0)) + int(audit.get("portable_ops", 0))
    line = f"XNNPACK took {audit.get('delegated_ops', 0)}/{total} ops"
    portable = audit.get("portable") or {}
    if portable:
        line += "; portable: " + ", ".join(f"{op} x{n}" for op, n in portable.items())
    return line
