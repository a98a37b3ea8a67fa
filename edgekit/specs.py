"""Input/output signatures and model cards (models/*.toml)."""

from __future__ import annotations

import math
import re
import tomllib
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edgekit import paths
from edgekit.errors import EdgekitError

DTYPES = ("float32", "float16", "int64", "int32", "bool")
PRECISIONS = ("fp32", "fp16", "int8", "int8-static", "int4")

# Default parity tolerances per precision (documented in docs/export.md). Errors are measured
# relative to the scale of the reference output: max_abs <= atol + rtol * max|ref|.
# Per output kind (export.outputs): min_pixel for dense per-pixel agreement, min_snr_db for embeddings/regression;
# an output whose max |ref| is below min_scale makes the verdict inconclusive.
DEFAULT_TOLERANCES: dict[str, dict[str, float]] = {
    "fp32": {"atol": 1e-4, "rtol": 1e-3, "min_cosine": 0.99999, "min_top1": 1.0, "min_pixel": 0.999,
             "min_snr_db": 40.0, "min_scale": 1e-6},
    "fp16": {"atol": 1e-2, "rtol": 1e-2, "min_cosine": 0.999, "min_top1": 0.95, "min_pixel": 0.99,
             "min_snr_db": 25.0, "min_scale": 1e-6},
    "int8": {"atol": 0.1, "rtol": 0.1, "min_cosine": 0.98, "min_top1": 0.80, "min_pixel": 0.90,
             "min_snr_db": 12.0, "min_scale": 1e-6},
    "int8-static": {"atol": 0.2, "rtol": 0.2, "min_cosine": 0.95, "min_top1": 0.70, "min_pixel": 0.85,
                    "min_snr_db": 10.0, "min_scale": 1e-6},
    "int4": {"atol": 0.3, "rtol": 0.3, "min_cosine": 0.90, "min_top1": 0.60, "min_pixel": 0.80,
             "min_snr_db": 7.0, "min_scale": 1e-6},
}


@dataclass(frozen=True)
class TensorSpec:
    """One named input or output. `dynamic` maps axis index -> symbolic name (e.g. {0: "batch"}).

    For integer inputs (token ids, categorical features) random examples are drawn from [low, high).
    """

    name: str
    shape: tuple[int, ...]
    dtype: str = "float32"
    dynamic: dict[int, str] = field(default_factory=dict)
    low: float = 0.0
    high: float = 1.0

    def __post_init__(self) -> None:
        if self.dtype not in DTYPES:
            raise EdgekitError(f"input {self.name!r}: unknown dtype {self.dtype!r}", f"use one of {', '.join(DTYPES)}")
        if not self.shape or any(int(d) <= 0 for d in self.shape):
            raise EdgekitError(f"input {self.name!r}: shape {self.shape} must have positive sizes", "e.g. 1x3x224x224")

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["shape"] = list(self.shape)
        d["dynamic"] = {str(k): v for k, v in self.dynamic.items()}
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TensorSpec:
        return cls(
            name=str(d["name"]),
            shape=tuple(int(x) for x in d["shape"]),
            dtype=str(d.get("dtype", "float32")),
            dynamic={int(k): str(v) for k, v in (d.get("dynamic") or {}).items()},
            low=float(d.get("low", 0.0)),
            high=float(d.get("high", 1.0)),
        )

    def random(self, rng: np.random.Generator) -> np.ndarray:
        """A seeded random example of this shape and dtype."""
        if self.dtype.startswith("int"):
            hi = max(int(self.high), int(self.low) + 1)
            return rng.integers(int(self.low), hi, size=self.shape).astype(self.dtype)
        if self.dtype == "bool":
            return rng.random(self.shape) < 0.5
        return rng.standard_normal(self.shape).astype(self.dtype)


# Model names become file names (NAME.fp32.onnx) and folder names (artifacts/NAME): the same rule as target names
# (edgekit.targets.profile), so no name can hold '/', '..' or an absolute path.
MODEL_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9._-]*$")
# An input may take at most this share of the available memory: export and bench hold several copies of it
# (seeded examples, float64 draws before the cast, torch tensors, outputs).
INPUT_MEMORY_SHARE = 0.5


def check_input_memory(spec: TensorSpec) -> TensorSpec:
    """Refuse an input whose array would not fit in memory, before anything allocates it (one line, no MemoryError)."""
    import psutil

    nbytes = math.prod(spec.shape) * np.dtype(spec.dtype).itemsize
    available = psutil.virtual_memory().available
    if nbytes > available * INPUT_MEMORY_SHARE:
        shape = "x".join(map(str, spec.shape))
        raise EdgekitError(
            f"input {spec.name!r} ({shape}:{spec.dtype}) needs {nbytes / 2**30:,.1f} GiB, more than half of the "
            f"{available / 2**30:,.1f} GiB of memory available here",
            "give smaller --input sizes (the shapes the model really takes, e.g. batch 1)",
        )
    return spec


_INPUT_RE = re.compile(r"^(?P<name>[A-Za-z_][\w.]*):(?P<shape>\d+(?:x\d+)*)(?::(?P<dtype>\w+))?$")


def parse_input_option(text: str) -> TensorSpec:
    """Parse `--input name:1x3x224x224:float32` (dtype optional, default float32)."""
    m = _INPUT_RE.match(text.strip())
    if not m:
        raise EdgekitError(
            f"cannot read input spec {text!r}",
            "write it as NAME:DIMxDIM...[:DTYPE], e.g. --input pixels:1x3x224x224:float32",
        )
    dtype = m["dtype"] or "float32"
    shape = tuple(int(x) for x in m["shape"].split("x"))
    high = 100.0 if dtype.startswith("int") else 1.0
    return check_input_memory(TensorSpec(name=m["name"], shape=shape, dtype=dtype, high=high))


@dataclass(frozen=True)
class ModelCard:
    """A model card (models/NAME.toml): which zoo entry, its config, inputs, tolerances and budgets."""

    name: str
    model: str
    task: str
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[str, ...] = ("output",)
    config: dict[str, Any] = field(default_factory=dict)
    description: str = ""
    formats: tuple[str, ...] = ("onnx", "tflite", "coreml")
    tolerances: dict[str, dict[str, float]] = field(default_factory=dict)
    budgets: dict[str, float] = field(default_factory=dict)
    unsupported: dict[str, str] = field(default_factory=dict)  # format -> reason recorded by a failed export
    output_kinds: dict[str, str] = field(default_factory=dict)  # output -> KIND[:CLASS_AXIS] (export.outputs)
    domain: str | None = None
    labels: tuple[str, ...] = ()
    source: str = ""
    paper: str = ""
    checkpoint: str = ""  # the trained state: a state_dict file, relative to the card's folder (or absolute, ~)

    def checkpoint_path(self) -> Path | None:
        """Where the card's trained weights are (`checkpoint = "..."`), or None when it names none."""
        if not self.checkpoint:
            return None
        path = Path(self.checkpoint).expanduser()
        return path if path.is_absolute() or not self.source else Path(self.source).parent / path

    def tolerance(self, precision: str) -> dict[str, float]:
        base = dict(DEFAULT_TOLERANCES.get(precision, DEFAULT_TOLERANCES["fp32"]))
        base.update(self.tolerances.get(precision, {}))
        return base

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["inputs"] = [t.to_dict() for t in self.inputs]
        return d


def load_card(path: Path) -> ModelCard:
    """Read a model card TOML file; malformed files raise one clear EdgekitError."""
    if not path.is_file():
        raise EdgekitError(f"model card {path} does not exist", "check the path, or run `edgekit models list`")
    try:
        data = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise EdgekitError(f"model card {path} is not valid TOML ({exc})", "fix the TOML syntax at that line") from exc
    name = data.get("name", path.stem)
    if not isinstance(name, str) or not MODEL_NAME_RE.match(name):
        raise EdgekitError(f"model card {path}: name {name!r} is not a valid model name",
                           "set name = \"...\" with lowercase letters, digits, '.', '-', '_' (it names the exported files)")
    try:
        inputs = tuple(TensorSpec.from_dict(d) for d in data["inputs"])
        return ModelCard(
            name=name,
            model=str(data["model"]),
            task=str(data.get("task", "classification")),
            inputs=inputs,
            outputs=tuple(data.get("outputs", ["output"])),
            config=dict(data.get("config", {})),
            description=str(data.get("description", "")),
            formats=tuple(data.get("formats", ["onnx", "tflite", "coreml"])),
            tolerances={k: dict(v) for k, v in data.get("tolerances", {}).items()},
            budgets={k: float(v) for k, v in data.get("budgets", {}).items()},
            unsupported={k: str(v) for k, v in data.get("unsupported", {}).items()},
            output_kinds={k: str(v) for k, v in data.get("output_kinds", {}).items()},
            domain=data.get("domain"),
            labels=tuple(data.get("labels", [])),
            source=str(path),
            paper=str(data.get("paper", "")),
            checkpoint=str(data.get("checkpoint", "")),
        )
    except EdgekitError:
        raise
    except (KeyError, TypeError, ValueError) as exc:
        raise EdgekitError(
            f"model card {path} is missing or has a bad field ({exc!r})",
            "compare it with models/gem-tiny.toml: `model`, `task` and [[inputs]] with name/shape/dtype are required",
        ) from exc


def cards_dir() -> Path:
    """The built-in model cards: the checkout's `models/` folder, else the copy shipped in the package
    (edgekit.paths)."""
    return paths.builtin_dir("models")


def card_files() -> dict[str, Path]:
    """name -> card file: $EDGEKIT_MODELS folders first (a user's card overrides a built-in one), then the built-ins."""
    return paths.data_files("models")


def list_cards() -> list[ModelCard]:
    return [load_card(p) for p in card_files().values()]


def find_card(name: str) -> ModelCard | None:
    path = paths.find_data_file("models", name)
    return load_card(path) if path is not None else None
