"""PyTorch adapter: runs a torch.export program (.pt2) eagerly, or compiled with torch.compile when asked."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from edgekit.errors import EdgekitError
from edgekit.runtime.base import RuntimeOptions, ordered_feeds


class TorchSession:
    def __init__(self, module: Any, input_names: list[str], output_names: list[str], options: RuntimeOptions) -> None:
        import torch

        if options.threads:
            torch.set_num_threads(options.threads)
        self._module = torch.compile(module) if options.extra.get("compile") else module
        self.input_names = input_names
        self.output_names = output_names
        self._options = options
        self._version = torch.__version__

    def run(self, feeds: Mapping[str, np.ndarray]) -> list[np.ndarray]:
        import torch

        values = [torch.from_numpy(np.ascontiguousarray(v)) for v in ordered_feeds(self, feeds)]
        with torch.inference_mode():
            out = self._module(*values)
        outs = out if isinstance(out, (tuple, list)) else [out]
        return [o.detach().numpy() for o in outs]

    def describe(self) -> dict[str, Any]:
        return {"runtime": "torch", "version": self._version, "threads": self._options.threads,
                "provider": "inductor" if self._options.extra.get("compile") else "eager"}


class TorchRuntime:
    name = "torch"
    formats = ("torch",)

    def available(self) -> bool:
        return True

    def version(self) -> str | None:
        import torch

        return torch.__version__

    def load(self, path: Path, options: RuntimeOptions | None = None) -> TorchSession:
        import torch

        try:
            program = torch.export.load(str(path))
        except Exception as exc:
            raise EdgekitError(
                f"cannot load torch program {path} ({type(exc).__name__}: {str(exc).splitlines()[0][:200]})",
                "the file is missing, truncated or not a torch.export .pt2: export it again with `edgekit export`",
            ) from exc
        sig = program.graph_signature
        inputs = [s.arg.name for s in sig.input_specs if s.kind.name == "USER_INPUT"]
        outputs = [f"output_{i}" for i, _ in enumerate(sig.user_outputs)]
        return TorchSession(program.module(), inputs, outputs, options or RuntimeOptions())

    @staticmethod
    def from_module(module: Any, input_names: list[str], options: RuntimeOptions | None = None) -> TorchSession:
        """Wrap a live nn.Module (the reference in parity checks and `bench --format torch`)."""
        return TorchSession(module.eval(), input_names, ["output_0"], options or RuntimeOptions())
