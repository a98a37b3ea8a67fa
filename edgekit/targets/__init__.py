"""Targets: device profiles (targets/*.toml), transports (local, ssh, adb, macos, command, emulate), the device agent
and the latency predictor. docs/targets.md describes them.

The library entry points (imported lazily by the CLI):
- `load_target(name)`, `list_profiles()` — profiles (edgekit.targets.profile);
- `check_target(name, DeviceOptions(...))` — reach a device, report its runtimes;
- `bench_on_target(jobs, target, config, DeviceOptions(...), store=...)` — measured / emulated / predicted;
- `predict_jobs(jobs, profile, store)` — predicted latency with its calibration error.
"""

from __future__ import annotations

from edgekit.targets.profile import TargetProfile, list_profiles, load_target
from edgekit.targets.remote import DeviceOptions, TargetRun, bench_on_target, check_target, predict_jobs

__all__ = ["DeviceOptions", "TargetProfile", "TargetRun", "bench_on_target", "check_target", "list_profiles",
           "load_target", "predict_jobs"]
