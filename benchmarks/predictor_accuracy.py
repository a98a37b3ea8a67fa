"""How well does edgekit's latency predictor predict models it was not calibrated on?

Exports zoo models to ONNX (fp32 and int8) and profiles each artifact on this host with `edgekit profile`'s engine
(edgekit/profile: onnxruntime's own per-operator profiler, with unprofiled runs interleaved for the measured p50;
1 thread; several rounds, a model's figure is the lowest p50 over the rounds, the round least disturbed by other
work on the machine). Then, per held-out model (leave-one-model-out: both precisions left out together), it fits
the predictor on all the OTHER models and predicts the held-out one from its own graph, two ways:

- op-class: calibrated per operator class on the other models' per-operator profiles (what `edgekit predict`
  uses once profiles of a target are in the store);
- whole-model: the older roofline calibrated on whole-model p50s only (for comparison).

Prints, per way: the share of held-out predictions within ±10 % and ±20 % of the measured p50 (nn-Meter's bar: 99 %
within ±10 % on a Pixel 4 CPU), the median absolute error, and a row per artifact.

    .venv/bin/python benchmarks/predictor_accuracy.py                   # all zoo cards, 2 rounds
    .venv/bin/python benchmarks/predictor_accuracy.py --models gem-tiny,gem-small,fit-tiny --rounds 1
    .venv/bin/python benchmarks/predictor_accuracy.py --json             # machine output

Profile runs are written to the results store (--db, default $EDGEKIT_DB or the user's store), so
`edgekit predict MODEL --target local` is calibrated by them afterwards.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np


def _stats(rows: list[dict], key: str) -> dict[str, float | None]:
    errors = np.abs([r[key] for r in rows])
    if not len(errors):
        return {"within_10": None, "within_20": None, "median_abs_error": None}
    return {"within_10": float(np.mean(errors <= 0.10)), "within_20": float(np.mean(errors <= 0.20)),
            "median_abs_error": float(np.median(errors))}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--models", default=None, help="comma list of model cards (default: every card in models/)")
    ap.add_argument("--precisions", default="fp32,int8")
    ap.add_argument("--rounds", type=int, default=2, help="profiling rounds per artifact (lowest p50 wins)")
    ap.add_argument("--runs", type=int, default=30, help="profiled (and as many unprofiled) runs per round")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", type=Path, default=None, help="export directory (default: the bench export cache)")
    ap.add_argument("--db", type=Path, default=None)
    ap.add_argument("--reuse", action="store_true",
                    help="do not measure: refit on the profile runs already in --db (lowest p50 per artifact)")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)

    from edgekit.bench.jobs import export_cache_dir, jobs_for_manifest
    from edgekit.bench.runner import new_group
    from edgekit.errors import EdgekitError
    from edgekit.export.pipeline import export_model
    from edgekit.profile.run import profile_job
    from edgekit.specs import cards_dir
    from edgekit.store import ResultsStore
    from edgekit.targets.predictor import (
        ProfiledSample,
        Sample,
        analyze_onnx,
        calibrate,
        default_op_weights,
        fit_op_weights,
        predict_op_class,
        predict_seconds,
    )
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
            export_model(name, out, formats=("onnx",), precisions=tuple(p for p in precisions if p != "fp32"))
            jobs += [j for j in jobs_for_manifest(out, ["onnx"], list(precisions)) if not j.skip_reason]
        except EdgekitError as exc:
            log(f"skip {name}: {exc.one_line()}")
            continue
        log(f"exported {name} in {time.perf_counter() - t0:.1f} s")

    store = ResultsStore(args.db)
    group = new_group()
    best: dict[str, tuple[float, dict[str, float], float | None]] = {}
    if args.reuse:
        from edgekit.profile.run import profile_from_run

        for run in store.list_runs(kind="profile", status="ok"):
            p = profile_from_run(run)
            key = f"{run.model} {run.precision}"
            if p is not None and p.p50_ms and p.threads == args.threads and p.p50_ms < best.get(key, (1e30,))[0]:
                p90 = float(np.percentile(store.samples(run.id), 90)) if store.samples(run.id) else None
                best[key] = (p.p50_ms, {n.name: n.ms for n in p.nodes}, p90)
    for r in range(0 if args.reuse else args.rounds):
        for job in jobs:
            key = f"{job.model} {job.precision}"
            res = profile_job(job, runs=args.runs, threads=args.threads, store=store, group=group)
            if res.profile is None or not res.profile.p50_ms:
                log(f"round {r + 1}: {key} {res.status}: {res.error}")
                continue
            p = res.profile
            if p.p50_ms < best.get(key, (float("inf"),))[0]:
                p90 = float(np.percentile(p.samples_ms, 90)) if p.samples_ms else None
                best[key] = (p.p50_ms, {n.name: n.ms for n in p.nodes}, p90)
        log(f"round {r + 1}/{args.rounds} profiled {len(jobs)} artifacts")
    store.close()

    profile = load_target("local")
    roof = roofline_for(profile)
    samples, groups = [], []
    for job in jobs:
        key = f"{job.model} {job.precision}"
        if key not in best:
            continue
        cost = analyze_onnx(job.path, {s.name: s.shape for s in job.inputs}, key)
        samples.append(ProfiledSample(cost, best[key][0], best[key][1], best[key][2]))
        groups.append(job.model)
    start = default_op_weights(profile)
    rows = []
    for model in sorted(set(groups)):
        train = [s for s, g in zip(samples, groups, strict=True) if g != model]
        w_op = fit_op_weights(train, roof, start)
        cal = calibrate(profile, [Sample(s.cost, s.p50_ms, s.p90_ms) for s in train], roof, loo=False)
        w_whole = np.asarray(cal.weights)
        for s, g in zip(samples, groups, strict=True):
            if g != model:
                continue
            pred = predict_op_class(s.cost, roof, w_op) * 1000.0
            whole = predict_seconds(s.cost, roof, w_whole) * 1000.0
            rows.append({"artifact": s.cost.model, "measured_p50_ms": s.p50_ms, "predicted_p50_ms": pred,
                         "error": pred / s.p50_ms - 1.0, "whole_model_predicted_ms": whole,
                         "whole_model_error": whole / s.p50_ms - 1.0, "gflop": s.cost.flops / 1e9,
                         "mb_moved": s.cost.bytes / 1e6, "kernels": s.cost.kernels})
    summary = {
        "host": profile.description, "threads": args.threads, "rounds": args.rounds, "artifacts": len(rows),
        "models": len(set(groups)), "op_class": _stats(rows, "error"), "whole_model": _stats(rows, "whole_model_error"),
        "bandwidth_gbs": roof.bandwidth_gbs, "peak_gflops": roof.peak_gflops, "rows": rows,
    }
    if args.json:
        print(json.dumps(summary, indent=2))
        return 0
    print(f"predictor accuracy on {profile.description}, threads={args.threads}, leave-one-model-out over "
          f"{summary['models']} models / {len(rows)} artifacts (best p50 of {args.rounds} rounds)")
    print(f"{'artifact':28s} {'measured':>9s} {'op-class':>9s} {'error':>7s} {'whole':>9s} {'error':>7s} "
          f"{'GFLOP':>7s} {'nodes':>5s}")
    for r in sorted(rows, key=lambda r: r["artifact"]):
        print(f"{r['artifact']:28s} {r['measured_p50_ms']:9.3f} {r['predicted_p50_ms']:9.3f} {r['error']:+7.1%} "
              f"{r['whole_model_predicted_ms']:9.3f} {r['whole_model_error']:+7.1%} {r['gflop']:7.3f} "
              f"{r['kernels']:5d}")
    for label, key in (("op-class (per-operator profiles)", "op_class"), ("whole-model roofline", "whole_model")):
        st = summary[key]
        if st["within_10"] is None:
            continue
        print(f"{label}: within ±10 %: {st['within_10']:.0%}   within ±20 %: {st['within_20']:.0%}   "
              f"median |error|: {st['median_abs_error']:.1%}")
    print("(nn-Meter's bar: 99 % within ±10 % on a Pixel 4 CPU)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
