"""Builders of real records for the report/compare tests (no tests here): benchmark runs written through
edgekit.bench.runner.log_bench exactly as the bench engine writes them (BenchResult, samples by phase), evaluations through
edgekit.evalsuite.persist.record_eval, and artifacts with a real manifest.json and parity record beside them."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgekit.bench.energy import PowerProfile, modeled_energy
from edgekit.bench.runner import BenchResult, MemoryRecord, env_from_dict, log_bench
from edgekit.bench.stats import noise_warnings, summarize
from edgekit.evalsuite.evaluate import DomainScore, EvalResult
from edgekit.evalsuite.persist import record_eval
from edgekit.export.artifact import Artifact, Manifest, ParityReport
from edgekit.files import file_sha256
from edgekit.store import ResultsStore

MB = 1024 * 1024
DOMAINS = ("healthcare", "law", "finance", "stem", "commonsense", "conversational", "multilingual", "domain_adaptive")


def lognormal(median_ms: float, n: int, seed: int, sigma: float = 0.08) -> list[float]:
    """n latencies (ms) whose true median is median_ms (log-normal, a typical latency shape)."""
    rng = np.random.default_rng(seed)
    return [float(x) for x in median_ms * np.exp(sigma * rng.standard_normal(n))]


def make_artifact(directory: Path, model: str, fmt: str, precision: str, parity: str = "pass",
                  payload: bytes | None = None) -> tuple[Path, str]:
    """An artifact file plus a manifest.json listing it with a parity record; returns (path, sha256)."""
    directory.mkdir(parents=True, exist_ok=True)
    suffix = {"onnx": ".onnx", "tflite": ".tflite", "coreml": ".mlpackage", "torch": ".pt2"}[fmt]
    path = directory / f"{model}-{fmt}-{precision}{suffix}"
    path.write_bytes(payload or f"{model} {fmt} {precision} weights".encode())
    sha = file_sha256(path)
    manifest_path = directory / "manifest.json"
    manifest = Manifest.read(manifest_path) if manifest_path.is_file() else Manifest(
        model=model, source="zoo", edgekit_version="test", created="2025-01-01T00:00:00", inputs=[], outputs=[])
    rep = ParityReport(verdict=parity, runtime="onnxruntime", n_inputs=5,
                       max_abs=2e-8 if parity == "pass" else 0.7, cosine=0.9999999 if parity == "pass" else 0.41,
                       top1_agreement=1.0 if parity == "pass" else 0.2)
    manifest.upsert(Artifact(model=model, format=fmt, precision=precision, path=path.name, size_bytes=path.stat().st_size,
                             sha256=sha, parity=rep))
    manifest.write(directory)
    return path, sha


def add_bench_run(store: ResultsStore, model: str = "gem-tiny", fmt: str = "onnx", precision: str = "fp32",
                  target: str = "local", samples: list[float] | None = None, *, provenance: str = "measured",
                  group: str | None = "g1", status: str = "ok", error: str | None = None, energy: bool = True,
                  memory: bool = True, artifact: Path | None = None, sha256: str | None = None,
                  runtime: str = "onnxruntime", runtime_info: dict | None = None) -> int:
    """One benchmark run, recorded the way edgekit.bench.runner.run_benchmark records it: through log_bench, inserted
    as `running` first, carrying the parity the manifest beside the artifact records for it (as BenchJob does)."""
    parity = None
    if artifact is not None and (artifact.parent / "manifest.json").is_file():
        listed = [a for a in Manifest.read(artifact.parent / "manifest.json").artifacts if a.path == artifact.name]
        parity = listed[0].parity if listed and listed[0].sha256 == sha256 else None
    result = BenchResult(model=model, format=fmt, precision=precision, artifact=str(artifact or ""), status="running",
                         provenance=provenance, runtime=dict(runtime_info or {}), runtime_name=runtime,
                         artifact_sha256=sha256, parity=parity, config={"runs": len(samples or []), "target": target},
                         env=env_from_dict({"cpu_model": "Test CPU", "machine": "x86_64"}))
    run_id = log_bench(store, result, group)
    result.status, result.error = status, error
    if status == "ok":
        xs = samples if samples is not None else lognormal(10.0, 60, run_id)
        result.samples_ms, result.warmup_ms, result.first_ms, result.load_ms = xs, xs[:3], xs[0] * 3, 42.0
        result.latency = summarize(xs)
        result.warnings = noise_warnings(xs, result.latency)
        if memory:
            result.memory = MemoryRecord(rss_before_load=60 * MB, rss_after_load=80 * MB, peak_rss_load=85 * MB,
                                         peak_rss_inference=90 * MB, peak_rss_scope="inference", rss_after_runs=88 * MB)
        if energy:
            prof = PowerProfile(0.0, 10.0, "edgekit default", "10 W test power model")
            result.energy = modeled_energy(result.latency.mean, result.latency.std, result.latency.n, prof)
    log_bench(store, result)
    return run_id


def add_eval(db: Path, name: str, kind: str, f1_by_domain: dict[str, float], *, artifact: Path | None = None,
             sha256: str | None = None, trained: bool = True, group: str | None = None) -> int:
    """One evaluation (macro-F1 per domain) recorded through edgekit.evalsuite.persist.record_eval."""
    scores = [DomainScore(domain=d, task=f"{d}-topic", macro_f1=f, accuracy=f, n_test=100, n_classes=4)
              for d, f in f1_by_domain.items()]
    res = EvalResult(model=name, kind=kind, trained=trained, seed=0, seq_len=64, vocab_size=8192, scores=scores,
                     artifact_sha256=sha256)
    return record_eval(res, db, artifact_path=str(artifact) if artifact else None, group=group)


def populate(db: Path, arts: Path) -> dict[str, int]:
    """gem-tiny in group g1 on two targets: onnx fp32 (fast, parity pass), onnx int8 (p90 above the card's 100 ms
    budget, parity fail), tflite fp32 predicted on rpi4 without memory/energy, and a failed tflite int8 run; one
    older run in group g0. Evaluations: the PyTorch model (model-level, in group g1) and the int8 artifact (matched
    by hash, stored without a group).
    Returns the run ids by name."""
    fp32, sha32 = make_artifact(arts, "gem-tiny", "onnx", "fp32", "pass")
    int8, sha8 = make_artifact(arts, "gem-tiny", "onnx", "int8", "fail")
    ids = {}
    with ResultsStore(db) as store:
        ids["old"] = add_bench_run(store, samples=lognormal(30, 40, 1), group="g0", artifact=fp32, sha256=sha32)
        ids["fp32"] = add_bench_run(store, samples=lognormal(12, 80, 2), artifact=fp32, sha256=sha32)
        ids["int8"] = add_bench_run(store, precision="int8", samples=lognormal(140, 80, 3, sigma=0.05),
                                    artifact=int8, sha256=sha8)
        ids["pred"] = add_bench_run(store, fmt="tflite", target="rpi4", provenance="predicted",
                                    samples=lognormal(60, 20, 4), memory=False, energy=False, runtime="ai-edge-litert")
        ids["failed"] = add_bench_run(store, fmt="tflite", precision="int8", status="failed",
                                      error="the benchmark process died from SIGSEGV during warm-up")
    add_eval(db, "gem-tiny", "torch", {d: 0.90 + 0.01 * i for i, d in enumerate(DOMAINS)}, group="g1")
    add_eval(db, int8.name, "onnx", {d: 0.80 + 0.01 * i for i, d in enumerate(DOMAINS)}, artifact=int8, sha256=sha8)
    return ids


@dataclass
class CliResult:
    returncode: int
    stdout: str
    stderr: str


def run_main(*args: str) -> CliResult:
    """`edgekit ARGS` through edgekit.cli.main in this process (fast; the same one-line error handling as the
    console script). Tests that need a separate process use subprocess instead."""
    import contextlib
    import io
    import sys

    from edgekit.cli import main

    out, err = io.StringIO(), io.StringIO()
    argv = sys.argv
    sys.argv = ["edgekit", *args]
    code = 0
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            main()
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    finally:
        sys.argv = argv
    return CliResult(code, out.getvalue(), err.getvalue())


def add_prediction(store: ResultsStore, model: str, target: str, p50_ms: float, p90_ms: float,
                   loo_errors: list[float], group: str = "g1") -> int:
    """A cost-model prediction stored the way edgekit.targets.remote stores one (kind "predict")."""
    from edgekit.targets.predictor import COMPUTE_CLASSES, MEMORY_CLASSES, Calibration, Prediction

    # one inverse efficiency per compute/memory class, then per-op, shape-op and per-call overheads (s)
    weights = [1.0] * (len(COMPUTE_CLASSES) + len(MEMORY_CLASSES)) + [1e-5, 1e-6, 1e-6]
    cal = Calibration(target=target, weights=weights, n_samples=len(loo_errors),
                      basis=f"calibrated on {len(loo_errors)} measured runs", loo_errors=loo_errors, p90_ratio=1.1)
    pred = Prediction(model=model, target=target, precision="fp32", p50_ms=p50_ms, p90_ms=p90_ms, flops=1e9,
                      bytes=1e7, kernels=120, calibration=cal, note="not calibrated on this target")
    run_id = store.start_run("predict", model=model, precision="fp32", target=target, provenance="predicted",
                             group=group, config={"target": target})
    store.finish_run(run_id, "ok", result=pred.to_dict())
    return run_id
