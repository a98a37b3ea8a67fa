"""`edgekit farm run`: the cells of a matrix measured on a lab of devices, with Ray as the engine.

- Each device is a Ray custom resource (`{"rpi4-01": 1}`): every cell is a Ray task that holds its device's
  resource, so a device runs one job at a time — also across farm runs sharing a cluster. A local instance
  (`ray.init()`) declares the lab's resources itself; on an existing cluster (`--address`) the nodes advertise
  them (`ray start --resources '{"rpi4-01": 1}'` on the host that reaches the device).
- The driver (this process) hands a free device the next cell it serves (by name, profile or label), so cells
  spread over equal devices. A cell whose device fails (unreachable, dropped mid-run, the worker crashed) goes
  back to the queue, up to `retries` attempts, on that device after `retry_delay_s` or on another that serves it;
  a device that fails `retries` times in a row gets no more cells. A cell that runs but fails on its own (a bad
  artifact) is a result, not a device failure: stored as failed, not retried.
- Results stream into the store: the driver inserts a cell's run `running` when it first dispatches the cell and
  finishes that same row the moment its task returns (workers on other hosts never open the store); a retry on
  another device keeps the row, and the finish writes the device, attempt, worker host, target and artifact known
  only then. The run's config holds `farm: {lab, cell, device, attempt, worker_host}` and its group is the farm
  run's: resuming the group (`--group`, `--resume`) skips every cell that has a run with status ok, skipped or
  failed — a finished cell is never repeated; cells killed by a device, interrupted or never run are run.
- Ctrl-C / SIGTERM: tasks in flight are cancelled and their rows marked `interrupted` (the store's own exit
  handling, edgekit.lifecycle), and the closing line says how to resume. A driver killed outright leaves its
  in-flight cells `running`; a resume runs them again.
"""

from __future__ import annotations

import json
import platform
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from edgekit.errors import EdgekitError
from edgekit.farm.lab import Device, FarmCell, Lab, device_options

INSTALL_HINT = "pip install 'edgekit[farm]'  (installs ray)"
DONE = ("ok", "skipped", "failed")  # a cell with such a run is finished: resuming never repeats it
EventHandler = Callable[[dict[str, Any]], None]


def import_ray() -> Any:
    try:
        import ray
    except ImportError as exc:
        raise EdgekitError("`edgekit farm run` needs Ray, which is not installed", INSTALL_HINT) from exc
    return ray


# -- the worker side: one cell on one device ------------------------------------------------------------------------

def run_cell(cell: dict[str, Any], device: dict[str, Any], bench: dict[str, Any]) -> dict[str, Any]:
    """Measure one cell on one device (runs in a Ray worker on the host that holds the device's resource). Returns
    the record for the driver to store; `outcome` is ok | failed | skipped, or `device` when the device failed
    (unreachable, dropped, the benchmark killed) and the cell should be tried again."""
    from edgekit.bench.jobs import resolve_jobs
    from edgekit.bench.runner import BenchConfig, run_benchmark
    from edgekit.errors import DeviceUnreachableError

    t0 = time.monotonic()
    dev = Device(**{**device, "labels": tuple(device.get("labels") or ())})
    out: dict[str, Any] = {"host": platform.node(), "device": dev.name}
    config = BenchConfig(**bench)
    try:
        jobs = resolve_jobs(cell["model"], [cell["format"]], [cell["precision"]])
    except EdgekitError as exc:  # the model or artifact itself: not the device's fault
        return {**out, "outcome": "failed", "error": exc.one_line(), "wall_s": time.monotonic() - t0}
    job = jobs[0]
    try:
        if dev.transport == "local":  # this host is the device: its profile's [power] when it has one
            from dataclasses import replace

            res = run_benchmark(job, replace(config, target=dev.profile))
        else:
            from edgekit.targets.remote import DeviceOptions, bench_on_target

            options = DeviceOptions(**device_options(dev), retry_delay_s=0.5)
            run = bench_on_target([job], dev.profile, config, options)
            if run.mode == "predicted":
                return {**out, "outcome": "device", "wall_s": time.monotonic() - t0,
                        "error": f"device {dev.name} is not configured: {'; '.join(run.notes)}"}
            res = run.results[0]
            if run.error is not None:
                res.status = "killed"
    except DeviceUnreachableError as exc:
        return {**out, "outcome": "device", "error": exc.one_line(), "wall_s": time.monotonic() - t0}
    samples: dict[str, list[float]] = {}
    if res.samples_ms:
        samples = {"steady": res.samples_ms, "warmup": res.warmup_ms}
        if res.first_ms is not None:
            samples["first"] = [res.first_ms]
    outcome = "device" if res.status in ("killed", "interrupted") else res.status
    return {**out, "outcome": outcome, "status": res.status, "error": res.error, "samples": samples,
            "result": res.to_dict(samples=False), "provenance": res.provenance,
            "runtime": (res.runtime or {}).get("runtime"), "artifact_path": res.artifact,
            "artifact_sha256": res.env.artifact_sha256 if res.env else job.sha256,
            "env": res.env.to_dict() if res.env else {}, "config": res.config, "wall_s": time.monotonic() - t0}


# -- the driver ---------------------------------------------------------------------------------------------------

@dataclass
class DeviceState:
    device: Device
    done: int = 0
    failed: int = 0
    retried: int = 0
    running: str | None = None  # the cell key in flight
    busy_s: float = 0.0
    fails_in_a_row: int = 0
    down: str | None = None  # why it gets no more cells
    free_at: float = 0.0  # monotonic time before which it gets no work (after a failure)

    def to_dict(self) -> dict[str, Any]:
        return {"device": self.device.name, "profile": self.device.profile, "transport": self.device.transport,
                "done": self.done, "failed": self.failed, "retried": self.retried, "busy_s": round(self.busy_s, 3),
                "down": self.down}


@dataclass
class FarmResult:
    group: str
    store: str
    cells: int
    skipped_done: list[str] = field(default_factory=list)  # finished before this invocation
    completed: dict[str, int] = field(default_factory=dict)  # cell -> run id (this invocation)
    failed: dict[str, str] = field(default_factory=dict)  # cell -> error (stored as failed: the cell's own fault)
    unfinished: dict[str, str] = field(default_factory=dict)  # cell -> why (device failures, no device left)
    devices: dict[str, DeviceState] = field(default_factory=dict)
    timeline: list[dict[str, Any]] = field(default_factory=list)  # {cell, device, outcome, start_s, end_s}
    wall_s: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {"group": self.group, "store": self.store, "cells": self.cells,
                "already_done": self.skipped_done, "completed": self.completed, "failed": self.failed,
                "unfinished": self.unfinished, "devices": [d.to_dict() for d in self.devices.values()],
                "timeline": self.timeline, "wall_s": round(self.wall_s, 3)}


def done_cells(store: Any, group: str) -> dict[str, int]:
    """{cell key: run id} of the group's finished cells (a run with status ok / skipped / failed)."""
    out: dict[str, int] = {}
    for run in store.list_runs(group=group):
        farm = (run.config or {}).get("farm") or {}
        if farm.get("cell") and run.status in DONE:
            out.setdefault(farm["cell"], run.id)
    return out


def latest_group(store: Any, lab: str) -> str | None:
    """The newest farm group of this lab in the store (for --resume)."""
    for run in store.list_runs(kind="bench"):
        farm = (run.config or {}).get("farm") or {}
        if farm.get("lab") == lab and run.group:
            return run.group
    return None


def _connect(ray: Any, lab: Lab, address: str | None) -> tuple[bool, list[str]]:
    """ray.init, keeping this process's SIGINT/SIGTERM handlers (Ray's core installs its own, which would end the
    driver without the closing line)."""
    import signal

    saved = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        return _init(ray, lab, address)
    finally:
        for sig, handler in saved.items():
            if handler is not None:
                try:
                    signal.signal(sig, handler)
                except ValueError:  # not the main thread
                    pass


def _init(ray: Any, lab: Lab, address: str | None) -> tuple[bool, list[str]]:
    """ray.init: a local instance declaring the lab's devices, or the cluster at `address`. Returns (started a
    local instance, devices the cluster does not advertise)."""
    import logging

    if address:
        try:
            ray.init(address=address, logging_level=logging.ERROR, log_to_driver=False)
        except Exception as exc:  # ConnectionError, RuntimeError, ... (Ray's own)
            raise EdgekitError(f"cannot connect to the Ray cluster at {address} ({str(exc).splitlines()[0]})",
                               "start one with `ray start --head` and pass its address (host:6379), or drop "
                               "--address for a local instance") from exc
        have = ray.cluster_resources()
        return False, [d.name for d in lab.devices if have.get(d.name, 0) < 1]
    import os

    ray.init(num_cpus=os.cpu_count() or 1, resources={d.name: 1 for d in lab.devices}, include_dashboard=False,
             logging_level=logging.ERROR, log_to_driver=False)
    return True, []


def run_farm(lab: Lab, cells: list[FarmCell], bench: dict[str, Any], store: Any, group: str, *,
             address: str | None = None, on_event: EventHandler | None = None) -> FarmResult:
    """Measure every cell not yet finished in `group`; each result is stored the moment its task returns."""
    ray = import_ray()
    emit = on_event or (lambda ev: None)
    t_start = time.monotonic()
    result = FarmResult(group=group, store=str(store.path), cells=len(cells),
                        devices={d.name: DeviceState(d) for d in lab.devices})
    finished = done_cells(store, group)
    result.skipped_done = [c.key for c in cells if c.key in finished]
    pending = deque(c for c in cells if c.key not in finished)
    emit({"event": "start", "group": group, "cells": len(cells), "done_before": len(result.skipped_done),
          "to_run": len(pending)})
    if not pending:
        return result
    started, missing = _connect(ray, lab, address)
    states = result.devices
    for name in missing:
        states[name].down = (f"no node of the Ray cluster advertises the resource {name!r} (start one with "
                             f"`ray start --address ADDRESS --resources '{{\"{name}\": 1}}'`)")
        emit({"event": "device_down", "device": name, "error": states[name].down})
    remote = ray.remote(run_cell)
    attempts: dict[str, int] = {}
    rows: dict[str, int] = {}  # cell -> the run id inserted `running` at its first dispatch
    inflight: dict[Any, tuple[FarmCell, str, float]] = {}
    try:
        while pending or inflight:
            now = time.monotonic()
            for st in states.values():  # hand every free device the next cell it serves
                if st.running or st.down or st.free_at > now:
                    continue
                cell = next((c for c in pending if st.device.serves(c.cell.target)), None)
                if cell is None:
                    continue
                pending.remove(cell)
                attempts[cell.key] = attempts.get(cell.key, 0) + 1
                if cell.key not in rows:  # `running` in the store before the work starts
                    rows[cell.key] = _start(store, lab, group, cell, st.device, attempts[cell.key])
                ref = remote.options(resources={st.device.name: 1}, num_cpus=0, max_retries=0,
                                     name=f"edgekit-cell {cell.key}").remote(cell.cell.__dict__, st.device.to_dict(),
                                                                             bench)
                inflight[ref] = (cell, st.device.name, now)
                st.running = cell.key
                emit({"event": "dispatch", "cell": cell.key, "device": st.device.name,
                      "attempt": attempts[cell.key]})
            orphans = [c for c in pending if not any(s.device.serves(c.cell.target) and not s.down
                                                     for s in states.values())]
            for c in orphans:  # no device left that serves it
                pending.remove(c)
                why = "; ".join(f"{s.device.name}: {s.down}" for s in states.values()
                                if s.device.serves(c.cell.target) and s.down)
                result.unfinished[c.key] = f"no working device serves target {c.cell.target!r} ({why})"
                if attempts.get(c.key):  # tried and failed on a device: stored `killed`, run again on resume
                    _store(store, lab, group, c, _last_device(lab, states, c), {"status": "killed", "error":
                           result.unfinished[c.key]}, attempts[c.key], rows.get(c.key))
                emit({"event": "gave_up", "cell": c.key, "error": result.unfinished[c.key]})
            if not inflight:
                if pending:
                    time.sleep(0.05)  # devices cooling down after a failure
                continue
            ready, _ = ray.wait(list(inflight), num_returns=1, timeout=0.5)
            for ref in ready:
                cell, name, t0 = inflight.pop(ref)
                st = states[name]
                st.running = None
                st.busy_s += time.monotonic() - t0
                try:
                    out = ray.get(ref)
                except Exception as exc:  # the worker died or raised: the device's side failed
                    out = {"outcome": "device", "error": f"the Ray task failed: {str(exc).strip().splitlines()[-1]}"}
                result.timeline.append({"cell": cell.key, "device": name, "outcome": out["outcome"],
                                        "start_s": round(t0 - t_start, 3),
                                        "end_s": round(time.monotonic() - t_start, 3)})
                if out["outcome"] == "device":
                    _device_failed(lab, st, cell, out, attempts, pending, result, store, group, emit,
                                   rows.get(cell.key))
                    continue
                st.fails_in_a_row = 0
                run_id = _store(store, lab, group, cell, st.device, out, attempts[cell.key], rows.get(cell.key))
                if out["outcome"] == "failed":
                    st.failed += 1
                    result.failed[cell.key] = out.get("error") or "failed"
                else:
                    st.done += 1
                    result.completed[cell.key] = run_id
                p50 = ((out.get("result") or {}).get("latency") or {}).get("p50")
                emit({"event": "finished", "cell": cell.key, "device": name, "status": out.get("status", "failed"),
                      "run_id": run_id, "p50_ms": p50, "error": out.get("error"),
                      "done": len(result.completed) + len(result.failed) + len(result.skipped_done),
                      "cells": len(cells)})
    except KeyboardInterrupt:
        for ref in inflight:
            try:
                ray.cancel(ref, force=True)
            except Exception:
                pass
        emit({"event": "interrupted", "group": group, "in_flight": [c.key for c, _, _ in inflight.values()]})
        raise
    finally:
        result.wall_s = time.monotonic() - t_start
        if started:
            ray.shutdown()
    return result


def _last_device(lab: Lab, states: dict[str, DeviceState], cell: FarmCell) -> Device:
    """The device a given-up cell is recorded against: a down one that serves it."""
    return next((s.device for s in states.values() if s.down and s.device.serves(cell.cell.target)),
                lab.devices[0])


def _device_failed(lab: Lab, st: DeviceState, cell: FarmCell, out: dict[str, Any], attempts: dict[str, int],
                   pending: deque, result: FarmResult, store: Any, group: str, emit: EventHandler,
                   run_id: int | None = None) -> None:
    error = out.get("error") or "the device failed"
    st.fails_in_a_row += 1
    st.free_at = time.monotonic() + lab.retry_delay_s
    if st.fails_in_a_row >= lab.retries:
        st.down = f"failed {st.fails_in_a_row} times in a row, last: {error}"
        emit({"event": "device_down", "device": st.device.name, "error": st.down})
    if attempts[cell.key] < lab.retries:
        st.retried += 1
        pending.appendleft(cell)
        emit({"event": "retry", "cell": cell.key, "device": st.device.name, "attempt": attempts[cell.key],
              "error": error})
        return
    st.failed += 1
    why = f"{attempts[cell.key]} attempts failed, last on {st.device.name}: {error}"
    result.unfinished[cell.key] = why
    # stored as `killed` (a device failure): visible in the store, and run again when the group is resumed
    _store(store, lab, group, cell, st.device, {**out, "status": "killed", "error": why}, attempts[cell.key],
           run_id)
    emit({"event": "gave_up", "cell": cell.key, "device": st.device.name, "error": why})


def _start(store: Any, lab: Lab, group: str, cell: FarmCell, device: Device, attempt: int) -> int:
    """Insert the cell's run `running` at its dispatch (what is known then: the cell, its first device and
    attempt); `_store` finishes the same row. Returns the run id."""
    from edgekit.bench.runner import BenchResult, log_bench

    farm = {"lab": lab.name, "cell": cell.key, "device": device.name, "attempt": attempt}
    rec = BenchResult(model=cell.cell.model, format=cell.cell.format, precision=cell.cell.precision, artifact="",
                      status="running", config={"target": device.stored_target(), "farm": farm})
    return log_bench(store, rec, group)


def _store(store: Any, lab: Lab, group: str, cell: FarmCell, device: Device, out: dict[str, Any],
           attempt: int, run_id: int | None = None) -> int:
    """The committed run of a finished (or given up) cell, its farm key in the config: the row `_start` inserted
    (`run_id`) finished, or one written whole when the cell has none."""
    farm = {"lab": lab.name, "cell": cell.key, "device": device.name, "attempt": attempt,
            "worker_host": out.get("host"), "wall_s": out.get("wall_s")}
    config = {**(out.get("config") or {}), "farm": farm}
    status = out.get("status") or ("failed" if out.get("outcome") == "failed" else "killed")
    from edgekit.bench.runner import BenchResult, log_bench
    from edgekit.store import RunRecord

    # the cell's BenchResult as the worker sent it (BenchResult.to_dict), read back the way the store reads it
    sent = RunRecord(id=0, created="", kind="bench", status=status, model=cell.cell.model, format=cell.cell.format,
                     precision=cell.cell.precision, target=device.stored_target(), runtime=out.get("runtime"),
                     provenance=out.get("provenance"), error=out.get("error"), artifact_path=out.get("artifact_path"),
                     artifact_sha256=out.get("artifact_sha256"), env=out.get("env") or {},
                     config=json.loads(json.dumps(config, default=str)), result=out.get("result") or {})
    result = BenchResult.from_row(sent, out.get("samples") or {})
    result.run_id, result.config["target"] = run_id, device.stored_target()
    if not out.get("env"):
        result.env = None
    return log_bench(store, result, group)  # finishes the running row (device, attempt, host known now)
