"""Runs one benchmark in its own child process (`python -m edgekit.bench.child`), turns the child's events into a
BenchResult (statistics, warnings, memory, energy, environment), and writes it to the results store as it goes.

A child that dies (signal, out-of-memory kill, native crash) becomes a result with status "killed"/"failed" and one
clear line; it never takes the parent down, and runs already finished stay in the store.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from edgekit.bench.energy import EnergyResult, detect_probe, modeled_energy, power_profile
from edgekit.bench.env import EnvRecord, collect_env
from edgekit.bench.stats import (
    BenchWarning,
    LatencySummary,
    NoiseWarning,
    ProbeSnapshot,
    noise_warnings,
    summarize,
)
from edgekit.errors import EdgekitError
from edgekit.export.artifact import Artifact, ParityReport
from edgekit.runlog import ROW_SCHEMA, Row, log
from edgekit.specs import TensorSpec

EventHandler = Callable[[dict[str, Any]], None]
MB = 1024 * 1024


@dataclass
class BenchConfig:
    """How to measure. Times in seconds. At least `runs` timed runs AND at least `min_time_s` seconds; never longer
    than `max_time_s` (then a TIME_CAP_REACHED warning says fewer runs were done)."""

    warmup: int = 5
    runs: int = 50
    min_time_s: float = 1.0
    max_time_s: float = 150.0
    threads: int | None = None
    provider: str | None = None
    graph_optimization: str = "all"
    extra: dict[str, Any] = field(default_factory=dict)
    seed: int = 0
    energy: str = "auto"  # auto | none | modeled | rapl | odpm | hwmon | battery
    energy_command: list[str] | None = None
    idle_s: float = 1.0
    target: str = "local"
    sysfs_root: str = "/"
    targets_dir: str | None = None
    sweep: dict[str, int] = field(default_factory=dict)  # this run's point of a sweep (edgekit.bench.sweep)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class BenchJob:
    """One artifact to benchmark. `inputs` are the feeds' specs (seeded random data is made from them)."""

    model: str
    format: str
    precision: str
    path: Path
    inputs: list[TensorSpec]
    runtime: str
    sha256: str | None = None
    size_bytes: int | None = None
    skip_reason: str | None = None  # set when there is nothing to run (e.g. the export of this artifact failed)
    error: str | None = None  # set when the artifact cannot be benchmarked (corrupt file, bad inputs): one line
    trusted_sha256: str | None = None  # torch .pt2: the hash a manifest edgekit wrote vouches for (or --trust)
    artifact: Artifact | None = None  # the manifest's record of this file (with its parity), when one lists it

    def describe(self) -> str:
        return f"{self.model} {self.format}/{self.precision}"

    @property
    def parity(self) -> ParityReport | None:
        """The export's parity record of this very file (None when no manifest listed it, or it listed another
        build: a different hash)."""
        art = self.artifact
        if art is None or art.parity is None or (art.sha256 and self.sha256 and art.sha256 != self.sha256):
            return None
        return art.parity


@dataclass
class MemoryRecord:
    """Memory of the benchmark child, bytes. peak_rss_inference is the RSS high-water mark during inference
    (`peak_rss_scope` = "inference" when the mark could be reset after loading, else "process")."""

    rss_before_load: int
    rss_after_load: int
    peak_rss_load: int
    peak_rss_inference: int
    peak_rss_scope: str
    rss_after_runs: int
    uss_before_load: int | None = None
    uss_after_load: int | None = None
    uss_after_runs: int | None = None
    provenance: str = "measured"

    @property
    def model_rss(self) -> int:
        """RSS the loaded model added over the child's baseline, bytes."""
        return self.rss_after_load - self.rss_before_load

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> MemoryRecord:
        """Read a stored memory record; a figure it lacks stays None (never a made-up 0). Reads the v0 names
        (peak_rss_bytes, scope) too."""
        d = dict(d)
        d.setdefault("peak_rss_inference", d.get("peak_rss_bytes"))
        d.setdefault("peak_rss_scope", d.get("scope"))
        fields = cls.__dataclass_fields__
        return cls(**{k: d.get(k) for k in fields if k != "provenance"},  # type: ignore[arg-type]
                   provenance=str(d.get("provenance") or "measured"))


@dataclass
class BenchResult:
    """Everything measured for one artifact. Latencies in ms. status: ok | failed | killed | skipped."""

    model: str
    format: str
    precision: str
    artifact: str
    status: str
    provenance: str = "measured"
    error: str | None = None
    latency: LatencySummary | None = None
    load_ms: float | None = None
    first_ms: float | None = None
    samples_ms: list[float] = field(default_factory=list)
    warmup_ms: list[float] = field(default_factory=list)
    memory: MemoryRecord | None = None
    energy: EnergyResult | None = None
    warnings: list[BenchWarning | OtherWarning] = field(default_factory=list)
    env: EnvRecord | None = None
    runtime: dict[str, Any] = field(default_factory=dict)
    harness: dict[str, float] = field(default_factory=dict)
    config: dict[str, Any] = field(default_factory=dict)
    run_id: int | None = None
    size_bytes: int | None = None  # the artifact's size on disk
    inputs: list[dict[str, Any]] = field(default_factory=list)  # the inputs fed (name, shape, dtype)
    parity: ParityReport | None = None  # the export's parity vs PyTorch of this artifact (BenchJob.parity)
    runtime_name: str | None = None  # the runtime adapter asked for (BenchJob.runtime), before it describes itself
    artifact_sha256: str | None = None  # the bytes that ran (BenchJob.sha256)

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    def to_dict(self, samples: bool = True) -> dict[str, Any]:
        """JSON form; `samples=False` leaves the per-run latencies out (the store keeps them in `samples`)."""
        return {
            "model": self.model, "format": self.format, "precision": self.precision, "artifact": self.artifact,
            "status": self.status, "provenance": self.provenance, "error": self.error,
            "latency": self.latency.to_dict() if self.latency else None,
            "load_ms": self.load_ms, "first_ms": self.first_ms,
            **({"samples_ms": self.samples_ms, "warmup_ms": self.warmup_ms} if samples else {}),
            "memory": asdict(self.memory) if self.memory else None,
            "energy": self.energy.to_dict() if self.energy else None,
            "warnings": [w.to_dict() for w in self.warnings],
            "runtime": self.runtime, "harness": self.harness, "run_id": self.run_id,
            "env": self.env.to_dict() if self.env else None, "config": self.config,
            "size_bytes": self.size_bytes, "inputs": self.inputs,
            "parity": asdict(self.parity) if self.parity else None, "schema": ROW_SCHEMA,
        }

    def to_row(self) -> Row:
        """The run row of this result (kind "bench"): samples by phase, the result without them."""
        samples: dict[str, list[float]] = {}
        if self.samples_ms:
            samples = {"steady": list(self.samples_ms), "warmup": list(self.warmup_ms)}
            if self.first_ms is not None:
                samples["first"] = [self.first_ms]
        env = self.env.to_dict() if self.env else {}
        final = self.status != "running"
        return Row("bench", self.status, model=self.model, format=self.format, precision=self.precision,
                   target=str(self.config.get("target") or "local"),
                   runtime=self.runtime.get("runtime") or self.runtime_name, provenance=self.provenance,
                   artifact_path=self.artifact or None,
                   artifact_sha256=self.artifact_sha256 or (self.env.artifact_sha256 if self.env else None),
                   env=env, config=self.config, result=self.to_dict(samples=False) if final else None,
                   error=self.error, samples=samples)

    @classmethod
    def from_row(cls, run: Any, samples: dict[str, list[float]] | None = None) -> BenchResult:
        """The BenchResult a stored run holds (`run`: an edgekit.store.RunRecord; `samples`: its latencies by
        phase, ms). Reads schema 1 and the rows written before it (v0): a latency summary missing from the result
        is computed from the steady samples; a figure neither holds stays NaN/None."""
        res = run.result or {}
        samples = samples or {}
        out = cls(model=run.model or res.get("model") or "?", format=run.format or res.get("format") or "?",
                  precision=run.precision or res.get("precision") or "?",
                  artifact=run.artifact_path or res.get("artifact") or "", status=run.status,
                  provenance=run.provenance or res.get("provenance") or "unlabelled", error=run.error,
                  run_id=run.id, config=dict(run.config or res.get("config") or {}),
                  runtime=dict(res["runtime"]) if isinstance(res.get("runtime"), dict) else {},
                  runtime_name=run.runtime, artifact_sha256=run.artifact_sha256,
                  load_ms=res.get("load_ms"), first_ms=res.get("first_ms"), size_bytes=res.get("size_bytes"),
                  harness=dict(res.get("harness") or {}), inputs=list(res.get("inputs") or []))
        out.config.setdefault("target", run.target or "local")
        out.samples_ms = list(samples.get("steady", []))
        out.warmup_ms = list(samples.get("warmup", []))
        if isinstance(res.get("latency"), dict) and res["latency"]:
            out.latency = latency_from_dict(res["latency"])
        elif out.samples_ms:
            out.latency = summarize(out.samples_ms)
        if isinstance(res.get("memory"), dict) and res["memory"]:
            out.memory = MemoryRecord.from_dict({**res["memory"],
                                                 "provenance": res["memory"].get("provenance") or out.provenance})
        if isinstance(res.get("energy"), dict) and res["energy"].get("provenance"):
            en = res["energy"]
            out.energy = EnergyResult(**{**{k: None for k in EnergyResult.__dataclass_fields__}, "details": {},
                                         **{k: v for k, v in en.items() if k in EnergyResult.__dataclass_fields__}})
        out.warnings = [_warning(w) for w in res.get("warnings") or []]
        env = run.env or res.get("env") or {}
        if env:
            out.env = env_from_dict(env)
        if isinstance(res.get("parity"), dict):
            out.parity = _parity_from_dict(res["parity"])
        return out


def latency_from_dict(d: dict[str, Any]) -> LatencySummary:
    """A stored latency summary; figures it lacks are NaN (shown as missing, never as 0)."""
    nan = float("nan")
    ci = d.get("ci_median")
    ci_t = (float(ci[0]) if ci[0] is not None else nan, float(ci[1]) if ci[1] is not None else nan) \
        if isinstance(ci, list | tuple) and len(ci) == 2 else (nan, nan)
    values = {k: d.get(k) for k in LatencySummary.__dataclass_fields__ if k != "ci_median"}
    return LatencySummary(**{k: (nan if v is None else v) for k, v in values.items()}, ci_median=ci_t)


@dataclass(frozen=True)
class OtherWarning:
    """A stored warning of a kind this edgekit does not know (a newer edgekit's, or plain text): kept as written."""

    kind: str
    detail: str

    def to_dict(self) -> dict[str, str]:
        return {"kind": self.kind, "detail": self.detail}


def _warning(w: Any) -> BenchWarning | OtherWarning:
    if not isinstance(w, dict):
        return OtherWarning("", str(w))
    try:
        return BenchWarning(NoiseWarning(w.get("kind")), str(w.get("detail") or ""))
    except ValueError:
        return OtherWarning(str(w.get("kind")), str(w.get("detail") or ""))


def env_from_dict(d: dict[str, Any]) -> EnvRecord:
    """A stored environment record; a fact it does not hold stays None (not recorded), never a made-up value."""
    fields = EnvRecord.__dataclass_fields__
    base: dict[str, Any] = {k: None for k in ("host_os", "kernel", "machine", "cpu_model", "cpu_count",
                                              "memory_total_bytes", "python", "numpy", "edgekit_version")}
    return EnvRecord(**{**base, "cpus_used": [], **{k: v for k, v in d.items() if k in fields}})


def _parity_from_dict(d: dict[str, Any]) -> ParityReport:
    known = ParityReport.__dataclass_fields__
    return ParityReport(**{"verdict": "unknown", **{k: v for k, v in d.items() if k in known}})


def _child_command() -> list[str]:
    return [sys.executable, "-m", "edgekit.bench.child"]


def _signal_line(rc: int, phase: str) -> tuple[str, str]:
    try:
        name = signal.Signals(-rc).name
    except ValueError:
        name = f"signal {-rc}"
    where = {"load": "while loading the model", "first": "during the first inference", "warmup": "during warm-up",
             "timed": "during the timed runs", "idle": "while measuring idle power"}.get(phase, f"in phase {phase}")
    if -rc == signal.SIGKILL:
        return (f"the benchmark process was killed ({name}) {where}; the out-of-memory killer is the usual cause "
                "(see `dmesg`)", "free memory or benchmark a smaller model; runs finished before it are stored")
    return (f"the benchmark process died from {name} {where}",
            "the runtime crashed on this artifact: re-export it, or try another --threads/--provider")


def run_child(job: dict[str, Any], on_event: EventHandler | None = None) -> tuple[str, dict[str, Any], str]:
    """Run one child with `job`; returns (status, payload, stderr tail). status: ok | error | skipped | killed |
    crashed. Every event is passed to `on_event` as it arrives (the CLI draws its progress bar from them)."""
    with tempfile.TemporaryFile("w+") as err:
        proc = subprocess.Popen(_child_command(), stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=err,
                                text=True, bufsize=1)
        assert proc.stdin is not None and proc.stdout is not None
        final: tuple[str, dict[str, Any]] | None = None
        phase = "start"
        try:
            proc.stdin.write(json.dumps(job, default=str))
            proc.stdin.close()
        except BrokenPipeError:
            pass
        try:
            for line in proc.stdout:
                try:
                    event = json.loads(line)
                except json.JSONDecodeError:
                    continue
                event.setdefault("pid", proc.pid)
                if event.get("event") == "phase":
                    phase = event.get("phase", phase)
                if on_event is not None:
                    on_event(event)
                if event.get("event") in ("result", "error", "skipped"):
                    final = (event["event"], event)
            rc = proc.wait()
        except BaseException:
            proc.kill()
            proc.wait()
            raise
        err.seek(0)
        tail = [ln for ln in err.read().splitlines() if ln.strip()][-5:]
    stderr_tail = "\n".join(tail)
    if final is not None and final[0] in ("error", "skipped"):
        return final[0], final[1], stderr_tail
    if rc < 0:
        problem, fix = _signal_line(rc, phase)
        return "killed", {"problem": problem, "fix": fix, "phase": phase}, stderr_tail
    if final is None or rc != 0:
        last = tail[-1] if tail else "no output"
        return "crashed", {"problem": f"the benchmark process exited with code {rc} {('in phase ' + phase)} "
                                      f"without a result ({last[:200]})",
                           "fix": "run with --debug to see its output"}, stderr_tail
    return "ok", final[1], stderr_tail


def child_job(job: BenchJob, config: BenchConfig, energy_spec: dict[str, Any] | None, cpus: list[int]) -> dict:
    return {
        "path": str(job.path), "format": job.format, "runtime": job.runtime,
        "inputs": [s.to_dict() for s in job.inputs], "seed": config.seed,
        "threads": config.threads, "provider": config.provider, "graph_optimization": config.graph_optimization,
        "extra": config.extra, "warmup": config.warmup, "runs": config.runs, "min_time_s": config.min_time_s,
        "max_time_s": config.max_time_s, "energy": energy_spec, "idle_s": config.idle_s,
        "sysfs_root": config.sysfs_root, "cpus": cpus, "trusted_sha256": job.trusted_sha256,
    }


def energy_spec_for(config: BenchConfig) -> tuple[dict[str, Any] | None, list[str]]:
    """The probe the child should read (as a JSON spec), and why others were not used."""
    if config.energy_command:
        from edgekit.bench.energy import CommandProbe

        probe = CommandProbe(config.energy_command)
        ok, why = probe.available()
        if not ok:
            raise EdgekitError(f"the energy command does not work ({why})",
                               'make it print one JSON line {"energy_j": J} or {"power_w": W}')
        return probe.spec(), []
    probe, reasons = detect_probe(Path(config.sysfs_root), config.energy)
    return (probe.spec() if probe else None), reasons


def run_benchmark(job: BenchJob, config: BenchConfig, *, store: Any = None, group: str | None = None,
                  on_event: EventHandler | None = None, env: EnvRecord | None = None,
                  target_profile: Any = None) -> BenchResult:
    """Benchmark one artifact in a child process. With a store, the run is recorded as `running` first and
    finished (result + samples, or error) the moment the child is done; Ctrl-C / SIGTERM mark it `interrupted`
    (edgekit/lifecycle.py), and a final write the store cannot take is kept in a fallback file (edgekit/store.py).
    `target_profile`: the TargetProfile already loaded for `config.target` (its [power] models the energy when no
    counter is readable); without it, the target is loaded by name."""
    from edgekit.lifecycle import interruptible

    with interruptible(store):
        return _run_benchmark(job, config, store=store, group=group, on_event=on_event, env=env,
                              target_profile=target_profile)


def _run_benchmark(job: BenchJob, config: BenchConfig, *, store: Any, group: str | None,
                   on_event: EventHandler | None, env: EnvRecord | None, target_profile: Any = None) -> BenchResult:
    from edgekit.runtime import get_runtime

    env = env or collect_env(Path(config.sysfs_root), config.target)
    env.artifact_sha256 = job.sha256
    result = BenchResult(model=job.model, format=job.format, precision=job.precision, artifact=str(job.path),
                         status="running", config=config.to_dict(), env=env, size_bytes=job.size_bytes,
                         inputs=[{"name": s.name, "shape": list(s.shape), "dtype": s.dtype} for s in job.inputs],
                         parity=job.parity, runtime_name=job.runtime, artifact_sha256=job.sha256)
    if store is not None:
        log_bench(store, result, group)  # inserted as `running` before the work starts

    def finish(status: str, error: str | None = None) -> BenchResult:
        result.status, result.error = status, error
        if store is not None and result.run_id is not None:
            log_bench(store, result)  # one write: status, result, samples
        return result

    if job.skip_reason:
        return finish("skipped", job.skip_reason)
    if job.error:
        return finish("failed", job.error)
    runtime = get_runtime(job.runtime)
    if not runtime.available():
        if job.runtime == "coreml":
            return finish("skipped", "CoreML runs only on macOS — this host cannot execute .mlpackage models")
        from edgekit.bench.inputs import RUNTIME_PACKAGES

        pkg = RUNTIME_PACKAGES.get(job.runtime, job.runtime)
        return finish("failed", EdgekitError(f"runtime {job.runtime} is not installed, so {job.describe()} cannot "
                                             "run", f"pip install {pkg}  (or run `make setup`)").one_line())
    try:
        spec, reasons = energy_spec_for(config)
        profile = None
        if spec is None and config.energy != "none":
            cores = config.threads or len(env.cpus_used) or 1
            profile = power_profile(target_profile or config.target, cores,
                                    Path(config.targets_dir) if config.targets_dir else None)
    except EdgekitError as exc:
        return finish("failed", exc.one_line())
    status, payload, stderr_tail = run_child(child_job(job, config, spec, env.cpus_used), on_event)
    if status == "skipped":
        return finish("skipped", payload["reason"])
    if status != "ok":
        line = EdgekitError(payload["problem"], payload.get("fix", "")).one_line()
        return finish("killed" if status == "killed" else "failed", line)

    result.load_ms, result.first_ms = payload["load_ms"], payload["first_ms"]
    result.samples_ms, result.warmup_ms = payload["samples_ms"], payload["warmup_ms"]
    result.memory = MemoryRecord(**payload["memory"])
    result.runtime = dict(payload.get("describe") or {})
    result.harness = {**payload["harness"], "timed_wall_s": payload["timed_wall_s"]}
    env.runtime = result.runtime.get("runtime")
    env.runtime_version = result.runtime.get("version")
    env.threads = result.runtime.get("threads")
    env.provider = result.runtime.get("provider")
    env.runtime_details = result.runtime
    summary = summarize(result.samples_ms, seed=config.seed)
    result.latency = summary
    snaps = payload.get("snapshots") or {}
    result.warnings = noise_warnings(result.samples_ms, summary, ProbeSnapshot.from_dict(snaps.get("before")),
                                     ProbeSnapshot.from_dict(snaps.get("after")), requested_runs=config.runs)
    if payload.get("energy"):
        result.energy = EnergyResult.from_dict(payload["energy"])
    elif profile is not None:
        result.energy = modeled_energy(summary.mean, summary.std, summary.n, profile,
                                       why="; ".join(reasons[:1]) if reasons else "")
    return finish("ok")


def log_bench(store: Any, result: BenchResult, group: str | None = None) -> int:
    """The one writer of benchmark runs (kind "bench"; local, remote and farm): a running result without a run id is
    inserted as `running`, a finished one completes its row, or is written whole when it has none (edgekit.runlog).
    Returns the run id."""
    return log(store, result, group)


def new_group() -> str:
    """An id for the runs of one command invocation (time-ordered, unique enough for one store)."""
    import os

    return f"{time.strftime('%Y%m%dT%H%M%S')}-{os.getpid()}"
