"""Calibration inputs for static int8: where they come from, said out loud.

In order of preference:
1. `--calibration PATH`: an .npz keyed by input name, or a folder of .npy files (NAME.npy per input; for a
   one-input model any *.npy files, sorted). Each array is one sample (the input's shape) or a stack of samples
   along a new first axis; a stack whose samples lack the batch axis of a batch-1 input gets it added.
2. The model card's own source: GEM-style text classifiers (one int64 `input_ids` input) take samples of the eval
   suite's training split when the suite is cached on this host (`edgekit eval-data`).
3. Random inputs drawn from each input's spec (the parity inputs). Ranges from random data are not the ranges of real
   data, so the manifest and the export table say so (`random_fallback`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgekit.errors import EdgekitError
from edgekit.modelsource import LoadedModel
from edgekit.specs import TensorSpec

MAX_SAMPLES = 64  # MinMax ranges settle well before this; more only slows the export


@dataclass
class Calibration:
    feeds: list[dict[str, np.ndarray]]
    source: str  # "file:PATH" | "card:evalsuite-train" | "random"

    @property
    def random_fallback(self) -> bool:
        return self.source == "random"

    def describe(self) -> str:
        if self.random_fallback:
            return (f"RANDOM inputs ({len(self.feeds)} seeded draws from the input specs): ranges may not match real "
                    "data — pass --calibration FILE.npz")
        return f"{len(self.feeds)} samples from {self.source}"


def _samples(name: str, arr: np.ndarray, spec: TensorSpec, origin: str) -> list[np.ndarray]:
    shape = tuple(spec.shape)
    dyn = {int(a) for a in spec.dynamic}

    def fits(s: tuple[int, ...]) -> bool:
        return len(s) == len(shape) and all(a == b or i in dyn for i, (a, b) in enumerate(zip(s, shape, strict=True)))

    if fits(arr.shape):
        out = [arr]
    elif arr.ndim == len(shape) + 1 and fits(arr.shape[1:]):
        out = list(arr)
    elif shape and shape[0] == 1 and arr.ndim == len(shape) and fits((1,) + arr.shape[1:]):
        out = [a[None] for a in arr]  # N samples stacked on the batch axis of a batch-1 input
    else:
        raise EdgekitError(f"calibration data {origin}: {name!r} has shape {list(arr.shape)}, the input is "
                           f"{list(shape)}", f"store one sample of shape {list(shape)} or a stack [N, *shape]")
    try:
        return [np.ascontiguousarray(a.astype(spec.dtype, copy=False)) for a in out]
    except (TypeError, ValueError) as exc:
        raise EdgekitError(f"calibration data {origin}: {name!r} has dtype {arr.dtype}, the input is {spec.dtype}",
                           f"save it as {spec.dtype}") from exc


def load_calibration(path: Path, inputs: list[TensorSpec], limit: int = MAX_SAMPLES) -> list[dict[str, np.ndarray]]:
    """Feeds from an .npz (keyed by input name) or a folder of .npy files. Never unpickles (allow_pickle=False)."""
    path = Path(path)
    names = [s.name for s in inputs]
    arrays: dict[str, np.ndarray] = {}
    try:
        if path.is_dir():
            files = sorted(path.glob("*.npy"))
            by_name = {f.stem: f for f in files}
            if all(n in by_name for n in names):
                arrays = {n: np.load(by_name[n], allow_pickle=False) for n in names}
            elif len(names) == 1 and files:
                loaded = [np.load(f, allow_pickle=False) for f in files]
                spec = inputs[0]
                arrays = {names[0]: np.stack(loaded) if all(a.shape == tuple(spec.shape) for a in loaded)
                          else np.concatenate([a if a.ndim > len(spec.shape) else a[None] for a in loaded])}
            else:
                raise EdgekitError(f"calibration folder {path} has no {', '.join(n + '.npy' for n in names)}",
                                   "save one NAME.npy per input (a stack of samples along the first axis)")
        elif path.suffix == ".npz" and path.is_file():
            with np.load(path, allow_pickle=False) as npz:
                missing = [n for n in names if n not in npz.files]
                if missing:
                    raise EdgekitError(f"calibration file {path} has no array for input(s) {', '.join(missing)} "
                                       f"(it has {', '.join(npz.files) or 'none'})",
                                       "key each array by the model's input name: np.savez(PATH, NAME=array)")
                arrays = {n: npz[n] for n in names}
        elif not path.exists():
            raise EdgekitError(f"calibration data {path} does not exist", "pass an .npz file or a folder of .npy files")
        else:
            raise EdgekitError(f"calibration data {path} is neither an .npz file nor a folder",
                               "pass an .npz keyed by input name, or a folder of .npy files")
    except (OSError, ValueError) as exc:
        raise EdgekitError(f"cannot read calibration data {path} ({exc})",
                           "write it with numpy.savez / numpy.save (no pickled objects)") from exc
    per_input = [_samples(s.name, arrays[s.name], s, str(path)) for s in inputs]
    n = min(len(x) for x in per_input)
    if n == 0:
        raise EdgekitError(f"calibration data {path} holds no samples", "store at least one sample per input")
    return [{s.name: per_input[i][k] for i, s in enumerate(inputs)} for k in range(min(n, limit))]


def card_calibration(loaded: LoadedModel, limit: int = MAX_SAMPLES) -> list[dict[str, np.ndarray]] | None:
    """Samples of the eval suite's training split for a card-defined token classifier (GEM), when the suite is
    already cached on this host; None otherwise (building it is `edgekit eval-data`'s job, not export's)."""
    if loaded.card is None or len(loaded.inputs) != 1:
        return None
    spec = loaded.inputs[0]
    if spec.name != "input_ids" or not spec.dtype.startswith("int") or len(spec.shape) != 2:
        return None
    try:
        from edgekit.evalsuite.data import DOMAINS, SuiteConfig, load_domain

        config = SuiteConfig(vocab_size=int(spec.high), seq_len=int(spec.shape[1]))
        if not all((config.cache_root() / f"{d}.json").is_file() for d in DOMAINS):
            return None
        per_domain = max(1, limit // len(DOMAINS))
        rows = [load_domain(d, config).train_ids[:per_domain] for d in DOMAINS]
    except Exception:  # the suite is an optional source: any problem means "not available"
        return None
    ids = np.concatenate(rows)[:limit]
    batch = int(spec.shape[0])
    return [{spec.name: ids[i:i + batch].astype(spec.dtype)} for i in range(0, len(ids) - batch + 1, batch)]


def calibration_for(loaded: LoadedModel, path: Path | None, fallback: list[dict[str, np.ndarray]]) -> Calibration:
    """The calibration inputs for `loaded`: the user's file, else the card's source, else `fallback` (random)."""
    if path is not None:
        return Calibration(load_calibration(path, loaded.inputs), f"file:{path}")
    card = card_calibration(loaded)
    if card:
        return Calibration(card, "card:evalsuite-train")
    return Calibration(list(fallback), "random")


def calibration_of(exporter) -> Calibration:
    """The export's calibration inputs, resolved once per export (an Exporter: loaded, options, feeds)."""
    calib = getattr(exporter, "_calibration", None)
    if calib is None:
        calib = calibration_for(exporter.loaded, exporter.options.calibration, exporter.feeds)
        exporter._calibration = calib
    return calib


def calibration_details(exporter, precision: str, details: dict[str, str]) -> dict[str, str]:
    """Manifest details of a variant that was calibrated (the quantizer set `calibration_inputs`): where its
    calibration inputs came from, and a loud `calibration_warning` when they were random. int8 variants also get
    `quant_key`, so the export cache redoes them when --calibration or --target changes."""
    if precision.startswith("int8"):
        details["quant_key"] = quant_key(exporter)
    if "calibration_inputs" not in details:
        return details
    calib = calibration_of(exporter)
    details["calibration"] = calib.describe()
    details["calibration_source"] = calib.source
    if calib.random_fallback:
        details["calibration_warning"] = ("calibrated on random inputs, not real data: activation ranges may be wrong "
                                          "for real inputs — pass --calibration FILE.npz (keyed by input name)")
    return details


def quant_key(exporter) -> str:
    """What besides the model decides an int8 variant: calibration source and target CPU (for the export cache)."""
    cal = exporter.options.calibration
    stamp = ""
    if cal is not None and Path(cal).exists():
        stamp = str(int(Path(cal).stat().st_mtime_ns))
    return f"{cal or 'default'}@{stamp}|isa={target_isa(exporter.options.target)}"


def target_isa(target: str | None) -> str:
    """"arm" or "x86": the CPU family int8 activation types are chosen for. Empty or "local" is this host; a target
    profile is Arm when its CPU, SoC or OS says so (Cortex, aarch64, Apple A-series, Snapdragon, Tensor)."""
    import platform
    import re

    if not target or target == "local":
        machine = platform.machine().lower()
        return "arm" if machine.startswith(("arm", "aarch64")) else "x86"
    if target in ("arm", "arm64", "aarch64"):
        return "arm"
    if target in ("x86", "x86_64", "amd64"):
        return "x86"
    from edgekit.targets.profile import load_target

    profile = load_target(target)  # an unknown name is one EdgekitError listing the known ones
    words = " ".join([profile.soc, profile.os, profile.description] + [c.name for c in profile.clusters]).lower()
    return "arm" if re.search(r"aarch64|arm|cortex|apple a\d|snapdragon|tensor|rockchip|rk3588", words) else "x86"
