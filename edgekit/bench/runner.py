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
from edgekit.bench.stats import BenchWarning, LatencySummary, ProbeSnapshot, noise_warnings, summarize
from edgekit.errors import EdgekitError
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

    def describe(self) -> str:
        return f"{self.model} {self.format}/{self.precision}"


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
    warnings: list[BenchWarning] = field(default_factory=list)
    env: EnvRecord | None = None
    runtime: dict[str, Any] = field(default_factory=dict)
    harness: dict[str, float] = field(default_factory=dict)
    config: dict[str, Any] = field(default_factory=dict)
    run_id: int | None = None
    size_bytes: int | None = None  # the artifact's size on disk
    inputs: list[dict[str, Any]] = field(default_factory=list)  # the inputs fed (name, shape, dtype)

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
        }


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
                         inputs=[{"name": s.name, "shape": list(s.shape), "dtype": s.dtype} for s in job.inputs])
    run_id = None
    if store is not None:
        run_id = store.start_run("bench", model=job.model, format=job.format, precision=job.precision,
                                 target=config.target, runtime=job.runtime, provenance="measured",
                                 artifact_path=str(job.path), artifact_sha256=job.sha256, env=env.to_dict(),
                                 config=config.to_dict(), group=group)
        result.run_id = run_id

    def finish(status: str, error: str | None = None) -> BenchResult:
        result.status, result.error = status, error
        if store is not None and run_id is not None:
            samples: dict[str, list[float]] = {}
            if result.samples_ms:
                samples = {"steady": result.samples_ms, "warmup": result.warmup_ms}
                if result.first_ms is not None:
                    samples["first"] = [result.first_ms]
            store.finish_run(run_id, status, result=result.to_dict(samples=False), error=error,  # one write
                             env=env.to_dict(), runtime=result.runtime.get("runtime"), samples=samples)
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


def new_group() -> str:
    """An id for the runs of one command invocation (time-ordered, unique enough for one store)."""
    import os

    return f"{time.strftime('%Y%m%dT%H%M%S')}-{os.getpid()}"
