"""Records of the export stage: an Artifact (one file in one format and precision) with its ParityReport,
and the Manifest (JSON beside the artifacts) that lists them. Plain, JSON-serialisable, schema-versioned."""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from edgekit import SCHEMA_VERSION
from edgekit.errors import EdgekitError
from edgekit.specs import TensorSpec

MANIFEST_NAME = "manifest.json"
FORMAT_SUFFIX = {"onnx": ".onnx", "tflite": ".tflite", "coreml": ".mlpackage", "torch": ".pt2"}


@dataclass
class ParityReport:
    """How an artifact's outputs compare with PyTorch's on the same inputs.

    verdict: "pass" | "fail" | "not-executed" (validated but cannot run on this host) | "error" (running it failed).
    Errors are over all outputs and all inputs; max_rel is |a-b| / max(|ref|) (scale-relative, not element-wise, so
    near-zero references do not explode it).
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
        art.parity = ParityReport(**parity) if parity else None
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

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
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
        """Atomically (re)write manifest.json, so a crash mid-export never leaves a half-written file."""
        directory.mkdir(parents=True, exist_ok=True)
        target = directory / MANIFEST_NAME
        fd, tmp = tempfile.mkstemp(dir=directory, prefix=".manifest.", suffix=".json")
        with os.fdopen(fd, "w") as fh:
            json.dump(self.to_dict(), fh, indent=2, default=str)
        os.replace(tmp, target)
        return target

    @classmethod
    def read(cls, path: Path) -> Manifest:
        path = path / MANIFEST_NAME if path.is_dir() else path
        try:
            data = json.loads(path.read_text())
        except FileNotFoundError as exc:
            raise EdgekitError(f"manifest {path} does not exist", "run `edgekit export MODEL --out DIR` first") from exc
        except json.JSONDecodeError as exc:
            raise EdgekitError(f"manifest {path} is not valid JSON ({exc})", "export again to rewrite it") from exc
        if not isinstance(data, dict) or "artifacts" not in data or "model" not in data:
            raise EdgekitError(f"{path} is not an edgekit manifest", "point at the manifest.json `edgekit export` wrote")
        arts = [Artifact.from_dict(a) for a in data.pop("artifacts")]
        known = {f for f in cls.__dataclass_fields__}
        return cls(**{k: v for k, v in data.items() if k in known}, artifacts=arts)


def file_sha256(path: Path) -> str:
    """sha256 of a file, or of a directory's files in sorted order (a .mlpackage is a directory)."""
    h = hashlib.sha256()
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    for p in files:
        if path.is_dir():
            h.update(str(p.relative_to(path)).encode())
        with open(p, "rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                h.update(chunk)
    return h.hexdigest()


def path_size(path: Path) -> int:
    """Size in bytes of a file or a directory tree."""
    if path.is_dir():
        return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
    return path.stat().st_size
