"""Target profiles: published specifications of a device (targets/NAME.toml) as frozen dataclasses.

A profile holds the SoC, CPU clusters and frequencies, peak GFLOP/s per precision, memory bandwidth, RAM, accelerator
TOPS, idle/active power, formats and runtimes supported, the transport defaults, and — for every number — its
source (a `[sources]` table: field -> datasheet / vendor page, or "derived: ..." with the arithmetic).

Units: frequencies in GHz, compute in GFLOP/s (int8: GOP/s), bandwidth in GB/s (1e9 bytes/s), RAM in GB, power in W.

Where profiles come from, first match wins: a directory given explicitly, $EDGEKIT_TARGETS, the `targets/` folder
shipped beside the package, then third-party profiles registered through the `register_targets` plugin hook
(edgekit.plugins: a TargetProfile, a dict in the TOML layout, a path to a TOML file, or a callable returning one; the
older `edgekit.targets` entry point group is still read). `[transport] kind` is `local` or a registered transport
kind (edgekit.targets.transports).
`local` is not a file: it is detected at run time from /proc/cpuinfo, os.cpu_count() and psutil.

The loader is strict: a section or key the layout does not name (`[transprot]`) and a value of the wrong type
(`host = 12345`, `cpu.clusters = 5`, a non-finite number) are refused in one line naming the file and the key (and
the nearest known key), so a typo never turns a device profile into a run on this machine.
"""

from __future__ import annotations

import difflib
import math
import os
import platform
import re
import tomllib
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from edgekit import paths
from edgekit.errors import EdgekitError

PRECISIONS = ("fp32", "fp16", "int8")
_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9._-]*$")


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


# -- the profile's layout: every table and key a profile may hold (docs/targets.md); anything else is refused ---------

BOARD_KINDS = ("board", "phone", "npu", "host")
COMPUTE_UNITS = ("ALL", "CPU_ONLY", "CPU_AND_GPU", "CPU_AND_NE")
TOP_KEYS = ("name", "description", "kind", "soc", "os", "memory", "ram_gb", "memory_bandwidth_gbs", "formats",
            "runtimes", "delegates", "cpu", "peak_gflops", "accelerator", "power", "transport", "predictor", "sources",
            "published")  # [[published]]: per-model published latencies, read by the predictor (targets/predictor.py)
TABLE_KEYS: dict[str, tuple[str, ...]] = {
    "cpu": ("clusters",),
    "peak_gflops": PRECISIONS,
    "accelerator": ("name", "tops", "precisions", "formats", "note"),
    "power": ("idle_w", "active_w", "source"),
    "transport": tuple(f.name for f in fields(TransportSpec)),
    "predictor": tuple(f.name for f in fields(PredictorDefaults)),
}
CLUSTER_KEYS = ("name", "cores", "max_ghz", "flops_per_cycle")


def _dotted(where: str, key: str) -> str:
    return f"{where}.{key}" if where else key


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _nearest(word: str, known: tuple[str, ...] | list[str]) -> str | None:
    found = difflib.get_close_matches(word, list(known), n=1, cutoff=0.6)
    return found[0] if found else None


def _known_keys(d: dict[str, Any], known: tuple[str, ...], where: str, path: str) -> None:
    """Refuse the first key of table `d` (dotted name `where`, "" at the top) that the layout does not name."""
    for key in d:
        if key in known:
            continue
        top_table = not where and isinstance(d[key], dict | list)
        what = f"section [{key}]" if top_table else f"key `{_dotted(where, str(key))}`"
        near = _nearest(str(key), known)
        if near is None:
            fix = f"use one of {', '.join(known)} (docs/targets.md lists every field)"
        elif not where and (near in TABLE_KEYS or near == "sources"):
            fix = f"did you mean [{near}]? (docs/targets.md lists every field)"
        else:
            fix = f"did you mean `{_dotted(where, near)}`? (docs/targets.md lists every field)"
        raise _fail(path, f"unknown {what}", fix)


def _table(d: dict[str, Any], key: str, path: str, where: str = "") -> dict[str, Any]:
    value = d.get(key)
    if value is None:
        return {}
    if not isinstance(value, dict):
        name = _dotted(where, key)
        fix = f"write a [{name}] section with its keys" if not where else f"write it as a table, e.g. {key} = {{ ... }}"
        raise _fail(path, f"`{name}` must be a table, got {_show(value)}", fix)
    return value


def _choice(d: dict[str, Any], key: str, path: str, choices: tuple[str, ...], default: str, where: str = "",
            what: str = "") -> str:
    """A string field that must be one of `choices` (`what` names it in the message, e.g. "transport kind")."""
    value = _text(d, key, path, where, default)
    if value not in choices:
        near = _nearest(value, choices)
        hint = f"did you mean {near!r}? " if near else ""
        raise _fail(path, f"unknown {what or _dotted(where, key)} {value!r}", f"{hint}use one of {', '.join(choices)}")
    return value


def _text(d: dict[str, Any], key: str, path: str, where: str = "", default: str | None = "") -> Any:
    """A string field (absent: `default`)."""
    value = d.get(key)
    if value is None:
        return default
    if not isinstance(value, str):
        shown = value if isinstance(value, int | float) else "..."
        raise _fail(path, f"`{_dotted(where, key)}` must be a string, got {_show(value)}",
                    f'write {key} = "{shown}" (in quotes)')
    return value


def _num(d: dict[str, Any], key: str, path: str, required: bool = False, positive: bool = True,
         where: str = "", above_zero: bool = False) -> float | None:
    """A finite number (absent: None). positive: not negative; above_zero: greater than 0."""
    name = _dotted(where, key)
    if key not in d or d[key] is None:
        if required:
            raise _fail(path, f"missing `{name}`", f"add `{key} = <number>` (see targets/rpi4.toml)")
        return None
    value = d[key]
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _fail(path, f"`{name}` must be a number, got {_show(value)}", f"write `{key} = 1.5` without quotes")
    if not math.isfinite(value):
        raise _fail(path, f"`{name}` must be a finite number, got {value}", "use the published figure")
    if (positive or above_zero) and value < 0 or above_zero and value == 0:
        bound = "greater than 0" if above_zero else "not negative"
        raise _fail(path, f"`{name}` must be {bound} ({value})", "use the published figure")
    return float(value)


def _int(d: dict[str, Any], key: str, path: str, where: str = "", required: bool = False, minimum: int = 0,
         maximum: int | None = None) -> int | None:
    """A whole number in [minimum, maximum] (absent: None)."""
    name = _dotted(where, key)
    if isinstance(d.get(key), bool) or not isinstance(d.get(key, 0), int | float | None):
        raise _fail(path, f"`{name}` must be a whole number, got {_show(d[key])}", f"write `{key} = 4` without quotes")
    value = _num(d, key, path, required=required, positive=False, where=where)
    if value is None:
        return None
    if not value.is_integer() or value < minimum or (maximum is not None and value > maximum):
        bounds = f"between {minimum} and {maximum}" if maximum is not None else f"of at least {minimum}"
        raise _fail(path, f"`{name}` must be a whole number {bounds}, got {_show(d[key])}",
                    f"write `{key}` as a whole number {bounds} (no decimals, no quotes)")
    return int(value)


def _strs(d: dict[str, Any], key: str, path: str, where: str = "") -> tuple[str, ...]:
    value = d.get(key)
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(x, str) for x in value):
        raise _fail(path, f"`{_dotted(where, key)}` must be a list of strings, got {_show(value)}",
                    f'write `{key} = ["a", "b"]`')
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


def _check_sources(sources: dict[str, Any], path: str) -> dict[str, str]:
    """[sources]: field name -> text, each naming a field of the layout ("power", "power.idle_w", "cpu", ...)."""
    for key, value in sources.items():
        if not isinstance(value, str):
            raise _fail(path, f"`sources.{key}` must be text, got {_show(value)}",
                        f'write "{key}" = "vendor datasheet (URL)" or "derived: ..."')
        head, _, rest = str(key).partition(".")
        if head not in TOP_KEYS:
            word, known, prefix = head, TOP_KEYS, ""
        elif rest and head in TABLE_KEYS and rest.split(".")[0] not in TABLE_KEYS[head]:
            word, known, prefix = rest.split(".")[0], TABLE_KEYS[head], head + "."
        else:
            continue
        near = _nearest(word, known)
        fix = f"did you mean `{prefix}{near}`?" if near else f"name a field of the profile ({', '.join(known)})"
        raise _fail(path, f"[sources] names an unknown field `{key}`", f"{fix} (docs/targets.md lists every field)")
    return dict(sources)


def _clusters(cpu: dict[str, Any], path: str) -> list[CpuCluster]:
    raw = cpu.get("clusters")
    if raw is None:
        return []
    if not isinstance(raw, list):
        raise _fail(path, f"`cpu.clusters` must be a list of tables, got {_show(raw)}",
                    'write one [[cpu.clusters]] section per kind of core (name, cores, max_ghz, flops_per_cycle)')
    clusters = []
    for i, c in enumerate(raw):
        where = f"cpu.clusters[{i}]"
        if not isinstance(c, dict):
            raise _fail(path, f"`{where}` must be a table, got {_show(c)}",
                        'write [[cpu.clusters]] sections with name, cores, max_ghz, flops_per_cycle')
        _known_keys(c, CLUSTER_KEYS, where, path)
        if "name" not in c:
            raise _fail(path, f"{where} needs a `name`", 'e.g. name = "Cortex-A72"')
        fpc = _table(c, "flops_per_cycle", path, where)
        _known_keys(fpc, PRECISIONS, f"{where}.flops_per_cycle", path)
        clusters.append(CpuCluster(
            name=_text(c, "name", path, where), cores=int(_int(c, "cores", path, where, required=True, minimum=1) or 1),
            max_ghz=float(_num(c, "max_ghz", path, required=True, where=where, above_zero=True) or 0.0),
            flops_per_cycle={k: float(_num(fpc, k, path, where=f"{where}.flops_per_cycle") or 0.0) for k in fpc}))
    return clusters


def _transport_kinds() -> tuple[str, ...]:
    from edgekit.targets.transports import transport_kinds

    return transport_kinds()


def _transport(tr: dict[str, Any], path: str) -> TransportSpec:
    w = "transport"
    command = tr.get("command", [])
    if isinstance(command, str):
        raise _fail(path, "[transport] command must be a list of arguments, not one string",
                    'write command = ["my-npu-bench", "--model", "{artifact}"] (no shell is used)')
    if not isinstance(command, list) or not all(isinstance(x, str) for x in command):
        raise _fail(path, f"`transport.command` must be a list of strings, got {_show(command)}",
                    'write command = ["my-npu-bench", "--model", "{artifact}"] (no shell is used)')
    default = TransportSpec()
    return TransportSpec(
        kind=_choice(tr, "kind", path, _transport_kinds(), "local", w, "transport kind"),
        host=_text(tr, "host", path, w, None), user=_text(tr, "user", path, w, None), port=_int(tr, "port", path, w, minimum=1, maximum=65535),
        known_hosts=_text(tr, "known_hosts", path, w, None), identity_file=_text(tr, "identity_file", path, w, None),
        workdir=_text(tr, "workdir", path, w, default.workdir), python=_text(tr, "python", path, w, default.python),
        serial=_text(tr, "serial", path, w, None), benchmark_binary=_text(tr, "benchmark_binary", path, w, None),
        command=tuple(command), compute_units=_choice(tr, "compute_units", path, COMPUTE_UNITS, "ALL", w),
        connect_timeout_s=_num(tr, "connect_timeout_s", path, where=w, above_zero=True) or default.connect_timeout_s,
        timeout_s=_num(tr, "timeout_s", path, where=w, above_zero=True) or default.timeout_s,
        retries=_int(tr, "retries", path, w, minimum=1) or default.retries)


def parse_profile(data: dict[str, Any], path: str, name: str | None = None) -> TargetProfile:
    """Build a TargetProfile from TOML data; every problem is one EdgekitError naming the file and the fix. Unknown
    sections and keys are refused (with the nearest known one), as are values of the wrong type."""
    if not isinstance(data, dict):
        raise _fail(path, f"must be a table of fields, got {_show(data)}", "see targets/rpi4.toml for the layout")
    _known_keys(data, TOP_KEYS, "", path)
    tables = {key: _table(data, key, path) for key in (*TABLE_KEYS, "sources")}
    for key, known in TABLE_KEYS.items():
        _known_keys(tables[key], known, key, path)
    name = _text(data, "name", path, default=None) or name or Path(path).stem
    if not _NAME_RE.match(name):
        raise _fail(path, f"name {name!r} is not a valid target name", "use lowercase letters, digits, '-', '_'")
    clusters = _clusters(tables["cpu"], path)
    peaks_raw = tables["peak_gflops"]
    peaks = {k: float(_num(peaks_raw, k, path, where="peak_gflops") or 0.0) for k in peaks_raw}
    if not peaks and clusters:  # derived from the clusters when not given
        for prec in PRECISIONS:
            vals = [c.peak_gflops(prec) for c in clusters]
            if all(v is not None for v in vals):
                peaks[prec] = float(sum(v for v in vals if v is not None))
    power_raw = data.get("power")
    if not isinstance(power_raw, dict):
        raise _fail(path, "missing the [power] table", "add [power] with idle_w and active_w (W) and their source")
    power = PowerSpec(idle_w=float(_num(power_raw, "idle_w", path, required=True, where="power") or 0.0),
                      active_w=float(_num(power_raw, "active_w", path, required=True, where="power") or 0.0),
                      source=_text(power_raw, "source", path, "power"))
    if power.active_w < power.idle_w:
        raise _fail(path, f"[power] active_w {power.active_w} W is below idle_w {power.idle_w} W",
                    "active_w is the power while running inference, so it is at least idle_w")
    transport = _transport(tables["transport"], path)
    acc_raw = data.get("accelerator")
    accelerator = None
    if acc_raw is not None:
        if "name" not in acc_raw:
            raise _fail(path, "[accelerator] needs a `name`", 'e.g. name = "Edge TPU"')
        w = "accelerator"
        accelerator = Accelerator(name=_text(acc_raw, "name", path, w), tops=_num(acc_raw, "tops", path, where=w),
                                  precisions=_strs(acc_raw, "precisions", path, w) or ("int8",),
                                  formats=_strs(acc_raw, "formats", path, w), note=_text(acc_raw, "note", path, w))
    pred_raw, w = tables["predictor"], "predictor"
    figures = {k: _num(pred_raw, k, path, where=w, above_zero=k != "op_overhead_us")
               for k in ("compute_efficiency", "memory_efficiency", "op_overhead_us")}
    predictor = PredictorDefaults(**{k: v for k, v in figures.items() if v is not None},
                                  source=_text(pred_raw, "source", path, w, PredictorDefaults.source))
    sources = _check_sources(tables["sources"], path)
    profile = TargetProfile(
        name=name, description=_text(data, "description", path),
        kind=_choice(data, "kind", path, BOARD_KINDS, "board", what="device kind"), soc=_text(data, "soc", path),
        clusters=tuple(clusters), peak_gflops=peaks,
        memory_bandwidth_gbs=_num(data, "memory_bandwidth_gbs", path), ram_gb=_num(data, "ram_gb", path),
        power=power, transport=transport, accelerator=accelerator, memory=_text(data, "memory", path),
        os=_text(data, "os", path), formats=_strs(data, "formats", path), runtimes=_strs(data, "runtimes", path),
        delegates=_strs(data, "delegates", path), predictor=predictor, sources=sources, path=path)
    if path != "detected":
        missing = [f for f in numeric_fields(profile) if source_for(profile, f) is None]
        if missing:
            raise _fail(path, f"no source for {', '.join(missing)}",
                        'add them to [sources], e.g. "power.idle_w" = "vendor datasheet (URL)" or "derived: ..."')
    return profile


def load_profile_file(path: Path) -> TargetProfile:
    """Read one profile TOML file."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise EdgekitError(f"target profile {path} does not exist", "run `edgekit targets list`") from exc
    except UnicodeDecodeError as exc:
        raise _fail(str(path), f"is not UTF-8 text (byte {exc.start}: {exc.reason})",
                    "save the profile as UTF-8 (TOML files are UTF-8)") from exc
    except OSError as exc:
        raise _fail(str(path), f"cannot be read ({exc.strerror or exc})", "give a readable TOML file") from exc
    except tomllib.TOMLDecodeError as exc:
        raise _fail(str(path), f"is not valid TOML ({exc})", "fix the TOML syntax at that line") from exc
    return parse_profile(data, str(path), path.stem)


def builtin_dir() -> Path:
    """The built-in profiles: the checkout's `targets/` folder, else the copy shipped in the package
    (edgekit.paths)."""
    return paths.builtin_dir("targets")


def search_dirs(directory: Path | None = None) -> list[Path]:
    """`directory`, then $EDGEKIT_TARGETS, then the built-in profiles: the first folder with NAME.toml wins."""
    return paths.data_dirs("targets", directory)


def _plugin_profiles() -> dict[str, Any]:
    """name -> (plugin, source) of the profiles registered through the `register_targets` hook (later wins)."""
    from edgekit import plugins

    return {args[0]: (plugin, args[1]) for plugin, args in plugins.gather("register_targets")}


def _load_plugin(name: str, registered: tuple[str, Any]) -> TargetProfile:
    plugin, source = registered
    where = getattr(source, "where", None) or f"plugin {plugin} target {name}"
    try:
        value = source() if callable(source) and not isinstance(source, type | TargetProfile) else source
    except Exception as exc:
        raise EdgekitError(f"target plugin {where} failed to load ({type(exc).__name__}: {exc})",
                           "fix or uninstall the plugin package") from exc
    if isinstance(value, TargetProfile):
        return value
    if isinstance(value, str | Path):
        return load_profile_file(Path(value))
    if isinstance(value, dict):
        return parse_profile(value, where, name)
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
        return _load_plugin(name, plugins[name])
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
