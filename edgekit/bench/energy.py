"""Energy per inference: real counters where the host has one, a documented power model where it does not.

Probes (one interface, `EnergyProbe`):
- `rapl`: Linux powercap/RAPL, /sys/class/powercap/intel-rapl:N/energy_uj (cumulative µJ, wraps at
  max_energy_range_uj). Top-level `package-*` zones are summed (sub-zones core/uncore/dram are inside them).
- `odpm`: Android On-Device Power Monitor rails, /sys/bus/iio/devices/iio:device*/energy_value (cumulative µWs = µJ
  per rail, lines `CHn(T=ms)[RAIL], value`); all rails are summed unless `rails` names some.
- `hwmon`: an INA219/INA226/INA260 current/power monitor under /sys/class/hwmon/hwmon*/ (power1_input, µW).
- `battery`: /sys/class/power_supply/*/current_now (µA) x voltage_now (µV); whole-device power, charger unplugged.
- `command`: an external meter: a command (argv list, never a shell string) that prints one JSON line,
  `{"energy_j": <cumulative J>}` or `{"power_w": <W>}`.
Counter probes (rapl, odpm, command with energy_j) are read before and after a window; power probes (hwmon, battery,
command with power_w) are sampled by a background thread and integrated (trapezoid rule).

Method (docs/bench.md): an idle window before the model is loaded gives the idle power P_idle (and its spread over
sub-windows, sigma_idle); the timed runs give E_active over t_active for n inferences; then
    J/inference = (E_active - P_idle * t_active) / n
    error band  = (sigma_idle * t_active + 2 * resolution_J) / n
labelled `measured`. Where no probe is readable, energy is `modeled` (see `modeled_energy`).
"""

from __future__ import annotations

import json
import math
import re
import shlex
import subprocess
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from edgekit.errors import EdgekitError

# Documented default for hosts without a power profile: dynamic power of one busy core above idle. A server or
# desktop x86 CPU's TDP divided by its cores is about 3.5-13 W (e.g. 225 W / 64 cores, 105 W / 8 cores); 5 W is a
# round middle figure. Put `[power] idle_w, active_w` in targets/local.toml to replace it.
DEFAULT_W_PER_CORE = 5.0


def _read(path: Path) -> str:
    return path.read_text().strip()


class EnergyProbe:
    """A source of energy readings. `kind` is "counter" (read() -> cumulative joules) or "power" (read() -> watts).

    `resolution_j` is the smallest energy step the source can resolve (used in the error band)."""

    name: str = "probe"
    kind: str = "counter"
    resolution_j: float = 0.0

    def available(self) -> tuple[bool, str]:
        """(True, "") when readable now, else (False, why not)."""
        raise NotImplementedError

    def read(self) -> float:
        raise NotImplementedError

    def spec(self) -> dict[str, Any]:
        """JSON description from which `probe_from_spec` rebuilds the probe (in the benchmark child)."""
        raise NotImplementedError


# -- Linux powercap / RAPL ------------------------------------------------------------------------------------------


@dataclass
class RaplZone:
    path: Path
    name: str
    max_range_uj: int
    last_uj: int = 0
    total_uj: int = 0


class RaplProbe(EnergyProbe):
    """Sum of the top-level RAPL zones (package-*, or all top-level zones when none is called package), counter
    wrap-around handled per zone against max_energy_range_uj. Read at least once per wrap period (hours at
    typical power) — `read()` accumulates, so callers that read at the start and end of a window are fine."""

    name = "rapl"
    kind = "counter"
    resolution_j = 1e-6 * 61  # RAPL's energy unit is 15.3-61 µJ depending on the CPU; take the coarse one

    def __init__(self, root: Path = Path("/"), domains: list[str] | None = None) -> None:
        self.root = Path(root)
        self.domains = domains
        self._zones: list[RaplZone] | None = None

    def _find(self) -> list[RaplZone]:
        base = self.root / "sys/class/powercap"
        zones: list[RaplZone] = []
        if not base.is_dir():
            return zones
        top = sorted(p for p in base.glob("intel-rapl:*") if re.fullmatch(r"intel-rapl:\d+", p.name))
        named = [(p, (_safe(p / "name") or p.name)) for p in top]
        if self.domains:
            chosen = [(p, n) for p, n in named if n in self.domains or p.name in self.domains]
        else:
            chosen = [(p, n) for p, n in named if n.startswith("package")] or named
        for p, n in chosen:
            rng = _safe(p / "max_energy_range_uj")
            zones.append(RaplZone(p, n, int(rng) if rng and rng.isdigit() else 0))
        return zones

    def available(self) -> tuple[bool, str]:
        zones = self._find()
        if not zones:
            return False, "no RAPL zones under /sys/class/powercap"
        try:
            for z in zones:
                int(_read(z.path / "energy_uj"))
        except PermissionError:
            return False, ("RAPL counters exist but only root can read them (sudo chmod a+r "
                           "/sys/class/powercap/intel-rapl:*/energy_uj)")
        except (OSError, ValueError) as exc:
            return False, f"RAPL counter unreadable ({exc})"
        return True, ""

    def read(self) -> float:
        if self._zones is None:
            self._zones = self._find()
            for z in self._zones:
                z.last_uj = int(_read(z.path / "energy_uj"))
            return 0.0
        for z in self._zones:
            now = int(_read(z.path / "energy_uj"))
            delta = now - z.last_uj
            if delta < 0:  # the counter wrapped past max_energy_range_uj back to 0
                delta += z.max_range_uj
            z.total_uj += delta
            z.last_uj = now
        return sum(z.total_uj for z in self._zones) * 1e-6

    def spec(self) -> dict[str, Any]:
        return {"kind": "rapl", "root": str(self.root), "domains": self.domains}


def _safe(path: Path) -> str | None:
    try:
        return _read(path)
    except OSError:
        return None


# -- Android ODPM ---------------------------------------------------------------------------------------------------

_ODPM_LINE = re.compile(r"CH(?P<ch>\d+)\(T=(?P<t>\d+)\)\[(?P<rail>[^\]]+)\],\s*(?P<value>\d+)")


class OdpmProbe(EnergyProbe):
    """Android ODPM rails (Pixel 6 and later): cumulative µWs per rail in iio:device*/energy_value."""

    name = "odpm"
    kind = "counter"
    resolution_j = 1e-6

    def __init__(self, root: Path = Path("/"), rails: list[str] | None = None) -> None:
        self.root = Path(root)
        self.rails = rails

    def _files(self) -> list[Path]:
        base = self.root / "sys/bus/iio/devices"
        return sorted(base.glob("iio:device*/energy_value")) if base.is_dir() else []

    def rail_values(self) -> dict[str, int]:
        """Current cumulative value per rail name, µJ."""
        out: dict[str, int] = {}
        for f in self._files():
            for m in _ODPM_LINE.finditer(_read(f)):
                out[m["rail"]] = int(m["value"])
        return out

    def available(self) -> tuple[bool, str]:
        if not self._files():
            return False, "no ODPM energy_value files under /sys/bus/iio/devices"
        try:
            rails = self.rail_values()
        except PermissionError:
            return False, "ODPM rails exist but are not readable (needs adb root or a shell with access)"
        if not rails:
            return False, "ODPM energy_value has no rails"
        if self.rails and not set(self.rails) & set(rails):
            return False, f"none of the rails {self.rails} exists (have {sorted(rails)})"
        return True, ""

    def read(self) -> float:
        values = self.rail_values()
        chosen = {k: v for k, v in values.items() if not self.rails or k in self.rails}
        return sum(chosen.values()) * 1e-6

    def spec(self) -> dict[str, Any]:
        return {"kind": "odpm", "root": str(self.root), "rails": self.rails}


# -- hwmon INA219/INA226/INA260 ---------------------------------------------------------------------------------------

HWMON_CHIPS = ("ina219", "ina226", "ina230", "ina231", "ina260")


class HwmonPowerProbe(EnergyProbe):
    """An INA2xx power monitor exposed by the Linux hwmon driver: power1_input in µW."""

    name = "hwmon"
    kind = "power"
    resolution_j = 0.0

    def __init__(self, root: Path = Path("/"), chip: str | None = None) -> None:
        self.root = Path(root)
        self.chip = chip

    def _file(self) -> Path | None:
        base = self.root / "sys/class/hwmon"
        for d in sorted(base.glob("hwmon*")) if base.is_dir() else []:
            name = _safe(d / "name") or ""
            if (self.chip and name == self.chip) or (not self.chip and name in HWMON_CHIPS):
                if (d / "power1_input").exists():
                    return d / "power1_input"
        return None

    def available(self) -> tuple[bool, str]:
        f = self._file()
        if f is None:
            return False, f"no {self.chip or '/'.join(HWMON_CHIPS)} hwmon device with power1_input"
        try:
            float(_read(f))
        except (OSError, ValueError) as exc:
            return False, f"{f} unreadable ({exc})"
        return True, ""

    def read(self) -> float:
        f = self._file()
        if f is None:
            raise OSError("hwmon power monitor disappeared")
        return float(_read(f)) * 1e-6

    def spec(self) -> dict[str, Any]:
        return {"kind": "hwmon", "root": str(self.root), "chip": self.chip}


# -- battery ----------------------------------------------------------------------------------------------------------


class BatteryProbe(EnergyProbe):
    """Whole-device power from a battery fuel gauge: |current_now| (µA) x voltage_now (µV). Unplug the charger."""

    name = "battery"
    kind = "power"
    resolution_j = 0.0

    def __init__(self, root: Path = Path("/"), supply: str | None = None) -> None:
        self.root = Path(root)
        self.supply = supply

    def _dir(self) -> Path | None:
        base = self.root / "sys/class/power_supply"
        for d in sorted(base.iterdir()) if base.is_dir() else []:
            if self.supply and d.name != self.supply:
                continue
            if (_safe(d / "type") or "").lower() == "battery" and (d / "current_now").exists() \
                    and (d / "voltage_now").exists():
                return d
        return None

    def available(self) -> tuple[bool, str]:
        d = self._dir()
        if d is None:
            return False, "no battery with current_now and voltage_now under /sys/class/power_supply"
        status = (_safe(d / "status") or "").lower()
        if status in ("charging", "full"):
            return False, f"the battery is {status}: unplug the charger so current_now measures the device"
        return True, ""

    def read(self) -> float:
        d = self._dir()
        if d is None:
            raise OSError("battery disappeared")
        return abs(float(_read(d / "current_now"))) * float(_read(d / "voltage_now")) * 1e-12

    def spec(self) -> dict[str, Any]:
        return {"kind": "battery", "root": str(self.root), "supply": self.supply}


# -- external meter command -------------------------------------------------------------------------------------------


class CommandProbe(EnergyProbe):
    """An external meter: `argv` prints one JSON line, {"energy_j": cumulative J} or {"power_w": W}."""

    name = "command"
    resolution_j = 0.0

    def __init__(self, argv: list[str] | str, timeout_s: float = 5.0) -> None:
        self.argv = shlex.split(argv) if isinstance(argv, str) else list(argv)
        self.timeout_s = timeout_s
        self.kind = "counter"
        self._key = "energy_j"

    def _call(self) -> dict[str, Any]:
        proc = subprocess.run(self.argv, capture_output=True, text=True, timeout=self.timeout_s, check=False)
        if proc.returncode != 0:
            raise OSError(f"energy command {self.argv[0]} exited {proc.returncode}: {proc.stderr.strip()[:200]}")
        lines = [ln for ln in proc.stdout.splitlines() if ln.strip()]
        if not lines:
            raise OSError(f"energy command {self.argv[0]} printed nothing")
        data = json.loads(lines[-1])
        if not isinstance(data, dict):
            raise ValueError("not a JSON object")
        return data

    def available(self) -> tuple[bool, str]:
        try:
            data = self._call()
        except (OSError, ValueError, subprocess.TimeoutExpired) as exc:
            return False, f"energy command failed ({exc})"
        if "energy_j" in data:
            self.kind, self._key = "counter", "energy_j"
        elif "power_w" in data:
            self.kind, self._key = "power", "power_w"
        else:
            return False, 'energy command must print {"energy_j": J} or {"power_w": W}'
        return True, ""

    def read(self) -> float:
        return float(self._call()[self._key])

    def spec(self) -> dict[str, Any]:
        return {"kind": "command", "argv": self.argv, "timeout_s": self.timeout_s}


PROBES: dict[str, type[EnergyProbe]] = {
    "rapl": RaplProbe, "odpm": OdpmProbe, "hwmon": HwmonPowerProbe, "battery": BatteryProbe, "command": CommandProbe,
}
AUTO_ORDER = ("rapl", "hwmon", "odpm", "battery")


def probe_from_spec(spec: dict[str, Any]) -> EnergyProbe:
    spec = dict(spec)
    kind = spec.pop("kind")
    if kind not in PROBES:
        raise EdgekitError(f"unknown energy probe {kind!r}", f"use one of {', '.join(PROBES)}")
    if "root" in spec:
        spec["root"] = Path(spec["root"])
    probe = PROBES[kind](**spec)
    if isinstance(probe, CommandProbe):
        probe.available()  # learns whether the command reports energy or power
    return probe


def detect_probe(root: Path = Path("/"), choice: str = "auto") -> tuple[EnergyProbe | None, list[str]]:
    """The probe to use: `choice` is auto | none | modeled | rapl | odpm | hwmon | battery.

    Returns (probe or None, reasons why the others were not usable). An explicitly named probe that is not readable
    raises an EdgekitError."""
    if choice in ("none", "modeled"):
        return None, [f"energy probe disabled (--energy {choice})"]
    if choice != "auto" and choice not in AUTO_ORDER:
        raise EdgekitError(f"unknown energy probe {choice!r}",
                           "use --energy auto|none|modeled|rapl|odpm|hwmon|battery, or --energy-command CMD")
    reasons: list[str] = []
    for name in AUTO_ORDER if choice == "auto" else (choice,):
        probe = PROBES[name](root=root)
        ok, why = probe.available()
        if ok:
            return probe, reasons
        reasons.append(f"{name}: {why}")
    if choice != "auto":
        raise EdgekitError(f"energy probe {choice} is not readable here ({reasons[-1]})",
                           "use --energy auto to fall back to modeled energy")
    return None, reasons


# -- measuring a window -----------------------------------------------------------------------------------------------


@dataclass
class EnergyWindow:
    """Energy over one window: joules, seconds, and the spread of power between sub-windows/samples (W)."""

    joules: float
    seconds: float
    power_std_w: float | None = None
    readings: int = 0

    @property
    def watts(self) -> float:
        return self.joules / self.seconds if self.seconds > 0 else 0.0


class EnergyMeter:
    """Measures windows with one probe. Counter probes: read at start and stop (nothing runs in between, so the
    timed loop is undisturbed). Power probes: a daemon thread samples every `interval_s` and integrates."""

    def __init__(self, probe: EnergyProbe, interval_s: float = 0.05) -> None:
        self.probe = probe
        self.interval_s = interval_s
        self._t0 = 0.0
        self._e0 = 0.0
        self._samples: list[tuple[float, float]] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        probe.read()  # prime counters that accumulate (RAPL) so the first window starts from a real reading

    def _sample(self) -> None:
        while not self._stop.wait(self.interval_s):
            self._samples.append((time.perf_counter(), self.probe.read()))

    def start(self) -> None:
        self._t0 = time.perf_counter()
        if self.probe.kind == "counter":
            self._e0 = self.probe.read()
            return
        self._samples = [(self._t0, self.probe.read())]
        self._stop.clear()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()

    def stop(self) -> EnergyWindow:
        if self.probe.kind == "counter":
            e1 = self.probe.read()
            t1 = time.perf_counter()
            return EnergyWindow(joules=e1 - self._e0, seconds=t1 - self._t0, readings=2)
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self._samples.append((time.perf_counter(), self.probe.read()))
        return _integrate(self._samples)

    def idle(self, seconds: float, parts: int = 5) -> EnergyWindow:
        """Idle power over `seconds`, split into `parts` sub-windows whose spread gives sigma_idle."""
        parts = max(2, parts)
        windows = []
        for _ in range(parts):
            self.start()
            time.sleep(seconds / parts)
            windows.append(self.stop())
        joules = sum(w.joules for w in windows)
        secs = sum(w.seconds for w in windows)
        watts = [w.watts for w in windows]
        mean = sum(watts) / len(watts)
        std = math.sqrt(sum((w - mean) ** 2 for w in watts) / (len(watts) - 1))
        return EnergyWindow(joules=joules, seconds=secs, power_std_w=std, readings=sum(w.readings for w in windows))


def _integrate(samples: list[tuple[float, float]]) -> EnergyWindow:
    joules = sum((t1 - t0) * (p0 + p1) / 2 for (t0, p0), (t1, p1) in zip(samples, samples[1:], strict=False))
    secs = samples[-1][0] - samples[0][0]
    powers = [p for _, p in samples]
    mean = sum(powers) / len(powers)
    std = math.sqrt(sum((p - mean) ** 2 for p in powers) / (len(powers) - 1)) if len(powers) > 1 else None
    return EnergyWindow(joules=joules, seconds=secs, power_std_w=std, readings=len(samples))


# -- results ----------------------------------------------------------------------------------------------------------


@dataclass
class EnergyResult:
    """Energy per inference (J) above idle, with its error band (J) and provenance (measured | modeled)."""

    provenance: str
    j_per_inference: float
    error_band_j: float | None
    source: str  # probe name, or "power-model"
    assumption: str
    inferences: int
    window_s: float
    idle_w: float | None = None
    active_w: float | None = None
    details: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> EnergyResult:
        return cls(**{k: v for k, v in d.items() if k in cls.__dataclass_fields__})


def measured_energy(probe: EnergyProbe, idle: EnergyWindow, active: EnergyWindow, inferences: int) -> EnergyResult:
    """J/inference = (E_active - P_idle * t_active) / n; band = (sigma_idle * t_active + 2 * resolution) / n."""
    n = max(1, inferences)
    above_idle = active.joules - idle.watts * active.seconds
    sigma = idle.power_std_w or 0.0
    band = (sigma * active.seconds + 2 * probe.resolution_j) / n
    if probe.kind == "power" and active.power_std_w is not None and active.readings > 1:
        band += active.power_std_w * active.seconds / math.sqrt(active.readings) / n
    return EnergyResult(
        provenance="measured",
        j_per_inference=above_idle / n,
        error_band_j=band,
        source=probe.name,
        assumption=f"{probe.name} {probe.kind}, idle baseline {idle.watts:.3f} W over {idle.seconds:.2f} s "
                   f"subtracted",
        inferences=n,
        window_s=active.seconds,
        idle_w=idle.watts,
        active_w=active.watts,
        details={"probe": probe.spec(), "active_j": active.joules, "idle_std_w": sigma},
    )


@dataclass(frozen=True)
class PowerProfile:
    """A target's power figures (W): idle and fully active. `source` says where they come from."""

    idle_w: float
    active_w: float
    source: str
    assumption: str


def power_profile(target: Any = "local", cores_used: int = 1, directory: Path | None = None) -> PowerProfile:
    """Power figures for a target, from its profile's `[power] idle_w, active_w` (and `source`). `target` is a
    TargetProfile, or a name or a path to a profile TOML resolved by edgekit.targets.profile.load_target (the one
    parser of target TOML; `directory` is searched first). `local` without a local.toml: DEFAULT_W_PER_CORE x cores
    used above an idle of 0 W."""
    from edgekit.targets.profile import TargetProfile, load_target, search_dirs

    if isinstance(target, TargetProfile):
        profile = target
    elif target == "local" and not any((d / "local.toml").is_file() for d in search_dirs(directory)):
        profile = None
    else:
        profile = load_target(str(target), directory)
    if profile is not None and profile.path != "detected":  # detected: `local` measured here, no published figure
        where = Path(profile.path).name if profile.path.endswith(".toml") else profile.path
        idle, active = profile.power.idle_w, profile.power.active_w
        src = profile.power.source or profile.sources.get("power") or where
        return PowerProfile(idle, active, f"{where} [power]",
                            f"active {active:g} W - idle {idle:g} W from {where} (source: {src})")
    active = DEFAULT_W_PER_CORE * cores_used
    return PowerProfile(0.0, active, "edgekit default",
                        f"no power counter readable; {DEFAULT_W_PER_CORE:g} W per busy core x {cores_used} cores "
                        f"(edgekit default, about a desktop/server CPU's TDP per core); put [power] idle_w/active_w "
                        f"in targets/local.toml for this CPU's figures")


def modeled_energy(mean_latency_ms: float, std_latency_ms: float, inferences: int, profile: PowerProfile,
                   why: str = "") -> EnergyResult:
    """J/inference = latency_s x (active_w - idle_w): the energy the inference adds above idle (the same quantity
    the measured path yields after subtracting its idle baseline). The band covers only run-to-run latency spread
    (std x power), not the power model's own error, which is unknown."""
    dyn = profile.active_w - profile.idle_w
    return EnergyResult(
        provenance="modeled",
        j_per_inference=mean_latency_ms / 1000.0 * dyn,
        error_band_j=std_latency_ms / 1000.0 * dyn,
        source="power-model",
        assumption=profile.assumption + (f" ({why})" if why else ""),
        inferences=inferences,
        window_s=mean_latency_ms / 1000.0 * inferences,
        idle_w=profile.idle_w,
        active_w=profile.active_w,
        details={"profile_source": profile.source},
    )
