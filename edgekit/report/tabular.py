"""JSON and CSV views of a Report, and reading them back (for `edgekit compare`). Schemas: docs/report.md.

JSON is the canonical form: {"schema": "edgekit-report", "schema_version": 1, ..., "rows": [...], "checks": [...]}
with latency samples included by default. CSV is one flat row per run; every latency/memory/energy group is
followed by its `*_provenance` column. Missing figures are empty cells (CSV) or null (JSON), never 0.
"""

from __future__ import annotations

import csv
import io
import json
import math
from pathlib import Path
from typing import Any

from edgekit.errors import EdgekitError
from edgekit.report.records import (
    REPORT_SCHEMA,
    REPORT_SCHEMA_VERSION,
    AccuracyFigures,
    EnergyFigures,
    LatencyFigures,
    MemoryFigures,
    ParityFigures,
    Report,
    ReportRow,
)

CSV_COLUMNS: tuple[str, ...] = (
    "schema_version", "run_id", "group", "created", "model", "format", "precision", "target", "status", "runtime",
    "runtime_version",
    "n", "p50_ms", "p90_ms", "p95_ms", "p99_ms", "mean_ms", "std_ms", "min_ms", "max_ms", "ci_median_low_ms",
    "ci_median_high_ms", "ci_level", "load_ms", "first_ms", "latency_provenance",
    "peak_rss_bytes", "model_rss_bytes", "memory_provenance",
    "energy_j_per_inference", "energy_error_band_j", "energy_provenance",
    "parity", "parity_max_abs", "parity_cosine",
    "accuracy_metric", "accuracy", "accuracy_scope", "top1", "top1_scope", "compression_intensity",
    "budgets", "failed_checks", "warnings", "error", "artifact_sha256",
    "threads", "batch", "seq_len", "size_bytes",
)
# The first columns identify an edgekit report CSV.
CSV_SIGNATURE = CSV_COLUMNS[:9]
_LATENCY_COLS = ("n", "p50_ms", "p90_ms", "p95_ms", "p99_ms", "mean_ms", "std_ms", "min_ms", "max_ms", "ci_level",
                 "load_ms", "first_ms")


def render_json(report: Report, samples: bool = True) -> str:
    """The report as JSON (NaN never appears: missing figures are null)."""
    return json.dumps(report.to_dict(samples=samples), indent=2, default=str, allow_nan=False)


def _budget_summary(checks: list[Any]) -> tuple[str, str]:
    budget = [c for c in checks if c.kind == "budget"]
    failed = [c.budget or c.name for c in checks if c.status in ("fail", "error")]
    if not budget:
        state = "none"
    elif any(c.status in ("fail", "error") for c in budget):
        state = "fail"
    elif any(c.status == "pass" for c in budget):
        state = "pass"
    else:
        state = "skipped"
    return state, ";".join(failed)


def csv_row(report: Report, r: ReportRow) -> dict[str, Any]:
    lat, mem, en, acc, top1 = r.latency, r.memory, r.energy, r.accuracy, r.top1
    budgets, failed = _budget_summary(report.checks_for(r))
    row: dict[str, Any] = {
        "schema_version": report.schema_version, "run_id": r.run_id, "group": r.group, "created": r.created,
        "model": r.model, "format": r.format, "precision": r.precision, "target": r.target, "status": r.status,
        "runtime": r.runtime, "runtime_version": r.runtime_version,
        "latency_provenance": lat.provenance if lat else None,
        "ci_median_low_ms": lat.ci_median_ms[0] if lat and lat.ci_median_ms else None,
        "ci_median_high_ms": lat.ci_median_ms[1] if lat and lat.ci_median_ms else None,
        "peak_rss_bytes": mem.peak_rss_bytes if mem else None, "model_rss_bytes": mem.model_rss_bytes if mem else None,
        "memory_provenance": mem.provenance if mem else None,
        "energy_j_per_inference": en.j_per_inference if en else None,
        "energy_error_band_j": en.error_band_j if en else None, "energy_provenance": en.provenance if en else None,
        "parity": r.parity.verdict, "parity_max_abs": r.parity.max_abs, "parity_cosine": r.parity.cosine,
        "accuracy_metric": acc.metric if acc else None, "accuracy": acc.value if acc else None,
        "accuracy_scope": acc.scope if acc else None, "top1": top1.value if top1 else None,
        "top1_scope": top1.scope if top1 else None, "compression_intensity": r.compression_intensity,
        "budgets": budgets, "failed_checks": failed, "warnings": ";".join(r.warnings), "error": r.error,
        "artifact_sha256": r.artifact_sha256,
        "threads": r.threads, "batch": r.sweep.get("batch"), "seq_len": r.sweep.get("seq_len"),
        "size_bytes": r.size_bytes,
    }
    for col in _LATENCY_COLS:
        row[col] = getattr(lat, col) if lat else None
    return row


def render_csv(report: Report) -> str:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(CSV_COLUMNS), lineterminator="\n")
    writer.writeheader()
    for r in report.rows:
        writer.writerow({k: ("" if v is None else v) for k, v in csv_row(report, r).items()})
    return buf.getvalue()


# -- reading back --------------------------------------------------------------------------------------------------


def _not_ours(path: Path, why: str) -> EdgekitError:
    return EdgekitError(f"{path} is not an edgekit report ({why})",
                        "give a .json or .csv file written by `edgekit report`, run ids, or a group name")


def read_json_report(path: Path) -> Report:
    try:
        data = json.loads(path.read_text())
    except UnicodeDecodeError as exc:
        raise _not_ours(path, "not text") from exc
    except json.JSONDecodeError as exc:
        raise _not_ours(path, f"invalid JSON at line {exc.lineno}") from exc
    if not isinstance(data, dict) or data.get("schema") != REPORT_SCHEMA:
        raise _not_ours(path, f'no "schema": "{REPORT_SCHEMA}" field')
    version = data.get("schema_version")
    if not isinstance(version, int) or version > REPORT_SCHEMA_VERSION:
        raise EdgekitError(f"{path} has report schema_version {version!r}; this edgekit reads up to "
                           f"{REPORT_SCHEMA_VERSION}", "upgrade edgekit, or re-create the report with this version")
    if not isinstance(data.get("rows"), list):
        raise _not_ours(path, 'no "rows" list')
    try:
        return Report.from_dict(data)
    except (TypeError, ValueError, KeyError, AttributeError) as exc:
        raise _not_ours(path, f"a row does not match the schema: {exc}") from exc


def _f(text: str | None) -> float | None:
    if text is None or text == "":
        return None
    try:
        v = float(text)
    except ValueError:
        return None
    return v if math.isfinite(v) else None


def _i(text: str | None) -> int | None:
    v = _f(text)
    return int(v) if v is not None else None


def read_csv_report(path: Path) -> Report:
    """A CSV report read back: rows with summary figures (no samples: comparisons from CSV have no CI)."""
    try:
        text = path.read_text()
    except UnicodeDecodeError as exc:
        raise _not_ours(path, "not text") from exc
    reader = csv.DictReader(io.StringIO(text))
    head = tuple(reader.fieldnames or ())
    if head[: len(CSV_SIGNATURE)] != CSV_SIGNATURE:
        raise _not_ours(path, f"its header does not start with {','.join(CSV_SIGNATURE)}")
    rows = []
    for rec in reader:
        if _i(rec.get("schema_version")) is None or (_i(rec["schema_version"]) or 0) > REPORT_SCHEMA_VERSION:
            raise EdgekitError(f"{path} has report schema_version {rec.get('schema_version')!r}; this edgekit reads "
                               f"up to {REPORT_SCHEMA_VERSION}", "re-create the report with this edgekit")
        lat = None
        if rec.get("latency_provenance"):
            lo, hi = _f(rec.get("ci_median_low_ms")), _f(rec.get("ci_median_high_ms"))
            lat = LatencyFigures(provenance=rec["latency_provenance"],
                                 ci_median_ms=(lo, hi) if lo is not None and hi is not None else None,
                                 **{c: (_i(rec.get(c)) if c == "n" else _f(rec.get(c))) for c in _LATENCY_COLS})
        mem = MemoryFigures(rec["memory_provenance"], _i(rec.get("peak_rss_bytes")), _i(rec.get("model_rss_bytes"))) \
            if rec.get("memory_provenance") else None
        en = EnergyFigures(rec["energy_provenance"], _f(rec.get("energy_j_per_inference")),
                           _f(rec.get("energy_error_band_j"))) if rec.get("energy_provenance") else None
        acc = AccuracyFigures(rec["accuracy_metric"], _f(rec.get("accuracy")), 0, rec.get("accuracy_scope") or "model",
                              "csv") if rec.get("accuracy_metric") else None
        top1 = AccuracyFigures("accuracy", _f(rec.get("top1")), 0, rec.get("top1_scope") or "model", "csv") \
            if rec.get("top1_scope") else None
        rows.append(ReportRow(
            run_id=_i(rec.get("run_id")), model=rec["model"], format=rec["format"], precision=rec["precision"],
            target=rec["target"], status=rec["status"], group=rec.get("group") or None,
            created=rec.get("created") or None, error=rec.get("error") or None, runtime=rec.get("runtime") or None,
            runtime_version=rec.get("runtime_version") or None, artifact_sha256=rec.get("artifact_sha256") or None,
            latency=lat, memory=mem, energy=en, accuracy=acc, top1=top1,
            parity=ParityFigures(verdict=rec.get("parity") or "unknown", source="csv",
                                 max_abs=_f(rec.get("parity_max_abs")), cosine=_f(rec.get("parity_cosine"))),
            compression_intensity=_f(rec.get("compression_intensity")),
            warnings=[w for w in (rec.get("warnings") or "").split(";") if w],
            threads=_i(rec.get("threads")), size_bytes=_i(rec.get("size_bytes")),
            sweep={k: v for k in ("batch", "seq_len") if (v := _i(rec.get(k))) is not None},
        ))
    return Report(generated="", edgekit_version="", store=str(path), selection={"file": str(path)}, rows=rows)


def read_report_file(path: Path) -> Report:
    """A report written by `edgekit report` (.json or .csv); anything else raises one clear EdgekitError."""
    if not path.is_file():
        raise EdgekitError(f"report file {path} does not exist", "check the path")
    suffix = path.suffix.lower()
    if suffix == ".json":
        return read_json_report(path)
    if suffix == ".csv":
        return read_csv_report(path)
    raise _not_ours(path, f"unknown file type {suffix or '(none)'}")
