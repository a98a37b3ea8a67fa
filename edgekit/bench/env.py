"""The environment record stored with every result: what ran, where, and in which CPU state.

Readings that the host does not expose (cpufreq, thermal zones inside many VMs and containers) are left out
(None / empty), never guessed. `root` points the sysfs/procfs readers at another tree (tests build fake ones)."""

from __future__ import annotations

import os
import platform
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from edgekit.bench.stats import ProbeSnapshot
from edgekit.host import cpu_model, cpus_used
from edgekit.host import read_text as _read


def _read_float(path: Path) -> float | None:
    text = _read(path)
    try:
        return float(text) if text is not None else None
    except ValueError:
        return None


def cpufreq(cpu: int = 0, root: Path = Path("/")) -> dict[str, Any]:
    """Governor and frequencies (MHz) of one CPU from sysfs cpufreq; {} when not exposed."""
    base = root / f"sys/devices/system/cpu/cpu{cpu}/cpufreq"
    if not base.is_dir():
        return {}
    out: dict[str, Any] = {}
    gov = _read(base / "scaling_governor")
    if gov:
        out["governor"] = gov
    driver = _read(base / "scaling_driver")
    if driver:
        out["driver"] = driver
    for key, name in (("cur_mhz", "scaling_cur_freq"), ("min_mhz", "scaling_min_freq"),
                      ("max_mhz", "scaling_max_freq"), ("hw_max_mhz", "cpuinfo_max_freq")):
        khz = _read_float(base / name)
        if khz is not None:
            out[key] = khz / 1000.0
    return out


def temperatures(root: Path = Path("/")) -> dict[str, float]:
    """Temperatures in degrees C from /sys/class/thermal/thermal_zone*/temp (millidegrees), keyed by zone type."""
    out: dict[str, float] = {}
    base = root / "sys/class/thermal"
    for zone in sorted(base.glob("thermal_zone*")) if base.is_dir() else []:
        milli = _read_float(zone / "temp")
        if milli is None:
            continue
        kind = _read(zone / "type") or zone.name
        out[f"{zone.name}:{kind}"] = milli / 1000.0
    return out


def snapshot(cpus: list[int] | None = None, root: Path = Path("/")) -> ProbeSnapshot:
    """Frequencies of the CPUs in use and all temperatures, read now (cheap: a few small sysfs files)."""
    freq: dict[str, float] = {}
    for cpu in cpus if cpus is not None else cpus_used():
        khz = _read_float(root / f"sys/devices/system/cpu/cpu{cpu}/cpufreq/scaling_cur_freq")
        if khz is not None:
            freq[f"cpu{cpu}"] = khz / 1000.0
    return ProbeSnapshot(freq_mhz=freq, temp_c=temperatures(root))


@dataclass
class EnvRecord:
    """Where and how a benchmark ran. Runtime fields come from the child's Session.describe()."""

    host_os: str
    kernel: str
    machine: str
    cpu_model: str
    cpu_count: int
    cpus_used: list[int]
    memory_total_bytes: int | None
    python: str
    numpy: str
    edgekit_version: str
    cpufreq: dict[str, Any] = field(default_factory=dict)
    temperatures_c: dict[str, float] = field(default_factory=dict)
    runtime: str | None = None
    runtime_version: str | None = None
    threads: int | None = None
    provider: str | None = None
    runtime_details: dict[str, Any] = field(default_factory=dict)
    artifact_sha256: str | None = None
    target: str = "local"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def collect_env(root: Path = Path("/"), target: str = "local") -> EnvRecord:
    """Read this host's environment record (runtime fields are filled in after the child reports them)."""
    import numpy

    from edgekit import __version__

    try:
        import psutil

        mem_total: int | None = int(psutil.virtual_memory().total)
    except Exception:  # psutil missing or /proc unreadable
        mem_total = None
    used = cpus_used()
    return EnvRecord(
        host_os=platform.platform(),
        kernel=platform.release(),
        machine=platform.machine(),
        cpu_model=cpu_model(root),
        cpu_count=os.cpu_count() or 1,
        cpus_used=used,
        memory_total_bytes=mem_total,
        python=platform.python_version(),
        numpy=numpy.__version__,
        edgekit_version=__version__,
        cpufreq=cpufreq(used[0] if used else 0, root),
        temperatures_c=temperatures(root),
        target=target,
    )
