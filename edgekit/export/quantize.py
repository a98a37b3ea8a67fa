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

    model = onnx.load(str(model_path), load_external_data=False)
    keys = [k.replace(".", "/") for k in keep_float] + list(keep_float)
    return [n.name for n in model.graph.node if any(k in n.name for k in keys)]


def _batched_weight_matmuls(model_path: Path) -> list[str]:
    """MatMul nodes whose constant operand has rank > 2 (a folded batched weight). onnxruntime's dynamic int8 kernel
    (DynamicQuantizeMatMul) accepts per-channel zero points only for a 2-D weight and fails at run time on these
    ("b zero point is not valid"), so they stay float."""
    import onnx

    model = onnx.load(str(model_path), load_external_data=False)
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
    onnx.checker.check_model(model)
    return model


def quantize_onnx(
    float_path: Path,
    path: Path,
    precision: str,
    calibration: list[dict[str, np.ndarray]] | None = None,
    keep_float: list[str] | None = None,
) -> dict[str, str]:
    """Write a quantized copy of `float_path` into `path`. Returns details for the manifest."""
    logging.getLogger("onnxruntime").setLevel(logging.ERROR)
    exclude = _excluded_nodes(float_path, keep_float or [])
    if precision == "fp16":
        import onnx
        from onnxruntime.transformers.float16 import convert_float_to_float16

        model = convert_float_to_float16(onnx.load(str(float_path)), keep_io_types=True, node_block_list=exclude)
        onnx.save(model, str(path))
        return {"scheme": "fp16 weights and compute, fp32 inputs/outputs", "kept_float_nodes": str(len(exclude))}
    if precision == "int8":
        from onnxruntime.quantization import QuantType, quantize_dynamic

        batched = _batched_weight_matmuls(float_path)
        quantize_dynamic(str(float_path), str(path), weight_type=QuantType.QInt8, per_channel=True,
                         nodes_to_exclude=exclude + batched)
        return {"scheme": "dynamic int8 (weights static, activations at run time)", "kept_float_nodes": str(len(exclude)),
                "float_batched_matmuls": str(len(batched))}
    if precision == "int8-static":
        from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
        from onnxruntime.quantization.shape_inference import quant_pre_process

        if not calibration:
            raise ValueError("static int8 needs calibration inputs")
        pre = path.with_suffix(".pre.onnx")
        try:
            quant_pre_process(str(float_path), str(pre), skip_symbolic_shape=True)
            src = pre
        except Exception:
            src = float_path
        quantize_static(str(src), str(path), _Calibration(calibration), quant_format=QuantFormat.QDQ,
                        activation_type=QuantType.QInt8, weight_type=QuantType.QInt8, per_channel=True,
                        calibrate_method=CalibrationMethod.MinMax, nodes_to_exclude=exclude)
        pre.unlink(missing_ok=True)
        return {"scheme": f"static int8 QDQ, MinMax over {len(calibration)} calibration inputs",
                "kept_float_nodes": str(len(exclude))}
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
