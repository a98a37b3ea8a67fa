"""Typed records end to end (edgekit/runlog.py): each stored kind round-trips through its one writer and its reader,
no other module writes to the store, runs are `running` while their work runs (local, remote, predicted), and the
report keeps an artifact's parity when the artifact is moved away from its manifest."""

from __future__ import annotations

import ast
import math
import shutil
from pathlib import Path

import pytest

from edgekit.bench.energy import PowerProfile, modeled_energy
from edgekit.bench.env import EnvRecord
from edgekit.bench.runner import BenchConfig, BenchResult, MemoryRecord, run_benchmark
from edgekit.bench.stats import noise_warnings, summarize
from edgekit.evalsuite.evaluate import DomainScore, EvalResult
from edgekit.export.artifact import Artifact, Manifest, ParityReport
from edgekit.files import file_sha256
from edgekit.store import ResultsStore

PACKAGE = Path(__file__).resolve().parent.parent / "edgekit"
WRITES = ("start_run", "finish_run", "record_run", "add_scores", "add_samples")


def _same(a: object, b: object) -> bool:
    """Equal, NaN equal to NaN (a summary of one sample has a NaN spread)."""
    if isinstance(a, float) and isinstance(b, float):
        return a == b or (math.isnan(a) and math.isnan(b))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, list | tuple) and isinstance(b, list | tuple):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    return a == b


def _bench_result(status: str = "running") -> BenchResult:
    env = EnvRecord(host_os="Linux", kernel="6.1", machine="x86_64", cpu_model="Test CPU", cpu_count=4,
                    cpus_used=[0, 1], memory_total_bytes=8 << 30, python="3.11", numpy="2.0", edgekit_version="t",
                    runtime="onnxruntime", runtime_version="1.20", threads=2, artifact_sha256="ab" * 32)
    parity = ParityReport(verdict="pass", runtime="onnxruntime", n_inputs=5, max_abs=2e-8, cosine=0.9999999,
                          top1_agreement=1.0, tolerance={"atol": 1e-4})
    return BenchResult(model="gem-tiny", format="onnx", precision="fp32", artifact="/a/gem-tiny.onnx", status=status,
                       config={**BenchConfig(runs=40).to_dict(), "target": "local"}, env=env, size_bytes=1234,
                       inputs=[{"name": "x", "shape": [1, 16], "dtype": "float32"}], parity=parity,
                       runtime_name="onnxruntime", artifact_sha256="ab" * 32)


def test_bench_result_round_trips_through_its_writer(tmp_path):
    """A benchmark inserted as `running`, finished with every figure, and read back equal (schema 1)."""
    from edgekit.bench.runner import log_bench

    res = _bench_result()
    with ResultsStore(tmp_path / "s.db") as store:
        run_id = log_bench(store, res, "g1")
        assert store.get_run(run_id).status == "running"
        xs = [10.0 + 0.1 * i for i in range(40)]
        res.status, res.samples_ms, res.warmup_ms, res.first_ms, res.load_ms = "ok", xs, xs[:3], 30.0, 42.0
        res.latency = summarize(xs)
        res.warnings = noise_warnings(xs, res.latency)
        res.memory = MemoryRecord(60, 80, 85, 90, "inference", 88)
        res.energy = modeled_energy(res.latency.mean, res.latency.std, res.latency.n,
                                    PowerProfile(0.0, 10.0, "test", "10 W"))
        res.runtime = {"runtime": "onnxruntime", "version": "1.20", "threads": 2}
        assert log_bench(store, res) == run_id
        run = store.get_run(run_id)
        phases = {p: store.samples(run_id, p) for p in ("steady", "warmup", "first")}
    assert run.status == "ok" and run.group == "g1" and run.result["schema"] == 1
    back = BenchResult.from_row(run, phases)
    assert back.latency == res.latency and back.memory == res.memory and back.energy == res.energy
    assert back.parity == res.parity and back.env == res.env and back.warnings == res.warnings
    assert _same(back.to_dict(), res.to_dict())


def test_eval_run_round_trips_through_its_writer(tmp_path):
    from edgekit.evalsuite.persist import EvalRun, log_eval

    scores = [DomainScore(d, f"{d}-topic", f, f + 0.05, 100, 4) for d, f in (("law", 0.5), ("stem", 0.7))]
    result = EvalResult(model="gem-tiny", kind="onnx", trained=True, seed=3, seq_len=64, vocab_size=8192,
                        scores=scores, runtime={"runtime": "onnxruntime"}, artifact_sha256="cd" * 32)
    rec = EvalRun(result, artifact_path="/a/m.onnx", precision="int8", source="edgekit study fragility (onnx)",
                  extra_config={"study": "fragility", "method": "kd"}, extra_result={"compression": "int8"},
                  score_details={"compression": "int8"}, model="gem-tiny kd-law int8")
    with ResultsStore(tmp_path / "s.db") as store:
        run_id = log_eval(store, rec, "g")
        run = store.get_run(run_id)
        stored = store.scores(run_id=run_id)
    assert run.result["schema"] == 1 and len(stored) == 4
    back = EvalRun.from_row(run, stored)
    assert back.result == result and back.run_id == run_id
    assert (back.artifact_path, back.precision, back.extra_config, back.extra_result, back.source,
            back.score_details, back.name) == (rec.artifact_path, rec.precision, rec.extra_config, rec.extra_result,
                                               rec.source, rec.score_details, "gem-tiny kd-law int8")
    assert back.scores() == rec.scores()  # the same score rows


def test_prediction_round_trips_through_its_writer(tmp_path):
    from edgekit.targets.predictor import COMPUTE_CLASSES, MEMORY_CLASSES, Calibration, Prediction
    from edgekit.targets.results import PredictionRun, log_prediction

    weights = [1.0] * (len(COMPUTE_CLASSES) + len(MEMORY_CLASSES)) + [1e-5, 1e-6, 1e-6]
    cal = Calibration(target="rpi4", weights=weights, n_samples=3, basis="calibrated on 3 runs",
                      loo_errors=[0.1, -0.2, 0.05], p90_ratio=1.1)
    pred = Prediction(model="m", target="rpi4", precision="fp32", p50_ms=80.0, p90_ms=88.0, flops=1e9, bytes=1e7,
                      kernels=12, calibration=cal, breakdown_ms={"compute": 50.0}, note="n", format="tflite")
    rec = PredictionRun("m", "tflite", "fp32", "rpi4")
    with ResultsStore(tmp_path / "s.db") as store:
        run_id = log_prediction(store, rec, "g")
        assert store.get_run(run_id).status == "running"
        rec.status, rec.prediction = "ok", pred
        log_prediction(store, rec)
        back = PredictionRun.from_row(store.get_run(run_id))
    assert back == rec


def test_study_record_round_trips_through_its_writer(tmp_path):
    from edgekit.study.record import StudyClaim, StudyMetric, StudyRecord, log_study

    rec = StudyRecord(reference="gem base", group="s1",
                      metrics=[StudyMetric("gem int8 kd", 0.75, 0.1, -0.02, 0.9, "law")],
                      claims=[StudyClaim("F1 0.89", "0.89", "not supported", "0.41 [0.3, 0.5]")],
                      notes=["one seed"], config={"seeds": [0]})
    rec.result = {"reference": "gem base", "metrics": [{"model": "gem int8 kd", "c": 0.75, "dsi": 0.1, "gg": -0.02,
                                                        "cdtr": 0.9, "target": "law"}],
                  "claims": [{"claim": "F1 0.89", "paper": "0.89", "verdict": "not supported",
                              "measured": "0.41 [0.3, 0.5]"}], "notes": ["one seed"]}
    with ResultsStore(tmp_path / "s.db") as store:
        run_id = log_study(store, rec)
        back = StudyRecord.from_row(store.get_run(run_id))
    assert back.result.pop("schema") == 1
    assert back == rec


def test_study_headline_round_trips_typed_and_old_rows_read_none(tmp_path):
    """The MiniLM study's headline (paper figures, cross-domain F1, latency per target) is read typed and versioned;
    a row without one (from-scratch study, rows before it) reads as None."""
    from edgekit.study.record import HEADLINE_VERSION, StudyHeadline, StudyLatency, StudyRecord, log_study

    head = StudyHeadline(paper_f1=0.89, paper_latency_ms_below=100.0, paper_targets=["rpi4", "pixel6"],
                         reference="gem-minilm base", base_f1=0.68, base_f1_per_seed={"0": 0.69, "1": 0.67},
                         deployed_f1={"gem-minilm kd-law int8": 0.69},
                         latency=[StudyLatency("local", "fp32", 14.3, 17.1, "measured", 15.2, 30, 1, 64)],
                         pipelines={"local": "backbone.onnx -> top.onnx (onnxruntime)"}, threads={"local": 1},
                         not_computed=["latency predicted for the four seed devices"])
    rec = StudyRecord(reference="gem-minilm base", group="s2", config={"seeds": [0, 1]}, headline=head,
                      result={"reference": "gem-minilm base", "headline": head.to_dict()})
    old = StudyRecord(reference="gem base", group="s3", result={"reference": "gem base", "headline": {}})
    with ResultsStore(tmp_path / "s.db") as store:
        back = StudyRecord.from_row(store.get_run(log_study(store, rec)))
        back_old = StudyRecord.from_row(store.get_run(log_study(store, old)))
    back.result.pop("schema")
    assert back == rec
    assert back.headline is not None and back.headline.version == HEADLINE_VERSION
    assert back.headline.latency[0].p90_ms == 17.1 and back.headline.latency[0].provenance == "measured"
    assert back_old.headline is None


def test_profile_run_round_trips_through_its_writer(tmp_path):
    """A profile inserted as `running`, finished with its per-operator table and samples, and read back equal; the
    per-module table comes back as typed rows."""
    from edgekit.profile.model import ModuleRow, NodeTime, OperatorProfile
    from edgekit.profile.run import ProfileRun, log_profile

    nodes = [NodeTime("blocks.0.attn/node_MatMul_1", "MatMul", "blocks.0.attn", 1.0, 0.6, 0.7, [[1, 8, 32]], [[1, 8]]),
             NodeTime("blocks.0.mlp/node_Gemm_2", "Gemm", "blocks.0.mlp", 2.0, 0.3, 0.35),
             NodeTime("node_add_4", "Add", "(top level)", 1.0, 0.1, 0.12)]
    prof = OperatorProfile(model="gem-tiny", format="onnx", precision="fp32", artifact="/a/g.onnx", target="local",
                           runtime="onnxruntime", runtime_version="1.20", threads=1, sha256="ef" * 32, runs=10,
                           used_runs=10, p50_ms=1.05, profiled_p50_ms=1.4, raw_ops_ms=1.17, ops_ms=1.0,
                           node_overhead_us=1.5, call_overhead_ms=0.02, nodes=nodes,
                           samples_ms=[1.0, 1.05, 1.1, 1.02], notes=["n"])
    rec = ProfileRun("gem-tiny", "onnx", "fp32", "/a/g.onnx", target="local", runtime="onnxruntime",
                     sha256="ef" * 32, env={"cpu_model": "Test CPU"}, config={"runs": 10, "threads": 1, "seed": 0})
    with ResultsStore(tmp_path / "s.db") as store:
        run_id = log_profile(store, rec, "g")
        assert store.get_run(run_id).status == "running"
        rec.status, rec.profile = "ok", prof
        assert log_profile(store, rec) == run_id
        run = store.get_run(run_id)
        back = ProfileRun.from_row(run, store.samples(run_id))
        assert len(store.list_runs()) == 1  # the same row, finished
    assert run.status == "ok" and run.group == "g" and run.result["schema"] == 1
    assert back == rec
    table = back.modules(depth=2)
    assert all(isinstance(r, ModuleRow) for r in table)
    assert [(r.module, r.ops) for r in table] == [("blocks.0", 2), ("(top level)", 1)]
    assert sum(r.total_ms for r in table) == pytest.approx(prof.ops_ms)


# -- one writer --------------------------------------------------------------------------------------------------

# The store's write methods are called by edgekit.runlog.log only; each kind's one writer calls log. Anything else
# that writes (a second writer of a kind, a module composing its own start_run/finish_run) fails here.
STORE_WRITERS = {("runlog.py", "log"): {"start_run", "record_run", "finish_run"},
                 ("farm/merge.py", "import_files"): {"insert_imported"}}  # copies other stores' rows verbatim
KIND_WRITERS = {("bench/runner.py", "log_bench"), ("evalsuite/persist.py", "log_eval"),
                ("targets/results.py", "log_prediction"), ("study/record.py", "log_study"),
                ("profile/run.py", "log_profile")}


def _calls(names: set[str], bare: bool = False) -> list[tuple[str, str, str]]:
    """(file, enclosing function, name) of every call `x.NAME(...)` or `NAME(...)` in the package (`bare`: only
    `NAME(...)` in modules that import it from edgekit.runlog, so `np.log` or a local `log` is not runlog.log)."""
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE).as_posix()
        if rel == "store.py":
            continue
        tree = ast.parse(path.read_text())

        runlog_log = any(isinstance(n, ast.ImportFrom) and n.module == "edgekit.runlog"
                         and any(a.name == "log" for a in n.names) for n in ast.walk(tree))

        def visit(node: ast.AST, func: str, rel: str = rel, runlog_log: bool = runlog_log) -> None:
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and func == "<module>":
                func = node.name  # the outermost function (a nested helper writes for it)
            if isinstance(node, ast.Call) and (not bare or runlog_log):
                f = node.func
                name = f.id if isinstance(f, ast.Name) else f.attr if isinstance(f, ast.Attribute) and not bare \
                    else None
                if name in names:
                    found.append((rel, func, name))
            for child in ast.iter_child_nodes(node):
                visit(child, func)

        visit(tree, "<module>")
    return found


def test_only_runlog_writes_to_the_store():
    """Each store write method is called from one place: edgekit.runlog.log (plus the verbatim merge of stores)."""
    calls = _calls({*WRITES, "insert_imported"})
    where: dict[tuple[str, str], set[str]] = {}
    for rel, func, name in calls:
        where.setdefault((rel, func), set()).add(name)
    assert where == STORE_WRITERS
    assert sorted(name for rel, _f, name in calls if rel == "runlog.py") == ["finish_run", "record_run", "start_run"]


def test_each_kind_has_one_writer():
    """runlog.log is called only by the one writer of each kind (log_bench, log_eval, log_prediction, log_study,
    log_profile)."""
    calls = {(rel, func) for rel, func, _n in _calls({"log"}, bare=True) if rel != "runlog.py"}
    assert calls == KIND_WRITERS


# -- running before the work -------------------------------------------------------------------------------------

class _FakeDevice:
    """A transport whose device checks, while it works, that the store already shows the job as running."""

    kind, provenance = "fake", "measured"

    def __init__(self, db: Path) -> None:
        self.db, self.seen = db, []

    def run_bench(self, job, config, return_outputs=False):
        from edgekit.errors import EdgekitError

        with ResultsStore(self.db, read_only=True) as st:
            self.seen = [(r.kind, r.status, r.model) for r in st.list_runs()]
        raise EdgekitError("the agent crashed on the device", "look at the device")

    def close(self) -> None:
        pass


def test_remote_run_is_running_in_the_store_while_the_device_works(tmp_path, monkeypatch):
    from test_ssh import tiny_onnx

    import edgekit.targets.remote as remote
    from edgekit.bench.jobs import job_for_file

    job = job_for_file(tiny_onnx(tmp_path / "m.onnx"))
    device = _FakeDevice(tmp_path / "s.db")
    monkeypatch.setattr(remote, "make_transport", lambda profile, options=None: (device, ""))
    with ResultsStore(tmp_path / "s.db") as store:
        run = remote.bench_on_target([job], "rpi4", BenchConfig(energy="none"), store=store, group="g")
        rows = store.list_runs()
    assert device.seen == [("bench", "running", "m")]  # inserted before the device started
    assert [(r.id, r.status) for r in rows] == [(run.results[0].run_id, "failed")]  # the same row, finished
    assert "the agent crashed" in rows[0].error


def test_prediction_is_running_in_the_store_while_the_graph_is_read(tmp_path, monkeypatch):
    from test_ssh import tiny_onnx

    import edgekit.targets.predictor as predictor
    from edgekit.bench.jobs import job_for_file
    from edgekit.targets.remote import bench_on_target

    job = job_for_file(tiny_onnx(tmp_path / "m.onnx"))
    seen = []
    real = predictor.analyze_artifact

    def analyze(*args, **kwargs):
        with ResultsStore(tmp_path / "s.db", read_only=True) as st:
            seen.extend((r.kind, r.status) for r in st.list_runs())
        return real(*args, **kwargs)

    monkeypatch.setattr(predictor, "analyze_artifact", analyze)
    with ResultsStore(tmp_path / "s.db") as store:
        run = bench_on_target([job], "rpi4", BenchConfig(energy="none"), store=store, group="g")
        rows = store.list_runs(kind="predict")
    assert run.mode == "predicted" and seen == [("predict", "running")]
    assert [(r.status, r.result["p50_ms"]) for r in rows] == [("ok", run.predictions[0].p50_ms)]


@pytest.mark.parametrize("ending", ["ok", "crash", "interrupt"])
def test_eval_is_running_in_the_store_while_it_works(tmp_path, monkeypatch, ending):
    """`edgekit eval` inserts its run `running` before the suite loads, then finishes that same row: ok with the
    scores, `failed` with the error's one line when the work raises, `interrupted` on Ctrl-C / SIGTERM."""
    from types import SimpleNamespace

    import torch
    from typer.testing import CliRunner

    import edgekit.commands.evaluate as command
    import edgekit.evalsuite as suite
    import edgekit.evalsuite.evaluate as evaluate
    from edgekit.cli import app
    from edgekit.errors import EdgekitError

    db = tmp_path / "s.db"
    seen = []

    def load_suite(domains, cfg):
        with ResultsStore(db, read_only=True) as st:
            seen.extend((r.kind, r.status, r.model) for r in st.list_runs())
        if ending == "crash":
            raise EdgekitError("the suite's cache is unreadable", "delete it")
        if ending == "interrupt":
            raise KeyboardInterrupt
        return {}

    scores = [DomainScore("law", "law-topic", 0.5, 0.6, 10, 4)]
    monkeypatch.setattr(suite, "load_suite", load_suite)
    monkeypatch.setattr(suite, "full_label_space", lambda cfg: SimpleNamespace(total=4))
    monkeypatch.setattr(command, "_build_model", lambda *a: torch.nn.Linear(1, 1))
    monkeypatch.setattr(evaluate, "evaluate_model", lambda module, data, name, trained, space: EvalResult(
        model=name, kind="torch", trained=trained, seed=0, seq_len=64, vocab_size=8192, scores=scores))
    res = CliRunner().invoke(app, ["eval", "gem-tiny", "--db", str(db), "--json"])
    assert seen == [("eval", "running", "gem-tiny")]  # inserted before the work
    with ResultsStore(db, read_only=True) as st:
        (run,) = st.list_runs()  # the same row, finished
        stored = st.scores(run_id=run.id)
    if ending == "ok":
        assert res.exit_code == 0, res.output
        assert run.status == "ok" and run.error is None and f'"run_id": {run.id}' in res.output
        assert {(s.metric, s.score) for s in stored} == {("macro_f1", 0.5), ("accuracy", 0.6)}
        assert run.config["trained"] is False and run.result["scores"][0]["domain"] == "law"
    elif ending == "crash":
        assert isinstance(res.exception, EdgekitError)
        assert run.status == "failed" and "the suite's cache is unreadable" in run.error and stored == []
    else:
        assert run.status == "interrupted" and stored == []


# -- parity travels with the artifact ----------------------------------------------------------------------------

def test_moved_artifact_keeps_its_parity_in_the_report(tmp_path):
    """The export's parity record travels with the job into the run: the report shows it after the artifact left
    the folder of its manifest (the report never re-opens manifest.json for a schema-1 run)."""
    from test_ssh import tiny_onnx

    from edgekit.bench.jobs import job_for_file
    from edgekit.report.collect import Selection, build_report

    export = tmp_path / "export"
    export.mkdir()
    path = tiny_onnx(export / "m.onnx")
    parity = ParityReport(verdict="pass", runtime="onnxruntime", n_inputs=4, max_abs=3e-7, cosine=0.99999,
                          top1_agreement=1.0)
    manifest = Manifest(model="m", source="test", edgekit_version="t", created="2025-01-01", inputs=[], outputs=[])
    manifest.upsert(Artifact(model="m", format="onnx", precision="fp32", path=path.name, sha256=file_sha256(path),
                             size_bytes=path.stat().st_size, parity=parity))
    manifest.write(export)
    job = job_for_file(path)
    with ResultsStore(tmp_path / "s.db") as store:
        res = run_benchmark(job, BenchConfig(warmup=1, runs=3, min_time_s=0.0, energy="none"), store=store,
                            group="g")
    assert res.status == "ok", res.error
    shutil.move(str(export), str(tmp_path / "moved"))  # the artifact and its manifest are elsewhere now
    with ResultsStore(tmp_path / "s.db", read_only=True) as store:
        (row,) = build_report(store, Selection(group="g"), budgets_from_cards=False).rows
    assert (row.parity.verdict, row.parity.max_abs, row.parity.cosine) == ("pass", 3e-7, 0.99999)


@pytest.mark.parametrize("legacy", [True, False])
def test_old_rows_still_report(tmp_path, legacy):
    """A run stored before the typed records (no `schema` in its result: v0) reads back with its figures."""
    from edgekit.bench.runner import log_bench

    with ResultsStore(tmp_path / "s.db") as store:
        run_id = store.start_run("bench", model="m", format="onnx", precision="fp32", target="local",
                                 runtime="onnxruntime", provenance="measured", group="g") if legacy else None
        res = _bench_result("ok")
        xs = [5.0, 5.5, 6.0, 5.2]
        res.samples_ms, res.latency = xs, summarize(xs)
        res.memory = MemoryRecord(1, 3, 4, 9, "process", 5)
        doc = res.to_dict(samples=False)
        if legacy:
            doc.pop("schema")
            doc.pop("parity")
            doc["memory"] = {"peak_rss_bytes": 9, "scope": "process"}  # the v0 names
            store.add_samples(run_id, "steady", xs)
            store.finish_run(run_id, "ok", result=doc)
        else:
            run_id = log_bench(store, res, "g")
        back = BenchResult.from_row(store.get_run(run_id), {"steady": store.samples(run_id)})
    assert back.latency == res.latency and back.samples_ms == xs
    assert back.memory.peak_rss_inference == 9 and back.memory.peak_rss_scope == "process"


def test_study_exports_through_the_exporter_with_parity(tmp_path):
    """The study's fp32 ONNX export is `edgekit export`'s Exporter: parity checked, a manifest beside the file, so a
    benchmark of a study artifact carries its parity."""
    import numpy as np
    import torch

    from edgekit.bench.jobs import job_for_file
    from edgekit.study.compress import export_fp32

    class Tiny(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.emb, self.head = torch.nn.Embedding(8192, 8), torch.nn.Linear(8, 3)

        def forward(self, input_ids):
            return self.head(self.emb(input_ids).mean(1))

    ids = np.random.default_rng(0).integers(0, 8192, (4, 16)).astype(np.int64)
    path, parity = export_fp32(Tiny(), tmp_path / "gem.fp32.onnx", 16, ids)
    assert parity["verdict"] == "pass" and (path.parent / "manifest.json").is_file()
    job = job_for_file(path)
    assert job.model == "gem" and job.artifact.parity.verdict == "pass"


def test_study_row_is_running_during_the_work_and_failed_with_its_line(tmp_path, monkeypatch):
    """`study fragility` inserts its summary row `running` before it loads data or trains (it used to write the row
    only at the end, so a study that died left no trace); a failure finishes that same row `failed` with one line."""
    import edgekit.evalsuite as evalsuite
    from edgekit.errors import EdgekitError
    from edgekit.store import ResultsStore
    from edgekit.study import StudyConfig, run_study
    from edgekit.study.record import StudyRecord

    db = tmp_path / "study.db"
    seen: list[tuple[str, str]] = []

    def failing_load(*_args, **_kw):
        with ResultsStore(db, read_only=True) as store:
            seen.extend((r.kind, r.status) for r in store.list_runs())
        raise EdgekitError("the suite cache is unreadable", "delete it and run again")

    monkeypatch.setattr(evalsuite, "load_suite", failing_load)
    with pytest.raises(EdgekitError):
        run_study(StudyConfig.quick_config(), db=db)
    assert seen == [("study", "running")]
    with ResultsStore(db, read_only=True) as store:
        (run,) = store.list_runs(kind="study")
    assert run.status == "failed" and run.error.startswith("the suite cache is unreadable")
    with ResultsStore(db, read_only=True) as store:
        record = StudyRecord.from_row(store.get_run(run.id))
    assert record.status == "failed" and record.error == run.error and record.group.startswith("study-")
