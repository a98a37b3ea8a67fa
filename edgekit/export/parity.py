"""Parity: does an exported artifact compute what the PyTorch model computes?

For each input (the card's examples plus seeded random ones) both run; over all outputs and inputs we record
max abs error, max rel error (|a - b| / max|ref|, scale-relative), cosine similarity of the flattened outputs, and
for classifiers the share of inputs whose top-1 class agrees. Verdict: pass when
max_abs <= atol + rtol * max|ref|, cosine >= min_cosine and top-1 agreement >= min_top1.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from edgekit.export.artifact import ParityReport
from edgekit.modelsource import LoadedModel, flatten_outputs
from edgekit.runtime.base import Session

CLASSIFIER_TASKS = ("classification", "lm", "ctr")


def parity_inputs(loaded: LoadedModel, n_random: int = 4, seed: int = 0) -> list[dict[str, np.ndarray]]:
    """The card's/user's examples followed by `n_random` seeded random inputs."""
    rng = np.random.default_rng(seed + 1)
    feeds = list(loaded.examples)
    feeds += [{s.name: s.random(rng) for s in loaded.inputs} for _ in range(n_random)]
    return feeds


def reference_outputs(loaded: LoadedModel, feeds: Sequence[dict[str, np.ndarray]]) -> list[list[np.ndarray]]:
    refs = []
    with torch.inference_mode():
        for feed in feeds:
            out = loaded.module(*loaded.example_tensors(feed))
            refs.append([t.detach().float().numpy() for t in flatten_outputs(out)])
    return refs


def compare(
    refs: list[list[np.ndarray]],
    outs: list[list[np.ndarray]],
    tolerance: dict[str, float],
    classifier: bool,
) -> ParityReport:
    """Compare per-input output lists; shapes must match (a mismatch is a failure with a note)."""
    max_abs = 0.0
    scale = 0.0
    dots = na = nb = 0.0
    agree = 0
    for ref_list, out_list in zip(refs, outs, strict=True):
        if len(ref_list) != len(out_list):
            return ParityReport(verdict="fail", n_inputs=len(refs), tolerance=tolerance,
                                note=f"artifact gives {len(out_list)} outputs, PyTorch {len(ref_list)}")
        for ref, out in zip(ref_list, out_list, strict=True):
            out = np.asarray(out, dtype=np.float64)
            ref = ref.astype(np.float64)
            if out.shape != ref.shape:
                if out.size != ref.size:
                    return ParityReport(verdict="fail", n_inputs=len(refs), tolerance=tolerance,
                                        note=f"output shape {out.shape} != PyTorch {ref.shape}")
                out = out.reshape(ref.shape)
            max_abs = max(max_abs, float(np.max(np.abs(out - ref))) if ref.size else 0.0)
            scale = max(scale, float(np.max(np.abs(ref))) if ref.size else 0.0)
            dots += float(np.sum(out * ref))
            na += float(np.sum(out * out))
            nb += float(np.sum(ref * ref))
        if classifier:
            r, o = ref_list[0], np.asarray(out_list[0]).reshape(ref_list[0].shape)
            agree += float(np.mean(np.argmax(r, axis=-1) == np.argmax(o, axis=-1)))
    cosine = dots / np.sqrt(na * nb) if na > 0 and nb > 0 else (1.0 if na == nb else 0.0)
    max_rel = max_abs / scale if scale > 0 else max_abs
    top1 = agree / len(refs) if classifier and refs else None
    ok = (
        max_abs <= tolerance["atol"] + tolerance["rtol"] * scale
        and cosine >= tolerance["min_cosine"]
        and (top1 is None or top1 >= tolerance["min_top1"])
    )
    return ParityReport(
        verdict="pass" if ok else "fail",
        n_inputs=len(refs),
        max_abs=max_abs,
        max_rel=max_rel,
        cosine=float(cosine),
        top1_agreement=top1,
        tolerance=tolerance,
    )


def check_parity(
    loaded: LoadedModel,
    session: Session,
    feeds: Sequence[dict[str, np.ndarray]],
    refs: list[list[np.ndarray]],
    tolerance: dict[str, float],
) -> ParityReport:
    """Run `session` on every feed and compare with the PyTorch references."""
    outs = [session.run(feed) for feed in feeds]
    report = compare(refs, outs, tolerance, classifier=loaded.task in CLASSIFIER_TASKS)
    info = session.describe()
    report.runtime = info.get("runtime")
    report.runtime_version = info.get("version")
    return report
