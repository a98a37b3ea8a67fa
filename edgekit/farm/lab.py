"""A lab of devices, described in TOML (`farm.toml`, docs/farm.md), and the cells a farm run measures on it.

```toml
[farm]
name = "lab1"                 # names the run groups (farm-lab1-<time>)
retries = 3                   # attempts per cell when its device fails (unreachable, dropped, crashed)
retry_delay_s = 5.0           # a device that failed gets no work for this long

[matrix]                      # what to measure (the command line's --models/--formats/... override it)
models = ["gem-tiny"]
formats = ["onnx", "tflite"]
precisions = ["fp32"]
targets = ["rpi4"]            # device labels; default: the first label of every device
repeat = 1                    # runs per cell, each its own cell (`#1`, `#2`, ...)

[bench]                       # how to measure (edgekit.bench.runner.BenchConfig fields)
runs = 50
min_time_s = 1.0

[[device]]
name = "rpi4-01"              # also its Ray resource: {"rpi4-01": 1}
profile = "rpi4"              # a target profile (`edgekit targets list`)
transport = "ssh"             # local | ssh | adb | macos | command (default: the profile's)
address = "pi@192.168.1.42"   # ssh/macos: [user@]host[:port]; adb: the serial
labels = ["rpi4", "arm64"]    # the matrix's targets it can serve (default: [profile])
```

Optional per device: `known_hosts`, `identity_file`, `python`, `workdir`, `connect_timeout_s`, `timeout_s`. The
loader is strict: an unknown table or key, a wrong type, a duplicate device name, an ssh device without an address
is one error line naming the file and the key.
"""

from __future__ import annotations

import difflib
import re
import tomllib
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from edgekit.errors import EdgekitError
from edgekit.farm.plan import LABEL_RE, Cell, expand

NAME_RE = re.compile(r"^[a-z0-9][a-z0-9._-]{0,62}$")
TRANSPORTS = ("local", "ssh", "adb", "macos", "command")
_RESERVED = {"cpu", "gpu", "memory", "object_store_memory"}  # Ray's own resource names


@dataclass(frozen=True)
class Device:
    """One device of the lab. `name` is its Ray custom resource: one job at a time holds it."""

    name: str
    profile: str = "local"
    transport: str = ""  # "" = the profile's own [transport] kind
    address: str = ""
    labels: tuple[str, ...] = ()
    known_hosts: str | None = None
    identity_file: str | None = None
    python: str | None = None
    workdir: str | None = None
    connect_timeout_s: float | None = None
    timeout_s: float | None = None

    def serves(self, target: str) -> bool:
        return target in (self.name, self.profile, *self.labels)

    def stored_target(self) -> str:
        """The target recorded on its runs: the profile, and `local@<name>` for a `local` device (as `runs import`
        does for another machine's local runs)."""
        return f"local@{self.name}" if self.profile == "local" else self.profile

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class FarmCell:
    """A cell of a farm run: a matrix cell and, with repeat > 1, its repetition."""

    cell: Cell
    rep: int = 0
    repeat: int = 1

    @property
    def key(self) -> str:
        return self.cell.key + (f"#{self.rep + 1}" if self.repeat > 1 else "")

    def to_dict(self) -> dict[str, Any]:
        return {"key": self.key, **asdict(self.cell), "rep": self.rep}


@dataclass
class Lab:
    """A farm file, loaded and checked."""

    path: Path
    name: str
    devices: list[Device]
    matrix: dict[str, Any] = field(default_factory=dict)
    bench: dict[str, Any] = field(default_factory=dict)
    retries: int = 3
    retry_delay_s: float = 5.0
    address: str | None = None

    def device(self, name: str) -> Device:
        return next(d for d in self.devices if d.name == name)

    def cells(self, models: list[str] | None = None, formats: list[str] | None = None,
              precisions: list[str] | None = None, targets: list[str] | None = None,
              repeat: int | None = None) -> list[FarmCell]:
        """The matrix (command line over [matrix]), each cell checked to have a device that serves it."""
        m = self.matrix
        models = models or m.get("models")
        if not models:
            raise EdgekitError(f"{self.path}: no models to measure",
                               "give --models, or `models = [...]` under [matrix] in the farm file")
        targets = targets or m.get("targets") or list(dict.fromkeys(d.labels[0] for d in self.devices))
        for t in targets:
            if not any(d.serves(t) for d in self.devices):
                raise EdgekitError(f"no device of {self.path} serves target {t!r}",
                                   f"add {t!r} to a device's labels, or use one of "
                                   f"{', '.join(sorted({lb for d in self.devices for lb in (d.name, *d.labels)}))}")
        repeat = repeat or int(m.get("repeat", 1))
        cells = expand(models, formats or m.get("formats") or ["onnx"], precisions or m.get("precisions") or ["fp32"],
                       targets)
        return [FarmCell(c, r, repeat) for r in range(repeat) for c in cells]


_TOP = {"farm": {"name": str, "retries": int, "retry_delay_s": (int, float), "address": str},
        "matrix": {"models": list, "formats": list, "precisions": list, "targets": list, "repeat": int},
        "bench": {"warmup": int, "runs": int, "min_time_s": (int, float), "max_time_s": (int, float),
                  "threads": int, "provider": str, "energy": str, "idle_s": (int, float), "seed": int},
        "device": None}
_DEVICE = {f.name: f.type for f in fields(Device)}


def _bad(path: Path, where: str, why: str, fix: str) -> EdgekitError:
    return EdgekitError(f"farm file {path}: {where} {why}", fix)


def _nearest(word: str, known: list[str]) -> str:
    close = difflib.get_close_matches(word, known, n=1)
    return f"did you mean {close[0]!r}? " if close else ""


def _check_table(path: Path, where: str, table: Any, spec: dict[str, Any]) -> None:
    if not isinstance(table, dict):
        raise _bad(path, where, "must be a table", f"write it as [{where}] with key = value lines")
    for key, value in table.items():
        if key not in spec:
            raise _bad(path, f"{where}.{key}", "is not a known key",
                       f"{_nearest(key, list(spec))}known keys: {', '.join(spec)}")
        want = spec[key]
        if want is not None and (not isinstance(value, want) or isinstance(value, bool)):
            kind = want.__name__ if isinstance(want, type) else "number"
            raise _bad(path, f"{where}.{key}", f"must be a {kind}, not {value!r}", "fix the value's type")


def _address(path: Path, where: str, transport: str, address: str) -> dict[str, Any]:
    """ssh/macos `[user@]host[:port]` as DeviceOptions fields; adb: the serial."""
    if transport == "adb":
        return {"serial": address or None}
    if transport not in ("ssh", "macos"):
        return {}
    m = re.fullmatch(r"(?:(?P<user>[^@\s]+)@)?(?P<host>\[[^\]\s]+\]|[^:@\s]+)(?::(?P<port>\d{1,5}))?", address)
    if not address or not m or (m["port"] and not 0 < int(m["port"]) < 65536):
        raise _bad(path, f"{where}.address", f"{address!r} is not [user@]host[:port]",
                   'give the device\'s SSH address, e.g. address = "pi@192.168.1.42:22"')
    return {"host": m["host"].strip("[]"), "user": m["user"], "port": int(m["port"]) if m["port"] else None}


def device_options(device: Device, path: Path | None = None) -> dict[str, Any]:
    """The DeviceOptions fields (edgekit.targets.remote) that reach this device."""
    opts = _address(path or Path("farm.toml"), f"device {device.name!r}", device.transport, device.address)
    for key in ("known_hosts", "identity_file", "python", "workdir", "connect_timeout_s", "timeout_s"):
        if getattr(device, key) is not None:
            opts[key] = getattr(device, key)
    return opts


def load_lab(path: Path) -> Lab:
    """Read and check a farm file; every problem is one EdgekitError naming the file and the key."""
    path = Path(path)
    try:
        doc = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise EdgekitError(f"farm file {path} does not exist",
                           "write one (docs/farm.md shows the layout) or give its path with --farm") from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise EdgekitError(f"cannot read farm file {path} ({getattr(exc, 'strerror', None) or exc})",
                           "check the path and its permissions") from exc
    except tomllib.TOMLDecodeError as exc:
        raise EdgekitError(f"farm file {path} is not valid TOML ({exc})", "fix the line it names") from exc
    for key in doc:
        if key not in _TOP:
            raise _bad(path, f"[{key}]", "is not a known table", f"{_nearest(key, list(_TOP))}known tables: "
                       f"{', '.join(f'[{k}]' for k in _TOP if k != 'device')}, [[device]]")
    for key in ("farm", "matrix", "bench"):
        _check_table(path, key, doc.get(key, {}), _TOP[key])
    farm, matrix = doc.get("farm", {}), doc.get("matrix", {})
    for key in ("models", "formats", "precisions", "targets"):
        if key in matrix and not all(isinstance(v, str) and v for v in matrix[key]):
            raise _bad(path, f"matrix.{key}", "must be a list of names", f'e.g. {key} = ["a", "b"]')
    raw = doc.get("device", [])
    if not isinstance(raw, list) or not raw:
        raise _bad(path, "[[device]]", "is missing: a farm needs at least one device",
                   'add [[device]] tables with name, profile, transport and address (docs/farm.md)')
    devices: list[Device] = []
    spec = {k: (tuple if k == "labels" else None) for k in _DEVICE}
    for i, table in enumerate(raw):
        where = f"device #{i + 1}"
        _check_table(path, where, table, {k: None for k in spec})
        name = table.get("name")
        if not isinstance(name, str) or not NAME_RE.match(name) or name in _RESERVED:
            raise _bad(path, f"{where}.name", f"{name!r} is not a usable device name",
                       "use lowercase letters, digits, '.', '_' and '-' (it is also the device's Ray resource)")
        where = f"device {name!r}"
        for key in ("profile", "transport", "address", "known_hosts", "identity_file", "python", "workdir"):
            if key in table and not isinstance(table[key], str):
                raise _bad(path, f"{where}.{key}", f"must be text, not {table[key]!r}", "quote the value")
        for key in ("connect_timeout_s", "timeout_s"):
            if key in table and (isinstance(table[key], bool) or not isinstance(table[key], int | float)
                                 or table[key] <= 0):
                raise _bad(path, f"{where}.{key}", f"must be a number of seconds > 0, not {table[key]!r}",
                           "give seconds, e.g. 30")
        labels = table.get("labels", [table.get("profile", "local")])
        if not isinstance(labels, list) or not labels or not all(isinstance(x, str) and LABEL_RE.match(x)
                                                                  for x in labels):
            raise _bad(path, f"{where}.labels", f"must be a non-empty list of labels, not {labels!r}",
                       'e.g. labels = ["rpi4", "arm64"]')
        profile = table.get("profile", "local")
        transport = table.get("transport") or ""
        if not transport:
            if profile == "local":
                transport = "local"
            else:
                from edgekit.targets.profile import load_target

                transport = load_target(profile).transport.kind
        if transport not in TRANSPORTS:
            raise _bad(path, f"{where}.transport", f"{transport!r} is not a transport",
                       f"use one of {', '.join(TRANSPORTS)}")
        dev = Device(name=name, profile=profile, transport=transport, address=table.get("address", ""),
                     labels=tuple(labels), **{k: table[k] for k in ("known_hosts", "identity_file", "python",
                                                                  "workdir", "connect_timeout_s", "timeout_s")
                                              if k in table})
        if any(d.name == name for d in devices):
            raise _bad(path, f"{where}.name", "is used twice", "give every device its own name")
        device_options(dev, path)  # checks the address
        devices.append(dev)
    for dev in devices:  # the profiles exist (a typo is not a run on another machine)
        if dev.profile != "local":
            from edgekit.targets.profile import load_target

            load_target(dev.profile)
    name = farm.get("name") or path.stem
    if not NAME_RE.match(name):
        raise _bad(path, "farm.name", f"{name!r} is not a usable name", "use lowercase letters, digits, '.', '_', '-'")
    retries = farm.get("retries", 3)
    if not 1 <= retries <= 100:
        raise _bad(path, "farm.retries", f"{retries} is outside 1..100", "give the attempts per cell, e.g. 3")
    delay = float(farm.get("retry_delay_s", 5.0))
    if not 0 <= delay <= 3600:
        raise _bad(path, "farm.retry_delay_s", f"{delay} is outside 0..3600 s", "give seconds, e.g. 5")
    return Lab(path=path, name=name, devices=devices, matrix=matrix, bench=doc.get("bench", {}), retries=retries,
               retry_delay_s=delay, address=farm.get("address"))
