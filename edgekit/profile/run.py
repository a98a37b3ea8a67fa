"""One artifact -> an operator profile, stored as a run of kind "profile" (status ok, or skipped with the reason
when its runtime exposes no per-operator profiler here)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edgekit.errors import EdgekitError
from edgekit.profile.model import OperatorProfile

# What each format's runtime offers here, in one line (a format absent from this table cannot be profiled).
NO_PROFILER = {
    "tflite": "LiteRT op profiling is not exposed by the ai-edge-litert Python interpreter (no profiler API; "
              "TFLite's benchmark_model --enable_op_profiling has it), so no per-operator times for {name}",
    "coreml": "CoreML exposes no per-operator timing to Python (Xcode's performance report does), so no per-operator "
              "times for {name}",
    "torch": "per-operator profiles of .pt2 programs are not built (use torch.profiler), so no per-operator times for "
             "{name}",
}


@dataclass
class ProfileOutcome:
    """A profile run: the profile (status ok), or why there is none (skipped / failed)."""

    model: str
    format: str
    precision: str
    artifact: str
    status: str
    profile: OperatorProfile | None = None
    error: str | None = None
    run_id: int | None = None
    notes: list[str] = field(default_factory=list)

    def to_dict(self, depth: int | None = None) -> dict[str, Any]:
        return {"model": self.model, "format": self.format, "precision": self.precision, "artifact": self.artifact,
                "status": self.status, "error": self.error, "run_id": self.run_id,
                "profile": self.profile.to_dict(depth) if self.profile else None}


def profile_job(job: Any, *, runs: int = 50, threads: int | None = None, seed: int = 0, target: str = "local",
                store: Any = None, group: str | None = None) -> ProfileOutcome:
    """Profile one BenchJob on this host and store it (kind "profile"). Errors the user can fix become a failed run
    with one line; a format without a profiler here becomes a skipped run with the reason."""
    from edgekit.bench.env import collect_env
    from edgekit.lifecycle import interruptible

    out = ProfileOutcome(job.model, job.format, job.precision, str(job.path), "running")
    env = collect_env(Path("/"), target)
    env.artifact_sha256 = job.sha256
    config = {"runs": runs, "threads": threads, "seed": seed, "target": target,
              "inputs": [s.to_dict() for s in job.inputs]}
    run_id = None
    if store is not None:
        run_id = store.start_run("profile", model=job.model, format=job.format, precision=job.precision,
                                 target=target, runtime=job.runtime, provenance="measured",
                                 artifact_path=str(job.path), artifact_sha256=job.sha256, env=env.to_dict(),
                                 config=config, group=group)
        out.run_id = run_id

    def finish(status: str, error: str | None = None) -> ProfileOutcome:
        out.status, out.error = status, error
        if store is not None and run_id is not None:
            result = None
            samples: dict[str, list[float]] = {}
            if out.profile is not None:
                from edgekit.bench.stats import summarize

                result = out.profile.to_dict()
                result["latency"] = summarize(out.profile.samples_ms, seed=seed).to_dict()
                result.pop("samples_ms", None)
                samples = {"steady": out.profile.samples_ms}
            store.finish_run(run_id, status, result=result, error=error, samples=samples,
                             runtime=out.profile.runtime if out.profile else None)
        return out

    with interruptible(store):
        if job.skip_reason:
            return finish("skipped", job.skip_reason)
        if job.error:
            return finish("failed", job.error)
        if job.format != "onnx":
            why = NO_PROFILER.get(job.format, f"no per-operator profiler for format {job.format} here ({{name}})")
            return finish("skipped", why.format(name=Path(job.path).name))
        try:
            from edgekit.profile.ort import profile_onnx

            rng = np.random.default_rng(seed)
            feeds = {s.name: s.random(rng) for s in job.inputs}
            out.profile = profile_onnx(Path(job.path), feeds, runs=runs, threads=threads, model=job.model,
                                       precision=job.precision)
            out.profile.target, out.profile.sha256 = target, job.sha256
        except EdgekitError as exc:
            return finish("failed", exc.one_line())
        return finish("ok")


def profile_from_run(run: Any) -> OperatorProfile | None:
    """The OperatorProfile a stored profile run holds (None for a run without one)."""
    res = run.result or {}
    if run.kind != "profile" or run.status != "ok" or not res.get("nodes"):
        return None
    return OperatorProfile.from_dict(res)
