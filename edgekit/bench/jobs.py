"""Turn what the user named (an artifact file, a manifest / export directory, or a model) into BenchJobs."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from edgekit.bench.inputs import check_format, check_inputs, format_for_path, model_input_specs
from edgekit.bench.runner import BenchJob
from edgekit.errors import EdgekitError
from edgekit.export.artifact import MANIFEST_NAME, Artifact, Manifest, path_size
from edgekit.files import file_sha256
from edgekit.formats import format_for_suffix
from edgekit.paths import cache_root
from edgekit.specs import TensorSpec, parse_input_option

DEFAULT_MODEL_FORMATS = ("onnx", "tflite")


def export_cache_dir(model: str) -> Path:
    """Where `edgekit bench MODEL` keeps its exports: $EDGEKIT_CACHE/exports/MODEL, else ~/.cache/edgekit/..."""
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in model)
    return cache_root() / "exports" / safe


def _runtime_name(fmt: str) -> str:
    from edgekit.runtime import runtime_for_format

    return runtime_for_format(fmt).name


def _looks_like_path(ref: str) -> bool:
    suffix = Path(ref).suffix.lower()
    return format_for_suffix(ref) is not None or suffix == ".json" or ref.endswith(("/", os.sep)) or ref.startswith((".", "/", "~"))


def _specs(given: list[TensorSpec] | None, recorded: list[dict] | None, path: Path, fmt: str,
           trusted: bool = False) -> list[TensorSpec]:
    """Inputs to feed: --input > the manifest's record > what the file declares; checked against the file.

    `trusted`: the manifest records this very file (same size and hash) and no --input overrides it, so the file is
    not parsed here (parsing a large ONNX costs the parent its size in memory); the child still reports a bad file."""
    if trusted and recorded and not given:
        return [TensorSpec.from_dict(d) for d in recorded]
    declared = model_input_specs(path, fmt)  # also proves an .onnx / .tflite file is readable
    chosen = given or ([TensorSpec.from_dict(d) for d in recorded] if recorded else None) or declared
    if not chosen:
        raise EdgekitError(f"edgekit cannot read the input signature of {path.name} ({fmt})",
                           "give it with --input NAME:DIMxDIM:DTYPE (one per input)")
    return check_inputs(chosen, declared, path.name) if declared is not None else chosen


def _vouched_pt2(path: Path, fmt: str, sha: str, recorded_sha: str | None, trust: bool) -> str | None:
    """The sha256 a torch .pt2 may be loaded with: its own with --trust, else the one an edgekit manifest records,
    which must match its bytes (edgekit.runtime.torch.check_trusted raises the one-line refusal). None for other
    formats, which load without unpickling."""
    if fmt != "torch":
        return None
    from edgekit.runtime.torch import check_trusted

    check_trusted(path, sha if trust else recorded_sha, actual_sha256=sha)
    return sha


def manifest_entry_path(base: Path, rel: str, manifest_path: Path) -> Path:
    """The file a manifest entry names: `base / rel`, which must lie inside the manifest's folder `base` once `..`
    and symbolic links are resolved (an absolute path, `../x` or a link out is refused with one line: such a file
    would be read, hashed and uploaded to a device)."""
    fix = ("a manifest names files inside its own folder: export the model again with `edgekit export` instead of "
           "using this manifest")
    try:
        root = base.resolve()
        target = (base / rel).resolve()
    except (OSError, ValueError, RuntimeError) as exc:  # a NUL byte, a symlink loop
        raise EdgekitError(f"manifest {manifest_path} lists artifact path {rel!r}, which is not a valid path inside "
                           f"its folder {base} ({exc})", fix) from exc
    if target == root or not target.is_relative_to(root):
        raise EdgekitError(f"manifest {manifest_path} lists artifact path {rel!r}, which is outside its folder {base}",
                           fix)
    return base / rel


def job_for_file(path: Path, fmt: str | None = None, precision: str | None = None,
                 inputs: list[TensorSpec] | None = None, runtime: str | None = None, trust: bool = False) -> BenchJob:
    """A job for one artifact file (or .mlpackage directory). A manifest.json beside it that lists the file supplies
    model name, precision, inputs and hash. A .pt2 runs only when that manifest's hash matches it, or with `trust`."""
    fmt = format_for_path(path, fmt)
    if not path.exists():
        raise EdgekitError(f"artifact {path} does not exist", "check the path, or export it with `edgekit export`")
    art: Artifact | None = None
    model = path.stem
    manifest_path = path.parent / MANIFEST_NAME
    if manifest_path.is_file():
        try:
            manifest = Manifest.read(manifest_path)
            art = next((a for a in manifest.artifacts if a.path and (path.parent / a.path).resolve() == path.resolve()),
                       None)
            if art is not None:
                model = manifest.model
        except (EdgekitError, OSError, ValueError, RuntimeError):  # RuntimeError: a symlink loop
            art = None  # a foreign or broken manifest beside the file: benchmark the file on its own
    if path.is_file() and path.stat().st_size == 0:
        raise EdgekitError(f"artifact {path} is empty (0 bytes)", "export it again with `edgekit export`")
    sha = file_sha256(path)
    vouched = _vouched_pt2(path, fmt, sha, art.sha256 if art else None, trust)
    recorded = (art.inputs or None) if art else None
    specs = _specs(inputs, recorded, path, fmt)  # a lone file is always read: it proves the file is whole
    size = path_size(path)
    return BenchJob(model=model, format=fmt, precision=precision or (art.precision if art else "unknown"),
                    path=path, inputs=specs, runtime=runtime or _runtime_name(fmt), sha256=sha, size_bytes=size,
                    trusted_sha256=vouched, artifact=art)


def jobs_for_manifest(manifest_path: Path, formats: list[str] | None = None, precisions: list[str] | None = None,
                      inputs: list[TensorSpec] | None = None, runtime: str | None = None,
                      trust: bool = False) -> list[BenchJob]:
    """One job per artifact of the manifest with status ok, filtered by formats and precisions. Every path it names
    must lie inside its folder; a .pt2 runs only when its bytes match the manifest's hash, or with `trust`."""
    manifest = Manifest.read(manifest_path)
    base = manifest_path if manifest_path.is_dir() else manifest_path.parent
    for a in manifest.artifacts:
        if a.path:
            manifest_entry_path(base, str(a.path), manifest_path)
    chosen = [a for a in manifest.artifacts
              if a.status == "ok" and a.path and (not formats or a.format in formats)
              and (not precisions or a.precision in precisions)]
    if not chosen:
        have = ", ".join(f"{a.key} ({a.status})" for a in manifest.artifacts) or "none"
        raise EdgekitError(f"manifest {manifest_path} has no exported artifact matching "
                           f"format {','.join(formats or ['any'])} / precision {','.join(precisions or ['any'])} "
                           f"(it has: {have})", "change --format/--precision, or export the missing ones")
    jobs = [BenchJob(model=manifest.model, format=a.format, precision=a.precision, path=base / str(a.path or "-"),
                     inputs=[], runtime=_runtime_name(a.format), skip_reason=f"export {a.status}: {a.error or 'no file'}")
            for a in manifest.artifacts if a.status != "ok" and (not formats or a.format in formats)
            and (not precisions or a.precision in precisions)]
    for art in chosen:
        path = base / str(art.path)
        try:
            if not path.exists():
                raise EdgekitError(f"artifact {path} listed in {manifest_path} does not exist",
                                   "export again to recreate it")
            size = path_size(path)
            sha = file_sha256(path)  # always hashed: the stored record must name the bytes that actually ran
            vouched = _vouched_pt2(path, art.format, sha, art.sha256, trust)
            trusted = art.format == "onnx" and sha == art.sha256
            specs = _specs(inputs, art.inputs or manifest.inputs, path, art.format, trusted)
        except EdgekitError as exc:  # this artifact cannot run; the others still can
            jobs.append(BenchJob(model=manifest.model, format=art.format, precision=art.precision, path=path,
                                 inputs=[], runtime=runtime or _runtime_name(art.format), sha256=art.sha256,
                                 error=exc.one_line(), artifact=art))
            continue
        jobs.append(BenchJob(model=manifest.model, format=art.format, precision=art.precision, path=path,
                             inputs=specs, runtime=runtime or _runtime_name(art.format), sha256=sha,
                             size_bytes=size, trusted_sha256=vouched, artifact=art))
    return jobs


def is_model_ref(ref: str) -> bool:
    """A model card (.toml), a user's `file.py:factory`, or a name (not a path to an artifact)."""
    return ref.endswith((".toml", ".py")) or ".py:" in ref


def export_missing(model: str, formats: list[str], precisions: list[str], input_options: list[str] | None = None,
                   progress: Callable[[str, str, str], None] | None = None) -> Path:
    """Export a model's missing artifacts into the bench export cache (export_cache_dir); the pipeline reuses
    artifacts whose model fingerprint and file hash are unchanged (the export cache). Returns the manifest path."""
    from edgekit.export.pipeline import export_model

    out = export_cache_dir(model if not is_model_ref(model) else Path(model.split(":")[0]).stem)
    export_model(model, out, formats=tuple(formats), precisions=tuple(p for p in precisions if p != "fp32"),
                 input_options=input_options, progress=progress)
    return out / MANIFEST_NAME


def check_precisions(precisions: list[str] | None) -> None:
    """Refuse a precision edgekit does not know (it would be stored and compared under a made-up name)."""
    import difflib

    from edgekit.specs import PRECISIONS

    for p in precisions or []:
        if p not in PRECISIONS:
            near = difflib.get_close_matches(p, PRECISIONS, n=1)
            raise EdgekitError(f"unknown precision {p!r}",
                               (f"did you mean {near[0]}? " if near else "") + f"use one of {', '.join(PRECISIONS)}")


def resolve_jobs(ref: str, formats: list[str] | None = None, precisions: list[str] | None = None,
                 input_options: list[str] | None = None, runtime: str | None = None,
                 export_progress: Callable[[str, str, str], None] | None = None,
                 trust: bool = False) -> list[BenchJob]:
    """The jobs for what the user named: an artifact file, a manifest.json, an export directory, or a model (whose
    missing artifacts are exported first). `input_options` are `--input NAME:DIMxDIM:DTYPE` strings. `trust`: run a
    .pt2 that no edgekit manifest vouches for (`--trust`; loading a .pt2 can run code)."""
    for f in formats or []:
        check_format(f)
    check_precisions(precisions)
    inputs = [parse_input_option(o) for o in input_options] if input_options else None
    path = Path(ref).expanduser()
    if not is_model_ref(ref) and path.exists():
        if path.is_dir() and (path / MANIFEST_NAME).is_file():
            return jobs_for_manifest(path, formats, precisions, inputs, runtime, trust)
        if path.is_file() and path.suffix.lower() == ".json":
            return jobs_for_manifest(path, formats, precisions, inputs, runtime, trust)
        if path.is_dir() and format_for_suffix(path) is None:
            raise EdgekitError(f"directory {path} holds no {MANIFEST_NAME}",
                               "point at an export directory, a manifest.json or an artifact file")
        if formats and len(formats) > 1:
            raise EdgekitError(f"{path.name} is one artifact but several formats were given ({','.join(formats)})",
                               "give at most one --format for an artifact file")
        return [job_for_file(path, formats[0] if formats else None, precisions[0] if precisions else None,
                             inputs, runtime, trust)]
    if not is_model_ref(ref) and _looks_like_path(ref):
        if format_for_suffix(ref) is None and Path(ref).suffix.lower() != ".json":
            format_for_path(path, formats[0] if formats else None)  # unknown suffix: says so first
        raise EdgekitError(f"artifact {path} does not exist", "check the path, or export it with `edgekit export`")
    manifest = export_missing(ref, list(formats or DEFAULT_MODEL_FORMATS), list(precisions or ["fp32"]),
                              input_options, export_progress)
    return jobs_for_manifest(manifest, formats or list(DEFAULT_MODEL_FORMATS), precisions or ["fp32"], None,
                             runtime, trust)
