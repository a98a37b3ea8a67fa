"""Turn a transport's result dict into the bench engine's BenchResult (same statistics, warnings and records as a
local run), and write it to the results store the moment it exists."""

from __future__ import annotations

from typing import Any

from edgekit.bench.energy import EnergyResult, PowerProfile, modeled_energy
from edgekit.bench.env import EnvRecord
from edgekit.bench.runner import BenchConfig, BenchJob, BenchResult, MemoryRecord
from edgekit.bench.stats import LatencySummary, noise_warnings, summarize
from edgekit.targets import agent as rules
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
                         env=env)
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


def store_result(store: Any, result: BenchResult, target: str, group: str | None) -> BenchResult:
    """Record a finished (or failed) remote result: one committed run row plus its samples."""
    if store is None:
        return result
    samples: dict[str, list[float]] = {}
    if result.samples_ms:
        samples = {"steady": result.samples_ms, "warmup": result.warmup_ms}
        if result.first_ms is not None:
            samples["first"] = [result.first_ms]
    # one write (row, samples, result); if the store cannot take it, the record is kept in a fallback file
    result.run_id = store.record_run(
        "bench", result.status, result=result.to_dict(samples=False), error=result.error, samples=samples,
        model=result.model, format=result.format, precision=result.precision, target=target,
        runtime=(result.runtime or {}).get("runtime"), provenance=result.provenance, artifact_path=result.artifact,
        artifact_sha256=result.env.artifact_sha256 if result.env else None,
        env=result.env.to_dict() if result.env else {}, config=result.config, group=group)
    return result


def failed_result(job: BenchJob, config: BenchConfig, target: str, provenance: str, error: str,
                  status: str = "failed") -> BenchResult:
    return BenchResult(model=job.model, format=job.format, precision=job.precision, artifact=str(job.path),
                       status=status, provenance=provenance, error=error,
                       config={**config.to_dict(), "target": target})
