"""One artifact -> an operator profile, stored as a run of kind "profile" (status ok, or skipped with the reason
when its runtime exposes no per-operator profiler here): the typed record ProfileRun and its one writer
`log_profile` (through edgekit.runlog), inserted as `running` before the work."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edgekit.errors import EdgekitError
from edgekit.profile.model import PROFILE_SCHEMA, ModuleRow, OperatorProfile
from edgekit.runlog import ROW_SCHEMA, Row, log

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
class ProfileRun:
    """One profile run as the store keeps it (kind "profile"): the artifact profiled, where, and its OperatorProfile
    (status ok) or why there is none (skipped / failed). `to_row` / `from_row` are its versioned writer and reader
    (runlog.ROW_SCHEMA in `result.schema`); `log_profile` is the one function that stores it. The profile's
    per-operator table is typed (NodeTime rows) and so is its per-module table (`modules()`, ModuleRow rows)."""

    model: str
    format: str
    precision: str
    artifact: str
    status: str = "running"
    target: str = "local"
    runtime: str | None = None
    sha256: str | None = None
    profile: OperatorProfile | None = None
    error: str | None = None
    env: dict[str, Any] = field(default_factory=dict)
    config: dict[str, Any] = field(default_factory=dict)
    run_id: int | None = None

    def modules(self, depth: int | None = None) -> list[ModuleRow]:
        """The per-module table (typed rows, costliest first); empty without a profile."""
        return self.profile.modules(depth) if self.profile is not None else []

    def to_dict(self, depth: int | None = None) -> dict[str, Any]:
        return {"model": self.model, "format": self.format, "precision": self.precision, "artifact": self.artifact,
                "status": self.status, "error": self.error, "run_id": self.run_id,
                "profile": self.profile.to_dict(depth) if self.profile else None}

    def to_row(self) -> Row:
        result: dict[str, Any] | None = None
        samples: dict[str, list[float]] = {}
        if self.profile is not None:
            from edgekit.bench.stats import summarize

            result = self.profile.to_dict()
            result.pop("samples_ms", None)  # stored as the run's samples (phase "steady")
            if self.profile.samples_ms:
                result["latency"] = summarize(self.profile.samples_ms,
                                              seed=int(self.config.get("seed") or 0)).to_dict()
                samples = {"steady": list(self.profile.samples_ms)}
            result["schema"] = ROW_SCHEMA
        return Row("profile", self.status, model=self.model, format=self.format, precision=self.precision,
                   target=self.target, runtime=self.runtime, provenance="measured", artifact_path=self.artifact,
                   artifact_sha256=self.sha256, env=dict(self.env), config=dict(self.config), result=result,
                   error=self.error, samples=samples)

    @classmethod
    def from_row(cls, run: Any, samples: list[float] | None = None) -> ProfileRun:
        """The profile run a stored row holds (schema 1 and rows written before the typed records alike: both keep
        OperatorProfile.to_dict() as the result). `samples`: the run's stored latencies (store.samples(run.id)),
        which give back the profile's `samples_ms`."""
        res = dict(run.result or {})
        profile = None
        if res.get("nodes"):
            profile = OperatorProfile.from_dict(res)
            profile.schema = PROFILE_SCHEMA
            profile.samples_ms = list(samples or [])
        return cls(model=run.model, format=run.format, precision=run.precision, artifact=run.artifact_path or "",
                   status=run.status, target=run.target or "local", runtime=run.runtime, sha256=run.artifact_sha256,
                   profile=profile, error=run.error, env=dict(run.env or {}), config=dict(run.config or {}),
                   run_id=run.id)


def log_profile(store: Any, record: ProfileRun, group: str | None = None) -> int:
    """The one writer of profile runs (kind "profile"): inserted as `running` before the work, then finished with
    its profile, samples and status. Returns the run id."""
    return log(store, record, group)


def profile_job(job: Any, *, runs: int = 50, threads: int | None = None, seed: int = 0, target: str = "local",
                store: Any = None, group: str | None = None) -> ProfileRun:
    """Profile one BenchJob on this host and store it (kind "profile"), `running` while it works. Errors the user
    can fix become a failed run with one line; a format without a profiler here becomes a skipped run with the
    reason."""
    from edgekit.bench.env import collect_env
    from edgekit.lifecycle import interruptible

    env = collect_env(Path("/"), target)
    env.artifact_sha256 = job.sha256
    config = {"runs": runs, "threads": threads, "seed": seed, "target": target,
              "inputs": [s.to_dict() for s in job.inputs]}
    out = ProfileRun(job.model, job.format, job.precision, str(job.path), target=target, runtime=job.runtime,
                     sha256=job.sha256, env=env.to_dict(), config=config)
    if store is not None:
        log_profile(store, out, group)

    def finish(status: str, error: str | None = None) -> ProfileRun:
        out.status, out.error = status, error
        if store is not None and out.run_id is not None:
            log_profile(store, out)
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
            out.runtime = out.profile.runtime or out.runtime
        except EdgekitError as exc:
            return finish("failed", exc.one_line())
        return finish("ok")


def profile_from_run(run: Any) -> OperatorProfile | None:
    """The OperatorProfile a stored profile run holds (None for a run without one): ProfileRun.from_row."""
    if run.kind != "profile" or run.status != "ok":
        return None
    return ProfileRun.from_row(run).profile
