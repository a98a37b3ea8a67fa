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
        # int8 also stores embedding tables (EMBEDDING_LOOKUP) in int8: a table shared with the output projection
        # (tied weights) stays one tensor.
        bits = 8 if precision == "int8" else 4
        for op in (ops.FULLY_CONNECTED, ops.CONV_2D) + ((ops.EMBEDDING_LOOKUP,) if bits == 8 else ()):
            rm.add_dynamic_config(regex=".*", operation_name=op, num_bits=bits)
    elif precision == "int8-static":
        rm.add_static_config(regex=".*", operation_name=ops.ALL_SUPPORTED, activation_num_bits=8, weight_num_bits=8)
        rm.add_dynamic_config(regex=".*", operation_name=ops.EMBEDDING_LOOKUP, num_bits=8)  # int8 tables too
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


STATIC_MIN_COSINE = 0.5  # below this a full-integer model's outputs are unrelated to the float model's: refused


def conv_heavy_tflite(path: Path) -> bool:
    """True when convolution weights outweigh FULLY_CONNECTED weights (MobileNet, ResNet): `int8` is then full-integer
    static, which XNNPACK runs faster than fp32; dynamic-range int8 on convolutions barely beats it (0.92x here)."""
    from ai_edge_litert.interpreter import Interpreter

    interp = Interpreter(model_path=str(path))
    shapes = {t["index"]: int(np.prod(t["shape"])) for t in interp.get_tensor_details()}
    weight = {"CONV_2D": 0, "DEPTHWISE_CONV_2D": 0, "FULLY_CONNECTED": 0}
    for op in interp._get_ops_details():  # noqa: SLF001 - the interpreter's only op listing
        if op["op_name"] in weight and len(op["inputs"]) > 1 and op["inputs"][1] >= 0:
            weight[op["op_name"]] += shapes.get(op["inputs"][1], 0)
    conv = weight["CONV_2D"] + weight["DEPTHWISE_CONV_2D"]
    return conv > 0 and conv >= weight["FULLY_CONNECTED"]


def _signature_feeds(float_path: Path, calibration: list[dict[str, np.ndarray]]) -> tuple[str, list[dict]]:
    from ai_edge_litert.interpreter import Interpreter

    interp = Interpreter(model_path=str(float_path))
    sig = next(iter(interp.get_signature_list()))
    names = interp.get_signature_list()[sig]["inputs"]
    details = interp.get_signature_runner(sig).get_input_details()
    # by name when the feeds carry the signature's names, else in order; in the signature's dtypes (int64 token ids
    # become the int32 litert-torch declares)
    feeds = [{n: f[n] for n in names} if all(n in f for n in names) else dict(zip(names, f.values(), strict=True))
             for f in calibration]
    return sig, [{n: np.asarray(v).astype(details[n]["dtype"], copy=False) for n, v in f.items()} for f in feeds]


def _static_cosine(float_path: Path, path: Path, calibration: list[dict[str, np.ndarray]]) -> float:
    """Worst cosine between the full-integer model and the float one on the calibration inputs."""
    from edgekit.runtime.litert import LiteRTRuntime

    runtime = LiteRTRuntime()
    ref, quant = runtime.load(float_path), runtime.load(path)
    worst = 1.0
    for feed in calibration[:8]:
        a = np.concatenate([np.ravel(x).astype(np.float64) for x in ref.run(feed)])
        b = np.concatenate([np.ravel(x).astype(np.float64) for x in quant.run(feed)])
        denom = np.linalg.norm(a) * np.linalg.norm(b)
        worst = min(worst, float(a @ b / denom) if denom > 0 else (1.0 if np.allclose(a, b) else 0.0))
    return worst


def quantize_tflite(
    float_path: Path,
    path: Path,
    precision: str,
    calibration: list[dict[str, np.ndarray]] | None = None,
    keep_float: list[str] | None = None,
) -> dict[str, str]:
    """Quantize a float .tflite into `path`. int8-static (and int8 of a conv-heavy graph) needs calibration feeds.
    A full-integer model whose outputs do not follow the float model's is refused with one line."""
    from ai_edge_quantizer import quantizer

    recipe = precision
    if precision == "int8" and calibration and conv_heavy_tflite(float_path):
        recipe = "int8-static"
    q = quantizer.Quantizer(str(float_path), _recipe(recipe, keep_float or []))
    with captured_output():
        calib = None
        if q.need_calibration:
            if not calibration:
                raise ValueError("full-integer int8 needs calibration inputs")
            sig, feeds = _signature_feeds(float_path, calibration)
            calib = q.calibrate({sig: feeds})
        result = q.quantize(calib)
        result.export_model(str(path), overwrite=True)
    details = {"quantizer": "ai-edge-quantizer", "scheme": {
        "fp16": "fp16 weights", "int8": "dynamic-range int8 (FC/conv weights, embedding tables)",
        "int4": "dynamic-range int4 (FC/conv)",
        "int8-static": "full-integer static int8 (weights per channel, activations calibrated; int8 inputs/outputs)",
    }[recipe]}
    if recipe == "int8-static":
        details["calibration_inputs"] = str(len(calibration or []))
        cosine = _static_cosine(float_path, path, calibration or [])
        details["float_cosine"] = f"{cosine:.4f}"
        if cosine < STATIC_MIN_COSINE:
            raise ValueError(f"tflite full-integer int8 output does not follow the float model (cosine {cosine:.3f} "
                             "on the calibration inputs): refused — use int8 dynamic-range, or calibrate with real "
                             "data (--calibration)")
    return details


def tflite_schema_version(path: Path) -> str:
    data = path.read_bytes()[4:8]
    return "tflite:" + data.decode("ascii", "replace")  # file identifier, "TFL3"
