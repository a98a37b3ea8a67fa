"""Keep converters' chatter (C++ logs, progress bars, prints) off edgekit's stdout and stderr."""

from __future__ import annotations

import contextlib
import io
import logging
import os
import sys
import tempfile

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
