"""How much does edgekit's measurement harness cost? (a benchmark script, not a timed test)

1. Latency: for the same ONNX artifact and the same onnxruntime settings, edgekit's reported median (its child
   process, its timed loop) vs a bare `session.run` loop in this process, interleaved round by round so drift on the
   machine hits both alike. Prints the ratio; the goal is <= 1.02.
2. Time outside the model for a warm run: CLI start-up, the export-cache hit for a model name, and per benchmark the
   child's spawn/import/probe time around the model's own load + runs; per iteration the timer and loop cost.

    .venv/bin/python benchmarks/harness_overhead.py                      # gem-tiny, exported (or cached) as ONNX
    .venv/bin/python benchmarks/harness_overhead.py path/to/model.onnx --rounds 7 --min-time 2 --threads 1
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np


def bare_median_ms(sess, feeds: dict, min_time_s: float, min_runs: int) -> float:
    """A bare loop: session.run timed with perf_counter_ns, nothing else."""
    pc = time.perf_counter_ns
    out: list[int] = []
    start = pc()
    while len(out) < min_runs or pc() - start < min_time_s * 1e9:
        t0 = pc()
        sess.run(None, feeds)
        out.append(pc() - t0)
    return float(np.median(out)) / 1e6


def timed(cmd: list[str]) -> float:
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, capture_output=True)
    return time.perf_counter() - t0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("ref", nargs="?", default="gem-tiny", help="An .onnx file or a model name (default gem-tiny).")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--min-time", type=float, default=1.0, help="Seconds per side per round.")
    ap.add_argument("--runs", type=int, default=50)
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--threads", type=int, default=1, help="Intra-op threads on both sides (1 = least noise).")
    args = ap.parse_args()

    import onnxruntime as ort

    from edgekit.bench.jobs import resolve_jobs
    from edgekit.bench.runner import BenchConfig, run_benchmark

    fmts = None if args.ref.endswith(".onnx") else ["onnx"]
    jobs = resolve_jobs(args.ref, formats=fmts)  # a model name may export here; every later call is a cache hit
    # the warm cache hit as a user sees it: a fresh process (imports, model load and fingerprint, manifest, hashes)
    probe = f"from edgekit.bench.jobs import resolve_jobs; resolve_jobs({args.ref!r}, formats={fmts!r})"
    resolve_s = statistics.median(timed([sys.executable, "-c", probe]) for _ in range(2))
    job = next(j for j in jobs if j.format == "onnx" and not j.error and not j.skip_reason)
    print(f"artifact: {job.path} ({(job.size_bytes or 0) / 2**20:.2f} MiB), inputs "
          f"{', '.join(f'{s.name}:{s.shape}:{s.dtype}' for s in job.inputs)}; threads={args.threads}")

    so = ort.SessionOptions()
    so.intra_op_num_threads = args.threads
    so.inter_op_num_threads = 1
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    so.log_severity_level = 3
    sess = ort.InferenceSession(str(job.path), so, providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(0)
    feeds = {s.name: s.random(rng) for s in job.inputs}
    for _ in range(args.warmup):
        sess.run(None, feeds)

    config = BenchConfig(warmup=args.warmup, runs=args.runs, min_time_s=args.min_time, threads=args.threads,
                         energy="none")
    ratios, edge_meds, bare_meds, outside = [], [], [], []
    print(f"{'round':>5} {'edgekit p50 ms':>15} {'bare p50 ms':>12} {'ratio':>7} {'outside model s':>16}")
    for i in range(args.rounds):
        t0 = time.perf_counter()
        r = run_benchmark(job, config)
        wall = time.perf_counter() - t0
        if not r.ok:
            print(f"edgekit run failed: {r.error}")
            return 1
        model_s = (r.load_ms + r.first_ms + sum(r.warmup_ms)) / 1000 + r.harness["timed_wall_s"]
        outside.append(wall - model_s)
        b = bare_median_ms(sess, feeds, args.min_time, args.runs)
        e = r.latency.p50
        edge_meds.append(e)
        bare_meds.append(b)
        ratios.append(e / b)
        print(f"{i + 1:>5} {e:>15.4f} {b:>12.4f} {e / b:>7.3f} {wall - model_s:>16.3f}")
    ratio = statistics.median(ratios)
    print(f"\nmedian ratio edgekit/bare = {ratio:.3f} (goal <= 1.02); ratio of median p50s = "
          f"{statistics.median(edge_meds) / statistics.median(bare_meds):.3f}")
    print(f"per iteration inside the child: timer pair {r.harness['timer_overhead_ns']:.0f} ns (inside each sample), "
          f"loop {r.harness['loop_overhead_ns']:.0f} ns (between samples)")
    print(f"per benchmark outside the model (spawn, imports, probes, stats): median {statistics.median(outside):.3f} s")
    cli = [sys.executable, "-m", "edgekit.cli"]
    startup = statistics.median(timed([*cli, "--help"]) for _ in range(3))
    print(f"CLI start-up (`edgekit --help`): {startup:.3f} s")
    print(f"resolving {args.ref!r} to artifacts in a fresh process (warm export cache hit / file read): "
          f"{resolve_s:.3f} s")
    cmd = [*cli, "bench", args.ref, "--format", "onnx", "--runs", "1", "--warmup", "0", "--min-time", "0",
           "--energy", "none", "--threads", str(args.threads), "--db", str(Path("/tmp") / "edgekit-overhead.db")]
    whole = timed(cmd)
    print(f"whole warm CLI run with 1 timed inference (`{' '.join(cmd[2:])}`): {whole:.3f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
