"""PyTorch -> ONNX through the dynamo exporter (torch.export), then onnx.checker and onnxslim."""

from __future__ import annotations

import warnings
from pathlib import Path

import torch

from edgekit.modelsource import LoadedModel

DEFAULT_OPSET = 18
INLINE_LIMIT_BYTES = 1_800_000_000  # protobuf's 2 GB cap: larger models keep weights as external data


def _dynamic_shapes(loaded: LoadedModel) -> dict[str, dict[int, object]] | None:
    if not any(s.dynamic for s in loaded.inputs):
        return None
    dims: dict[str, object] = {}
    shapes: dict[str, dict[int, object]] = {}
    for spec in loaded.inputs:
        axes: dict[int, object] = {}
        for axis, sym in spec.dynamic.items():
            dims.setdefault(sym, torch.export.Dim.DYNAMIC)
            axes[int(axis)] = dims[sym]
        shapes[spec.name] = axes
    return shapes


def _scope_node_names(model) -> None:
    """Prefix each node's name with the PyTorch module it came from ("blocks.0.ffn.router/node_linear_2"), read from
    the dynamo exporter's name-scope metadata before onnxslim drops it. Quantizers can then exclude a module's nodes
    (hybrid quantization keeps GEM's router in float), and per-node costs map back to modules."""
    for node in model.graph.node:
        scopes = next((p.value for p in node.metadata_props if p.key == "pkg.torch.onnx.name_scopes"), "")
        parts = [x.strip(" '\"") for x in scopes.strip("[]").split(",")] if scopes else []
        module = parts[-2] if len(parts) >= 2 else ""
        if module and not node.name.startswith(module + "/"):
            node.name = f"{module}/{node.name}"


def export_onnx(loaded: LoadedModel, path: Path, opset: int = DEFAULT_OPSET) -> dict[str, str]:
    """Write `path` (fp32). Returns details recorded in the manifest (opset, slim status)."""
    import onnx
    import onnxslim

    args = loaded.example_tensors()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        program = torch.onnx.export(
            loaded.module,
            args,
            dynamo=True,
            opset_version=opset,
            input_names=[s.name for s in loaded.inputs],
            output_names=loaded.outputs,
            dynamic_shapes=_dynamic_shapes(loaded),
            verbose=False,
            optimize=True,
        )
    size = sum(p.numel() * p.element_size() for p in loaded.module.parameters())
    program.save(str(path), external_data=size > INLINE_LIMIT_BYTES)
    model = onnx.load(str(path))
    _scope_node_names(model)
    onnx.checker.check_model(model, full_check=True)
    details = {"opset": str(opset), "onnxslim": "applied"}
    try:
        slim = onnxslim.slim(model)
        onnx.checker.check_model(slim)
        onnx.save(slim, str(path))
    except Exception as exc:  # slimming is an optimisation: keep the checked graph and say so
        details["onnxslim"] = f"skipped ({type(exc).__name__})"
    return details


def onnx_opset(path: Path) -> str:
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    return ",".join(f"{o.domain or 'ai.onnx'}:{o.version}" for o in model.opset_import if o.domain in ("", "ai.onnx"))
