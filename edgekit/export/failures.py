"""Turn a converter's exception into one clear EdgekitError that names the operator and the format."""

from __future__ import annotations

import re

from edgekit.errors import EdgekitError, UnsupportedOperatorError

# Patterns that converters use when they meet an operator they cannot express; group "op" is the operator.
_OP_PATTERNS = (
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
)

_PACKAGES = {"onnx": "onnxscript", "tflite": "litert-torch", "coreml": "coremltools", "torch": "torch"}


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


def _op_from_keywords(text: str, operators: list[str]) -> str | None:
    """When the message names no operator ("Only 1D FFT ... supported"), match its words against the graph's ops."""
    words = {w.lower() for w in re.findall(r"[A-Za-z]{3,}", text)}
    for op in operators:
        parts = {p for p in re.split(r"[_.]", op.lower()) if len(p) >= 3}
        if parts & words - {"the", "not", "and", "for", "only", "supported", "currently", "error", "last", "dimension"}:
            return op
    return None


def explain_failure(fmt: str, exc: BaseException, operators: list[str] | None = None) -> EdgekitError:
    """Classify an export exception: unsupported operator, missing converter, or other (message kept short).

    `operators` (the model's aten ops) lets a message that names no operator still point at one."""
    if isinstance(exc, EdgekitError):
        return exc
    if isinstance(exc, ImportError):
        from edgekit.errors import ConverterMissingError

        return ConverterMissingError(fmt, _PACKAGES.get(fmt, str(exc.name)))
    text = f"{type(exc).__name__}: {exc}"
    for pattern in _OP_PATTERNS:
        m = pattern.search(text)
        if m:
            op = m.groupdict().get("op") or "complex tensors"
            if op != "complex tensors" and "." not in op and "::" not in op:
                op = f"aten.{op}"
            return UnsupportedOperatorError(op, fmt)
    if operators and re.search(r"not (?:currently )?supported|NotImplementedError|unsupported", text, re.I):
        op = _op_from_keywords(text.split("\n")[0], operators)
        if op:
            return UnsupportedOperatorError(f"aten.{op}", fmt, detail=text.split("\n")[0].split(": ", 1)[-1][:160])
    from edgekit.export.capture import ConverterFailure

    first = next((ln.strip() for ln in str(exc).splitlines() if ln.strip()), type(exc).__name__)
    if not isinstance(exc, ConverterFailure):
        first = f"{type(exc).__name__}: {first}"
    return EdgekitError(
        f"{fmt} export failed: {first[:240]}",
        "rerun with --debug for the converter's traceback; export the other formats with --formats",
    )
