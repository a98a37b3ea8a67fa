"""Benchmark on a named target: through its transport when a device is reachable, under qemu with `emulate`, or —
when no device is configured — as `predicted` figures from the calibrated roofline. The library entry points behind
`edgekit bench --target T`, `edgekit predict` and `edgekit targets check`.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edgekit.errors import DeviceUnreachableError, EdgekitError
from edgekit.targets.profile import TargetProfile, TransportSpec, load_target
from edgekit.targets.transports.base import CheckReport, DeviceDisconnectedError, Transport


@dataclass
class DeviceOptions:
    """How to reach the device, overriding the profile's [transport] defaults (None = keep the profile's)."""

    host: str | None = None
    user: str | None = None
    port: int | None = None
    known_hosts: str | None = None
    identity_file: str | None = None
    trust_on_first_use: bool = False
    serial: str | None = None
    python: str | None = None
    workdir: str | None = None
    timeout_s: float | None = None
    connect_timeout_s: float | None = None
    retries: int | None = None
    compute_units: str | None = None
    benchmark_binary: str | None = None
    command: list[str] | None = None
    emulate: bool = False
    retry_delay_s: float = 1.0

    def explicit(self) -> bool:
        """Whether the user named a device (then failing to reach it is an error, not a fallback)."""
        return bool(self.host or self.serial or self.command or self.emulate)


def transport_spec(profile: TargetProfile, options: DeviceOptions) -> TransportSpec:
    overrides = {k: v for k, v in {
        "host": options.host, "user": options.user, "port": options.port, "known_hosts": options.known_hosts,
        "identity_file": options.identity_file, "serial": options.serial, "python": options.python,
        "workdir": options.workdir, "timeout_s": options.timeout_s, "connect_timeout_s": options.connect_timeout_s,
        "retries": options.retries, "compute_units": options.compute_units,
        "benchmark_binary": options.benchmark_binary,
        "command": tuple(options.command) if options.command else None}.items() if v is not None}
    return dataclasses.replace(profile.transport, **overrides)


def make_transport(profile: TargetProfile, options: DeviceOptions | None = None) -> tuple[Transport | None, str]:
    """The transport for a target, or (None, why) when no device is configured or found (callers then predict).
    A device the user named explicitly that cannot be set up raises instead."""
    options = options or DeviceOptions()
    if options.emulate:
        from edgekit.targets.emulate import EmulateTransport

        return EmulateTransport(profile.name), ""
    spec = transport_spec(profile, options)
    kind = spec.kind
    if kind == "local":
        return None, "local"
    from edgekit.targets.transports import open_transport  # the registered kinds (built-ins and plugins)

    return open_transport(profile, spec, options)


def check_target(name: str, options: DeviceOptions | None = None, directory: Path | None = None) -> CheckReport:
    """Reach the device and report its runtime versions, or raise one error saying exactly why it cannot."""
    profile = load_target(name, directory)
    if profile.transport.kind == "local" and not (options and options.emulate):
        from edgekit.runtime import all_runtimes

        rts = {r.name: (r.version() if _available(r) else None) for r in all_runtimes().values()}
        import platform

        return CheckReport(target=name, transport="local", address="this machine",
                           host={"machine": platform.machine(), "platform": platform.platform(),
                                 "cpu_count": os.cpu_count()}, runtimes=rts)
    transport, why = make_transport(profile, options)
    if transport is None:
        from edgekit.targets.transports import get_transport_kind

        fix = get_transport_kind(profile.transport.kind).fix.replace("{path}", str(profile.path))
        raise EdgekitError(why if why.startswith("target ") else f"target {name}: {why}",
                           f"{fix}; `edgekit predict MODEL --target {name}` gives predicted figures without it")
    try:
        return transport.check()
    finally:
        transport.close()


def _available(runtime: Any) -> bool:
    try:
        return bool(runtime.available())
    except Exception:
        return False


# -- benchmarking on a target -----------------------------------------------------------------------------------

@dataclass
class TargetRun:
    """What `bench --target` produced. mode: local | measured | emulated | predicted."""

    target: str
    mode: str
    results: list[Any] = field(default_factory=list)  # BenchResult
    predictions: list[Any] = field(default_factory=list)  # Prediction
    notes: list[str] = field(default_factory=list)
    error: EdgekitError | None = None  # the device dropped out mid-way (results before it are kept)

    def to_dict(self) -> dict[str, Any]:
        return {"target": self.target, "mode": self.mode, "notes": self.notes,
                "error": self.error.one_line() if self.error else None,
                "results": [r.to_dict(samples=False) for r in self.results],
                "predictions": [p.to_dict() for p in self.predictions]}


def bench_on_target(jobs: list[Any], target: str, config: Any, options: DeviceOptions | None = None, *,
                    store: Any = None, group: str | None = None,
                    on_result: Callable[[Any], None] | None = None, directory: Path | None = None,
                    return_outputs: bool = False) -> TargetRun:
    """Benchmark BenchJobs on a target. Each result is stored the moment it exists; if the device drops out, the
    remaining jobs are recorded as failed with one line and the run stops (completed results are kept).

    - `local`: the bench engine's own child-process runner.
    - a reachable device (or `emulate`): the transport; figures labelled measured / emulated.
    - no device configured: predicted p50/p90 per job (the ONNX graph of the job, or its sibling in the manifest),
      with the calibration error, labelled predicted.
    """
    from edgekit.bench.runner import run_benchmark
    from edgekit.targets.results import failed_result, result_from_payload, start_result, store_result

    options = options or DeviceOptions()
    profile = load_target(target, directory)
    config = dataclasses.replace(config, target=profile.name)
    if profile.transport.kind == "local" and not options.emulate:
        run = TargetRun(target=profile.name, mode="local")
        for job in jobs:
            res = run_benchmark(job, config, store=store, group=group, target_profile=profile)
            run.results.append(res)
            if on_result:
                on_result(res)
        return run
    transport, why = make_transport(profile, options)
    if transport is None:
        run = TargetRun(target=profile.name, mode="predicted", notes=[f"{why} — figures below are predicted"])
        run.predictions, notes = predict_jobs(jobs, profile, store, log_to=store, group=group)
        run.notes += notes
        for pred in run.predictions:
            if on_result:
                on_result(pred)
        return run
    run = TargetRun(target=profile.name, mode=transport.provenance)
    try:
        for i, job in enumerate(jobs):
            started = None  # the job's row, inserted as `running` before the device works on it
            if job.skip_reason:
                res = failed_result(job, config, profile.name, transport.provenance, job.skip_reason, "skipped")
            else:
                started = start_result(store, job, config, profile.name, transport.provenance, group)
                try:
                    payload = transport.run_bench(job, config, return_outputs=return_outputs)
                    res = result_from_payload(job, config, payload, profile)
                    if return_outputs and payload.get("outputs") is not None:
                        res.runtime["outputs"] = payload["outputs"]
                except (DeviceDisconnectedError, DeviceUnreachableError) as exc:
                    if isinstance(exc, DeviceUnreachableError) and not run.results:
                        raise  # nothing ran: one clear error for the whole command
                    res = failed_result(job, config, profile.name, transport.provenance, exc.one_line(), "killed")
                    store_result(store, res, profile.name, group, started)
                    run.results.append(res)
                    run.error = exc
                    for later in jobs[i + 1:]:
                        rest = failed_result(later, config, profile.name, transport.provenance,
                                             "not run: the device dropped out earlier in this command", "skipped")
                        store_result(store, rest, profile.name, group)
                        run.results.append(rest)
                    if on_result:
                        on_result(res)
                    return run
                except EdgekitError as exc:  # this artifact failed on the device (agent error, crash, timeout)
                    res = failed_result(job, config, profile.name, transport.provenance, exc.one_line())
            store_result(store, res, profile.name, group, started)
            run.results.append(res)
            if on_result:
                on_result(res)
    finally:
        transport.close()
    return run


# -- predictions ------------------------------------------------------------------------------------------------

def onnx_graph_for(job: Any) -> Path | None:
    """The ONNX graph that describes a job's artifact (itself, or its manifest sibling of the same precision)."""
    from edgekit.targets.predictor import _onnx_for_run

    return _onnx_for_run(Path(job.path), job.precision)


def calibration_for(profile: TargetProfile, store: Any, exclude_model: str | None = None, fmt: str = "onnx") -> Any:
    """The target's calibration for one format from the store: per operator class when operator profiles of at
    least two models exist there (ONNX), else the roofline on the measured runs of that format (their own graphs).
    The p90/p50 ratio comes from the target's own measured runs only: no other machine's noise is borrowed."""
    from edgekit.targets.predictor import (
        calibrate,
        calibrate_from_profiles,
        profiled_samples_from_store,
        samples_from_store,
    )

    roof = roofline_for(profile)
    if fmt == "onnx" and profile.name == "local":  # the kernel-level model, once its sweep was measured here
        from edgekit.targets.predictor import calibrate_kernels

        kernel = calibrate_kernels(profile, store)
        if kernel is not None:
            return kernel
    if store is not None and fmt == "onnx":
        profiled = profiled_samples_from_store(store, profile.name, exclude_model=exclude_model)
        if len({s.cost.model.split(" ")[0] for s in profiled}) >= 2:
            cal = calibrate_from_profiles(profile, profiled, roof)
            if cal.p90_ratio is None:
                measured = samples_from_store(store, profile.name, exclude_model=exclude_model, fmt=fmt)
                ratios = sorted(s.p90_ms / s.p50_ms for s in measured if s.p90_ms and s.p50_ms > 0)
                if ratios:
                    cal.p90_ratio = ratios[len(ratios) // 2]
                    cal.p90_basis = f"median p90/p50 of {len(ratios)} measured runs on {profile.name}"
            return cal
    samples = samples_from_store(store, profile.name, exclude_model=exclude_model, fmt=fmt) if store is not None \
        else []
    if not samples:  # no measured run of this format: the profile's published latencies, when it has any
        from edgekit.targets.predictor import calibrate_from_priors, load_published

        published = load_published(profile)
        if published:
            return calibrate_from_priors(profile, published, roof)
    return calibrate(profile, samples, roof)


def roofline_for(profile: TargetProfile) -> Any:
    from edgekit.targets.predictor import Roofline, measure_bandwidth_gbs

    bw = profile.memory_bandwidth_gbs
    if bw is None and profile.name == "local":
        bw = measure_bandwidth_gbs()
    return Roofline.of(profile, bw)


def predict_jobs(jobs: list[Any], profile: TargetProfile, store: Any = None, *, log_to: Any = None,
                 group: str | None = None) -> tuple[list[Any], list[str]]:
    """Predicted figures for each job, each from its own artifact's graph in its own format (ONNX, TFLite),
    calibrated on that format's runs on the target (in `store`); notes say, one line each, which jobs were refused
    and why (a format the target does not run, a format whose graph the predictor cannot read, a missing file).
    `log_to`: a store each prediction is recorded in (kind "predict", inserted as `running` before its graph is
    read, in run group `group`)."""
    from edgekit.targets.predictor import analyze_artifact, predict
    from edgekit.targets.results import PredictionRun, log_prediction

    roof = roofline_for(profile)
    cals: dict[str, Any] = {}
    preds, notes = [], []
    for job in jobs:
        if job.skip_reason or job.error:
            notes.append(f"{job.describe()}: not predicted ({job.skip_reason or job.error})")
            continue
        if profile.formats and job.format not in profile.formats:
            notes.append(f"{job.describe()}: not predicted — {profile.name} does not run {job.format} (its profile "
                         f"lists {', '.join(profile.formats)})")
            continue
        if job.format not in ("onnx", "tflite"):
            notes.append(f"{job.describe()}: not predicted — the predictor reads ONNX and TFLite graphs, not "
                         f"{job.format}")
            continue
        shapes = {s.name: s.shape for s in job.inputs}
        record = PredictionRun(job.model, job.format, job.precision, profile.name)
        if log_to is not None:
            log_prediction(log_to, record, group)
        try:
            cost = analyze_artifact(Path(job.path), job.format, shapes, job.model)
        except EdgekitError as exc:
            notes.append(f"{job.describe()}: not predicted — {exc.one_line()}")
            record.status, record.error = "failed", exc.one_line()
            if log_to is not None:
                log_prediction(log_to, record)
            continue
        if job.format not in cals:
            cals[job.format] = calibration_for(profile, store, fmt=job.format)
        pred = predict(cost, profile, cals[job.format], job.precision, roof)
        pred.model, pred.format = job.model, job.format
        preds.append(pred)
        record.status, record.prediction = "ok", pred
        if log_to is not None:
            log_prediction(log_to, record)
    return preds, notes
