"""PyTorch adapter: runs a torch.export program (.pt2) eagerly, or compiled with torch.compile when asked.

`torch.export.load` unpickles a .pt2's weights with `weights_only=False`, so opening a .pt2 can run any code its
author put in it. A .pt2 is therefore loaded only when its bytes hash to a sha256 vouched for by the caller
(`RuntimeOptions.extra["trusted_sha256"]`): the hash a manifest edgekit wrote records for it, or the file's own hash
when the user passed `--trust`. `check_trusted` runs before anything opens the archive.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from edgekit.errors import EdgekitError
from edgekit.runtime.base import RuntimeOptions, ordered_feeds

TRUST_FIX = ("pass --trust if you trust the file and its author (loading a .pt2 runs any code it carries), or "
             "re-export the model with `edgekit export MODEL --format torch` and benchmark that export")
_verified: dict[tuple[int, ...], str] = {}  # (dev, inode, size, mtime_ns, ctime_ns) -> sha256 checked in this process


def _stat_key(path: Path) -> tuple[int, ...]:
    st = path.stat()
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


def check_trusted(path: Path, trusted_sha256: str | None, actual_sha256: str | None = None) -> None:
    """Refuse (EdgekitError, one line) a .pt2 whose bytes do not hash to `trusted_sha256`, or when no hash is vouched
    for at all. Call it before anything unpickles the file. `actual_sha256`: the file's hash when the caller has just
    computed it; a file already checked in this process and unchanged since (same inode, size, mtime and ctime) is
    not hashed again."""
    from edgekit.files import file_sha256

    if not trusted_sha256:
        raise EdgekitError(f"{path} is a .pt2 that no edgekit manifest vouches for: loading it unpickles its weights "
                           "(torch.export.load, weights_only=False), which can run any code, so edgekit will not "
                           "load it", TRUST_FIX)
    try:
        key = _stat_key(path)
        actual = actual_sha256 or _verified.get(key) or file_sha256(path)
    except OSError as exc:
        raise EdgekitError(f"cannot read torch program {path} ({exc.strerror or exc})",
                           "check the path, or export it again with `edgekit export`") from exc
    if actual != trusted_sha256:
        raise EdgekitError(f"{path} does not match the sha256 recorded for it (the file hashes to {actual[:16]}…, the "
                           f"record says {str(trusted_sha256)[:16]}…): it was changed or replaced after edgekit "
                           "exported it, and loading a .pt2 can run any code, so edgekit will not load it", TRUST_FIX)
    _verified[key] = actual


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
        import torch

        source = "torch.get_num_threads() after --threads" if self._options.threads else \
            "torch.get_num_threads() (torch's default: one per physical core)"
        return {"runtime": "torch", "version": self._version, "threads": torch.get_num_threads(),
                "threads_source": source,
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

        options = options or RuntimeOptions()
        check_trusted(path, options.extra.get("trusted_sha256"))  # before torch.export.load unpickles anything
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
        return TorchSession(program.module(), inputs, outputs, options)

    @staticmethod
    def from_module(module: Any, input_names: list[str], options: RuntimeOptions | None = None) -> TorchSession:
        """Wrap a live nn.Module (the reference in parity checks and `bench --format torch`)."""
        return TorchSession(module.eval(), input_names, ["output_0"], options or RuntimeOptions())
