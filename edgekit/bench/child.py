"""The benchmark child: `python -m edgekit.bench.child` reads one JSON job on stdin, benchmarks it, and writes JSON
events, one per line, on its stdout. It runs alone in its process so its memory figures belong to this model only.

Events: {"event": "phase", "phase": ...}, {"event": "progress", "phase": "warmup"|"timed", "done": k, ...},
then exactly one of {"event": "result", ...}, {"event": "error", "problem", "fix", "category"},
{"event": "skipped", "reason"}. Anything native libraries print goes to stderr (fd 1 is redirected there), so the
event stream stays clean.

The timed loop costs almost nothing per iteration: two `time.perf_counter_ns()` calls around `session.run`, the
delta stored into a preallocated list; feeds are built once; progress is reported between chunks of iterations.
"""

from __future__ import annotations

import functools
import gc
import json
import math
import os
import resource
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

import numpy as np


class _Events:
    def __init__(self, stream: IO[str]) -> None:
        self._stream = stream

    def emit(self, event: str, **fields: Any) -> None:
        self._stream.write(json.dumps({"event": event, **fields}, default=str) + "\n")
        self._stream.flush()


def _status_kb(key: str) -> int | None:
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def _maxrss_bytes() -> int:
    ru = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(ru) if sys.platform == "darwin" else int(ru) * 1024


def _memory() -> dict[str, int | None]:
    """RSS, USS (bytes) now, and the RSS high-water mark (VmHWM on Linux, else ru_maxrss)."""
    import psutil

    proc = psutil.Process()
    rss = proc.memory_info().rss
    try:
        uss: int | None = proc.memory_full_info().uss
    except (psutil.AccessDenied, AttributeError, OSError):
        uss = None
    hwm = _status_kb("VmHWM")
    return {"rss": int(rss), "uss": uss, "hwm": hwm * 1024 if hwm is not None else _maxrss_bytes()}


def _reset_hwm() -> bool:
    """Reset the RSS high-water mark (Linux >= 4.0: write 5 to /proc/self/clear_refs) so the peak measured after
    it belongs to inference alone, not to loading."""
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
        return True
    except OSError:
        return False


def timer_overhead_ns(n: int = 2000) -> float:
    """Median cost of one perf_counter_ns pair with nothing between (it is inside every sample)."""
    pc = time.perf_counter_ns
    buf = [0] * n
    for i in range(n):
        t0 = pc()
        buf[i] = pc() - t0
    return float(np.median(buf))


def loop_overhead_ns(n: int = 5000) -> float:
    """Per-iteration cost of the timed loop around a no-op run (timer calls, list store, loop), in ns."""
    def noop() -> None:
        return None

    buf = [0] * n
    start = time.perf_counter_ns()
    _timed_chunk(noop, buf, n)
    return (time.perf_counter_ns() - start) / n


def _timed_chunk(call: Callable[[], Any], buf: list[int], n: int) -> None:
    pc = time.perf_counter_ns
    for i in range(n):
        t0 = pc()
        call()
        buf[i] = pc() - t0


def prepared_call(session: Any, feeds: dict[str, np.ndarray]) -> Callable[[], Any]:
    """A zero-argument callable that runs the model once on `feeds`. A session may offer `prepare(feeds)` returning
    such a callable with per-run work (input ordering, dtype checks, dict building) done once; otherwise it is
    `session.run(feeds)` bound with functools.partial (a C-level call, no Python frame of edgekit's own)."""
    prepare = getattr(session, "prepare", None)
    if callable(prepare):
        return prepare(feeds)
    return functools.partial(session.run, feeds)


def timed_runs(call: Callable[[], Any], min_runs: int, min_time_s: float, max_time_s: float, events: _Events,
               per_run_hint_ns: float) -> tuple[list[int], float]:
    """At least `min_runs` runs AND at least `min_time_s` seconds, stopping at `max_time_s` whatever the count.
    Runs in chunks sized to last about 0.25 s, so progress is reported without touching the inner loop.
    Returns (latencies in ns, wall seconds)."""
    min_ns, max_ns = int(min_time_s * 1e9), int(max_time_s * 1e9)
    chunks: list[list[int]] = []
    done = 0
    start = time.perf_counter_ns()
    per = max(per_run_hint_ns, 1.0)
    while True:
        elapsed = time.perf_counter_ns() - start
        need = max(min_runs - done, math.ceil((min_ns - elapsed) / per), 1)
        room = max(1, int((max_ns - elapsed) / per))
        n = max(1, min(need, room, int(0.25e9 / per) or 1))
        buf = [0] * n
        _timed_chunk(call, buf, n)
        chunks.append(buf)
        done += n
        elapsed = time.perf_counter_ns() - start
        per = elapsed / done
        if (done >= min_runs and elapsed >= min_ns) or elapsed >= max_ns:
            break
        events.emit("progress", phase="timed", done=done, target=min_runs, elapsed_s=elapsed / 1e9,
                    min_time_s=min_time_s)
    wall = (time.perf_counter_ns() - start) / 1e9
    return [x for c in chunks for x in c], wall


def run_job(job: dict[str, Any], events: _Events) -> None:
    from edgekit.bench.env import snapshot
    from edgekit.errors import EdgekitError
    from edgekit.runtime import RuntimeOptions, get_runtime
    from edgekit.runtime.coreml import RuntimeUnavailableError
    from edgekit.specs import TensorSpec

    sysfs = Path(job.get("sysfs_root", "/"))
    cpus = job.get("cpus")
    extra = dict(job.get("extra") or {})
    try:
        if job.get("format") == "torch" or job["runtime"] == "torch":
            from edgekit.runtime.torch import check_trusted

            # loading a .pt2 unpickles it: only the bytes the parent vouched for (manifest hash or --trust)
            check_trusted(Path(job["path"]), job.get("trusted_sha256"))
            extra["trusted_sha256"] = job.get("trusted_sha256")
        runtime = get_runtime(job["runtime"])
        runtime.available()  # imports the engine now, so its import is not counted as the model's memory
        meter = None
        idle = None
        if job.get("energy"):
            from edgekit.bench.energy import EnergyMeter, probe_from_spec

            meter = EnergyMeter(probe_from_spec(job["energy"]))
            events.emit("phase", phase="idle")
            idle = meter.idle(float(job.get("idle_s", 1.0)))
        specs = [TensorSpec.from_dict(d) for d in job["inputs"]]
        rng = np.random.default_rng(int(job.get("seed", 0)))
        feeds = {s.name: s.random(rng) for s in specs}
        gc.collect()
        mem_before = _memory()
        options = RuntimeOptions(threads=job.get("threads"), provider=job.get("provider"),
                                 graph_optimization=job.get("graph_optimization", "all"),
                                 extra=extra)
        events.emit("phase", phase="load")
        t0 = time.perf_counter_ns()
        session = runtime.load(Path(job["path"]), options)
        load_ns = time.perf_counter_ns() - t0
        mem_loaded = _memory()
        hwm_reset = _reset_hwm()
        run = prepared_call(session, feeds)
        events.emit("phase", phase="first")
        try:
            t0 = time.perf_counter_ns()
            run()
            first_ns = time.perf_counter_ns() - t0
        except EdgekitError:
            raise
        except Exception as exc:  # the engine rejected the feeds
            shapes = ", ".join(f"{s.name}:{'x'.join(map(str, s.shape))}:{s.dtype}" for s in specs)
            raise EdgekitError(
                f"the model rejected the inputs {shapes} ({type(exc).__name__}: {str(exc).strip().splitlines()[0][:240]})",
                "give the model's real input shapes with --input NAME:DIMxDIM:DTYPE, or export it again",
            ) from exc
        warm: list[int] = []
        events.emit("phase", phase="warmup")
        for i in range(int(job.get("warmup", 0))):
            t0 = time.perf_counter_ns()
            run()
            warm.append(time.perf_counter_ns() - t0)
            events.emit("progress", phase="warmup", done=i + 1, target=int(job["warmup"]))
        hint = float(np.median(warm)) if warm else float(first_ns)
        timer_ns = timer_overhead_ns()
        loop_ns = loop_overhead_ns()
        before = snapshot(cpus, sysfs)
        events.emit("phase", phase="timed")
        if meter is not None:
            meter.start()
        samples, wall = timed_runs(run, int(job["runs"]), float(job["min_time_s"]),
                                   float(job.get("max_time_s", 150.0)), events, hint)
        active = meter.stop() if meter is not None else None
        after = snapshot(cpus, sysfs)
        mem_after = _memory()
        energy = None
        if meter is not None and idle is not None and active is not None:
            from edgekit.bench.energy import measured_energy

            energy = measured_energy(meter.probe, idle, active, len(samples)).to_dict()
        events.emit(
            "result",
            load_ms=load_ns / 1e6,
            first_ms=first_ns / 1e6,
            warmup_ms=[x / 1e6 for x in warm],
            samples_ms=[x / 1e6 for x in samples],
            timed_wall_s=wall,
            memory={
                "rss_before_load": mem_before["rss"], "uss_before_load": mem_before["uss"],
                "rss_after_load": mem_loaded["rss"], "uss_after_load": mem_loaded["uss"],
                "peak_rss_load": mem_loaded["hwm"],
                "peak_rss_inference": mem_after["hwm"],
                "peak_rss_scope": "inference" if hwm_reset else "process",
                "rss_after_runs": mem_after["rss"], "uss_after_runs": mem_after["uss"],
            },
            describe=session.describe(),
            snapshots={"before": before.__dict__, "after": after.__dict__},
            harness={"timer_overhead_ns": timer_ns, "loop_overhead_ns": loop_ns},
            energy=energy,
        )
    except RuntimeUnavailableError as exc:
        events.emit("skipped", reason=exc.one_line())
    except EdgekitError as exc:
        events.emit("error", problem=exc.problem, fix=exc.fix, category="edgekit")


def main() -> int:
    proto = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)  # native libraries printing to stdout must not corrupt the event stream
    sys.stdout = sys.stderr
    events = _Events(proto)
    events.emit("started", pid=os.getpid())
    try:
        job = json.loads(sys.stdin.read())
    except json.JSONDecodeError as exc:
        events.emit("error", problem=f"bad benchmark job ({exc})", fix="this is a bug in the caller", category="crash")
        return 2
    try:
        run_job(job, events)
    except Exception as exc:  # anything unforeseen: report one line instead of a traceback on the event stream
        import traceback

        traceback.print_exc()
        events.emit("error", problem=f"{type(exc).__name__}: {str(exc).strip().splitlines()[0][:300] if str(exc).strip() else ''}",
                    fix="run with --debug and report it", category="crash")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
