"""PyTorch -> torch.export program (.pt2): the `torch` format that `edgekit bench --format torch` runs."""

from __future__ import annotations

import io
from pathlib import Path

import torch

from edgekit.modelsource import LoadedModel


def export_torch(loaded: LoadedModel, path: Path) -> dict[str, str]:
    program = torch.export.export(loaded.module, loaded.example_tensors())
    # Serialised in memory, then written by Python: torch's own file writer aborts the whole process (a C++
    # exception in a destructor) when the disk fills up, where a Python write raises OSError.
    buffer = io.BytesIO()
    torch.export.save(program, buffer)
    path.write_bytes(buffer.getbuffer())
    return {"converter": "torch.export"}
