"""A fragility study's summary as the store keeps it (kind "study"): the StudyResult (edgekit/study/fragility.py)
written by its one writer, `log_study`, and read back by `StudyRecord.from_row` (the report's study figures)."""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edgekit.runlog import ROW_SCHEMA, Row, log


@dataclass
class StudyMetric:
    """DSI / GG / CDTR of one study variant against the study's reference (fractions; `c`: compression intensity)."""

    model: str
    c: float | None = None
    dsi: float | None = None
    gg: float | None = None
    cdtr: float | None = None
    target: str | None = None


@dataclass
class StudyClaim:
    """The study's verdict on one claim of the paper."""

    claim: str
    paper: str
    verdict: str
    measured: str


HEADLINE_VERSION = 1  # StudyHeadline's layout in the stored result ("headline": {..., "version": 1})


def _num(v: Any) -> float | None:
    ok = isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)
    return float(v) if ok else None


@dataclass
class StudyLatency:
    """One latency figure of the study's deployed pipeline (ms per inference): `provenance` "measured" (timed here)
    or "predicted" (cost model; `error` is the predictor's stated expected error, e.g. "median |error| 18 %")."""

    target: str
    compression: str
    p50_ms: float | None
    p90_ms: float | None
    provenance: str
    mean_ms: float | None = None
    runs: int | None = None
    batch: int | None = None
    tokens: int | None = None
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"mean": self.mean_ms, "p50": self.p50_ms, "p90": self.p90_ms, "runs": self.runs, "batch": self.batch,
                "tokens": self.tokens, "provenance": self.provenance, "target": self.target, "error": self.error}


@dataclass
class StudyHeadline:
    """The figures a claims table shows beside the paper's (edgekit/study/pretrained.py `headline()`): the paper's
    cross-domain F1 (fraction) and latency bound (ms) on its devices; the reference base model's cross-domain F1
    (mean macro-F1 over the domains, fraction) per seed and its mean, that of every deployed variant (mean over
    seeds), and the pipeline's latency per target and compression. Stored under the study result's "headline"."""

    paper_f1: float | None
    paper_latency_ms_below: float | None
    paper_targets: list[str] = field(default_factory=list)
    reference: str = ""
    base_f1: float | None = None
    base_f1_per_seed: dict[str, float] = field(default_factory=dict)
    deployed_f1: dict[str, float] = field(default_factory=dict)
    latency: list[StudyLatency] = field(default_factory=list)
    pipelines: dict[str, str] = field(default_factory=dict)  # target -> the timed pipeline
    threads: dict[str, int] = field(default_factory=dict)  # target -> threads it ran with
    not_computed: list[str] = field(default_factory=list)
    version: int = HEADLINE_VERSION

    @classmethod
    def from_dict(cls, d: dict[str, Any] | None) -> StudyHeadline | None:
        """The headline as stored; None for an empty or missing one (from-scratch studies, rows before it)."""
        if not isinstance(d, dict) or not d:
            return None
        paper = d.get("paper") or {}
        f1 = d.get("cross_domain_f1") or {}
        lat: list[StudyLatency] = []
        pipelines: dict[str, str] = {}
        threads: dict[str, int] = {}
        for target, entry in (d.get("latency_ms") or {}).items():
            if not isinstance(entry, dict):
                continue
            if entry.get("pipeline"):
                pipelines[str(target)] = str(entry["pipeline"])
            if isinstance(entry.get("threads"), int):
                threads[str(target)] = int(entry["threads"])
            for comp, x in (entry.get("per_compression") or {}).items():
                if not isinstance(x, dict):
                    continue
                runs, batch, tokens = x.get("runs"), x.get("batch"), x.get("tokens")
                lat.append(StudyLatency(
                    target=str(x.get("target") or target), compression=str(comp), p50_ms=_num(x.get("p50")),
                    p90_ms=_num(x.get("p90")), provenance=str(x.get("provenance") or "unknown"),
                    mean_ms=_num(x.get("mean")), runs=runs if isinstance(runs, int) else None,
                    batch=batch if isinstance(batch, int) else None,
                    tokens=tokens if isinstance(tokens, int) else None,
                    error=str(x["error"]) if x.get("error") is not None else None))
        per_seed = {str(k): v for k, v in ((k, _num(v)) for k, v in (f1.get("base_per_seed") or {}).items())
                    if v is not None}
        deployed = {str(k): v for k, v in ((k, _num(v)) for k, v in (f1.get("deployed") or {}).items())
                    if v is not None}
        return cls(paper_f1=_num(paper.get("cross_domain_f1")), paper_latency_ms_below=_num(paper.get("latency_ms_below")),
                   paper_targets=[str(t) for t in paper.get("targets") or []], reference=str(f1.get("reference") or ""),
                   base_f1=_num(f1.get("base")), base_f1_per_seed=per_seed, deployed_f1=deployed, latency=lat,
                   pipelines=pipelines, threads=threads, not_computed=[str(n) for n in d.get("not_computed") or []],
                   version=int(d.get("version") or HEADLINE_VERSION))

    def to_dict(self) -> dict[str, Any]:
        """The stored layout (what `from_dict` reads)."""
        lat: dict[str, dict[str, Any]] = {}
        for x in self.latency:
            entry = lat.setdefault(x.target, {"per_compression": {}})
            entry["per_compression"][x.compression] = x.to_dict()
        for target, pipe in self.pipelines.items():
            lat.setdefault(target, {"per_compression": {}})["pipeline"] = pipe
        for target, n in self.threads.items():
            lat.setdefault(target, {"per_compression": {}})["threads"] = n
        return {"version": self.version,
                "paper": {"cross_domain_f1": self.paper_f1, "latency_ms_below": self.paper_latency_ms_below,
                          "targets": list(self.paper_targets)},
                "cross_domain_f1": {"reference": self.reference, "base": self.base_f1,
                                    "base_per_seed": dict(self.base_f1_per_seed), "deployed": dict(self.deployed_f1)},
                "latency_ms": lat, "not_computed": list(self.not_computed)}


@dataclass
class StudyRecord:
    """What the report reads of a study: its reference, per-variant metrics, verdicts on claims and notes; `result`
    is the whole StudyResult.to_dict() as written."""

    reference: str
    group: str | None
    metrics: list[StudyMetric] = field(default_factory=list)
    claims: list[StudyClaim] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    config: dict[str, Any] = field(default_factory=dict)
    result: dict[str, Any] = field(default_factory=dict)
    status: str = "ok"
    run_id: int | None = None
    headline: StudyHeadline | None = None  # the figures beside the paper's (MiniLM study); None when not stored
    error: str | None = None  # a failed or interrupted study's one line

    @classmethod
    def of(cls, study: Any) -> StudyRecord:
        """The record of a finished edgekit.study.fragility.StudyResult."""
        return cls._of_dict(study.to_dict(), study.group, study.config, "ok", None)

    @classmethod
    def _of_dict(cls, res: dict[str, Any], group: str | None, config: dict[str, Any], status: str,
                 run_id: int | None) -> StudyRecord:
        num = _num
        metrics = [StudyMetric(str(m.get("model")), num(m.get("c")), num(m.get("dsi")), num(m.get("gg")),
                               num(m.get("cdtr")), m.get("target")) for m in res.get("metrics", [])]
        claims = [StudyClaim(str(c.get("claim")), str(c.get("paper")), str(c.get("verdict")), str(c.get("measured")))
                  for c in res.get("claims", [])]
        return cls(reference=str(res.get("reference") or ""), group=group, metrics=metrics, claims=claims,
                   notes=[str(n) for n in res.get("notes", [])], config=dict(config or {}), result=res,
                   status=status, run_id=run_id, headline=StudyHeadline.from_dict(res.get("headline")))

    def to_row(self) -> Row:
        result = {**self.result, "schema": ROW_SCHEMA}
        if self.headline is not None:
            result["headline"] = self.headline.to_dict()
        return Row("study", self.status, model=self.reference.removesuffix(" base"), config=self.config,
                   result=result, error=self.error)

    @classmethod
    def from_row(cls, run: Any) -> StudyRecord:
        """The study a stored run holds (schema 1 and v0 rows: StudyResult.to_dict())."""
        record = cls._of_dict(dict(run.result or {}), run.group, run.config or {}, run.status, run.id)
        record.error = getattr(run, "error", None)
        return record


def log_study(store: Any, record: StudyRecord) -> int:
    """The one writer of study summaries (kind "study"), in the study's run group. Returns the run id."""
    return log(store, record, record.group)


@contextmanager
def running_study(db: Path | None, reference: str, group: str, config: dict[str, Any],
                  enabled: bool = True) -> Iterator[StudyRecord | None]:
    """The store's `study` row while a study works: inserted as `running` on entry (before any data is loaded or
    model trained); the study's own summary finishes that same row (`record.run_id`). An exception in the block
    finishes it `failed` (Ctrl-C: `interrupted`) with the error's one line, and passes on. `enabled=False`
    (--no-store) writes nothing and yields None."""
    if not enabled:
        yield None
        return
    from edgekit.errors import EdgekitError
    from edgekit.store import ResultsStore

    record = StudyRecord(reference=reference, group=group, config=dict(config), status="running")
    with ResultsStore(db) as store:
        log_study(store, record)
    try:
        yield record
    except BaseException as exc:
        if record.status == "running":
            record.status = "interrupted" if isinstance(exc, KeyboardInterrupt) else "failed"
            record.error = exc.one_line() if isinstance(exc, EdgekitError) else f"{type(exc).__name__}: {exc}"
            with ResultsStore(db) as store:
                log_study(store, record)
        raise
