"""The export stage: LoadedModel -> artifacts in every asked format and precision, each with a parity report,
listed in manifest.json (rewritten after every artifact, so a later failure loses nothing).

The manifest starts from the one already in the folder (when edgekit wrote it for the same model), so exporting
one format keeps the records of the others. A failure in one format or precision is recorded in the manifest
(status "failed", one-line error) and does not stop the others — unless the folder already holds a good artifact for
that format and precision: then the good record stays and the failure is reported (Manifest.rejected) instead.
Artifacts whose model fingerprint and file hash are unchanged are reused (the export cache).

Every file is converted in a staging folder inside the output folder and renamed into place (edgekit/files.py), so
nothing is written outside the output folder, through a planted link, or left half-written after a failure.
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
from edgekit.export.artifact import (
    MANIFEST_NAME,
    Artifact,
    Manifest,
    ParityReport,
    path_size,
)
from edgekit.export.capture import captured_output
from edgekit.export.failures import explain_failure, graph_operators
from edgekit.export.parity import (
    calibrated_tolerance,
    check_parity,
    output_kinds,
    parity_inputs,
    reference_outputs,
)
from edgekit.files import file_sha256, install, output_path, staging
from edgekit.formats import get_format
from edgekit.modelsource import LoadedModel, load_model
from edgekit.runtime.base import dist_version
from edgekit.specs import DEFAULT_TOLERANCES

QUANTIZED = ("fp16", "int8", "int8-static", "int4")  # which ones each format offers: edgekit.formats

ProgressFn = Callable[[str, str, str], None]  # (format, precision, phase)


@dataclass(frozen=True)
class ExportOptions:
    formats: tuple[str, ...] = ("onnx", "tflite", "coreml")
    precisions: tuple[str, ...] = ()  # quantized variants besides fp32
    n_random: int = 4
    seed: int = 0
    reuse: bool = True
    calibration: Path | None = None  # --calibration: .npz or folder of .npy (export.calibration)
    target: str = ""  # --target: picks int8 activation types for its CPU (x86 U8S8, Arm S8S8)
    localize: bool = False  # --localize: name the first diverging module even when parity passes (always on fail)
    eval_data: str | None = None  # --eval-data: an .npz (inputs + labels) or "suite": top-1 per artifact
    max_accuracy_drop: float | None = None  # --max-accuracy-drop: int8 keeps sensitive layers float (export.accuracy)


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
    return f"{model}.{precision}{get_format(fmt).suffix}"


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
        self._ops: list[str] | None = None
        self._eval: tuple | None = None  # (EvalData, PyTorch logits, PyTorch top-1), loaded on first use
        existing = _existing_manifest(out_dir, loaded.name)
        self.previous = existing if options.reuse else None  # the export cache
        self.manifest = Manifest(
            model=loaded.name,
            source=loaded.source,
            edgekit_version=__version__,
            created=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            inputs=[s.to_dict() for s in loaded.inputs],
            outputs=list(loaded.outputs),
            task=loaded.task or "inferred",
            artifacts=list(existing.artifacts) if existing else [],
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
        for fmt in self.options.formats:  # every output name is checked before anything is written
            for precision in ("fp32",) + self.options.precisions:
                self.output(fmt, precision)
        self._prepare_out_dir()
        for fmt in self.options.formats:
            supported = get_format(fmt).precisions
            precisions = ("fp32",) + tuple(p for p in self.options.precisions if p in supported)
            for precision in precisions:
                art = self.export_one(fmt, precision)
                self._accuracy(art)
                self.record(art)
            for precision in self.options.precisions:
                if precision not in supported:
                    self.record(Artifact(
                        model=self.loaded.name, format=fmt, precision=precision, path=None, status="skipped",
                        error=f"{fmt} has no {precision} variant in edgekit (supported: {', '.join(supported)})"))
        return self.manifest

    def output(self, fmt: str, precision: str) -> Path:
        """Where an artifact goes: a plain name directly inside the output folder (else one EdgekitError)."""
        return output_path(self.out_dir, artifact_filename(self.loaded.name, fmt, precision))

    def _prepare_out_dir(self) -> None:
        """Create the output folder and prove it is writable, so an unusable --out is one line, not a traceback."""
        if self.out_dir.exists() and not self.out_dir.is_dir():
            raise EdgekitError(f"output folder {self.out_dir} exists and is not a folder",
                               "choose another --out, or remove that file")
        try:
            self.out_dir.mkdir(parents=True, exist_ok=True)
            with staging(self.out_dir):
                pass
        except OSError as exc:
            raise EdgekitError(f"cannot write to output folder {self.out_dir} ({exc.strerror or exc})",
                               "choose a folder you can write to with --out") from exc

    def record(self, art: Artifact) -> None:
        """Put a new result in the manifest and rewrite it. A failed attempt does not replace a good artifact the
        folder already holds: that record stays, and the failure goes to `manifest.rejected` for the command."""
        old = self.manifest.find(art.format, art.precision)
        if art.status != "ok" and old is not None and old.status == "ok" and old.path \
                and (self.out_dir / old.path).exists():
            self.manifest.rejected.append(art)
        else:
            self.manifest.upsert(art)
        self.manifest.write(self.out_dir)

    def _cached(self, fmt: str, precision: str, path: Path) -> Artifact | None:
        if self.previous is None:
            return None
        old = self.previous.find(fmt, precision)
        from edgekit.export.calibration import quant_key

        if (old is None or old.status != "ok" or old.details.get("fingerprint") != self.fingerprint
                or (old.parity is not None and old.parity.verdict == "error")
                or (precision.startswith("int8") and old.details.get("quant_key") != quant_key(self))
                or (precision.startswith("int8") and fmt in ("onnx", "tflite")
                    and (old.details.get("accuracy_control") or {}).get("max_drop") != self.options.max_accuracy_drop)
                or path.is_symlink() or not path.exists() or file_sha256(path) != old.sha256):
            return None
        old.details["cache"] = "hit"
        return old

    def export_one(self, fmt: str, precision: str) -> Artifact:
        path = self.output(fmt, precision)
        name = path.name
        cached = self._cached(fmt, precision, path)
        if cached is not None:
            self.progress(fmt, precision, "cached")
            return cached
        card = self.loaded.card
        art = Artifact(model=self.loaded.name, format=fmt, precision=precision, path=name,
                       inputs=[s.to_dict() for s in self.loaded.inputs], outputs=list(self.loaded.outputs),
                       converter=_versions(get_format(fmt).converter_packages))
        art.details["fingerprint"] = self.fingerprint
        if self.loaded.weights:
            art.details["weights"] = dict(self.loaded.weights)
        if card is not None and fmt in card.unsupported:
            art.details["card_note"] = card.unsupported[fmt]
        start = time.perf_counter()
        try:
            with staging(self.out_dir) as stage:
                self._make(art, stage / name, start)
                if art.status == "ok":  # converted (and checked): move it and its side files into place
                    for entry in sorted(stage.iterdir()):
                        if entry.name == name or entry.name.startswith(name + "."):  # e.g. ONNX external data
                            install(entry, self.out_dir / entry.name)
        except OSError as exc:  # the staging folder itself could not be made or emptied (full disk, permissions)
            if os.environ.get("EDGEKIT_DEBUG"):
                raise
            art.status, art.path = "failed", None
            art.error = EdgekitError(f"{fmt} export could not write into {self.out_dir} ({exc.strerror or exc})",
                                     "free disk space, or export into a folder you can write to (--out)").one_line()
            art.export_seconds = time.perf_counter() - start
        return art

    def _make(self, art: Artifact, staged: Path, start: float) -> None:
        """Convert into `staged` and check parity there, so a failure or Ctrl-C never touches the folder's files."""
        fmt, precision = art.format, art.precision
        self.progress(fmt, precision, "convert")
        try:
            with captured_output():
                art.details.update(self._convert(fmt, precision, staged))
        except Exception as exc:
            if os.environ.get("EDGEKIT_DEBUG"):
                raise
            err = explain_failure(fmt, exc, self._operators)  # the graph's ops: traced once, only if needed
            art.status, art.error, art.path = "failed", err.one_line(), None
            art.export_seconds = time.perf_counter() - start
            return
        art.export_seconds = time.perf_counter() - start
        art.size_bytes = path_size(staged)
        art.sha256 = file_sha256(staged)
        self.progress(fmt, precision, "parity")
        with captured_output():
            from edgekit.export.quantize import judged_as

            # int8 that became a static scheme is judged with int8-static tolerances
            art.parity, art.spec_version = self._parity(fmt, judged_as(precision, art.details), staged)
        if art.parity.note:  # name the file where it will be, not where it was checked
            art.parity.note = art.parity.note.replace(str(staged), str(self.out_dir / staged.name))
        if precision != "fp32" and art.parity.verdict != "error":  # size and quick speed-up vs the fp32 twin
            from edgekit.export.payoff import payoff_of

            art.details["payoff"] = payoff_of(self, fmt, precision, staged)

    def _localize(self, fmt: str, path: Path, tol: dict[str, float]) -> str:
        """The first module whose output diverges (export.localize), or why it could not be told."""
        if fmt not in ("onnx", "tflite"):
            return f"not localized: {fmt} intermediate values cannot be read here"
        from edgekit.export.localize import first_divergence

        try:
            return first_divergence(self.loaded, fmt, path, self.feeds[0], tol)
        except Exception as exc:
            if os.environ.get("EDGEKIT_DEBUG"):
                raise
            return f"not localized: {type(exc).__name__}: {str(exc).splitlines()[0][:160] if str(exc) else ''}"

    def _eval_reference(self) -> tuple:
        """(EvalData, PyTorch logits, PyTorch top-1) for --eval-data, loaded once."""
        if self._eval is None:
            from edgekit.export.accuracy import load_eval_data, top1, torch_logits

            data = load_eval_data(self.options.eval_data, self.loaded.inputs)
            logits = torch_logits(self.loaded.module, self.loaded.inputs, data)
            self._eval = (data, logits, top1(logits, data))
        return self._eval

    def _accuracy(self, art: Artifact) -> None:
        """--eval-data: top-1 of the artifact (run by its runtime) beside PyTorch's, and its change vs the fp32 twin
        of the same format (else vs PyTorch), in `details["accuracy"]`."""
        if not self.options.eval_data or art.status != "ok" or not art.path or art.parity is None \
                or art.parity.verdict in ("error", "not-executed"):
            return
        from edgekit.export.accuracy import artifact_logits, stored_accuracy, top1

        data, _, torch_top1 = self._eval_reference()
        try:
            logits = artifact_logits(art.format, self.out_dir / art.path, self.loaded.inputs, data)
            value = top1(logits, data)
        except Exception as exc:
            if os.environ.get("EDGEKIT_DEBUG"):
                raise
            art.details["accuracy"] = {**data.describe(), "error": f"{type(exc).__name__}: {str(exc)[:200]}"}
            return
        twin = self.manifest.find(art.format, "fp32")
        twin_acc = (twin.details.get("accuracy") or {}).get("value") if twin is not None and art.precision != "fp32" \
            else None
        base, base_name = (twin_acc, f"{art.format} fp32") if twin_acc is not None else (torch_top1, "PyTorch fp32")
        art.details["accuracy"] = {**data.describe(), "value": value, "pytorch": torch_top1,
                                   "delta": value - base, "delta_vs": base_name,  # + an eval run for the report
                                   **stored_accuracy(self.loaded.name, art.format, art.precision,
                                                     self.out_dir / art.path, data, logits)}

    def _accuracy_aware(self, fmt: str, precision: str, path: Path) -> dict:
        """--max-accuracy-drop: int8 with the fewest sensitive layers kept float (export.accuracy.accuracy_aware)."""
        from edgekit.export.accuracy import accuracy_aware, artifact_logits, candidate_layers, top1

        if not self.options.eval_data:
            raise EdgekitError("--max-accuracy-drop needs labelled data to measure the drop",
                               "add --eval-data FILE.npz (inputs by name + labels), or --eval-data suite")
        data, _, _ = self._eval_reference()
        fp32 = self._float_path(fmt)
        ref_logits = artifact_logits(fmt, fp32, self.loaded.inputs, data)
        reference = top1(ref_logits, data)
        details: dict = {}

        def quantize(keep: list[str], out: Path) -> None:
            details.clear()
            details.update(self._convert_one(fmt, precision, out, extra_keep=tuple(keep)))

        record = accuracy_aware(quantize, lambda p: artifact_logits(fmt, p, self.loaded.inputs, data), data,
                                reference, ref_logits, candidate_layers(self.loaded.module, _keep_float(self.loaded)),
                                self.options.max_accuracy_drop, path)
        if record["kept_float"]:  # the last trial that met the budget is in `path`; its details are the quantizer's
            details["kept_float_layers"] = ", ".join(record["kept_float"])
        record["reference"] = f"{fmt} fp32 artifact"
        return {**details, "accuracy_control": record}

    def _operators(self) -> list[str]:
        """The model's aten operators (to name the culprit of a converter message), traced once and quietly."""
        if self._ops is None:
            with captured_output():
                self._ops = graph_operators(self.loaded.module, self.loaded.example_tensors())
        return self._ops

    def _float_path(self, fmt: str, need_file: bool = True) -> Path:
        """The fp32 artifact the variants are made from: it must be of this very model (an older good file kept
        after a failed re-export is of another model when the fingerprint changed)."""
        path = self.output(fmt, "fp32")
        fp32 = self.manifest.find(fmt, "fp32")
        if ((need_file and not path.exists()) or fp32 is None or fp32.status != "ok"
                or fp32.details.get("fingerprint") != self.fingerprint):
            raise EdgekitError(f"the fp32 {fmt} artifact failed, so its {fmt} variants cannot be made",
                               "fix the fp32 export first (see its error)")
        return path

    def _convert(self, fmt: str, precision: str, path: Path) -> dict[str, str]:
        from edgekit.export.calibration import calibration_details

        details = self._convert_one(fmt, precision, path)
        return calibration_details(self, precision, details)  # calibration source (random flagged), cache key

    def _convert_one(self, fmt: str, precision: str, path: Path, extra_keep: tuple[str, ...] | None = None) \
            -> dict[str, str]:
        from edgekit.export.calibration import calibration_of, target_isa

        if extra_keep is None and precision.startswith("int8") and self.options.max_accuracy_drop is not None \
                and fmt in ("onnx", "tflite"):
            return self._accuracy_aware(fmt, precision, path)
        keep = _keep_float(self.loaded) + list(extra_keep or ())
        calibration = calibration_of(self).feeds if precision in ("int8", "int8-static") else self.feeds
        spec = get_format(fmt)  # the functions come from the Format registry (edgekit.formats), imported lazily
        if spec.quantizer is not None:  # onnx, tflite: quantized variants derive from the fp32 file
            if precision == "fp32":
                return spec.load("exporter")(self.loaded, path)
            isa = {"isa": target_isa(self.options.target)} if fmt == "onnx" else {}
            return spec.load("quantizer")(self._float_path(fmt), path, precision, calibration, keep, **isa)
        if fmt == "torch":
            return spec.load("exporter")(self.loaded, path)
        if precision != "fp32":  # each variant re-runs torch.export: not after the float one failed
            self._float_path(fmt, need_file=False)
        if fmt == "executorch":
            return spec.load("exporter")(self.loaded, path, precision, calibration, _keep_float(self.loaded))
        return spec.load("exporter")(self.loaded, path, precision)  # coreml, and formats that take a precision

    def _parity(self, fmt: str, precision: str, path: Path) -> tuple[ParityReport, str | None]:
        from edgekit.runtime import runtime_for_format

        tol = self.tolerance(precision)
        spec_version: str | None = None
        try:
            if get_format(fmt).spec_version is not None:
                spec_version = get_format(fmt).load("spec_version")(path)
            if fmt == "coreml":
                from edgekit.export.coreml import validate_coreml
                from edgekit.runtime.coreml import CoreMLRuntime

                spec_version, note = validate_coreml(path, self.loaded.inputs, self.loaded.outputs)
                if not CoreMLRuntime().available():
                    return ParityReport(verdict="not-executed", runtime="coreml", n_inputs=0, tolerance=tol,
                                        note=note), spec_version
            from edgekit.runtime import RuntimeOptions

            # a .pt2 is loaded only with a vouched hash (runtime/torch.py): this one edgekit has just written
            options = RuntimeOptions(extra={"trusted_sha256": file_sha256(path)}) if fmt == "torch" else None
            session = runtime_for_format(fmt).load(path, options)
            kinds = output_kinds(self.loaded, self.refs)  # what each output is: its parity metric follows
            tol, source = calibrated_tolerance(self.loaded, precision, tol, self.feeds, self.refs)
            report = check_parity(self.loaded, session, self.feeds, self.refs, tol, kinds)
            report.tolerance_source = source
            if report.verdict == "fail" or self.options.localize:
                report.first_divergence = self._localize(fmt, path, tol)
            return report, spec_version
        except Exception as exc:
            if os.environ.get("EDGEKIT_DEBUG"):
                raise
            msg = exc.one_line() if isinstance(exc, EdgekitError) else f"{type(exc).__name__}: {str(exc)[:240]}"
            return ParityReport(verdict="error", tolerance=tol, note=f"running the artifact failed: {msg}"), spec_version


def _existing_manifest(out_dir: Path, model: str) -> Manifest | None:
    """The manifest edgekit already wrote in `out_dir` for this model, or None (none, foreign, broken, other model)."""
    path = out_dir / MANIFEST_NAME
    if path.is_symlink() or not path.is_file():  # a planted link is replaced, never read
        return None
    try:
        manifest = Manifest.read(out_dir)
    except EdgekitError:
        return None
    return manifest if manifest.model == model else None


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
    calibration: Path | None = None,
    target: str = "",
    localize: bool = False,
    eval_data: str | Path | None = None,
    max_accuracy_drop: float | None = None,
) -> Manifest:
    """Export a model (a reference string or an already loaded model) and return its manifest."""
    loaded = model_ref if isinstance(model_ref, LoadedModel) else load_model(model_ref, input_options, seed=seed)
    options = ExportOptions(formats=formats, precisions=precisions, n_random=n_random, seed=seed, reuse=reuse,
                            calibration=Path(calibration) if calibration else None, target=target,
                            localize=localize, eval_data=str(eval_data) if eval_data else None,
                            max_accuracy_drop=max_accuracy_drop)
    np.random.seed(seed)
    return Exporter(loaded, Path(out_dir), options, progress).run()
