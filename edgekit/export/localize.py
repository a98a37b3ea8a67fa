"""The first diverging module: where, in graph order, an artifact's intermediate values leave PyTorch's.

PyTorch side: forward hooks record every submodule's output on one input. Artifact side:
- ONNX: every node output becomes a graph output (onnxruntime runs the copy); node names carry the module scope
  ("amp.up/node_linear_1", set at export from the dynamo exporter's name-scope metadata);
- TFLite: the interpreter keeps every tensor (`experimental_preserve_all_tensors`); tensor names carry the module
  path ("Model/Amplifier_amp/Linear_up;1");
- CoreML: runs only on macOS, so not here.
Each module's output in the artifact is the last value its operators produce (of the module output's size). The
first module, in the artifact's execution order, whose output is non-finite or beyond `atol + rtol * scale` is named,
with its operator types and relative error: `amp.up (Gemm): rel err 1.0e+00`.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import torch

from edgekit.errors import EdgekitError
from edgekit.modelsource import LoadedModel

Trace = list[tuple[str, str, np.ndarray]]  # (module path, operator type, value) in execution order


def torch_module_outputs(loaded: LoadedModel, feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Every named submodule's (first tensor) output on `feed`."""
    from edgekit.export.capture import flatten_model_outputs

    outputs: dict[str, np.ndarray] = {}
    hooks = []
    for name, mod in loaded.module.named_modules():
        if not name:
            continue

        def hook(_m, _args, out, name=name):
            flat = flatten_model_outputs(out)
            if flat and name not in outputs:
                outputs[name] = flat[0].detach().float().numpy()

        hooks.append(mod.register_forward_hook(hook))
    try:
        with torch.inference_mode():
            loaded.module(*loaded.example_tensors(feed))
    finally:
        for h in hooks:
            h.remove()
    return outputs


def onnx_trace(path: Path, feed: dict[str, np.ndarray]) -> Trace:
    """Run an ONNX model with every node output exposed; the module scope is the node name's prefix."""
    import onnx
    import onnxruntime as ort

    model = onnx.load(str(path))
    inferred = onnx.shape_inference.infer_shapes(model)
    typed = {v.name: v for v in list(inferred.graph.value_info) + list(inferred.graph.output)}
    existing = {o.name for o in model.graph.output}
    scope: dict[str, tuple[str, str]] = {}
    for node in model.graph.node:
        module = node.name.rpartition("/")[0]
        for out in node.output:
            if out and out in typed:
                scope[out] = (module, node.op_type)
                if out not in existing:
                    model.graph.output.append(typed[out])
                    existing.add(out)
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    names = [i.name for i in session.get_inputs()]
    values = list(feed.values())
    feeds = {n: feed[n] if n in feed else values[i] for i, n in enumerate(names)}
    wanted = [o.name for o in session.get_outputs() if o.name in scope]
    results = dict(zip(wanted, session.run(wanted, feeds), strict=True))
    order = [out for node in model.graph.node for out in node.output if out in results]
    return [(scope[o][0], scope[o][1], np.asarray(results[o])) for o in order]


def _tflite_module(name: str) -> str:
    """'Pkg.Model/Pkg.Amplifier_amp/torch.nn.modules.linear.Linear_up;1' -> 'amp.up' (the root segment dropped). A
    fused op's tensor joins its locations with ';' ('..Linear_stem;;Pkg.Model' is stem + a ReLU at the root): the
    value is the last one's, so the last location names the module."""
    parts = [p for p in name.split(";") if p and not p.isdigit()]
    path = (parts[-1] if parts else "").split("/")[1:]
    attrs = []
    for seg in path:
        tail = seg.rsplit(".", 1)[-1]
        if "_" not in tail:
            return ".".join(attrs)
        attrs.append(tail.split("_", 1)[1])
    return ".".join(attrs)


def tflite_trace(path: Path, feed: dict[str, np.ndarray]) -> Trace:
    """Run a .tflite keeping every tensor; the module path is read from the op's output tensor name."""
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    from edgekit.runtime.litert import quantize_input

    # No default delegate (XNNPACK): a delegated subgraph runs as one op and keeps no intermediate tensors.
    interp = Interpreter(model_path=str(path), experimental_preserve_all_tensors=True,
                         experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
    runner = interp.get_signature_runner()
    inputs = runner.get_input_details()  # name -> detail, in signature order
    values = list(feed.values())
    # The input's own type: litert-torch turns int64 token ids into int32, and full-integer models take int8.
    runner(**{n: quantize_input(np.asarray(feed[n] if n in feed else values[i]), detail)
              for i, (n, detail) in enumerate(inputs.items())})
    details = {d["index"]: d["name"] for d in interp.get_tensor_details()}
    trace: Trace = []
    for op in interp._get_ops_details():  # execution order
        for idx in op["outputs"]:
            if idx < 0 or idx not in details:
                continue
            try:
                value = interp.get_tensor(idx)
            except ValueError:
                continue
            trace.append((_tflite_module(details[idx]), str(op["op_name"]), np.asarray(value)))
    return trace


def first_divergence(loaded: LoadedModel, fmt: str, path: Path, feed: dict[str, np.ndarray],
                     tolerance: dict[str, float]) -> str:
    """'amp.up (Gemm): rel err 1.0e+00' for the first module whose output diverges beyond tolerance, or a sentence
    saying none does (then the error builds up across modules, or sits in operators outside any module)."""
    if fmt == "onnx":
        trace = onnx_trace(path, feed)
    elif fmt == "tflite":
        trace = tflite_trace(path, feed)
    else:
        raise EdgekitError(f"--localize does not run {fmt} artifacts here",
                           "localize the ONNX or TFLite artifact (CoreML executes only on macOS)")
    reference = torch_module_outputs(loaded, feed)
    groups: dict[str, list[tuple[str, np.ndarray]]] = {}
    for module, op, value in trace:
        if module in reference:
            groups.setdefault(module, []).append((op, value))
    atol, rtol = tolerance.get("atol", 1e-4), tolerance.get("rtol", 1e-3)
    for module, ops in groups.items():  # first appearance = execution order
        ref = reference[module].astype(np.float64)
        same = [v for _, v in ops if v.size == ref.size]
        if not same:
            continue
        got = np.asarray(same[-1], dtype=np.float64).reshape(ref.shape)
        scale = float(np.max(np.abs(ref))) if ref.size else 0.0
        err = float(np.max(np.abs(got - ref))) if ref.size else 0.0
        finite = bool(np.all(np.isfinite(got)))
        if not finite or err > atol + rtol * scale:
            types = ", ".join(dict.fromkeys(re.sub(r"^.*::", "", op) for op, _ in ops))
            what = "NaN/inf" if not finite else f"rel err {err / scale:.1e}" if scale > 0 else f"abs err {err:.1e}"
            return f"{module} ({types}): {what}"
    return "no single module's output diverges beyond tolerance (the error builds up across modules)"
