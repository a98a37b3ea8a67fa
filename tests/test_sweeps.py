"""`edgekit bench --threads 1,2 --batch 1,4 --seq-len 8,32`: sweeps expand into runs of one group (real benchmark
child processes on tiny ONNX models made here), each run stores its point and the threads the runtime really used,
a fixed batch is refused in one line (or skipped beside artifacts that can take it), and the report draws latency
against the swept value."""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path

import numpy as np
import psutil
import pytest
from reportdata import run_main

from edgekit.bench.sweep import SweepPoint, resize_job, seq_axis, sweep_points
from edgekit.export.artifact import Artifact, Manifest, path_size
from edgekit.files import file_sha256
from edgekit.specs import TensorSpec
from edgekit.store import ResultsStore

FAST = ("--runs", "5", "--min-time", "0.02", "--warmup", "1", "--idle", "0", "--energy", "none")


def matmul_onnx(path: Path, batch: int | str = "batch") -> Path:
    """x[batch, 16] @ W[16, 4]; batch is a symbolic (dynamic) axis unless an int is given (a static shape)."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    weight = numpy_helper.from_array(np.random.default_rng(0).standard_normal((16, 4)).astype(np.float32), "W")
    graph = helper.make_graph([helper.make_node("MatMul", ["x", "W"], ["y"])], "mm",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [batch, 16])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [batch, 4])], [weight])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, path)
    return path


def token_onnx(path: Path, seq: str = "sequence") -> Path:
    """input_ids int64 [batch, seq] -> Gather from a 100x8 embedding -> ReduceMean over the sequence: [batch, 8]."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    emb = numpy_helper.from_array(np.random.default_rng(0).standard_normal((100, 8)).astype(np.float32), "E")
    axes = numpy_helper.from_array(np.array([1], dtype=np.int64), "axes")
    graph = helper.make_graph(
        [helper.make_node("Gather", ["E", "input_ids"], ["h"]),
         helper.make_node("ReduceMean", ["h", "axes"], ["y"], keepdims=0)], "tok",
        [helper.make_tensor_value_info("input_ids", TensorProto.INT64, ["batch", seq])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 8])], [emb, axes])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = 8
    onnx.save(model, path)
    return path


def bench_json(*args: str) -> list[dict]:
    proc = run_main("bench", *args, *FAST, "--json")
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def test_threads_and_batch_sweep_is_one_group_of_interleaved_runs(tmp_path):
    model = matmul_onnx(tmp_path / "mm.onnx")
    results = bench_json(str(model), "--threads", "1,2", "--batch", "1,4", "--group", "sweep")
    assert [r["config"]["sweep"] for r in results] == [
        {"threads": 1, "batch": 1}, {"threads": 1, "batch": 4}, {"threads": 2, "batch": 1}, {"threads": 2, "batch": 4}]
    for r in results:
        point = r["config"]["sweep"]
        assert r["status"] == "ok", r["error"]
        assert r["inputs"] == [{"name": "x", "shape": [point["batch"], 16], "dtype": "float32"}]
        # the runtime's own value, read back from the session, in the run, its env and the config
        assert r["runtime"]["threads"] == r["env"]["threads"] == r["config"]["threads"] == point["threads"]
        assert "intra_op_num_threads" in r["runtime"]["threads_source"]
    with ResultsStore(Path(os.environ["EDGEKIT_DB"])) as store:
        runs = store.list_runs()
    assert {r.group for r in runs} == {"sweep"} and len(runs) == 4
    assert sorted(r.config["sweep"]["batch"] for r in runs) == [1, 1, 4, 4]

    # the report: latency vs threads and vs batch, a plot each in the HTML and a table each in Markdown
    out = tmp_path / "rep"
    proc = run_main("report", "--group", "sweep", "--out", str(out), "--format", "md,html,json,csv")
    assert proc.returncode == 0, proc.stderr
    html = Path(f"{out}.html").read_text()
    assert 'id="plot-sweep-mm-threads"' in html and 'id="plot-sweep-mm-batch"' in html
    md = Path(f"{out}.md").read_text()
    assert "### mm: p50 latency (ms) vs threads" in md and "### mm: p50 latency (ms) vs batch size" in md
    table = md.split("### mm: p50 latency (ms) vs threads")[1].split("###")[0]
    assert "| threads | 1 | 2 |" in table and "onnx/unknown @ local, batch 1 (measured)" in table
    rows = json.loads(Path(f"{out}.json").read_text())["rows"]
    assert sorted((r["threads"], r["sweep"]["batch"]) for r in rows) == [(1, 1), (1, 4), (2, 1), (2, 4)]
    head = next(ln for ln in md.splitlines() if ln.startswith("| target |"))
    assert "| threads | sweep |" in head  # threads and the batch of each run are columns of the model table
    with open(f"{out}.csv", newline="") as fh:
        csv_rows = list(csv.DictReader(fh))
    assert sorted((r["threads"], r["batch"], r["seq_len"]) for r in csv_rows) == [
        ("1", "1", ""), ("1", "4", ""), ("2", "1", ""), ("2", "4", "")]
    assert {r["size_bytes"] for r in csv_rows} == {str(model.stat().st_size)}


def test_default_threads_are_the_runtimes_own_never_none(tmp_path):
    (r,) = bench_json(str(matmul_onnx(tmp_path / "mm.onnx")))
    physical = psutil.cpu_count(logical=False)
    assert r["runtime"]["threads"] == r["env"]["threads"] == physical  # onnxruntime: one per physical core
    assert "onnxruntime default" in r["runtime"]["threads_source"] and r["config"]["threads"] is None
    table = run_main("bench", str(tmp_path / "mm.onnx"), *FAST, "--batch", "4")
    assert table.returncode == 0, table.stderr
    assert f"onnx/unknown ×{physical} b4" in table.stdout, table.stdout  # the threads used, in the bench table
    out = tmp_path / "rep"
    assert run_main("report", "--out", str(out), "--format", "md").returncode == 0
    md = Path(f"{out}.md").read_text()
    head = [c.strip() for c in next(ln for ln in md.splitlines() if ln.startswith("| target |")).split("|")]
    line = [c.strip() for c in next(ln for ln in md.splitlines() if ln.startswith("| local |")).split("|")]
    assert line[head.index("threads")] == str(physical)


def test_fixed_batch_is_refused_in_one_line_before_anything_runs(tmp_path):
    model = matmul_onnx(tmp_path / "static.onnx", batch=1)
    proc = run_main("bench", str(model), "--batch", "1,8", *FAST)
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert proc.returncode == 2 and len(lines) == 1, proc.stderr
    assert "fixed batch size 1" in lines[0] and "--batch 8" in lines[0] and "dynamic batch" in lines[0], lines[0]
    with ResultsStore(Path(os.environ["EDGEKIT_DB"])) as store:
        assert store.list_runs() == []  # refused before any run was stored


def test_fixed_batch_beside_a_dynamic_one_is_skipped_with_the_reason(tmp_path):
    exp = tmp_path / "export"
    exp.mkdir()
    manifest = Manifest(model="mm", source="tests", edgekit_version="test", created="now", inputs=[], outputs=["y"])
    for precision, batch in (("fp32", "batch"), ("fp16", 1)):
        path = matmul_onnx(exp / f"mm.{precision}.onnx", batch=batch)
        manifest.upsert(Artifact(model="mm", format="onnx", precision=precision, path=path.name,
                                 size_bytes=path_size(path), sha256=file_sha256(path),
                                 inputs=[TensorSpec("x", (1, 16)).to_dict()]))
    manifest.write(exp)
    proc = run_main("bench", str(exp), "--batch", "1,8", *FAST, "--json")
    assert proc.returncode == 0, proc.stderr
    got = {(r["precision"], r["config"]["sweep"]["batch"]): r for r in json.loads(proc.stdout)}
    assert [got[k]["status"] for k in sorted(got)] == ["ok", "skipped", "ok", "ok"]  # fp16 b1, fp16 b8, fp32 ...
    assert "fixed batch size 1" in got[("fp16", 8)]["error"] and "dynamic batch" in got[("fp16", 8)]["error"]
    assert got[("fp32", 8)]["inputs"][0]["shape"] == [8, 16]
    assert got[("fp32", 8)]["size_bytes"] == path_size(exp / "mm.fp32.onnx")


def test_seq_len_sweep_resizes_the_sequence_axis(tmp_path):
    model = token_onnx(tmp_path / "tok.onnx")
    results = bench_json(str(model), "--seq-len", "8,32", "--batch", "2")
    assert [r["inputs"][0]["shape"] for r in results] == [[2, 8], [2, 32]]
    assert [r["config"]["sweep"] for r in results] == [{"batch": 2, "seq_len": 8}, {"batch": 2, "seq_len": 32}]
    assert all(r["status"] == "ok" and r["runtime"]["threads"] >= 1 for r in results)
    # a model without a sequence input: one line
    proc = run_main("bench", str(matmul_onnx(tmp_path / "mm.onnx")), "--seq-len", "8", *FAST)
    assert proc.returncode == 2 and "has no sequence input" in proc.stderr and "--seq-len" in proc.stderr


def test_sequence_axis_rules():
    assert seq_axis(TensorSpec("ids", (1, 128), "int64")) == 1  # an integer input of rank 2
    assert seq_axis(TensorSpec("ids", (1, 4, 128), "int64", {2: "tokens"})) == 2  # named
    assert seq_axis(TensorSpec("emb", (1, 16, 32), "float32", {1: "seq_len"})) == 1
    assert seq_axis(TensorSpec("x", (1, 16), "float32")) is None  # a float feature vector
    assert sweep_points([1, 2], [1, 8]) == [SweepPoint(1, 1), SweepPoint(1, 8), SweepPoint(2, 1), SweepPoint(2, 8)]
    assert sweep_points() == [SweepPoint()]


def test_torch_inputs_without_a_readable_signature_follow_the_specs(tmp_path):
    """A format edgekit cannot parse (.pt2) is resized where its specs say the axis is dynamic, refused where not."""
    from edgekit.bench.runner import BenchJob

    job = BenchJob(model="m", format="torch", precision="fp32", path=tmp_path / "m.pt2", runtime="torch",
                   inputs=[TensorSpec("ids", (1, 64), "int64", {0: "batch", 1: "seq"})])
    assert resize_job(job, SweepPoint(batch=4, seq_len=16)).inputs[0].shape == (4, 16)
    fixed = BenchJob(model="m", format="torch", precision="fp32", path=tmp_path / "m.pt2", runtime="torch",
                     inputs=[TensorSpec("ids", (1, 64), "int64", {0: "batch"})])
    assert "fixed sequence length 64" in resize_job(fixed, SweepPoint(seq_len=16)).skip_reason


@pytest.mark.parametrize(("value", "needle"), [("1,0", "outside 1.."), ("1,abc", "comma list"), ("2,,3", "comma")])
def test_bad_thread_lists_are_one_line(tmp_path, value, needle):
    proc = run_main("bench", str(tmp_path / "missing.onnx"), "--threads", value)
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert proc.returncode == 2 and len(lines) == 1 and "--threads" in lines[0] and needle in lines[0], proc.stderr
