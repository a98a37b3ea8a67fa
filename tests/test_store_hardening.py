"""The results store under stress (issue 11 items 11, 12, 13 and 16's `runs export --out`): a final write that
cannot reach the store keeps the result in a fallback file; SIGTERM / SIGINT mark the run `interrupted`; a store
from a newer edgekit is refused; read-only commands never create a store and work on a read-only one; `runs export`
writes its file atomically. Real SQLite locks, real subprocesses, real signals."""

from __future__ import annotations

import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from edgekit.errors import EdgekitError
from edgekit.store import ResultsStore

NOBODY = 65534


def cli(*args: str, env: dict | None = None, timeout: float = 120, user: list[str] | None = None
        ) -> subprocess.CompletedProcess:
    return subprocess.run([*(user or []), sys.executable, "-m", "edgekit.cli", *args], capture_output=True,
                          text=True, env={**os.environ, "COLUMNS": "200", **(env or {})}, timeout=timeout)


def one_error_line(proc: subprocess.CompletedProcess, code: int = 2) -> str:
    assert "Traceback" not in proc.stderr + proc.stdout, proc.stderr
    assert proc.returncode == code, (proc.returncode, proc.stderr, proc.stdout)
    lines = [ln for ln in proc.stderr.strip().splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr
    return lines[0]


def tiny_onnx(path: Path) -> Path:
    """y = relu(x), x: 1x4 float32 — built with onnx.helper (no exporter, so it is instant)."""
    import onnx
    from onnx import TensorProto, helper

    graph = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "tiny",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return path


def stored_row(db: Path, run_id: int) -> sqlite3.Row:
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    conn.row_factory = sqlite3.Row
    try:
        return conn.execute("SELECT * FROM runs WHERE id = ?", (run_id,)).fetchone()
    finally:
        conn.close()


class HeldLock:
    """Another writer: a second SQLite connection that holds BEGIN EXCLUSIVE on the store until released."""

    def __init__(self, db: Path) -> None:
        self.conn = sqlite3.connect(db, isolation_level=None, check_same_thread=False)

    def take(self) -> None:
        self.conn.execute("BEGIN EXCLUSIVE")

    def release(self) -> None:
        if self.conn.in_transaction:
            self.conn.execute("ROLLBACK")
        self.conn.close()


# -- item 11: a final write that cannot reach the store keeps the result -------------------------------------------


def test_locked_final_write_keeps_result_in_a_fallback_and_imports_back(tmp_path):
    db = tmp_path / "s.db"
    store = ResultsStore(db, timeout_s=0.2)
    rid = store.start_run("bench", model="m", format="onnx", precision="fp32", target="local", group="g")
    lock = HeldLock(db)
    lock.take()
    t0 = time.monotonic()
    with pytest.raises(EdgekitError) as info:
        store.finish_run(rid, "ok", result={"latency": {"p50": 2.0, "n": 3}},
                         samples={"steady": [1.0, 2.0, 3.0], "first": [9.0]})
    assert time.monotonic() - t0 < 5  # the short busy timeout, not 30 s
    line = info.value.one_line()
    fallbacks = sorted(tmp_path.glob("s.db.run-*.fallback.json"))
    assert len(fallbacks) == 1, list(tmp_path.iterdir())
    fb = fallbacks[0]
    assert str(fb) in line and f"edgekit runs import-fallback {fb}" in line and "locked" in line, line
    doc = json.loads(fb.read_text())
    assert doc["run"]["id"] == rid and doc["run"]["status"] == "ok" and doc["samples"]["steady"] == [1.0, 2.0, 3.0]
    store.close()
    assert stored_row(db, rid)["status"] == "running"  # nothing reached the store while it was locked
    lock.release()

    # the store is writable again: the next open marks the stale row failed and names the fallback
    ResultsStore(db).close()
    row = stored_row(db, rid)
    assert row["status"] == "failed" and str(fb) in row["error"] and "import-fallback" in row["error"]

    proc = cli("runs", "import-fallback", str(fb))  # the store is named in the file
    assert proc.returncode == 0, proc.stderr
    assert f"run {rid}" in proc.stdout + proc.stderr
    with ResultsStore(db) as s:
        run = s.get_run(rid)
        assert run.status == "ok" and run.result["latency"]["p50"] == 2.0 and run.group == "g"
        assert s.samples(rid) == [1.0, 2.0, 3.0] and s.samples(rid, "first") == [9.0]
    assert not fb.exists()  # imported: the data is in the store now
    line = one_error_line(cli("runs", "import-fallback", str(fb)))
    assert str(fb) in line


def test_bench_measurement_survives_a_store_locked_at_the_end(tmp_path):
    from edgekit.bench.jobs import resolve_jobs
    from edgekit.bench.runner import BenchConfig, run_benchmark

    db = tmp_path / "s.db"
    store = ResultsStore(db, timeout_s=0.2)
    lock = HeldLock(db)

    def on_event(ev: dict) -> None:  # another writer grabs the store while the child measures
        if ev.get("event") == "phase" and ev.get("phase") == "timed" and not lock.conn.in_transaction:
            lock.take()

    job = resolve_jobs(str(tiny_onnx(tmp_path / "tiny.onnx")))[0]
    config = BenchConfig(warmup=1, runs=5, min_time_s=0.01, idle_s=0.0, energy="none")
    with pytest.raises(EdgekitError) as info:
        run_benchmark(job, config, store=store, group="g", on_event=on_event)
    assert lock.conn.in_transaction, "the lock was never taken"
    lock.release()
    store.close()
    (fb,) = tmp_path.glob("s.db.run-*.fallback.json")
    assert str(fb) in info.value.one_line()
    doc = json.loads(fb.read_text())
    assert len(doc["samples"]["steady"]) >= 5 and doc["run"]["model"] == "tiny"
    with ResultsStore(db) as s:
        s.import_fallback(fb)
        run = s.list_runs()[0]
        assert run.status == "ok" and len(s.samples(run.id)) == len(doc["samples"]["steady"])
        assert run.result["latency"]["n"] == len(doc["samples"]["steady"])


def test_remote_and_eval_records_keep_a_fallback_too(tmp_path):
    """record_run (insert + finish in one write) — used for device results, evaluations and the study — never
    loses its result: with the store locked from the start, the whole record goes to the fallback."""
    from edgekit.store import StoredScore

    db = tmp_path / "s.db"
    ResultsStore(db).close()
    lock = HeldLock(db)
    lock.take()
    with ResultsStore(db, timeout_s=0.2) as store, pytest.raises(EdgekitError) as info:
        store.record_run("eval", "ok", model="m", result={"macro_f1": 0.5}, config={"seed": 0},
                         scores=[StoredScore(model="m", metric="macro_f1", score=0.5, domain="law", task="t")])
    lock.release()
    (fb,) = tmp_path.glob("s.db.run-*.fallback.json")
    assert str(fb) in info.value.one_line()
    with ResultsStore(db) as store:
        rid = store.import_fallback(fb)
        assert store.get_run(rid).status == "ok" and store.get_run(rid).config == {"seed": 0}
        assert [(s.model, s.domain, s.score, s.run_id) for s in store.scores()] == [("m", "law", 0.5, rid)]


@pytest.mark.parametrize("content", ["{not json", "[]", '{"edgekit_fallback": 1}',
                                     '{"edgekit_fallback": 1, "run": {"kind": "bench", "status": "ok", '
                                     '"created": "x", "result": "nope"}}',
                                     '{"edgekit_fallback": 1, "run": {"kind": "bench", "status": "ok", '
                                     '"created": "x"}, "samples": {"steady": ["a"]}}',
                                     '{"edgekit_fallback": 1, "run": {"kind": "bench", "status": "bogus", '
                                     '"created": "x"}}'])
def test_import_fallback_rejects_malformed_files_in_one_line(tmp_path, content):
    bad = tmp_path / "bad.fallback.json"
    bad.write_text(content)
    ResultsStore(tmp_path / "s.db").close()
    line = one_error_line(cli("runs", "import-fallback", str(bad), "--db", str(tmp_path / "s.db")))
    assert str(bad) in line
    assert bad.exists()


def test_fallback_for_a_vanished_store_creates_nothing_and_another_store_gets_a_new_row(tmp_path):
    db = tmp_path / "s.db"
    with ResultsStore(db) as store:
        first = store.start_run("bench", model="other")
        store.finish_run(first, "ok")
    fb = tmp_path / "x.fallback.json"
    fb.write_text(json.dumps({"edgekit_fallback": 1, "store": str(tmp_path / "gone" / "s.db"),
                              "run": {"id": first, "created": "2026-01-01T00:00:00.000+00:00", "kind": "bench",
                                      "model": "m", "status": "ok", "result": {"latency": {"p50": 1.0}}},
                              "samples": {"steady": [1.0]}}))
    line = one_error_line(cli("runs", "import-fallback", str(fb)))
    assert str(tmp_path / "gone" / "s.db") in line and "--db" in line
    assert not (tmp_path / "gone").exists()
    proc = cli("runs", "import-fallback", str(fb), "--db", str(db))
    assert proc.returncode == 0, proc.stderr
    with ResultsStore(db) as store:  # same id, another run (created differs): a new row, the old one untouched
        assert [(r.model, r.status) for r in store.list_runs()] == [("m", "ok"), ("other", "ok")]
        assert store.samples(store.list_runs()[0].id) == [1.0]


def test_read_only_open_of_a_path_with_uri_characters(tmp_path):
    folder = tmp_path / "we?ird #dir%20"
    folder.mkdir()
    db = _filled_store(folder)
    with ResultsStore(db, read_only=True) as store:
        assert [r.model for r in store.list_runs()] == ["m"]


@pytest.mark.parametrize("value", ["abc", "-1", "nan", "inf"])
def test_bad_busy_timeout_is_one_line(tmp_path, value):
    line = one_error_line(cli("runs", "list", env={"EDGEKIT_DB_TIMEOUT": value}))
    assert "EDGEKIT_DB_TIMEOUT" in line


# -- item 12: SIGTERM and SIGINT mark the run interrupted -----------------------------------------------------------


@pytest.mark.parametrize(("sig", "code", "name"), [(signal.SIGTERM, 143, "SIGTERM"), (signal.SIGINT, 130, "SIGINT")])
def test_signal_marks_the_running_run_interrupted(tmp_path, sig, code, name):
    import psutil

    db = tmp_path / "s.db"
    model = tiny_onnx(tmp_path / "tiny.onnx")
    proc = subprocess.Popen([sys.executable, "-m", "edgekit.cli", "bench", str(model), "--db", str(db),
                             "--runs", "100000000", "--min-time", "600", "--max-time", "600", "--energy", "none"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 90
        children: list = []
        while time.monotonic() < deadline:  # the row is `running` and the child is measuring
            if db.exists() and (row := _first_row(db)) is not None and row["status"] == "running":
                children = psutil.Process(proc.pid).children()
                if children:
                    break
            assert proc.poll() is None, proc.communicate()
            time.sleep(0.1)
        assert children, "the benchmark never started"
        time.sleep(0.5)
        proc.send_signal(sig)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == code, (proc.returncode, err)
    lines = [ln for ln in err.strip().splitlines() if ln.strip()]
    assert len(lines) == 1 and "Traceback" not in err, err
    assert lines[0].startswith("error: interrupted by ") and name in lines[0] and "run 1 " in lines[0], lines[0]
    row = stored_row(db, 1)
    assert row["status"] == "interrupted" and name in row["error"] and row["finished"]
    psutil.wait_procs(children, timeout=10)
    assert not any(c.is_running() and c.status() != psutil.STATUS_ZOMBIE for c in children), "child left running"


def _first_row(db: Path) -> sqlite3.Row | None:
    try:
        return stored_row(db, 1)
    except sqlite3.Error:
        return None


def test_interrupt_through_the_library_marks_open_runs(tmp_path):
    """A KeyboardInterrupt leaving `with ResultsStore(...)` marks the runs this handle left `running`."""
    db = tmp_path / "s.db"
    with pytest.raises(KeyboardInterrupt), ResultsStore(db) as store:
        done = store.start_run("eval", model="a")
        store.finish_run(done, "ok")
        open_id = store.start_run("eval", model="b")
        raise KeyboardInterrupt
    assert stored_row(db, done)["status"] == "ok"
    assert stored_row(db, open_id)["status"] == "interrupted"


# -- item 13: newer stores are refused; read-only commands never create a store ---------------------------------


def test_store_from_a_newer_edgekit_is_refused(tmp_path):
    db = tmp_path / "s.db"
    ResultsStore(db).close()
    conn = sqlite3.connect(db)
    conn.execute("INSERT INTO _edgekit_migrations (name, applied) VALUES ('m007_future_layout', 'later')")
    conn.commit()
    conn.close()
    with pytest.raises(EdgekitError, match="m007_future_layout"):
        ResultsStore(db)
    for argv in (["runs", "list"], ["report", "--all"], ["bench", "/nonexistent/x.onnx"]):
        line = one_error_line(cli(*argv, "--db", str(db)))
        assert "m007_future_layout" in line and "newer edgekit" in line and "upgrade edgekit" in line, line


def test_renamed_column_is_one_line_not_an_index_error(tmp_path):
    db = tmp_path / "s.db"
    with ResultsStore(db) as store:
        store.finish_run(store.start_run("bench", model="m"), "ok")
    conn = sqlite3.connect(db)
    conn.execute("ALTER TABLE runs RENAME COLUMN grp TO run_group")
    conn.commit()
    conn.close()
    for argv in (["runs", "list"], ["runs", "show", "1"], ["report", "--all"]):
        line = one_error_line(cli(*argv, "--db", str(db)))
        assert "runs.grp" in line and str(db) in line, line


READ_ONLY_COMMANDS = [
    ["runs", "list"],
    ["runs", "show", "1"],
    ["runs", "export"],
    ["report", "--all"],
    ["compare", "1", "2"],
    ["metrics", "--reference", "m"],
]


@pytest.mark.parametrize("argv", READ_ONLY_COMMANDS, ids=lambda a: "-".join(a[:2]))
def test_read_only_commands_never_create_a_store(tmp_path, argv):
    db = tmp_path / "typo" / "x.db"
    line = one_error_line(cli(*argv, "--db", str(db)))
    assert f"no results store at {db}" in line and "EDGEKIT_DB" in line, line
    assert not (tmp_path / "typo").exists()


def test_read_only_commands_do_not_touch_an_empty_or_foreign_file(tmp_path):
    empty = tmp_path / "empty.db"
    empty.write_bytes(b"")
    line = one_error_line(cli("runs", "list", "--db", str(empty)))
    assert str(empty) in line and "empty" in line
    assert empty.stat().st_size == 0
    foreign = tmp_path / "other.db"
    conn = sqlite3.connect(foreign)
    conn.execute("CREATE TABLE notes (x)")
    conn.commit()
    conn.close()
    before = foreign.read_bytes()
    line = one_error_line(cli("runs", "list", "--db", str(foreign)))
    assert "not an edgekit results store" in line
    assert foreign.read_bytes() == before


@pytest.fixture
def world_dir():
    """A folder every user can enter (pytest's tmp_path is 0700), removed afterwards."""
    d = Path(tempfile.mkdtemp(prefix="edgekit-ro-"))
    d.chmod(0o755)
    yield d
    for p in [d, *d.rglob("*")]:
        p.chmod(0o755 if p.is_dir() else 0o644)
    shutil.rmtree(d)


def as_unprivileged() -> list[str]:
    """Permission bits bind root only through another user: run the command as `nobody` when we are root."""
    if os.geteuid() != 0:
        return []
    if not shutil.which("setpriv"):
        pytest.skip("running as root without setpriv: a read-only file cannot be made read-only for this test")
    return ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups"]


def _filled_store(folder: Path) -> Path:
    db = folder / "s.db"
    with ResultsStore(db) as store:
        rid = store.start_run("bench", model="m", format="onnx", precision="fp32", target="local", group="g")
        store.add_samples(rid, "steady", [1.0, 2.0])
        store.finish_run(rid, "ok", result={"latency": {"p50": 1.5, "p90": 2.0, "n": 2}})
    return db


def test_read_only_store_file_in_a_read_only_folder_is_readable(world_dir):
    user = as_unprivileged()
    db = _filled_store(world_dir)
    assert sorted(p.name for p in world_dir.iterdir()) == ["s.db"]
    db.chmod(0o444)
    world_dir.chmod(0o555)
    before = db.read_bytes()
    proc = cli("runs", "list", "--json", "--db", str(db), user=user)
    assert proc.returncode == 0, proc.stderr
    assert [r["model"] for r in json.loads(proc.stdout)] == ["m"]
    proc = cli("runs", "export", "--format", "csv", "--db", str(db), user=user)
    assert proc.returncode == 0 and "m,onnx,fp32" in proc.stdout, proc.stderr
    assert db.read_bytes() == before


def test_read_only_store_file_in_a_writable_folder_is_readable(world_dir):
    user = as_unprivileged()
    db = _filled_store(world_dir)
    db.chmod(0o444)
    world_dir.chmod(0o777)
    proc = cli("runs", "show", "1", "--json", "--db", str(db), user=user)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["status"] == "ok"


# -- item 16 (part): runs export --out ---------------------------------------------------------------------------


def test_runs_export_into_a_missing_folder_is_one_line(tmp_path):
    _filled_store(tmp_path)
    out = tmp_path / "no" / "such" / "runs.json"
    line = one_error_line(cli("runs", "export", "--db", str(tmp_path / "s.db"), "--out", str(out)))
    assert str(out.parent) in line and "mkdir" in line, line
    assert not (tmp_path / "no").exists()


def test_runs_export_into_a_read_only_folder_is_one_line(world_dir):
    user = as_unprivileged()
    db = _filled_store(world_dir)
    ro = world_dir / "ro"
    ro.mkdir()
    (ro / "runs.json").write_text("previous export\n")
    ro.chmod(0o555)
    line = one_error_line(cli("runs", "export", "--db", str(db), "--out", str(ro / "runs.json"), user=user))
    assert str(ro / "runs.json") in line and "--out" in line, line
    assert (ro / "runs.json").read_text() == "previous export\n"
    assert sorted(p.name for p in ro.iterdir()) == ["runs.json"]  # no temp file left


def test_runs_export_replaces_atomically_and_does_not_follow_links(tmp_path):
    db = _filled_store(tmp_path)
    victim = tmp_path / "victim.txt"
    victim.write_text("keep me\n")
    out = tmp_path / "runs.json"
    out.symlink_to(victim)
    proc = cli("runs", "export", "--db", str(db), "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    assert victim.read_text() == "keep me\n" and not out.is_symlink()
    assert [r["model"] for r in json.loads(out.read_text())] == ["m"]
    assert oct(out.stat().st_mode & 0o777) != oct(0o600)  # an ordinary file, not mkstemp's 0600
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []
    line = one_error_line(cli("runs", "export", "--db", str(db), "--out", str(tmp_path)))
    assert str(tmp_path) in line and "folder" in line
