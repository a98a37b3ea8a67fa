"""PyTorch -> torch.export program (.pt2): the `torch` format that `edgekit bench --format torch` runs."""

from __future__ import annotations

from pathlib import Path

import torch

from edgekit.modelsource import LoadedModel


def export_torch(loaded: LoadedModel, path: Path) -> dict[str, str]:
    program = torch.export.export(loaded.module, loaded.example_tensors())
    torch.export.save(program, str(path))
    return {"converter": "torch.export"}
