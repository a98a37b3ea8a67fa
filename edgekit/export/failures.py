"""Turn a converter's exception into one clear EdgekitError that names the operator and the format."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

from edgekit.errors import EdgekitError, UnsupportedOperatorError

# Patterns that converters use when they meet an operator they cannot express; group "op" is the operator.
_OP_PATTERNS = (
    # coremltools met an op that torch's decompositions produced: name what the user's code called (coreml.py)
    re.compile(r"Unsupported fx node \S+, kind (?P<low>[\w.]+) \(decomposed from (?P<op>aten\.[\w.]+)"
               r"(?: at (?P<where>[^)]+))?\)"),
    re.compile(r"Unsupported fx node \S+, kind (?P<op>[\w.]+)"),  # coremltools torch.export frontend (coremltools 9)
    re.compile(r"Unsupported fx node (?P<op>[\w.]+)"),  # coremltools torch.export frontend
    re.compile(r"PyTorch convert function for op '(?P<op>[\w.:]+)' not implemented"),  # coremltools
    re.compile(r"failed to legalize operation '(?P<op>[\w.:]+)'"),  # TFLite/MLIR
    re.compile(r"Unsupported FX nodes: \{'call_function': \['(?P<op>[\w.:]+)'"),  # torch.onnx dynamo
    re.compile(r"No decompositions registered for[^']*'(?P<op>[\w.:]+)'"),
    re.compile(r"[Uu]nsupported (?:op(?:erator)?|aten op)[:\s]+'?(?P<op>aten[\w.:]+|[\w.]+::[\w.]+)"),
    re.compile(r"(?P<op>aten\.fft_\w+(?:\.\w+)?)"),
    re.compile(r"(?:lowering|Lowering) (?:not found |missing )?for[^\w]*(?P<op>aten[\w.:]+)"),
    re.compile(r"(?P<op>aten\.[\w]+(?:\.\w+)?)[^\n]{0,80}(?:not supported|is not supported|unsupported)"),
    re.compile(r"complex(?:64|128)? (?:dtype|tensors?) (?:is |are )?not supported"),
    # litert-torch's JAX lowering of an op whose output size depends on the data (aten.nonzero: sparse SCAR)
    re.compile(r"ConcretizationTypeError[\s\S]*?While executing %\w+ : [^\n]*target=torch\.ops\.(?P<op>aten\.\w+)"),
)

# Messages in which coremltools itself says its op registry has no conversion (after its own name sanitising).
_COREML_AUTHORITATIVE = re.compile(r"PyTorch convert function for op '[\w.:]+' not implemented")


def coreml_converter_for(op: str) -> str | None:
    """The coremltools conversion registered for an aten operator ("aten.lstm.input" -> "lstm"), or None when
    coremltools really has none (or is not installed). Its torch.export frontend checks the raw overload name, so
    "Unsupported fx node" can be raised for an operator coremltools does convert under its base name."""
    try:
        from coremltools.converters.mil.frontend.torch.torch_op_registry import _TORCH_OPS_REGISTRY
    except Exception:
        return None
    name = op.removeprefix("aten.").removeprefix("aten::")
    for candidate in (name, name.split(".")[0]):
        if _TORCH_OPS_REGISTRY.get_func(candidate) is not None:
            return candidate
    return None


def graph_operators(module, args) -> list[str]:
    """The aten operators of a module's torch.export graph (to name the culprit when a converter does not)."""
    import torch

    try:
        program = torch.export.export(module, args)
    except Exception:
        return []
    ops = []
    for node in program.graph.nodes:
        if node.op == "call_function":
            name = str(node.target).split(".")[1] if str(node.target).startswith("aten.") else str(node.target)
            if name not in ops:
                ops.append(name)
    return ops


_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
_DATA_DEPENDENT = re.compile(r"GuardOnDataDependentSymNode|data-dependent expression|DataDependentOutputException|"
                             r"Could not extract specialized integer|data[- ]dependent (?:control flow|output)", re.I)
_CALL_IN_MESSAGE = re.compile(r'File "(?P<file>[^"]+)", line (?P<line>\d+), in (?P<func>[\w<>.]+)\n\s*(?P<code>[^\n]*)')
# Top-level packages whose frames are the toolchain's, never the user's model (torchvision/transformers are models).
_TOOLCHAIN = {"torch", "torchgen", "functorch", "onnx", "onnxscript", "onnx_ir", "onnxslim", "onnxruntime",
              "litert_torch", "ai_edge_torch", "ai_edge_quantizer", "ai_edge_litert", "coremltools", "tensorflow",
              "torchao", "sympy", "numpy", "typer", "click", "_pytest", "pluggy", "edgekit", "executorch"}


def _is_user_file(filename: str) -> bool:
    import sysconfig

    if not filename or filename.startswith("<"):
        return False
    path = Path(filename)
    if path.is_relative_to(Path(__file__).resolve().parent.parent):  # edgekit itself
        return False
    parts = path.parts
    if "site-packages" in parts or "dist-packages" in parts:
        i = max(parts.index(d) for d in ("site-packages", "dist-packages") if d in parts)
        return i + 1 < len(parts) and parts[i + 1].removesuffix(".py") not in _TOOLCHAIN
    stdlib = sysconfig.get_paths().get("stdlib")
    return not (stdlib and path.is_relative_to(stdlib))


def user_frame(exc: BaseException) -> tuple[str, int, str, str] | None:
    """The innermost frame of the user's model code (file, line, function, source line) behind an export failure:
    from the tracebacks of the exception chain, else from "File ..., line ..." in torch.export's message."""
    import traceback

    found: tuple[str, int, str, str] | None = None
    seen: set[int] = set()
    x: BaseException | None = exc
    while x is not None and id(x) not in seen:
        seen.add(id(x))
        for m in _CALL_IN_MESSAGE.finditer(_ANSI.sub("", str(x))):
            if _is_user_file(m["file"]):
                found = found or (m["file"], int(m["line"]), m["func"], m["code"].strip())
        for f in traceback.extract_tb(x.__traceback__):
            if _is_user_file(f.filename):
                found = (f.filename, f.lineno or 0, f.name, (f.line or "").strip())
        x = x.__cause__ or x.__context__
    return found


def _shown_path(filename: str) -> str:
    try:
        return str(Path(filename).resolve().relative_to(Path.cwd()))
    except ValueError:
        return filename


def _data_dependent(fmt: str, exc: BaseException, text: str) -> EdgekitError | None:
    """torch.export cannot trace a Python branch on a tensor's value (NMS, `if x.sum() > 0`, .item(), nonzero)."""
    chain, x = [], exc
    while x is not None and len(chain) < 10:
        chain.append(x)
        x = x.__cause__ or x.__context__
    if not any(_DATA_DEPENDENT.search(f"{type(c).__name__}: {c}") for c in chain) and not _DATA_DEPENDENT.search(text):
        return None
    frame = user_frame(exc)
    where = f" at {_shown_path(frame[0])}:{frame[1]} in {frame[2]}" + (f" (`{frame[3]}`)" if frame[3] else "") \
        if frame else ""
    return EdgekitError(
        f"{fmt} export failed: data-dependent control flow{where}: the exporter cannot follow a Python branch, "
        ".item() or variable-size result that depends on a tensor's values",
        "make that code shape-static (torch.where or masks instead of `if` on values, fixed-size top-k instead of "
        "nonzero/boolean indexing, torch.cond for real branches; see docs/export.md), or leave this format out "
        "with --format")


def _op_from_keywords(text: str, operators: list[str]) -> str | None:
    """When the message names no operator ("Only 1D FFT ... supported"), match its words against the graph's ops."""
    words = {w.lower() for w in re.findall(r"[A-Za-z]{3,}", text)}
    for op in operators:
        parts = {p for p in re.split(r"[_.]", op.lower()) if len(p) >= 3}
        if parts & words - {"the", "not", "and", "for", "only", "supported", "currently", "error", "last", "dimension"}:
            return op
    return None


def explain_failure(fmt: str, exc: BaseException,
                    operators: list[str] | Callable[[], list[str]] | None = None) -> EdgekitError:
    """Classify an export exception: unsupported operator, missing converter, or other (message kept short).

    `operators` (the model's aten ops) lets a message that names no operator still point at one."""
    if isinstance(exc, EdgekitError):
        return exc
    if isinstance(exc, ImportError):
        from edgekit.errors import ConverterMissingError
        from edgekit.formats import install_fix, missing_package

        package = missing_package(fmt, exc.name)
        return ConverterMissingError(fmt, package, install_fix(fmt, package))
    text = _ANSI.sub("", f"{type(exc).__name__}: {exc}")
    dd = _data_dependent(fmt, exc, text)
    if dd is not None:
        return dd
    for pattern in _OP_PATTERNS:
        m = pattern.search(text)
        if m:
            op = m.groupdict().get("op") or "complex tensors"
            coreml_kind = "Unsupported fx node" in pattern.pattern  # coremltools kinds are aten names ("lstm.input")
            if op != "complex tensors" and "::" not in op and ("." not in op or coreml_kind) \
                    and not op.startswith("aten."):
                op = f"aten.{op}"
            if fmt == "coreml" and op != "complex tensors" and not _COREML_AUTHORITATIVE.search(text):
                known = coreml_converter_for(op)
                if known is not None:  # coremltools has a conversion: not the model's fault, not "rewrite it"
                    return EdgekitError(
                        f"coreml export failed on {op}, which coremltools converts (as {known!r}): "
                        f"{_first_line(exc)[:200]}",
                        "rerun with --debug for the converter's traceback; try another coremltools version, or "
                        "leave coreml out with --format")
            groups = m.groupdict()
            detail = f"decomposed to aten.{groups['low']}" if groups.get("low") else ""
            detail += f", called at {groups['where']}" if groups.get("where") else ""
            return UnsupportedOperatorError(op, fmt, detail=detail)
    if callable(operators):  # computed only when a message needs it (it re-runs torch.export)
        operators = operators() if re.search(r"not (?:currently )?supported|NotImplementedError|unsupported",
                                             text, re.I) else None
    if operators and re.search(r"not (?:currently )?supported|NotImplementedError|unsupported", text, re.I):
        op = _op_from_keywords(text.split("\n")[0], operators)
        if op:
            return UnsupportedOperatorError(f"aten.{op}", fmt, detail=text.split("\n")[0].split(": ", 1)[-1][:160])
    from edgekit.export.capture import ConverterFailure

    first = next((ln.strip() for ln in _ANSI.sub("", str(exc)).splitlines() if ln.strip()), type(exc).__name__)
    if not isinstance(exc, ConverterFailure):
        first = f"{type(exc).__name__}: {first}"
    frame = user_frame(exc)
    where = f" (in {_shown_path(frame[0])}:{frame[1]} {frame[2]})" if frame else ""
    return EdgekitError(
        f"{fmt} export failed: {first[:240]}{where}",
        "rerun with --debug for the converter's traceback; export the other formats with --format",
    )


def _first_line(exc: BaseException) -> str:
    return next((ln.strip() for ln in str(exc).splitlines() if ln.strip()), type(exc).__name__)
