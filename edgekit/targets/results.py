"""Turn a transport's result dict into the bench engine's BenchResult (same statistics, warnings and records as a
local run), and write it to the results store the moment it exists."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from edgekit.bench.energy import EnergyResult, PowerProfile, modeled_energy
from edgekit.bench.env import EnvRecord
from edgekit.bench.runner import BenchConfig, BenchJob, BenchResult, MemoryRecord, log_bench
from edgekit.bench.stats import LatencySummary, noise_warnings, summarize
from edgekit.runlog import ROW_SCHEMA, Row, log
from edgekit.targets import agent as rules
from edgekit.targets.predictor import Calibration, Prediction
from edgekit.targets.profile import TargetProfile
from edgekit.targets.transports.base import AgentProtocolError

# What every transport's result dict must hold before it becomes a BenchResult (the agent's rules, edgekit/targets/
# agent.py; fields not named here are the transport's own bookkeeping).
PAYLOAD = {"samples_ms": rules.POSITIVES, "warmup_ms": rules.POSITIVES, "load_ms": rules.NON_NEGATIVE,
           "first_ms": rules.POSITIVE, "timed_wall_s": rules.NON_NEGATIVE, "memory": rules.MEMORY,
           "host": rules.SCALARS, "describe": rules.SCALARS}


def env_from_host(host: dict[str, Any], target: str, describe: dict[str, Any], sha256: str | None) -> EnvRecord:
    """The environment record of a remote run, from the agent's host facts (never this machine's)."""
    cpu_count = int(host.get("cpu_count") or 0)
    return EnvRecord(
        host_os=str(host.get("platform", "")), kernel=str(host.get("release", "")),
        machine=str(host.get("machine", "")), cpu_model=str(host.get("cpu_model", "")), cpu_count=cpu_count,
        cpus_used=list(range(cpu_count)), memory_total_bytes=host.get("memory_total_bytes"),
        python=str(host.get("python", "")), numpy=str(host.get("numpy", "")),
        edgekit_version=f"agent {host.get('agent', '?')}", runtime=describe.get("runtime"),
        runtime_version=describe.get("version"), threads=describe.get("threads"), provider=describe.get("provider"),
        runtime_details=dict(describe), artifact_sha256=sha256, target=target)


def power_of(profile: TargetProfile) -> PowerProfile:
    src = profile.power.source or profile.sources.get("power.active_w") or profile.sources.get("power", "")
    return PowerProfile(profile.power.idle_w, profile.power.active_w, f"{profile.name} profile [power]",
                        f"active {profile.power.active_w:g} W - idle {profile.power.idle_w:g} W from the {profile.name} "
                        f"profile (source: {src})")


def result_from_payload(job: BenchJob, config: BenchConfig, payload: dict[str, Any], profile: TargetProfile,
                        ) -> BenchResult:
    """A BenchResult from an agent/transport result dict. Provenance comes from the payload (measured | emulated);
    energy is the payload's measured figure when the device had a counter, else modeled from the profile's power
    (never for emulated runs: their timings say nothing about the device's energy). An impossible value (a latency
    that is not a finite number > 0, bytes that are not whole numbers) raises AgentProtocolError naming the field."""
    problem = rules.fields_problem(payload, PAYLOAD, strict=False)
    if problem:
        raise AgentProtocolError(f"target {profile.name}: the device's result is not valid: {problem}", rules.BUG_FIX)
    provenance = str(payload.get("provenance", "measured"))
    describe = dict(payload.get("describe") or {})
    env = env_from_host(dict(payload.get("host") or {}), profile.name, describe, job.sha256)
    result = BenchResult(model=job.model, format=job.format, precision=job.precision, artifact=str(job.path),
                         status="ok", provenance=provenance, config={**config.to_dict(), "target": profile.name},
                         env=env, parity=job.parity, runtime_name=job.runtime, artifact_sha256=job.sha256)
    result.load_ms = payload.get("load_ms")
    result.first_ms = payload.get("first_ms")
    result.samples_ms = [float(x) for x in payload.get("samples_ms") or []]
    result.warmup_ms = [float(x) for x in payload.get("warmup_ms") or []]
    mem = payload.get("memory")
    if mem:
        keys = ("rss_before_load", "rss_after_load", "peak_rss_load", "peak_rss_inference", "peak_rss_scope",
                "rss_after_runs")
        result.memory = MemoryRecord(**{k: mem.get(k) for k in keys}, provenance=provenance)
    result.runtime = describe
    result.harness = {"timed_wall_s": payload.get("timed_wall_s"),
                      **{k: v for k, v in (payload.get("transport") or {}).items() if isinstance(v, int | float)}}
    result.runtime["transport"] = {k: v for k, v in (payload.get("transport") or {}).items()
                                   if isinstance(v, str)}
    if payload.get("parity"):
        result.runtime["parity"] = payload["parity"]
    if payload.get("benchmark_model"):
        result.runtime["benchmark_model"] = payload["benchmark_model"]
    if result.samples_ms:
        result.latency = summarize(result.samples_ms, seed=config.seed)
        result.warnings = noise_warnings(result.samples_ms, result.latency,
                                         requested_runs=payload.get("requested_runs", config.runs))
    elif payload.get("latency_summary"):  # a device tool that prints aggregates only (TFLite benchmark_model)
        result.latency = LatencySummary.from_dict(payload["latency_summary"])
    else:
        result.status, result.error = "failed", "the device returned no latency samples"
        return result
    if payload.get("energy"):
        result.energy = EnergyResult.from_dict(payload["energy"])
    elif provenance == "measured" and config.energy != "none":
        lat = result.latency
        result.energy = modeled_energy(lat.mean, lat.std or 0.0, lat.n, power_of(profile),
                                       why="no energy counter read on the device")
    return result


def start_result(store: Any, job: BenchJob, config: BenchConfig, target: str, provenance: str,
                 group: str | None) -> BenchResult | None:
    """The job's run, inserted as `running` before the device works on it (None without a store)."""
    if store is None:
        return None
    started = _result(job, config, target, provenance, "running")
    log_bench(store, started, group)
    return started


def store_result(store: Any, result: BenchResult, target: str, group: str | None,
                 started: BenchResult | None = None) -> BenchResult:
    """Record a finished (or failed) remote result: it completes the `running` row of `started` (start_result), or,
    for a job that never started (skipped), is written whole — one committed write with its samples (a write the
    store cannot take is kept in a fallback file)."""
    if store is None:
        return result
    result.config.setdefault("target", target)
    result.run_id = started.run_id if started is not None else None
    log_bench(store, result, group)
    return result


def _result(job: BenchJob, config: BenchConfig, target: str, provenance: str, status: str,
            error: str | None = None) -> BenchResult:
    return BenchResult(model=job.model, format=job.format, precision=job.precision, artifact=str(job.path),
                       status=status, provenance=provenance, error=error,
                       config={**config.to_dict(), "target": target}, parity=job.parity, runtime_name=job.runtime,
                       artifact_sha256=job.sha256)


def failed_result(job: BenchJob, config: BenchConfig, target: str, provenance: str, error: str,
                  status: str = "failed") -> BenchResult:
    return _result(job, config, target, provenance, status, error)


# -- predictions ------------------------------------------------------------------------------------------------

@dataclass
class PredictionRun:
    """One cost-model prediction as the store keeps it (kind "predict", provenance `predicted`): inserted as
    `running` before the artifact's graph is read, finished with its Prediction (latencies in ms) or one error line."""

    model: str
    format: str
    precision: str
    target: str
    status: str = "running"
    prediction: Prediction | None = None
    error: str | None = None
    run_id: int | None = None

    def to_row(self) -> Row:
        result = None
        if self.prediction is not None:
            result = {**self.prediction.to_dict(), "schema": ROW_SCHEMA}
        elif self.status != "running":
            result = {"schema": ROW_SCHEMA}
        return Row("predict", self.status, model=self.model, format=self.format, precision=self.precision,
                   target=self.target, provenance="predicted", config={"target": self.target}, result=result,
                   error=self.error)

    @classmethod
    def from_row(cls, run: Any) -> PredictionRun:
        """The prediction a stored run holds (schema 1, and v0 rows: a bare Prediction.to_dict())."""
        res = run.result or {}
        out = cls(model=run.model or res.get("model") or "?", format=run.format or res.get("format") or "?",
                  precision=run.precision or res.get("precision") or "?", target=run.target or res.get("target") or "?",
                  status=run.status, error=run.error, run_id=run.id)
        if res.get("p50_ms") is not None:
            cal = dict(res.get("calibration") or {})
            cal_fields = Calibration.__dataclass_fields__
            calibration = Calibration(**{"target": out.target, "weights": [], "n_samples": 0, "basis": "",
                                         **{k: v for k, v in cal.items() if k in cal_fields}})
            fields = Prediction.__dataclass_fields__
            base = {"model": out.model, "target": out.target, "precision": out.precision, "p90_ms": None,
                    "flops": 0.0, "bytes": 0.0, "kernels": 0, "format": out.format}
            out.prediction = Prediction(**{**base, **{k: v for k, v in res.items() if k in fields and k not in
                                                      ("calibration", "format")}, "calibration": calibration})
        return out


def log_prediction(store: Any, record: PredictionRun, group: str | None = None) -> int:
    """The one writer of predictions (kind "predict"): running first, then finished (edgekit.runlog)."""
    return log(store, record, group)
