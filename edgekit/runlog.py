"""The one place the library writes runs to the results store (edgekit/store.py): the llm `log_to_db` pattern.

Every stored kind is a typed record (BenchResult, EvalRun, PredictionRun, StudyRecord, ProfileRun) that owns a versioned
`to_row()` -> Row and a `from_row(run, ...)` reader; `log(store, record)` is the only writer. A record whose
`status` is "running" and has no `run_id` yet is inserted as `running` before its work starts (its `run_id` is
set); the same record logged again once finished completes that row (status, result, error, samples, scores in one
transaction; its config, target and artifact columns as the record now gives them, for what is known only at the
end). A record that is already finished and has no row yet (an import, a farm cell run elsewhere) is
written whole in one transaction. tests/test_records.py checks with `ast` that no other module calls the store's
write methods.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

# Version of the `result` JSON the records below write (the `schema` field); rows without it are v0 (written before
# the typed records) and every from_row still reads them.
ROW_SCHEMA = 1


@dataclass
class Row:
    """One run row as a record gives it: the store's columns, its JSON documents, latencies (ms, by phase) and
    evaluation scores (edgekit.store.StoredScore)."""

    kind: str
    status: str = "running"
    model: str | None = None
    format: str | None = None
    precision: str | None = None
    target: str | None = None
    runtime: str | None = None
    provenance: str | None = None
    artifact_path: str | None = None
    artifact_sha256: str | None = None
    env: dict[str, Any] = field(default_factory=dict)
    config: dict[str, Any] = field(default_factory=dict)
    result: dict[str, Any] | None = None
    error: str | None = None
    samples: dict[str, list[float]] = field(default_factory=dict)
    scores: list[Any] = field(default_factory=list)


class Loggable(Protocol):
    run_id: int | None

    def to_row(self) -> Row: ...


def schema_of(result: dict[str, Any] | None) -> int:
    """The schema version of a stored `result` document (0: written before the typed records)."""
    value = (result or {}).get("schema")
    return int(value) if isinstance(value, int) and not isinstance(value, bool) else 0


def log(store: Any, record: Loggable, group: str | None = None) -> int:
    """Write `record` to `store` and return its run id (also set on `record.run_id`). Running and without a row:
    inserted as `running`. With a row: finished. Finished without a row: written whole, one transaction."""
    row = record.to_row()
    start = {"model": row.model, "format": row.format, "precision": row.precision, "target": row.target,
             "runtime": row.runtime, "provenance": row.provenance, "artifact_path": row.artifact_path,
             "artifact_sha256": row.artifact_sha256, "env": row.env, "config": row.config, "group": group}
    if record.run_id is None and row.status == "running":
        record.run_id = store.start_run(row.kind, **start)
    elif record.run_id is None:
        record.run_id = store.record_run(row.kind, row.status, result=row.result, error=row.error,
                                         samples=row.samples, scores=row.scores, **start)
    else:
        store.finish_run(record.run_id, row.status, result=row.result, error=row.error,
                         provenance=row.provenance, runtime=row.runtime, env=row.env or None, samples=row.samples,
                         scores=row.scores, config=row.config or None, target=row.target,
                         artifact_path=row.artifact_path, artifact_sha256=row.artifact_sha256)
    return record.run_id
