"""How well does edgekit's latency predictor predict models it was not calibrated on?

Exports zoo models to ONNX (fp32 and int8), measures each on this host with the bench engine (child process per
run, --threads 1, several interleaved rounds; a model's figure is the lowest p50 over the rounds, the round least
disturbed by other work on the machine), then for each model fits the predictor's per-target weights on all the
OTHER models (leave-one-model-out: both precisions of the held-out model are left out) and predicts it. Prints the
share of held-out predictions within ±10 % and ±20 % of the measured p50 (nn-Meter's bar: 99 % within ±10 % on a
Pixel 4 CPU), the median absolute error, and a row per artifact.

    .venv/bin/python benchmarks/predictor_accuracy.py                   # all zoo cards, 3 rounds
    .venv/bin/python benchmarks/predictor_accuracy.py --models gem-tiny,gem-small,fit-tiny --rounds 2
    .venv/bin/python benchmarks/predictor_accuracy.py --json             # machine output

Measured runs are written to the results store (--db, default $EDGEKIT_DB or the user's store), so
`edgekit predict MODEL --target local` is calibrated by them afterwards.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--models", default=None, help="comma list of model cards (default: every card in models/)")
    ap.add_argument("--precisions", default="fp32,int8")
    ap.add_argument("--rounds", type=int, default=3, help="interleaved measurement rounds per artifact")
    ap.add_argument("--runs", type=int, default=30)
    ap.add_argument("--min-time", type=float, default=0.5)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", type=Path, default=None, help="export directory (default: the bench export cache)")
    ap.add_argument("--db", type=Path, default=None)
    ap.add_argument("--reuse", action="store_true",
                    help="do not measure: take each artifact's best stored p50 (threads as given) from --db")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)

    from edgekit.bench.jobs import export_cache_dir, jobs_for_manifest
    from edgekit.bench.runner import BenchConfig, new_group, run_benchmark
    from edgekit.errors import EdgekitError
    from edgekit.export.pipeline import export_model
    from edgekit.specs import cards_dir
    from edgekit.store import ResultsStore
    from edgekit.targets.predictor import Sample, analyze_onnx, calibrate, predict_seconds
    from edgekit.targets.profile import load_target
    from edgekit.targets.remote import roofline_for

    def log(*a: object) -> None:
        print(*a, file=sys.stderr, flush=True)

    names = args.models.split(",") if args.models else sorted(p.stem for p in cards_dir().glob("*.toml"))
    precisions = tuple(p for p in args.precisions.split(",") if p)
    jobs = []
    for name in names:
        out = (args.out / name) if args.out else export_cache_dir(name)
        t0 = time.perf_counter()
        try:
            export_model(name, out, formats=("onnx",), precisions=tuple(p for p in precisions
                                                                        if p != "fp32"))
        except EdgekitError as exc:
            log(f"skip {name}: {exc.one_line()}")
            continue
        log(f"exported {name} in {time.perf_counter() - t0:.1f} s")
        try:
            jobs += jobs_for_manifest(out, ["onnx"], list(precisions))
        except EdgekitError as exc:
            log(f"skip {name}: {exc.one_line()}")
    jobs = [j for j in jobs if not j.skip_reason]

    config = BenchConfig(warmup=5, runs=args.runs, min_time_s=args.min_time, threads=args.threads, energy="none")
    store = ResultsStore(args.db)
    group = new_group()
    best: dict[str, float] = {}
    p90: dict[str, float] = {}
    if args.reuse:
        for run in store.list_runs(kind="bench", status="ok"):
            lat = (run.result or {}).get("latency") or {}
            if run.target == "local" and lat.get("p50") and (run.config or {}).get("threads") == args.threads:
                key = f"{run.model} {run.precision}"
                if lat["p50"] < best.get(key, float("inf")):
                    best[key], p90[key] = lat["p50"], lat.get("p90")
    for r in range(0 if args.reuse else args.rounds):
        for job in jobs:
            res = run_benchmark(job, config, store=store, group=group)
            key = f"{job.model} {job.precision}"
            if not res.ok or res.latency is None:
                log(f"round {r + 1}: {key} {res.status}: {res.error}")
                continue
            if res.latency.p50 < best.get(key, float("inf")):
                best[key], p90[key] = res.latency.p50, res.latency.p90
        log(f"round {r + 1}/{args.rounds} measured {len(jobs)} artifacts")
    store.close()

    profile = load_target("local")
    roof = roofline_for(profile)
    samples, groups = [], []
    for job in jobs:
        key = f"{job.model} {job.precision}"
        if key not in best:
            continue
        cost = analyze_onnx(job.path, {s.name: s.shape for s in job.inputs}, key)
        samples.append(Sample(cost, best[key], p90.get(key)))
        groups.append(job.model)
    rows = []
    for model in sorted(set(groups)):
        train = [s for s, g in zip(samples, groups, strict=True) if g != model]
        cal = calibrate(profile, train, roof, loo=False)
        w = np.asarray(cal.weights)
        for s, g in zip(samples, groups, strict=True):
            if g == model:
                pred = predict_seconds(s.cost, roof, w) * 1000.0
                rows.append({"artifact": s.cost.model, "measured_p50_ms": s.p50_ms, "predicted_p50_ms": pred,
                             "error": pred / s.p50_ms - 1.0, "gflop": s.cost.flops / 1e9,
                             "mb_moved": s.cost.bytes / 1e6, "kernels": s.cost.kernels})
    errors = np.abs([r["error"] for r in rows])
    full = calibrate(profile, samples, roof, loo=False)
    summary = {
        "host": profile.description, "threads": args.threads, "rounds": args.rounds, "artifacts": len(rows),
        "models": len(set(groups)), "within_10": float(np.mean(errors <= 0.10)) if rows else None,
        "within_20": float(np.mean(errors <= 0.20)) if rows else None,
        "median_abs_error": float(np.median(errors)) if rows else None,
        "weights_all_models": full.efficiencies(), "bandwidth_gbs": roof.bandwidth_gbs,
        "peak_gflops": roof.peak_gflops, "rows": rows,
    }
    if args.json:
        print(json.dumps(summary, indent=2))
        return 0
    print(f"predictor accuracy on {profile.description}, threads={args.threads}, leave-one-model-out over "
          f"{summary['models']} models / {len(rows)} artifacts (best p50 of {args.rounds} rounds)")
    print(f"{'artifact':28s} {'measured':>9s} {'predicted':>9s} {'error':>7s} {'GFLOP':>7s} {'MB':>7s} {'nodes':>5s}")
    for r in sorted(rows, key=lambda r: r["artifact"]):
        print(f"{r['artifact']:28s} {r['measured_p50_ms']:9.3f} {r['predicted_p50_ms']:9.3f} {r['error']:+7.1%} "
              f"{r['gflop']:7.3f} {r['mb_moved']:7.1f} {r['kernels']:5d}")
    print(f"within ±10 %: {summary['within_10']:.0%}   within ±20 %: {summary['within_20']:.0%}   "
          f"median |error|: {summary['median_abs_error']:.1%}   (nn-Meter's bar: 99 % within ±10 %)")
    eff = summary["weights_all_models"]
    effs = ", ".join(f"{k.removesuffix('_efficiency')} {v:.3g}" for k, v in eff.items()
                     if k.endswith("_efficiency") and v is not None)
    print(f"fitted on all models — efficiency (achieved/peak) per class: {effs}; {eff['op_overhead_us']:.2f} µs per "
          f"kernel, {eff['shape_op_overhead_us']:.2f} µs per shape node, {eff['call_overhead_us']:.1f} µs per call "
          f"(peak {roof.peak_gflops.get('fp32', 0):.0f} GFLOP/s fp32 derived, {roof.bandwidth_gbs:.1f} GB/s measured)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
