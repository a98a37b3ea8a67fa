"""The export stage: LoadedModel -> artifacts in every asked format and precision, each with a parity report,
listed in manifest.json (rewritten after every artifact, so a later failure loses nothing).

A failure in one format or precision is recorded in the manifest (status "failed", one-line error) and does not
stop the others. Artifacts whose model fingerprint and file hash are unchanged are reused (the export cache).
"""

from __future__ import annotations

import datetime as dt
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgekit import __version__
from edgekit.errors import EdgekitError
from edgekit.export.artifact import FORMAT_SUFFIX, Artifact, Manifest, ParityReport, file_sha256, path_size
from edgekit.export.capture import captured_output
from edgekit.export.failures import explain_failure, graph_operators
from edgekit.export.parity import check_parity, parity_inputs, reference_outputs
from edgekit.modelsource import LoadedModel, load_model
from edgekit.runtime.base import dist_version
from edgekit.specs import DEFAULT_TOLERANCES

FORMATS = ("onnx", "tflite", "coreml", "torch")
QUANTIZED = ("fp16", "int8", "int8-static", "int4")
# Which quantized precisions each format offers.
SUPPORTED: dict[str, tuple[str, ...]] = {
    "onnx": ("fp32", "fp16", "int8", "int8-static", "int4"),
    "tflite": ("fp32", "fp16", "int8", "int8-static", "int4"),
    "coreml": ("fp32", "fp16", "int8", "int4"),
    "torch": ("fp32",),
}
_CONVERTER_PACKAGES = {
    "onnx": ("torch", "onnx", "onnxscript", "onnxslim", "onnxruntime"),
    "tflite": ("torch", "litert-torch", "ai-edge-litert", "ai-edge-quantizer"),
    "coreml": ("torch", "coremltools"),
    "torch": ("torch",),
}

ProgressFn = Callable[[str, str, str], None]  # (format, precision, phase)


@dataclass(frozen=True)
class ExportOptions:
    formats: tuple[str, ...] = ("onnx", "tflite", "coreml")
    precisions: tuple[str, ...] = ()  # quantized variants besides fp32
    n_random: int = 4
    seed: int = 0
    reuse: bool = True


def parse_list(text: str | None, allowed: tuple[str, ...], what: str) -> tuple[str, ...]:
    """'a,b' -> ('a', 'b'), each checked against `allowed`."""
    if not text:
        return ()
    items = tuple(x.strip().lower() for x in text.split(",") if x.strip())
    bad = [x for x in items if x not in allowed]
    if bad:
        raise EdgekitError(f"unknown {what} {', '.join(bad)}", f"use any of {', '.join(allowed)}")
    return items


def _versions(packages: tuple[str, ...]) -> dict[str, str]:
    return {pkg: dist_version(pkg) or "missing" for pkg in packages}


def artifact_filename(model: str, fmt: str, precision: str) -> str:
    return f"{model}.{precision}{FORMAT_SUFFIX[fmt]}"


def _keep_float(loaded: LoadedModel) -> list[str]:
    fn = getattr(loaded.module, "high_precision_modules", None)
    return list(fn()) if callable(fn) else []


class Exporter:
    """Exports one LoadedModel into `out_dir`, one artifact at a time."""

    def __init__(self, loaded: LoadedModel, out_dir: Path, options: ExportOptions,
                 progress: ProgressFn | None = None) -> None:
        self.loaded = loaded
        self.out_dir = out_dir
        self.options = options
        self.progress = progress or (lambda f, p, phase: None)
        self.fingerprint = loaded.fingerprint()
        self.feeds = parity_inputs(loaded, options.n_random, options.seed)
        self._refs: list[list[np.ndarray]] | None = None
        previous = None
        if options.reuse and (out_dir / "manifest.json").is_file():
            try:
                previous = Manifest.read(out_dir)
            except EdgekitError:
                previous = None
        self.previous = previous if previous and previous.model == loaded.name else None
        self.manifest = Manifest(
            model=loaded.name,
            source=loaded.source,
            edgekit_version=__version__,
            created=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            inputs=[s.to_dict() for s in loaded.inputs],
            outputs=list(loaded.outputs),
            task=loaded.task,
        )

    @property
    def refs(self) -> list[list[np.ndarray]]:
        """PyTorch outputs on the parity inputs, computed once and only when an artifact is really checked."""
        if self._refs is None:
            self._refs = reference_outputs(self.loaded, self.feeds)
        return self._refs

    def tolerance(self, precision: str) -> dict[str, float]:
        if self.loaded.card is not None:
            return self.loaded.card.tolerance(precision)
        return dict(DEFAULT_TOLERANCES[precision])

    def run(self) -> Manifest:
        self.out_dir.mkdir(parents=True, exist_ok=True)
        for fmt in self.options.formats:
            precisions = ("fp32",) + tuple(p for p in self.options.precisions if p in SUPPORTED[fmt])
            for precision in precisions:
                self.manifest.upsert(self.export_one(fmt, precision))
                self.manifest.write(self.out_dir)
            for precision in self.options.precisions:
                if precision not in SUPPORTED[fmt]:
                    self.manifest.upsert(Artifact(
                        model=self.loaded.name, format=fmt, precision=precision, path=None, status="skipped",
                        error=f"{fmt} has no {precision} variant in edgekit (supported: {', '.join(SUPPORTED[fmt])})"))
                    self.manifest.write(self.out_dir)
        return self.manifest

    def _cached(self, fmt: str, precision: str, path: Path) -> Artifact | None:
        if self.previous is None:
            return None
        old = self.previous.find(fmt, precision)
        if (old is None or old.status != "ok" or old.details.get("fingerprint") != self.fingerprint
                or (old.parity is not None and old.parity.verdict == "error")
                or not path.exists() or file_sha256(path) != old.sha256):
            return None
        old.details["cache"] = "hit"
        return old

    def export_one(self, fmt: str, precision: str) -> Artifact:
        name = artifact_filename(self.loaded.name, fmt, precision)
        path = self.out_dir / name
        cached = self._cached(fmt, precision, path)
        if cached is not None:
            self.progress(fmt, precision, "cached")
            return cached
        card = self.loaded.card
        art = Artifact(model=self.loaded.name, format=fmt, precision=precision, path=name,
                       inputs=[s.to_dict() for s in self.loaded.inputs], outputs=list(self.loaded.outputs),
                       converter=_versions(_CONVERTER_PACKAGES[fmt]))
        art.details["fingerprint"] = self.fingerprint
        if card is not None and fmt in card.unsupported:
            art.details["card_note"] = card.unsupported[fmt]
        self.progress(fmt, precision, "convert")
        start = time.perf_counter()
        try:
            with captured_output():
                art.details.update(self._convert(fmt, precision, path))
        except Exception as exc:
            if os.environ.get("EDGEKIT_DEBUG"):
                raise
            err = explain_failure(fmt, exc, graph_operators(self.loaded.module, self.loaded.example_tensors()))
            art.status, art.error, art.path = "failed", err.one_line(), None
            art.export_seconds = time.perf_counter() - start
            return art
        art.export_seconds = time.perf_counter() - start
        art.size_bytes = path_size(path)
        art.sha256 = file_sha256(path)
        self.progress(fmt, precision, "parity")
        with captured_output():
            art.parity, art.spec_version = self._parity(fmt, precision, path)
        return art

    def _float_path(self, fmt: str) -> Path:
        path = self.out_dir / artifact_filename(self.loaded.name, fmt, "fp32")
        if not path.exists():
            raise EdgekitError(f"the fp32 {fmt} artifact failed, so its {fmt} variants cannot be made",
                               "fix the fp32 export first (see its error)")
        return path

    def _convert(self, fmt: str, precision: str, path: Path) -> dict[str, str]:
        calibration = self.feeds  # the parity inputs double as calibration inputs
        if fmt == "onnx":
            from edgekit.export.onnx import export_onnx
            from edgekit.export.quantize import quantize_onnx

            if precision == "fp32":
                return export_onnx(self.loaded, path)
            return quantize_onnx(self._float_path(fmt), path, precision, calibration, _keep_float(self.loaded))
        if fmt == "tflite":
            from edgekit.export.tflite import export_tflite, quantize_tflite

            if precision == "fp32":
                return export_tflite(self.loaded, path)
            return quantize_tflite(self._float_path(fmt), path, precision, calibration, _keep_float(self.loaded))
        if fmt == "coreml":
            from edgekit.export.coreml import export_coreml

            return export_coreml(self.loaded, path, precision)
        if fmt == "torch":
            from edgekit.export.torchprog import export_torch

            return export_torch(self.loaded, path)
        raise EdgekitError(f"unknown format {fmt!r}", f"use one of {', '.join(FORMATS)}")

    def _parity(self, fmt: str, precision: str, path: Path) -> tuple[ParityReport, str | None]:
        from edgekit.runtime import runtime_for_format

        tol = self.tolerance(precision)
        spec_version: str | None = None
        try:
            if fmt == "onnx":
                from edgekit.export.onnx import onnx_opset

                spec_version = onnx_opset(path)
            elif fmt == "tflite":
                from edgekit.export.tflite import tflite_schema_version

                spec_version = tflite_schema_version(path)
            elif fmt == "coreml":
                from edgekit.export.coreml import validate_coreml
                from edgekit.runtime.coreml import CoreMLRuntime

                spec_version, note = validate_coreml(path, self.loaded.inputs, self.loaded.outputs)
                if not CoreMLRuntime().available():
                    return ParityReport(verdict="not-executed", runtime="coreml", n_inputs=0, tolerance=tol,
                                        note=note), spec_version
            session = runtime_for_format(fmt).load(path)
            return check_parity(self.loaded, session, self.feeds, self.refs, tol), spec_version
        except Exception as exc:
            if os.environ.get("EDGEKIT_DEBUG"):
                raise
            msg = exc.one_line() if isinstance(exc, EdgekitError) else f"{type(exc).__name__}: {str(exc)[:240]}"
            return ParityReport(verdict="error", tolerance=tol, note=f"running the artifact failed: {msg}"), spec_version


def export_model(
    model_ref: str | LoadedModel,
    out_dir: Path,
    formats: tuple[str, ...] = ("onnx", "tflite", "coreml"),
    precisions: tuple[str, ...] = (),
    input_options: list[str] | None = None,
    n_random: int = 4,
    seed: int = 0,
    reuse: bool = True,
    progress: ProgressFn | None = None,
) -> Manifest:
    """Export a model (a reference string or an already loaded model) and return its manifest."""
    loaded = model_ref if isinstance(model_ref, LoadedModel) else load_model(model_ref, input_options, seed=seed)
    options = ExportOptions(formats=formats, precisions=precisions, n_random=n_random, seed=seed, reuse=reuse)
    np.random.seed(seed)
    return Exporter(loaded, Path(out_dir), options, progress).run()
