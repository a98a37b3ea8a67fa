"""The report's data model: one ReportRow per benchmark run, the budget/parity checks made on them, and the
robustness-metric points. Every view (Markdown, HTML, JSON, CSV, JUnit) renders this one model.

Units are in the field names (ms, bytes, J). Every latency, memory and energy group carries its provenance label
(measured | emulated | predicted | modeled). A figure that was not obtained is None (JSON null, CSV empty, "—" in
Markdown/HTML), never 0. docs/report.md documents the JSON and CSV schemas.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any

REPORT_SCHEMA = "edgekit-report"
REPORT_SCHEMA_VERSION = 1
CHECK_STATUSES = ("pass", "fail", "error", "skipped")


def _known(cls: type, d: dict[str, Any]) -> dict[str, Any]:
    names = {f.name for f in fields(cls)}
    return {k: v for k, v in d.items() if k in names}


@dataclass
class LatencyFigures:
    """Steady-state latency of one run, ms, plus model-load and first-inference time (same provenance).
    `samples_ms` are the steady-state latencies in measured order (empty when the store has none)."""

    provenance: str
    n: int | None = None
    mean_ms: float | None = None
    std_ms: float | None = None
    min_ms: float | None = None
    max_ms: float | None = None
    p50_ms: float | None = None
    p90_ms: float | None = None
    p95_ms: float | None = None
    p99_ms: float | None = None
    cv: float | None = None
    ci_median_ms: tuple[float, float] | None = None
    ci_level: float | None = None
    load_ms: float | None = None
    first_ms: float | None = None
    calibration_error: float | None = None  # predicted latencies: the cost model's relative error on held-out runs
    samples_ms: list[float] = field(default_factory=list)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> LatencyFigures:
        d = _known(cls, d)
        if d.get("ci_median_ms") is not None:
            d["ci_median_ms"] = tuple(d["ci_median_ms"])
        return cls(**d)


@dataclass
class MemoryFigures:
    """Memory of the benchmark process, bytes. peak_rss_bytes: RSS high-water mark during inference (`scope` says
    whether it could be reset after loading: "inference", else "process"); model_rss_bytes: RSS the load added."""

    provenance: str
    peak_rss_bytes: int | None = None
    model_rss_bytes: int | None = None
    scope: str | None = None

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> MemoryFigures:
        return cls(**_known(cls, d))


@dataclass
class EnergyFigures:
    """Energy per inference above idle, J, with its error band (J); provenance measured (a counter) or modeled."""

    provenance: str
    j_per_inference: float | None = None
    error_band_j: float | None = None
    source: str | None = None
    assumption: str | None = None

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> EnergyFigures:
        return cls(**_known(cls, d))


@dataclass
class ParityFigures:
    """The artifact's parity proof vs PyTorch. verdict: pass | fail | error | not-executed | unknown.
    source: "manifest" (the export's manifest record of the artifact, carried with the run; for runs stored before
    schema 1, read from the manifest.json beside the artifact) | "run" (a schema-0 run record carried its own) | None."""

    verdict: str = "unknown"
    source: str | None = None
    max_abs: float | None = None
    cosine: float | None = None
    top1_agreement: float | None = None
    note: str = ""
    on_target: str | None = None  # remote/emulated runs: the target's outputs vs this host's runtime (pass | fail)
    on_target_note: str = ""

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ParityFigures:
        return cls(**_known(cls, d))


@dataclass
class AccuracyFigures:
    """Task quality of the model, macro-F1 or top-1 accuracy in [0, 1]: mean over the tasks of each domain, then
    over domains.
    scope: "variant" (scores of this very format/precision) | "model" (scores of the model, e.g. PyTorch fp32)."""

    metric: str
    value: float | None
    domains: int = 0
    scope: str = "model"
    source: str = ""

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> AccuracyFigures:
        return cls(**_known(cls, d))


@dataclass
class ReportRow:
    """One benchmark run: model x format x precision x target, and what was measured."""

    run_id: int | None
    model: str
    format: str
    precision: str
    target: str
    status: str
    kind: str = "bench"
    group: str | None = None
    created: str | None = None
    error: str | None = None
    runtime: str | None = None
    runtime_version: str | None = None
    artifact_path: str | None = None
    artifact_sha256: str | None = None
    latency: LatencyFigures | None = None
    memory: MemoryFigures | None = None
    energy: EnergyFigures | None = None
    parity: ParityFigures = field(default_factory=ParityFigures)
    accuracy: AccuracyFigures | None = None  # macro-F1 (metric macro_f1)
    top1: AccuracyFigures | None = None  # top-1 accuracy (metric accuracy), same lookup as `accuracy`
    compression_intensity: float | None = None
    warnings: list[str] = field(default_factory=list)
    env: dict[str, Any] = field(default_factory=dict)
    threads: int | None = None  # the threads the runtime really used (its own value, result.runtime.threads)
    sweep: dict[str, int] = field(default_factory=dict)  # the run's sweep point: threads / batch / seq_len
    size_bytes: int | None = None  # the artifact's size on disk

    @property
    def key(self) -> tuple[str, str, str, str]:
        """What rows are matched on across reports: (model, format, precision, target)."""
        return (self.model, self.format, self.precision, self.target)

    @property
    def label(self) -> str:
        return f"{self.model} {self.format}/{self.precision} @ {self.target}"

    @property
    def artifact_label(self) -> str:
        return f"{self.format}/{self.precision}"

    def to_dict(self, samples: bool = True) -> dict[str, Any]:
        d = asdict(self)
        if d["latency"] is not None:
            if d["latency"]["ci_median_ms"] is not None:
                d["latency"]["ci_median_ms"] = list(d["latency"]["ci_median_ms"])
            if not samples:
                d["latency"].pop("samples_ms")
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ReportRow:
        d = dict(d)
        subs = {"latency": LatencyFigures, "memory": MemoryFigures, "energy": EnergyFigures,
                "accuracy": AccuracyFigures, "top1": AccuracyFigures}
        for name, sub in subs.items():
            d[name] = sub.from_dict(d[name]) if d.get(name) else None
        d["parity"] = ParityFigures.from_dict(d.get("parity") or {})
        return cls(**_known(cls, d))


@dataclass
class Check:
    """One budget or parity check, pass/fail. kind: budget | parity | run. op: "<" (upper bound) or ">="
    (lower bound). value is None when the figure is missing (then status is skipped, never a made-up 0)."""

    kind: str
    name: str
    model: str
    status: str
    message: str
    format: str | None = None
    precision: str | None = None
    target: str | None = None
    run_id: int | None = None
    budget: str | None = None
    op: str | None = None
    limit: float | None = None
    value: float | None = None
    unit: str = ""
    provenance: str | None = None

    @property
    def passed(self) -> bool:
        return self.status == "pass"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Check:
        return cls(**_known(cls, d))


@dataclass
class MetricPoint:
    """Robustness metrics of one model variant (edgekit.metrics): DSI, GG and CDTR against compression
    intensity c in [0, 1). GG and CDTR are relative to `reference`; None where they cannot be computed."""

    model: str
    variant: str
    compression_intensity: float | None
    dsi: float | None
    gg: float | None
    cdtr: float | None
    reference: str | None = None
    target_domain: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> MetricPoint:
        return cls(**_known(cls, d))


@dataclass
class Report:
    """A report over a selection of runs. `selection` says how the runs were chosen; `notes` are things the reader
    should know (missing scores, runs without samples, ...)."""

    generated: str
    edgekit_version: str
    store: str
    selection: dict[str, Any]
    rows: list[ReportRow]
    checks: list[Check] = field(default_factory=list)
    metrics: list[MetricPoint] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    budgets: dict[str, dict[str, float]] = field(default_factory=dict)  # model -> its card's budgets
    profiles: list[dict[str, Any]] = field(default_factory=list)  # "where the time goes" (report/profiles.py)
    claims: list[dict[str, Any]] = field(default_factory=list)  # "Paper claims" per study (report/claims.py)
    schema: str = REPORT_SCHEMA
    schema_version: int = REPORT_SCHEMA_VERSION

    def summary(self) -> dict[str, Any]:
        """Headline counts: runs by status, checks by status, targets, models."""
        runs: dict[str, int] = {}
        for r in self.rows:
            runs[r.status] = runs.get(r.status, 0) + 1
        checks = {s: 0 for s in CHECK_STATUSES}
        for c in self.checks:
            checks[c.status] = checks.get(c.status, 0) + 1
        budget = [c for c in self.checks if c.kind == "budget"]
        parity = [c for c in self.checks if c.kind == "parity"]
        return {
            "runs": len(self.rows), "runs_by_status": runs,
            "models": sorted({r.model for r in self.rows}), "targets": sorted({r.target for r in self.rows}),
            "checks": checks,
            "budgets": {s: sum(1 for c in budget if c.status == s) for s in CHECK_STATUSES},
            "parity": {s: sum(1 for c in parity if c.status == s) for s in CHECK_STATUSES},
            "verdict": self.verdict(),
        }

    def verdict(self) -> str:
        """"fail" when any check failed or errored, else "pass" (skipped checks do not fail a report)."""
        return "fail" if any(c.status in ("fail", "error") for c in self.checks) else "pass"

    def checks_for(self, row: ReportRow) -> list[Check]:
        return [c for c in self.checks if c.run_id is not None and c.run_id == row.run_id]

    def to_dict(self, samples: bool = True) -> dict[str, Any]:
        return {
            "schema": self.schema, "schema_version": self.schema_version, "generated": self.generated,
            "edgekit_version": self.edgekit_version, "store": self.store, "selection": self.selection,
            "summary": self.summary(), "rows": [r.to_dict(samples) for r in self.rows],
            "budgets": self.budgets, "checks": [c.to_dict() for c in self.checks],
            "metrics": [m.to_dict() for m in self.metrics], "notes": list(self.notes),
            "profiles": list(self.profiles), "claims": list(self.claims),
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Report:
        return cls(
            generated=d.get("generated", ""), edgekit_version=d.get("edgekit_version", ""), store=d.get("store", ""),
            selection=dict(d.get("selection") or {}), rows=[ReportRow.from_dict(r) for r in d.get("rows", [])],
            checks=[Check.from_dict(c) for c in d.get("checks", [])],
            metrics=[MetricPoint.from_dict(m) for m in d.get("metrics", [])], notes=list(d.get("notes", [])),
            budgets={m: dict(b) for m, b in (d.get("budgets") or {}).items()},
            profiles=list(d.get("profiles") or []), claims=list(d.get("claims") or []),
            schema=d.get("schema", REPORT_SCHEMA), schema_version=int(d.get("schema_version", REPORT_SCHEMA_VERSION)),
        )
