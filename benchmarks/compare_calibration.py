"""Does `edgekit compare` hold on a noisy shared machine? (a benchmark script, not a timed test)

Two rates, measured with the real bench engine (each run a fresh child process, stored in a real SQLite store) and
the real comparison, the way a user compares two commits: BASE is benchmarked first (`--repeat R`, interleaved when
several artifacts), then NEW, then `compare BASE NEW --fail-above 5%`.

1. A/A: BASE and NEW are the same ONNX file. Every "regression" is a false alarm. Goal: <= 5 % of trials.
2. Planted slowdown: NEW is a variant of the model with extra layers (its real slowdown is measured and printed:
   the ratio of the medians over every run of the trial set). Goal: detected as a regression in >= 95 % of trials.

Trials alternate A/A and planted, so drift on the machine hits both alike. The one-run-per-side method (what
`compare` did before runs became the unit) is judged on the same runs, for contrast: the first run of each side,
samples as the unit (bootstrap CI + Mann-Whitney, Holm), regression when the CI lies above 1.05.

    .venv/bin/python benchmarks/compare_calibration.py                       # 20 + 20 trials, --repeat 3
    .venv/bin/python benchmarks/compare_calibration.py --trials 30 --repeat 5 --min-time 0.3

About 2 s per run on 2 shared cores: 20 + 20 trials x 2 sides x 3 runs take ~8 minutes.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def mlp_onnx(path: Path, layers: int, width: int = 256, batch: int = 32) -> Path:
    """A real ONNX MLP: `layers` MatMul+Relu blocks of width x width, fixed seed."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    nodes, inits, prev = [], [], "x"
    for i in range(layers):
        w = (rng.standard_normal((width, width)) / np.sqrt(width)).astype(np.float32)
        inits.append(numpy_helper.from_array(w, f"W{i}"))
        nodes += [helper.make_node("MatMul", [prev, f"W{i}"], [f"m{i}"]), helper.make_node("Relu", [f"m{i}"], [f"r{i}"])]
        prev = f"r{i}"
    nodes.append(helper.make_node("Identity", [prev], ["y"]))
    graph = helper.make_graph(nodes, "mlp", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [batch, width])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [batch, width])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, path)
    return path


def bench_side(store, path: Path, model: str, group: str, repeat: int, config) -> list[float]:
    """`edgekit bench PATH --repeat R` through the library: R runs, each in a fresh child; their medians (ms)."""
    from edgekit.bench.jobs import resolve_jobs
    from edgekit.bench.runner import run_benchmark

    job = resolve_jobs(str(path))[0]
    job.model = model  # both sides are one row of the comparison: same model name
    medians = []
    for _ in range(repeat):
        res = run_benchmark(job, config, store=store, group=group)
        if res.status != "ok":
            raise SystemExit(f"benchmark failed: {res.error}")
        medians.append(res.latency.p50)
    return medians


def one_run_verdict(store, base_group: str, new_group: str) -> bool:
    """The old method on the first run of each side: samples as the unit. True = it would call a regression."""
    from scipy import stats

    from edgekit.report import Selection, build_report
    from edgekit.report.compare import bootstrap_ratio_ci

    b = build_report(store, Selection(group=base_group), budgets_from_cards=False).rows[0]
    n = build_report(store, Selection(group=new_group), budgets_from_cards=False).rows[0]
    xs, ys = np.asarray(b.latency.samples_ms), np.asarray(n.latency.samples_ms)
    lo, _hi = bootstrap_ratio_ci(xs, ys, 0.95, 1000, 0)
    p = stats.mannwhitneyu(ys, xs, alternative="two-sided").pvalue
    return bool(p < 0.05 and lo > 1.05)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trials", type=int, default=20, help="trials of each kind (A/A and planted)")
    ap.add_argument("--repeat", type=int, default=3, help="runs per side (bench --repeat)")
    ap.add_argument("--runs", type=int, default=30)
    ap.add_argument("--min-time", type=float, default=0.3)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--layers", type=int, default=8, help="layers of BASE; the planted variant has 25 %% more")
    args = ap.parse_args()

    from edgekit.bench.runner import BenchConfig
    from edgekit.report import Selection, build_report
    from edgekit.report.compare import compare_reports
    from edgekit.store import ResultsStore

    tmp = Path(tempfile.mkdtemp(prefix="edgekit-cmpcal-"))
    base = mlp_onnx(tmp / "base.onnx", args.layers)
    slow = mlp_onnx(tmp / "slow.onnx", args.layers + max(2, args.layers // 4))
    config = BenchConfig(warmup=3, runs=args.runs, min_time_s=args.min_time, max_time_s=30.0, threads=args.threads,
                         idle_s=0.0, energy="none")
    store = ResultsStore(tmp / "cal.db")
    outcomes: dict[str, list[bool]] = {"aa": [], "planted": []}
    old: dict[str, list[bool]] = {"aa": [], "planted": []}
    ratios: list[float] = []
    t0 = time.perf_counter()
    for trial in range(2 * args.trials):
        kind = "aa" if trial % 2 == 0 else "planted"
        new_path = base if kind == "aa" else slow
        bg, ng = f"t{trial}-base", f"t{trial}-new"
        bm = bench_side(store, base, "mlp", bg, args.repeat, config)
        nm = bench_side(store, new_path, "mlp", ng, args.repeat, config)
        cmp = compare_reports(build_report(store, Selection(group=bg), budgets_from_cards=False),
                              build_report(store, Selection(group=ng), budgets_from_cards=False), fail_above=0.05)
        row = cmp.rows[0]
        outcomes[kind].append(bool(cmp.regressions))
        old[kind].append(one_run_verdict(store, bg, ng))
        if kind == "planted":
            ratios.append(statistics.median(nm) / statistics.median(bm))
        ci = f"[{row.ci[0]:.3f}, {row.ci[1]:.3f}]" if row.ci else "—"
        print(f"trial {trial + 1:3d} {kind:8s} base {statistics.median(bm):.3f} ms new {statistics.median(nm):.3f} ms"
              f" ratio {row.ratio:.3f} CI {ci} -> {row.verdict}{' REGRESSION' if row.regression else ''}",
              flush=True)
    store.close()
    wall = time.perf_counter() - t0
    aa = sum(outcomes["aa"]) / len(outcomes["aa"])
    det = sum(outcomes["planted"]) / len(outcomes["planted"])
    print()
    print(f"runs per side {args.repeat}, {args.trials} trials each, --runs {args.runs} --min-time {args.min_time} "
          f"--threads {args.threads}, wall {wall:.0f} s")
    print(f"planted slowdown (median ratio of run medians): {statistics.median(ratios):.3f} "
          f"(min {min(ratios):.3f}, max {max(ratios):.3f})")
    print(f"A/A false-regression rate: {aa:.1%}  (goal <= 5 %)")
    print(f"planted-slowdown detection rate: {det:.1%}  (goal >= 95 %)")
    print(f"old method (one run per side, samples as the unit): A/A false-regression "
          f"{sum(old['aa']) / len(old['aa']):.1%}, planted detection {sum(old['planted']) / len(old['planted']):.1%}")
    return 0 if aa <= 0.05 and det >= 0.95 else 1


if __name__ == "__main__":
    sys.exit(main())
