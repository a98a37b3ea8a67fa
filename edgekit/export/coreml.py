"""PyTorch -> CoreML ML Program (.mlpackage) through torch.export and coremltools.

Conversion runs anywhere; prediction runs only on macOS. On Linux the package is validated by reading its spec.
"""

from __future__ import annotations

import logging
import os
import re
import warnings
from pathlib import Path

import torch

from edgekit.errors import EdgekitError
from edgekit.modelsource import LoadedModel
from edgekit.specs import TensorSpec

_NP = {"float32": "float32", "float16": "float16", "int64": "int32", "int32": "int32", "bool": "bool"}


DECOMPOSITIONS = ("none", "default")


def coreml_program(module: torch.nn.Module, args: tuple[torch.Tensor, ...],
                   decompositions: str = "default") -> torch.export.ExportedProgram:
    """torch.export, then a decomposition table: "none" (`run_decompositions({})`, coremltools' own lowering of
    each ATen op — what GEM's static router needs: the default table turns its `zeros_like(...).scatter` into an
    int32 fill that coremltools rejects) or "default" (core ATen — what LSTM, GRU and BERT-like models need: the
    empty table keeps aten.lstm / aten.gru / aten.new_ones, which coremltools rejects). export_coreml tries them in
    DECOMPOSITIONS order and keeps the first that converts."""
    program = torch.export.export(module, args)
    return program.run_decompositions({}) if decompositions == "none" else program.run_decompositions()


def _provenance(program: torch.export.ExportedProgram, message: str) -> str:
    """For coremltools' "Unsupported fx node NAME": the operator the user's code called before decomposition and
    where, e.g. " (decomposed from aten.fft_rfft2 at model.py:13)", so the message names what the user wrote."""
    m = re.search(r"Unsupported fx node (\S+?),", message)
    node = next((n for n in program.graph.nodes if m and n.name == m[1]), None)
    if node is None:
        return ""
    origin = next((str(f.target) for f in node.meta.get("from_node") or [] if str(f.target) != str(node.target)),
                  None)
    frames = re.findall(r'File "([^"]+)", line (\d+)', node.meta.get("stack_trace") or "")
    where = f" at {Path(frames[-1][0]).name}:{frames[-1][1]}" if frames else ""
    if origin is None:
        return f" ({where.strip()})" if where else ""
    return f" (decomposed from {origin.removesuffix('.default')}{where})"


def export_coreml(loaded: LoadedModel, path: Path, precision: str = "fp32") -> dict[str, str]:
    """Write an .mlpackage. fp32/fp16 set compute precision; int8 quantizes weights (linear, symmetric, per channel)."""
    os.environ.setdefault("TQDM_DISABLE", "1")  # coremltools draws progress bars on stderr
    import coremltools as ct
    import numpy as np

    logging.getLogger("coremltools").setLevel(logging.ERROR)
    args = loaded.example_tensors()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        inputs = [
            ct.TensorType(name=s.name, shape=s.shape, dtype=getattr(np, _NP[s.dtype])) for s in loaded.inputs
        ]
        compute = ct.precision.FLOAT16 if precision == "fp16" else ct.precision.FLOAT32
        for attempt, table in enumerate(DECOMPOSITIONS):
            program = coreml_program(loaded.module, args, table)
            try:
                mlmodel = ct.convert(
                    program,
                    convert_to="mlprogram",
                    inputs=inputs,
                    outputs=[ct.TensorType(name=n) for n in loaded.outputs],
                    compute_precision=compute,
                    minimum_deployment_target=ct.target.iOS16,
                )
                break
            except (NotImplementedError, ValueError, TypeError, RuntimeError) as exc:
                if attempt + 1 < len(DECOMPOSITIONS):
                    continue  # the next decomposition table may convert (see coreml_program)
                if isinstance(exc, NotImplementedError):
                    raise NotImplementedError(f"{exc}{_provenance(program, str(exc))}") from exc
                raise
        details = {"compute_precision": "fp16" if precision == "fp16" else "fp32", "decompositions": table}
        if precision in ("int8", "int4"):
            from coremltools.optimize import coreml as cto

            dtype = "int8" if precision == "int8" else "int4"
            op_cfg = cto.OpLinearQuantizerConfig(mode="linear_symmetric", dtype=dtype,
                                                 granularity="per_channel" if dtype == "int8" else "per_block",
                                                 **({"block_size": 32} if dtype == "int4" else {}))
            mlmodel = cto.linear_quantize_weights(mlmodel, cto.OptimizationConfig(global_config=op_cfg))
            details["weights"] = f"{dtype} linear symmetric"
        elif precision not in ("fp32", "fp16"):
            raise EdgekitError(f"CoreML precision {precision!r} is not supported", "use fp32, fp16, int8 or int4")
    mlmodel.save(str(path))
    return details


def validate_coreml(path: Path, inputs: list[TensorSpec], outputs: list[str]) -> tuple[str, str]:
    """Read the saved package's spec without loading it for execution; check inputs and outputs.

    Returns (spec_version, note). Raises EdgekitError if the package does not match the signature.
    """
    import coremltools as ct

    spec = ct.models.MLModel(str(path), skip_model_load=True).get_spec()
    got_in = {i.name: tuple(i.type.multiArrayType.shape) for i in spec.description.input}
    got_out = [o.name for o in spec.description.output]
    for s in inputs:
        if s.name not in got_in:
            raise EdgekitError(f"CoreML package {path} lacks input {s.name!r} (has {list(got_in)})", "export it again")
        if got_in[s.name] != tuple(s.shape):
            raise EdgekitError(
                f"CoreML input {s.name!r} has shape {got_in[s.name]}, expected {s.shape}", "export it again"
            )
    if len(got_out) != len(outputs):
        raise EdgekitError(f"CoreML package {path} has outputs {got_out}, expected {outputs}", "export it again")
    note = (
        f"converted and validated (spec v{spec.specificationVersion}, inputs {list(got_in)}, outputs {got_out}) "
        "but not executed: CoreML executes only on macOS"
    )
    return str(spec.specificationVersion), note
