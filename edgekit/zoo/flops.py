"""Compute cost of a model on given inputs: multiply-accumulates (MACs) and parameters.

MACs are counted with torch.utils.flop_counter.FlopCounterMode, which counts the FLOPs of matrix products and
convolutions (mm, bmm, addmm, baddbmm, conv, scaled-dot-product attention; 2 FLOPs per multiply-add); MACs =
FLOPs / 2. Element-wise operations (activations, norms, softmax, gating) are not counted, as is usual for MAC figures.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from edgekit.specs import TensorSpec


@dataclass(frozen=True)
class CostCount:
    """MACs of one forward pass (per batch of the given inputs) and the parameter count."""

    macs: int
    params: int
    by_operator: dict[str, int]  # aten operator -> MACs


def count_parameters(model: nn.Module) -> int:
    """Number of distinct parameters (tied weights counted once); buffers are not parameters."""
    return sum(p.numel() for p in model.parameters())


def example_inputs(specs: Sequence[TensorSpec], seed: int = 0) -> dict[str, torch.Tensor]:
    """Seeded random tensors for a card's inputs (token ids drawn from [low, high))."""
    rng = np.random.default_rng(seed)
    return {s.name: torch.from_numpy(np.ascontiguousarray(s.random(rng))) for s in specs}


def count_macs(model: nn.Module, inputs: Mapping[str, torch.Tensor] | Sequence[torch.Tensor]) -> CostCount:
    """Run `model` once on `inputs` (keyword dict or positional tuple) under FlopCounterMode; MACs = FLOPs / 2."""
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    # Parameters stop requiring grad while counting: FlopCounterMode's module tracker hooks autograd and trips over
    # tensors that require grad without a grad_fn (torch.fft on complex views of parameters under no_grad).
    flags = [(p, p.requires_grad) for p in model.parameters()]
    try:
        for p, _ in flags:
            p.requires_grad_(False)
        with torch.no_grad(), counter:
            if isinstance(inputs, Mapping):
                model(**inputs)
            else:
                model(*inputs)
    finally:
        for p, flag in flags:
            p.requires_grad_(flag)
    by_op: dict[str, int] = {}
    for op, flops in counter.get_flop_counts().get("Global", {}).items():
        name = str(getattr(op, "__name__", op))
        by_op[name] = by_op.get(name, 0) + int(flops) // 2
    return CostCount(macs=int(counter.get_total_flops()) // 2, params=count_parameters(model), by_operator=by_op)
