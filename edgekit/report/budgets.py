"""Budget and parity checks: model-card budgets (models/NAME.toml [budgets]) and parity verdicts become Check
records, pass/fail, shown in every report format and turned into JUnit test cases.

Budget keys (docs/report.md):
- latency upper bounds, ms, per run (model x format x precision x target): p50_ms, p90_ms, p95_ms, p99_ms,
  mean_ms, load_ms, first_ms. Pass when value < limit ("p90 < 100 ms").
- memory upper bounds per run: peak_memory_mib (RSS high-water during inference), model_memory_mib (RSS the load
  added); pass when value < limit.
- energy upper bound per run: energy_mj (mJ per inference above idle); pass when value < limit.
- any other key is a score metric lower bound (macro_f1, accuracy): pass when score >= limit. Scores of the very
  variant (format/precision) are checked per run; when only the model's own scores exist (e.g. PyTorch fp32), one
  check per model says so instead of pretending every artifact was evaluated.
A missing figure makes the check "skipped" with the reason, never a pass and never a 0. Emulated timings are not
real timings: latency budgets are skipped for them. Predicted figures are checked and labelled predicted.
"""

from __future__ import annotations

from edgekit.report.records import Check, ReportRow

MIB = 1024 * 1024
LATENCY_BUDGETS = {"p50_ms": "p50_ms", "p90_ms": "p90_ms", "p95_ms": "p95_ms", "p99_ms": "p99_ms",
                   "mean_ms": "mean_ms", "load_ms": "load_ms", "first_ms": "first_ms"}
MEMORY_BUDGETS = {"peak_memory_mib": "peak_rss_bytes", "model_memory_mib": "model_rss_bytes"}
ENERGY_BUDGETS = {"energy_mj": "j_per_inference"}


def _fmt(value: float, unit: str) -> str:
    return f"{value:.4g} {unit}".strip()


def _upper(row: ReportRow, key: str, limit: float, value: float | None, unit: str, provenance: str | None,
           missing: str) -> Check:
    base = dict(kind="budget", name=f"{row.artifact_label} {key} < {limit:g} @ {row.target}", model=row.model,
                format=row.format, precision=row.precision, target=row.target, run_id=row.run_id, budget=key, op="<",
                limit=limit, unit=unit, provenance=provenance)
    if value is None:
        return Check(status="skipped", message=missing, value=None, **base)
    label = f" ({provenance})" if provenance else ""
    if value < limit:
        return Check(status="pass", message=f"{_fmt(value, unit)}{label} < {_fmt(limit, unit)}", value=value, **base)
    return Check(status="fail", message=f"{_fmt(value, unit)}{label} is not below the budget {_fmt(limit, unit)}",
                 value=value, **base)


def run_budget_checks(row: ReportRow, budgets: dict[str, float]) -> list[Check]:
    """Latency, memory and energy budgets for one run (score budgets: see score_budget_checks)."""
    if row.status != "ok":
        return []
    out: list[Check] = []
    for key, limit in budgets.items():
        if key in LATENCY_BUDGETS:
            lat = row.latency
            if lat is not None and lat.provenance == "emulated":
                out.append(Check(kind="budget", name=f"{row.artifact_label} {key} < {limit:g} @ {row.target}",
                                 model=row.model, format=row.format, precision=row.precision, target=row.target,
                                 run_id=row.run_id, budget=key, op="<", limit=limit, unit="ms", provenance="emulated",
                                 status="skipped",
                                 message="timing is emulated (instruction-set emulator), not a real latency"))
                continue
            value = getattr(lat, LATENCY_BUDGETS[key]) if lat is not None else None
            out.append(_upper(row, key, limit, value, "ms", lat.provenance if lat else None,
                              f"no {key.removesuffix('_ms')} latency recorded for this run"))
        elif key in MEMORY_BUDGETS:
            mem = row.memory
            raw = getattr(mem, MEMORY_BUDGETS[key]) if mem is not None else None
            out.append(_upper(row, key, limit, raw / MIB if raw is not None else None, "MiB",
                              mem.provenance if mem else None, "no memory figure recorded for this run"))
        elif key in ENERGY_BUDGETS:
            en = row.energy
            j = en.j_per_inference if en is not None else None
            out.append(_upper(row, key, limit, j * 1000.0 if j is not None else None, "mJ",
                              en.provenance if en else None, "no energy figure recorded for this run"))
    return out


def _lower(name: str, model: str, key: str, limit: float, value: float | None, scope_note: str,
           row: ReportRow | None, missing: str) -> Check:
    base = dict(kind="budget", name=name, model=model, budget=key, op=">=", limit=limit, unit="",
                format=row.format if row else None, precision=row.precision if row else None,
                target=row.target if row else None, run_id=row.run_id if row else None, provenance=None)
    if value is None:
        return Check(status="skipped", message=missing, value=None, **base)
    if value >= limit:
        return Check(status="pass", message=f"{key} {value:.4f} >= {limit:g}{scope_note}", value=value, **base)
    return Check(status="fail", message=f"{key} {value:.4f} is below the budget {limit:g}{scope_note}", value=value,
                 **base)


def score_budget_checks(model: str, rows: list[ReportRow], budgets: dict[str, float],
                        model_scores: dict[str, tuple[float | None, str]]) -> list[Check]:
    """Score budgets (keys that are not latency/memory/energy) for one model. `rows` are the model's runs (their
    `accuracy` holds variant scores when they exist); `model_scores` maps metric -> (model-level score, source)."""
    out: list[Check] = []
    for key, limit in budgets.items():
        if key in LATENCY_BUDGETS or key in MEMORY_BUDGETS or key in ENERGY_BUDGETS:
            continue
        variant_rows = [r for r in rows if r.accuracy is not None and r.accuracy.metric == key
                        and r.accuracy.scope == "variant" and r.accuracy.value is not None]
        if variant_rows:
            for r in variant_rows:
                assert r.accuracy is not None
                out.append(_lower(f"{r.artifact_label} {key} >= {limit:g}", model, key, limit, r.accuracy.value,
                                  f" ({r.accuracy.domains} domains, {r.accuracy.source})", r, ""))
            continue
        value, source = model_scores.get(key, (None, ""))
        out.append(_lower(f"{key} >= {limit:g} (model)", model, key, limit, value,
                          f" (model-level scores: {source})" if source else "", None,
                          f"no {key} scores in the results store for {model}: run `edgekit eval {model}`"))
    return out


def parity_check(row: ReportRow) -> Check:
    """pass / fail from the artifact's parity proof; skipped when it could not be executed or is unknown."""
    p = row.parity
    base = dict(kind="parity", name=f"{row.artifact_label} parity vs PyTorch", model=row.model, format=row.format,
                precision=row.precision, target=row.target, run_id=row.run_id)
    detail = []
    if p.max_abs is not None:
        detail.append(f"max abs err {p.max_abs:.2e}")
    if p.cosine is not None:
        detail.append(f"cosine {p.cosine:.6f}")
    if p.top1_agreement is not None:
        detail.append(f"top-1 agreement {p.top1_agreement:.2f}")
    text = ", ".join(detail) or p.note
    if p.verdict == "pass":
        return Check(status="pass", message=f"parity pass ({text})" if text else "parity pass", **base)
    if p.verdict in ("fail", "error"):
        return Check(status="fail", message=f"parity {p.verdict}" + (f" ({text})" if text else ""), **base)
    if p.verdict == "not-executed":
        return Check(status="skipped", message=f"parity not executed on this host ({p.note or 'validated only'})",
                     **base)
    return Check(status="skipped", message=p.note or "no parity record for this artifact (no manifest beside it)",
                 **base)


def on_target_check(row: ReportRow) -> Check:
    """A remote or emulated run's outputs compared with this host's runtime on the same inputs."""
    p = row.parity
    status = {"pass": "pass", "fail": "fail", "error": "fail"}.get(p.on_target or "", "skipped")
    note = f" ({p.on_target_note})" if p.on_target_note else ""
    return Check(kind="parity", name=f"{row.artifact_label} outputs on {row.target} vs this host", model=row.model,
                 format=row.format, precision=row.precision, target=row.target, run_id=row.run_id, status=status,
                 message=f"on-target parity {p.on_target}{note}")


def run_status_check(row: ReportRow) -> Check | None:
    """A run that failed or was killed is an error in CI; a skipped run is skipped. ok runs need no case."""
    if row.status == "ok":
        return None
    status = "skipped" if row.status == "skipped" else "error"
    return Check(kind="run", name=f"{row.artifact_label} benchmark run @ {row.target}", model=row.model,
                 format=row.format, precision=row.precision, target=row.target, run_id=row.run_id, status=status,
                 message=f"run {row.status}: {row.error or 'no reason recorded'}")
