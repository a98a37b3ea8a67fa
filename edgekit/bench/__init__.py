"""The measurement engine: statistics (stats), the isolated benchmark runner (runner, child), the environment record
(env), energy probes (energy) and the resolution of what to benchmark (jobs). See docs/bench.md."""

from __future__ import annotations

from edgekit.bench.runner import BenchConfig, BenchJob, BenchResult, MemoryRecord, run_benchmark

__all__ = ["BenchConfig", "BenchJob", "BenchResult", "MemoryRecord", "run_benchmark"]
