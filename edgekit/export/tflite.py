"""PyTorch -> TFLite through litert-torch (no TensorFlow); quantized variants through ai-edge-quantizer."""

from __future__ import annotations

import re
import warnings
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


def scope_regex(module_name: str) -> str:
    """A regex for the TFLite tensor scopes of PyTorch module `module_name` (e.g. `blocks.0.ffn.router`).

    litert-torch names a tensor after the modules that produced it, one `<class path>_<attribute>` per called module:
    `...GEM/edgekit.zoo.gem.GEMBlock_0/edgekit.zoo.gem.SCAR_ffn/edgekit.zoo.gem.SCARRouter_router;`. A container
    indexed by number (ModuleList `blocks`) is never called, so it may be absent from the scope."""
    parts = module_name.split(".")
    pattern = ""
    for i, part in enumerate(parts):
        seg = rf"[^/;]*_{re.escape(part)}"
        if i + 1 == len(parts):
            pattern += seg + r"(?:[/;]|$)"
        elif parts[i + 1].isdigit():
            pattern += rf"(?:{seg}/)?"
        else:
            pattern += seg + "/"
    return r"(?:^|[/;])" + pattern


def _side_subgraph_tensors(float_path: Path) -> list[str]:
    """Tensor names of the subgraphs no signature runs: the bodies of STABLEHLO_SCATTER (the update computation) and
    similar region ops. Calibration never executes them, so nothing there can be quantized with calibrated ranges
    (ai-edge-quantizer fails with "not found in tensor_name_to_qsv"); they stay float, as the ops calling them do."""
    from ai_edge_quantizer.utils import tfl_flatbuffer_utils

    model = tfl_flatbuffer_utils.read_model(str(float_path))
    entry = {s.subgraphIndex for s in model.signatureDefs or []} or {0}
    return [tfl_flatbuffer_utils.get_tensor_name(t) for i, sg in enumerate(model.subgraphs) if i not in entry
            for t in sg.tensors]


# ai-edge-quantizer's min/max calibration ignores values beyond +-3e38 (its `valid_range`, meant for -inf paddings).
UNREPRESENTABLE = 3e38


def _unrepresentable_ops(float_path: Path, feeds: list[dict[str, np.ndarray]], sig: str) -> list[str]:
    """Scopes of the ops that produce or read a tensor holding +-inf (or a value near float32's limit) on the
    calibration inputs: an attention mask (`masked_fill(-inf)`, SDPA's causal mask) and the masked scores until the
    softmax. The calibrator skips those values, so the int8 tensor's range is [0, 0], the mask quantizes to all zeros
    and the model attends to future tokens (a tied-weights LM fell to cosine 0.91). These ops stay float."""
    from ai_edge_quantizer.utils import tfl_flatbuffer_utils, tfl_interpreter_utils

    with warnings.catch_warnings():  # "preserve_all_tensors is for debugging": it is what this check needs
        warnings.simplefilter("ignore")
        interp = tfl_interpreter_utils.create_tfl_interpreter(str(float_path), num_threads=1)
    flagged: set[str] = set()
    for feed in feeds[:2]:
        tfl_interpreter_utils.invoke_interpreter_signature(interp, feed, sig)
        for detail in interp.get_tensor_details():
            if not detail["name"] or detail["name"] in flagged or not np.issubdtype(detail["dtype"], np.floating):
                continue
            try:
                data = interp.get_tensor(detail["index"])
            except ValueError:  # a tensor the interpreter freed or never filled
                continue
            if data.size and np.nanmax(np.abs(data)) >= UNREPRESENTABLE:
                flagged.add(detail["name"])
    if not flagged:
        return []
    model = tfl_flatbuffer_utils.read_model(str(float_path))
    graph = model.subgraphs[next(iter({s.subgraphIndex for s in model.signatureDefs or []}), 0)]
    scopes = []
    for op in graph.operators:
        names = {tfl_flatbuffer_utils.get_tensor_name(graph.tensors[i]) for i in list(op.inputs) + list(op.outputs)
                 if i >= 0}
        if names & flagged:
            scopes.append(tfl_flatbuffer_utils.get_op_scope(op, graph.tensors))
    return scopes


def _recipe(precision: str, keep_float: list[str], side_tensors: list[str] | None = None,
            float_ops: list[str] | None = None):
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
    elif precision == "int8-static":  # full integer: every op XNNPACK has an int8 kernel for (conv nets)
        rm.add_static_config(regex=".*", operation_name=ops.ALL_SUPPORTED, activation_num_bits=8, weight_num_bits=8)
        rm.add_dynamic_config(regex=".*", operation_name=ops.EMBEDDING_LOOKUP, num_bits=8)  # int8 tables too
    elif precision == "int8-static-fc":
        # MatMul-heavy graphs (transformers): static int8 only on FULLY_CONNECTED, the op XNNPACK runs fast in int8.
        # Full integer ran BERT-tiny at 0.30x fp32 here: int8 BATCH_MATMUL, the LayerNorm decomposition (MEAN,
        # SQUARED_DIFFERENCE, RSQRT), SOFTMAX and GELU fall back to the interpreter's slower int8 kernels, and
        # LayerNorm in int8 costs accuracy (cosine 0.975). FC-only static: 2.0x fp32, cosine 0.995.
        for op in (ops.FULLY_CONNECTED, ops.CONV_2D):
            rm.add_static_config(regex=".*", operation_name=op, activation_num_bits=8, weight_num_bits=8)
        rm.add_dynamic_config(regex=".*", operation_name=ops.EMBEDDING_LOOKUP, num_bits=8)
    else:
        raise ValueError(f"TFLite precision {precision!r} is not supported")
    float_scopes = [scope_regex(name) for name in keep_float]  # hybrid quantization: router and the like stay float
    if side_tensors:
        float_scopes.append("^(?:" + "|".join(re.escape(t) for t in side_tensors) + ");")
    float_scopes += ["^" + re.escape(scope) + "$" for scope in float_ops or []]
    for regex in float_scopes:
        rm.add_quantization_config(
            regex=regex,
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


def _calibrate(float_path: Path, recipe: list, data: dict[str, list[dict[str, np.ndarray]]]) -> dict:
    """Min/max of every tensor over all calibration inputs. `Quantizer.calibrate` keeps a moving average (weight 0.95
    on what it had), so with a handful of inputs the ranges are the first input's: later inputs' larger values were
    clipped (BERT-tiny's logits to 0.08 of 0.4, cosine 0.75). onnxruntime's MinMax takes the true min/max too."""
    from ai_edge_quantizer import calibrator, recipe_manager
    from ai_edge_quantizer.utils import qsv_utils

    manager = recipe_manager.RecipeManager()
    manager.load_quantization_recipe(recipe)
    with warnings.catch_warnings():  # "preserve_all_tensors is for debugging": calibration reads every tensor
        warnings.simplefilter("ignore")
        calib = calibrator.Calibrator(str(float_path), num_threads=2, qsv_update_func=qsv_utils.min_max_update)
        calib.calibrate(data, manager)
    return calib.get_model_qsvs()


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
    elif precision == "int8-static" and not conv_heavy_tflite(float_path):
        recipe = "int8-static-fc"  # full integer is slower than fp32 on MatMul-heavy graphs (see _recipe)
    side = _side_subgraph_tensors(float_path) if recipe.startswith("int8-static") else []
    q = quantizer.Quantizer(str(float_path), _recipe(recipe, keep_float or [], side))
    float_ops: list[str] = []
    with captured_output():
        calib = None
        if q.need_calibration:
            if not calibration:
                raise ValueError("full-integer int8 needs calibration inputs")
            sig, feeds = _signature_feeds(float_path, calibration)
            if recipe == "int8-static":  # full integer: masks would be int8 (FC-only static leaves them float)
                float_ops = _unrepresentable_ops(float_path, feeds, sig)
            if float_ops:
                q = quantizer.Quantizer(str(float_path), _recipe(recipe, keep_float or [], side, float_ops))
            calib = _calibrate(float_path, q.get_quantization_recipe(), {sig: feeds})
        try:
            result = q.quantize(calib)
        except ValueError as exc:
            found = re.search(r"quantization parameters for tensor: (\S+?)\.", str(exc))
            if not found:
                raise
            raise ValueError(f"tflite static int8: no calibrated range for tensor {found.group(1)} (an op the "
                             "calibration inputs never reach): refused — use int8 (dynamic-range) for this model, "
                             "or keep that op's module float") from None
        result.export_model(str(path), overwrite=True)
    details = {"quantizer": "ai-edge-quantizer", "scheme": {
        "fp16": "fp16 weights", "int8": "dynamic-range int8 (FC/conv weights, embedding tables)",
        "int4": "dynamic-range int4 (FC/conv)",
        "int8-static": "full-integer static int8 (weights per channel, activations calibrated; int8 inputs/outputs)",
        "int8-static-fc": "static int8 on FULLY_CONNECTED (weights per channel, activations calibrated); attention, "
                          "norms, softmax and GELU float: full integer is slower than fp32 on MatMul-heavy graphs",
    }[recipe]}
    if recipe.startswith("int8-static"):
        details["calibration_inputs"] = str(len(calibration or []))
        if float_ops:
            details["float_ops"] = (f"{len(float_ops)} ops kept float: they read or write +-inf (an attention mask), "
                                    "which int8 cannot hold")
        if side:
            details["float_subgraphs"] = "scatter/region bodies kept float (calibration never runs them)"
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
