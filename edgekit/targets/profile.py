"""Target profiles: published specifications of a device (targets/NAME.toml) as frozen dataclasses.

A profile holds the SoC, CPU clusters and frequencies, peak GFLOP/s per precision, memory bandwidth, RAM, accelerator
TOPS, idle/active power, formats and runtimes supported, the transport defaults, and — for every number — its
source (a `[sources]` table: field -> datasheet / vendor page, or "derived: ..." with the arithmetic).

Units: frequencies in GHz, compute in GFLOP/s (int8: GOP/s), bandwidth in GB/s (1e9 bytes/s), RAM in GB, power in W.

Where profiles come from, first match wins: a directory given explicitly, $EDGEKIT_TARGETS, the `targets/` folder
shipped beside the package, then third-party profiles registered under the `edgekit.targets` entry point group (an
entry point names a function returning a TargetProfile, a dict in the TOML layout, or a path to a TOML file).
`local` is not a file: it is detected at run time from /proc/cpuinfo, os.cpu_count() and psutil.
"""

from __future__ import annotations

import os
import platform
import re
import tomllib
from dataclasses import asdict, dataclass, field
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

from edgekit.errors import EdgekitError

TRANSPORT_KINDS = ("local", "ssh", "adb", "macos", "command")
PRECISIONS = ("fp32", "fp16", "int8")
_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9._-]*$")
ENTRY_POINT_GROUP = "edgekit.targets"


@dataclass(frozen=True)
class CpuCluster:
    """Cores of one kind. flops_per_cycle: per core per cycle, by precision (fp32/fp16/int8)."""

    name: str
    cores: int
    max_ghz: float
    flops_per_cycle: dict[str, float] = field(default_factory=dict)

    def peak_gflops(self, precision: str) -> float | None:
        fpc = self.flops_per_cycle.get(precision)
        return None if fpc is None else self.cores * self.max_ghz * fpc


@dataclass(frozen=True)
class Accelerator:
    """An NPU/TPU/DSP. tops: tera-operations per second at the precisions listed (int8 unless said otherwise)."""

    name: str
    tops: float | None = None
    precisions: tuple[str, ...] = ("int8",)
    formats: tuple[str, ...] = ()
    note: str = ""


@dataclass(frozen=True)
class PowerSpec:
    """Board/SoC power in W: idle, and active while running inference. Used for `modeled` energy."""

    idle_w: float
    active_w: float
    source: str = ""


@dataclass(frozen=True)
class TransportSpec:
    """How to reach the device. Fields a kind does not use are ignored. Times in seconds.

    - ssh / macos: host, user, port, known_hosts (path), identity_file, workdir (remote), python (remote).
    - adb: serial, workdir (on the device), benchmark_binary (a TFLite benchmark_model on the device, optional).
    - command: command (argv template; `{name}` placeholders are substituted per argument, no shell).
    """

    kind: str = "local"
    host: str | None = None
    user: str | None = None
    port: int | None = None
    known_hosts: str | None = None
    identity_file: str | None = None
    workdir: str = "/tmp/edgekit"
    python: str = "python3"
    serial: str | None = None
    benchmark_binary: str | None = None
    command: tuple[str, ...] = ()
    compute_units: str = "ALL"
    connect_timeout_s: float = 10.0
    timeout_s: float = 600.0
    retries: int = 3


@dataclass(frozen=True)
class PredictorDefaults:
    """Efficiency factors used by the latency predictor before it is calibrated on this target's measured runs:
    achieved/peak compute, achieved/peak bandwidth, and a fixed cost per operator (µs)."""

    compute_efficiency: float = 0.3
    memory_efficiency: float = 0.5
    op_overhead_us: float = 5.0
    source: str = "edgekit default (uncalibrated)"


@dataclass(frozen=True)
class TargetProfile:
    """One device. `peak_gflops` maps precision -> GFLOP/s (int8: GOP/s) of the CPU (the predictor's default
    engine); the accelerator's TOPS are kept apart because they apply only to delegated graphs."""

    name: str
    description: str
    kind: str  # board | phone | npu | host
    soc: str
    clusters: tuple[CpuCluster, ...]
    peak_gflops: dict[str, float]
    memory_bandwidth_gbs: float | None
    ram_gb: float | None
    power: PowerSpec
    transport: TransportSpec
    accelerator: Accelerator | None = None
    memory: str = ""
    os: str = ""
    formats: tuple[str, ...] = ()
    runtimes: tuple[str, ...] = ()
    delegates: tuple[str, ...] = ()
    predictor: PredictorDefaults = field(default_factory=PredictorDefaults)
    sources: dict[str, str] = field(default_factory=dict)
    path: str = ""  # where it was read from ("detected" for local, "entry point X" for plugins)

    @property
    def cores(self) -> int:
        return sum(c.cores for c in self.clusters)

    def peak(self, precision: str) -> float | None:
        """Peak GFLOP/s for a precision; fp16/int8 fall back to fp32 when the profile gives no figure."""
        key = "int8" if precision.startswith("int") else precision
        return self.peak_gflops.get(key) or self.peak_gflops.get("fp32")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _fail(path: str, problem: str, fix: str) -> EdgekitError:
    return EdgekitError(f"target profile {path}: {problem}", fix)


def _num(d: dict[str, Any], key: str, path: str, required: bool = False, positive: bool = True) -> float | None:
    if key not in d or d[key] is None:
        if required:
            raise _fail(path, f"missing `{key}`", f"add `{key} = <number>` (see targets/rpi4.toml)")
        return None
    value = d[key]
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _fail(path, f"`{key}` must be a number, got {value!r}", f"write `{key} = 1.5` without quotes")
    if positive and value < 0:
        raise _fail(path, f"`{key}` must not be negative ({value})", "use the published figure")
    return float(value)


def _strs(d: dict[str, Any], key: str, path: str) -> tuple[str, ...]:
    value = d.get(key, [])
    if not isinstance(value, list) or not all(isinstance(x, str) for x in value):
        raise _fail(path, f"`{key}` must be a list of strings", f'write `{key} = ["a", "b"]`')
    return tuple(value)


def numeric_fields(profile: TargetProfile) -> list[str]:
    """The dotted names of every number in a profile that needs a source."""
    names = [f"peak_gflops.{k}" for k in profile.peak_gflops]
    if profile.memory_bandwidth_gbs is not None:
        names.append("memory_bandwidth_gbs")
    if profile.ram_gb is not None:
        names.append("ram_gb")
    names += ["power.idle_w", "power.active_w"]
    if profile.clusters:
        names.append("cpu")
    if profile.accelerator is not None and profile.accelerator.tops is not None:
        names.append("accelerator.tops")
    return names


def source_for(profile: TargetProfile, name: str) -> str | None:
    """The source of a dotted field: an exact key, else the nearest parent key ('peak_gflops' covers
    'peak_gflops.fp32')."""
    parts = name.split(".")
    for i in range(len(parts), 0, -1):
        key = ".".join(parts[:i])
        if key in profile.sources:
            return profile.sources[key]
    return None


def parse_profile(data: dict[str, Any], path: str, name: str | None = None) -> TargetProfile:
    """Build a TargetProfile from TOML data; every problem is one EdgekitError naming the file and the fix."""
    name = str(data.get("name") or name or Path(path).stem)
    if not _NAME_RE.match(name):
        raise _fail(path, f"name {name!r} is not a valid target name", "use lowercase letters, digits, '-', '_'")
    cpu = data.get("cpu", {})
    if not isinstance(cpu, dict):
        raise _fail(path, "`cpu` must be a table", "write [[cpu.clusters]] tables")
    clusters = []
    for i, c in enumerate(cpu.get("clusters", [])):
        if not isinstance(c, dict) or "name" not in c:
            raise _fail(path, f"cpu.clusters[{i}] needs a `name`", 'e.g. name = "Cortex-A72"')
        fpc = c.get("flops_per_cycle", {})
        if not isinstance(fpc, dict):
            raise _fail(path, f"cpu.clusters[{i}].flops_per_cycle must be a table", "e.g. { fp32 = 8 }")
        cores = _num(c, "cores", path, required=True)
        clusters.append(CpuCluster(name=str(c["name"]), cores=int(cores or 0),
                                   max_ghz=float(_num(c, "max_ghz", path, required=True) or 0.0),
                                   flops_per_cycle={k: float(_num(fpc, k, path) or 0.0) for k in fpc}))
    peaks_raw = data.get("peak_gflops", {})
    if not isinstance(peaks_raw, dict):
        raise _fail(path, "`peak_gflops` must be a table", "write [peak_gflops] with fp32 = ..., int8 = ...")
    bad = [k for k in peaks_raw if k not in PRECISIONS]
    if bad:
        raise _fail(path, f"unknown precision {', '.join(bad)} in [peak_gflops]", f"use {', '.join(PRECISIONS)}")
    peaks = {k: float(_num(peaks_raw, k, path) or 0.0) for k in peaks_raw}
    if not peaks and clusters:  # derived from the clusters when not given
        for prec in PRECISIONS:
            vals = [c.peak_gflops(prec) for c in clusters]
            if all(v is not None for v in vals):
                peaks[prec] = float(sum(v for v in vals if v is not None))
    power_raw = data.get("power")
    if not isinstance(power_raw, dict):
        raise _fail(path, "missing the [power] table", "add [power] with idle_w and active_w (W) and their source")
    power = PowerSpec(idle_w=float(_num(power_raw, "idle_w", path, required=True) or 0.0),
                      active_w=float(_num(power_raw, "active_w", path, required=True) or 0.0),
                      source=str(power_raw.get("source", "")))
    if power.active_w < power.idle_w:
        raise _fail(path, f"[power] active_w {power.active_w} W is below idle_w {power.idle_w} W",
                    "active_w is the power while running inference, so it is at least idle_w")
    tr = data.get("transport", {})
    if not isinstance(tr, dict):
        raise _fail(path, "`transport` must be a table", 'write [transport] with kind = "ssh" etc.')
    kind = str(tr.get("kind", "local"))
    if kind not in TRANSPORT_KINDS:
        raise _fail(path, f"unknown transport kind {kind!r}", f"use one of {', '.join(TRANSPORT_KINDS)}")
    command = tr.get("command", [])
    if isinstance(command, str) or not all(isinstance(x, str) for x in command):
        raise _fail(path, "[transport] command must be a list of arguments, not one string",
                    'write command = ["my-npu-bench", "--model", "{artifact}"] (no shell is used)')
    port = _num(tr, "port", path)
    transport = TransportSpec(
        kind=kind, host=tr.get("host"), user=tr.get("user"), port=int(port) if port is not None else None,
        known_hosts=tr.get("known_hosts"), identity_file=tr.get("identity_file"),
        workdir=str(tr.get("workdir", "/tmp/edgekit")), python=str(tr.get("python", "python3")),
        serial=tr.get("serial"), benchmark_binary=tr.get("benchmark_binary"), command=tuple(command),
        compute_units=str(tr.get("compute_units", "ALL")),
        connect_timeout_s=float(_num(tr, "connect_timeout_s", path) or 10.0),
        timeout_s=float(_num(tr, "timeout_s", path) or 600.0), retries=int(_num(tr, "retries", path) or 3))
    acc_raw = data.get("accelerator")
    accelerator = None
    if acc_raw is not None:
        if not isinstance(acc_raw, dict) or "name" not in acc_raw:
            raise _fail(path, "[accelerator] needs a `name`", 'e.g. name = "Edge TPU"')
        accelerator = Accelerator(name=str(acc_raw["name"]), tops=_num(acc_raw, "tops", path),
                                  precisions=_strs(acc_raw, "precisions", path) or ("int8",),
                                  formats=_strs(acc_raw, "formats", path), note=str(acc_raw.get("note", "")))
    pred_raw = data.get("predictor", {})
    predictor = PredictorDefaults(
        compute_efficiency=float(_num(pred_raw, "compute_efficiency", path) or PredictorDefaults.compute_efficiency),
        memory_efficiency=float(_num(pred_raw, "memory_efficiency", path) or PredictorDefaults.memory_efficiency),
        op_overhead_us=float(_num(pred_raw, "op_overhead_us", path) or PredictorDefaults.op_overhead_us),
        source=str(pred_raw.get("source", PredictorDefaults.source)))
    sources = data.get("sources", {})
    if not isinstance(sources, dict) or not all(isinstance(v, str) for v in sources.values()):
        raise _fail(path, "[sources] must map field names to text", '"power.idle_w" = "vendor datasheet, URL"')
    profile = TargetProfile(
        name=name, description=str(data.get("description", "")), kind=str(data.get("kind", "board")),
        soc=str(data.get("soc", "")), clusters=tuple(clusters), peak_gflops=peaks,
        memory_bandwidth_gbs=_num(data, "memory_bandwidth_gbs", path), ram_gb=_num(data, "ram_gb", path),
        power=power, transport=transport, accelerator=accelerator, memory=str(data.get("memory", "")),
        os=str(data.get("os", "")), formats=_strs(data, "formats", path), runtimes=_strs(data, "runtimes", path),
        delegates=_strs(data, "delegates", path), predictor=predictor, sources=dict(sources), path=path)
    if path != "detected":
        missing = [f for f in numeric_fields(profile) if source_for(profile, f) is None]
        if missing:
            raise _fail(path, f"no source for {', '.join(missing)}",
                        'add them to [sources], e.g. "power.idle_w" = "vendor datasheet (URL)" or "derived: ..."')
    return profile


def load_profile_file(path: Path) -> TargetProfile:
    """Read one profile TOML file."""
    try:
        data = tomllib.loads(path.read_text())
    except FileNotFoundError as exc:
        raise EdgekitError(f"target profile {path} does not exist", "run `edgekit targets list`") from exc
    except tomllib.TOMLDecodeError as exc:
        raise _fail(str(path), f"is not valid TOML ({exc})", "fix the TOML syntax at that line") from exc
    return parse_profile(data, str(path), path.stem)


def builtin_dir() -> Path:
    """The `targets/` folder shipped beside the package."""
    return Path(__file__).resolve().parent.parent.parent / "targets"


def search_dirs(directory: Path | None = None) -> list[Path]:
    dirs = []
    if directory is not None:
        dirs.append(Path(directory))
    env = os.environ.get("EDGEKIT_TARGETS")
    if env:
        dirs += [Path(p).expanduser() for p in env.split(os.pathsep) if p]
    dirs.append(builtin_dir())
    return dirs


def _plugin_profiles() -> dict[str, Any]:
    return {ep.name: ep for ep in entry_points(group=ENTRY_POINT_GROUP)}


def _load_plugin(ep: Any) -> TargetProfile:
    where = f"entry point {ep.name} ({ep.value})"
    try:
        obj = ep.load()
        value = obj() if callable(obj) and not isinstance(obj, type) else obj
    except Exception as exc:
        raise EdgekitError(f"target plugin {where} failed to load ({type(exc).__name__}: {exc})",
                           "fix or uninstall the plugin package") from exc
    if isinstance(value, TargetProfile):
        return value
    if isinstance(value, str | Path):
        return load_profile_file(Path(value))
    if isinstance(value, dict):
        return parse_profile(value, where, ep.name)
    raise EdgekitError(f"target plugin {where} returned {type(value).__name__}",
                       "return a TargetProfile, a dict in the TOML layout, or a path to a TOML file")


def list_profiles(directory: Path | None = None) -> list[str]:
    """Names of every known target: files in the search path, plugins, and `local`."""
    names = {"local"}
    for d in search_dirs(directory):
        if d.is_dir():
            names.update(p.stem for p in d.glob("*.toml"))
    names.update(_plugin_profiles())
    return sorted(names)


def load_target(name: str, directory: Path | None = None) -> TargetProfile:
    """The profile of a target by name (or a path to a TOML file). Unknown names raise one clear error."""
    if name.endswith(".toml") or os.sep in name:
        return load_profile_file(Path(name).expanduser())
    for d in search_dirs(directory):
        path = d / f"{name}.toml"
        if path.is_file():
            return load_profile_file(path)
    if name == "local":
        return detect_local()
    plugins = _plugin_profiles()
    if name in plugins:
        return _load_plugin(plugins[name])
    raise EdgekitError(f"unknown target {name!r}",
                       f"use one of {', '.join(list_profiles(directory))}, or add targets/{name}.toml")


# -- local detection -----------------------------------------------------------------------------------------------

def _cpuinfo(root: Path) -> list[dict[str, str]]:
    try:
        text = (root / "proc/cpuinfo").read_text()
    except OSError:
        return []
    blocks = []
    for chunk in text.split("\n\n"):
        d = {}
        for line in chunk.splitlines():
            key, sep, value = line.partition(":")
            if sep:
                d[key.strip()] = value.strip()
        if d:
            blocks.append(d)
    return blocks


def _max_ghz(root: Path, cpu: int, cpuinfo: list[dict[str, str]]) -> tuple[float | None, str]:
    try:
        khz = float((root / f"sys/devices/system/cpu/cpu{cpu}/cpufreq/cpuinfo_max_freq").read_text())
        return khz / 1e6, "sysfs cpufreq cpuinfo_max_freq"
    except (OSError, ValueError):
        pass
    for block in cpuinfo:
        if "cpu MHz" in block:
            try:
                return float(block["cpu MHz"]) / 1000.0, "/proc/cpuinfo `cpu MHz` (current, not maximum)"
            except ValueError:
                pass
    return None, ""


def _simd_flops_per_cycle(flags: set[str], machine: str) -> tuple[dict[str, float], str]:
    """fp32 FLOP/cycle/core from the SIMD extensions: 2 FMA units x vector lanes x 2 (multiply + add)."""
    if "avx512f" in flags:
        fp32, why = 64.0, "AVX-512 with 2 FMA units: 2 x 16 lanes x 2"
    elif "avx2" in flags and "fma" in flags:
        fp32, why = 32.0, "AVX2 with 2 FMA units: 2 x 8 lanes x 2"
    elif "avx" in flags:
        fp32, why = 16.0, "AVX without FMA: 8-lane add + 8-lane multiply"
    elif machine in ("aarch64", "arm64") or "asimd" in flags:
        fp32, why = 16.0, "Armv8 NEON with 2 x 128-bit FMA pipes: 2 x 4 lanes x 2"
    else:
        fp32, why = 8.0, "SSE: 4-lane add + 4-lane multiply"
    int8 = fp32 * (4 if {"avx512_vnni", "avx_vnni", "asimddp"} & flags else 2)
    fp16 = fp32 * (2 if {"avx512_fp16", "asimdhp"} & flags else 1)
    return {"fp32": fp32, "fp16": fp16, "int8": int8}, why


def detect_local(root: Path = Path("/")) -> TargetProfile:
    """This machine's profile: cores from os.cpu_count(), model, flags and frequency from /proc/cpuinfo and sysfs,
    RAM from psutil. Peak GFLOP/s is derived (cores x GHz x FLOP/cycle from the SIMD flags); power is left at the
    bench engine's default (no vendor figure for an unknown CPU)."""
    info = _cpuinfo(root)
    machine = platform.machine()
    cores = os.cpu_count() or 1
    first = info[0] if info else {}
    model = first.get("model name") or first.get("Model") or first.get("Hardware") or platform.processor() or machine
    flags = set((first.get("flags") or first.get("Features") or "").split())
    ghz, freq_src = _max_ghz(root, 0, info)
    fpc, why = _simd_flops_per_cycle(flags, machine)
    sources = {"cpu": f"os.cpu_count() = {cores}; /proc/cpuinfo model {model!r}; frequency from {freq_src or 'n/a'}"}
    peaks: dict[str, float] = {}
    if ghz:
        peaks = {k: cores * ghz * v for k, v in fpc.items()}
        sources["peak_gflops"] = (f"derived: {cores} logical CPUs x {ghz:.2f} GHz x FLOP/cycle ({why}); "
                                  "logical CPUs may be hyper-threads, so this is an upper bound")
    ram_gb = None
    try:
        import psutil

        ram_gb = psutil.virtual_memory().total / 1e9
        sources["ram_gb"] = "psutil.virtual_memory().total"
    except Exception:  # psutil missing or /proc unreadable
        pass
    from edgekit.bench.energy import DEFAULT_W_PER_CORE

    sources["power"] = (f"edgekit default: {DEFAULT_W_PER_CORE:g} W per busy core, idle 0 W (no published figure for "
                        "an unknown host; put [power] in targets/local.toml to override)")
    from edgekit.runtime import all_runtimes

    avail = [r for r in all_runtimes().values() if _safe_available(r)]
    return TargetProfile(
        name="local", description=f"this machine ({model})", kind="host", soc=model,
        clusters=(CpuCluster(name=model, cores=cores, max_ghz=ghz or 0.0, flops_per_cycle=fpc),),
        peak_gflops=peaks, memory_bandwidth_gbs=None, ram_gb=ram_gb,
        power=PowerSpec(idle_w=0.0, active_w=DEFAULT_W_PER_CORE * cores, source=sources["power"]),
        transport=TransportSpec(kind="local"), os=platform.platform(),
        formats=tuple(sorted({f for r in avail for f in r.formats})), runtimes=tuple(r.name for r in avail),
        sources=sources, path="detected")


def _safe_available(runtime: Any) -> bool:
    try:
        return bool(runtime.available())
    except Exception:
        return False
