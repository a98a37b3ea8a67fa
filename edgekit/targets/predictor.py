"""Latency predictor: a per-operator roofline over the exported ONNX graph, scaled by a target profile and calibrated
by least squares on measured runs. Its figures are labelled `predicted`, with their calibration error.

Cost of one graph (docs/targets.md has the full description):
1. Shapes: onnx shape inference with the benchmark's concrete input shapes.
2. Per node: FLOPs (MatMul/Gemm 2·M·K·N, Conv 2·out·Cin/g·k, attention 4·B·H·S·L·d, Einsum 2·Π(index sizes),
   elementwise/normalisation a few FLOPs per output element) and bytes moved (every input and output tensor, weights
   included). Shape-only nodes (Reshape, Shape, Unsqueeze, ...) cost no time beyond their dispatch.
   Precision per node: int8 for integer/QLinear kernels, fp16 for float16 tensors, else fp32.
3. Roofline per node on the target: t_compute = FLOPs / peak(precision), t_memory = bytes / bandwidth; the node is
   compute-bound when t_compute/e_c >= t_memory/e_m (ridge point at the current efficiencies).
4. Model latency  t = w_c · Σ_compute-bound t_compute + w_m · Σ_memory-bound t_memory + w_o · N_kernels + w_s · N_shape
   where w_c = 1/e_c and w_m = 1/e_m are the inverse compute and memory efficiencies and w_o, w_s per-node overheads
   (s). The weights are fitted by non-negative least squares (scipy.optimize.nnls) on measured (graph, p50) pairs of
   that target, in relative terms (each row divided by its measured latency, so small and large models weigh the
   same); the node classification is refitted until it no longer changes. Without measured runs on a target, the
   profile's [predictor] defaults are used and the error is reported as unknown.

The calibration error is leave-one-out: each measured model is predicted by a fit on the others.

A target with no measured run of the format but with published per-model latencies in its profile ([[published]]
rows, each with its source; targets/rpi4.toml) is calibrated on those instead (`calibrate_from_priors`, kind
"prior": compute and memory weights fitted on the published networks, costed from their own graphs, e.g. ncnn .param
files via `analyze_ncnn_param`); its expected error is leave-one-row-out over the published models.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edgekit.errors import EdgekitError
from edgekit.formats import format_for_suffix
from edgekit.targets.profile import TargetProfile

# Nodes that only rearrange metadata (no arithmetic, usually no copy): their cost is their dispatch.
SHAPE_OPS = frozenset({
    "Shape", "Reshape", "Unsqueeze", "Squeeze", "Flatten", "Identity", "Constant", "ConstantOfShape", "Size",
    "Cast_shape", "Range", "EyeLike",
})
# FLOPs per output element of non-matrix nodes (documented assumptions; the calibration absorbs the scale).
ELEMENT_FLOPS = {
    "Add": 1, "Sub": 1, "Mul": 1, "Div": 1, "Neg": 1, "Abs": 1, "Relu": 1, "LeakyRelu": 2, "Max": 1, "Min": 1,
    "Where": 1, "Equal": 1, "Greater": 1, "Less": 1, "GreaterOrEqual": 1, "LessOrEqual": 1, "And": 1, "Or": 1,
    "Not": 1, "Pow": 4, "Sqrt": 4, "Reciprocal": 4, "Exp": 8, "Log": 8, "Erf": 8, "Tanh": 8, "Sigmoid": 8,
    "Gelu": 12, "HardSigmoid": 3, "HardSwish": 4, "Softmax": 6, "LogSoftmax": 7, "LayerNormalization": 8,
    "BatchNormalization": 4, "InstanceNormalization": 8, "GroupNormalization": 8, "ReduceMean": 1, "ReduceSum": 1,
    "SkipLayerNormalization": 10, "SkipSimplifiedLayerNormalization": 8, "SimplifiedLayerNormalization": 6,
    "BiasGelu": 13, "FastGelu": 10, "QuickGelu": 6, "BiasAdd": 1, "BiasSoftmax": 7,
    "ReduceMax": 1, "Clip": 2, "Sin": 8, "Cos": 8, "Floor": 1, "Ceil": 1, "Round": 1, "Mod": 2,
}
INT8_OPS = frozenset({"MatMulInteger", "ConvInteger", "QLinearMatMul", "QLinearConv", "DynamicQuantizeLinear",
                      "DynamicQuantizeMatMul", "MatMulIntegerToFloat",
                      "QuantizeLinear", "DequantizeLinear", "MatMulNBits", "QLinearAdd", "QLinearMul"})
_DTYPE_BYTES = {1: 4, 2: 1, 3: 1, 4: 2, 5: 2, 6: 4, 7: 8, 9: 1, 10: 2, 11: 8, 12: 4, 13: 8, 16: 2, 21: 1, 22: 1}


@dataclass
class OpCost:
    """One node: FLOPs (int8: integer ops), bytes read + written, the precision it computes in."""

    name: str
    op_type: str
    flops: float
    bytes: float
    precision: str = "fp32"
    shape_only: bool = False


@dataclass
class GraphCost:
    """The cost of one ONNX graph at fixed input shapes."""

    model: str
    path: str
    sha256: str
    ops: list[OpCost]
    unknown_shapes: int = 0  # nodes whose output shape inference could not resolve (costed as 0 FLOPs)
    input_shapes: dict[str, list[int]] | None = None  # the concrete input shapes it was costed at (ONNX)

    @property
    def flops(self) -> float:
        return float(sum(o.flops for o in self.ops))

    @property
    def bytes(self) -> float:
        return float(sum(o.bytes for o in self.ops))

    @property
    def kernels(self) -> int:
        return sum(1 for o in self.ops if not o.shape_only)

    def by_op_type(self) -> dict[str, dict[str, float]]:
        out: dict[str, dict[str, float]] = {}
        for o in self.ops:
            d = out.setdefault(o.op_type, {"count": 0, "flops": 0.0, "bytes": 0.0})
            d["count"] += 1
            d["flops"] += o.flops
            d["bytes"] += o.bytes
        return out

    def summary(self) -> dict[str, Any]:
        return {"model": self.model, "path": self.path, "flops": self.flops, "bytes": self.bytes,
                "nodes": len(self.ops), "kernels": self.kernels, "unknown_shapes": self.unknown_shapes}


# -- graph analysis ------------------------------------------------------------------------------------------------

def _prod(xs: Sequence[int]) -> int:
    out = 1
    for x in xs:
        out *= int(x)
    return out


def _fix_inputs(model: Any, shapes: dict[str, Sequence[int]] | None) -> None:
    """Give the graph inputs concrete sizes (the benchmark's shapes; symbolic dims default to 1)."""
    inits = {i.name for i in model.graph.initializer}
    for i, inp in enumerate(x for x in model.graph.input if x.name not in inits):
        dims = inp.type.tensor_type.shape.dim
        given = None
        if shapes:
            given = shapes.get(inp.name)
            if given is None and len(shapes) > i:
                given = list(shapes.values())[i]
        for k, d in enumerate(dims):
            if given is not None and k < len(given):
                d.ClearField("dim_param")
                d.dim_value = int(given[k])
            elif not d.HasField("dim_value"):
                d.ClearField("dim_param")
                d.dim_value = 1


def analyze_onnx(path: Path, input_shapes: dict[str, Sequence[int]] | None = None, model_name: str = "") -> GraphCost:
    """FLOPs and bytes of every node of an ONNX file (the exported graph, before any runtime fusion) at the given
    input shapes. (Costing onnxruntime's optimized graph instead was tried and predicted worse: fused contrib nodes
    lose their shapes.)"""
    import onnx
    from onnx import helper, shape_inference

    path = Path(path)
    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as exc:
        raise EdgekitError(f"the predictor cannot read {path} as ONNX ({type(exc).__name__})",
                           "export the model again with `edgekit export MODEL --format onnx`") from exc
    _fix_inputs(model, input_shapes)
    try:
        inferred = shape_inference.infer_shapes(model, data_prop=True)
    except Exception:  # fall back to the un-inferred graph; unknown shapes count as 0 FLOPs
        inferred = model
    info: dict[str, tuple[list[int] | None, int]] = {}

    def _record(vi: Any) -> None:
        tt = vi.type.tensor_type
        dims = [d.dim_value if d.HasField("dim_value") else None for d in tt.shape.dim] if tt.HasField("shape") \
            else None
        info[vi.name] = (None if dims is None or any(d is None for d in dims) else [int(d) for d in dims],
                         tt.elem_type)

    def _constants(graph: Any) -> None:
        for init in graph.initializer:
            info[init.name] = ([int(d) for d in init.dims], init.data_type)
        for node in graph.node:
            if node.op_type == "Constant":
                for a in node.attribute:
                    if a.name == "value":
                        info[node.output[0]] = ([int(d) for d in a.t.dims], a.t.data_type)

    for vi in list(inferred.graph.input) + list(inferred.graph.value_info) + list(inferred.graph.output):
        _record(vi)
    _constants(inferred.graph)
    graph = inferred.graph

    def shape(name: str) -> list[int] | None:
        return info.get(name, (None, 0))[0]

    def nbytes(name: str) -> float:
        s, t = info.get(name, (None, 0))
        return float(_prod(s) * _DTYPE_BYTES.get(t, 4)) if s is not None else 0.0

    def elem(name: str) -> int:
        return info.get(name, (None, 0))[1]

    ops: list[OpCost] = []
    unknown = 0
    for node in graph.node:
        op = node.op_type
        ins = [n for n in node.input if n]
        outs = [n for n in node.output if n]
        attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        moved = sum(nbytes(n) for n in ins) + sum(nbytes(n) for n in outs)
        out_shape = shape(outs[0]) if outs else None
        if out_shape is None and op not in SHAPE_OPS and outs:
            unknown += 1
        precision = "fp32"
        if op in INT8_OPS or any(elem(n) in (2, 3) for n in ins[:2]):
            precision = "int8"
        elif any(elem(n) == 10 for n in ins[:2]):
            precision = "fp16"
        flops = 0.0
        if op in ("MatMul", "MatMulInteger", "QLinearMatMul", "FusedMatMul", "MatMulNBits", "DynamicQuantizeMatMul",
                  "MatMulIntegerToFloat"):
            a = shape(ins[0])
            if a is not None and out_shape is not None and a:
                k = a[-2] if attrs.get("transA", 0) and len(a) >= 2 else a[-1]
                flops = 2.0 * _prod(out_shape) * k
        elif op == "Gemm":
            a = shape(ins[0])
            if a is not None and out_shape is not None:
                k = a[0] if attrs.get("transA", 0) else a[-1]
                flops = 2.0 * _prod(out_shape) * k + (_prod(out_shape) if len(ins) > 2 else 0)
        elif op in ("Conv", "ConvInteger", "QLinearConv", "FusedConv", "NhwcFusedConv"):
            w = shape(ins[3 if op == "QLinearConv" else 1])
            if w is not None and out_shape is not None:
                flops = 2.0 * _prod(out_shape) * _prod(w[1:])
        elif op == "ConvTranspose":
            x, w = shape(ins[0]), shape(ins[1])
            if x is not None and w is not None:
                flops = 2.0 * _prod(x) * _prod(w[1:])
        elif op in ("Attention", "MultiHeadAttention"):
            q, k = shape(ins[0]), shape(ins[1]) if len(ins) > 1 else None
            if q is not None and k is not None and len(q) == 4 and len(k) == 4:
                flops = 4.0 * q[0] * q[1] * q[2] * k[2] * q[3]
            elif q is not None and out_shape is not None and len(q) == 3:
                flops = 4.0 * q[0] * q[1] * q[1] * q[2]
        elif op == "Einsum":
            eq = attrs.get("equation", b"")
            flops = _einsum_flops(eq.decode() if isinstance(eq, bytes) else str(eq), [shape(n) for n in ins])
        elif op in ("MaxPool", "AveragePool", "GlobalAveragePool", "GlobalMaxPool", "ReduceMean", "ReduceSum",
                    "ReduceMax", "ReduceMin", "ReduceL2"):
            x = shape(ins[0])
            flops = float(_prod(x)) if x is not None else 0.0
        elif op in ("TopK", "Unique"):  # a partial sort along the axis: ~ N log2(axis size) comparisons
            x = shape(ins[0])
            if x:
                axis = int(attrs.get("axis", -1))
                flops = float(_prod(x)) * math.log2(max(2, x[axis]))
        elif op in ELEMENT_FLOPS and out_shape is not None:
            flops = float(ELEMENT_FLOPS[op] * _prod(out_shape))
        if op in ("Gather", "GatherElements", "GatherND") and outs:  # reads only the gathered rows, not the table
            moved = 2.0 * nbytes(outs[0]) + sum(nbytes(n) for n in ins[1:])
        shape_only = op in SHAPE_OPS
        ops.append(OpCost(name=node.name or op, op_type=op, flops=flops, bytes=0.0 if shape_only else moved,
                          precision=precision, shape_only=shape_only))
    digest = hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else ""
    return GraphCost(model=model_name or path.stem, path=str(path), sha256=digest, ops=ops, unknown_shapes=unknown,
                     input_shapes={k: [int(d) for d in v] for k, v in input_shapes.items()} if input_shapes else None)


def _einsum_flops(equation: str, shapes: list[list[int] | None]) -> float:
    """2 x the product of every index's size (each output element sums over the contracted indices)."""
    lhs = equation.replace(" ", "").split("->")[0]
    sizes: dict[str, int] = {}
    for term, s in zip(lhs.split(","), shapes, strict=False):
        if s is None or "..." in term:
            return 0.0
        for letter, n in zip(term, s, strict=False):
            sizes[letter] = max(sizes.get(letter, 1), int(n))
    return 2.0 * _prod(list(sizes.values())) if sizes else 0.0


# -- the roofline model -------------------------------------------------------------------------------------------

@dataclass
class Roofline:
    """A target's roofline: peak GFLOP/s by precision and bandwidth GB/s."""

    peak_gflops: dict[str, float]
    bandwidth_gbs: float

    @classmethod
    def of(cls, profile: TargetProfile, bandwidth_gbs: float | None = None) -> Roofline:
        peaks = {p: v for p in ("fp32", "fp16", "int8") if (v := profile.peak(p))}
        if not peaks:
            raise EdgekitError(f"target {profile.name} has no peak GFLOP/s in its profile, so latency cannot be "
                               "predicted", f"add [peak_gflops] fp32 = ... to {profile.path or 'its profile'}")
        bw = bandwidth_gbs or profile.memory_bandwidth_gbs
        if not bw:
            raise EdgekitError(f"target {profile.name} has no memory bandwidth in its profile",
                               f"add memory_bandwidth_gbs = ... to {profile.path or 'its profile'}")
        return cls(peaks, float(bw))

    def op_times(self, op: OpCost) -> tuple[float, float]:
        """(t_compute, t_memory) of one node at 100 % efficiency, seconds."""
        peak = self.peak_gflops.get(op.precision) or self.peak_gflops["fp32"]
        return op.flops / (peak * 1e9), op.bytes / (self.bandwidth_gbs * 1e9)


COMPUTE_CLASSES = ("gemm", "conv", "gemm_int8", "conv_int8", "vector", "sort")
MEMORY_CLASSES = ("memory", "movement")
FEATURES = (*COMPUTE_CLASSES, *MEMORY_CLASSES, "kernels", "shape_ops", "call")
_GEMM = frozenset({"MatMul", "Gemm", "FusedMatMul", "Einsum", "Attention", "MultiHeadAttention"})
_GEMM_INT8 = frozenset({"MatMulInteger", "QLinearMatMul", "DynamicQuantizeMatMul", "MatMulNBits",
                        "MatMulIntegerToFloat"})
_CONV = frozenset({"Conv", "ConvTranspose", "FusedConv", "NhwcFusedConv"})
_CONV_INT8 = frozenset({"ConvInteger", "QLinearConv"})
_SORT = frozenset({"TopK", "NonMaxSuppression", "Unique"})
MOVEMENT_OPS = frozenset({"Transpose", "Concat", "Split", "Slice", "Gather", "GatherElements", "GatherND", "Expand",
                          "Where", "Pad", "Tile", "ScatterElements", "ScatterND", "Cast", "Resize", "DepthToSpace",
                          "SpaceToDepth"})


def op_class(op: OpCost) -> tuple[int, int]:
    """(compute class index, memory class index) of a node in FEATURES."""
    t = op.op_type
    if t in _GEMM_INT8 or (t in _GEMM and op.precision == "int8"):
        c = 2
    elif t in _GEMM:
        c = 0
    elif t in _CONV_INT8 or (t in _CONV and op.precision == "int8"):
        c = 3
    elif t in _CONV:
        c = 1
    elif t in _SORT:
        c = 5
    else:
        c = 4
    m = 7 if t in MOVEMENT_OPS else 6
    return c, m


def features(cost: GraphCost, roof: Roofline, weights: np.ndarray | None) -> np.ndarray:
    """Per class: Σ t_compute over the nodes that are compute-bound, Σ t_memory over the memory-bound ones (a node
    is placed on the side of its ridge point that the current class weights make slower), then the kernel and
    shape-node counts, and 1 for the fixed cost of one inference call (feeding inputs, fetching outputs).
    With `weights` None (the linear start of the roofline fit) there is no ridge decision: every node adds its
    compute time to its compute class AND its memory time to its memory class. Order: FEATURES."""
    w = None if weights is None else np.maximum(np.asarray(weights, dtype=np.float64), 1e-12)
    x = np.zeros(len(FEATURES))
    x[10] = 1.0
    for op in cost.ops:
        if op.shape_only:
            x[9] += 1.0
            continue
        x[8] += 1.0
        tc, tm = roof.op_times(op)
        c, m = op_class(op)
        if w is None:
            x[c] += tc
            x[m] += tm
        elif tc * w[c] >= tm * w[m]:
            x[c] += tc
        else:
            x[m] += tm
    return x


def default_weights(profile: TargetProfile) -> np.ndarray:
    """The profile's [predictor] defaults as weights: 1/efficiency per compute and memory class, overheads in s."""
    d = profile.predictor
    wc, wm, wo = 1.0 / d.compute_efficiency, 1.0 / d.memory_efficiency, d.op_overhead_us * 1e-6
    return np.array([wc] * len(COMPUTE_CLASSES) + [wm] * len(MEMORY_CLASSES) + [wo, wo * 0.2, wo * 10])


PRIOR_STRENGTH = 1e-10  # a tiny pull toward the defaults (numerical stability); unexercised classes keep theirs


def _nnls_relative(x: np.ndarray, y: np.ndarray, w0: np.ndarray, prior: float) -> np.ndarray:
    """argmin_w>=0 Σ (x_i·w / y_i - 1)² + prior Σ (w_j/w0_j - 1)²; classes absent from x keep w0."""
    from scipy.optimize import nnls

    k = len(w0)
    a = np.vstack([x * w0 / y[:, None], math.sqrt(prior) * np.eye(k)])
    b = np.concatenate([np.ones(len(y)), math.sqrt(prior) * np.ones(k)])
    v, _ = nnls(a, b)
    v[~x.any(axis=0)] = 1.0  # a class no calibration model exercises keeps the profile's default
    return v * w0


def fit_weights(costs: Sequence[GraphCost], measured_s: Sequence[float], roof: Roofline, start: np.ndarray,
                iterations: int = 8, prior: float = PRIOR_STRENGTH) -> np.ndarray:
    """Non-negative least squares on relative errors (scipy.optimize.nnls), solved in units of the profile's
    defaults `start`. The roofline's max() is not linear, so: fit the additive model first (each node adds to both
    its compute and its memory class), then alternate "place every node on the slower side of its ridge at the
    current weights" and "refit", keeping the weights with the lowest training error."""
    y = np.asarray(measured_s, dtype=np.float64)
    w0 = np.maximum(np.asarray(start, dtype=np.float64), 1e-12)

    def loss(w: np.ndarray) -> float:
        pred = np.array([predict_seconds(c, roof, w) for c in costs])
        return float(np.sum((pred / y - 1.0) ** 2))

    w = _nnls_relative(np.stack([features(c, roof, None) for c in costs]), y, w0, prior)
    best, best_loss = w, loss(w)
    for _ in range(iterations):
        new = _nnls_relative(np.stack([features(c, roof, w) for c in costs]), y, w0, prior)
        new_loss = loss(new)
        if new_loss < best_loss:
            best, best_loss = new, new_loss
        if np.allclose(new, w, rtol=1e-6, atol=0):
            break
        w = new
    return best


def predict_seconds(cost: GraphCost, roof: Roofline, weights: np.ndarray) -> float:
    return float(features(cost, roof, weights) @ weights)


# -- calibration ------------------------------------------------------------------------------------------------

@dataclass
class Sample:
    """One measured point for calibration: a graph and its measured p50 (ms) and p90 (ms) on the target."""

    cost: GraphCost
    p50_ms: float
    p90_ms: float | None = None
    run_id: int | None = None


@dataclass
class Calibration:
    """Fitted weights for one target, with their leave-one-out error (None when fewer than 3 samples)."""

    target: str
    weights: list[float]
    n_samples: int
    basis: str  # "calibrated on N measured runs" | "uncalibrated profile defaults"
    loo_errors: list[float] = field(default_factory=list)  # signed relative errors (predicted/measured - 1)
    p90_ratio: float | None = None
    p90_basis: str = ""
    models: list[str] = field(default_factory=list)
    kind: str = "roofline"  # roofline: FEATURES weights | op_class: OPCLASS_FEATURES weights (from profiles)
    #                         | kernel: [scale] over the kernel-level model (edgekit/targets/kernels.py)
    kernels_cache: str = ""  # kind kernel: the sweep measurements the kernel model is fitted on
    #                         | prior: [w_compute, w_memory, s per kernel] from published latencies (no board here)

    @property
    def calibrated(self) -> bool:
        return self.n_samples > 0

    @property
    def median_abs_error(self) -> float | None:
        return float(np.median(np.abs(self.loo_errors))) if self.loo_errors else None

    def share_within(self, bound: float) -> float | None:
        if not self.loo_errors:
            return None
        return float(np.mean(np.abs(np.asarray(self.loo_errors)) <= bound))

    def efficiencies(self) -> dict[str, float | None]:
        """Achieved/peak per compute and memory class (None when the class is weighted 0), overheads in µs."""
        w = self.weights
        if self.kind == "prior":
            return {"matrix_compute_efficiency": 1.0 / w[0] if w[0] > 0 else None,
                    "memory_efficiency": 1.0 / w[1] if w[1] > 0 else None, "op_overhead_us": w[2] * 1e6}
        if self.kind == "op_class":
            out_c: dict[str, float | None] = {}
            for i, name in enumerate(OP_CLASSES):
                out_c[f"{name}_op_us"] = w[3 * i] * 1e6
                out_c[f"{name}_compute_efficiency"] = 1.0 / w[3 * i + 1] if w[3 * i + 1] > 0 else None
                out_c[f"{name}_memory_efficiency"] = 1.0 / w[3 * i + 2] if w[3 * i + 2] > 0 else None
            out_c["shape_op_overhead_us"] = w[-2] * 1e6
            out_c["call_overhead_us"] = w[-1] * 1e6
            return out_c
        out: dict[str, float | None] = {f"{name}_efficiency": (1.0 / w[i] if w[i] > 0 else None)
                                        for i, name in enumerate((*COMPUTE_CLASSES, *MEMORY_CLASSES))}
        out["op_overhead_us"] = w[8] * 1e6
        out["shape_op_overhead_us"] = w[9] * 1e6
        out["call_overhead_us"] = w[10] * 1e6
        return out

    def error_text(self) -> str:
        if self.kind == "kernel":
            if not self.loo_errors:
                return (f"kernel-level model fitted on {self.n_samples} sweep graphs measured on this host; held-out "
                        "error unknown (no operator profiles of models in the store to check it on)")
            return (f"kernel-level model (no zoo model in its fit), error on {len(self.loo_errors)} profiled "
                    f"models: median {self.median_abs_error:.1%}, {self.share_within(0.10):.0%} within ±10 %, "
                    f"{self.share_within(0.20):.0%} within ±20 %")
        if not self.calibrated:
            return "calibration error unknown: no measured runs on this target (profile default efficiencies)"
        if not self.loo_errors:
            return f"calibrated on {self.n_samples} run(s); too few for a leave-one-out error (need 3)"
        if self.kind == "prior":
            ratios = np.asarray(self.loo_errors) + 1.0
            inside = float(np.mean((ratios >= 0.67) & (ratios <= 1.5)))
            return (f"from published latencies only (no measured run on this target): leave-one-out over "
                    f"{len(ratios)} published models: median |error| {self.median_abs_error:.0%}, {inside:.0%} within "
                    f"x0.67-1.5, worst x{float(ratios.min()):.2f}-{float(ratios.max()):.2f}")
        return (f"leave-one-out error on {len(self.loo_errors)} models: median {self.median_abs_error:.1%}, "
                f"{self.share_within(0.10):.0%} within ±10 %, {self.share_within(0.20):.0%} within ±20 %")

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d.update(median_abs_error=self.median_abs_error, within_10=self.share_within(0.10),
                 within_20=self.share_within(0.20), efficiencies=self.efficiencies(), error_text=self.error_text())
        return d


def calibrate(profile: TargetProfile, samples: Sequence[Sample], roof: Roofline | None = None,
              loo: bool = True) -> Calibration:
    """Fit the weights on measured samples of this target (none -> the profile's defaults)."""
    roof = roof or Roofline.of(profile)
    start = default_weights(profile)
    ratios = [s.p90_ms / s.p50_ms for s in samples if s.p90_ms and s.p50_ms > 0]
    p90 = float(np.median(ratios)) if ratios else None
    p90_basis = f"median p90/p50 of {len(ratios)} measured runs on {profile.name}" if ratios else ""
    if not samples:
        return Calibration(profile.name, start.tolist(), 0, f"uncalibrated: {profile.predictor.source}",
                           p90_ratio=p90, p90_basis=p90_basis)
    costs = [s.cost for s in samples]
    y = [s.p50_ms / 1000.0 for s in samples]
    weights = fit_weights(costs, y, roof, start)
    errors: list[float] = []
    if loo and len(samples) >= 3:
        for i in range(len(samples)):
            rest = [j for j in range(len(samples)) if j != i]
            w = fit_weights([costs[j] for j in rest], [y[j] for j in rest], roof, start)
            errors.append(predict_seconds(costs[i], roof, w) / y[i] - 1.0)
    return Calibration(profile.name, weights.tolist(), len(samples),
                       f"calibrated on {len(samples)} measured runs on {profile.name}", loo_errors=errors,
                       p90_ratio=p90, p90_basis=p90_basis, models=[c.model for c in costs])


# -- predictions ------------------------------------------------------------------------------------------------

@dataclass
class Prediction:
    """Predicted latency of one model on one target (ms), always labelled `predicted`."""

    model: str
    target: str
    precision: str
    p50_ms: float
    p90_ms: float | None
    flops: float
    bytes: float
    kernels: int
    calibration: Calibration
    breakdown_ms: dict[str, float] = field(default_factory=dict)  # compute / memory / overhead shares
    provenance: str = "predicted"
    note: str = ""
    format: str = "onnx"

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["calibration"] = self.calibration.to_dict()
        return d


def predict(cost: GraphCost, profile: TargetProfile, calibration: Calibration, precision: str = "fp32",
            roof: Roofline | None = None) -> Prediction:
    roof = roof or Roofline.of(profile)
    w = np.asarray(calibration.weights)
    if calibration.kind == "prior":
        f = prior_features(cost, roof)
        parts = np.array([f[0] * w[0], f[1] * w[1], w[2] * cost.kernels]) * 1000.0
        breakdown = {"compute": float(parts[0]), "memory": float(parts[1]), "dispatch": float(parts[2])}
    elif calibration.kind == "kernel":
        from edgekit.targets.kernels import CONV_OPS, MATMUL_OPS, cached_kernel_model, executed_nodes

        km = cached_kernel_model(Path(calibration.kernels_cache))
        nodes = executed_nodes(Path(cost.path), cost.input_shapes)
        ms = km.predict_nodes(nodes)
        matrix = sum(t for n, t in zip(nodes, ms, strict=True) if n.op_type in MATMUL_OPS | CONV_OPS)
        parts = np.array([matrix, sum(ms) - matrix, km.call_ms]) * float(w[0])
        breakdown = {"compute": float(parts[0]), "memory": float(parts[1]), "dispatch": float(parts[2])}
    elif calibration.kind == "op_class":
        parts = graph_op_features(cost, roof) * w * 1000.0
        breakdown = {"compute": float(parts[1:-2:3].sum()), "memory": float(parts[2:-2:3].sum()),
                     "dispatch": float(parts[0:-2:3].sum() + parts[-2:].sum())}
    else:
        parts = features(cost, roof, w) * w * 1000.0
        breakdown = {"compute": float(parts[:6].sum()), "memory": float(parts[6:8].sum()),
                     "dispatch": float(parts[8:].sum())}
    p50 = float(parts.sum())
    p90 = p50 * calibration.p90_ratio if calibration.p90_ratio else None
    notes = []
    if cost.unknown_shapes:
        notes.append(f"{cost.unknown_shapes} nodes had unresolved shapes and were costed as dispatch only")
    if not calibration.calibrated and calibration.kind != "kernel":
        notes.append("not calibrated on this target: efficiencies are the profile's defaults")
    if calibration.kind == "prior":
        notes.append("calibrated on published CNN latencies of another runtime (see the profile's [[published]] "
                     "rows), not on runs of this artifact's runtime")
    return Prediction(model=cost.model, target=profile.name, precision=precision, p50_ms=p50, p90_ms=p90,
                      flops=cost.flops, bytes=cost.bytes, kernels=cost.kernels, calibration=calibration,
                      breakdown_ms=breakdown, note="; ".join(notes))


def measure_bandwidth_gbs(size_bytes: int = 64 * 2**20, repeats: int = 5) -> float:
    """This host's memory bandwidth (GB/s) from the best of a few numpy copies of a buffer larger than the caches
    (bytes read + bytes written per copy). Used for `local`, whose profile has no published figure."""
    import time

    src = np.ones(size_bytes // 8, dtype=np.float64)
    dst = np.empty_like(src)
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        np.copyto(dst, src)
        best = min(best, time.perf_counter() - t0)
    return 2.0 * src.nbytes / best / 1e9


# -- measured samples from the results store ---------------------------------------------------------------------

def _onnx_for_run(artifact: Path, precision: str | None) -> Path | None:
    """The ONNX graph describing a run's artifact: itself, or the manifest sibling of the same precision."""
    known = format_for_suffix(artifact)
    if known is not None and known.name == "onnx" and artifact.is_file():
        return artifact
    manifest = artifact.parent / "manifest.json"
    if manifest.is_file():
        from edgekit.export.artifact import Manifest

        try:
            m = Manifest.read(manifest)
        except EdgekitError:
            return None
        art = m.find("onnx", precision or "fp32")
        if art is not None and art.status == "ok" and art.path and (artifact.parent / art.path).is_file():
            return artifact.parent / art.path
    return None


def samples_from_store(store: Any, target: str, cache: dict[str, GraphCost] | None = None,
                       exclude_model: str | None = None, fmt: str | None = None) -> list[Sample]:
    """Measured (not emulated, not predicted) ok bench runs of a target whose ONNX graph can be found; the newest run
    per (model, precision, graph) wins. With `fmt`, only runs of that format, each costed on its own graph (a
    TFLite run on its .tflite file), so one format's latencies never calibrate another's."""
    cache = cache if cache is not None else {}
    seen: set[tuple[str, str, str]] = set()
    out: list[Sample] = []
    for run in store.list_runs(kind="bench", status="ok"):
        if run.target != target or run.provenance != "measured" or not run.artifact_path:
            continue
        if exclude_model and run.model == exclude_model:
            continue
        if fmt is not None and run.format != fmt:
            continue
        lat = (run.result or {}).get("latency") or {}
        if not lat.get("p50"):
            continue
        if fmt == "tflite":
            key = (str(run.model), str(run.precision), str(run.artifact_path))
            if key in seen or not Path(run.artifact_path).is_file():
                continue
            seen.add(key)
            if run.artifact_path not in cache:
                try:
                    cache[run.artifact_path] = analyze_tflite(Path(run.artifact_path), str(run.model))
                except EdgekitError:
                    continue
            out.append(Sample(cache[run.artifact_path], float(lat["p50"]), lat.get("p90"), run.id))
            continue
        onnx_path = _onnx_for_run(Path(run.artifact_path), run.precision)
        if onnx_path is None:
            continue
        key = (str(run.model), str(run.precision), str(onnx_path))
        if key in seen:
            continue
        seen.add(key)
        shapes = {d["name"]: d["shape"] for d in (run.config or {}).get("inputs", []) if "name" in d}
        ck = f"{onnx_path}:{sorted(shapes.items())}"
        if ck not in cache:
            try:
                cache[ck] = analyze_onnx(onnx_path, shapes or None, str(run.model))
            except EdgekitError:
                continue
        out.append(Sample(cache[ck], float(lat["p50"]), lat.get("p90"), run.id))
    return out


# -- the artifact's own graph for TFLite ------------------------------------------------------------------------

# TFLite builtin operators as the ONNX operator that computes the same thing, so one op-class table serves both.
_TFLITE_AS_ONNX = {
    "FULLY_CONNECTED": "Gemm", "BATCH_MATMUL": "MatMul", "CONV_2D": "Conv", "DEPTHWISE_CONV_2D": "Conv",
    "TRANSPOSE_CONV": "ConvTranspose", "CONV_3D": "Conv", "TOPK_V2": "TopK", "RESHAPE": "Reshape",
    "SQUEEZE": "Squeeze", "EXPAND_DIMS": "Unsqueeze", "SHAPE": "Shape", "TRANSPOSE": "Transpose",
    "CONCATENATION": "Concat", "GATHER": "Gather", "GATHER_ND": "GatherND", "SLICE": "Slice",
    "STRIDED_SLICE": "Slice", "SPLIT": "Split", "SPLIT_V": "Split", "PAD": "Pad", "PADV2": "Pad", "TILE": "Tile",
    "BROADCAST_TO": "Expand", "SELECT": "Where", "SELECT_V2": "Where", "CAST": "Cast", "SCATTER_ND": "ScatterND",
    "RESIZE_BILINEAR": "Resize", "RESIZE_NEAREST_NEIGHBOR": "Resize", "DEPTH_TO_SPACE": "DepthToSpace",
    "SPACE_TO_DEPTH": "SpaceToDepth", "ADD": "Add", "SUB": "Sub", "MUL": "Mul", "DIV": "Div", "SOFTMAX": "Softmax",
    "LOGISTIC": "Sigmoid", "TANH": "Tanh", "RELU": "Relu", "RELU6": "Clip", "GELU": "Gelu", "EXP": "Exp",
    "RSQRT": "Sqrt", "SQRT": "Sqrt", "POW": "Pow", "MEAN": "ReduceMean", "SUM": "ReduceSum", "REDUCE_MAX": "ReduceMax",
    "MAXIMUM": "Max", "MINIMUM": "Min", "SQUARED_DIFFERENCE": "Sub", "AVERAGE_POOL_2D": "AveragePool",
    "MAX_POOL_2D": "MaxPool", "HARD_SWISH": "HardSwish", "QUANTIZE": "QuantizeLinear",
    "DEQUANTIZE": "DequantizeLinear", "LOG_SOFTMAX": "LogSoftmax", "ERF": "Erf", "NEG": "Neg", "ABS": "Abs",
    "EQUAL": "Equal", "GREATER_EQUAL": "GreaterOrEqual", "GREATER": "Greater", "LESS": "Less", "CUMSUM": "ReduceSum",
    "LOGICAL_AND": "And", "LOGICAL_OR": "Or", "LOGICAL_NOT": "Not", "SIN": "Sin", "COS": "Cos", "FLOOR": "Floor",
    "ARG_MAX": "ReduceMax", "ONE_HOT": "Gather", "RANGE": "Range", "FILL": "Expand", "ZEROS_LIKE": "Expand",
}
_TFLITE_BYTES = {0: 4, 1: 2, 2: 4, 3: 1, 4: 8, 6: 1, 7: 2, 9: 1, 10: 8, 16: 1}  # TensorType -> bytes per element


def analyze_tflite(path: Path, model_name: str = "") -> GraphCost:
    """FLOPs and bytes of every operator of a .tflite file (its first subgraph), read from the flatbuffer in pure
    Python (the shapes the converter fixed in the file). FULLY_CONNECTED/BATCH_MATMUL 2·out·K, CONV_2D
    2·out·kh·kw·Cin, DEPTHWISE_CONV_2D 2·out·kh·kw, elementwise a few FLOPs per output element; int8 where the
    operator's inputs are 8-bit integers, fp16 for float16 ones."""
    import mmap

    from ai_edge_litert import schema_py_generated as fb

    path = Path(path)
    names = {v: k for k, v in vars(fb.BuiltinOperator).items() if not k.startswith("_")}
    try:
        with open(path, "rb") as fh:
            data: Any = mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ)
        if not fb.Model.ModelBufferHasIdentifier(data, 0):
            raise ValueError("no TFL3 identifier")
        model = fb.Model.GetRootAs(data, 0)
        g = model.Subgraphs(0)
        tensors = []
        for i in range(g.TensorsLength()):
            t = g.Tensors(i)
            shape = [int(d) for d in t.ShapeAsNumpy()] if t.ShapeLength() else []
            tensors.append(([max(d, 1) for d in shape], int(t.Type())))
        ops: list[OpCost] = []
        for i in range(g.OperatorsLength()):
            o = g.Operators(i)
            code = model.OperatorCodes(o.OpcodeIndex())
            builtin = max(int(code.BuiltinCode()), int(code.DeprecatedBuiltinCode()))
            tfl = names.get(builtin, f"BUILTIN_{builtin}")
            onnx_op = _TFLITE_AS_ONNX.get(tfl, tfl)
            ins = [int(x) for x in (o.InputsAsNumpy() if o.InputsLength() else []) if x >= 0]
            outs = [int(x) for x in (o.OutputsAsNumpy() if o.OutputsLength() else []) if x >= 0]
            out_shape = tensors[outs[0]][0] if outs else []
            moved = float(sum(_prod(tensors[j][0]) * _TFLITE_BYTES.get(tensors[j][1], 4) for j in ins + outs))
            in_types = [tensors[j][1] for j in ins[:2]]
            precision = "int8" if any(t in (3, 9) for t in in_types) else "fp16" if 1 in in_types else "fp32"
            flops = 0.0
            if tfl in ("FULLY_CONNECTED", "BATCH_MATMUL") and ins:
                a = tensors[ins[0]][0]
                k = a[-1] if a else 1
                if tfl == "BATCH_MATMUL" and len(ins) > 1 and o.BuiltinOptionsType():
                    k = a[-2] if _adj_x(o, fb) and len(a) >= 2 else k
                flops = 2.0 * _prod(out_shape) * k
            elif tfl in ("CONV_2D", "CONV_3D") and len(ins) > 1:
                w = tensors[ins[1]][0]  # [Cout, kh, kw, Cin]
                flops = 2.0 * _prod(out_shape) * _prod(w[1:])
            elif tfl == "DEPTHWISE_CONV_2D" and len(ins) > 1:
                w = tensors[ins[1]][0]  # [1, kh, kw, Cout]
                flops = 2.0 * _prod(out_shape) * _prod(w[1:3])
            elif tfl == "TRANSPOSE_CONV" and len(ins) > 2:
                flops = 2.0 * _prod(tensors[ins[2]][0]) * _prod(tensors[ins[1]][0][:3])
            elif onnx_op in ("ReduceMean", "ReduceSum", "ReduceMax", "AveragePool", "MaxPool") and ins:
                flops = float(_prod(tensors[ins[0]][0]))
            elif onnx_op == "TopK" and ins:
                x = tensors[ins[0]][0]
                flops = float(_prod(x)) * math.log2(max(2, x[-1] if x else 2))
            elif onnx_op in ELEMENT_FLOPS:
                flops = float(ELEMENT_FLOPS[onnx_op] * _prod(out_shape))
            shape_only = onnx_op in SHAPE_OPS
            ops.append(OpCost(name=f"{tfl}:{i}", op_type=onnx_op, flops=flops, bytes=0.0 if shape_only else moved,
                              precision=precision, shape_only=shape_only))
    except EdgekitError:
        raise
    except Exception as exc:  # flatbuffer accessors raise struct.error / IndexError on a truncated file
        raise EdgekitError(f"the predictor cannot read {path} as a .tflite model ({type(exc).__name__})",
                           "export the model again with `edgekit export MODEL --format tflite`") from exc
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    return GraphCost(model=model_name or path.stem, path=str(path), sha256=digest, ops=ops)


def _adj_x(op: Any, fb: Any) -> bool:
    try:
        opts = fb.BatchMatMulOptions()
        table = op.BuiltinOptions()
        opts.Init(table.Bytes, table.Pos)
        return bool(opts.AdjX())
    except Exception:  # noqa: BLE001 - options unreadable: no transpose assumed
        return False


def analyze_artifact(path: Path, fmt: str, input_shapes: dict[str, Sequence[int]] | None = None,
                     model_name: str = "") -> GraphCost:
    """The cost of an artifact from its own graph: ONNX (shape inference at the given shapes) or TFLite (the
    flatbuffer's fixed shapes). Any other format is refused in one line."""
    if fmt == "onnx":
        return analyze_onnx(path, input_shapes, model_name)
    if fmt == "tflite":
        return analyze_tflite(path, model_name)
    raise EdgekitError(f"the predictor reads ONNX and TFLite graphs, not {fmt} ({Path(path).name})",
                       "predict the model's .onnx or .tflite artifact instead")


# -- calibration per operator class from operator profiles ---------------------------------------------------------

OP_PRIOR_STRENGTH = 1e-8  # see fit_op_weights: only numerical, so the fit does not depend on the bandwidth
OP_CLASSES = ("gemm", "conv", "gemm_int8", "conv_int8", "vector", "sort", "movement")
OPCLASS_FEATURES = (*(f"{c}_{part}" for c in OP_CLASSES for part in ("node", "compute", "memory")),
                    "shape_node", "call")
_N_OPF = len(OPCLASS_FEATURES)


def _class_index(op: OpCost) -> int:
    c, m = op_class(op)
    return 6 if m == 7 else c


def op_features(op: OpCost, roof: Roofline) -> np.ndarray:
    """One node's features in OPCLASS_FEATURES order: per class [1, t_compute, t_memory] at 100 % efficiency
    (so the fitted weights are s per node, 1/compute efficiency, 1/memory efficiency), or 1 shape node."""
    x = np.zeros(_N_OPF)
    if op.shape_only:
        x[-2] = 1.0
        return x
    k = 3 * _class_index(op)
    tc, tm = roof.op_times(op)
    x[k], x[k + 1], x[k + 2] = 1.0, tc, tm
    return x


def graph_op_features(cost: GraphCost, roof: Roofline) -> np.ndarray:
    x = np.sum([op_features(o, roof) for o in cost.ops], axis=0) if cost.ops else np.zeros(_N_OPF)
    x[-1] = 1.0
    return x


def default_op_weights(profile: TargetProfile) -> np.ndarray:
    """The profile's [predictor] defaults in OPCLASS_FEATURES order."""
    d = profile.predictor
    per_class = [d.op_overhead_us * 1e-6, 1.0 / d.compute_efficiency, 1.0 / d.memory_efficiency]
    return np.array(per_class * len(OP_CLASSES) + [d.op_overhead_us * 0.2e-6, d.op_overhead_us * 10e-6])


@dataclass
class ProfiledSample:
    """A graph, its measured p50 (ms) and its per-node times from an operator profile (node name -> ms)."""

    cost: GraphCost
    p50_ms: float
    node_ms: dict[str, float]
    p90_ms: float | None = None
    run_id: int | None = None


def match_nodes(cost: GraphCost, node_ms: dict[str, float]) -> tuple[list[tuple[OpCost, float]], list[OpCost], float]:
    """Pair each profiled node with the graph node it ran: the same name, else the longest graph name the profiled
    one extends (onnxruntime's fusions: `x/node_matmul/MatMulScaleFusion/`). Returns (matched (op, ms)), graph
    ops no profiled node names (fused away, folded), ms of profiled nodes that match none (fused kernels))."""
    by_name = {o.name: o for o in cost.ops}
    got: dict[str, float] = {}
    loose = 0.0
    for name, ms in node_ms.items():
        if name in by_name:
            got[name] = got.get(name, 0.0) + ms
            continue
        best = ""
        for prefix in _prefixes(name):
            if prefix in by_name and len(prefix) > len(best):
                best = prefix
        if best:
            got[best] = got.get(best, 0.0) + ms
        else:
            loose += ms
    matched = [(by_name[n], ms) for n, ms in got.items()]
    rest = [o for o in cost.ops if o.name not in got]
    return matched, rest, loose


def _prefixes(name: str) -> list[str]:
    parts = name.split("/")
    return ["/".join(parts[:i]) for i in range(len(parts) - 1, 0, -1)]


def fit_op_weights(samples: Sequence[ProfiledSample], roof: Roofline, start: np.ndarray,
                   total_weight: float = 1.0, prior: float = OP_PRIOR_STRENGTH) -> np.ndarray:
    """Non-negative least squares over nodes: every profiled node is a row (its time against its class's [1,
    t_compute, t_memory]), the nodes that match no graph node one row per model, and each model's measured p50 one
    row (weighted `total_weight`) against the whole graph plus the call. Rows are divided by the model's p50, so
    every model weighs the same whatever its size. A class no sample exercises keeps the default `start`.

    `prior` pulls each weight toward the profile's default (in units of that default). It is kept tiny: with the
    former 1e-4 the fitted model depended on the memory bandwidth measured at prediction time (t_memory's scale
    moves the default's distance from the data); leave-one-model-out over the zoo on this host went from 50 % to
    61 % within ±10 % and is now the same for any bandwidth from 5 to 40 GB/s (docs/targets.md)."""
    from scipy.optimize import nnls

    rows, ys = [], []
    for s in samples:
        t = s.p50_ms / 1000.0
        matched, rest, loose = match_nodes(s.cost, s.node_ms)
        for op, ms in matched:
            rows.append(op_features(op, roof) / t)
            ys.append(ms / 1000.0 / t)
        if rest or loose:
            rows.append(np.sum([op_features(o, roof) for o in rest], axis=0) / t if rest else np.zeros(_N_OPF))
            ys.append(loose / 1000.0 / t)
        rows.append(total_weight * graph_op_features(s.cost, roof) / t)
        ys.append(total_weight)
    a = np.asarray(rows, dtype=float)
    y = np.asarray(ys, dtype=float)
    w0 = np.maximum(np.asarray(start, dtype=float), 1e-15)
    a = a * w0  # in units of the defaults
    used = np.abs(a).sum(axis=0) > 0
    k = len(w0)
    a = np.vstack([a, math.sqrt(prior) * np.eye(k)])
    y = np.concatenate([y, math.sqrt(prior) * np.ones(k)])
    v, _ = nnls(a, y, maxiter=50 * k)
    v[~used] = 1.0
    return v * w0


def calibrate_from_profiles(profile: TargetProfile, samples: Sequence[ProfiledSample], roof: Roofline | None = None,
                            loo: bool = True) -> Calibration:
    """The target's calibration per operator class from operator profiles (edgekit profile); its error is
    leave-one-model-out (every artifact of the held-out model left out together)."""
    roof = roof or Roofline.of(profile)
    start = default_op_weights(profile)
    weights = fit_op_weights(samples, roof, start)
    errors: list[float] = []
    names = [s.cost.model.split(" ")[0] for s in samples]
    if loo and len(set(names)) >= 3:
        for model in sorted(set(names)):
            train = [s for s, n in zip(samples, names, strict=True) if n != model]
            w = fit_op_weights(train, roof, start)
            for s, n in zip(samples, names, strict=True):
                if n == model:
                    errors.append(float(graph_op_features(s.cost, roof) @ w) * 1000.0 / s.p50_ms - 1.0)
    ratios = [s.p90_ms / s.p50_ms for s in samples if s.p90_ms and s.p50_ms > 0]
    return Calibration(profile.name, weights.tolist(), len(samples),
                       f"calibrated per operator class on {len(samples)} operator profiles on {profile.name}",
                       loo_errors=errors, p90_ratio=float(np.median(ratios)) if ratios else None,
                       p90_basis=f"median p90/p50 of {len(ratios)} measured runs on {profile.name}" if ratios else "",
                       models=[s.cost.model for s in samples], kind="op_class")


def predict_op_class(cost: GraphCost, roof: Roofline, weights: Sequence[float]) -> float:
    """Seconds: Σ over nodes of their class's weights · [1, t_compute, t_memory], plus the call."""
    return float(graph_op_features(cost, roof) @ np.asarray(weights))


def profiled_samples_from_store(store: Any, target: str, exclude_model: str | None = None) -> list[ProfiledSample]:
    """Operator profiles (`edgekit profile`, kind "profile", ONNX) of a target whose graph is still on disk, as
    ProfiledSamples; the newest profile per (model, precision) wins."""
    from edgekit.profile.run import profile_from_run

    seen: set[tuple[str, str]] = set()
    out: list[ProfiledSample] = []
    for run in store.list_runs(kind="profile", status="ok"):
        key = (str(run.model), str(run.precision))
        if run.target != target or run.format != "onnx" or key in seen or not run.artifact_path:
            continue
        if exclude_model and run.model == exclude_model:
            continue
        prof = profile_from_run(run)
        if prof is None or not prof.p50_ms or not Path(run.artifact_path).is_file():
            continue
        shapes = {d["name"]: d["shape"] for d in (run.config or {}).get("inputs", []) if "name" in d}
        try:
            cost = analyze_onnx(Path(run.artifact_path), shapes or None, f"{run.model} {run.precision}")
        except EdgekitError:
            continue
        seen.add(key)
        lat = (run.result or {}).get("latency") or {}
        out.append(ProfiledSample(cost, prof.p50_ms, {n.name: n.ms for n in prof.nodes}, lat.get("p90"), run.id))
    return out


# -- priors: published per-model latencies of a target without measurements here -------------------------------------

# ncnn layer types as the ONNX operator that computes the same thing (so op_class places them), for graphs read from
# ncnn .param files: the networks behind published ncnn benchmark tables (Tencent/ncnn benchmark/models/*.param).
_NCNN_AS_ONNX = {
    "Convolution": "Conv", "ConvolutionDepthWise": "Conv", "InnerProduct": "Gemm", "Pooling": "MaxPool",
    "ReLU": "Relu", "Eltwise": "Add", "BinaryOp": "Mul", "Concat": "Concat", "ShuffleChannel": "Transpose",
    "Softmax": "Softmax", "HardSwish": "HardSwish", "HardSigmoid": "HardSigmoid", "Slice": "Split", "LRN": "LRN",
    "Reshape": "Reshape", "Flatten": "Flatten", "Split": "Identity", "Dropout": "Identity", "Noop": "Identity",
    "Sigmoid": "Sigmoid", "Swish": "HardSwish", "BatchNorm": "BatchNormalization", "Scale": "Mul", "Clip": "Clip",
}


def analyze_ncnn_param(text: str, model_name: str = "") -> GraphCost:
    """FLOPs and bytes of every layer of an ncnn .param file (fp32), from the output shapes ncnn writes into it
    (`-23330=` per layer: for each output, dims, w, h, c). Convolution (any group) 2 · out_w · out_h ·
    weight_data_size, InnerProduct 2 · weight_data_size, pooling one FLOP per input element, other layers one per
    output element; bytes: inputs + outputs + weights at 4 bytes. Split/Dropout/Reshape/Flatten cost no time (ncnn
    passes references). Used to cost the networks of published ncnn benchmark tables with the same cost model as an
    artifact's own graph."""
    lines = [ln.split() for ln in text.splitlines() if ln.strip()]
    if not lines or lines[0][0] != "7767517":
        raise EdgekitError(f"{model_name or 'this file'} is not an ncnn .param file (no 7767517 magic)",
                           "pass a text .param file from Tencent/ncnn benchmark/models/")
    elems: dict[str, int] = {}
    ops: list[OpCost] = []
    for f in lines[2:]:
        typ, name, n_in, n_out = f[0], f[1], int(f[2]), int(f[3])
        ins, outs = f[4:4 + n_in], f[4 + n_in:4 + n_in + n_out]
        kv = dict(x.split("=", 1) for x in f[4 + n_in + n_out:] if "=" in x)
        shapes = [int(float(v)) for v in kv.get("-23330", "0").split(",")][1:]
        for j, o in enumerate(outs):
            d, w, h, c = (shapes[4 * j:4 * j + 4] + [0, 0, 0, 0])[:4]
            elems[o] = w * h * c if d == 3 else w * h if d == 2 else w
        if typ == "Input":
            continue
        e_in, e_out = sum(elems.get(i, 0) for i in ins), sum(elems.get(o, 0) for o in outs)
        weights = int(kv.get("6", 0)) if typ.startswith("Convolution") else int(kv.get("2", 0)) \
            if typ == "InnerProduct" else 0
        if typ.startswith("Convolution"):
            flops = 2.0 * e_out / max(1, int(kv.get("0", 1))) * weights
        elif typ == "InnerProduct":
            flops = 2.0 * weights
        elif typ == "Pooling":
            flops = float(e_in)
        else:
            flops = float(e_out)
        onnx_op = _NCNN_AS_ONNX.get(typ, typ)
        shape_only = onnx_op in ("Identity", "Reshape", "Flatten")
        ops.append(OpCost(name=name, op_type=onnx_op, flops=0.0 if shape_only else flops,
                          bytes=0.0 if shape_only else 4.0 * (e_in + e_out + weights), shape_only=shape_only))
    return GraphCost(model=model_name, path="", sha256="", ops=ops)


@dataclass(frozen=True)
class PublishedLatency:
    """One published latency of a model on a target (a [[published]] row of its profile), with the graph facts
    edgekit derived for that model: GFLOP of its matrix (conv/gemm) nodes, MB moved by all nodes, kernels."""

    model: str
    p50_ms: float  # the published central figure (ncnn benchncnn: the avg column of its loops)
    gflop_matrix: float
    mb_moved: float
    kernels: int
    source: str
    graph: str  # how the graph facts were derived
    runtime: str = ""
    threads: int | None = None
    clock_ghz: float | None = None
    precision: str = "fp32"
    min_ms: float | None = None
    held_out: bool = False  # left out of the calibration of the done-when check (benchmarks/predictor_accuracy.py)

    @classmethod
    def from_cost(cls, cost: GraphCost, p50_ms: float, **kw: Any) -> PublishedLatency:
        matrix = sum(o.flops for o in cost.ops if op_class(o)[0] in (0, 1, 2, 3))
        return cls(model=cost.model, p50_ms=p50_ms, gflop_matrix=matrix / 1e9, mb_moved=cost.bytes / 1e6,
                   kernels=cost.kernels, **kw)


PRIOR_FEATURES = ("compute_s", "memory_s")


def prior_features(cost: GraphCost, roof: Roofline) -> np.ndarray:
    """[Σ t_compute of the matrix (conv/gemm) nodes, Σ t_memory of every node] at 100 % efficiency, seconds."""
    tc = tm = 0.0
    for o in cost.ops:
        if o.shape_only:
            continue
        c, m = roof.op_times(o)
        tm += m
        if op_class(o)[0] in (0, 1, 2, 3):
            tc += c
    return np.array([tc, tm])


def published_features(row: PublishedLatency, roof: Roofline) -> np.ndarray:
    """prior_features of a published row from its stored graph facts (its precision's peak)."""
    peak = roof.peak_gflops.get(row.precision) or roof.peak_gflops["fp32"]
    return np.array([row.gflop_matrix / peak, row.mb_moved * 1e6 / (roof.bandwidth_gbs * 1e9)])


def fit_prior_weights(rows: Sequence[PublishedLatency], roof: Roofline, op_overhead_s: float = 0.0) -> np.ndarray:
    """[1/compute efficiency, 1/memory efficiency] fitted on published rows:
    p50 ≈ w_c·Σ t_compute(matrix) + w_m·Σ t_memory + op_overhead_s·kernels (the overhead is the profile's assumption,
    not fitted: CNN latencies in the hundreds of ms cannot identify a few µs per kernel).

    Loss: the sum of |log(predicted / published)| (least absolute deviations of the log ratio), minimised by
    Nelder-Mead over log-weights from the non-negative least-squares solution. Log, because errors on published
    latencies are multiplicative (the done-when band x0.67-1.5 is too); absolute, because published tables mix
    kernels a runtime treats specially (ncnn's Winograd 3x3 convolutions make vgg16 run twice as fast per FLOP as
    the resnets), and one such row must not drag every other prediction. (Least squares on relative errors, the
    first version: leave-one-out median 13 %, worst x0.70; this: 10 %, worst x0.80; benchmarks/predictor_accuracy.py
    --target rpi4.)"""
    from scipy.optimize import minimize, nnls

    if not rows:
        raise EdgekitError("no published rows to calibrate on", "add [[published]] rows to the target profile")
    x = np.array([published_features(r, roof) for r in rows])
    t = np.array([r.p50_ms / 1000.0 for r in rows])
    fixed = np.array([op_overhead_s * r.kernels for r in rows])
    w0, _ = nnls(x / t[:, None], (t - fixed) / t)
    w0 = np.maximum(w0, 1e-3)

    def loss(log_w: np.ndarray) -> float:
        return float(np.sum(np.abs(np.log((x @ np.exp(log_w) + fixed) / t))))

    res = minimize(loss, np.log(w0), method="Nelder-Mead",
                   options={"xatol": 1e-9, "fatol": 1e-12, "maxiter": 20000})
    return np.exp(res.x) if res.fun <= loss(np.log(w0)) else w0


def load_published(profile: TargetProfile) -> list[PublishedLatency]:
    """The [[published]] rows of a target's profile file (none for a profile with no file or no rows). Each row
    must name its source and how its graph facts were derived."""
    import tomllib

    path = Path(profile.path) if profile.path else None
    if path is None or not path.is_file():
        return []
    try:
        data = tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError):
        return []
    rows = []
    names = {f.name for f in PublishedLatency.__dataclass_fields__.values()}
    for i, r in enumerate(data.get("published") or []):
        if not isinstance(r, dict):
            continue
        unknown = sorted(set(r) - names)
        missing = [k for k in ("model", "p50_ms", "gflop_matrix", "mb_moved", "kernels", "source", "graph")
                   if k not in r]
        if unknown or missing:
            raise EdgekitError(f"target profile {path}: [[published]] row {i + 1} "
                               + (f"has unknown keys {', '.join(unknown)}" if unknown else
                                  f"lacks {', '.join(missing)}"),
                               "docs/targets.md (Priors) lists the keys of a published row")
        bad = [k for k in ("p50_ms", "gflop_matrix", "mb_moved", "kernels")
               if isinstance(r[k], bool) or not isinstance(r[k], int | float) or not r[k] > 0]
        if bad:
            raise EdgekitError(f"target profile {path}: [[published]] row {i + 1} ({r['model']}): "
                               f"{', '.join(bad)} must be positive numbers", "write them without quotes, e.g. p50_ms = 75.8")
        rows.append(PublishedLatency(**r))
    return rows


def calibrate_from_priors(profile: TargetProfile, rows: Sequence[PublishedLatency], roof: Roofline | None = None,
                          ) -> Calibration:
    """A target's calibration from published latencies: the two weights fitted on every row, the expected error
    leave-one-row-out (each published model predicted by a fit on the others)."""
    roof = roof or Roofline.of(profile)
    overhead = profile.predictor.op_overhead_us * 1e-6
    weights = fit_prior_weights(rows, roof, overhead)
    errors: list[float] = []
    if len(rows) >= 3:
        for i, r in enumerate(rows):
            w = fit_prior_weights([q for j, q in enumerate(rows) if j != i], roof, overhead)
            pred = float(published_features(r, roof) @ w) + overhead * r.kernels
            errors.append(pred * 1000.0 / r.p50_ms - 1.0)
    runtimes = sorted({r.runtime for r in rows if r.runtime})
    return Calibration(profile.name, [*weights.tolist(), overhead], len(rows),
                       f"priors: {len(rows)} published latencies on {profile.name} "
                       f"({', '.join(runtimes) or 'runtime not stated'}; sources in the profile's [[published]] rows)",
                       loo_errors=errors, models=[r.model for r in rows], kind="prior")


def predict_prior(cost: GraphCost, roof: Roofline, weights: Sequence[float]) -> float:
    """Seconds: w_c·Σ t_compute(matrix) + w_m·Σ t_memory + overhead·kernels (weights from calibrate_from_priors)."""
    w = np.asarray(weights, dtype=float)
    return float(prior_features(cost, roof) @ w[:2] + w[2] * cost.kernels)


@dataclass
class PriorCheckRow:
    """One published model in the held-out check: its published p50, the prediction from a fit that did not see
    it (held-out rows: a fit on the calibration rows; calibration rows: leave-one-out), and their ratio."""

    model: str
    published_ms: float
    predicted_ms: float
    held_out: bool
    gflop_matrix: float

    @property
    def ratio(self) -> float:
        return self.predicted_ms / self.published_ms


@dataclass
class PriorCheck:
    """The held-out evaluation of a target's priors: every row predicted without itself, and the ratio of each
    large held-out CNN to each small one (predicted ratio / published ratio - 1)."""

    target: str
    rows: list[PriorCheckRow]
    pairs: list[tuple[str, str, float, float]]  # (large, small, published ratio, predicted ratio)
    weights: list[float]  # fitted on the calibration rows (held-out rows excluded)

    @property
    def held_out(self) -> list[PriorCheckRow]:
        return [r for r in self.rows if r.held_out]

    def passes(self, low: float = 0.67, high: float = 1.5, ratio_tol: float = 0.20) -> bool:
        """The done-when: every held-out prediction within x[low, high] and every large/small ratio within
        ±ratio_tol of the published one."""
        return bool(self.held_out) and all(low <= r.ratio <= high for r in self.held_out) and all(
            abs(pred / pub - 1.0) <= ratio_tol for _, _, pub, pred in self.pairs)


def check_priors(profile: TargetProfile, rows: Sequence[PublishedLatency], roof: Roofline | None = None,
                 ) -> PriorCheck:
    """Fit on the rows not marked held_out, predict the held-out ones; the calibration rows are predicted
    leave-one-out among themselves. Pairs: each held-out row above the held-out median GFLOP with each one below."""
    roof = roof or Roofline.of(profile)
    overhead = profile.predictor.op_overhead_us * 1e-6
    train = [r for r in rows if not r.held_out]
    w = fit_prior_weights(train, roof, overhead)

    def pred_ms(r: PublishedLatency, weights: np.ndarray) -> float:
        return (float(published_features(r, roof) @ weights) + overhead * r.kernels) * 1000.0

    out = []
    for r in rows:
        if r.held_out:
            out.append(PriorCheckRow(r.model, r.p50_ms, pred_ms(r, w), True, r.gflop_matrix))
        else:
            wl = fit_prior_weights([q for q in train if q is not r], roof, overhead)
            out.append(PriorCheckRow(r.model, r.p50_ms, pred_ms(r, wl), False, r.gflop_matrix))
    held = sorted((r for r in out if r.held_out), key=lambda r: r.gflop_matrix)
    half = len(held) // 2
    pairs = [(big.model, small.model, big.published_ms / small.published_ms, big.predicted_ms / small.predicted_ms)
             for big in held[half:] for small in held[:half]]
    return PriorCheck(profile.name, out, pairs, [*w.tolist(), overhead])


# -- the kernel-level model (edgekit/targets/kernels.py) as a calibration of the local host -------------------------

def calibrate_kernels(profile: TargetProfile, store: Any = None, cache: Path | None = None, threads: int = 1,
                      scale: bool = False) -> Calibration | None:
    """The local host's calibration by the kernel-level model (fitted only on the kernel sweep in `cache`; None when
    no sweep was measured at this thread count). Its error: every model with an operator profile in `store`
    predicted and compared with its measured p50 (none of them is in the kernel fit, so each is held out). With
    `scale`, one multiplicative correction, the median measured/predicted ratio of those models (each model's error
    then from the median of the OTHER models, leave-one-model-out)."""
    from edgekit.targets.kernels import cached_kernel_model, default_cache, executed_nodes

    path = Path(cache) if cache else default_cache(threads)
    try:
        km = cached_kernel_model(path, threads)
    except (OSError, ValueError):
        return None
    preds: list[tuple[str, float, float]] = []  # (model, predicted ms, measured ms)
    p90s: list[float] = []  # measured p90/p50 of this host (its own tail, for the p90 prediction)
    if store is not None:
        for s in profiled_samples_from_store(store, profile.name):
            if s.p90_ms and s.p50_ms > 0:
                p90s.append(s.p90_ms / s.p50_ms)
            try:
                pred = km.predict_ms(executed_nodes(Path(s.cost.path), s.cost.input_shapes, threads))
            except Exception:  # noqa: BLE001 - a graph onnxruntime cannot optimise is left out of the check
                continue
            preds.append((s.cost.model, pred, s.p50_ms))
    names = [m.split(" ")[0] for m, _, _ in preds]
    errors, factor = [], 1.0
    for i, (_, pred, meas) in enumerate(preds):
        f = 1.0
        if scale:
            others = [mm / pp for j, (_, pp, mm) in enumerate(preds) if names[j] != names[i]]
            f = float(np.median(others)) if others else 1.0
        errors.append(pred * f / meas - 1.0)
    if scale and preds:
        factor = float(np.median([mm / pp for _, pp, mm in preds]))
    return Calibration(profile.name, [factor], km.n_graphs,
                       f"kernel-level model: {km.n_graphs} measurements of single-operator/fused-block graphs on this "
                       f"host at {threads} thread(s) ({path.name}), regressors per kernel over their {km.n_rows} "
                       "executed nodes"
                       + (f", x{factor:.3f} (median measured/predicted over {len(preds)} profiled models)"
                          if scale else ""),
                       loo_errors=errors, models=[m for m, _, _ in preds], kind="kernel", kernels_cache=str(path),
                       p90_ratio=float(np.median(p90s)) if p90s else None,
                       p90_basis=f"median p90/p50 of {len(p90s)} measured runs on {profile.name}" if p90s else "")
