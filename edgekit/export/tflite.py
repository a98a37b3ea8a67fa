"""PyTorch -> TFLite through litert-torch (no TensorFlow); quantized variants through ai-edge-quantizer."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from edgekit.export.capture import captured_output
from edgekit.modelsource import LoadedModel


def export_tflite(loaded: LoadedModel, path: Path) -> dict[str, str]:
    """Write a float32 .tflite whose signature inputs carry the model's input names."""
    import litert_torch

    args = loaded.example_tensors()
    kwargs = {spec.name: t for spec, t in zip(loaded.inputs, args, strict=True)}
    with captured_output():
        try:
            edge = litert_torch.convert(loaded.module, (), sample_kwargs=kwargs)
        except TypeError:
            edge = litert_torch.convert(loaded.module, args)  # forward() takes no keyword names
        edge.export(str(path))
    return {"converter": "litert-torch"}


def _recipe(precision: str, keep_float: list[str]):
    from ai_edge_quantizer import qtyping, recipe_manager

    ops = qtyping.TFLOperationName
    rm = recipe_manager.RecipeManager()
    if precision == "fp16":
        rm.add_quantization_config(
            regex=".*",
            operation_name=ops.ALL_SUPPORTED,
            op_config=qtyping.OpQuantizationConfig(
                weight_tensor_config=qtyping.TensorQuantizationConfig(num_bits=16, dtype=qtyping.TensorDataType.FLOAT),
                compute_precision=qtyping.ComputePrecision.FLOAT,
                explicit_dequantize=True,
            ),
            algorithm_key="float_casting",
        )
    elif precision in ("int8", "int4"):
        # Dynamic-range quantization only where the interpreter has hybrid kernels (FULLY_CONNECTED, CONV_2D):
        # applying it to BATCH_MATMUL makes a model that fails to prepare (see DESIGN.md "Known facts").
        bits = 8 if precision == "int8" else 4
        for op in (ops.FULLY_CONNECTED, ops.CONV_2D):
            rm.add_dynamic_config(regex=".*", operation_name=op, num_bits=bits)
    elif precision == "int8-static":
        rm.add_static_config(regex=".*", operation_name=ops.ALL_SUPPORTED, activation_num_bits=8, weight_num_bits=8)
    else:
        raise ValueError(f"TFLite precision {precision!r} is not supported")
    for name in keep_float:  # hybrid quantization: router and the like stay float
        rm.add_quantization_config(
            regex=f".*{name.replace('.', '[._/]')}.*",
            operation_name=ops.ALL_SUPPORTED,
            op_config=qtyping.OpQuantizationConfig(),
            algorithm_key="no_quantize",
        )
    return rm.get_quantization_recipe()


def quantize_tflite(
    float_path: Path,
    path: Path,
    precision: str,
    calibration: list[dict[str, np.ndarray]] | None = None,
    keep_float: list[str] | None = None,
) -> dict[str, str]:
    """Quantize a float .tflite into `path`. int8-static needs calibration feeds (signature input names)."""
    from ai_edge_quantizer import quantizer

    q = quantizer.Quantizer(str(float_path), _recipe(precision, keep_float or []))
    with captured_output():
        calib = None
        if q.need_calibration:
            from ai_edge_litert.interpreter import Interpreter

            interp = Interpreter(model_path=str(float_path))
            sig = next(iter(interp.get_signature_list()))
            names = interp.get_signature_list()[sig]["inputs"]
            feeds = [dict(zip(names, f.values(), strict=True)) for f in (calibration or [])]
            calib = q.calibrate({sig: feeds})
        result = q.quantize(calib)
        result.export_model(str(path), overwrite=True)
    return {"quantizer": "ai-edge-quantizer", "scheme": {"fp16": "fp16 weights", "int8": "dynamic-range int8 (FC/conv)",
                                                          "int4": "dynamic-range int4 (FC/conv)",
                                                          "int8-static": "static int8 weights+activations"}[precision]}


def tflite_schema_version(path: Path) -> str:
    data = path.read_bytes()[4:8]
    return "tflite:" + data.decode("ascii", "replace")  # file identifier, "TFL3"
