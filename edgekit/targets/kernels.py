"""Kernel-level latency model (the nn-Meter approach): per-node times of onnxruntime on this host, learned from a
sweep of small single-operator / fused-block ONNX graphs, never from the zoo models themselves.

1. Sweep (`sweep_configs`, ~675 seeded graphs): Linear (MatMul + bias Add, fp32 and dynamic int8 via edgekit's own
   `quantize_onnx`), attention MatMuls, Conv by kernel size 1/3/5/7, patch convs (kernel = stride), large
   overlapping kernels, depthwise, + ReLU / + residual Add (onnxruntime fuses them into FusedConv), weight-only int8
   convs, elementwise, GELU (erf form), QuickGELU, Softmax, LayerNorm (+ residual: SkipLayerNormalization),
   Transpose, Concat, Split, Slice, Reshape, Gather(Elements), ScatterElements, Where, Expand, TopK, reductions,
   pooling, Resize, DFT, Q/DQ. Inputs pass through a `Neg` head and the output is read by a Reshape + Slice tail, so
   the measured block works on arena tensors as inside a model.
2. Measurement (`measure_sweep`): onnxruntime's profiler (edgekit.profile.ort) names the EXECUTED nodes of each graph
   (after its fusions and layout transforms) and their shapes; the block's unprofiled time is the p50 of the graph
   minus the p50 of its baseline (the same heads and tails without the block), the two timed interleaved (40-400
   runs, about 0.15 s, L2 flushed before each run), shared among the executed nodes in proportion to their profiled
   times. (The profiler's durations are whole µs and carry its own cost of about 1 µs per node, too coarse for the
   0.3-3 µs nodes that make up most of a small model.) Every executed node is one training row: kernel key, shapes,
   time (ms). Two passes minutes apart. Cached in a JSON file (`--kernels-cache`) so an interrupted sweep resumes.
3. Features (`node_features`): from a node's op type and input/output shapes only: matrix ops by M, K, N and batch;
   convolutions by output pixels, input channels per group, output channels, kernel area, groups and a residual
   input; every other op by its element counts (and k for TopK).
4. Fit (`fit_kernel_model`): per kernel key (`kernel_key`: the op type, refined for computed weights and non-last
   axes) time = a + b·work + c·elements moved (non-negative least squares on relative errors), times the
   distance-weighted log residual of its 3 nearest sweep points (standardised log features), fading with distance.
   A kernel the sweep never ran falls back to a per-byte rate over all memory-bound rows.
5. A model's prediction: its executed graph (onnxruntime's optimised graph, written once with the benchmark's session
   options, shapes from onnx shape inference of the exported graph carried over by tensor name) summed node by node,
   plus `call_ms`, the fixed cost of one inference call (chains of trivial nodes, `measure_call_ms`). No zoo model is
   used anywhere in the fit.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
import time
import zlib
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

KERNELS_VERSION = 6
MATMUL_OPS = frozenset({"MatMul", "FusedMatMul", "Gemm", "DynamicQuantizeMatMul", "MatMulIntegerToFloat",
                        "MatMulInteger", "QLinearMatMul"})
CONV_OPS = frozenset({"Conv", "FusedConv", "ConvInteger", "QLinearConv"})
NO_TIME_OPS = frozenset({"Constant", "Identity"})


# -- executed nodes -------------------------------------------------------------------------------------------------

@dataclass
class KernelNode:
    """One node as onnxruntime executes it: op type, input and output shapes (None where unknown), attributes."""

    name: str
    op_type: str
    inputs: list[list[int] | None]
    outputs: list[list[int] | None]
    attrs: dict[str, Any] = field(default_factory=dict)
    const_inputs: list[bool] = field(default_factory=list)  # which inputs are initializers (constant weights)

    @property
    def key(self) -> str:
        """The regressor this node is predicted by (kernel_key)."""
        return kernel_key(self.op_type, self.inputs, self.attrs, self.const_inputs)


def kernel_key(op_type: str, inputs: Sequence[Sequence[int] | None], attrs: dict[str, Any],
               const_inputs: Sequence[bool]) -> str:
    """The op type, refined where onnxruntime runs another kernel for the same op type: a convolution or matrix
    product whose weights are not constant (computed, e.g. dequantized at run time: no pre-packing) gets
    "@dynw"; Softmax / LayerNormalization / reductions over another axis than the last get "@axis"."""
    if op_type in CONV_OPS | MATMUL_OPS and len(const_inputs) > 1 and not const_inputs[1]:
        return f"{op_type}@dynw"
    if op_type in ("Softmax", "LogSoftmax", "LayerNormalization") and inputs and inputs[0]:
        nd = len(inputs[0])
        if int(attrs.get("axis", -1)) % nd != nd - 1:
            return f"{op_type}@axis"
    return op_type


def _prod(xs: Sequence[int] | None) -> int:
    out = 1
    for x in xs or []:
        out *= int(x)
    return out


def _conv_out(x: list[int], w: list[int], attrs: dict[str, Any]) -> list[int]:
    k = attrs.get("kernel_shape") or w[2:]
    s = attrs.get("strides") or [1] * len(k)
    d = attrs.get("dilations") or [1] * len(k)
    p = attrs.get("pads") or [0] * (2 * len(k))
    sp = [(x[2 + i] + p[i] + p[i + len(k)] - d[i] * (k[i] - 1) - 1) // s[i] + 1 for i in range(len(k))]
    return [x[0], w[0], *sp]


def _propagate(node: Any, shapes: dict[str, list[int]], consts: dict[str, np.ndarray]) -> None:
    """Fill output shapes onnx shape inference could not give (onnxruntime's own nodes: NCHWc convolutions,
    reorders, the Reshape/Gemm pairs of its MatMul+Add fusion)."""
    from onnx import helper

    op = node.op_type
    ins = [shapes.get(n) if n else None for n in node.input]
    attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
    outs = list(node.output)
    if not outs or all(o in shapes for o in outs if o):
        return
    x = ins[0] if ins else None
    out: list[int] | None = None
    if op in ("ReorderInput", "ReorderOutput") and x is not None:
        out = list(x)
        if op == "ReorderOutput" and "channels" in attrs:
            out[1] = int(attrs["channels"])
    elif op in ("Conv", "FusedConv") and x is not None and len(ins) > 1 and ins[1] is not None:
        out = _conv_out(x, ins[1], attrs)
    elif op == "Reshape" and x is not None and len(node.input) > 1 and node.input[1] in consts:
        target = [int(v) for v in consts[node.input[1]].reshape(-1)]
        target = [x[i] if v == 0 and i < len(x) else v for i, v in enumerate(target)]
        if -1 in target:
            known = _prod([v for v in target if v != -1])
            target[target.index(-1)] = _prod(x) // max(known, 1)
        out = target
    elif op == "Gemm" and x is not None and len(ins) > 1 and ins[1] is not None:
        m = x[1] if attrs.get("transA", 0) else x[0]
        n = ins[1][0] if attrs.get("transB", 0) else ins[1][1]
        out = [m, n]
    elif op == "Transpose" and x is not None:
        perm = attrs.get("perm") or list(range(len(x)))[::-1]
        out = [x[i] for i in perm]
    elif op == "Concat" and all(s is not None for s in ins):
        ax = int(attrs.get("axis", 0)) % len(ins[0])  # type: ignore[arg-type]
        out = list(ins[0])  # type: ignore[arg-type]
        out[ax] = sum(s[ax] for s in ins)  # type: ignore[index]
    elif op in ("MatMul", "FusedMatMul", "DynamicQuantizeMatMul", "MatMulIntegerToFloat", "MatMulInteger") and \
            x is not None and len(ins) > 1 and ins[1] is not None and len(ins[1]) >= 2:
        w = ins[1]
        n = w[-2] if attrs.get("transB", 0) else w[-1]
        batch = x[:-2] if len(x) >= len(w) else w[:-2]
        out = [*batch, x[-1] if attrs.get("transA", 0) else x[-2], n] if len(x) >= 2 else [n]
    elif op == "DynamicQuantizeLinear" and x is not None:  # (quantized x, scale, zero point)
        for o, shp in zip(outs, (list(x), [], []), strict=False):
            if o:
                shapes[o] = shp
        return
    elif x is not None and op in ("Add", "Mul", "Sub", "Div", "Relu", "Sigmoid", "Clip", "Gelu", "Erf", "Neg",
                                  "QuantizeLinear", "DequantizeLinear", "Cast", "QuickGelu", "BiasGelu", "FastGelu",
                                  "LayerNormalization", "SkipLayerNormalization", "Softmax"):
        out = list(x)
    if out is not None:
        shapes[outs[0]] = out


def executed_nodes(path: Path, input_shapes: dict[str, Sequence[int]] | None = None, threads: int = 1,
                   optimization: str = "all") -> list[KernelNode]:
    """The nodes onnxruntime runs for an .onnx file on this host (its optimised graph at `optimization`, written
    by onnxruntime itself, no inference run), with shapes from onnx shape inference of the exported graph carried
    over by tensor name, the rest propagated node by node."""
    import onnx
    import onnxruntime as ort
    from onnx import helper, numpy_helper, shape_inference

    from edgekit.targets.predictor import _fix_inputs

    model = onnx.load(str(path))
    _fix_inputs(model, input_shapes)
    try:
        inferred = shape_inference.infer_shapes(model, data_prop=True)
    except Exception:  # noqa: BLE001 - fall back to what propagation finds
        inferred = model
    shapes: dict[str, list[int]] = {}
    for vi in list(inferred.graph.input) + list(inferred.graph.value_info) + list(inferred.graph.output):
        tt = vi.type.tensor_type
        if tt.HasField("shape") and all(d.HasField("dim_value") for d in tt.shape.dim):
            shapes[vi.name] = [int(d.dim_value) for d in tt.shape.dim]
    levels = {"disable": "ORT_DISABLE_ALL", "basic": "ORT_ENABLE_BASIC", "extended": "ORT_ENABLE_EXTENDED",
              "all": "ORT_ENABLE_ALL"}
    with tempfile.TemporaryDirectory(prefix="edgekit-kernels-") as tmp:
        so = ort.SessionOptions()
        so.intra_op_num_threads = threads
        so.inter_op_num_threads = 1
        so.log_severity_level = 3
        so.graph_optimization_level = getattr(ort.GraphOptimizationLevel, levels[optimization])
        so.optimized_model_filepath = os.path.join(tmp, "opt.onnx")
        # the file itself, as the benchmark loads it: the value_info of shape inference would change the fusions
        ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
        opt = onnx.load(so.optimized_model_filepath)
    consts: dict[str, np.ndarray] = {}
    consts_all = {i.name for i in opt.graph.initializer}
    for init in opt.graph.initializer:
        shapes[init.name] = [int(d) for d in init.dims]
        if init.data_type == onnx.TensorProto.INT64 and _prod(init.dims) <= 16:
            consts[init.name] = numpy_helper.to_array(init)
    out = []
    for node in opt.graph.node:  # onnxruntime writes its graph in execution (topological) order
        _propagate(node, shapes, consts)
        if node.op_type in NO_TIME_OPS:
            continue
        attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute
                 if a.type in (onnx.AttributeProto.INT, onnx.AttributeProto.INTS, onnx.AttributeProto.FLOAT)}
        out.append(KernelNode(node.name, node.op_type, [shapes.get(n) if n else None for n in node.input],
                              [shapes.get(n) if n else None for n in node.output], attrs,
                              [n in consts_all for n in node.input]))
    return out


# -- features -----------------------------------------------------------------------------------------------------

def _l(x: float) -> float:
    return math.log(max(float(x), 1.0))


def node_features(op_type: str, inputs: Sequence[Sequence[int] | None], outputs: Sequence[Sequence[int] | None],
                  ) -> list[float]:
    """Log-space features of one executed node from its shapes (the same for sweep rows, read from the profiler,
    and for a model's nodes, read from its graph). Matrix ops: [log M, log K, log N, log batch, log FLOPs];
    convolutions: [log out pixels, log Cin/group, log Cout, log kernel area, log groups, log FLOPs, residual];
    anything else: [log first-input elements, log output elements, log all-input elements, log last dim,
    log k (TopK; else 0)]."""
    ins = [list(s) if s is not None else None for s in inputs]
    outs = [list(s) if s is not None else None for s in outputs]
    y = outs[0] if outs else None
    if op_type in MATMUL_OPS:
        a = ins[0] or []
        k = a[-1] if a else 1
        if op_type == "Gemm" and a and len(a) == 2 and ins[1] is not None and len(ins) > 1:
            n = y[-1] if y else 1
        else:
            n = y[-1] if y else 1
        m = y[-2] if y and len(y) >= 2 else 1
        batch = _prod(y[:-2]) if y and len(y) > 2 else 1
        return [_l(m), _l(k), _l(n), _l(batch), _l(2.0 * m * k * n * batch)]
    if op_type in CONV_OPS:
        x = ins[0] or [1, 1, 1, 1]
        w = ins[1] if len(ins) > 1 and ins[1] is not None else [1, 1, 1, 1]
        pixels = _prod(y[2:]) * (y[0] if y else 1) if y else _prod(x[2:])
        cin_g = w[1] if len(w) > 1 else 1
        cout = w[0]
        area = _prod(w[2:])
        groups = max(1, (x[1] if len(x) > 1 else 1) // max(1, cin_g))
        residual = 1.0 if len(ins) > 3 and ins[3] is not None else 0.0
        return [_l(pixels), _l(cin_g), _l(cout), _l(area), _l(groups), _l(2.0 * pixels * cin_g * cout * area),
                residual]
    first = _prod(ins[0]) if ins and ins[0] is not None else 1
    total = sum(_prod(s) for s in ins if s is not None)
    out_e = sum(_prod(s) for s in outs if s is not None)
    last = (ins[0][-1] if ins and ins[0] else 1)
    k = 1
    if op_type == "TopK" and y:
        k = y[-1]
    return [_l(first), _l(out_e), _l(total), _l(last), _l(k)]


# -- the sweep ----------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class KernelConfig:
    """One sweep graph: a name (its cache key), a builder kind and its parameters, fp32 or dynamic int8."""

    name: str
    kind: str
    params: tuple[tuple[str, Any], ...]
    precision: str = "fp32"

    def p(self) -> dict[str, Any]:
        return dict(self.params)


def _cfg(kind: str, precision: str = "fp32", **params: Any) -> KernelConfig:
    items = tuple(sorted(params.items()))
    name = f"{kind}:{precision}:" + ",".join(f"{k}={v}" for k, v in items)
    return KernelConfig(name, kind, items, precision)


def sweep_configs(seed: int = 0, scale: float = 1.0) -> list[KernelConfig]:
    """The sweep: a fixed grid for small ops, seeded random samples of the large grids (matrix ops, convolutions).
    `scale` multiplies the number of random samples (tests use a tiny one)."""
    rng = np.random.default_rng(seed)
    out: list[KernelConfig] = []

    def pick(xs: Sequence[Any]) -> Any:
        return xs[int(rng.integers(len(xs)))]

    n = lambda k: max(1, int(round(k * scale)))  # noqa: E731
    for _ in range(n(70)):  # Linear layers: x[B,S,K] @ W[K,N] + b
        b, s = pick([1, 1, 1, 2, 4, 16]), pick([1, 4, 16, 32, 64, 65, 128, 256, 320, 1024])
        k, nn = pick([32, 48, 64, 96, 128, 192, 256, 384, 512]), pick([4, 8, 32, 64, 96, 128, 192, 256, 384, 512,
                                                                       576, 768, 1024])
        for prec in ("fp32", "int8"):
            out.append(_cfg("linear", prec, b=b, s=s, k=k, n=nn, bias=int(rng.integers(0, 4) > 0)))
    for _ in range(n(25)):
        b, s = pick([1, 1, 2, 4]), pick([1, 16, 64, 65, 128, 256, 320, 1024])
        k, nn = pick([32, 48, 64, 96, 128, 192, 256]), pick([5, 6, 8, 64, 128, 192, 256, 384, 512])
        out.append(_cfg("linear2", "int8", b=b, s=s, k=k, n=nn))
    for _ in range(n(30)):  # activation x activation (attention)
        bh, s, d = pick([1, 2, 4, 8, 16, 32, 64]), pick([4, 16, 64, 65, 128, 256]), pick([8, 16, 24, 32, 48, 64])
        out.append(_cfg("attn", bh=bh, s=s, d=d, t=pick([4, 16, 64, 128, 256]), qk=int(rng.integers(0, 2))))
    for _ in range(n(80)):  # convolutions
        kind = pick(["k1", "k3", "k3", "k5", "k7", "patch", "dw3", "dw7", "k3s2", "bigk"])
        cin, cout = pick([3, 16, 24, 32, 48, 64, 96, 128, 192]), pick([16, 24, 32, 48, 64, 96, 128, 192, 256])
        hw = pick([8, 16, 32, 64])
        act = pick(["none", "none", "relu", "add"])
        if kind == "bigk":  # large overlapping kernels (cross-scale patch embeddings): k 8-32, stride 2-4, padded
            k, st = pick([8, 12, 16, 24, 32]), pick([2, 4])
            out.append(_cfg("conv", cin=pick([3, 16, 48]), cout=pick([6, 8, 16, 24, 48]), hw=pick([16, 32, 64]), k=k,
                            stride=st, groups=1, act="none", pad=(k - st) // 2))
        elif kind == "patch":
            k = pick([2, 4, 8, 16])
            cin, hw = pick([3, 3, 16, 32, 48, 64]), pick([16, 32, 64])
            k = min(k, hw)
            out.append(_cfg("conv", cin=cin, cout=cout, hw=hw, k=k, stride=k, groups=1, act="none"))
        elif kind.startswith("dw"):
            c = pick([16, 32, 48, 64, 96, 128, 192])
            out.append(_cfg("conv", cin=c, cout=c, hw=hw, k=int(kind[2]), stride=1, groups=c, act=act))
        else:
            k = int(kind[1])
            out.append(_cfg("conv", cin=cin, cout=cout, hw=hw, k=k, stride=2 if kind == "k3s2" else 1, groups=1,
                            act=act if kind != "k3s2" else "none"))
    sizes = [(1, 16, 64), (1, 64, 128), (1, 128, 128), (1, 128, 256), (4, 64, 128), (1, 1024, 48), (1, 256, 64),
             (16, 16, 48), (1, 17, 192), (1, 65, 192)]
    for op in ("Add", "Mul", "Div", "Sub"):
        for shp in sizes[::2] + [(1, 4, 256, 256), (2, 64), (1, 10), (1, 4, 64), (1, 4, 16, 32), (1, 64, 256)]:
            out.append(_cfg("binary", op=op, shape=shp, bcast=0))
        for shp in sizes[1::3] + [(1, 32), (1, 65, 6), (1, 128, 4, 128), (1, 4, 32, 32)]:
            out.append(_cfg("binary", op=op, shape=shp, bcast=1))
            out.append(_cfg("binary", op=op, shape=shp, bcast=2))
    for op in ("Erf", "Sigmoid", "Relu", "Sqrt", "Exp", "Neg", "Tanh", "Reciprocal", "Pow", "Cast", "Clip"):
        for shp in (sizes[0], sizes[2], sizes[5], (1, 192, 8, 8)):
            out.append(_cfg("unary", op=op, shape=shp))
    for shp in sizes + [(1, 48, 32, 32)]:
        out.append(_cfg("gelu", shape=shp))
        out.append(_cfg("layernorm", shape=shp, skip=0))
        out.append(_cfg("layernorm", shape=shp, skip=1))
    for shp in [(1, 4, 64, 64), (1, 8, 128, 128), (4, 4, 64, 64), (1, 3, 65, 65), (1, 1024, 8), (1, 4, 256, 256),
                (1, 6, 17, 17), (16, 4, 16, 16), (1, 128, 4)]:
        out.append(_cfg("softmax", shape=shp))
    for shp in [(1, 4, 1024, 8), (1, 1024, 8), (1, 4, 64, 16), (1, 256, 64), (4, 128, 32), (1, 16, 16, 16)]:
        out.append(_cfg("softmax", shape=shp, axis=-2))
    for _ in range(n(20)):  # weight-only int8 convolutions: weights dequantized at run time (no pre-packing)
        k = pick([1, 3, 4, 8, 16, 32])
        st = pick([1, 2, 4]) if k > 1 else 1
        out.append(_cfg("conv", cin=pick([3, 16, 48, 96]), cout=pick([6, 16, 48, 96]), hw=pick([16, 32, 64]), k=k,
                        stride=st, groups=1, act="none", pad=max(k - st, 0) // 2, wq=1))
    for shp, perm in [((1, 128, 4, 32), (0, 2, 1, 3)), ((1, 4, 128, 32), (0, 2, 1, 3)),
                      ((1, 4, 128, 32), (0, 1, 3, 2)), ((1, 65, 3, 64), (0, 2, 1, 3)),
                      ((1, 256, 64), (0, 2, 1)), ((1, 64, 256), (0, 2, 1)), ((1, 48, 32, 32), (0, 2, 3, 1)),
                      ((1, 32, 32, 48), (0, 3, 1, 2)), ((4, 64, 4, 32), (0, 2, 1, 3)), ((16, 16, 3, 16), (2, 0, 1, 3)),
                      ((1, 16, 16, 16, 128), (0, 1, 3, 2, 4)), ((1, 1024, 2, 24), (0, 2, 1, 3)),
                      ((16, 128, 4, 12), (0, 2, 1, 3)), ((1, 64, 4, 32), (0, 2, 1, 3)), ((1, 16, 4, 32), (0, 2, 1, 3)),
                      ((1, 2, 4, 16), (0, 2, 1, 3)), ((1, 65, 8, 1), (0, 2, 1, 3)), ((1, 128, 256), (0, 2, 1)),
                      ((1, 4, 64, 32), (0, 1, 3, 2)), ((4, 16, 4, 32), (0, 2, 1, 3))]:
        out.append(_cfg("transpose", shape=shp, perm=perm))
    for shp in [(1, 1024, 48), (1, 256, 64), (1, 128, 128), (1, 64, 32)]:
        out.append(_cfg("expand", shape=shp, last=1))
    for shp in sizes[:6] + [(1, 48, 32, 32)]:
        out.append(_cfg("concat", shape=shp, parts=2))
        out.append(_cfg("split", shape=shp, parts=3 if shp[-1] % 3 == 0 else 2))
        out.append(_cfg("slice", shape=shp))
        out.append(_cfg("reduce", shape=shp, op="ReduceMean"))
        out.append(_cfg("reduce", shape=shp, op="ReduceSum"))
        out.append(_cfg("expand", shape=shp))
    for shp in [(1, 4, 256, 256), (1, 128, 128), (1, 1024, 48), (1, 64, 64)]:
        out.append(_cfg("where", shape=shp))
    for op in ("GreaterOrEqual", "Equal", "Less", "Max", "Min"):
        for shp in (sizes[0], sizes[2], (1, 4, 256, 256)):
            out.append(_cfg("binary", op=op, shape=shp, bcast=1))
    for shp in sizes[:8]:
        out.append(_cfg("shape_op", shape=shp, op="Reshape"))
        out.append(_cfg("shape_op", shape=shp, op="Unsqueeze"))
        out.append(_cfg("quickgelu", shape=shp))
        out.append(_cfg("qdq", shape=shp))
    for c, hw in [(48, 32), (64, 16), (32, 64), (192, 8)]:
        out.append(_cfg("norm2d", c=c, hw=hw, op="InstanceNormalization"))
        out.append(_cfg("norm2d", c=c, hw=hw, op="BatchNormalization"))
        out.append(_cfg("reduce", shape=(1, c, hw * hw), op="ReduceL2"))
        out.append(_cfg("reduce", shape=(1, c, hw * hw), op="ReduceMax"))
    for shp, k in [((1, 4, 256, 256), 32), ((1, 4, 256, 256), 8), ((1, 1024, 8), 1), ((1, 128, 4), 2),
                   ((1, 65, 6), 3), ((1, 16, 16), 4), ((1, 64, 64), 8), ((1, 8, 128, 128), 16), ((1, 256, 64), 4),
                   ((1, 1024), 1024), ((1, 256), 256), ((1, 4096), 4096), ((4, 512), 512), ((1, 1024), 64)]:
        out.append(_cfg("topk", shape=shp, k=k))
    for tab, idx in [((1, 1024, 48), (1, 1024, 48)), ((1, 4, 256, 256), (1, 4, 256, 1)), ((1, 64, 128), (1, 16, 128)),
                     ((1, 16, 16, 16, 128), (1, 16, 4, 16, 128)), ((1, 256, 64), (1, 64, 64))]:
        out.append(_cfg("gatherel", table=tab, index=idx))
        out.append(_cfg("scatterel", table=tab, index=idx))
    for rows, dim, n_idx in [(1000, 128, 128), (64, 64, 16), (32000, 64, 128), (10, 192, 1)]:
        out.append(_cfg("gather", rows=rows, dim=dim, n=n_idx))
    for c, hw in [(48, 32), (64, 16), (32, 64), (192, 8)]:
        out.append(_cfg("pool", c=c, hw=hw, op="MaxPool"))
        out.append(_cfg("pool", c=c, hw=hw, op="AveragePool"))
        out.append(_cfg("pool", c=c, hw=hw, op="GlobalAveragePool"))
        out.append(_cfg("resize", c=c, hw=hw))
        out.append(_cfg("d2s", c=c * 4, hw=hw))
    for c, hw in [(128, 8), (64, 16), (32, 32)]:
        out.append(_cfg("dft", c=c, hw=hw))
    for length in (10, 50):
        out.append(_cfg("chain", n=length, size=64))
        out.append(_cfg("chain", n=length, size=16384))
    return out


def _tail(nodes: list[Any], inits: list[Any], tensor: str, tag: str) -> str:
    """Append the tail of `tensor` (Reshape to 1-D, Slice of its first element); returns the tail's output."""
    from onnx import helper, numpy_helper

    if not any(i.name == "tail_flat" for i in inits):
        for name, v in (("tail_flat", -1), ("tail_s", 0), ("tail_e", 1), ("tail_a", 0)):
            inits.append(numpy_helper.from_array(np.array([v], np.int64), name))
    flat, out = f"tail_f{tag}_{tensor}", f"tail_o{tag}_{tensor}"
    nodes.append(helper.make_node("Reshape", [tensor, "tail_flat"], [flat], name=f"tail_reshape{tag}_{tensor}"))
    nodes.append(helper.make_node("Slice", [flat, "tail_s", "tail_e", "tail_a"], [out], name=f"tail_slice{tag}_{tensor}"))
    return out


def build_graph(cfg: KernelConfig) -> tuple[Any, dict[str, np.ndarray]]:
    """The ONNX model of one sweep config (opset 18, fp32) and its input feeds."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    p = cfg.p()
    rng = np.random.default_rng(zlib.crc32(cfg.name.encode()))
    nodes: list[Any] = []
    inits: list[Any] = []
    feeds: dict[str, np.ndarray] = {}

    def inp(name: str, shape: Sequence[int], dtype: Any = np.float32) -> str:
        """A graph input passed through a `tail_head` Neg (left out of the table), so the measured node reads a
        tensor of onnxruntime's arena as inside a model (a Reshape of a graph input copies; of an arena tensor,
        it aliases)."""
        feeds[name] = (rng.standard_normal(shape).astype(dtype) if dtype == np.float32
                       else np.zeros(shape, dtype=dtype))
        if dtype != np.float32:
            return name
        nodes.append(helper.make_node("Neg", [name], [f"{name}_h"], name=f"tail_head_{name}"))
        return f"{name}_h"

    def const(name: str, arr: np.ndarray) -> str:
        inits.append(numpy_helper.from_array(arr, name))
        return name

    def node(op: str, ins: list[str], n_out: int = 1, **attrs: Any) -> list[str]:
        outs = [f"t{len(nodes)}_{i}" for i in range(n_out)]
        nodes.append(helper.make_node(op, ins, outs, name=f"n{len(nodes)}_{op}", **attrs))
        return outs

    kind = cfg.kind
    f32 = lambda *s: (rng.standard_normal(s) * 0.05).astype(np.float32)  # noqa: E731
    if kind == "linear":
        x = inp("x", (p["b"], p["s"], p["k"]))
        y = node("MatMul", [x, const("w", f32(p["k"], p["n"]))])[0]
        if p["bias"]:
            y = node("Add", [y, const("bias", f32(p["n"]))])[0]
    elif kind == "linear2":  # two Linear layers reading one input (dynamic int8: one shared DynamicQuantizeLinear)
        x = inp("x", (p["b"], p["s"], p["k"]))
        y1 = node("MatMul", [x, const("w1", f32(p["k"], p["n"]))])[0]
        y2 = node("MatMul", [x, const("w2", f32(p["k"], p["n"]))])[0]
        y = node("Add", [y1, y2])[0]
    elif kind == "attn":
        if p["qk"]:  # scores = Q K^T
            q, k = inp("q", (1, p["bh"], p["s"], p["d"])), inp("k", (1, p["bh"], p["d"], p["t"]))
        else:  # output = P V
            q, k = inp("q", (1, p["bh"], p["s"], p["t"])), inp("k", (1, p["bh"], p["t"], p["d"]))
        y = node("MatMul", [q, k])[0]
    elif kind == "conv":
        x = inp("x", (1, p["cin"], p["hw"], p["hw"]))
        k = p["k"]
        pad = p.get("pad", 0 if p["stride"] == k and k > 1 else k // 2)
        if p.get("wq"):  # int8 weights, per-channel scales, dequantized by a node at run time
            wq = const("wq", rng.integers(-127, 128, (p["cout"], p["cin"] // p["groups"], k, k)).astype(np.int8))
            w = node("DequantizeLinear", [wq, const("wsc", np.full(p["cout"], 0.01, np.float32)),
                                          const("wzp", np.zeros(p["cout"], np.int8))], axis=0)[0]
        else:
            w = const("w", f32(p["cout"], p["cin"] // p["groups"], k, k))
        y = node("Conv", [x, w, const("b", f32(p["cout"]))], kernel_shape=[k, k], strides=[p["stride"]] * 2,
                 pads=[pad] * 4, group=p["groups"])[0]
        if p["act"] == "relu":
            y = node("Relu", [y])[0]
        elif p["act"] == "add":
            r = inp("r", (1, p["cout"], p["hw"], p["hw"]))
            y = node("Add", [y, r])[0]
    elif kind == "binary":
        shp = tuple(p["shape"])
        a = inp("a", shp)
        if p["bcast"] == 2:  # a per-row factor: [..., 1]
            b = inp("b", (*shp[:-1], 1))
        else:
            b = const("b", f32(shp[-1])) if p["bcast"] else inp("b", shp)
        y = node(p["op"], [a, b])[0]
    elif kind == "unary":
        a = inp("a", tuple(p["shape"]))
        if p["op"] == "Pow":
            y = node("Pow", [a, const("e", np.array(2.0, dtype=np.float32))])[0]
        elif p["op"] == "Clip":
            y = node("Clip", [a, const("lo", np.array(0.0, np.float32)), const("hi", np.array(6.0, np.float32))])[0]
        elif p["op"] == "Cast":
            y = node("Cast", [a], to=TensorProto.INT64)[0]
        else:
            y = node(p["op"], [a])[0]
    elif kind == "gelu":  # the exporter's erf form: x * 0.5 * (1 + erf(x / sqrt 2))
        a = inp("a", tuple(p["shape"]))
        d = node("Div", [a, const("r2", np.array(math.sqrt(2), np.float32))])[0]
        e = node("Erf", [d])[0]
        s = node("Add", [e, const("one", np.array(1.0, np.float32))])[0]
        m = node("Mul", [a, s])[0]
        y = node("Mul", [m, const("half", np.array(0.5, np.float32))])[0]
    elif kind == "layernorm":
        shp = tuple(p["shape"])
        a = inp("a", shp)
        if p["skip"]:
            a = node("Add", [a, inp("r", shp)])[0]
        y = node("LayerNormalization", [a, const("g", f32(shp[-1]) + 1), const("be", f32(shp[-1]))], axis=-1,
                 epsilon=1e-5)[0]
    elif kind == "shape_op":
        shp = tuple(p["shape"])
        a = node("Relu", [inp("a", shp)])[0]
        if p["op"] == "Reshape":
            y = node("Reshape", [a, const("shp", np.array([shp[0], -1], np.int64))])[0]
        else:
            y = node("Unsqueeze", [a, const("ax", np.array([1], np.int64))])[0]
    elif kind == "quickgelu":  # x * sigmoid(1.702 x): onnxruntime fuses it into QuickGelu
        a = inp("a", tuple(p["shape"]))
        s1 = node("Mul", [a, const("c", np.array(1.702, np.float32))])[0]
        y = node("Mul", [a, node("Sigmoid", [s1])[0]])[0]
    elif kind == "qdq":
        a = inp("a", tuple(p["shape"]))
        q = node("QuantizeLinear", [a, const("sc", np.array(0.02, np.float32)), const("zp", np.array(0, np.int8))])[0]
        y = node("DequantizeLinear", [q, "sc", "zp"])[0]
    elif kind == "norm2d":
        c = p["c"]
        x = inp("x", (1, c, p["hw"], p["hw"]))
        if p["op"] == "InstanceNormalization":
            y = node("InstanceNormalization", [x, const("g", f32(c) + 1), const("b", f32(c))])[0]
        else:
            y = node("BatchNormalization", [x, const("g", f32(c) + 1), const("b", f32(c)), const("m", f32(c)),
                                            const("v", np.abs(f32(c)) + 1)])[0]
    elif kind == "softmax":
        y = node("Softmax", [inp("a", tuple(p["shape"]))], axis=p.get("axis", -1))[0]
    elif kind == "transpose":
        y = node("Transpose", [inp("a", tuple(p["shape"]))], perm=list(p["perm"]))[0]
    elif kind == "concat":
        shp = tuple(p["shape"])
        y = node("Concat", [inp(f"a{i}", shp) for i in range(p["parts"])], axis=-1)[0]
    elif kind == "split":
        shp = tuple(p["shape"])
        parts = p["parts"]
        sizes = [shp[-1] // parts] * parts
        sizes[-1] += shp[-1] - sum(sizes)
        outs = node("Split", [inp("a", shp), const("sp", np.array(sizes, np.int64))], n_out=parts, axis=-1)
        y = outs[0]
        extra = outs[1:]
    elif kind == "slice":
        shp = tuple(p["shape"])
        y = node("Slice", [inp("a", shp), const("st", np.array([1], np.int64)),
                           const("en", np.array([shp[-1]], np.int64)), const("ax", np.array([-1], np.int64))])[0]
    elif kind == "reduce":
        y = node(p["op"], [inp("a", tuple(p["shape"])), const("ax", np.array([-1], np.int64))], keepdims=1)[0]
    elif kind == "expand":
        shp = tuple(p["shape"])
        axis = len(shp) - 1 if p.get("last") else len(shp) - 2
        small = tuple(1 if i == axis else d for i, d in enumerate(shp))
        y = node("Expand", [inp("a", small), const("shp", np.array(shp, np.int64))])[0]
    elif kind == "where":
        shp = tuple(p["shape"])
        c = node("Greater", [inp("a", shp), const("z", np.array(0.0, np.float32))])[0]
        y = node("Where", [c, inp("b", shp), const("ninf", np.array(-1e9, np.float32))])[0]
    elif kind == "topk":
        outs = node("TopK", [inp("a", tuple(p["shape"])), const("k", np.array([p["k"]], np.int64))], n_out=2,
                    axis=-1)
        y, extra = outs[0], outs[1:]
    elif kind in ("gatherel", "scatterel"):
        tab, idx = tuple(p["table"]), tuple(p["index"])
        ax = [i for i, (a, b) in enumerate(zip(tab, idx, strict=True)) if a != b]
        axis = ax[0] if ax else len(tab) - 2
        feeds["i"] = rng.integers(0, tab[axis], size=idx).astype(np.int64)
        if kind == "gatherel":
            y = node("GatherElements", [inp("a", tab), "i"], axis=axis)[0]
        else:
            y = node("ScatterElements", [inp("a", tab), "i", inp("u", idx)], axis=axis)[0]
    elif kind == "gather":
        feeds["i"] = rng.integers(0, p["rows"], size=(1, p["n"])).astype(np.int64)
        y = node("Gather", [const("tab", f32(p["rows"], p["dim"])), "i"], axis=0)[0]
    elif kind == "pool":
        x = inp("x", (1, p["c"], p["hw"], p["hw"]))
        if p["op"] == "GlobalAveragePool":
            y = node("GlobalAveragePool", [x])[0]
        else:
            y = node(p["op"], [x], kernel_shape=[2, 2], strides=[2, 2])[0]
    elif kind == "resize":
        x = inp("x", (1, p["c"], p["hw"], p["hw"]))
        y = node("Resize", [x, "", const("sc", np.array([1, 1, 2, 2], np.float32))], mode="linear")[0]
    elif kind == "d2s":
        y = node("DepthToSpace", [inp("x", (1, p["c"], p["hw"], p["hw"]))], blocksize=2, mode="CRD")[0]
    elif kind == "dft":
        x = inp("x", (1, p["c"], p["hw"], p["hw"], 1))
        y = node("DFT", [x], axis=3, onesided=1)[0]
    elif kind == "chain":
        a = inp("a", (p["size"],))
        y = a
        for _ in range(p["n"]):
            y = node("Add", [y, a])[0]
    else:
        raise ValueError(f"unknown sweep kind {kind}")
    # The measured node's output stays an intermediate tensor (planned in onnxruntime's arena, as inside a model):
    # a tail reads one element of it (Reshape to 1-D, which aliases, then a one-element Slice; onnxruntime's
    # transpose optimizer cannot move a Transpose behind a Reshape). Tail and head rows are left out of the table.
    outputs = [_tail(nodes, inits, y, "")]
    for j, e in enumerate(extra if kind in ("split", "topk") else []):  # type: ignore[possibly-undefined]
        outputs.append(_tail(nodes, inits, e, str(j)))
    graph = helper.make_graph(
        nodes, cfg.kind,
        [helper.make_tensor_value_info(k, helper.np_dtype_to_tensor_dtype(v.dtype), list(v.shape))
         for k, v in feeds.items()],
        [helper.make_tensor_value_info(o, TensorProto.UNDEFINED, None) for o in outputs], initializer=inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = 9
    return onnx.shape_inference.infer_shapes(model), feeds


# -- measurement ----------------------------------------------------------------------------------------------------

def baseline_graph(model: Any) -> Any:
    """The sweep graph without its measured block: the `tail_head` nodes of its inputs, each followed by the same
    tail as the block's outputs (what the block's time is measured against: same call, same heads, same number of
    tails, only the block missing)."""
    from onnx import TensorProto, helper

    heads = [n for n in model.graph.node if n.name.startswith("tail_head")]
    n_tails = len(model.graph.output)
    nodes: list[Any] = list(heads)
    inits: list[Any] = []
    srcs = [h.output[0] for h in heads] or [model.graph.input[0].name]
    outs = [_tail(nodes, inits, srcs[k % len(srcs)], str(k)) for k in range(max(n_tails, len(srcs)))]
    elem = TensorProto.FLOAT if heads else model.graph.input[0].type.tensor_type.elem_type
    graph = helper.make_graph(nodes, "baseline", list(model.graph.input),
                              [helper.make_tensor_value_info(o, elem, None) for o in outs], initializer=inits)
    m = helper.make_model(graph, opset_imports=list(model.opset_import))
    m.ir_version = model.ir_version
    return m


FLUSH_BYTES = 4 * 2**20  # more than this host's L2 per core (1 MiB), much less than its L3 (32 MiB)


def _interleaved_p50(sessions: Sequence[Any], feeds: dict[str, np.ndarray], target_s: float = 0.15,
                     min_runs: int = 40, max_runs: int = 400, flush_bytes: int = FLUSH_BYTES,
                     ) -> tuple[list[float], int]:
    """p50 (ms) of each session, their runs interleaved (a, b, a, b, ...) so both see the same disturbance; as
    many runs as fit in about `target_s`, within [min_runs, max_runs]. Before each timed run a buffer of
    `flush_bytes` is written (untimed): inside a model a layer's weights were evicted from L2 by the other layers
    since the previous inference, and a kernel timed alone with hot weights is too fast (a [17,192]x[192,576]
    MatMul: 15 µs hot, 23 µs in crossvit)."""
    flush = np.zeros(flush_bytes // 4, dtype=np.float32) if flush_bytes else None
    bound = []
    for sess in sessions:
        names = [i.name for i in sess.get_inputs()]
        bound.append({n: feeds[n] for n in names})
    for sess, f in zip(sessions, bound, strict=True):
        for _ in range(3):
            sess.run(None, f)
    t0 = time.perf_counter()
    sessions[0].run(None, bound[0])
    one = time.perf_counter() - t0
    n = int(min(max_runs, max(min_runs, target_s / max(one * len(sessions), 1e-6))))
    times: list[list[float]] = [[] for _ in sessions]
    for _ in range(n):
        for k, (sess, f) in enumerate(zip(sessions, bound, strict=True)):
            if flush is not None:  # evict the L2 cache (not L3), as the other layers of a model do
                flush += 1.0
            t = time.perf_counter_ns()
            sess.run(None, f)
            times[k].append((time.perf_counter_ns() - t) / 1e6)
    return [float(np.median(t)) for t in times], n


def _plain_session(source: bytes | str, threads: int) -> Any:
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.log_severity_level = 3
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return ort.InferenceSession(source, so, providers=["CPUExecutionProvider"])


def measure_call_ms(threads: int = 1) -> tuple[float, float]:
    """(the fixed cost of one inference call, ms; the unprofiled cost of one trivial node, ms), from chains of 1
    and 51 one-element Add nodes (edgekit.profile.ort's chain), timed interleaved."""
    from edgekit.profile.ort import _chain_model

    (t1, t51), _ = _interleaved_p50([_plain_session(_chain_model(1), threads),
                                     _plain_session(_chain_model(51), threads)],
                                    {"x": np.ones(1, dtype=np.float32)}, target_s=0.5, min_runs=200, max_runs=2000)
    per_node = max((t51 - t1) / 50.0, 0.0)
    return max(t1 - per_node, 0.0), per_node

@dataclass
class KernelRow:
    """One executed node of a sweep graph: op type, shapes, time per call (ms, unprofiled: the block's time
    measured by difference, shared among its executed nodes in proportion to their profiled times)."""

    op_type: str
    inputs: list[list[int]]
    outputs: list[list[int]]
    ms: float
    graph: str
    key: str = ""  # kernel_key of the node (its op type when empty)


@dataclass
class GraphRow:
    """One sweep graph: its unprofiled p50 (ms), the p50 of its baseline (the same inputs through the head and
    tail nodes only, ms), the block time (the difference), the profiled sum of its measured nodes (ms), their
    count, and how many timed runs each p50 took."""

    name: str
    p50_ms: float
    baseline_ms: float
    block_ms: float
    profiled_ms: float
    nodes: int
    runs: int


@dataclass
class KernelTable:
    """The measured sweep (a JSON cache): rows per executed node, rows per graph, and how they were measured."""

    rows: list[KernelRow] = field(default_factory=list)
    graphs: list[GraphRow] = field(default_factory=list)
    meta: dict[str, Any] = field(default_factory=dict)
    version: int = KERNELS_VERSION

    def save(self, path: Path) -> None:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(asdict(self)))
        tmp.replace(path)

    @classmethod
    def load(cls, path: Path) -> KernelTable:
        d = json.loads(Path(path).read_text())
        return cls(rows=[KernelRow(**r) for r in d.get("rows", [])], graphs=[GraphRow(**g) for g in d.get("graphs", [])],
                   meta=d.get("meta", {}), version=int(d.get("version", 0)))


def measure_sweep(cache: Path, configs: Sequence[KernelConfig] | None = None, *, threads: int = 1, runs: int = 20,
                  warmup: int = 3, passes: int = 2, log: Callable[[str], None] | None = None,
                  budget_s: float | None = None) -> KernelTable:
    """Measure every sweep graph not yet in `cache` (edgekit.profile.ort.profile_onnx for the executed nodes and
    their shares: `runs` profiled runs after `warmup`; the block's unprofiled time by difference with its
    baseline), appending to the cache every 10 graphs. `passes` > 1 measures the whole sweep again (graph
    "name#2", ...): each pass's rows are kept, so the fit averages over passes minutes apart (on this shared host
    a repeat of one graph's p50 differs by a median 5 %, p90 11 %). Stops early after `budget_s`."""
    import onnxruntime as ort

    from edgekit.export.quantize import quantize_onnx
    from edgekit.profile.ort import profile_onnx

    cache = Path(cache)
    table = KernelTable.load(cache) if cache.is_file() else KernelTable()
    if table.version != KERNELS_VERSION:
        table = KernelTable()
    import platform

    table.meta.update(threads=threads, runs=runs, onnxruntime=ort.__version__, optimization="all",
                      machine=platform.processor() or platform.machine())
    if "call_ms" not in table.meta:
        call, trivial = measure_call_ms(threads)
        table.meta.update(call_ms=call, trivial_node_ms=trivial)
    done = {g.name for g in table.graphs}
    configs = list(configs if configs is not None else sweep_configs())
    todo = [(k, cfg.name if k == 0 else f"{cfg.name}#{k + 1}", cfg) for k in range(passes) for cfg in configs]
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="edgekit-sweep-") as tmp:
        for i, (_, gname, cfg) in enumerate(todo):
            if gname in done:
                continue
            if budget_s is not None and time.perf_counter() - t0 > budget_s:
                if log:
                    log(f"kernel sweep: time budget spent after {i} of {len(todo)} graphs")
                break
            import onnx

            model, feeds = build_graph(cfg)
            path = Path(tmp) / "k.onnx"
            onnx.save(model, str(path))
            if cfg.precision == "int8":
                import logging

                q = Path(tmp) / "k.int8.onnx"
                logging.disable(logging.WARNING)  # onnxruntime.quantization's pre-processing advice, per graph
                try:
                    quantize_onnx(path, q, "int8")
                finally:
                    logging.disable(logging.NOTSET)
                path = q
            try:
                prof = profile_onnx(path, feeds, runs=runs, warmup=warmup, threads=threads)
                (p50, base), n_runs = _interleaved_p50(
                    [_plain_session(str(path), threads),
                     _plain_session(baseline_graph(model).SerializeToString(), threads)], feeds)
            except Exception as exc:  # noqa: BLE001 - one bad sweep graph must not end the sweep
                if log:
                    log(f"kernel sweep: {gname}: {type(exc).__name__}: {str(exc)[:120]}")
                continue
            measured = [n for n in prof.nodes if not n.name.startswith("tail")]
            heads = sum(1 for n in model.graph.node if n.name.startswith("tail_head"))
            extra_tails = max(heads - len(model.graph.output), 0)  # the baseline tails every head: 2 nodes each
            block = max(p50 - base + 2 * extra_tails * float(table.meta.get("trivial_node_ms", 0.0)), 0.0)
            # share the block's unprofiled time by the profiled times (a floor of 0.2 µs per call, so a node the
            # profiler rounds to 0 still gets a share)
            weights = [max(n.ms, 2e-4 * max(n.calls, 1.0)) for n in measured]
            total = sum(weights) or 1.0
            try:
                ex = {k.name: k for k in executed_nodes(path, None, threads)}
            except Exception:  # noqa: BLE001 - no keys: the op types alone
                ex = {}
            for n, w in zip(measured, weights, strict=True):
                table.rows.append(KernelRow(n.op_type, n.inputs, n.outputs, block * w / total / max(n.calls, 1e-9),
                                            gname, ex[n.name].key if n.name in ex else n.op_type))
            table.graphs.append(GraphRow(gname, p50, base, block, sum(n.ms for n in measured),
                                         int(round(sum(n.calls for n in measured))), n_runs))
            if (i + 1) % 10 == 0:
                table.save(cache)
                if log:
                    log(f"kernel sweep: {i + 1}/{len(todo)} graphs, {time.perf_counter() - t0:.0f} s")
    table.save(cache)
    return table


# -- the fit --------------------------------------------------------------------------------------------------------

@dataclass
class OpRegressor:
    """ms = coef · [1, work, elements moved] (non-negative), times exp of the distance-weighted log residual of
    the k nearest sweep points in log-feature space (neighbours farther than 2 standard units count less)."""

    coef: list[float]
    x: list[list[float]]
    resid: list[float]
    scale: list[float]
    k: int = 3

    def predict_log(self, f: Sequence[float], terms: Sequence[float]) -> float:
        base = math.log(max(float(np.asarray(terms) @ np.asarray(self.coef)), 1e-6))
        if not self.x:
            return base
        x = np.asarray(self.x)
        d = np.sqrt((((x - np.asarray(f)) / np.asarray(self.scale)) ** 2).sum(axis=1))
        idx = np.argsort(d)[: self.k]
        w = 1.0 / (d[idx] + 0.05) ** 2
        near = 1.0 / (1.0 + float(d[idx[0]]) ** 2)  # far from every sweep point: back toward the base law
        return base + near * float(np.sum(w * np.asarray(self.resid)[idx]) / np.sum(w))


@dataclass
class KernelModel:
    """Per-op-type regressors of node time (ms) on this host, the fallback per-byte rate, the fixed costs."""

    ops: dict[str, OpRegressor]
    fallback_ms_per_mb: float
    fallback_node_ms: float
    per_node_ms: float
    call_ms: float
    n_rows: int
    n_graphs: int
    meta: dict[str, Any] = field(default_factory=dict)

    def node_ms(self, op_type: str, inputs: Sequence[Sequence[int] | None],
                outputs: Sequence[Sequence[int] | None], key: str | None = None) -> float:
        """Predicted time of one executed node (ms), by the regressor of its kernel_key when the sweep has one,
        else of its op type."""
        if op_type in NO_TIME_OPS:
            return 0.0
        reg = self.ops.get(key) if key else None
        reg = reg or self.ops.get(op_type)
        if reg is None and op_type == "FusedMatMul":
            reg = self.ops.get("MatMul")
        if reg is None and op_type == "FusedConv":
            reg = self.ops.get("Conv")
        if reg is None:
            mb = sum(_prod(s) for s in list(inputs) + list(outputs) if s is not None) * 4 / 1e6
            return self.fallback_node_ms + self.fallback_ms_per_mb * mb
        return math.exp(reg.predict_log(node_features(op_type, inputs, outputs),
                                        _size_terms(op_type, inputs, outputs)))

    def predict_nodes(self, nodes: Sequence[KernelNode]) -> list[float]:
        return [self.node_ms(n.op_type, n.inputs, n.outputs, n.key) for n in nodes]

    def predict_ms(self, nodes: Sequence[KernelNode]) -> float:
        """A model's p50 (ms): Σ node times + per_node_ms · nodes + call_ms."""
        return float(sum(self.predict_nodes(nodes)) + self.per_node_ms * len(nodes) + self.call_ms)


def _size_terms(op_type: str, inputs: Sequence[Sequence[int] | None], outputs: Sequence[Sequence[int] | None],
                ) -> list[float]:
    """The linear cost terms of one node: [1, work, elements moved]; work = FLOPs for matrix ops and convolutions
    (from node_features), else the first input's elements (x log2(k + 1) for TopK: a heap of k)."""
    f = node_features(op_type, inputs, outputs)
    if op_type in MATMUL_OPS | CONV_OPS:
        # activations only: onnxruntime's profiler shows pre-packed constant weights with another shape (or none)
        # than the graph does, so weights would count differently in the sweep rows and in a model's nodes
        a = inputs[0] if inputs else None
        b = inputs[1] if len(inputs) > 1 else None
        acts = [a] + ([b] if a is not None and b is not None and len(b) == len(a) >= 3 else [])
        moved = float(sum(_prod(s) for s in acts + list(outputs) if s is not None))
    else:
        moved = float(sum(_prod(s) for s in list(inputs) + list(outputs) if s is not None))
    if op_type in MATMUL_OPS:
        work = math.exp(f[4])
    elif op_type in CONV_OPS:
        work = math.exp(f[5])
    else:
        work = math.exp(f[0]) * (math.log2(math.exp(f[4]) + 1.0) if op_type == "TopK" else 1.0)
    return [1.0, work, moved]


def _fit_op(x: np.ndarray, terms: np.ndarray, ms: np.ndarray, k: int = 3) -> OpRegressor:
    """Non-negative least squares of ms on the linear terms (relative errors), then the log residuals for the
    nearest-neighbour correction (clipped to a factor of 20; it fades with the distance to the nearest sweep
    point, in standard units: x 1/(1 + d²))."""
    from scipy.optimize import nnls

    scale_t = np.maximum(terms.max(axis=0), 1e-12)
    a = terms / scale_t / ms[:, None]
    coef, _ = nnls(a, np.ones(len(ms)))
    coef = coef / scale_t
    base = np.maximum(terms @ coef, 1e-6)
    resid = np.clip(np.log(ms) - np.log(base), -3.0, 3.0)
    scale = np.maximum(x.std(axis=0), 0.3)
    return OpRegressor(coef.tolist(), x.tolist(), resid.tolist(), scale.tolist(), k)


def fit_kernel_model(table: KernelTable, min_ms: float = 1e-4) -> KernelModel:
    """Fit one regressor per executed op type over the sweep's node rows; the per-call cost is the sweep's own
    measurement (measure_call_ms)."""
    by_op: dict[str, list[KernelRow]] = {}
    for r in table.rows:
        by_op.setdefault(r.key or r.op_type, []).append(r)
    ops = {}
    for key, rows in by_op.items():
        op = rows[0].op_type
        x = np.array([node_features(op, r.inputs, r.outputs) for r in rows])
        terms = np.array([_size_terms(op, r.inputs, r.outputs) for r in rows])
        ops[key] = _fit_op(x, terms, np.maximum([r.ms for r in rows], min_ms))
    mem = [(sum(_prod(s) for s in r.inputs + r.outputs) * 4 / 1e6, r.ms) for r in table.rows
           if r.op_type not in MATMUL_OPS | CONV_OPS]
    if mem:
        from scipy.optimize import nnls

        tm = np.array([max(t, min_ms) for _, t in mem])
        (c0, c1), _ = nnls(np.array([[1.0, m] for m, _ in mem]) / tm[:, None], np.ones(len(mem)))
    else:
        c0, c1 = 0.001, 0.1
    per_node = 0.0  # each row's time already holds its node's share of the executor's per-node cost
    call = float(table.meta.get("call_ms", 0.0))
    return KernelModel(ops, float(max(c1, 0.0)), float(max(c0, 0.0)), float(per_node), float(call),
                       len(table.rows), len(table.graphs), dict(table.meta))


def predict_onnx_ms(model: KernelModel, path: Path, input_shapes: dict[str, Sequence[int]] | None = None,
                    threads: int = 1) -> float:
    """Predicted p50 (ms) of an .onnx file on this host from the kernel model (its executed graph, node by node)."""
    return model.predict_ms(executed_nodes(path, input_shapes, threads))


def default_cache(threads: int = 1) -> Path:
    """Where the sweep's measurements live by default: edgekit's cache folder (edgekit.paths.cache_root), one file
    per thread count."""
    from edgekit.paths import cache_root

    return cache_root() / f"kernels-local-t{threads}.json"


def load_or_measure(cache: Path, *, threads: int = 1, measure: bool = False,
                    log: Callable[[str], None] | None = None) -> KernelTable | None:
    """The sweep table in `cache` (measuring the graphs it lacks first when `measure`); None when there is none.
    A table measured at another thread count is not used."""
    cache = Path(cache)
    if measure:
        return measure_sweep(cache, threads=threads, log=log)
    if not cache.is_file():
        return None
    table = KernelTable.load(cache)
    if table.version != KERNELS_VERSION or not table.rows or table.meta.get("threads") != threads:
        return None
    return table


_MODELS: dict[tuple[str, float, int], KernelModel] = {}


def cached_kernel_model(cache: Path, threads: int = 1) -> KernelModel:
    """The kernel model fitted on the sweep table in `cache` (fitted once per file version in this process).
    Raises ValueError when the file holds no usable sweep for this thread count."""
    cache = Path(cache)
    key = (str(cache), cache.stat().st_mtime, threads)
    if key not in _MODELS:
        table = load_or_measure(cache, threads=threads)
        if table is None:
            raise ValueError(f"no kernel sweep measured at {threads} thread(s) in {cache}")
        _MODELS[key] = fit_kernel_model(table)
    return _MODELS[key]
