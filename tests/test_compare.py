"""`edgekit compare`: verdicts on synthetic faster / slower / equal runs written through the results store (runs, not
samples, are the unit), between-run drift is never called a regression, one run per side is inconclusive, report
files as inputs, and bad input."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from reportdata import add_bench_run, lognormal, run_main

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


def store_groups(base: dict, new: dict, n: int = 80, sigma: float = 0.08, seed: int = 0, repeat: int = 4,
                 drift: float = 0.02) -> None:
    """Two groups of runs, `base` and `new`: {(format, precision): true median ms}, `repeat` runs per row and side,
    interleaved as `bench --repeat` stores them; each run's median drifts by a log-normal factor of sigma `drift`
    (what a fresh process on a shared machine does)."""
    rng = np.random.default_rng(seed + 99)
    with ResultsStore(db_path()) as store:
        for group, medians in (("base", base), ("new", new)):
            for rep in range(repeat):
                for i, ((fmt, prec), median) in enumerate(medians.items()):
                    run_median = median * float(np.exp(drift * rng.standard_normal()))
                    add_bench_run(store, fmt=fmt, precision=prec, group=group,
                                  samples=lognormal(run_median, n, seed * 1000 + (group == "new") * 100 + i * 10 + rep,
                                                    sigma))


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
    assert slower.ratio == pytest.approx(1.3, rel=0.06) and slower.p_adjusted < 1e-3
    assert (slower.n_base, slower.n_new) == (4, 4) and len(slower.base_runs) == 4
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
    store_groups({("onnx", "fp32"): 10.0}, {("onnx", "fp32"): 10.3}, n=600, sigma=0.03, repeat=8, drift=0.004)
    row = compare_groups(fail_above=0.05).rows[0]
    assert row.verdict == "slower" and not row.regression and 1.0 < row.ci[0] and row.ci[1] < 1.05


@pytest.mark.parametrize("drift", [0.0, 0.05, 0.15])
@pytest.mark.parametrize("runs", [2, 3, 5])
def test_one_distribution_is_never_a_regression(runs, drift):
    """Base and new drawn from ONE distribution — each run with its own between-run drift of the median, and some
    with heavy-tailed spikes — over many seeds and three rows each: false regressions stay below alpha / 2 per row
    (a one-sided error of the Welch test; 0.2-1.1 % in 1000-trial simulations), and the rows called faster/slower
    (false alarms) stay near alpha."""
    rng = np.random.default_rng(12345)
    alarms = 0
    rows = 0
    false_regressions = 0
    for seed in range(25):
        def report(tag: str, seed: int = seed) -> Report:
            out = []
            for rep in range(runs):
                for j, (fmt, prec) in enumerate(ARTIFACTS):
                    median = (10.0 + j) * float(np.exp(drift * rng.standard_normal()))
                    xs = lognormal(median, 40, seed * 7919 + j * 31 + rep * 3 + (tag == "new") * 17, 0.08)
                    if seed % 5 == 0:  # heavy-tailed noise too: a few spikes like a busy machine makes
                        spikes = set(rng.choice(40, size=4, replace=False).tolist())
                        xs = [x * (4.0 if i in spikes else 1.0) for i, x in enumerate(xs)]
                    out.append(ReportRow(run_id=rep * 10 + j, model="m", format=fmt, precision=prec,
                                         target="local", status="ok",
                                         latency=LatencyFigures(provenance="measured", samples_ms=xs)))
            return Report(generated="", edgekit_version="", store="", selection={}, rows=out)

        cmp = compare_reports(report("base"), report("new"), fail_above=0.05, seed=seed)
        false_regressions += len(cmp.regressions)
        alarms += sum(r.verdict in ("faster", "slower") for r in cmp.rows)
        rows += len(cmp.rows)
    assert false_regressions <= rows * 0.025, f"{false_regressions} false regressions in {rows} rows"
    assert alarms <= max(3, rows // 12), f"{alarms} false alarms in {rows} rows"


def test_one_run_per_side_is_inconclusive_not_a_regression():
    """The reported case: the same artifact benchmarked twice minutes apart, the second run 19.6 % slower from
    between-run drift alone. With one run per side, thousands of samples each, nothing can tell drift from a
    change: the row is inconclusive, the ratio is shown, and the exit code is 0."""
    store_groups({("tflite", "int8"): 10.0}, {("tflite", "int8"): 11.96}, n=2000, sigma=0.05, repeat=1, drift=0.0)
    row = compare_groups().rows[0]
    assert row.verdict == "inconclusive" and not row.regression and row.ci is None
    assert row.ratio == pytest.approx(1.196, rel=0.01) and "--repeat" in row.note
    proc = run_cli("base", "new")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "inconclusive" in proc.stdout and "overall: no significant change" in proc.stdout


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
    # CSV reports hold no samples but one p50 per run, and runs are the unit: the same verdicts
    csv_proc = run_cli(str(tmp_path / "base.csv"), str(tmp_path / "new.csv"), "--json")
    assert csv_proc.returncode == 1, csv_proc.stderr
    rows = json.loads(csv_proc.stdout)["rows"]
    assert [r["verdict"] for r in rows] == [r["verdict"] for r in data["rows"]]
    assert rows[0]["change"] == pytest.approx(0.25, abs=0.06)
    # run ids work too: 1-8 are base (4 runs x 2 rows), 9-16 new
    assert run_cli("1-8", "9-16").returncode == 1


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



def test_one_bootstrap_resampling_loop(monkeypatch):
    """compare's ratio CI and bench's median CI resample through the same function (edgekit.bench.stats), so a fix
    to the bootstrap reaches both."""
    from edgekit.bench import stats
    from edgekit.report import compare

    calls = []
    real = stats.bootstrap_medians

    def counting(xs, n_resamples, rng):
        calls.append(len(xs))
        return real(xs, n_resamples, rng)

    monkeypatch.setattr(stats, "bootstrap_medians", counting)
    monkeypatch.setattr(compare, "bootstrap_medians", counting, raising=False)
    base, new = np.linspace(9, 11, 40), np.linspace(11, 13, 30)
    compare.bootstrap_ratio_ci(base, new, 0.95, 200, seed=1)
    stats.bootstrap_median_ci(base, n_resamples=200, seed=1)
    assert calls == [40, 30, 40]

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


def test_bench_repeat_and_group_feed_compare(tmp_path):
    """`bench --repeat 2 --group NAME` stores two runs per artifact in fresh processes, interleaved, in one named
    group; `compare` over two such groups of the same file tests between runs (an A/A: never a regression)."""
    from test_report import tiny_onnx

    model = tiny_onnx(tmp_path / "tiny.onnx")
    for group in ("before", "after"):
        proc = run_main("bench", str(model), "--repeat", "2", "--group", group, "--runs", "10", "--min-time", "0.05",
                        "--warmup", "1", "--idle", "0", "--energy", "none")
        assert proc.returncode == 0, proc.stderr
    with ResultsStore(db_path()) as store:
        runs = store.list_runs(kind="bench")
    assert sorted(r.group for r in runs) == ["after", "after", "before", "before"]
    assert len({r.id for r in runs}) == 4
    data = json.loads(run_cli("before", "after", "--json").stdout)
    row = data["rows"][0]
    assert (row["n_base"], row["n_new"]) == (2, 2) and row["ci"] is not None and not row["regression"]
    assert data["unit"] == "run"
    bad = run_main("bench", str(model), "--group", "../x")
    assert bad.returncode == 2 and "not a valid group name" in bad.stderr


def test_sweep_points_are_compared_separately():
    """Runs of `bench --threads 1,2` differ by design: each sweep point is its own row, never lumped together."""
    def report(tag: str) -> Report:
        rows = []
        for rep in range(3):
            for threads, median in ((1, 10.0), (2, 6.0)):
                xs = lognormal(median * (1.3 if tag == "new" and threads == 2 else 1.0), 40,
                               rep * 7 + threads + (tag == "new") * 100, 0.03)
                rows.append(ReportRow(run_id=rep * 2 + threads, model="m", format="onnx", precision="fp32",
                                      target="local", status="ok", sweep={"threads": threads},
                                      latency=LatencyFigures(provenance="measured", samples_ms=xs)))
        return Report(generated="", edgekit_version="", store="", selection={}, rows=rows)

    cmp = compare_reports(report("base"), report("new"))
    by = {r.sweep["threads"]: r for r in cmp.rows}
    assert set(by) == {1, 2} and by[1].n_base == 3 and by[2].n_new == 3
    assert by[1].verdict == "no significant change" and by[2].regression
