"""Training for the study: the general base (multi-task over the eight domains, joint head), plain fine-tuning on
one target domain, and GEM-style specialisation with knowledge-preserving distillation from the base.

All models share the suite's joint head (`LabelSpace`): each domain reads its own slice of the logits.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

import numpy as np

from edgekit.evalsuite.data import DomainData, LabelSpace
from edgekit.evalsuite.train import FitReport, fit_classifier, with_load_balancing


def build_model(zoo_name: str, space: LabelSpace, seq_len: int, vocab_size: int, seed: int,
                overrides: Mapping[str, Any] | None = None):
    """A zoo classifier with the suite's joint head, initialised from `seed`."""
    import torch

    from edgekit.zoo import create_model

    torch.manual_seed(seed)
    cfg = {"num_classes": space.total, "vocab_size": vocab_size, "max_len": seq_len, **dict(overrides or {})}
    return create_model(zoo_name, **cfg)


def train_base(model, data: Mapping[str, DomainData], space: LabelSpace, *, epochs: int, seed: int, lr: float,
               batch_size: int, max_per_domain: int) -> FitReport:
    """Multi-task training over every domain of `data` (edgekit.evalsuite.train.fit_classifier)."""
    return fit_classifier(model, data, epochs, seed, lr=lr, batch_size=batch_size, space=space,
                          max_train_per_domain=max_per_domain)


def specialise_plain(base, target: DomainData, space: LabelSpace, *, epochs: int, seed: int, lr: float,
                     batch_size: int, max_train: int):
    """A copy of `base` fine-tuned on the target domain alone (cross-entropy on its slice of the head)."""
    model = copy.deepcopy(base)
    report = fit_classifier(model, {target.domain: target}, epochs, seed, lr=lr, batch_size=batch_size, space=space,
                            max_train_per_domain=max_train)
    return model, report


def _teacher_logits(teacher, ids: np.ndarray, batch: int = 512) -> np.ndarray:
    import torch

    from edgekit.evalsuite.evaluate import call_model

    teacher.eval()
    outs = []
    with torch.inference_mode():
        for i in range(0, len(ids), batch):
            outs.append(call_model(teacher, torch.from_numpy(ids[i : i + batch])).float().numpy())
    return np.concatenate(outs) if outs else np.zeros((0, 0), dtype=np.float32)


def specialise_kd(base, target: DomainData, general: Mapping[str, DomainData], space: LabelSpace, *, epochs: int,
                  seed: int, lr: float, batch_size: int, max_train: int, alpha: float, temperature: float,
                  general_weight: float, transfer_per_domain: int, aux_loss_weight: float = 0.01):
    """A copy of `base` specialised on the target with knowledge-preserving distillation (edgekit.zoo.gem.
    knowledge_preserving_loss) from the frozen base as teacher.

    Each step takes a target batch (labels used: (1 - alpha) * cross-entropy on the target slice) and an equally
    large batch of *unlabelled* inputs from the other domains' training splits (the transfer set, at most
    `transfer_per_domain` per domain; their labels are never read). The distillation term, alpha * T^2 * KL(teacher
    || student) over the whole joint head, covers both batches, the transfer examples weighted `general_weight`.
    Steps per epoch = ceil(target examples / batch_size), the same as plain fine-tuning.
    """
    import torch
    import torch.nn.functional as F

    from edgekit.evalsuite.evaluate import call_model
    from edgekit.zoo.gem import knowledge_preserving_loss

    rng = np.random.default_rng(seed)
    torch.manual_seed(seed)
    idx = np.arange(len(target.train_labels))
    if len(idx) > max_train:
        idx = np.sort(rng.choice(idx, size=max_train, replace=False))
    t_ids, t_labels = target.train_ids[idx], target.train_labels[idx] + space.offset(target.domain)
    parts = []
    for d, dd in general.items():
        if d == target.domain:
            continue
        gi = np.arange(len(dd.train_ids))
        if len(gi) > transfer_per_domain:
            gi = np.sort(rng.choice(gi, size=transfer_per_domain, replace=False))
        parts.append(dd.train_ids[gi])
    g_ids = np.concatenate(parts) if parts else t_ids[:0]
    t_teach = torch.from_numpy(_teacher_logits(base, t_ids))
    g_teach = torch.from_numpy(_teacher_logits(base, g_ids)) if len(g_ids) else None

    model = copy.deepcopy(base)
    slice_mask = torch.full((space.total,), float("-inf"))
    slice_mask[space.slice(target.domain)] = 0.0
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=lr, weight_decay=0.01)
    n = len(t_ids)
    steps = (n + batch_size - 1) // batch_size
    losses: list[float] = []
    model.train()
    for _ in range(epochs):
        order = rng.permutation(n)
        running = 0.0
        for b in range(steps):
            sel = order[b * batch_size : (b + 1) * batch_size]
            ids = torch.from_numpy(t_ids[sel])
            teach = t_teach[sel]
            weights = torch.ones(len(sel))
            if g_teach is not None:
                gsel = rng.integers(0, len(g_ids), len(sel))
                ids = torch.cat([ids, torch.from_numpy(g_ids[gsel])])
                teach = torch.cat([teach, g_teach[gsel]])
                weights = torch.cat([weights, torch.full((len(sel),), general_weight)])
            logits = call_model(model, ids)
            kd = knowledge_preserving_loss(logits, teach, None, alpha=1.0, temperature=temperature, weights=weights)
            ce = F.cross_entropy(logits[: len(sel)] + slice_mask, torch.from_numpy(t_labels[sel]))
            loss = alpha * kd + (1.0 - alpha) * ce
            loss = with_load_balancing(model, loss, aux_loss_weight)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            running += float(loss.detach())
        losses.append(running / max(steps, 1))
    model.eval()
    return model, {"epochs": epochs, "steps": steps * epochs, "target_examples": n, "transfer_examples": len(g_ids),
                   "losses": losses}
