"""Brief supervised training on the suite's train splits (CPU), so zoo models - which ship untrained - can be
evaluated meaningfully. The whole model is trained (or only `params`, e.g. a head, when given).

A multi-domain model has a joint head (`LabelSpace`): each example's cross-entropy runs over its own domain's slice
of the logits, so domains never compete for probability mass. A model whose width equals one domain's class count
is trained as a plain single-domain classifier.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from edgekit.errors import EdgekitError
from edgekit.evalsuite.data import DomainData, LabelSpace, SuiteConfig, full_label_space
from edgekit.evalsuite.evaluate import call_model
from edgekit.evalsuite.tokenizer import HashTokenizer

# Added to the logits outside an example's domain slice: softmax weight 0, and no NaN in KL terms (unlike -inf).
MASKED_LOGIT = -1e9


@dataclass
class TrainBatch:
    """What `loss_fn` sees besides logits and labels: the batch's inputs and where its examples come from.

    ids: int64 [B, L]; mask: attention mask or None; domains: index of each example's domain in `domain_names`;
    bias: [B, W], 0 on the example's domain slice of the joint head and MASKED_LOGIT elsewhere (add it to a
    teacher's logits to compare like with like)."""

    ids: Any
    mask: Any
    domains: Any
    domain_names: tuple[str, ...]
    bias: Any


@dataclass
class FitReport:
    """What training did. seconds: wall time (s); losses: mean training loss per epoch."""

    epochs: int
    steps: int
    examples: int
    seconds: float
    seed: int
    losses: list[float] = field(default_factory=list)
    label_space: dict = field(default_factory=dict)


def _as_mapping(data: Mapping[str, DomainData] | DomainData) -> dict[str, DomainData]:
    if isinstance(data, DomainData):
        return {data.domain: data}
    return dict(data)


def with_load_balancing(model: Any, loss: Any, weight: float) -> Any:
    """`loss` plus `weight` x the model's auxiliary load-balancing loss (GEM's SCAR), when it has one from the
    last forward pass; otherwise `loss` unchanged (tensors in, tensor out)."""
    import torch

    aux = getattr(model, "load_balancing_loss", None)
    if weight and callable(aux):
        extra = aux()
        if isinstance(extra, torch.Tensor) and extra.requires_grad:
            return loss + weight * extra
    return loss


def fit_classifier(
    model,
    domain_data: Mapping[str, DomainData] | DomainData,
    epochs: int = 1,
    seed: int = 0,
    *,
    lr: float = 2e-3,
    batch_size: int = 64,
    weight_decay: float = 0.01,
    space: LabelSpace | None = None,
    max_train_per_domain: int | None = None,
    params: Iterable | None = None,
    aux_loss_weight: float = 0.01,
    use_attention_mask: bool = False,
    loss_fn: Callable | None = None,
    progress: Callable[[int, int, float], None] | None = None,
) -> FitReport:
    """Train `model` on the train split of each domain in `domain_data` for `epochs` passes (AdamW, CPU).

    The model takes int64 ids [B, L] (and `attention_mask` if its forward() names it) and returns logits [B, W]
    with W = space.total (joint head) or, for one domain, that domain's class count. `max_train_per_domain` caps
    each domain's training examples (a seeded sample) to bound the time. Models with a `load_balancing_loss()`
    (GEM) add it with weight `aux_loss_weight`. Only the ids are fed unless `use_attention_mask` (the zoo's cards,
    and so the exported artifacts, take `input_ids` alone: train what you deploy). `loss_fn(logits, labels, batch)`
    replaces the cross-entropy (e.g. knowledge-preserving distillation from a teacher run on `batch.ids`); its
    logits are pushed to MASKED_LOGIT (-1e9, finite so KL terms stay finite) outside each example's domain slice,
    its labels index the joint head, `batch` is a TrainBatch.
    `progress(step, total_steps, loss)` is called after each step.
    """
    import torch
    import torch.nn.functional as F

    data = _as_mapping(domain_data)
    if not data:
        raise EdgekitError("no domains to train on", "pass at least one domain")
    if epochs < 0:
        raise EdgekitError(f"epochs={epochs} is negative", "use 0 or more epochs")
    rng = np.random.default_rng(seed)
    torch.manual_seed(seed)
    ids_parts, label_parts, dom_parts = [], [], []
    for i, d in enumerate(data.values()):
        idx = np.arange(len(d.train_labels))
        if max_train_per_domain is not None and len(idx) > max_train_per_domain:
            idx = np.sort(rng.choice(idx, size=max_train_per_domain, replace=False))
        ids_parts.append(d.train_ids[idx])
        label_parts.append(d.train_labels[idx])
        dom_parts.append(np.full(len(idx), i, dtype=np.int64))
    ids = np.concatenate(ids_parts)
    labels = np.concatenate(label_parts)
    doms = np.concatenate(dom_parts)

    # Width of the model's output decides single-domain vs joint head.
    model.eval()
    with torch.no_grad():
        probe = torch.from_numpy(ids[:2])
        width = int(call_model(model, probe).shape[-1])
    only = next(iter(data.values()))
    if len(data) == 1 and width == only.n_classes and (space is None or space.total != width):
        offsets = np.zeros(1, dtype=np.int64)
        bias = torch.zeros(1, width)
        used: LabelSpace | None = None
    else:
        used = space or full_label_space(SuiteConfig(seed=only.seed, seq_len=only.train_ids.shape[1]))
        if width != used.total:
            raise EdgekitError(
                f"the model outputs {width} logits; the joint head over the suite needs {used.total}",
                f"build it with num_classes={used.total}",
            )
        offsets = np.array([used.offset(d) for d in data], dtype=np.int64)
        bias = torch.full((len(data), width), MASKED_LOGIT)
        for i, d in enumerate(data):
            bias[i, used.slice(d)] = 0.0
    global_labels = labels + offsets[doms]

    trainable = [p for p in (params if params is not None else model.parameters()) if p.requires_grad]
    opt = torch.optim.AdamW(trainable, lr=lr, weight_decay=weight_decay)
    n = len(labels)
    steps_per_epoch = (n + batch_size - 1) // batch_size
    total = steps_per_epoch * epochs
    report = FitReport(epochs, 0, n, 0.0, seed, label_space=used.to_dict() if used else {})
    start = time.perf_counter()
    model.train()
    step = 0
    for _ in range(epochs):
        order = rng.permutation(n)
        running = 0.0
        for b in range(steps_per_epoch):
            sel = order[b * batch_size : (b + 1) * batch_size]
            t_ids = torch.from_numpy(ids[sel])
            t_mask = torch.from_numpy(HashTokenizer.attention_mask(ids[sel])) if use_attention_mask else None
            t_bias = bias[torch.from_numpy(doms[sel])]
            logits = call_model(model, t_ids, t_mask) + t_bias
            target = torch.from_numpy(global_labels[sel])
            if loss_fn is not None:
                batch = TrainBatch(t_ids, t_mask, torch.from_numpy(doms[sel]), tuple(data), t_bias)
                loss = loss_fn(logits, target, batch)
            else:
                loss = F.cross_entropy(logits, target)
            loss = with_load_balancing(model, loss, aux_loss_weight)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            running += float(loss.detach())
            step += 1
            if progress is not None:
                progress(step, total, float(loss.detach()))
        report.losses.append(running / max(steps_per_epoch, 1))
    model.eval()
    report.steps = step
    report.seconds = time.perf_counter() - start
    return report
