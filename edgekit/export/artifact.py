"""Records of the export stage: an Artifact (one file in one format and precision) with its ParityReport,
and the Manifest (JSON beside the artifacts) that lists them. Plain, JSON-serialisable, schema-versioned."""

from __future__ import annotations

import json
from dataclasses import MISSING, asdict, dataclass, field
from pathlib import Path
from typing import Any

from edgekit import SCHEMA_VERSION
from edgekit.errors import EdgekitError
from edgekit.files import write_text
from edgekit.specs import TensorSpec

MANIFEST_NAME = "manifest.json"


@dataclass
class ParityReport:
    """How an artifact's outputs compare with PyTorch's on the same inputs.

    verdict: "pass" | "fail" | "inconclusive" (the PyTorch reference cannot judge: all zeros, constant, near-zero
    scale, ignores its input) | "not-executed" (validated but cannot run on this host) | "error" (running it failed).
    Each output is judged by its kind (`outputs`, one entry per output); the top-level figures are the worst over
    outputs: max_abs and max_rel (|a-b| / max|ref|, scale-relative) the largest, cosine, SNR and agreement the
    smallest, scale (max |ref|) the smallest. `note` names the failing output, metric, value and threshold.
    """

    verdict: str
    runtime: str | None = None
    runtime_version: str | None = None
    n_inputs: int = 0
    max_abs: float | None = None
    max_rel: float | None = None
    cosine: float | None = None
    top1_agreement: float | None = None
    tolerance: dict[str, float] = field(default_factory=dict)
    note: str = ""
    scale: float | None = None
    snr_db: float | None = None
    pixel_agreement: float | None = None
    tolerance_source: str = ""
    outputs: list[dict[str, Any]] = field(default_factory=list)
    first_divergence: str = ""

    @property
    def passed(self) -> bool:
        return self.verdict == "pass"


@dataclass
class Artifact:
    """One exported file. `path` is relative to the manifest's directory. status: "ok" | "failed"."""

    model: str
    format: str
    precision: str
    path: str | None
    status: str = "ok"  # "ok" | "failed" | "skipped" (variant not offered by the format)
    error: str | None = None
    size_bytes: int | None = None
    sha256: str | None = None
    spec_version: str | None = None  # ONNX opset, TFLite schema, CoreML spec version
    inputs: list[dict[str, Any]] = field(default_factory=list)
    outputs: list[str] = field(default_factory=list)
    converter: dict[str, str] = field(default_factory=dict)  # package -> version
    export_seconds: float | None = None
    parity: ParityReport | None = None
    details: dict[str, Any] = field(default_factory=dict)
    schema_version: int = SCHEMA_VERSION

    @property
    def key(self) -> str:
        return f"{self.format}/{self.precision}"

    def input_specs(self) -> list[TensorSpec]:
        return [TensorSpec.from_dict(d) for d in self.inputs]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Artifact:
        d = dict(d)
        parity = d.pop("parity", None)
        known = {f for f in cls.__dataclass_fields__}
        art = cls(**{k: v for k, v in d.items() if k in known})
        report_fields = set(ParityReport.__dataclass_fields__)  # a newer edgekit's extra parity fields are skipped
        art.parity = ParityReport(**{k: v for k, v in parity.items() if k in report_fields}) if parity else None
        return art


@dataclass
class Manifest:
    """All artifacts of one model export, written as manifest.json in the output directory."""

    model: str
    source: str
    edgekit_version: str
    created: str
    inputs: list[dict[str, Any]]
    outputs: list[str]
    task: str = "classification"
    artifacts: list[Artifact] = field(default_factory=list)
    schema_version: int = SCHEMA_VERSION
    # New attempts that failed where an earlier good artifact was kept: reported by the command, never written.
    rejected: list[Artifact] = field(default_factory=list, compare=False, repr=False)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d.pop("rejected")
        d["artifacts"] = [a.to_dict() for a in self.artifacts]
        return d

    def find(self, fmt: str, precision: str = "fp32") -> Artifact | None:
        for art in self.artifacts:
            if art.format == fmt and art.precision == precision:
                return art
        return None

    def upsert(self, artifact: Artifact) -> None:
        self.artifacts = [a for a in self.artifacts if a.key != artifact.key] + [artifact]

    def write(self, directory: Path) -> Path:
        """Atomically (re)write manifest.json (temporary file + os.replace), so a crash mid-export never leaves a
        half-written file and a link planted at its name is replaced, not followed. Mode follows the umask."""
        target = directory / MANIFEST_NAME
        try:
            directory.mkdir(parents=True, exist_ok=True)
            return write_text(target, json.dumps(self.to_dict(), indent=2, default=str))
        except OSError as exc:
            raise EdgekitError(f"cannot write {target} ({exc.strerror or exc})",
                               "free disk space, or export into a folder you can write to (--out)") from exc

    @classmethod
    def read(cls, path: Path) -> Manifest:
        """Read and type-check a manifest.json (or the one in a folder): anything malformed is one EdgekitError."""
        path = path / MANIFEST_NAME if path.is_dir() else path
        try:
            data = json.loads(path.read_text())
        except FileNotFoundError as exc:
            raise EdgekitError(f"manifest {path} does not exist", "run `edgekit export MODEL --out DIR` first") from exc
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise EdgekitError(f"manifest {path} is not valid JSON ({exc})", "export again to rewrite it") from exc
        except OSError as exc:
            raise EdgekitError(f"cannot read manifest {path} ({exc.strerror or exc})", "check the path") from exc
        if not isinstance(data, dict) or "artifacts" not in data or "model" not in data:
            raise EdgekitError(f"{path} is not an edgekit manifest", "point at the manifest.json `edgekit export` wrote")
        _check_types(data, cls, path, "")
        if not isinstance(data["artifacts"], list):
            _bad_field(path, "artifacts", data["artifacts"], "list")
        for i, entry in enumerate(data["artifacts"]):
            where = f"artifacts[{i}]"
            if not isinstance(entry, dict):
                _bad_field(path, where, entry, "object")
            _check_types(entry, Artifact, path, where + ".")
            if isinstance(entry.get("parity"), dict):
                _check_types(entry["parity"], ParityReport, path, where + ".parity.")
            for j, spec in enumerate(entry.get("inputs") or []):
                _check_spec(spec, path, f"{where}.inputs[{j}]")
        for j, spec in enumerate(data.get("inputs") or []):
            _check_spec(spec, path, f"inputs[{j}]")
        arts = [Artifact.from_dict(a) for a in data.pop("artifacts")]
        known = {f for f in cls.__dataclass_fields__} - {"rejected"}
        return cls(**{k: v for k, v in data.items() if k in known}, artifacts=arts)


# JSON types each annotation admits (annotations are strings under `from __future__ import annotations`).
_JSON_TYPES: dict[str, tuple[type, ...]] = {
    "str": (str,), "int": (int,), "float": (int, float), "list": (list,), "dict": (dict,), "None": (type(None),),
    "ParityReport": (dict,), "Artifact": (dict,),
}


def _bad_field(path: Path, where: str, value: Any, expected: str) -> None:
    shown = json.dumps(value, default=str)
    shown = shown if len(shown) <= 40 else shown[:37] + "..."
    raise EdgekitError(f"manifest {path}: {where} is {shown} ({type(value).__name__}), expected {expected}",
                       "export again to rewrite it (`edgekit export MODEL --out DIR`), or fix that field")


def _check_types(data: dict[str, Any], cls: type, path: Path, prefix: str) -> None:
    """Each field of `data` that `cls` knows has the JSON type its annotation names (bool is not a number), and
    every field without a default is present."""
    for name, f in cls.__dataclass_fields__.items():
        if name not in data:
            if f.default is MISSING and f.default_factory is MISSING:
                raise EdgekitError(f"manifest {path}: {prefix}{name} is missing",
                                   "export again to rewrite it (`edgekit export MODEL --out DIR`)")
            continue
        value, arms = data[name], [a.strip().split("[")[0] for a in str(f.type).split("|")]
        allowed = tuple(t for a in arms for t in _JSON_TYPES.get(a, (object,)))
        if isinstance(value, bool) and bool not in allowed and object not in allowed:
            _bad_field(path, prefix + name, value, " or ".join(arms))
        if not isinstance(value, allowed):
            _bad_field(path, prefix + name, value, " or ".join(arms))


def _check_spec(spec: Any, path: Path, where: str) -> None:
    try:
        if not isinstance(spec, dict):
            raise TypeError("not an object")
        TensorSpec.from_dict(spec)
    except (KeyError, TypeError, ValueError, EdgekitError) as exc:
        msg = exc.problem if isinstance(exc, EdgekitError) else f"{type(exc).__name__}: {exc}"
        raise EdgekitError(f"manifest {path}: {where} is not an input spec ({msg})",
                           'each input needs "name" and "shape" (a list of sizes); export again to rewrite it') from exc



def path_size(path: Path) -> int:
    """Size in bytes of a file or a directory tree."""
    if path.is_dir():
        return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
    return path.stat().st_size
