"""`edgekit runs import` (issue 16, part 2): runs exported as JSON on one machine merge into another store without
duplicates (stable uuid), keeping provenance, samples and the machine each came from. Real benchmarks (a tiny ONNX
model through the bench engine's child process), real SQLite stores, the real CLI as a subprocess."""

from __future__ import annotations

import json
import platform
import sqlite3
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from edgekit.store import ResultsStore

sys.path.insert(0, str(Path(__file__).parent / "fixtures"))
from farm_models import tiny_onnx  # noqa: E402

FAST = ["--runs", "5", "--min-time", "0.05", "--warmup", "1", "--max-time", "2", "--energy", "none"]


def cli(*args: str, rc: int = 0) -> subprocess.CompletedProcess:
    proc = subprocess.run([sys.executable, "-m", "edgekit.cli", *args], capture_output=True, text=True, timeout=300)
    assert proc.returncode == rc, f"{args}: rc {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
    assert "Traceback" not in proc.stderr
    return proc


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """A store with 2 real benchmark runs (one group) and its JSON export with samples."""
    d = tmp_path_factory.mktemp("machine-a")
    model = tiny_onnx(d / "mlp.onnx")
    db = d / "a.db"
    cli("bench", str(model), "--repeat", "2", "--group", "cell-1", "--db", str(db), *FAST)
    out = d / "a.json"
    cli("runs", "export", "--format", "json", "--samples", "--out", str(out), "--db", str(db))
    return db, out


def test_round_trip_keeps_every_field_and_never_duplicates(exported, tmp_path):
    db_a, file_a = exported
    docs = json.loads(file_a.read_text())
    assert len(docs) == 2 and all(d["machine"] == platform.node() and uuid.UUID(d["uuid"]) for d in docs)
    db_b = tmp_path / "b.db"
    first = json.loads(cli("runs", "import", str(file_a), "--db", str(db_b), "--json").stdout)
    assert first["imported"] == 2 and first["duplicates"] == 0 and first["machines"] == {platform.node(): 2}
    again = json.loads(cli("runs", "import", str(file_a), str(file_a), "--db", str(db_b), "--json").stdout)
    assert again["imported"] == 0 and again["duplicates"] == 4  # the same file twice, already there: nothing new

    with ResultsStore(db_a, read_only=True) as a, ResultsStore(db_b, read_only=True) as b:
        src = {r.uuid: r for r in a.list_runs()}
        dst = {r.uuid: r for r in b.list_runs()}
        assert set(src) == set(dst) and len(dst) == 2
        for key, s in src.items():
            d = dst[key]
            for attr in ("created", "finished", "kind", "group", "model", "format", "precision", "runtime",
                         "provenance", "status", "error", "artifact_path", "artifact_sha256", "env", "config",
                         "result", "schema_version"):
                assert getattr(d, attr) == getattr(s, attr), attr
            for phase in ("first", "warmup", "steady"):
                assert b.samples(d.id, phase) == a.samples(s.id, phase) and (phase == "warmup" or a.samples(s.id, phase))
            assert s.target == "local" and d.target == f"local@{platform.node()}"  # "local" of another machine
            assert d.origin["machine"] == platform.node() and d.origin["id"] == s.id
            assert d.origin["target"] == "local" and d.origin["file"] == str(file_a.resolve())
            assert s.origin is None
    # the merged store serves the read-only commands (report, compare by group)
    shown = json.loads(cli("runs", "show", str(min(r.id for r in dst.values())), "--json", "--db", str(db_b)).stdout)
    assert shown["origin"]["machine"] == platform.node()
    cli("report", "--all", "--db", str(db_b), "--out", str(tmp_path / "rep"), "--format", "json")
    rows = json.loads((tmp_path / "rep.json").read_text())["rows"]
    assert {r["target"] for r in rows} == {f"local@{platform.node()}"}


def test_second_hop_keeps_the_first_machine_and_original_store_sees_duplicates(exported, tmp_path):
    db_a, file_a = exported
    db_b, db_c = tmp_path / "b.db", tmp_path / "c.db"
    cli("runs", "import", str(file_a), "--db", str(db_b), "--machine", "rpi4-01")
    file_b = tmp_path / "b.json"
    cli("runs", "export", "--format", "json", "--samples", "--out", str(file_b), "--db", str(db_b))
    assert {d["machine"] for d in json.loads(file_b.read_text())} == {"rpi4-01"}
    out = json.loads(cli("runs", "import", str(file_b), "--db", str(db_c), "--json").stdout)
    assert out["imported"] == 2 and out["machines"] == {"rpi4-01": 2}
    with ResultsStore(db_c, read_only=True) as c:
        for r in c.list_runs():
            assert r.origin["machine"] == "rpi4-01" and r.target == "local@rpi4-01"
            assert [hop["machine"] for hop in r.origin["via"]] == ["rpi4-01"]
            assert len(c.samples(r.id)) >= 5
    # back into the store they were made in: the same uuids, so nothing is added
    back = json.loads(cli("runs", "import", str(file_b), "--db", str(db_a), "--json").stdout)
    assert back == {**back, "imported": 0, "duplicates": 2}


def test_bad_files_are_one_line_and_write_nothing(exported, tmp_path):
    _, good = exported
    db = tmp_path / "s.db"
    csv_file = tmp_path / "runs.csv"
    csv_file.write_text("id,created\n1,2026\n")
    bad_status = tmp_path / "bad.json"
    doc = json.loads(good.read_text())
    doc[1]["status"] = "exploded"
    bad_status.write_text(json.dumps(doc))
    for file, words in ((csv_file, "CSV export"), (bad_status, "run #2: `status` 'exploded'"),
                        (tmp_path / "missing.json", "does not exist")):
        proc = cli("runs", "import", str(good), str(file), "--db", str(db), rc=2)
        lines = proc.stderr.strip().splitlines()
        assert len(lines) == 1 and words in lines[0] and "fix:" in lines[0], proc.stderr
    with ResultsStore(db, read_only=True) as store:  # every file is checked before anything is written
        assert store.list_runs() == []


def test_migration_gives_old_runs_a_uuid(tmp_path):
    """A store written before m002 (m001 only) is upgraded in place: every old run gets its own uuid."""
    from edgekit.migrations import MIGRATIONS

    path = tmp_path / "old.db"
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE _edgekit_migrations (name TEXT PRIMARY KEY, applied TEXT NOT NULL)")
    MIGRATIONS[0](conn)
    conn.execute("INSERT INTO _edgekit_migrations VALUES ('m001_initial', '2026-01-01')")
    for i in range(3):
        conn.execute("INSERT INTO runs (created, kind, status) VALUES (?, 'bench', 'ok')", (f"2026-01-0{i + 1}",))
    conn.commit()
    conn.close()
    with ResultsStore(path) as store:
        ids = [r.uuid for r in store.list_runs()]
        assert len(set(ids)) == 3 and all(uuid.UUID(u) for u in ids)
        new = store.start_run("bench", model="m")
        assert uuid.UUID(store.get_run(new).uuid) and store.get_run(new).origin is None
