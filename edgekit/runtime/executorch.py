"""ExecuTorch adapter: runs a .pte program with the ExecuTorch runtime's Python bindings (package `executorch`,
optional: `make setup-executorch`). Delegated parts run in XNNPACK, the rest on ExecuTorch's portable kernels.

A .pte carries no input names; the session names its inputs input_0, input_1, ... and takes feeds by position
(runtime.base.ordered_feeds), in the order the model was exported with. Threads: XNNPACK's thread pool is one per
process, sized to the CPU count by default; `--threads N` resizes it before the program loads.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from edgekit.errors import EdgekitError
from edgekit.runtime.base import RuntimeOptions, dist_version, ordered_feeds
from edgekit.specs import TensorSpec

CHECKED_VERSION = "1.5.1"  # the executorch release checked against torch 2.13.0 (CPU) on x86-64 Linux
INSTALL_FIX = ("run `make setup-executorch` (pip install -c CONSTRAINTS 'edgekit[executorch]', with torch==2.13.0 "
               f"pinned in CONSTRAINTS; executorch {CHECKED_VERSION} is the checked version), or leave executorch "
               "out with --format")


def executorch_problem() -> str | None:
    """Why ExecuTorch cannot export or run here (package missing, or a build that does not load with this torch),
    or None when it can."""
    version = dist_version("executorch")
    if version is None:
        return "the ExecuTorch exporter and runtime (Python package 'executorch') is not installed"
    try:
        import executorch.exir  # noqa: F401
        from executorch.runtime import Runtime  # noqa: F401
    except Exception as exc:  # ImportError, or pybindings linked against another libtorch (undefined symbol)
        import torch

        first = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else ""
        return (f"executorch {version} does not load with torch {torch.__version__} "
                f"({type(exc).__name__}: {first})")
    return None


def require_executorch() -> None:
    problem = executorch_problem()
    if problem is not None:
        raise EdgekitError(problem, INSTALL_FIX)


# ExecuTorch ScalarType codes (TensorInfo.dtype()) -> numpy dtype names
SCALAR_TYPES = {0: "uint8", 1: "int8", 2: "int16", 3: "int32", 4: "int64", 5: "float16", 6: "float32",
                7: "float64", 11: "bool"}


def _runtime():
    require_executorch()
    from executorch.runtime import Runtime

    return Runtime.get()


def _load_method(path: Path):
    runtime = _runtime()
    try:
        program = runtime.load_program(Path(path))
        return program, program.load_method("forward")
    except Exception as exc:
        raise EdgekitError(
            f"the ExecuTorch runtime cannot load {path} ({type(exc).__name__}: "
            f"{str(exc).strip().splitlines()[0][:200] if str(exc).strip() else 'no message'})",
            "the file is missing, truncated, not a .pte program, or needs a backend this runtime lacks: export it "
            "again with `edgekit export --format executorch`",
        ) from exc


def pte_input_specs(path: Path) -> list[TensorSpec]:
    """The inputs a .pte declares (shape and dtype from its method metadata; names input_0, input_1, ...)."""
    _, method = _load_method(path)
    meta = method.metadata
    specs = []
    for i in range(meta.num_inputs()):
        info = meta.input_tensor_meta(i)
        dtype = SCALAR_TYPES.get(int(info.dtype()))
        if dtype is None:
            raise EdgekitError(f"{path}: input {i} has ExecuTorch scalar type {int(info.dtype())}, which edgekit "
                               "cannot generate inputs for", "export with float or integer inputs")
        specs.append(TensorSpec(f"input_{i}", tuple(int(d) for d in info.sizes()), dtype,
                                high=100.0 if dtype.startswith("int") else 1.0))
    return specs


class ExecuTorchSession:
    def __init__(self, path: Path, options: RuntimeOptions) -> None:
        from executorch.extension.pybindings import portable_lib

        self._options = options
        if options.threads:
            _runtime()
            portable_lib._unsafe_reset_threadpool(int(options.threads))
        self._program, self._method = _load_method(path)
        meta = self._method.metadata
        self.input_names = [f"input_{i}" for i in range(meta.num_inputs())]
        self.output_names = [f"output_{i}" for i in range(meta.num_outputs())]
        self._input_dtypes = [SCALAR_TYPES.get(int(meta.input_tensor_meta(i).dtype()))
                              for i in range(meta.num_inputs())]
        self._threads = portable_lib._threadpool_get_thread_count()
        self._version = dist_version("executorch")

    def _tensors(self, feeds: Mapping[str, np.ndarray]) -> list[Any]:
        import torch

        values = ordered_feeds(self, feeds)
        out = []
        for value, dtype in zip(values, self._input_dtypes, strict=True):
            arr = np.ascontiguousarray(value)
            if dtype is not None and arr.dtype != np.dtype(dtype):
                arr = arr.astype(dtype)
            out.append(torch.from_numpy(arr))
        return out

    def run(self, feeds: Mapping[str, np.ndarray]) -> list[np.ndarray]:
        outs = self._method.execute(self._tensors(feeds))
        return [o.detach().numpy().copy() if hasattr(o, "detach") else np.asarray(o) for o in outs]

    def prepare(self, feeds: Mapping[str, np.ndarray]) -> Callable[[], Any]:
        """A zero-argument call with the feeds converted to tensors once (the benchmark loop times only this)."""
        tensors = self._tensors(feeds)
        execute = self._method.execute
        return lambda: execute(tensors)

    def describe(self) -> dict[str, Any]:
        source = "XNNPACK thread pool resized by --threads" if self._options.threads else \
            "ExecuTorch default: XNNPACK thread pool sized to the CPU count"
        return {"runtime": "executorch", "version": self._version, "threads": self._threads,
                "threads_source": source, "provider": "xnnpack"}


class ExecuTorchRuntime:
    name = "executorch"
    formats = ("executorch",)

    def available(self) -> bool:
        return executorch_problem() is None

    def version(self) -> str | None:
        return dist_version("executorch")

    def load(self, path: Path, options: RuntimeOptions | None = None) -> ExecuTorchSession:
        return ExecuTorchSession(Path(path), options or RuntimeOptions())
