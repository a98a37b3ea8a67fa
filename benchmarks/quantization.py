"""Does int8 pay off on this host? fp32 vs each int8 scheme, per format, for five models (a benchmark script, not a
timed test).

Models: MobileNetV2 and ResNet-50 (plain PyTorch, benchmarks/quant_models.py; random weights, BatchNorm statistics
from a few passes), GEM-tiny (its card), a BERT-tiny-like encoder (vocab 30522, 2 layers, d=128) and a GPT-style LM
with tied embedding/output weights (vocab 16384). Each is exported with `edgekit export` (the library call) to ONNX
and TFLite with `int8` (the scheme edgekit picks for the graph) and `int8-static`, then every artifact is measured
with `edgekit bench`'s engine (run_benchmark: its own child process, warm-up, p50 over the timed runs).

Calibration: the image models get an .npz of 32 random-normal images via --calibration (no image data set ships
on this host, so the ranges are synthetic: the table is about speed, size and parity, not accuracy); GEM-tiny uses
its card's own source (eval-suite training samples) when the suite is cached; the token models fall back to random
ids (flagged in the manifest).

    .venv/bin/python benchmarks/quantization.py                  # all five, ~5 minutes on 2 shared cores
    .venv/bin/python benchmarks/quantization.py --models mobilenet_v2 --runs 30 --threads 1
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
ROOT = Path(__file__).resolve().parent.parent
MODELS = ("mobilenet_v2", "resnet50", "gem-tiny", "bert_tiny", "tied_lm")


def export(name: str, out: Path, workdir: Path):
    from quant_models import INPUTS

    from edgekit.export.pipeline import export_model

    if name == "gem-tiny":
        return export_model("gem-tiny", out, ("onnx", "tflite"), ("int8", "int8-static"))
    calibration = None
    if name in ("mobilenet_v2", "resnet50"):
        calibration = workdir / f"{name}.calib.npz"
        rng = np.random.default_rng(0)
        np.savez(calibration, pixels=rng.standard_normal((32, 3, 224, 224)).astype(np.float32))
    return export_model(f"{ROOT / 'benchmarks' / 'quant_models.py'}:{name}", out, ("onnx", "tflite"),
                        ("int8", "int8-static"), input_options=[INPUTS[name]], calibration=calibration)


def bench(out: Path, runs: int, threads: int | None) -> dict[str, float | str]:
    from edgekit.bench.jobs import resolve_jobs
    from edgekit.bench.runner import BenchConfig, run_benchmark

    config = BenchConfig(warmup=5, runs=runs, min_time_s=0.5, max_time_s=60, threads=threads)
    p50: dict[str, float | str] = {}
    for job in resolve_jobs(str(out)):
        if job.skip_reason or job.error:
            p50[f"{job.format}/{job.precision}"] = job.skip_reason or job.error or "skipped"
            continue
        result = run_benchmark(job, config)
        p50[f"{job.format}/{job.precision}"] = (float(np.median(result.samples_ms)) if result.ok and result.samples_ms
                                                else f"bench {result.status}: {result.error}")
    return p50


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default=",".join(MODELS))
    ap.add_argument("--runs", type=int, default=50)
    ap.add_argument("--threads", type=int, default=1, help="threads per benchmark (0 = runtime default)")
    args = ap.parse_args(argv)
    from edgekit.bench.env import cpu_model, cpus_used

    print(f"host: {cpu_model()}, {len(cpus_used())} cores usable (shared with other work: expect noise); "
          f"edgekit bench engine, {args.runs} timed runs, threads={args.threads or 'default'}; "
          f"load average at start {os.getloadavg()[0]:.1f}", flush=True)
    rows = []
    with tempfile.TemporaryDirectory(prefix="edgekit-quant-") as tmp:
        for name in args.models.split(","):
            start = time.perf_counter()
            out = Path(tmp) / name
            manifest = export(name, out, Path(tmp))
            p50 = bench(out, args.runs, args.threads or None)
            for fmt in ("onnx", "tflite"):
                fp32 = manifest.find(fmt, "fp32")
                base = p50.get(f"{fmt}/fp32")
                for precision in ("fp32", "int8", "int8-static"):
                    art = manifest.find(fmt, precision)
                    if art is None:
                        continue
                    if art.status != "ok":
                        rows.append((name, fmt, precision, "—", "—", "—", "—", f"failed: {(art.error or '')[:70]}"))
                        continue
                    ms = p50.get(f"{fmt}/{precision}")
                    speed = (f"{base / ms:.2f}x" if isinstance(ms, float) and isinstance(base, float) else "—")
                    size = (art.size_bytes or 0) / 1e6
                    ratio = f"{art.size_bytes / fp32.size_bytes:.2f}x" if fp32 and fp32.size_bytes else "—"
                    scheme = art.details.get("scheme", "")[:60]  # the flag after the cut, never cut away
                    if art.details.get("calibration_warning"):
                        scheme += " [random calibration]"
                    parity = art.parity.verdict if art.parity else "—"
                    if art.parity and art.parity.cosine is not None:
                        parity += f" (cos {art.parity.cosine:.4f})"
                    rows.append((name, fmt, precision, f"{ms:.2f}" if isinstance(ms, float) else str(ms)[:30],
                                 speed, f"{size:.2f}", ratio, f"{parity}; {scheme}"))
            print(f"{name}: done in {time.perf_counter() - start:.0f} s", file=sys.stderr, flush=True)
    print("\n| model | format | precision | p50 (ms) | speed-up vs fp32 | size (MB) | size vs fp32 | parity; scheme |")
    print("|---|---|---|---|---|---|---|---|")
    for row in rows:
        print("| " + " | ".join(row) + " |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
