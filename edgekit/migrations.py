"""Schema of the results store, as append-only named migrations (the pattern of simonw/llm's migrations.py).

Rules: never edit or reorder a migration that has shipped; add a new function at the end. Each applied migration is
recorded by name in `_edgekit_migrations`, so `migrate()` is idempotent and a store written by an older edgekit is
upgraded in place. A store recording a migration not in this list was written by a newer edgekit: the store
refuses it (edgekit/store.py) instead of reading a layout it does not know. tests/test_store.py pins the resulting
columns.
"""

from __future__ import annotations

import functools
import sqlite3
from collections.abc import Callable
from datetime import UTC, datetime

Migration = Callable[[sqlite3.Connection], None]
MIGRATIONS: list[Migration] = []


def migration(fn: Migration) -> Migration:
    MIGRATIONS.append(fn)
    return fn


def applied(conn: sqlite3.Connection) -> list[str]:
    conn.execute("CREATE TABLE IF NOT EXISTS _edgekit_migrations (name TEXT PRIMARY KEY, applied TEXT NOT NULL)")
    return [row[0] for row in conn.execute("SELECT name FROM _edgekit_migrations ORDER BY rowid")]


def recorded(conn: sqlite3.Connection) -> list[str] | None:
    """The migrations recorded in the store, read without writing (None: no migrations table, not an edgekit
    store). For read-only connections."""
    table = conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = '_edgekit_migrations'")
    if table.fetchone() is None:
        return None
    return [row[0] for row in conn.execute("SELECT name FROM _edgekit_migrations ORDER BY rowid")]


def unknown(names: list[str]) -> list[str]:
    """Recorded migrations this edgekit does not have: the store was written by a newer edgekit."""
    known = {fn.__name__ for fn in MIGRATIONS}
    return [n for n in names if n not in known]


@functools.cache
def expected_columns() -> dict[str, tuple[str, ...]]:
    """{table: columns} after every migration (built once in memory): what this edgekit reads."""
    conn = sqlite3.connect(":memory:")
    try:
        migrate(conn)
        tables = [r[0] for r in conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' "
            "AND name != '_edgekit_migrations'")]
        return {t: tuple(r[1] for r in conn.execute(f"PRAGMA table_info({t})")) for t in tables}
    finally:
        conn.close()


def migrate(conn: sqlite3.Connection) -> list[str]:
    """Apply the migrations not yet recorded; returns the names applied now."""
    done = set(applied(conn))
    new: list[str] = []
    for fn in MIGRATIONS:
        if fn.__name__ in done:
            continue
        with conn:  # one transaction per migration: all of it or none of it
            fn(conn)
            conn.execute("INSERT INTO _edgekit_migrations (name, applied) VALUES (?, ?)",
                         (fn.__name__, datetime.now(UTC).isoformat(timespec="seconds")))
        new.append(fn.__name__)
    return new


@migration
def m001_initial(conn: sqlite3.Connection) -> None:
    # runs: one benchmark / evaluation / export attempt. JSON columns hold the full records (env, config, result).
    conn.execute(
        """CREATE TABLE runs (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            created TEXT NOT NULL,
            finished TEXT,
            kind TEXT NOT NULL,
            grp TEXT,
            model TEXT,
            format TEXT,
            precision TEXT,
            target TEXT,
            runtime TEXT,
            provenance TEXT,
            status TEXT NOT NULL,
            error TEXT,
            artifact_path TEXT,
            artifact_sha256 TEXT,
            env TEXT,
            config TEXT,
            result TEXT,
            schema_version INTEGER NOT NULL DEFAULT 1
        )"""
    )
    conn.execute("CREATE INDEX idx_runs_model ON runs (model, format, precision)")
    conn.execute("CREATE INDEX idx_runs_kind ON runs (kind, created)")
    # samples: every latency of a run, in ms, by phase (first | warmup | steady), in the order measured.
    conn.execute(
        """CREATE TABLE samples (
            run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
            phase TEXT NOT NULL,
            idx INTEGER NOT NULL,
            latency_ms REAL NOT NULL,
            PRIMARY KEY (run_id, phase, idx)
        )"""
    )
    # scores: evaluation results (model x domain x task x metric), optionally tied to the run that produced them.
    conn.execute(
        """CREATE TABLE scores (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            run_id INTEGER REFERENCES runs(id) ON DELETE CASCADE,
            created TEXT NOT NULL,
            model TEXT NOT NULL,
            domain TEXT,
            task TEXT,
            metric TEXT NOT NULL,
            score REAL,
            n INTEGER,
            seed INTEGER,
            source TEXT,
            details TEXT
        )"""
    )
    conn.execute("CREATE INDEX idx_scores_model ON scores (model, domain, task)")


@migration
def m002_run_uuid_origin(conn: sqlite3.Connection) -> None:
    # uuid: a run's stable id across stores (kept by `runs export` -> `runs import`, so a run merged twice is
    # recognised and not duplicated); runs made before this migration get one now. origin: JSON, NULL for a run
    # made with this store; for an imported run {machine, file, imported, id, store, target} — where it came from.
    import uuid

    conn.execute("ALTER TABLE runs ADD COLUMN uuid TEXT")
    conn.execute("ALTER TABLE runs ADD COLUMN origin TEXT")
    ids = [row[0] for row in conn.execute("SELECT id FROM runs")]
    conn.executemany("UPDATE runs SET uuid = ? WHERE id = ?", [(str(uuid.uuid4()), i) for i in ids])
    conn.execute("CREATE UNIQUE INDEX idx_runs_uuid ON runs (uuid)")
