"""The results store: SQLite, one file, every record written (and committed) the moment it exists.

Where: `--db PATH`, else $EDGEKIT_DB, else $XDG_DATA_HOME/edgekit/edgekit.db (~/.local/share/edgekit/edgekit.db).
Schema: edgekit/migrations.py (append-only named migrations). Tables:
- runs: one benchmark/eval/export attempt. status: running | ok | failed | killed | skipped | interrupted. A run is
  inserted as `running` before the work starts and finished afterwards, so a crash leaves a visible `running` row,
  and results completed earlier are already committed. SIGINT/SIGTERM mark the open runs `interrupted`
  (edgekit/lifecycle.py). env / config / result are JSON documents.
- samples: every latency (ms) of a run, by phase (first | warmup | steady), in measured order — enough to draw
  distributions without re-running.
- scores: evaluation scores (model, domain, task, metric, score), optionally tied to a run.

Who writes: edgekit.runlog.log only, called by the one writer of each kind (bench.runner.log_bench,
evalsuite.persist.log_eval, targets.results.log_prediction, study.record.log_study, profile.run.log_profile); each
kind's typed record owns a versioned to_row()/from_row() (`schema` in the result JSON; rows without it are v0 and
still read).

The final write of a run (its samples, scores and result, one transaction) never loses what was measured: when the
store cannot take it (another writer holds the lock longer than the busy timeout — $EDGEKIT_DB_TIMEOUT seconds,
default 30 — or the disk is full), the whole record goes to a fallback JSON file beside the store
(`<store>.run-<id>-<time>.fallback.json`, else in the temp folder), the error line names it, and
`edgekit runs import-fallback FILE` puts it back. The next writable open marks the run left `running` as `failed`,
pointing at that file.

Read-only commands (runs list/show/export, report, compare, metrics) open the store with `read_only=True`: a missing
file is an error (never created), the file is opened `mode=ro` (a read-only file or folder works), nothing is
migrated. A store recording a migration this edgekit does not know (written by a newer edgekit), or lacking a column
this edgekit reads, is refused in one line.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import sqlite3
import tempfile
import urllib.parse
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from edgekit import lifecycle
from edgekit.errors import EdgekitError
from edgekit.migrations import MIGRATIONS, applied, expected_columns, migrate, recorded, unknown

RUN_STATUSES = ("running", "ok", "failed", "killed", "skipped", "interrupted")
SAMPLE_PHASES = ("first", "warmup", "steady")
DEFAULT_TIMEOUT_S = 30.0
FALLBACK_SUFFIX = ".fallback.json"
RUN_COLUMNS = ("id", "created", "finished", "kind", "grp", "model", "format", "precision", "target", "runtime",
               "provenance", "status", "error", "artifact_path", "artifact_sha256", "env", "config", "result",
               "schema_version", "uuid", "origin")
_JSON_COLUMNS = ("env", "config", "result", "origin")


def default_db_path() -> Path:
    """$EDGEKIT_DB, else $XDG_DATA_HOME/edgekit/edgekit.db, else ~/.local/share/edgekit/edgekit.db."""
    env = os.environ.get("EDGEKIT_DB")
    if env:
        return Path(env).expanduser()
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "edgekit" / "edgekit.db"


def busy_timeout_s() -> float:
    """Seconds a write waits for another writer's lock: $EDGEKIT_DB_TIMEOUT, else 30."""
    text = os.environ.get("EDGEKIT_DB_TIMEOUT", "").strip()
    if not text:
        return DEFAULT_TIMEOUT_S
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or value < 0:
        raise EdgekitError(f"EDGEKIT_DB_TIMEOUT={text!r} is not a number of seconds >= 0",
                           "set it to the seconds a write may wait for the store's lock (e.g. 30), or unset it")
    return value


def no_store_error(path: Path) -> EdgekitError:
    return EdgekitError(f"no results store at {path} (the file does not exist)",
                        "check --db / EDGEKIT_DB, or run a command that stores results first (`edgekit bench MODEL`)")


def write_text_atomic(path: Path, text: str, option: str = "--out") -> None:
    """Write `text` to `path` through a temporary file in the same folder and os.replace: a reader never sees half a
    file, a symlink at `path` is replaced (not followed), and a failed write leaves the old file and no temp file.
    A missing or unwritable folder is one EdgekitError naming `option`."""
    from edgekit.files import refuse_special, write_text

    path = Path(path)
    folder = path.parent
    refuse_special(path, option)
    if path.is_dir():
        raise EdgekitError(f"{option} {path} is a folder", f"give {option} a file name, e.g. {path / 'runs.json'}")
    if not folder.is_dir():
        raise EdgekitError(f"the folder of {option} {path} does not exist ({folder})",
                           f"create it first (mkdir -p {folder}) or give {option} a path in an existing folder")
    try:
        write_text(path, text)  # temp file beside it + os.replace; the temp file is removed on failure
    except OSError as exc:
        raise EdgekitError(f"cannot write {option} {path} ({exc.strerror or exc})",
                           f"give {option} a path in a folder you can write to, with free space") from exc


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
    uuid: str | None = None  # stable across stores (export -> import keeps it)
    origin: dict[str, Any] | None = None  # imported runs: {machine, file, imported, id, store, target}

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class StoredScore:
    """One evaluation score in [0, 1] (or the metric's own range) for model x domain x task x metric, as the store
    keeps it (metric, n, details, run id). The metrics' input row is edgekit.metrics.ScoreRow."""

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
    """A handle on the SQLite results store. Use as a context manager or call close().

    `read_only=True`: the store must exist; it is opened `mode=ro` and never created or migrated. `timeout_s`: how
    long a write waits for another writer's lock (default $EDGEKIT_DB_TIMEOUT, else 30 s)."""

    def __init__(self, path: Path | str | None = None, *, read_only: bool = False,
                 timeout_s: float | None = None) -> None:
        self.path = Path(path).expanduser() if path else default_db_path()
        self.read_only = read_only
        self.timeout_s = busy_timeout_s() if timeout_s is None else float(timeout_s)
        self._started: dict[int, dict[str, Any]] = {}  # run id -> its start fields (for a fallback record)
        self._open: list[int] = []  # runs this handle started `running` and has not finished
        if self.path.is_dir():
            raise EdgekitError(f"results store {self.path} is a directory", "point --db / EDGEKIT_DB at a file path")
        if read_only:
            self._conn = self._connect_read_only()
        else:
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise EdgekitError(f"cannot create the directory of results store {self.path} ({exc.strerror})",
                                   "point --db / EDGEKIT_DB at a writable location") from exc
            try:
                self._conn = sqlite3.connect(self.path, timeout=self.timeout_s)
            except sqlite3.Error as exc:
                raise self._error(exc) from exc
        self._conn.row_factory = sqlite3.Row
        try:
            with self._guard():
                if read_only:
                    self._check_read_only()
                else:
                    self._conn.execute("PRAGMA foreign_keys = ON")
                    self._conn.execute("PRAGMA journal_mode = WAL")
                    self._refuse_unknown(applied(self._conn))
                    migrate(self._conn)
                self._check_columns()
            if not read_only:
                self._settle_fallbacks()
        except BaseException:
            self._conn.close()
            raise

    # -- plumbing --------------------------------------------------------------------------------------------------

    def _connect_read_only(self) -> sqlite3.Connection:
        """`mode=ro`; a WAL store in a folder this user cannot write (no -shm can be made) is read `immutable`."""
        if not self.path.exists():
            raise no_store_error(self.path)
        if self.path.stat().st_size == 0:
            raise EdgekitError(f"results store {self.path} is empty (0 bytes, no runs)",
                               "run `edgekit bench MODEL` first, or point --db / EDGEKIT_DB at another store")
        base = "file:" + urllib.parse.quote(str(self.path.resolve()))
        try:
            conn = sqlite3.connect(base + "?mode=ro", uri=True, timeout=self.timeout_s)
            try:
                conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
                return conn
            except sqlite3.OperationalError as exc:
                conn.close()
                text = str(exc)
                if "readonly" not in text and "read-only" not in text and "unable to open" not in text:
                    raise
            return sqlite3.connect(base + "?mode=ro&immutable=1", uri=True, timeout=self.timeout_s)
        except sqlite3.Error as exc:
            raise self._error(exc) from exc

    def _check_read_only(self) -> None:
        names = recorded(self._conn)
        if names is None:
            raise EdgekitError(f"{self.path} is not an edgekit results store (it has no migrations table)",
                               "point --db / EDGEKIT_DB at a store written by `edgekit bench` or `edgekit eval`")
        self._refuse_unknown(names)
        pending = [fn.__name__ for fn in MIGRATIONS if fn.__name__ not in names]
        if pending:
            raise EdgekitError(f"results store {self.path} was written by an older edgekit and lacks migration(s) "
                               f"{', '.join(pending)}; a read-only command does not upgrade it",
                               "run one command that stores results with this --db (it upgrades the store in place)")

    def _refuse_unknown(self, names: list[str]) -> None:
        new = unknown(names)
        if new:
            raise EdgekitError(f"results store {self.path} was written by a newer edgekit (unknown migration "
                               f"{', '.join(new)})",
                               "upgrade edgekit (pip install -U edgekit), or point --db / EDGEKIT_DB at another store")

    def _check_columns(self) -> None:
        """Every column this edgekit reads must be there (a renamed one would be an IndexError later)."""
        missing = []
        for table, cols in expected_columns().items():
            have = {r[1] for r in self._conn.execute(f"PRAGMA table_info({table})")}
            missing += [f"{table}.{c}" for c in cols if c not in have]
        if missing:
            shown = ", ".join(missing[:4]) + (" …" if len(missing) > 4 else "")
            raise EdgekitError(f"results store {self.path} lacks the column(s) {shown} this edgekit reads "
                               "(changed by another program or another edgekit version)",
                               "use the edgekit that wrote it, or move the file aside and point --db at another store")

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

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: object) -> None:
        try:
            if exc_type is not None and issubclass(exc_type, KeyboardInterrupt):
                self.mark_interrupted(lifecycle.reason(exc))
        finally:
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
        fields = {"created": _now(), "kind": kind, "grp": group, "model": model, "format": format,
                  "precision": precision, "target": target, "runtime": runtime, "provenance": provenance,
                  "status": status, "artifact_path": artifact_path, "artifact_sha256": artifact_sha256,
                  "env": env or {}, "config": config or {}}
        with self._guard(), self._conn:
            run_id = self._insert_run(fields)
        self._started[run_id] = fields
        if status == "running":
            self._open.append(run_id)
        return run_id

    def finish_run(self, run_id: int, status: str, *, result: dict[str, Any] | None = None,
                   error: str | None = None, provenance: str | None = None, runtime: str | None = None,
                   env: dict[str, Any] | None = None, samples: Mapping[str, Sequence[float]] | None = None,
                   scores: Iterable[StoredScore] | None = None, config: dict[str, Any] | None = None,
                   target: str | None = None, artifact_path: str | None = None,
                   artifact_sha256: str | None = None) -> None:
        """Set a run's final status (ok | failed | killed | skipped | interrupted) with its result or error, its
        latency samples (ms, by phase) and scores — one transaction, committed at once. `config`, `target` and the
        artifact's path and hash replace what start_run wrote when given (what is known only at the end: a farm
        cell's device, attempt and worker host, the file the worker resolved); None keeps it. When the store cannot
        take it, the record is kept in a fallback file and the EdgekitError raised names it."""
        if status not in RUN_STATUSES:
            raise ValueError(f"unknown run status {status!r}")
        final = {"finished": _now(), "status": status, "error": error, "result": result, "provenance": provenance,
                 "runtime": runtime, "env": env, "config": config, "target": target, "artifact_path": artifact_path,
                 "artifact_sha256": artifact_sha256}
        score_list = list(scores or [])
        try:
            with self._conn:
                self._finish(run_id, final, samples or {}, score_list)
        except sqlite3.IntegrityError as exc:
            raise EdgekitError(f"results store {self.path} rejected a record ({exc})",
                               "this is a bug in the caller: report it") from exc
        except sqlite3.Error as exc:
            known = {k: v for k, v in final.items() if v is not None or k in ("finished", "status", "error")}
            raise self._fallback_error(exc, run_id, {**self._started.get(run_id, {}), **known}, samples,
                                       score_list) from exc
        if run_id in self._open:
            self._open.remove(run_id)

    def record_run(self, kind: str, status: str, *, result: dict[str, Any] | None = None, error: str | None = None,
                   samples: Mapping[str, Sequence[float]] | None = None, scores: Iterable[StoredScore] | None = None,
                   **start: Any) -> int:
        """Insert a finished run with its samples and scores in one transaction (for results that exist before
        their row: device runs, evaluations, studies); `start` takes start_run's keywords. Returns the run id. When
        the store cannot take it, the record is kept in a fallback file and the EdgekitError raised names it."""
        if status not in RUN_STATUSES:
            raise ValueError(f"unknown run status {status!r}")
        extra = set(start) - {"group", "env", "config", *RUN_COLUMNS}
        if extra:
            raise TypeError(f"record_run() got unknown field(s) {sorted(extra)}")
        fields = {"created": _now(), "kind": kind, "grp": start.pop("group", None), "status": "running",
                  "env": start.pop("env", None) or {}, "config": start.pop("config", None) or {}, **start}
        final = {"finished": _now(), "status": status, "error": error, "result": result}
        score_list = list(scores or [])
        try:
            with self._conn:
                run_id = self._insert_run(fields)
                self._finish(run_id, final, samples or {}, score_list)
        except sqlite3.IntegrityError as exc:
            raise EdgekitError(f"results store {self.path} rejected a record ({exc})",
                               "this is a bug in the caller: report it") from exc
        except sqlite3.Error as exc:
            raise self._fallback_error(exc, None, {**fields, **final}, samples, score_list) from exc
        return run_id

    def mark_interrupted(self, reason: str) -> list[int]:
        """Mark the runs this handle left `running` as `interrupted` (best effort, signals held back meanwhile);
        returns their ids."""
        if not self._open or self.read_only:
            return []
        ids, self._open = list(self._open), []
        with lifecycle.signals_deferred():
            try:  # a busy store waits 2 s at most here: the user asked to stop
                self._conn.execute(f"PRAGMA busy_timeout = {int(min(self.timeout_s, 2.0) * 1000)}")
                with self._conn:
                    self._conn.executemany(
                        "UPDATE runs SET status = 'interrupted', finished = ?, error = ? WHERE id = ? AND status = "
                        "'running'", [(_now(), reason, rid) for rid in ids])
            except sqlite3.Error:
                return []
            finally:
                try:
                    self._conn.execute(f"PRAGMA busy_timeout = {int(self.timeout_s * 1000)}")
                except sqlite3.Error:
                    pass
        lifecycle.note_marked(self.path, ids)
        return ids

    def add_samples(self, run_id: int, phase: str, samples_ms: Sequence[float]) -> None:
        """Store latencies (ms) of one phase of a run, in measured order."""
        with self._guard(), self._conn:
            self._insert_samples(run_id, {phase: samples_ms})

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

    # -- raw writes (inside the caller's transaction) ---------------------------------------------------------------

    def _insert_run(self, fields: Mapping[str, Any]) -> int:
        import uuid

        fields = {**fields, "uuid": fields.get("uuid") or str(uuid.uuid4())}  # every run gets its stable id
        if fields.get("origin") is None:
            fields.pop("origin", None)  # NULL: made with this store
        cols = [c for c in RUN_COLUMNS if c in fields and c != "id"]
        cur = self._conn.execute(
            f"INSERT INTO runs ({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))})",
            [_dumps(fields[c]) if c in _JSON_COLUMNS else fields[c] for c in cols])
        return int(cur.lastrowid or 0)

    def _finish(self, run_id: int, final: Mapping[str, Any], samples: Mapping[str, Sequence[float]],
                scores: list[StoredScore]) -> None:
        self._insert_samples(run_id, samples)
        self._insert_scores(scores, run_id)
        sets, args = [], []
        for col in ("finished", "status", "error", "result", "provenance", "runtime", "env", "config", "target",
                    "artifact_path", "artifact_sha256"):
            value = final.get(col)
            if value is not None or col in ("finished", "status", "error"):
                sets.append(f"{col} = ?")
                args.append(_dumps(value) if col in _JSON_COLUMNS else value)
        self._conn.execute(f"UPDATE runs SET {', '.join(sets)} WHERE id = ?", (*args, run_id))

    def _insert_samples(self, run_id: int, samples: Mapping[str, Sequence[float]]) -> None:
        for phase, values in samples.items():
            self._conn.executemany(
                "INSERT OR REPLACE INTO samples (run_id, phase, idx, latency_ms) VALUES (?,?,?,?)",
                ((run_id, phase, i, float(v)) for i, v in enumerate(values)))

    def _insert_scores(self, rows: Iterable[StoredScore], run_id: int | None) -> list[int]:
        ids: list[int] = []
        for r in rows:
            cur = self._conn.execute(
                "INSERT INTO scores (run_id, created, model, domain, task, metric, score, n, seed, source, details)"
                " VALUES (?,?,?,?,?,?,?,?,?,?,?)",
                (run_id if run_id is not None else r.run_id, r.created or _now(), r.model, r.domain, r.task,
                 r.metric, r.score, r.n, r.seed, r.source, _dumps(r.details)),
            )
            ids.append(int(cur.lastrowid or 0))
        return ids

    # -- fallback files ----------------------------------------------------------------------------------------------

    def _fallback_name(self, run_id: int | None) -> str:
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%f")[:-3]
        return f"{self.path.name}.run-{run_id if run_id is not None else 'new'}-{stamp}{FALLBACK_SUFFIX}"

    def _fallback_error(self, exc: sqlite3.Error, run_id: int | None, run: Mapping[str, Any],
                        samples: Mapping[str, Sequence[float]] | None, scores: list[StoredScore]) -> EdgekitError:
        """Write the record that did not reach the store to a fallback file; the error to raise names it."""
        why = str(exc)
        if "locked" in why or "busy" in why:
            why += f" by another writer for more than {self.timeout_s:g} s"
        doc = {"edgekit_fallback": 1, "store": str(self.path.resolve()), "written": _now(), "reason": str(exc),
               "run": {"id": run_id, **{k: v for k, v in run.items() if k != "id"}},
               "samples": {p: [float(v) for v in vals] for p, vals in (samples or {}).items()},
               "scores": [{k: v for k, v in s.to_dict().items() if k not in ("id", "run_id")} for s in scores]}
        text = json.dumps(doc, indent=1, default=str, allow_nan=True)
        name = self._fallback_name(run_id)
        what = f"run {run_id}" if run_id is not None else f"a {run.get('kind', '')} run".replace("  ", " ")
        problems = []
        for folder in (self.path.parent, Path(tempfile.gettempdir())):
            try:
                write_text_atomic(folder / name, text, option="fallback file")
            except EdgekitError as err:
                problems.append(err.problem)
                continue
            return EdgekitError(
                f"could not write {what} to the results store {self.path} ({why}); the result is kept in "
                f"{folder / name}",
                f"when the store is free (and has disk space) again: edgekit runs import-fallback {folder / name}")
        return EdgekitError(f"could not write {what} to the results store {self.path} ({why}), nor keep it in a "
                            f"fallback file ({'; '.join(problems)})",
                            "free disk space or stop the other writer, then run the command again")

    def _settle_fallbacks(self) -> None:
        """Runs left `running` whose final record sits in a fallback file beside the store become `failed`, with
        an error naming the file (best effort: a store still busy is left for the next open)."""
        prefix = f"{self.path.name}.run-"
        try:
            files = [p for p in self.path.parent.iterdir() if p.name.startswith(prefix)
                     and p.name.endswith(FALLBACK_SUFFIX)]
        except OSError:
            return
        for file in sorted(files):
            try:
                run = json.loads(file.read_text(encoding="utf-8")).get("run") or {}
                rid, created = run.get("id"), run.get("created")
                with self._conn:
                    self._conn.execute(
                        "UPDATE runs SET status = 'failed', finished = ?, error = ? WHERE id = ? AND created = ? "
                        "AND status = 'running'",
                        (_now(), f"the final write to the store failed; the result is kept in {file} — import it "
                                 f"with `edgekit runs import-fallback {file}`", rid, created))
            except (OSError, ValueError, AttributeError, sqlite3.Error):
                continue

    def import_fallback(self, file: Path | str) -> int:
        """Put a fallback record back into the store (the run it belongs to, else a new run); the file is removed
        once the store holds it. Returns the run id."""
        file = Path(file).expanduser()
        record = read_fallback(file)
        run, samples, scores = record.run, record.samples, record.scores
        rid, created = run.get("id"), run.get("created")
        with self._guard():
            row = None
            if isinstance(rid, int):
                row = self._conn.execute("SELECT status, created FROM runs WHERE id = ?", (rid,)).fetchone()
            same = row is not None and row["created"] == created
            if same and row["status"] not in ("running", "failed", "interrupted"):
                raise EdgekitError(f"run {rid} in {self.path} already holds a result (status {row['status']}), so "
                                   f"{file} was imported before",
                                   f"nothing to import: delete {file}")
            final = {k: run.get(k) for k in ("finished", "status", "error", "result", "provenance", "runtime", "env")}
            with self._conn:
                if same:
                    self._conn.execute("DELETE FROM samples WHERE run_id = ?", (rid,))
                    run_id = int(rid)  # type: ignore[arg-type]
                else:
                    fields = {c: run.get(c) for c in RUN_COLUMNS if c not in ("id", "schema_version")}
                    fields.update(status="running", env=run.get("env") or {}, config=run.get("config") or {})
                    fields["created"] = created or _now()
                    run_id = self._insert_run(fields)
                self._finish(run_id, final, samples, scores)
        try:
            file.unlink()
        except OSError:
            pass
        return run_id

    def insert_imported(self, fields: Mapping[str, Any], samples: Mapping[str, Sequence[float]]) -> int | None:
        """Insert one run exported from another store (`edgekit runs import`; fields checked by the caller, with
        `uuid` and `origin` set) with its samples, in one transaction. Returns the new id, or None when a run with
        that uuid is already here (nothing is written)."""
        with self._guard():
            if self._conn.execute("SELECT 1 FROM runs WHERE uuid = ?", (fields["uuid"],)).fetchone():
                return None
            try:
                with self._conn:
                    run_id = self._insert_run({c: fields.get(c) for c in RUN_COLUMNS if c != "id" and c in fields})
                    self._insert_samples(run_id, samples)
            except sqlite3.IntegrityError as exc:
                if "uuid" in str(exc):  # another import wrote the same run meanwhile
                    return None
                raise
        return run_id

    # -- scores ----------------------------------------------------------------------------------------------------

    def add_scores(self, rows: Iterable[StoredScore], run_id: int | None = None) -> list[int]:
        """Store evaluation scores (committed at once); returns their ids."""
        with self._guard(), self._conn:
            return self._insert_scores(rows, run_id)

    def scores(self, *, model: str | None = None, domain: str | None = None, task: str | None = None,
               metric: str | None = None, run_id: int | None = None) -> list[StoredScore]:
        where, args = [], []
        for col, value in (("model", model), ("domain", domain), ("task", task), ("metric", metric),
                           ("run_id", run_id)):
            if value is not None:
                where.append(f"{col} = ?")
                args.append(value)
        sql = "SELECT * FROM scores" + (f" WHERE {' AND '.join(where)}" if where else "") + " ORDER BY id"
        with self._guard():
            return [StoredScore(model=r["model"], metric=r["metric"], score=r["score"], domain=r["domain"],
                             task=r["task"], n=r["n"], seed=r["seed"], source=r["source"] or "",
                             details=json.loads(r["details"] or "{}"), run_id=r["run_id"], id=r["id"],
                             created=r["created"]) for r in self._conn.execute(sql, args)]

    # -- export ----------------------------------------------------------------------------------------------------

    def export(self, fmt: str = "json", runs: list[RunRecord] | None = None, with_samples: bool = False) -> str:
        """Runs as JSON (full records; `samples` added when asked) or CSV (one flat row per run)."""
        runs = self.list_runs() if runs is None else runs
        if fmt == "json":
            import platform

            docs = []
            for r in runs:
                d = r.to_dict()
                d["machine"] = (r.origin or {}).get("machine") or platform.node()  # where it ran (`runs import`)
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


@dataclass
class FallbackRecord:
    """A run's final record that did not reach the store: `store` it was meant for, run fields (columns), latency
    samples (ms) by phase, scores."""

    store: str | None
    run: dict[str, Any]
    samples: dict[str, list[float]]
    scores: list[StoredScore]


def read_fallback(file: Path) -> FallbackRecord:
    """A fallback file, checked; anything else is one EdgekitError naming the file."""
    fix = "give the file named in the error line of the command whose store write failed"

    def bad(why: str) -> EdgekitError:
        return EdgekitError(f"{file} is not an edgekit fallback record ({why})", fix)

    try:
        doc = json.loads(file.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise EdgekitError(f"fallback file {file} does not exist (already imported?)",
                           "check the path; `edgekit runs list` shows whether the run is stored") from exc
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise bad(getattr(exc, "strerror", None) or str(exc).splitlines()[0]) from exc
    if not isinstance(doc, dict) or doc.get("edgekit_fallback") != 1:
        raise bad("no `edgekit_fallback: 1` marker")
    run = doc.get("run")
    if not isinstance(run, dict) or not isinstance(run.get("kind"), str) or not isinstance(run.get("created"), str):
        raise bad("`run` must be an object with `kind` and `created`")
    if run.get("status") not in RUN_STATUSES or run.get("status") == "running":
        raise bad(f"`run.status` is {run.get('status')!r}, not one of {', '.join(RUN_STATUSES[1:])}")
    if run.get("id") is not None and (not isinstance(run["id"], int) or isinstance(run["id"], bool)):
        raise bad("`run.id` must be an integer or null")
    for col in _JSON_COLUMNS:
        if run.get(col) is not None and not isinstance(run[col], dict):
            raise bad(f"`run.{col}` must be an object")
    for col in RUN_COLUMNS:
        if col not in _JSON_COLUMNS and col not in ("id", "schema_version") and run.get(col) is not None \
                and not isinstance(run[col], str):
            raise bad(f"`run.{col}` must be text")
    samples = doc.get("samples") or {}
    if not isinstance(samples, dict) or any(p not in SAMPLE_PHASES or not isinstance(v, list) for p, v in
                                            samples.items()):
        raise bad(f"`samples` must map {', '.join(SAMPLE_PHASES)} to lists of milliseconds")
    if any(not isinstance(x, (int, float)) or isinstance(x, bool) for v in samples.values() for x in v):
        raise bad("a latency in `samples` is not a number")
    if not isinstance(doc.get("scores") or [], list):
        raise bad("`scores` must be a list")
    scores = []
    for item in doc.get("scores") or []:
        try:
            scores.append(StoredScore(**item))
        except TypeError as exc:
            raise bad(f"a score is malformed ({exc})") from exc
        if not isinstance(scores[-1].model, str) or not isinstance(scores[-1].metric, str):
            raise bad("a score lacks its model or metric")
    store = doc.get("store") if isinstance(doc.get("store"), str) and doc.get("store") else None
    return FallbackRecord(store, run, {p: [float(x) for x in v] for p, v in samples.items()}, scores)


def _run(row: sqlite3.Row) -> RunRecord:
    return RunRecord(
        id=row["id"], created=row["created"], finished=row["finished"], kind=row["kind"], group=row["grp"],
        model=row["model"], format=row["format"], precision=row["precision"], target=row["target"],
        runtime=row["runtime"], provenance=row["provenance"], status=row["status"], error=row["error"],
        artifact_path=row["artifact_path"], artifact_sha256=row["artifact_sha256"],
        env=json.loads(row["env"] or "{}"), config=json.loads(row["config"] or "{}"),
        result=json.loads(row["result"] or "{}"), schema_version=row["schema_version"], uuid=row["uuid"],
        origin=json.loads(row["origin"]) if row["origin"] else None,
    )
