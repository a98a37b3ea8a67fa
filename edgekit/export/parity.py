"""Parity: does an exported artifact compute what the PyTorch model computes?

For each input (the card's examples plus seeded random ones) both run. Each output is judged on its own, by its kind
(edgekit.export.outputs): every output by max abs error against `atol + rtol * scale` (scale = max |PyTorch|, over
all inputs) and cosine similarity; class/token logits by top-1 agreement over their class axis, dense per-pixel
logits by per-pixel agreement over the channel axis, embeddings/regression/boxes by signal-to-noise ratio.

Before judging, the PyTorch reference itself is checked: an output that is all zeros, constant, of near-zero scale
(below `min_scale`) or the same for every input cannot tell a right artifact from a wrong one, so the verdict is
`inconclusive` with the reason, never `pass`. Verdicts: pass | fail | inconclusive (| not-executed | error, set by
the pipeline). A failing verdict's note names the output, the metric, its value and the threshold.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from edgekit.export.artifact import ParityReport
from edgekit.export.outputs import CLASS_KINDS, OutputKind, infer_kind, resolve_kinds
from edgekit.modelsource import LoadedModel, flatten_outputs
from edgekit.runtime.base import Session

CLASSIFIER_TASKS = ("classification", "lm")  # kept for callers; kinds now come from edgekit.export.outputs
MIN_SCALE = 1e-6  # below this, outputs are numerical dust: fp16's resolution is ~6e-8, its normal range starts 6e-5
SNR_CAP_DB = 300.0  # an exact match has infinite SNR; JSON has no infinity


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


def output_kinds(loaded: LoadedModel, refs: list[list[np.ndarray]]) -> list[OutputKind]:
    """Each output's kind: the card's [output_kinds] and task, `--task` (loaded.task), else inferred from shape."""
    names = list(loaded.outputs) or [f"output_{i}" for i in range(len(refs[0]) if refs else 0)]
    shapes = [r.shape for r in refs[0]] if refs else []
    names = (names + [f"output_{i}" for i in range(len(names), len(shapes))])[: len(shapes)]
    declared = dict(getattr(loaded.card, "output_kinds", None) or {})
    by = f"card {loaded.card.source} [output_kinds]" if loaded.card is not None else "card [output_kinds]"
    return resolve_kinds(names, shapes, loaded.task or None, declared, by)


def declare_task(loaded: LoadedModel, task: str) -> list[OutputKind]:
    """Set `--task` on a loaded model and check it against the model's outputs now (one EdgekitError, exit 2, before
    anything is exported). Returns the resolved kinds."""
    loaded.task = task.strip()
    return output_kinds(loaded, reference_outputs(loaded, loaded.examples[:1]))


def _distinct(feeds: Sequence[dict[str, np.ndarray]] | None) -> bool:
    """True when at least two parity inputs differ (only then can an output be "the same for every input")."""
    if not feeds or len(feeds) < 2:
        return False
    first = feeds[0]
    return any(any(not np.array_equal(f[k], first[k]) for k in first) for f in feeds[1:])


def _tol(tolerance: dict[str, float]) -> dict[str, float]:
    """The tolerance with every threshold present: older cards lack the per-kind ones, so they follow min_top1 /
    min_cosine (an SNR equivalent to the cosine bound: 1 - cos ~ noise/signal / 2)."""
    t = dict(tolerance)
    t.setdefault("atol", 1e-4)
    t.setdefault("rtol", 1e-3)
    t.setdefault("min_cosine", 0.99999)
    t.setdefault("min_top1", 1.0)
    t.setdefault("min_pixel", t["min_top1"])
    t.setdefault("min_snr_db", round(-10 * math.log10(max(2 * (1 - t["min_cosine"]), 1e-12)), 1))
    t.setdefault("min_scale", MIN_SCALE)
    return t


def _g(x: float) -> str:
    return f"{x:.3g}" if 1e-3 <= abs(x) < 1e4 or x == 0 else f"{x:.2e}"


def _degenerate(name: str, refs: list[np.ndarray], min_scale: float, distinct: bool) -> str | None:
    """Why this PyTorch output cannot judge an artifact (None when it can)."""
    if any(not np.all(np.isfinite(r)) for r in refs):
        return (f"reference output {name!r} has NaN/inf in PyTorch itself: fix the model (or its inputs) so "
                "PyTorch computes finite values")
    scale = max((float(np.max(np.abs(r))) for r in refs if r.size), default=0.0)
    if scale == 0.0:
        return f"reference output {name!r} is all zeros: re-initialise the head or pass trained weights"
    if scale < min_scale:
        return (f"reference output {name!r} has near-zero scale (max |value| {scale:.1e} < {min_scale:.0e}): "
                "any artifact passes at this scale; pass trained weights (or inputs in the range the model expects)")
    lo = min(float(np.min(r)) for r in refs if r.size)
    hi = max(float(np.max(r)) for r in refs if r.size)
    if hi - lo <= 1e-6 * scale:
        return (f"reference output {name!r} is constant ({_g(hi)} everywhere, for every input): check for a "
                "zero-initialised layer, or pass trained weights")
    if distinct and len(refs) >= 2 and all(
            r.shape == refs[0].shape and float(np.max(np.abs(r - refs[0]))) <= 1e-6 * scale for r in refs[1:]):
        return (f"reference output {name!r} is the same for all {len(refs)} inputs (it ignores its input): check "
                "for a zero-initialised layer, or pass trained weights")
    return None


def decisive_agreement(ref: np.ndarray, out: np.ndarray, axis: int, allowed: float) -> tuple[int, int, int]:
    """Top-1 (or per-pixel) agreement over the positions where the reference decides: its top-1 leads the
    runner-up by more than 2 x `allowed` (the precision's error bound: atol + rtol x scale). Within that margin an
    error the tolerance permits may flip the argmax, so a flip there says nothing (random-weight 1000-class heads
    are mostly such near ties under int8); a flip outside it is a real disagreement. Returns (agreeing, decisive,
    all) position counts."""
    r = np.moveaxis(ref, axis, -1).reshape(-1, ref.shape[axis])
    o = np.moveaxis(out, axis, -1).reshape(-1, out.shape[axis])
    if r.shape[-1] < 2:
        return r.shape[0], r.shape[0], r.shape[0]
    top2 = np.sort(r, axis=-1)[:, -2:]
    decisive = (top2[:, 1] - top2[:, 0]) > 2 * allowed
    agree = np.argmax(r, axis=-1) == np.argmax(o, axis=-1)
    return int(np.count_nonzero(agree & decisive)), int(np.count_nonzero(decisive)), int(r.shape[0])


def _judge(kind: OutputKind, refs: list[np.ndarray], outs: list[np.ndarray], tol: dict[str, float],
           distinct: bool) -> dict[str, Any]:
    """One output over all inputs: its metrics, status (pass/fail/inconclusive) and the reason."""
    entry: dict[str, Any] = {"name": kind.name, "kind": kind.kind, "axis": kind.axis, "kind_source": kind.source,
                             "status": "pass", "scale": None, "max_abs": None, "max_rel": None, "cosine": None,
                             "snr_db": None, "agreement": None, "near_ties": None, "reason": ""}
    finite_refs = [r for r in refs if r.size]
    scale = max((float(np.max(np.abs(r))) for r in finite_refs), default=0.0)
    entry["scale"] = scale if math.isfinite(scale) else None
    bad = sum(int(np.count_nonzero(~np.isfinite(o))) for o in outs)
    why = _degenerate(kind.name, refs, tol["min_scale"], distinct)
    if why is None and bad:
        entry.update(status="fail", reason=f"output {kind.name!r}: {bad} NaN/inf values (PyTorch has none)")
        return entry
    diff = [np.abs(o - r) for o, r in zip(outs, refs, strict=True)]
    max_abs = max((float(np.max(d)) for d in diff if d.size), default=0.0)
    dots = sum(float(np.sum(o * r)) for o, r in zip(outs, refs, strict=True))
    na = sum(float(np.sum(o * o)) for o in outs)
    nb = sum(float(np.sum(r * r)) for r in refs)
    noise = sum(float(np.sum(d * d)) for d in diff)
    entry["max_abs"] = max_abs
    entry["max_rel"] = max_abs / scale if scale > 0 else None
    entry["cosine"] = dots / math.sqrt(na * nb) if na > 0 and nb > 0 else None
    if nb > 0:
        entry["snr_db"] = SNR_CAP_DB if noise == 0 else min(SNR_CAP_DB, 10 * math.log10(nb / noise))
    if kind.kind in CLASS_KINDS and kind.axis is not None:
        allowed = tol["atol"] + tol["rtol"] * scale
        agreed = decisive = total = 0
        for r, o in zip(refs, outs, strict=True):
            if r.size:
                a, d, n = decisive_agreement(r, o, kind.axis, allowed)
                agreed, decisive, total = agreed + a, decisive + d, total + n
        entry["agreement"] = agreed / decisive if decisive else None
        entry["near_ties"] = (total - decisive) / total if total else None
    if why is not None:  # nothing here can judge the artifact: no agreement figure either
        entry.update(status="inconclusive", reason=why, agreement=None)
        return entry
    failures = []
    bound = tol["atol"] + tol["rtol"] * scale
    if max_abs > bound:
        failures.append(f"max abs err {_g(max_abs)} > {_g(bound)} (atol {_g(tol['atol'])} + rtol {_g(tol['rtol'])}"
                        f" x scale {_g(scale)}; max rel err {_g(max_abs / scale)})")
    if entry["cosine"] is None or entry["cosine"] < tol["min_cosine"]:
        failures.append(f"cosine {entry['cosine'] if entry['cosine'] is None else format(entry['cosine'], '.6f')}"
                        f" < {tol['min_cosine']}")
    if entry["agreement"] is not None:
        metric, need = ("per-pixel agreement", tol["min_pixel"]) if kind.kind == "dense" else \
            ("top-1 agreement", tol["min_top1"])
        if entry["agreement"] < need:
            failures.append(f"{metric} {entry['agreement']:.4f} < {need} (classes on axis {kind.axis}; "
                            f"positions where the reference's top-1 leads by more than 2 x {_g(bound)})")
    elif kind.kind not in CLASS_KINDS and entry["snr_db"] is not None and entry["snr_db"] < tol["min_snr_db"]:
        failures.append(f"SNR {entry['snr_db']:.1f} dB < {tol['min_snr_db']} dB")
    if failures:
        entry.update(status="fail", reason=f"output {kind.name!r} ({kind.describe()}): " + "; ".join(failures))
    return entry


def compare(
    refs: list[list[np.ndarray]],
    outs: list[list[np.ndarray]],
    tolerance: dict[str, float],
    classifier: bool | None = None,
    kinds: list[OutputKind] | None = None,
    feeds: Sequence[dict[str, np.ndarray]] | None = None,
) -> ParityReport:
    """Compare per-input output lists; shapes must match (a mismatch is a failure with a note).

    `kinds` says what each output is; without it, `classifier=True` makes the first output class logits over the
    last axis and the rest are inferred from their shapes. `feeds` (the inputs) lets an output that ignores its
    input be told apart from inputs that happen to be equal."""
    tol = _tol(tolerance)
    n = len(refs)

    def failed(note: str) -> ParityReport:
        return ParityReport(verdict="fail", n_inputs=n, tolerance=tolerance, note=note)

    for ref_list, out_list in zip(refs, outs, strict=True):
        if len(ref_list) != len(out_list):
            return failed(f"artifact gives {len(out_list)} outputs, PyTorch {len(ref_list)}")
        for ref, out in zip(ref_list, out_list, strict=True):
            if np.shape(out) != ref.shape and np.size(out) != ref.size:
                return failed(f"output shape {np.shape(out)} != PyTorch {ref.shape}")
    n_out = len(refs[0]) if refs else 0
    if kinds is None:
        names = [f"output_{i}" if n_out > 1 else "output" for i in range(n_out)]
        kinds = [infer_kind(nm, refs[0][i].shape) for i, nm in enumerate(names)]
        if classifier and kinds:
            kinds[0] = OutputKind(names[0], "class", refs[0][0].ndim - 1 if refs[0][0].ndim else None, "classifier")
    distinct = _distinct(feeds) if feeds is not None else n >= 2
    entries = []
    for i, kind in enumerate(kinds):
        r = [ref_list[i].astype(np.float64) for ref_list in refs]
        o = [np.asarray(out_list[i], dtype=np.float64).reshape(r[j].shape) for j, out_list in enumerate(outs)]
        entries.append(_judge(kind, r, o, tol, distinct))
    fails = [e for e in entries if e["status"] == "fail"]
    unsure = [e for e in entries if e["status"] == "inconclusive"]
    verdict = "fail" if fails else "inconclusive" if unsure else "pass"
    note = "; ".join(e["reason"] for e in (fails or unsure))

    def agg(key: str, fn):
        vals = [e[key] for e in entries if e[key] is not None]
        return fn(vals) if vals else None

    class_agree = [e["agreement"] for e in entries if e["agreement"] is not None and e["kind"] != "dense"]
    pixel_agree = [e["agreement"] for e in entries if e["agreement"] is not None and e["kind"] == "dense"]
    return ParityReport(
        verdict=verdict,
        n_inputs=n,
        max_abs=agg("max_abs", max),
        max_rel=agg("max_rel", max),
        cosine=agg("cosine", min),
        top1_agreement=min(class_agree) if class_agree else None,
        tolerance=tol,
        note=note,
        scale=agg("scale", min),
        snr_db=agg("snr_db", min),
        pixel_agreement=min(pixel_agree) if pixel_agree else None,
        outputs=entries,
    )


NOISE_MARGIN = 10.0  # a tolerance is never tighter than 10x PyTorch's own fp32-vs-fp64 error
NOISE_MAX_PARAMS = 50_000_000  # a float64 copy of a bigger model costs too much memory for a noise estimate


def measured_noise(loaded: LoadedModel, feeds: Sequence[dict[str, np.ndarray]],
                   refs: list[list[np.ndarray]]) -> list[float] | None:
    """PyTorch's own numerical noise per output: max |fp32 - fp64| over the parity inputs, running a float64 copy of
    the model. No artifact can be asked to match PyTorch better than PyTorch matches itself in higher precision.
    None when it cannot be measured (float64 unsupported by an op, or a model too large to copy). Measured once."""
    cached = getattr(loaded, "_parity_noise", False)
    if cached is not False:
        return cached
    noise: list[float] | None = None
    if sum(p.numel() for p in loaded.module.parameters()) <= NOISE_MAX_PARAMS:
        import copy

        try:
            double = copy.deepcopy(loaded.module).double().eval()
            noise = [0.0] * len(refs[0]) if refs else []
            with torch.inference_mode():
                for feed, ref in zip(feeds, refs, strict=True):
                    args = [t.double() if t.is_floating_point() else t for t in loaded.example_tensors(feed)]
                    outs = [t.detach().double().numpy() for t in flatten_outputs(double(*args))]
                    for i, (o, r) in enumerate(zip(outs, ref, strict=True)):
                        if o.size:
                            noise[i] = max(noise[i], float(np.max(np.abs(o - r.astype(np.float64)))))
            if not all(math.isfinite(x) for x in noise):
                noise = None
        except Exception:
            noise = None
    loaded._parity_noise = noise  # type: ignore[attr-defined]
    return noise


def calibrated_tolerance(loaded: LoadedModel, precision: str, tolerance: dict[str, float],
                         feeds: Sequence[dict[str, np.ndarray]], refs: list[list[np.ndarray]]
                         ) -> tuple[dict[str, float], str]:
    """The tolerance to judge with, and where it came from (recorded in the manifest): edgekit's default for the
    precision or the card's [tolerances.<precision>], raised where PyTorch's own fp32-vs-fp64 noise (x10) exceeds
    its absolute bound on some output."""
    card = loaded.card
    own = sorted(card.tolerances.get(precision, {})) if card is not None else []
    source = (f"card {card.source} [tolerances.{precision}] ({', '.join(own)}), edgekit defaults for the rest"
              if own else f"edgekit default for {precision} (docs/export.md)")
    noise = measured_noise(loaded, feeds, refs)
    if noise is None:
        return tolerance, source + "; PyTorch fp32-vs-fp64 noise not measured"
    tol = dict(tolerance)
    scales = [max((float(np.max(np.abs(r[i]))) for r in refs if r[i].size), default=0.0) for i in range(len(noise))]
    worst = max(noise, default=0.0)
    need = max((NOISE_MARGIN * n - tol.get("rtol", 0.0) * s for n, s in zip(noise, scales, strict=True)), default=0.0)
    if need > tol.get("atol", 0.0):
        tol["atol"] = float(f"{need:.2g}")
        return tol, (source + f"; atol raised to {tol['atol']:.2g}: {NOISE_MARGIN:g}x PyTorch's own fp32-vs-fp64 "
                     f"error ({worst:.2g})")
    return tol, source + f"; PyTorch's own fp32-vs-fp64 error {worst:.2g} is well inside it"


def check_parity(
    loaded: LoadedModel,
    session: Session,
    feeds: Sequence[dict[str, np.ndarray]],
    refs: list[list[np.ndarray]],
    tolerance: dict[str, float],
    kinds: list[OutputKind] | None = None,
) -> ParityReport:
    """Run `session` on every feed and compare with the PyTorch references."""
    outs = [session.run(feed) for feed in feeds]
    report = compare(refs, outs, tolerance, kinds=kinds if kinds is not None else output_kinds(loaded, refs),
                     feeds=feeds)
    info = session.describe()
    report.runtime = info.get("runtime")
    report.runtime_version = info.get("version")
    return report
