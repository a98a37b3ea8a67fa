"""Schema of the results store, as append-only named migrations (the pattern of simonw/llm's migrations.py).

Rules: never edit or reorder a migration that has shipped; add a new function at the end. Each applied migration is
recorded by name in `_edgekit_migrations`, so `migrate()` is idempotent and a store written by an older edgekit is
upgraded in place. tests/test_store.py pins the resulting columns.
"""

from __future__ import annotations

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
