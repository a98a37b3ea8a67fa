"""The results store: SQLite, one file, every record written (and committed) the moment it exists.

Where: `--db PATH`, else $EDGEKIT_DB, else $XDG_DATA_HOME/edgekit/edgekit.db (~/.local/share/edgekit/edgekit.db).
Schema: edgekit/migrations.py (append-only named migrations). Tables:
- runs: one benchmark/eval/export attempt. status: running | ok | failed | killed | skipped. A run is inserted as
  `running` before the work starts and finished afterwards, so a crash leaves a visible `running` row, and results
  completed earlier are already committed. env / config / result are JSON documents.
- samples: every latency (ms) of a run, by phase (first | warmup | steady), in measured order — enough to draw
  distributions without re-running.
- scores: evaluation scores (model, domain, task, metric, score), optionally tied to a run.
"""

from __future__ import annotations

import csv
import io
import json
import os
import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from edgekit.errors import EdgekitError
from edgekit.migrations import applied, migrate

RUN_STATUSES = ("running", "ok", "failed", "killed", "skipped")
RUN_COLUMNS = ("id", "created", "finished", "kind", "grp", "model", "format", "precision", "target", "runtime",
               "provenance", "status", "error", "artifact_path", "artifact_sha256", "env", "config", "result",
               "schema_version")
_JSON_COLUMNS = ("env", "config", "result")


def default_db_path() -> Path:
    """$EDGEKIT_DB, else $XDG_DATA_HOME/edgekit/edgekit.db, else ~/.local/share/edgekit/edgekit.db."""
    env = os.environ.get("EDGEKIT_DB")
    if env:
        return Path(env).expanduser()
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "edgekit" / "edgekit.db"


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


@dataclass
class RunRecord:
    """One row of `runs`, JSON columns decoded. `group` ties the runs of one command invocation together."""

    id: int
    created: str
    kind: str
    status: str
    finished: str | None = None
    group: str | None = None
    model: str | None = None
    format: str | None = None
    precision: str | None = None
    target: str | None = None
    runtime: str | None = None
    provenance: str | None = None
    error: str | None = None
    artifact_path: str | None = None
    artifact_sha256: str | None = None
    env: dict[str, Any] = field(default_factory=dict)
    config: dict[str, Any] = field(default_factory=dict)
    result: dict[str, Any] = field(default_factory=dict)
    schema_version: int = 1

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class ScoreRow:
    """One evaluation score in [0, 1] (or the metric's own range) for model x domain x task x metric."""

    model: str
    metric: str
    score: float | None
    domain: str | None = None
    task: str | None = None
    n: int | None = None
    seed: int | None = None
    source: str = ""
    details: dict[str, Any] = field(default_factory=dict)
    run_id: int | None = None
    id: int | None = None
    created: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class ResultsStore:
    """A handle on the SQLite results store. Use as a context manager or call close()."""

    def __init__(self, path: Path | str | None = None) -> None:
        self.path = Path(path).expanduser() if path else default_db_path()
        if self.path.is_dir():
            raise EdgekitError(f"results store {self.path} is a directory", "point --db / EDGEKIT_DB at a file path")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise EdgekitError(f"cannot create the directory of results store {self.path} ({exc.strerror})",
                               "point --db / EDGEKIT_DB at a writable location") from exc
        try:
            self._conn = sqlite3.connect(self.path, timeout=30.0)
        except sqlite3.Error as exc:
            raise self._error(exc) from exc
        self._conn.row_factory = sqlite3.Row
        with self._guard():
            self._conn.execute("PRAGMA foreign_keys = ON")
            self._conn.execute("PRAGMA journal_mode = WAL")
            migrate(self._conn)

    # -- plumbing --------------------------------------------------------------------------------------------------

    def _error(self, exc: sqlite3.Error) -> EdgekitError:
        text = str(exc)
        if "locked" in text or "busy" in text:
            return EdgekitError(f"results store {self.path} is locked by another process ({text})",
                                "wait for the other edgekit command to finish, or use another --db")
        corrupt = type(exc) is sqlite3.DatabaseError or "not a database" in text or "malformed" in text
        if corrupt:
            return EdgekitError(f"results store {self.path} is not a readable edgekit database ({text})",
                                "move the file aside (it may be corrupt) or point --db / EDGEKIT_DB at another file")
        return EdgekitError(f"results store {self.path} failed: {text}",
                            "check that the file and its directory are writable, or use another --db")

    @contextmanager
    def _guard(self) -> Iterator[None]:
        try:
            yield
        except sqlite3.IntegrityError as exc:
            raise EdgekitError(f"results store {self.path} rejected a record ({exc})",
                               "this is a bug in the caller: report it") from exc
        except sqlite3.Error as exc:
            raise self._error(exc) from exc

    def close(self) -> None:
        self._conn.close()

    def __enter__(self) -> ResultsStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def migrations(self) -> list[str]:
        with self._guard():
            return applied(self._conn)

    def columns(self, table: str) -> list[str]:
        with self._guard():
            return [r["name"] for r in self._conn.execute(f"PRAGMA table_info({table})")]

    # -- runs ------------------------------------------------------------------------------------------------------

    def start_run(self, kind: str, *, model: str | None = None, format: str | None = None,
                  precision: str | None = None, target: str | None = None, runtime: str | None = None,
                  provenance: str | None = None, artifact_path: str | None = None,
                  artifact_sha256: str | None = None, env: dict[str, Any] | None = None,
                  config: dict[str, Any] | None = None, group: str | None = None,
                  status: str = "running") -> int:
        """Insert a run (committed at once) and return its id."""
        with self._guard(), self._conn:
            cur = self._conn.execute(
                "INSERT INTO runs (created, kind, grp, model, format, precision, target, runtime, provenance, status,"
                " artifact_path, artifact_sha256, env, config) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                (_now(), kind, group, model, format, precision, target, runtime, provenance, status, artifact_path,
                 artifact_sha256, _dumps(env or {}), _dumps(config or {})),
            )
            return int(cur.lastrowid or 0)

    def finish_run(self, run_id: int, status: str, *, result: dict[str, Any] | None = None,
                   error: str | None = None, provenance: str | None = None, runtime: str | None = None,
                   env: dict[str, Any] | None = None) -> None:
        """Set a run's final status (ok | failed | killed | skipped) with its result or error (committed at once)."""
        if status not in RUN_STATUSES:
            raise ValueError(f"unknown run status {status!r}")
        sets = ["finished = ?", "status = ?", "error = ?"]
        args: list[Any] = [_now(), status, error]
        for col, value in (("result", result), ("provenance", provenance), ("runtime", runtime), ("env", env)):
            if value is not None:
                sets.append(f"{col} = ?")
                args.append(_dumps(value) if col in _JSON_COLUMNS else value)
        with self._guard(), self._conn:
            self._conn.execute(f"UPDATE runs SET {', '.join(sets)} WHERE id = ?", (*args, run_id))

    def add_samples(self, run_id: int, phase: str, samples_ms: Sequence[float]) -> None:
        """Store latencies (ms) of one phase of a run, in measured order."""
        with self._guard(), self._conn:
            self._conn.executemany(
                "INSERT OR REPLACE INTO samples (run_id, phase, idx, latency_ms) VALUES (?,?,?,?)",
                ((run_id, phase, i, float(v)) for i, v in enumerate(samples_ms)),
            )

    def get_run(self, run_id: int) -> RunRecord:
        with self._guard():
            row = self._conn.execute("SELECT * FROM runs WHERE id = ?", (run_id,)).fetchone()
        if row is None:
            raise EdgekitError(f"run {run_id} is not in the results store {self.path}",
                               "list the stored runs with `edgekit runs list`")
        return _run(row)

    def list_runs(self, *, kind: str | None = None, model: str | None = None, status: str | None = None,
                  group: str | None = None, limit: int | None = None) -> list[RunRecord]:
        """Runs, newest first, filtered by the given fields."""
        where, args = [], []
        for col, value in (("kind", kind), ("model", model), ("status", status), ("grp", group)):
            if value is not None:
                where.append(f"{col} = ?")
                args.append(value)
        sql = "SELECT * FROM runs" + (f" WHERE {' AND '.join(where)}" if where else "") + " ORDER BY id DESC"
        if limit:
            sql += f" LIMIT {int(limit)}"
        with self._guard():
            return [_run(r) for r in self._conn.execute(sql, args)]

    def samples(self, run_id: int, phase: str = "steady") -> list[float]:
        """A run's latencies (ms) of one phase, in measured order."""
        with self._guard():
            rows = self._conn.execute(
                "SELECT latency_ms FROM samples WHERE run_id = ? AND phase = ? ORDER BY idx", (run_id, phase))
            return [float(r[0]) for r in rows]

    def delete_run(self, run_id: int) -> None:
        with self._guard(), self._conn:
            self._conn.execute("DELETE FROM runs WHERE id = ?", (run_id,))

    # -- scores ----------------------------------------------------------------------------------------------------

    def add_scores(self, rows: Iterable[ScoreRow], run_id: int | None = None) -> list[int]:
        """Store evaluation scores (committed at once); returns their ids."""
        ids: list[int] = []
        with self._guard(), self._conn:
            for r in rows:
                cur = self._conn.execute(
                    "INSERT INTO scores (run_id, created, model, domain, task, metric, score, n, seed, source, details)"
                    " VALUES (?,?,?,?,?,?,?,?,?,?,?)",
                    (run_id if run_id is not None else r.run_id, r.created or _now(), r.model, r.domain, r.task,
                     r.metric, r.score, r.n, r.seed, r.source, _dumps(r.details)),
                )
                ids.append(int(cur.lastrowid or 0))
        return ids

    def scores(self, *, model: str | None = None, domain: str | None = None, task: str | None = None,
               metric: str | None = None, run_id: int | None = None) -> list[ScoreRow]:
        where, args = [], []
        for col, value in (("model", model), ("domain", domain), ("task", task), ("metric", metric),
                           ("run_id", run_id)):
            if value is not None:
                where.append(f"{col} = ?")
                args.append(value)
        sql = "SELECT * FROM scores" + (f" WHERE {' AND '.join(where)}" if where else "") + " ORDER BY id"
        with self._guard():
            return [ScoreRow(model=r["model"], metric=r["metric"], score=r["score"], domain=r["domain"],
                             task=r["task"], n=r["n"], seed=r["seed"], source=r["source"] or "",
                             details=json.loads(r["details"] or "{}"), run_id=r["run_id"], id=r["id"],
                             created=r["created"]) for r in self._conn.execute(sql, args)]

    # -- export ----------------------------------------------------------------------------------------------------

    def export(self, fmt: str = "json", runs: list[RunRecord] | None = None, with_samples: bool = False) -> str:
        """Runs as JSON (full records; `samples` added when asked) or CSV (one flat row per run)."""
        runs = self.list_runs() if runs is None else runs
        if fmt == "json":
            docs = []
            for r in runs:
                d = r.to_dict()
                if with_samples:
                    d["samples"] = {p: self.samples(r.id, p) for p in ("first", "warmup", "steady")}
                docs.append(d)
            return json.dumps(docs, indent=2, default=str)
        if fmt == "csv":
            buf = io.StringIO()
            if with_samples:
                writer = csv.writer(buf)
                writer.writerow(["run_id", "model", "format", "precision", "phase", "idx", "latency_ms"])
                for r in runs:
                    for phase in ("first", "warmup", "steady"):
                        for i, v in enumerate(self.samples(r.id, phase)):
                            writer.writerow([r.id, r.model, r.format, r.precision, phase, i, v])
                return buf.getvalue()
            rows = [flat_row(r) for r in runs]
            head = [c for c in RUN_COLUMNS if c not in _JSON_COLUMNS and c != "grp"] + ["group"]
            extra = sorted({k for row in rows for k in row} - set(head))
            writer = csv.DictWriter(buf, fieldnames=head + extra, extrasaction="ignore")
            writer.writeheader()
            for row in rows:
                writer.writerow(row)
            return buf.getvalue()
        raise EdgekitError(f"unknown export format {fmt!r}", "use --format json or --format csv")


def flat_row(run: RunRecord) -> dict[str, Any]:
    """A run as one flat dict: the plain columns plus the result's scalar fields as dotted keys (latency.p50, ...)."""
    d = {k: v for k, v in run.to_dict().items() if k not in _JSON_COLUMNS}
    d.update(_flatten(run.result))
    return d


def _flatten(obj: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in obj.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(_flatten(v, key + "."))
        elif not isinstance(v, list):
            out[key] = v
    return out


def _dumps(obj: Any) -> str:
    return json.dumps(obj, default=str, allow_nan=True)


def _run(row: sqlite3.Row) -> RunRecord:
    return RunRecord(
        id=row["id"], created=row["created"], finished=row["finished"], kind=row["kind"], group=row["grp"],
        model=row["model"], format=row["format"], precision=row["precision"], target=row["target"],
        runtime=row["runtime"], provenance=row["provenance"], status=row["status"], error=row["error"],
        artifact_path=row["artifact_path"], artifact_sha256=row["artifact_sha256"],
        env=json.loads(row["env"] or "{}"), config=json.loads(row["config"] or "{}"),
        result=json.loads(row["result"] or "{}"), schema_version=row["schema_version"],
    )
