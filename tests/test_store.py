"""The SQLite results store: pinned schema, migrations, records written at once, export, corrupt files."""

from __future__ import annotations

import csv
import io
import json
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from edgekit.errors import EdgekitError
from edgekit.migrations import MIGRATIONS
from edgekit.store import ResultsStore, StoredScore, default_db_path

EXPECTED_COLUMNS = {
    "runs": ["id", "created", "finished", "kind", "grp", "model", "format", "precision", "target", "runtime",
             "provenance", "status", "error", "artifact_path", "artifact_sha256", "env", "config", "result",
             "schema_version", "uuid", "origin"],
    "samples": ["run_id", "phase", "idx", "latency_ms"],
    "scores": ["id", "run_id", "created", "model", "domain", "task", "metric", "score", "n", "seed", "source",
               "details"],
}


def test_schema_columns_are_pinned(tmp_path):
    with ResultsStore(tmp_path / "s.db") as store:
        for table, cols in EXPECTED_COLUMNS.items():
            assert store.columns(table) == cols, f"{table} changed: add a migration, never edit m001"
        assert store.migrations() == [fn.__name__ for fn in MIGRATIONS] == ["m001_initial", "m002_run_uuid_origin"]


def test_migrations_apply_once(tmp_path):
    path = tmp_path / "s.db"
    ResultsStore(path).close()
    ResultsStore(path).close()
    conn = sqlite3.connect(path)
    names = [r[0] for r in conn.execute("SELECT name FROM _edgekit_migrations")]
    assert names == ["m001_initial", "m002_run_uuid_origin"]


def test_default_path_follows_env(tmp_path, monkeypatch):
    assert default_db_path() == tmp_path / "edgekit-test.db"  # the autouse fixture in conftest.py
    monkeypatch.delenv("EDGEKIT_DB")
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    assert default_db_path() == tmp_path / "xdg" / "edgekit" / "edgekit.db"
    with ResultsStore() as store:
        assert store.path == tmp_path / "xdg" / "edgekit" / "edgekit.db" and store.path.is_file()


def test_runs_are_committed_the_moment_they_exist(tmp_path):
    path = tmp_path / "s.db"
    store = ResultsStore(path)
    rid = store.start_run("bench", model="m", format="onnx", precision="fp32", target="local",
                          runtime="onnxruntime", provenance="measured", env={"cpu_model": "x"}, config={"runs": 5},
                          group="g1")
    # another connection sees it before anything else happens (a crash now would leave this row)
    other = ResultsStore(path)
    assert other.get_run(rid).status == "running"
    store.add_samples(rid, "steady", [1.5, 2.5, 3.5])
    store.add_samples(rid, "first", [9.0])
    store.finish_run(rid, "ok", result={"latency": {"p50": 2.5, "n": 3}}, runtime="onnxruntime")
    run = other.get_run(rid)
    assert run.status == "ok" and run.finished and run.result["latency"]["p50"] == 2.5
    assert run.env == {"cpu_model": "x"} and run.config == {"runs": 5} and run.group == "g1"
    assert other.samples(rid) == [1.5, 2.5, 3.5] and other.samples(rid, "first") == [9.0]
    store.close()
    other.close()


def test_list_filters_and_missing_run(tmp_path):
    with ResultsStore(tmp_path / "s.db") as store:
        a = store.start_run("bench", model="a")
        b = store.start_run("bench", model="b")
        store.finish_run(a, "ok")
        store.finish_run(b, "failed", error="boom")
        e = store.start_run("eval", model="a")
        assert [r.id for r in store.list_runs()] == [e, b, a]
        assert [r.id for r in store.list_runs(kind="bench", model="a")] == [a]
        assert [r.error for r in store.list_runs(status="failed")] == ["boom"]
        assert len(store.list_runs(limit=1)) == 1
        with pytest.raises(EdgekitError, match="run 999 is not in the results store"):
            store.get_run(999)
        with pytest.raises(ValueError):
            store.finish_run(a, "great")
        store.delete_run(a)
        assert [r.id for r in store.list_runs(model="a")] == [e]


def test_scores(tmp_path):
    with ResultsStore(tmp_path / "s.db") as store:
        rid = store.start_run("eval", model="gem-tiny")
        store.add_scores([StoredScore("gem-tiny", "macro_f1", 0.71, domain="law", task="contracts", n=200, seed=0),
                          StoredScore("gem-tiny", "macro_f1", 0.55, domain="finance", task="fpb", details={"k": 1})],
                         run_id=rid)
        rows = store.scores(model="gem-tiny")
        assert [(r.domain, r.score, r.run_id) for r in rows] == [("law", 0.71, rid), ("finance", 0.55, rid)]
        assert store.scores(domain="finance")[0].details == {"k": 1}
        store.delete_run(rid)  # scores of a deleted run go with it
        assert store.scores() == []


def test_export_json_and_csv(tmp_path):
    with ResultsStore(tmp_path / "s.db") as store:
        rid = store.start_run("bench", model="m", format="tflite", precision="int8")
        store.add_samples(rid, "steady", [1.0, 2.0])
        store.finish_run(rid, "ok", result={"latency": {"p50": 1.5, "ci_median": [1, 2]},
                                            "energy": {"provenance": "modeled"}})
        docs = json.loads(store.export("json", with_samples=True))
        assert docs[0]["result"]["latency"]["p50"] == 1.5 and docs[0]["samples"]["steady"] == [1.0, 2.0]
        rows = list(csv.DictReader(io.StringIO(store.export("csv"))))
        assert rows[0]["model"] == "m" and rows[0]["latency.p50"] == "1.5"
        assert rows[0]["energy.provenance"] == "modeled" and "latency.ci_median" not in rows[0]
        per_sample = list(csv.DictReader(io.StringIO(store.export("csv", with_samples=True))))
        assert [r["latency_ms"] for r in per_sample] == ["1.0", "2.0"]
        with pytest.raises(EdgekitError, match="unknown export format"):
            store.export("xml")


def test_corrupt_store_is_one_clear_error(tmp_path):
    bad = tmp_path / "bad.db"
    bad.write_bytes(b"this is not sqlite at all" * 100)
    with pytest.raises(EdgekitError, match="not a readable edgekit database") as info:
        ResultsStore(bad)
    assert "move the file aside" in info.value.fix
    with pytest.raises(EdgekitError, match="is a directory"):
        ResultsStore(tmp_path)


@pytest.mark.parametrize("args", [["runs", "list"], ["runs", "show", "1"], ["runs", "export"]])
def test_cli_on_a_corrupt_store(tmp_path, args):
    bad = tmp_path / "bad.db"
    bad.write_bytes(b"\x00garbage" * 512)
    proc = subprocess.run([sys.executable, "-m", "edgekit.cli", *args, "--db", str(bad)], capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: results store") and "Traceback" not in proc.stderr


def test_cli_runs_list_show_export(tmp_path):
    with ResultsStore() as store:  # the default path (EDGEKIT_DB from conftest)
        rid = store.start_run("bench", model="m", format="onnx", precision="fp32", provenance="measured")
        store.add_samples(rid, "steady", [1.0, 2.0, 3.0])
        store.finish_run(rid, "ok", result={"latency": {"p50": 2.0, "p90": 2.8, "n": 3},
                                            "energy": {"j_per_inference": 0.001, "provenance": "modeled"}})

    def cli(*args: str) -> str:
        proc = subprocess.run([sys.executable, "-m", "edgekit.cli", *args], capture_output=True, text=True,
                              timeout=120)
        assert proc.returncode == 0, proc.stderr
        return proc.stdout

    rows = json.loads(cli("runs", "list", "--json"))
    assert rows[0]["id"] == rid and rows[0]["p50_ms"] == 2.0 and rows[0]["energy_provenance"] == "modeled"
    assert "m" in cli("runs", "list")
    shown = json.loads(cli("runs", "show", str(rid), "--json", "--samples"))
    assert shown["samples"]["steady"] == [1.0, 2.0, 3.0]
    out = tmp_path / "runs.csv"
    cli("runs", "export", "--format", "csv", "--out", str(out))
    assert list(csv.DictReader(out.open()))[0]["latency.p90"] == "2.8"
    assert Path(out).stat().st_size > 0
