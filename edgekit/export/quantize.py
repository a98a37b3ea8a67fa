"""ONNX quantized variants: fp16 conversion, int8 dynamic, int8 static (calibrated, QDQ), int4 weight-only."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np


class _Calibration:
    """onnxruntime CalibrationDataReader over a list of feeds."""

    def __init__(self, feeds: list[dict[str, np.ndarray]]) -> None:
        self._it = iter(feeds)

    def get_next(self):
        return next(self._it, None)

    def rewind(self) -> None:  # pragma: no cover - part of the reader protocol
        pass


def _excluded_nodes(model_path: Path, keep_float: list[str]) -> list[str]:
    """Node names that belong to modules kept in float (hybrid quantization, e.g. GEM's router)."""
    if not keep_float:
        return []
    import onnx

    return _excluded_in(onnx.load(str(model_path), load_external_data=False), keep_float)


def _excluded_in(model, keep_float: list[str]) -> list[str]:
    if not keep_float:
        return []
    keys = [k.replace(".", "/") for k in keep_float] + list(keep_float)
    return [n.name for n in model.graph.node if any(k in n.name for k in keys)]


def _batched_weight_matmuls_in(model) -> list[str]:
    """MatMul nodes whose constant operand has rank > 2 (a folded batched weight). onnxruntime's dynamic int8 kernel
    (DynamicQuantizeMatMul) accepts per-channel zero points only for a 2-D weight and fails at run time on these
    ("b zero point is not valid"), so they stay float."""
    ranks = {i.name: len(i.dims) for i in model.graph.initializer}
    return [n.name for n in model.graph.node
            if n.op_type == "MatMul" and any(ranks.get(x, 0) > 2 for x in n.input)]


def _gemm_to_matmul(model):
    """Rewrite Gemm(A, W, b) with constant W (how Linear exports) as MatMul(A, W') + b, so int4 MatMulNBits applies."""
    import onnx
    from onnx import helper, numpy_helper

    inits = {i.name: i for i in model.graph.initializer}
    nodes = []
    for node in model.graph.node:
        attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        if (node.op_type == "Gemm" and node.input[1] in inits and attrs.get("transA", 0) == 0
                and attrs.get("alpha", 1.0) == 1.0 and attrs.get("beta", 1.0) == 1.0):
            w = numpy_helper.to_array(inits[node.input[1]])
            if attrs.get("transB", 0):
                w = np.ascontiguousarray(w.T)
            wname = node.input[1] + "_matmul"
            model.graph.initializer.append(numpy_helper.from_array(w, wname))
            mm_out = node.output[0] + "_mm" if len(node.input) > 2 and node.input[2] else node.output[0]
            nodes.append(helper.make_node("MatMul", [node.input[0], wname], [mm_out], name=node.name + "_matmul"))
            if mm_out != node.output[0]:
                nodes.append(helper.make_node("Add", [mm_out, node.input[2]], [node.output[0]], name=node.name + "_bias"))
        else:
            nodes.append(node)
    del model.graph.node[:]
    model.graph.node.extend(nodes)
    used = {x for n in model.graph.node for x in n.input} | {o.name for o in model.graph.output}
    for init in [i for i in model.graph.initializer if i.name not in used]:  # the Gemm's own copy, now unread
        model.graph.initializer.remove(init)
    onnx.checker.check_model(model)
    return model


# Which scheme `int8` means for a graph (docs/export.md "Quantization schemes"):
# - Conv-heavy graphs get static QDQ, per channel, calibrated. Dynamic quantization would turn every Conv into
#   ConvInteger + DynamicQuantizeLinear, which onnxruntime's CPU kernels run 5-15x slower than fp32 (never used).
# - Everything else (MatMul/Gemm, LSTM: transformers, MLPs, RNNs) gets dynamic int8 on its weight MatMuls.
# - Either way, float weights left over (embeddings read by Gather, a tied embedding/output matrix, GRU weights,
#   batched weights onnxruntime's int8 kernels refuse) are stored once as int8 and dequantized in the graph.
# Activation/weight types follow the target's CPU: U8S8 (uint8 activations, int8 weights) on x86, where onnxruntime's
# VNNI/AVX2 kernels want it; S8S8 on Arm, onnxruntime's advice there.
ISAS = ("x86", "arm")
WEIGHT_ONLY_MIN_ELEMENTS = 4096  # smaller float tensors (biases, norms) stay float: they cost nothing


def conv_heavy(model) -> bool:
    """True when Conv weights outweigh constant-weight MatMul/Gemm weights (MobileNet, ResNet), so `int8` is static."""
    inits = {i.name: int(np.prod(i.dims)) for i in model.graph.initializer}
    conv = sum(inits.get(n.input[1], 0) for n in model.graph.node if n.op_type in ("Conv", "ConvTranspose"))
    dense = sum(max(inits.get(x, 0) for x in n.input[:2]) for n in model.graph.node if n.op_type in ("MatMul", "Gemm"))
    return conv > 0 and conv >= dense


def int8_scheme(float_path: Path, precision: str) -> str:
    """"static" or "dynamic": what `precision` (int8 | int8-static) becomes for this graph."""
    import onnx

    if precision == "int8-static":
        return "static"
    return "static" if conv_heavy(onnx.load(str(float_path), load_external_data=False)) else "dynamic"


def judged_as(precision: str, details: dict) -> str:
    """The precision whose parity tolerances judge an artifact: `int8` that became a static scheme (activations
    quantized with calibrated ranges: ONNX static QDQ, TFLite full-integer) is judged as int8-static, the error
    budget of that scheme; records the choice in `details`."""
    scheme = str(details.get("scheme", ""))
    if precision == "int8" and ("static" in scheme or "full-integer" in scheme):
        details["parity_tolerance"] = "int8-static (int8 became a static scheme for this graph)"
        return "int8-static"
    return precision


def _activation_matmuls(model) -> list[str]:
    """MatMul nodes with no constant operand (attention scores, a tied output projection read through a Transpose).
    Dynamic int8 would quantize both operands per tensor at run time; they stay float."""
    inits = {i.name for i in model.graph.initializer}
    return [n.name for n in model.graph.node if n.op_type == "MatMul" and not any(x in inits for x in n.input)]


def _weight_only_int8(model, keep: set[str]) -> tuple[int, int]:
    """Store each large float initializer left in `model` (not read by a node in `keep`) once as int8, symmetric, one
    scale per row. A Gather on it (an embedding) reads int8 rows and scales them: Gather -> Cast -> Mul by the
    gathered row scales, so only the looked-up rows are dequantized. Any other reader (a tied output projection, GRU
    weights, a batched MatMul weight) reads DequantizeLinear's float copy under the original name.
    Returns (tensors, of which embeddings)."""
    from onnx import TensorProto, helper, numpy_helper

    readers: dict[str, list] = {}
    for node in model.graph.node:
        for x in node.input:
            readers.setdefault(x, []).append(node)
    kept_inputs = {x for n in model.graph.node if n.name in keep or n.op_type in ("QuantizeLinear", "DequantizeLinear")
                   for x in n.input}  # router weights, and the quantizer's own scales and zero points
    graph_inputs = {i.name for i in model.graph.input}
    removed: list = []
    n_tensors = n_embed = 0
    new_nodes = []
    for init in list(model.graph.initializer):
        if (init.data_type != TensorProto.FLOAT or int(np.prod(init.dims)) < WEIGHT_ONLY_MIN_ELEMENTS
                or init.name in kept_inputs or init.name in graph_inputs or init.name not in readers):
            continue
        w = numpy_helper.to_array(init)
        axis = next((a for a, d in enumerate(w.shape) if d > 1), 0)
        amax = np.abs(w).max(axis=tuple(a for a in range(w.ndim) if a != axis))
        scale = np.where(amax > 0, amax / 127.0, 1.0).astype(np.float32)
        shape = [1] * w.ndim
        shape[axis] = -1
        q = np.clip(np.round(w / scale.reshape(shape)), -127, 127).astype(np.int8)
        name = init.name
        model.graph.initializer.remove(init)
        model.graph.initializer.extend([numpy_helper.from_array(q, f"{name}_int8"),
                                        numpy_helper.from_array(scale, f"{name}_scale")])
        n_tensors += 1
        others = []
        for node in readers[name]:
            axis_attr = next((helper.get_attribute_value(a) for a in node.attribute if a.name == "axis"), 0)
            if node.op_type == "Gather" and node.input[0] == name and w.ndim == 2 and axis_attr == 0:
                rows, row_scale, out = f"{node.name}_int8_rows", f"{name}_scale_rows", node.output[0]
                if not any(i.name == f"{name}_scale_col" for i in model.graph.initializer):
                    model.graph.initializer.append(numpy_helper.from_array(scale.reshape(-1, 1), f"{name}_scale_col"))
                node.input[0] = f"{name}_int8"
                node.output[0] = rows
                new_nodes.append((node, [
                    helper.make_node("Cast", [rows], [rows + "_f"], to=TensorProto.FLOAT, name=rows + "_cast"),
                    helper.make_node("Gather", [f"{name}_scale_col", node.input[1]], [f"{row_scale}_{node.name}"],
                                     axis=0, name=f"{node.name}_scale_gather"),
                    helper.make_node("Mul", [rows + "_f", f"{row_scale}_{node.name}"], [out], name=f"{node.name}_dq"),
                ]))
                n_embed += 1
            elif w.ndim == 2 and axis == 0 and _transposed_matmul(node, readers):
                # a tied output projection: MatMul(A, Transpose(W)) with W = [vocab, d]. One int8 matrix serves
                # both: DynamicQuantizeMatMul(A, Transpose(W_int8)) with W's row scales as per-column scales.
                zero_col = f"{name}_zero_col"
                if not any(i.name == zero_col for i in model.graph.initializer):
                    model.graph.initializer.append(numpy_helper.from_array(np.zeros(scale.shape, np.int8), zero_col))
                t_out = node.output[0]
                new_nodes.append((node, [helper.make_node("Transpose", [f"{name}_int8"], [t_out + "_int8"],
                                                          perm=[1, 0], name=node.name + "_int8")]))
                for mm in readers[t_out]:
                    new_nodes.append((mm, [helper.make_node(
                        "DynamicQuantizeMatMul", [mm.input[0], t_out + "_int8", f"{name}_scale", zero_col],
                        list(mm.output), domain="com.microsoft", name=mm.name + "_int8")]))
                    removed.append(mm)
                removed.append(node)
            else:
                others.append(node)
        if others:
            zero = numpy_helper.from_array(np.zeros(scale.shape, np.int8), f"{name}_zero")
            model.graph.initializer.append(zero)
            dq = helper.make_node("DequantizeLinear", [f"{name}_int8", f"{name}_scale", f"{name}_zero"], [name],
                                  axis=axis, name=f"{name}_dequantize")
            new_nodes.append((None, [dq]))
    if any(n.domain == "com.microsoft" for _, group in new_nodes for n in group) \
            and not any(o.domain == "com.microsoft" for o in model.opset_import):
        model.opset_import.append(helper.make_opsetid("com.microsoft", 1))
    if new_nodes:  # insert each group after its node (or, for dequantization, at the top) to keep the graph sorted
        nodes = list(model.graph.node)
        head = [n for anchor, group in new_nodes if anchor is None for n in group]
        after: dict[int, list] = {}
        for anchor, group in new_nodes:
            if anchor is not None:
                after.setdefault(id(anchor), []).extend(group)
        gone = {id(n) for n in removed}
        ordered = head + [x for n in nodes for x in ([n] + after.get(id(n), [])) if id(x) not in gone]
        del model.graph.node[:]
        model.graph.node.extend(ordered)
    return n_tensors, n_embed


def _transposed_matmul(node, readers: dict[str, list]) -> bool:
    """`node` is Transpose(perm=[1, 0]) read only as the weight (second input) of 2-D-weight MatMuls."""
    from onnx import helper

    perm = next((list(helper.get_attribute_value(a)) for a in node.attribute if a.name == "perm"), None)
    users = readers.get(node.output[0], [])
    return (node.op_type == "Transpose" and perm == [1, 0] and bool(users)
            and all(u.op_type == "MatMul" and u.input[1] == node.output[0] and u.input[0] != u.input[1] for u in users))


def _tied_nodes(model) -> list[str]:
    """Transpose/MatMul nodes that read an embedding matrix also read by a Gather (tied input/output weights). Static
    quantization leaves them to the weight-only pass, which stores the matrix once."""
    readers: dict[str, list] = {}
    for node in model.graph.node:
        for x in node.input:
            readers.setdefault(x, []).append(node)
    names = []
    for init in model.graph.initializer:
        users = readers.get(init.name, [])
        if len(init.dims) == 2 and any(u.op_type == "Gather" for u in users):
            for u in users:
                if _transposed_matmul(u, readers):
                    names += [u.name] + [m.name for m in readers[u.output[0]]]
    return names


def _rnn_note(model) -> str:
    ops = {n.op_type for n in model.graph.node}
    notes = []
    if "LSTM" in ops:
        notes.append("LSTM: int8 weights and matmuls (DynamicQuantizeLSTM)")
    if ops & {"GRU", "RNN"}:
        notes.append(f"{'/'.join(sorted(ops & {'GRU', 'RNN'}))}: weights stored int8, computed in float "
                     "(onnxruntime has no int8 kernel for it)")
    return "; ".join(notes)


def _finish(path: Path, keep: set[str], details: dict[str, str]) -> dict[str, str]:
    """Weight-only int8 for what the quantizer left float, check and save."""
    import onnx

    model = onnx.load(str(path))
    n, n_embed = _weight_only_int8(model, keep)
    if n:
        onnx.checker.check_model(model)
        onnx.save(model, str(path))
    details["weight_only_int8"] = f"{n} tensors ({n_embed} embedding lookups)"
    note = _rnn_note(model)
    if note:
        details["rnn"] = note
    return details


def quantize_onnx(
    float_path: Path,
    path: Path,
    precision: str,
    calibration: list[dict[str, np.ndarray]] | None = None,
    keep_float: list[str] | None = None,
    isa: str = "x86",
) -> dict[str, str]:
    """Write a quantized copy of `float_path` into `path`. `isa` ("x86" | "arm") picks int8 activation types.
    Returns details for the manifest."""
    logging.getLogger("onnxruntime").setLevel(logging.ERROR)
    exclude = _excluded_nodes(float_path, keep_float or [])
    if precision == "fp16":
        import onnx
        from onnxruntime.transformers.float16 import convert_float_to_float16

        model = convert_float_to_float16(onnx.load(str(float_path)), keep_io_types=True, node_block_list=exclude)
        onnx.save(model, str(path))
        return {"scheme": "fp16 weights and compute, fp32 inputs/outputs", "kept_float_nodes": str(len(exclude))}
    if precision in ("int8", "int8-static") and int8_scheme(float_path, precision) == "dynamic":
        import onnx
        from onnxruntime.quantization import QuantType, quantize_dynamic

        model = _gemm_to_matmul(onnx.load(str(float_path)))
        exclude = _excluded_in(model, keep_float or [])
        batched = _batched_weight_matmuls_in(model)
        pre = path.with_suffix(".mm.onnx")
        onnx.save(model, str(pre))
        try:
            quantize_dynamic(str(pre), str(path), op_types_to_quantize=["MatMul", "LSTM"],
                             weight_type=QuantType.QInt8, per_channel=True,
                             nodes_to_exclude=exclude + batched + _activation_matmuls(model))
        finally:
            pre.unlink(missing_ok=True)
        return _finish(path, set(exclude), {
            "scheme": "dynamic int8 on MatMul/Gemm/LSTM weights (activations quantized at run time); "
                      "convolutions and other ops float",
            "kept_float_nodes": str(len(exclude)), "float_batched_matmuls": str(len(batched))})
    if precision in ("int8", "int8-static"):
        from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
        from onnxruntime.quantization.registry import QDQRegistry
        from onnxruntime.quantization.shape_inference import quant_pre_process

        if not calibration:
            raise ValueError("static int8 needs calibration inputs")
        if isa not in ISAS:
            raise ValueError(f"unknown instruction set {isa!r} (use {', '.join(ISAS)})")
        act = QuantType.QUInt8 if isa == "x86" else QuantType.QInt8
        import onnx

        tied = _tied_nodes(onnx.load(str(float_path), load_external_data=False))
        pre = path.with_suffix(".pre.onnx")
        try:  # onnxruntime's graph optimisation would fold a tied matrix's Transpose into a second copy
            quant_pre_process(str(float_path), str(pre), skip_symbolic_shape=True, skip_optimization=bool(tied))
            src = pre
        except Exception:
            src = float_path
        root = logging.getLogger()
        level = root.level
        root.setLevel(logging.ERROR)  # per-channel notices on LayerNorm weights, the pre-processing advice
        try:
            quantize_static(str(src), str(path), _Calibration(calibration), quant_format=QuantFormat.QDQ,
                            op_types_to_quantize=[op for op in QDQRegistry if op != "Gather"],
                            activation_type=act, weight_type=QuantType.QInt8, per_channel=True,
                            calibrate_method=CalibrationMethod.MinMax, nodes_to_exclude=exclude + tied)
        finally:
            root.setLevel(level)
            pre.unlink(missing_ok=True)
        types = "U8S8: uint8 activations, int8 weights (x86)" if isa == "x86" else \
            "S8S8: int8 activations and weights (Arm)"
        return _finish(path, set(exclude), {
            "scheme": f"static int8 QDQ per channel, {types}, MinMax over {len(calibration)} calibration inputs",
            "kept_float_nodes": str(len(exclude)), "calibration_inputs": str(len(calibration))})
    if precision == "int4":
        import onnx
        from onnxruntime.quantization.matmul_nbits_quantizer import MatMulNBitsQuantizer

        model = _gemm_to_matmul(onnx.load(str(float_path)))
        q = MatMulNBitsQuantizer(model, block_size=32, is_symmetric=True,
                                 nodes_to_exclude=exclude)
        q.process()
        n_blocks = sum(1 for n in q.model.model.graph.node if n.op_type == "MatMulNBits")
        if n_blocks == 0:
            raise ValueError("int4 weight-only found no MatMul with constant weights to quantize in this graph")
        q.model.save_model_to_file(str(path))
        return {"scheme": "int4 weight-only MatMulNBits, block 32", "kept_float_nodes": str(len(exclude))}
    raise ValueError(f"ONNX precision {precision!r} is not supported")
