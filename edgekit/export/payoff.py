"""Does a quantized artifact pay off? Its size against its fp32 twin, and a quick speed-up measured on this host.

The speed-up is a quick in-process check, not a benchmark: both artifacts loaded in this process with one thread,
a warm-up, then `runs` timed calls of each, interleaved (so drift on a shared machine hits both alike); the ratio of
the medians. It is labelled `measured` with the host it ran on. `edgekit bench` is the careful measurement.
"""

from __future__ import annotations

import platform
import statistics
import time
from pathlib import Path
from typing import Any

import numpy as np

QUICK_RUNS = 20
WARMUP = 3


def _host() -> str:
    from edgekit.host import cpu_model, cpus_used

    return f"{platform.node() or 'this host'} ({cpu_model()}, {len(cpus_used())} cores)"


def quick_speedup(fmt: str, fp32: Path, variant: Path, feed: dict[str, np.ndarray],
                  runs: int = QUICK_RUNS) -> dict[str, Any]:
    """p50 of `runs` single-thread calls of each artifact on `feed`, interleaved. Raises when either cannot run."""
    from edgekit.runtime import RuntimeOptions, runtime_for_format

    runtime = runtime_for_format(fmt)
    calls = [runtime.load(p, RuntimeOptions(threads=1)).prepare(feed) for p in (fp32, variant)]
    for call in calls:
        for _ in range(WARMUP):
            call()
    times: list[list[float]] = [[], []]
    for _ in range(runs):
        for i, call in enumerate(calls):
            start = time.perf_counter()
            call()
            times[i].append(time.perf_counter() - start)
    p50 = [statistics.median(t) * 1e3 for t in times]
    return {"fp32_p50_ms": round(p50[0], 4), "p50_ms": round(p50[1], 4), "speedup": round(p50[0] / p50[1], 3),
            "runs": runs, "threads": 1, "label": "measured", "host": _host(),
            "method": f"in-process quick check: {runs} interleaved runs each after {WARMUP} warm-up, 1 thread"}


def payoff(fmt: str, precision: str, fp32: Path, variant: Path, feed: dict[str, np.ndarray],
           runnable: bool = True, runs: int = QUICK_RUNS) -> dict[str, Any]:
    """Size ratio and quick speed-up of `variant` against its fp32 twin, with `flags` naming anything that does not
    pay off (larger or slower than fp32)."""
    from edgekit.export.artifact import path_size

    size_ratio = path_size(variant) / max(1, path_size(fp32))
    out: dict[str, Any] = {"vs": "fp32", "size_ratio": round(size_ratio, 4)}
    flags = []
    if size_ratio > 1.0:
        flags.append(f"larger than fp32 ({size_ratio:.2f}x the size)")
    if not runnable:
        out["speed"] = {"label": "not-measured", "reason": f"{fmt} does not run on this host"}
    else:
        try:
            speed = quick_speedup(fmt, fp32, variant, feed, runs)
        except Exception as exc:  # a variant that cannot run already fails parity; say why here too
            out["speed"] = {"label": "not-measured", "reason": f"{type(exc).__name__}: {str(exc)[:160]}"}
        else:
            out["speed"] = speed
            if speed["speedup"] < 0.95:  # within 5 % is noise on a quick check
                flags.append(f"slower than fp32 ({speed['speedup']:.2f}x speed, {speed['p50_ms']:.2f} vs "
                             f"{speed['fp32_p50_ms']:.2f} ms p50, quick check)")
    out["flags"] = flags
    return out


def payoff_of(exporter, fmt: str, precision: str, staged: Path) -> dict[str, Any]:
    """The payoff record of a variant just made in `staged`, against the export's fp32 artifact of `fmt`."""
    fp32_art = exporter.manifest.find(fmt, "fp32")
    fp32 = exporter.output(fmt, "fp32")
    if fp32_art is None or fp32_art.status != "ok" or not fp32.exists():
        return {"vs": "fp32", "flags": [], "speed": {"label": "not-measured", "reason": "no fp32 twin"}}
    runnable = True
    if fmt == "coreml":
        from edgekit.runtime.coreml import CoreMLRuntime

        runnable = CoreMLRuntime().available()
    return payoff(fmt, precision, fp32, staged, exporter.feeds[0], runnable=runnable)
