"""Keep converters' chatter (C++ logs, progress bars, prints) off edgekit's stdout and stderr."""

from __future__ import annotations

import contextlib
import io
import logging
import os
import sys
import tempfile
from typing import Any

from edgekit.errors import EdgekitError

_NOISY_LOGGERS = ("coremltools", "torchao", "torch.onnx", "onnxscript", "onnx_ir", "root", "absl", "tensorflow")


class ConverterFailure(RuntimeError):
    """A converter raised; the message carries its exception and the tail of what it printed."""


def quiet_python_logs() -> None:
    """Silence the INFO/WARNING chatter of converter libraries (errors still surface as exceptions)."""
    os.environ.setdefault("TQDM_DISABLE", "1")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    for name in _NOISY_LOGGERS:
        logging.getLogger(None if name == "root" else name).setLevel(logging.ERROR)


@contextlib.contextmanager
def captured_output():
    """Converters (litert-torch, MLIR, coremltools, onnxscript) print progress on stdout/stderr (also from C++): capture both at the
    file-descriptor level so edgekit's output (and --json) stays clean. On failure the captured tail is appended
    to the exception, so the converter's diagnostic (e.g. "failed to legalize operation") is not lost."""
    if os.environ.get("EDGEKIT_DEBUG"):
        yield
        return
    quiet_python_logs()
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    # edgekit's own progress display keeps the real stderr; C-level writes and old handlers go to the sink.
    real_stderr = os.fdopen(os.dup(saved[1]), "w", buffering=1)
    old_stderr = sys.stderr
    with tempfile.TemporaryFile(mode="w+b") as sink:
        os.dup2(sink.fileno(), 1)
        os.dup2(sink.fileno(), 2)
        sys.stderr = real_stderr
        try:
            with contextlib.redirect_stdout(io.StringIO()):
                yield
        except (EdgekitError, ConverterFailure, ImportError):
            raise
        except Exception as exc:
            sys.stdout.flush()
            sink.seek(0)
            tail = sink.read()[-4000:].decode("utf-8", "replace")
            raise ConverterFailure(f"{type(exc).__name__}: {exc}\n{tail}") from exc
        finally:
            sys.stdout.flush()
            sys.stderr = old_stderr
            real_stderr.close()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            os.close(saved[0])
            os.close(saved[1])


def flatten_model_outputs(out: Any, where: str = "output") -> list[Any]:
    """A model's output as a flat list of tensors, in the order the exporters flatten it (torch pytree order): tensors
    as they are; tuples, lists and dicts (Hugging Face ModelOutput is a dict) in order; dataclasses field by field;
    a cache object (DynamicCache and the like) through `to_legacy_cache()` or iteration. None and plain numbers are
    not tensors an artifact returns, so they are skipped. Anything else is one EdgekitError naming where it is."""
    import dataclasses

    import torch

    if isinstance(out, torch.Tensor):
        return [out]
    if out is None or isinstance(out, bool | int | float):
        return []
    if isinstance(out, str | bytes):
        raise EdgekitError(f"the model's {where} is a string ({str(out)[:40]!r}), not a tensor",
                           "return tensors (or tuples/dicts of tensors) from forward()")
    if isinstance(out, dict):
        items = [(f"{where}[{k!r}]", v) for k, v in out.items()]
    elif isinstance(out, list | tuple):
        items = [(f"{where}[{i}]", v) for i, v in enumerate(out)]
    elif dataclasses.is_dataclass(out) and not isinstance(out, type):
        items = [(f"{where}.{f.name}", getattr(out, f.name)) for f in dataclasses.fields(out)]
    elif callable(getattr(out, "to_legacy_cache", None)):
        items = [(f"{where}.to_legacy_cache()", out.to_legacy_cache())]
    elif hasattr(out, "__iter__"):
        try:
            items = [(f"{where}[{i}]", v) for i, v in enumerate(out)]
        except Exception as exc:
            raise EdgekitError(f"the model's {where} ({type(out).__name__}) cannot be iterated: {exc}",
                               "return tensors, tuples, lists or dicts of tensors from forward()") from exc
    else:
        raise EdgekitError(f"the model's {where} is a {type(out).__name__}, which edgekit cannot flatten into tensors",
                           "return tensors, tuples, lists or dicts of tensors from forward() (e.g. wrap the model "
                           "and return only the tensors you deploy)")
    flat: list[Any] = []
    for name, item in items:
        flat.extend(flatten_model_outputs(item, name))
    return flat
