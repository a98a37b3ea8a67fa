"""What to benchmark: artifact formats from file suffixes, input signatures read from the file itself (pure-Python
parsers, so a corrupt file raises an error instead of crashing the process), and checks of given input shapes
against the model's declared ones."""

from __future__ import annotations

import mmap
from dataclasses import replace
from pathlib import Path
from typing import Any

from edgekit.errors import EdgekitError
from edgekit.formats import all_formats, format_for_suffix, format_names
from edgekit.specs import DTYPES, TensorSpec, check_input_memory

# What `pip install` needs for each runtime: the extra of its format (edgekit.formats.install_fix) or the package.
RUNTIME_PACKAGES = {"onnxruntime": "onnxruntime", "litert": "'edgekit[tflite]'", "torch": "torch",
                    "coreml": "'edgekit[coreml]'", "executorch": "'edgekit[executorch]' (make setup-executorch)"}

_ONNX_DTYPES = {1: "float32", 10: "float16", 6: "int32", 7: "int64", 9: "bool"}
# int8/uint8 inputs of fully-integer models are fed as float32: the LiteRT adapter quantizes them with the input's
# scale and zero point on every run, as an application would.
_TFLITE_DTYPES = {0: "float32", 1: "float16", 2: "int32", 4: "int64", 6: "bool", 9: "float32", 3: "float32"}


def check_format(fmt: str) -> str:
    if fmt not in format_names():
        raise EdgekitError(f"unknown artifact format {fmt!r}", f"use one of {', '.join(format_names())}")
    return fmt


def format_for_path(path: Path, fmt: str | None = None) -> str:
    """The artifact format of a file from its suffix (.onnx, .tflite, .pt2, .mlpackage); `fmt` overrides an unknown
    suffix but must agree with a known one."""
    known_fmt = format_for_suffix(path)
    from_suffix = known_fmt.name if known_fmt is not None else None
    if fmt is not None:
        check_format(fmt)
        if from_suffix is not None and from_suffix != fmt:
            raise EdgekitError(f"{path.name} is a {from_suffix} artifact but --format {fmt} was given",
                               f"drop --format or pass --format {from_suffix}")
        return fmt
    if from_suffix is None:
        known = ", ".join(f"{s} ({f.name})" for f in all_formats().values() for s in f.suffixes)
        raise EdgekitError(f"cannot tell the format of {path.name} from its suffix {path.suffix or '(none)'!r}",
                           f"use a known suffix — {known} — or pass --format")
    return from_suffix


def _dims(dims: list[int | str], name: str) -> tuple[tuple[int, ...], dict[int, str]]:
    shape, dynamic = [], {}
    for i, d in enumerate(dims):
        if isinstance(d, int) and d > 0:
            shape.append(d)
        else:  # symbolic or unknown dimension: benchmark it at 1 and record that it was dynamic
            shape.append(1)
            dynamic[i] = str(d) if isinstance(d, str) and d else f"{name}_dim{i}"
    return tuple(shape), dynamic


def onnx_input_specs(path: Path) -> list[TensorSpec]:
    """Graph inputs of an ONNX file (initializers excluded). Raises EdgekitError for a truncated/corrupt file."""
    import onnx
    from google.protobuf.message import DecodeError

    try:
        model = onnx.load(str(path), load_external_data=False)
    except (DecodeError, ValueError, OSError, RuntimeError) as exc:
        raise EdgekitError(f"{path} is not a readable ONNX model ({type(exc).__name__}: {str(exc)[:160]}) — "
                           "the file is truncated or corrupt",
                           "export it again with `edgekit export`") from exc
    if not model.graph.node:
        raise EdgekitError(f"{path} holds no ONNX graph (empty or truncated file)", "export it again")
    inits = {i.name for i in model.graph.initializer}
    specs = []
    for inp in model.graph.input:
        if inp.name in inits:
            continue
        tt = inp.type.tensor_type
        dtype = _ONNX_DTYPES.get(tt.elem_type)
        if dtype is None:
            raise EdgekitError(f"{path}: input {inp.name!r} has ONNX element type {tt.elem_type}, which edgekit "
                               "cannot generate inputs for", f"give inputs in one of {', '.join(DTYPES)}")
        dims = [d.dim_value if d.HasField("dim_value") else d.dim_param for d in tt.shape.dim]
        shape, dynamic = _dims(dims, inp.name)
        specs.append(TensorSpec(inp.name, shape, dtype, dynamic, high=100.0 if dtype.startswith("int") else 1.0))
    return specs


def tflite_input_specs(path: Path) -> list[TensorSpec]:
    """Inputs of a .tflite file read with the flatbuffer schema in pure Python (signature names when the model has a
    signature, as the interpreter's signature runner uses them). Raises EdgekitError for a corrupt file."""
    from ai_edge_litert import schema_py_generated as fb

    with open(path, "rb") as fh:
        try:
            data: Any = mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ)  # flatbuffers read lazily: no full copy
        except ValueError:  # empty file
            data = b""
    try:
        if not fb.Model.ModelBufferHasIdentifier(data, 0):
            raise ValueError("no TFL3 identifier")
        model = fb.Model.GetRootAs(data, 0)
        entries: list[tuple[str, int, int]] = []  # (name, subgraph, tensor index)
        if model.SignatureDefsLength():
            sig = model.SignatureDefs(0)
            for i in range(sig.InputsLength()):
                t = sig.Inputs(i)
                entries.append((t.Name().decode(), sig.SubgraphIndex(), t.TensorIndex()))
        else:
            g = model.Subgraphs(0)
            for i in range(g.InputsLength()):
                idx = int(g.Inputs(i))
                entries.append((g.Tensors(idx).Name().decode(), 0, idx))
        specs = []
        for name, sg, idx in entries:
            tensor = model.Subgraphs(sg).Tensors(idx)
            dtype = _TFLITE_DTYPES.get(tensor.Type())
            if dtype is None:
                raise EdgekitError(f"{path}: input {name!r} has TFLite tensor type {tensor.Type()}, which edgekit "
                                   "cannot generate inputs for", "export with float inputs (quantize inside)")
            sig_dims = [int(d) for d in tensor.ShapeSignatureAsNumpy()] if tensor.ShapeSignatureLength() else []
            dims: list[int | str] = [int(d) for d in tensor.ShapeAsNumpy()] if tensor.ShapeLength() else []
            dims = [("" if s < 0 else d) for d, s in zip(dims, sig_dims, strict=False)] + dims[len(sig_dims):] \
                if sig_dims else dims
            shape, dynamic = _dims(dims, name)
            specs.append(TensorSpec(name, shape, dtype, dynamic, high=100.0 if dtype.startswith("int") else 1.0))
        return specs
    except EdgekitError:
        raise
    except Exception as exc:  # flatbuffer accessors raise struct.error/IndexError on truncated data
        raise EdgekitError(f"{path} is not a readable .tflite model ({type(exc).__name__}: {str(exc)[:120]}) — "
                           "the file is truncated or corrupt", "export it again with `edgekit export`") from exc


def model_input_specs(path: Path, fmt: str) -> list[TensorSpec] | None:
    """The inputs a model file declares, or None when the format cannot be read without loading it (torch, coreml).
    A declared static shape larger than memory is refused here, before the benchmark child allocates it."""
    if fmt == "onnx":
        return [check_input_memory(s) for s in onnx_input_specs(path)]
    if fmt == "tflite":
        return [check_input_memory(s) for s in tflite_input_specs(path)]
    if fmt == "executorch":  # read by the ExecuTorch runtime (optional): without it, the manifest or --input says
        from edgekit.runtime.executorch import ExecuTorchRuntime, pte_input_specs

        return [check_input_memory(s) for s in pte_input_specs(path)] if ExecuTorchRuntime().available() else None
    return None


def _kind(dtype: str) -> str:
    return "float" if dtype.startswith("float") else "int" if dtype.startswith("int") else dtype


def check_inputs(given: list[TensorSpec], declared: list[TensorSpec], where: str) -> list[TensorSpec]:
    """The inputs to feed: `given` checked against what the model declares (count, rank, static sizes; names matched
    when they agree, else by position). A dtype of the same kind (int64 vs int32, float32 vs float16) is adopted from
    the model, as the runtime adapters would convert it on every run; int vs float is an error."""
    if len(given) != len(declared):
        raise EdgekitError(
            f"{where} takes {len(declared)} inputs ({', '.join(_fmt(s) for s in declared)}) but "
            f"{len(given)} were given ({', '.join(_fmt(s) for s in given)})",
            "give one --input NAME:DIMxDIM:DTYPE per model input")
    by_name = {s.name: s for s in declared}
    pairs = [(g, by_name[g.name]) for g in given] if all(g.name in by_name for g in given) else \
        list(zip(given, declared, strict=True))
    out = []
    for g, d in pairs:
        bad_rank = len(g.shape) != len(d.shape)
        bad_dim = not bad_rank and any(gs != ds and i not in d.dynamic for i, (gs, ds) in
                                       enumerate(zip(g.shape, d.shape, strict=True)))
        if bad_rank or bad_dim:
            raise EdgekitError(f"input {g.name!r} has shape {'x'.join(map(str, g.shape))} but {where} expects "
                               f"{_fmt(d)}", f"use --input {_fmt(d, concrete=True)}")
        if g.dtype != d.dtype and _kind(g.dtype) != _kind(d.dtype):
            raise EdgekitError(f"input {g.name!r} is {g.dtype} but {where} expects {d.dtype}",
                               f"use --input {_fmt(d, concrete=True)}")
        out.append(replace(g, dtype=d.dtype) if g.dtype != d.dtype else g)
    return out


def _fmt(s: TensorSpec, concrete: bool = False) -> str:
    dims = "x".join("?" if i in s.dynamic and not concrete else str(n) for i, n in enumerate(s.shape))
    return f"{s.name}:{dims}:{s.dtype}"
