"""`edgekit compare`: verdicts on synthetic faster / slower / equal runs written through the results store, noise is
never called a regression, report files as inputs, and bad input."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from test_report_data import add_bench_run, lognormal, run_main

from edgekit.errors import EdgekitError
from edgekit.report import Selection, build_report, open_store
from edgekit.report.compare import bootstrap_ratio_ci, compare_reports, holm, parse_threshold
from edgekit.report.records import LatencyFigures, Report, ReportRow
from edgekit.report.tabular import render_csv, render_json
from edgekit.store import ResultsStore

ARTIFACTS = (("onnx", "fp32"), ("onnx", "int8"), ("tflite", "fp32"))


def db_path() -> Path:
    return Path(os.environ["EDGEKIT_DB"])


def run_cli(*args: str, subprocess_: bool = False):
    """The CLI in this process (fast), or as a real subprocess when subprocess_ is set."""
    if subprocess_:
        return subprocess.run([sys.executable, "-m", "edgekit.cli", "compare", *args], capture_output=True, text=True,
                              timeout=300)
    return run_main("compare", *args)


def store_groups(base: dict, new: dict, n: int = 80, sigma: float = 0.08, seed: int = 0) -> None:
    """Two groups of runs, `base` and `new`: {(format, precision): true median ms}."""
    with ResultsStore(db_path()) as store:
        for group, medians in (("base", base), ("new", new)):
            for i, ((fmt, prec), median) in enumerate(medians.items()):
                add_bench_run(store, fmt=fmt, precision=prec, group=group,
                              samples=lognormal(median, n, seed * 1000 + (group == "new") * 100 + i, sigma))


def compare_groups(**kw) -> object:
    store = open_store(None)
    try:
        b = build_report(store, Selection(group="base"), budgets_from_cards=False)
        n = build_report(store, Selection(group="new"), budgets_from_cards=False)
    finally:
        store.close()
    return compare_reports(b, n, **kw)


def test_faster_slower_and_equal_rows():
    store_groups({("onnx", "fp32"): 10.0, ("onnx", "int8"): 10.0, ("tflite", "fp32"): 10.0},
                 {("onnx", "fp32"): 8.0, ("onnx", "int8"): 13.0, ("tflite", "fp32"): 10.0})
    cmp = compare_groups()
    by = {(r.format, r.precision): r for r in cmp.rows}
    assert by[("onnx", "fp32")].verdict == "faster" and by[("onnx", "fp32")].ci[1] < 1
    slower = by[("onnx", "int8")]
    assert slower.verdict == "slower" and slower.regression and slower.ci[0] > 1.05
    assert slower.ratio == pytest.approx(1.3, rel=0.06) and slower.p_adjusted < 1e-6
    assert by[("tflite", "fp32")].verdict == "no significant change" and not by[("tflite", "fp32")].regression
    assert cmp.verdict() == "regression"


def test_cli_exit_codes_and_json():
    store_groups({("onnx", "fp32"): 10.0}, {("onnx", "fp32"): 13.0})
    proc = run_cli("base", "new", subprocess_=True)
    assert proc.returncode == 1, proc.stderr
    assert "REGRESSION" in proc.stdout and "overall: regression" in proc.stdout
    data = json.loads(run_cli("base", "new", "--json").stdout)
    assert data["verdict"] == "regression" and data["rows"][0]["change"] == pytest.approx(0.3, abs=0.05)
    # the same slowdown under a 50 % threshold is slower, but no failure
    relaxed = run_cli("base", "new", "--fail-above", "50%")
    assert relaxed.returncode == 0 and "overall: slower" in relaxed.stdout
    faster = run_cli("new", "base")
    assert faster.returncode == 0 and "overall: faster" in faster.stdout


def test_small_real_slowdown_is_slower_but_below_the_threshold():
    store_groups({("onnx", "fp32"): 10.0}, {("onnx", "fp32"): 10.3}, n=600, sigma=0.03)
    row = compare_groups(fail_above=0.05).rows[0]
    assert row.verdict == "slower" and not row.regression and 1.0 < row.ci[0] and row.ci[1] < 1.05


@pytest.mark.parametrize("sigma", [0.03, 0.15])
@pytest.mark.parametrize("n", [12, 60])
def test_one_distribution_is_never_a_regression(n, sigma):
    """Base and new drawn from ONE distribution, over many seeds and three rows each: no regression ever, and the
    rows called faster/slower (false alarms) stay rare."""
    rng = np.random.default_rng(12345)
    alarms = 0
    rows = 0
    for seed in range(25):
        def report(tag: str, seed: int = seed) -> Report:
            out = []
            for j, (fmt, prec) in enumerate(ARTIFACTS):
                xs = lognormal(10.0 + j, n, seed * 7919 + j * 31 + (tag == "new") * 17, sigma)
                if seed % 5 == 0:  # heavy-tailed noise too: a few spikes like a busy machine makes
                    spikes = rng.choice(n, size=max(1, n // 10), replace=False)
                    xs = [x * (4.0 if i in spikes else 1.0) for i, x in enumerate(xs)]
                out.append(ReportRow(run_id=j, model="m", format=fmt, precision=prec, target="local", status="ok",
                                     latency=LatencyFigures(provenance="measured", samples_ms=xs)))
            return Report(generated="", edgekit_version="", store="", selection={}, rows=out)

        cmp = compare_reports(report("base"), report("new"), fail_above=0.05, seed=seed)
        assert not cmp.regressions, [r.to_dict() for r in cmp.regressions]
        assert cmp.verdict() != "regression"
        alarms += sum(r.verdict in ("faster", "slower") for r in cmp.rows)
        rows += len(cmp.rows)
    assert alarms <= max(2, rows // 20), f"{alarms} false alarms in {rows} rows"


def test_report_files_as_inputs(tmp_path):
    store_groups({("onnx", "fp32"): 10.0, ("onnx", "int8"): 20.0}, {("onnx", "fp32"): 12.5, ("onnx", "int8"): 20.0})
    store = open_store(None)
    try:
        for group in ("base", "new"):
            rep = build_report(store, Selection(group=group))
            (tmp_path / f"{group}.json").write_text(render_json(rep))
            (tmp_path / f"{group}.csv").write_text(render_csv(rep))
    finally:
        store.close()
    proc = run_cli(str(tmp_path / "base.json"), str(tmp_path / "new.json"), "--json")
    assert proc.returncode == 1
    data = json.loads(proc.stdout)
    verdicts = {r["precision"]: (r["verdict"], r["regression"]) for r in data["rows"]}
    assert verdicts == {"fp32": ("slower", True), "int8": ("no significant change", False)}
    # JSON reports give the same verdicts as the runs in the store
    from_store = json.loads(run_cli("base", "new", "--json").stdout)
    assert [r["verdict"] for r in from_store["rows"]] == [r["verdict"] for r in data["rows"]]
    # CSV reports hold no samples: the change of the median is shown, with no verdict and no failure
    csv_proc = run_cli(str(tmp_path / "base.csv"), str(tmp_path / "new.csv"), "--json")
    assert csv_proc.returncode == 0, csv_proc.stderr
    rows = json.loads(csv_proc.stdout)["rows"]
    assert all(r["verdict"] == "no samples" for r in rows)
    assert rows[0]["change"] == pytest.approx(0.25, abs=0.06)
    # run ids work too: 1-2 are base, 3-4 new
    assert run_cli("1-2", "3,4").returncode == 1


def test_provenance_mismatch_and_broken_runs():
    with ResultsStore(db_path()) as store:
        add_bench_run(store, group="base", samples=lognormal(10, 50, 1))
        add_bench_run(store, fmt="tflite", group="base", samples=lognormal(10, 50, 2))
        add_bench_run(store, group="new", provenance="predicted", samples=lognormal(30, 50, 3))
        add_bench_run(store, fmt="tflite", group="new", status="failed", error="runtime crashed")
        add_bench_run(store, fmt="torch", group="new", samples=lognormal(5, 50, 4))
    cmp = compare_groups()
    by = {r.format: r for r in cmp.rows}
    assert by["onnx"].verdict == "not comparable" and not by["onnx"].regression
    assert "measured vs predicted" in by["onnx"].note
    assert by["tflite"].verdict == "broken" and by["tflite"].regression
    assert by["torch"].verdict == "only in new"
    assert run_cli("base", "new").returncode == 1


def test_holm_and_bootstrap_helpers():
    assert holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])
    assert holm([0.5]) == [0.5]
    rng = np.random.default_rng(0)
    base = 10 * np.exp(0.05 * rng.standard_normal(400))
    new = 12 * np.exp(0.05 * rng.standard_normal(400))
    lo, hi = bootstrap_ratio_ci(base, new, 0.95, 1000, seed=1)
    assert lo < 1.2 < hi and hi - lo < 0.03
    assert bootstrap_ratio_ci(base, new, 0.95, 1000, seed=1) == (lo, hi)  # seeded: reproducible
    assert parse_threshold("5%") == parse_threshold("0.05") == parse_threshold("5") == 0.05
    with pytest.raises(EdgekitError):
        parse_threshold("five")


# -- bad input ------------------------------------------------------------------------------------------------------


def one_line_error(proc) -> str:
    assert proc.returncode == 2, (proc.returncode, proc.stdout, proc.stderr)
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in proc.stderr, proc.stderr
    return lines[0]


def test_files_that_are_not_edgekit_reports(tmp_path):
    store_groups({("onnx", "fp32"): 10.0}, {("onnx", "fp32"): 10.0})
    foreign_json = tmp_path / "other.json"
    foreign_json.write_text(json.dumps({"results": {"mmlu": {"acc,none": 0.5}}}))
    assert "other.json is not an edgekit report" in one_line_error(run_cli(str(foreign_json), "new",
                                                                                subprocess_=True))
    broken_json = tmp_path / "broken.json"
    broken_json.write_text("{not json")
    assert "invalid JSON" in one_line_error(run_cli("base", str(broken_json)))
    foreign_csv = tmp_path / "scores.csv"
    foreign_csv.write_text("model,domain,task,score\nm,law,t,0.5\n")
    assert "scores.csv is not an edgekit report" in one_line_error(run_cli(str(foreign_csv), "new"))
    binary = tmp_path / "blob.csv"
    binary.write_bytes(bytes(range(256)) * 4)
    assert "is not an edgekit report" in one_line_error(run_cli("base", str(binary)))
    newer = tmp_path / "future.json"
    newer.write_text(json.dumps({"schema": "edgekit-report", "schema_version": 99, "rows": []}))
    assert "schema_version 99" in one_line_error(run_cli(str(newer), "new"))
    assert "does not exist" in one_line_error(run_cli(str(tmp_path / "missing.json"), "new"))


def test_unknown_runs_groups_and_stores(tmp_path):
    store_groups({("onnx", "fp32"): 10.0}, {("onnx", "fp32"): 10.0})
    assert "run id(s) 77 not in the results store" in one_line_error(run_cli("77", "new"))
    assert "'nightly' is not a report file, run ids, or a group" in one_line_error(run_cli("base", "nightly"))
    assert "not a percentage" in one_line_error(run_cli("base", "new", "--fail-above", "lots"))
    corrupt = tmp_path / "c.db"
    corrupt.write_bytes(b"\x00garbage" * 300)
    assert "not a readable edgekit database" in one_line_error(run_cli("1", "2", "--db", str(corrupt)))
    assert "does not exist" in one_line_error(run_cli("1", "2", "--db", str(tmp_path / "none.db")))


def test_nothing_in_common():
    with ResultsStore(db_path()) as store:
        add_bench_run(store, group="base", samples=lognormal(10, 30, 1))
        add_bench_run(store, model="other", group="new", samples=lognormal(10, 30, 2))
    assert "share no (model, format, precision, target) row" in one_line_error(run_cli("base", "new"))


def test_empty_store():
    ResultsStore(db_path()).close()
    with pytest.raises(EdgekitError, match="group 'base' has no benchmark runs|holds no benchmark runs"):
        compare_groups()
