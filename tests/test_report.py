"""`edgekit report`: Markdown, HTML, JSON, CSV and JUnit over real records written through the results store."""

from __future__ import annotations

import base64
import csv
import io
import json
import os
import re
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from reportdata import DOMAINS, add_bench_run, add_eval, add_prediction, lognormal, populate, run_main

from edgekit.errors import EdgekitError
from edgekit.report import Selection, build_report, open_store, write_report
from edgekit.report.html import render_html
from edgekit.report.markdown import render_markdown
from edgekit.report.plots import pareto_front
from edgekit.report.records import REPORT_SCHEMA, REPORT_SCHEMA_VERSION, Report
from edgekit.report.tabular import CSV_COLUMNS, read_report_file, render_csv, render_json
from edgekit.store import ResultsStore


def db_path() -> Path:
    return Path(os.environ["EDGEKIT_DB"])  # set under tmp_path by the autouse fixture in conftest.py


def run_cli(*args: str, subprocess_: bool = False):
    """The CLI in this process (fast), or as a real subprocess when subprocess_ is set."""
    if subprocess_:
        return subprocess.run([sys.executable, "-m", "edgekit.cli", *args], capture_output=True, text=True,
                              timeout=300)
    return run_main(*args)


@pytest.fixture
def populated(tmp_path) -> dict:
    return populate(db_path(), tmp_path / "artifacts")


def build(sel: Selection | None = None) -> Report:
    store = open_store(None)
    try:
        return build_report(store, sel or Selection())
    finally:
        store.close()


def test_default_selection_is_the_newest_group(populated):
    report = build()
    assert [r.run_id for r in report.rows] == [populated[k] for k in ("fp32", "int8", "pred", "failed")]
    assert [r.run_id for r in build(Selection(last=2)).rows] == [populated["pred"], populated["failed"]]
    assert len(build(Selection(all_runs=True)).rows) == 5
    assert [r.run_id for r in build(Selection(group="g0")).rows] == [populated["old"]]
    assert [r.run_id for r in build(Selection(run_ids=[populated["int8"]])).rows] == [populated["int8"]]
    with ResultsStore(db_path()) as store:
        created = store.get_run(populated["pred"]).created
    assert [r.run_id for r in build(Selection(since=created)).rows] == [populated["pred"], populated["failed"]]
    assert len(build(Selection(since="2000-01-01")).rows) == 5


def test_rows_carry_figures_parity_accuracy_and_provenance(populated):
    rows = {r.run_id: r for r in build().rows}
    fp32, int8, pred = rows[populated["fp32"]], rows[populated["int8"]], rows[populated["pred"]]
    assert fp32.latency.provenance == "measured" and len(fp32.latency.samples_ms) == 80
    assert 10 < fp32.latency.p50_ms < 14 and fp32.latency.p50_ms < fp32.latency.p90_ms < fp32.latency.p99_ms
    assert fp32.memory.peak_rss_bytes == 90 * 1024 * 1024 and fp32.memory.provenance == "measured"
    assert fp32.energy.provenance == "modeled" and fp32.energy.j_per_inference > 0
    assert (fp32.parity.verdict, fp32.parity.source) == ("pass", "manifest")
    assert int8.parity.verdict == "fail"
    # the int8 artifact's own evaluation (matched by file hash) beats the model-level PyTorch one
    assert int8.accuracy.scope == "variant" and int8.accuracy.value == pytest.approx(0.835)
    assert fp32.accuracy.scope == "model" and fp32.accuracy.value == pytest.approx(0.935)
    assert fp32.compression_intensity == 0.0 and int8.compression_intensity == 0.75
    assert pred.latency.provenance == "predicted" and pred.memory is None and pred.energy is None


def test_budgets_and_parity_checks(populated):
    report = build()
    by = {(c.kind, c.run_id, c.budget): c for c in report.checks}
    ok = by[("budget", populated["fp32"], "p90_ms")]
    assert ok.status == "pass" and ok.op == "<" and ok.limit == 100 and ok.provenance == "measured"
    bad = by[("budget", populated["int8"], "p90_ms")]
    assert bad.status == "fail" and bad.value > 100 and "not below the budget 100 ms" in bad.message
    assert by[("budget", populated["pred"], "p90_ms")].provenance == "predicted"
    f1_int8 = by[("budget", populated["int8"], "macro_f1")]
    assert f1_int8.status == "fail" and f1_int8.value == pytest.approx(0.835)  # the variant's own scores
    assert by[("parity", populated["int8"], None)].status == "fail"
    assert by[("parity", populated["fp32"], None)].status == "pass"
    assert by[("run", populated["failed"], None)].status == "error"
    assert report.verdict() == "fail"


def test_markdown_labels_every_figure(populated):
    md = render_markdown(build())
    assert md.startswith("# edgekit report: gem-tiny on local, rpi4")
    assert "**❌" in md  # the headline says checks failed
    head = [c.strip() for c in next(ln for ln in md.splitlines() if ln.startswith("| target |")).strip("|").split("|")]

    def row(prefix: str) -> dict[str, str]:
        line = next(ln for ln in md.splitlines() if ln.startswith(prefix))
        return dict(zip(head, (c.strip() for c in line.strip("|").split("|")), strict=True))

    cells = row("| local | onnx | fp32 |")
    assert re.fullmatch(r"[\d.]+ / [\d.]+ / [\d.]+ \(measured\)", cells["p50 / p90 / p99 (ms)"])
    assert cells["load"] == "42.00 ms (measured)" and cells["first inference"].endswith("ms (measured)")
    assert cells["peak memory"] == "90.0 MiB (measured)" and cells["energy / inference"].endswith("mJ (modeled)")
    assert "✅ pass" in cells["parity"] and "0.935 (model)" == cells["macro-F1"]
    pcells = row("| rpi4 | tflite | fp32 |")
    assert pcells["p50 / p90 / p99 (ms)"].endswith("(predicted)")
    assert pcells["peak memory"] == "—" and pcells["energy / inference"] == "—"  # missing: never 0
    assert "| ❌ fail | gem-tiny | onnx/int8 p90_ms < 100 @ local |" in md
    assert "SIGSEGV" in md  # the failed run and its reason


def test_json_schema_and_round_trip(populated, tmp_path):
    report = build()
    data = json.loads(render_json(report))
    assert data["schema"] == REPORT_SCHEMA and data["schema_version"] == REPORT_SCHEMA_VERSION
    assert data["budgets"]["gem-tiny"] == {"p90_ms": 100.0, "macro_f1": 0.89}
    row = next(r for r in data["rows"] if r["run_id"] == populated["pred"])
    assert row["latency"]["provenance"] == "predicted" and row["memory"] is None and row["energy"] is None
    assert len(row["latency"]["samples_ms"]) == 20
    assert set(data["summary"]) >= {"runs", "budgets", "parity", "verdict"} and data["summary"]["verdict"] == "fail"
    path = tmp_path / "r.json"
    path.write_text(render_json(report))
    back = read_report_file(path)
    assert [r.to_dict() for r in back.rows] == [r.to_dict() for r in report.rows]
    assert [c.to_dict() for c in back.checks] == [c.to_dict() for c in report.checks]


def test_csv_has_a_provenance_column_after_each_group(populated, tmp_path):
    text = render_csv(build())
    reader = csv.DictReader(io.StringIO(text))
    assert tuple(reader.fieldnames) == CSV_COLUMNS
    for group_end, prov in (("first_ms", "latency_provenance"), ("model_rss_bytes", "memory_provenance"),
                            ("energy_error_band_j", "energy_provenance")):
        assert CSV_COLUMNS.index(prov) == CSV_COLUMNS.index(group_end) + 1
    rows = list(reader)
    pred = next(r for r in rows if r["target"] == "rpi4")
    assert pred["latency_provenance"] == "predicted" and pred["peak_rss_bytes"] == "" and pred["energy_provenance"] == ""
    int8 = next(r for r in rows if r["precision"] == "int8" and r["status"] == "ok")
    assert int8["budgets"] == "fail" and "p90_ms" in int8["failed_checks"] and int8["parity"] == "fail"
    path = tmp_path / "r.csv"
    path.write_text(text)
    back = read_report_file(path)
    assert [r.key for r in back.rows] == [r.key for r in build().rows]
    assert back.rows[0].latency.p90_ms == pytest.approx(build().rows[0].latency.p90_ms)


def test_junit_testcases_follow_the_checks(populated):
    from edgekit.report.junit import render_junit

    report = build()
    root = ET.fromstring(render_junit(report))
    cases = root.findall(".//testcase")
    assert len(cases) == len(report.checks) == int(root.get("tests"))
    failures = [c for c in cases if c.find("failure") is not None]
    assert {c.get("name") for c in failures} == {"onnx/int8 p90_ms < 100 @ local", "onnx/int8 parity vs PyTorch",
                                                 "onnx/int8 macro_f1 >= 0.89"}
    assert int(root.get("failures")) == 3 and int(root.get("errors")) == 1
    assert [c.get("name") for c in cases if c.find("error") is not None] == ["tflite/int8 benchmark run @ local"]
    assert "not below the budget 100 ms" in next(
        c for c in failures if "p90_ms" in c.get("name")).find("failure").get("message")
    # two runs of one artifact in one report: their cases get the run id, so names stay unique
    names = [c.get("name") for c in ET.fromstring(render_junit(build(Selection(all_runs=True)))).iter("testcase")]
    assert len(names) == len(set(names))
    assert f"onnx/fp32 p90_ms < 100 @ local [run {populated['old']}]" in names


def test_html_is_self_contained_with_plots(populated):
    html = render_html(build())
    # nothing is fetched: no external src, stylesheet, CSS url() or import; the only outbound links are the
    # Netron anchors a reader may click (a navigation, not a fetch, and the file is never sent)
    assert not re.search(r"""src=["']?(https?:)?//""", html), "the page must not fetch anything"
    assert not re.search(r"""<link[^>]+href=["']?(https?:)?//|url\(\s*["']?(https?:)?//|@import""", html)
    anchors = re.findall(r"""<a\b[^>]*href=["']?((?:https?:)?//[^"' >]*)""", html)
    assert anchors and set(anchors) == {"https://netron.app"}, anchors
    imgs = re.findall(r'<img alt="([^"]+)" src="data:image/png;base64,([A-Za-z0-9+/=]+)"', html)
    titles = [t for t, _ in imgs]
    assert "Latency distribution — local" in titles and "Latency distribution — rpi4" in titles
    assert "Latency vs accuracy — local" in titles and "Peak memory" in titles and "Energy per inference" in titles
    for _, b64 in imgs:
        assert base64.b64decode(b64)[:8] == b"\x89PNG\r\n\x1a\n"
    assert html.count("<table") >= 3 and 'class="badge fail"' in html and "verdict-fail" in html
    assert '<span class="prov predicted">predicted</span>' in html and '<span class="prov modeled">modeled</span>' in html


def test_robustness_metrics_against_compression(populated):
    report = build()
    pts = {p.variant: p for p in report.metrics}
    assert set(pts) == {"PyTorch fp32 (reference)", "onnx/int8"}
    ref, q = pts["PyTorch fp32 (reference)"], pts["onnx/int8"]
    assert ref.compression_intensity == 0.0 and ref.gg == pytest.approx(0.0)
    # gem-tiny's card names no target domain: GG over all domains = (mean_r - mean_m) / mean_r
    assert q.compression_intensity == 0.75 and q.gg == pytest.approx((0.935 - 0.835) / 0.935)
    assert q.cdtr is None and q.dsi is not None
    assert any(p.startswith("<img alt=\"Robustness vs compression\"") for p in
               re.findall(r"<img alt=\"[^\"]+\"", render_html(report)))


def test_emulated_timing_is_not_checked_against_a_latency_budget():
    with ResultsStore(db_path()) as store:
        rid = add_bench_run(store, provenance="emulated", samples=lognormal(400, 20, 9), target="rpi4")
    check = next(c for c in build().checks if c.run_id == rid and c.budget == "p90_ms")
    assert check.status == "skipped" and "emulated" in check.message


def test_pareto_front():
    pts = [(10, 0.80), (20, 0.85), (15, 0.70), (30, 0.84), (5, 0.60), (40, 0.90)]
    assert pareto_front(pts) == [(5, 0.60), (10, 0.80), (20, 0.85), (40, 0.90)]


def test_cli_writes_every_format_and_prints_paths(populated, tmp_path):
    out = tmp_path / "reports" / "latest"
    proc = run_cli("report", "--out", str(out), subprocess_=True)
    assert proc.returncode == 0, proc.stderr
    for suffix in (".md", ".html", ".json", ".csv", ".junit.xml"):
        path = Path(str(out) + suffix)
        assert path.is_file() and path.stat().st_size > 0 and str(path) in proc.stdout
    assert "verdict fail" in proc.stdout
    gate = run_cli("report", "--format", "junit", "--out", str(out), "--check")
    assert gate.returncode == 1
    ok = run_cli("report", str(populated["fp32"]), "--format", "md", "--out", str(tmp_path / "one"), "--check")
    assert ok.returncode == 0, ok.stdout + ok.stderr


def test_write_report_names_files(populated, tmp_path):
    paths = write_report(build(), ["md", "junit"], tmp_path / "x.md")
    assert paths == {"md": tmp_path / "x.md", "junit": tmp_path / "x.junit.xml"}


# -- bad input: one clear line and a non-zero exit -------------------------------------------------------------


def one_line_error(proc) -> str:
    assert proc.returncode == 2, (proc.returncode, proc.stdout, proc.stderr)
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in proc.stderr, proc.stderr
    return lines[0]


def test_unknown_run_ids(populated):
    line = one_line_error(run_cli("report", "999", "1000"))
    assert "run id(s) 999, 1000 not in the results store" in line and "edgekit runs list" in line


def test_store_that_does_not_exist(tmp_path):
    line = one_line_error(run_cli("report", "--db", str(tmp_path / "nope.db")))
    assert "does not exist" in line and not (tmp_path / "nope.db").exists()


def test_empty_store(tmp_path):
    ResultsStore(db_path()).close()  # a valid store without runs
    assert "holds no benchmark runs" in one_line_error(run_cli("report"))
    (tmp_path / "zero.db").write_bytes(b"")
    assert "is empty" in one_line_error(run_cli("report", "--db", str(tmp_path / "zero.db")))


def test_corrupt_store(tmp_path):
    bad = tmp_path / "corrupt.db"
    bad.write_bytes(b"this is not SQLite at all\x00\x01" * 200)
    assert "not a readable edgekit database" in one_line_error(run_cli("report", "--db", str(bad), subprocess_=True))


def test_bad_options(populated):
    assert "unknown report format pdf" in one_line_error(run_cli("report", "--format", "md,pdf"))
    assert "give only one of" in one_line_error(run_cli("report", "--all", "--last", "2"))
    assert "not a run id" in one_line_error(run_cli("report", "abc"))
    assert "group 'nope' has no benchmark runs" in one_line_error(run_cli("report", "--group", "nope"))
    assert "not an ISO 8601 time" in one_line_error(run_cli("report", "--since", "yesterday"))
    assert "started at or after 2999" in one_line_error(run_cli("report", "--since", "2999-01-01"))


def test_eval_run_id_is_not_a_benchmark(populated):
    with ResultsStore(db_path()) as store:
        eval_id = store.list_runs(kind="eval")[0].id
    with pytest.raises(EdgekitError, match="is an eval run, not a benchmark, and no benchmark"):
        build(Selection(run_ids=[eval_id]))


def tiny_onnx(path: Path) -> Path:
    """A real one-MatMul ONNX model (16 -> 4)."""
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    weight = numpy_helper.from_array(np.random.default_rng(0).standard_normal((16, 4)).astype(np.float32), "W")
    graph = helper.make_graph([helper.make_node("MatMul", ["x", "W"], ["y"])], "tiny",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 16])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])], [weight])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, path)
    return path


def test_report_and_compare_over_real_benchmarks(tmp_path):
    """Two real `edgekit bench` runs of an ONNX file, then report and compare over what the bench engine stored."""
    model = tiny_onnx(tmp_path / "tiny.onnx")
    for _ in range(2):
        bench = run_main("bench", str(model), "--runs", "30", "--min-time", "0.05", "--warmup", "2", "--idle", "0")
        assert bench.returncode == 0, bench.stderr
    out = tmp_path / "rep"
    proc = run_cli("report", "--all", "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    data = json.loads(Path(str(out) + ".json").read_text())
    assert len(data["rows"]) == 2
    row = data["rows"][0]
    assert row["model"] == "tiny" and row["format"] == "onnx" and row["latency"]["provenance"] == "measured"
    assert len(row["latency"]["samples_ms"]) >= 30 and row["latency"]["p50_ms"] > 0
    assert row["memory"]["provenance"] == "measured" and row["memory"]["peak_rss_bytes"] > 0
    assert row["energy"]["provenance"] in ("measured", "modeled")
    assert row["parity"]["verdict"] == "unknown"  # a bare file: no manifest, so no parity claim
    md = Path(str(out) + ".md").read_text()
    assert "(measured)" in md and "tiny: no model card" in md
    cmp = run_cli("compare", "1", "2", "--json")
    assert cmp.returncode == 0  # one run per side: inconclusive, never a regression
    row = json.loads(cmp.stdout)["rows"][0]
    assert (row["n_base"], row["n_new"], row["verdict"]) == (1, 1, "inconclusive") and row["ratio"] > 0


def test_predictions_and_on_target_parity():
    """A cost-model prediction (kind "predict") shows its calibration error; an emulated run's on-target parity
    (its outputs vs this host's runtime) becomes its own check."""
    with ResultsStore(db_path()) as store:
        pid = add_prediction(store, "gem-tiny", "pixel6", 80.0, 130.0, [0.10, -0.20, 0.05])
        eid = add_bench_run(store, target="rpi4", provenance="emulated", samples=lognormal(900, 10, 5),
                            runtime_info={"parity": {"verdict": "fail", "max_abs": 0.5, "cosine": 0.7,
                                                     "reference": "onnxruntime 1.32 on this host"}})
    report = build()
    rows = {r.run_id: r for r in report.rows}
    pred = rows[pid]
    assert pred.format == "onnx" and pred.latency.provenance == "predicted"
    assert pred.latency.p50_ms == 80.0 and pred.latency.p99_ms is None and pred.latency.calibration_error == 0.10
    assert "prediction: not calibrated on this target" in pred.warnings
    budget = next(c for c in report.checks if c.run_id == pid and c.budget == "p90_ms")
    assert budget.status == "fail" and budget.provenance == "predicted"
    md = render_markdown(report)
    assert "80.00 / 130.0 / — (predicted, calibration error 10%)" in md
    on_target = next(c for c in report.checks if c.run_id == eid and "outputs on rpi4" in c.name)
    assert on_target.status == "fail" and "onnxruntime 1.32 on this host" in on_target.message
    assert "· on rpi4: fail" in md
    html = render_html(report)
    assert '<span class="prov predicted">predicted, calibration error 10%</span>' in html


def test_fragility_study_metrics_and_claims_join_the_report(tmp_path):
    from edgekit.store import ResultsStore

    with ResultsStore(tmp_path / "s.db") as store:
        add_bench_run(store, samples=lognormal(5.0, 40, seed=3))
        study = store.start_run("study", model="gem-tiny", group="study-x")
        store.finish_run(study, "ok", result={
            "reference": "gem-tiny base",
            "metrics": [{"model": "gem-tiny ft-law int8", "c": 0.75, "dsi": 0.4, "gg": 0.2, "cdtr": 0.7,
                         "target": "law"}],
            "claims": [{"claim": "GEM's cross-domain F1", "paper": "0.89", "verdict": "not reproduced",
                        "measured": "0.41"}],
            "notes": []})
        report = build_report(store, Selection(all_runs=True))
    point = next(m for m in report.metrics if m.variant == "gem-tiny ft-law int8")
    assert (point.compression_intensity, point.gg, point.cdtr, point.target_domain) == (0.75, 0.2, 0.7, "law")
    assert point.reference == "gem-tiny base"
    text = render_markdown(report)
    assert "gem-tiny ft-law int8" in text and "not reproduced: 0.41" in text
    assert all(r.kind != "study" for r in report.rows)  # a study holds no latency figures: it is not a row


def test_unrelated_runs_stored_later_change_nothing(populated, tmp_path):
    """The report of one selection is a function of that selection: an evaluation of another configuration of
    the same model, a study and a benchmark stored afterwards (outside the group) change no figure and no verdict."""
    before = json.loads(render_json(build(Selection(group="g1"))))
    add_eval(db_path(), "gem-tiny", "torch", {d: 0.05 for d in DOMAINS})  # another config: F1 far below budget
    with ResultsStore(db_path()) as store:
        study = store.start_run("study", model="gem-tiny", group="study-later")
        store.finish_run(study, "ok", result={"reference": "gem-tiny base", "metrics": [
            {"model": "gem-tiny ft-law int8", "c": 0.75, "dsi": 0.4, "gg": 0.2, "cdtr": 0.7, "target": "law"}],
            "claims": [], "notes": []})
        add_bench_run(store, samples=lognormal(99, 30, 9), group="g2")
    after = json.loads(render_json(build(Selection(group="g1"))))
    for doc in (before, after):
        doc.pop("generated")
    assert after["rows"] == before["rows"] and after["checks"] == before["checks"]
    assert after["metrics"] == before["metrics"] and after["summary"] == before["summary"]
    # the later evaluation is named, not used, when the selection holds no PyTorch evaluation of its own
    g0 = build(Selection(group="g0"))
    assert g0.rows[0].accuracy is None
    assert any("lie outside this selection" in n for n in g0.notes)
    # chosen explicitly (by id, beside the benchmark run), it is used
    with ResultsStore(db_path()) as store:
        late = store.list_runs(kind="eval")[0].id
    chosen = build(Selection(run_ids=[populated["old"], late]))
    assert chosen.rows[0].accuracy.value == pytest.approx(0.05)


def _log_minilm_study(store, *, reference: str = "gem-minilm base", predicted: dict | None = None) -> int:
    """A MiniLM study run written through its one writer (log_study), its headline made by the study's own
    `headline()` from VariantRecords (base per seed, one deployed variant) and a measured local latency."""
    from edgekit.study.fragility import VariantRecord
    from edgekit.study.pretrained import headline
    from edgekit.study.record import StudyRecord, log_study

    def rec(model, kind, seed, f1):
        return VariantRecord(model=model, arch="gem", method="base", target=None, compression="fp32",
                             precision="fp32", sparsity=0.0, c=0.0, seed=seed, kind=kind,
                             scores={d: f1 for d in DOMAINS}, accuracy={})

    records = [rec(reference, "torch", 0, 0.70), rec(reference, "torch", 1, 0.66),
               rec("gem-minilm kd-law int8", "onnx", 0, 0.69)]
    latency = {"fp32": {"mean": 15.0, "p50": 14.25, "p90": 17.5, "runs": 30, "batch": 1, "tokens": 64,
                        "provenance": "measured", "target": "local"}}
    head = headline(records, reference, latency, threads=1)
    if predicted:
        head["latency_ms"]["rpi4"] = {"pipeline": "predicted from the stored graph cost",
                                      "per_compression": predicted}
    result = {"reference": reference, "metrics": [], "notes": [], "headline": head,
              "claims": [{"claim": "GEM's cross-domain F1", "paper": "0.89", "verdict": "not reproduced",
                          "measured": "0.680 [0.660, 0.700] (GEM base, mean macro-F1 over the domains)"}]}
    record = StudyRecord(reference=reference, group="study-m", config={"backbone": "minilm"}, result=result)
    record = StudyRecord.from_row(type("R", (), {"result": record.to_row().result, "group": "study-m",
                                                 "config": record.config, "status": "ok", "id": None})())
    return log_study(store, record)


def test_paper_claims_section_shows_measured_beside_the_paper(tmp_path):
    """Item 3 of issue 18: per study, the claims (paper, measured with CI, verdict), the cross-domain macro-F1 measured
    vs the paper's 0.89, and latency p50/p90 per target vs "< 100 ms" — local measured; the seed devices either
    predicted (with the predictor's error) or "not predicted: <reason>", never a number from nowhere."""
    with ResultsStore(tmp_path / "s.db") as store:
        add_bench_run(store, samples=lognormal(5.0, 40, seed=3))
        _log_minilm_study(store, predicted={"fp32": {"p50": 61.0, "p90": 72.0, "provenance": "predicted",
                                                     "target": "rpi4", "error": "median |error| 18 %"}})
        report = build_report(store, Selection(all_runs=True))
    md = render_markdown(report)
    section = md[md.index("## Paper claims"):]
    assert "| GEM's cross-domain F1 | 0.89 | 0.680 [0.660, 0.700]" in section
    assert "| cross-domain macro-F1, gem-minilm base (mean over seeds) | 0.680 (measured; seed 0: 0.700, " \
           "seed 1: 0.660) | 0.89 | not reproduced |" in section
    assert "| local | fp32 | 14.2 / 17.5 (measured) |" in section and "< 100 ms | p90 < 100 ms" in section
    assert "| rpi4 | fp32 | 61.0 / 72.0 (predicted) |" in section and "expected error median \\|error\\| 18 %" in section
    for device in ("pixel6", "iphone13", "npu"):
        assert f"| {device} | — | not predicted: the study stored no graph cost" in section
    assert "| not checked |" in section
    doc = json.loads(render_json(report))
    (claims,) = doc["claims"]
    assert claims["f1"][0]["value"] == pytest.approx(0.68) and claims["f1"][0]["provenance"] == "measured"
    assert {r["target"]: r["provenance"] for r in claims["latency"]} == {
        "local": "measured", "rpi4": "predicted", "pixel6": "not predicted", "iphone13": "not predicted",
        "npu": "not predicted"}
    assert Report.from_dict(doc).claims == report.claims
    html = render_html(report)
    assert '<h2 id="claims">Paper claims</h2>' in html and "14.2 / 17.5 (measured)" in html
    assert "not predicted: the study stored no graph cost" in html


def test_paper_claims_escape_user_text_and_old_studies_show_claims_only(tmp_path):
    """A reference name is user text: shown, never rendered; a study without a headline (from scratch) still shows
    its claims table, with no headline tables."""
    evil = "gem <img src=x onerror=alert(1)> base"
    with ResultsStore(tmp_path / "s.db") as store:
        add_bench_run(store, samples=lognormal(5.0, 40, seed=3))
        _log_minilm_study(store, reference=evil)
        study = store.start_run("study", model="gem-tiny", group="study-x")
        store.finish_run(study, "ok", result={"reference": "gem-tiny base", "metrics": [], "notes": [],
                                              "claims": [{"claim": "GEM's cross-domain F1", "paper": "0.89",
                                                          "verdict": "not reproduced", "measured": "0.41"}]})
        report = build_report(store, Selection(all_runs=True))
    md = render_markdown(report)
    assert "<img" not in md and "&lt;img src=x onerror=alert(1)> base" in md
    assert "<img src" not in render_html(report)
    old = next(s for s in report.claims if s["reference"] == "gem-tiny base")
    assert old["claims"][0]["measured"] == "0.41" and old["f1"] == [] and old["latency"] == []
