"""Compress a specialised model and evaluate what is deployed: the fp32 ONNX export, its quantized variants
(edgekit.export.quantize: fp16, int8 dynamic, int8 static calibrated on real validation text, int4 weight-only),
and magnitude-pruned copies (pruned in PyTorch, then exported fp32). fp32 exports go through edgekit's Exporter
(the one `edgekit export` runs, parity check and manifest included). Every variant is scored by running the ONNX
file in onnxruntime (edgekit.evalsuite.evaluate.evaluate_artifact)."""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgekit.evalsuite.data import DomainData, LabelSpace
from edgekit.evalsuite.evaluate import EvalResult
from edgekit.metrics.robustness import compression_intensity
from edgekit.study.config import Compression

PRUNABLE = ("Linear", "Embedding")


@dataclass
class CompressedVariant:
    """One evaluated compression. sparsity: measured fraction of all parameters that are zero after pruning;
    c: compression intensity from the precision's bits and that sparsity; size_bytes: the ONNX file (bytes)."""

    compression: Compression
    path: Path
    sparsity: float
    c: float
    size_bytes: int
    result: EvalResult
    details: dict


def magnitude_prune(model, fraction: float, keep_float: list[str] | None = None):
    """A copy of `model` with the smallest-|w| `fraction` of each Linear and Embedding weight set to zero
    (unstructured, per tensor; biases, norms, positions and the modules in `keep_float` - GEM's routers - are
    left alone). Returns (pruned model, measured sparsity over all parameters)."""
    import torch

    pruned = copy.deepcopy(model)
    keep = tuple(keep_float or ())
    zeroed = 0
    with torch.no_grad():
        for name, mod in pruned.named_modules():
            if type(mod).__name__ not in PRUNABLE or any(name == k or name.startswith(k + ".") for k in keep):
                continue
            w = mod.weight
            k = int(round(fraction * w.numel()))
            if k == 0:
                continue
            threshold = w.abs().flatten().kthvalue(k).values
            mask = w.abs() <= threshold
            w[mask] = 0.0
            zeroed += int(mask.sum())
    total = sum(p.numel() for p in pruned.parameters())
    return pruned.eval(), zeroed / total


def loaded_model(model, name: str, seq_len: int, example: np.ndarray):
    """Wrap a trained module as an edgekit LoadedModel (input_ids [batch, seq_len] int64, dynamic batch)."""
    from edgekit.modelsource import LoadedModel
    from edgekit.specs import TensorSpec

    spec = TensorSpec("input_ids", (1, seq_len), "int64", dynamic={0: "batch"}, low=0, high=8192)
    return LoadedModel(name=name, module=model.eval(), inputs=[spec], outputs=["logits"], source=f"study:{name}",
                       examples=[{"input_ids": np.ascontiguousarray(example[:1])}])


def export_fp32(model, path: Path, seq_len: int, example: np.ndarray) -> tuple[Path, dict]:
    """PyTorch -> fp32 ONNX through the same exporter (with its parity check) as `edgekit export`
    (edgekit.export.pipeline.Exporter): into its own folder `path.parent / path.stem` with a manifest.json, so a
    benchmark of the file carries the export's parity. Returns (the file, the export's parity record as a dict).
    A failed export raises its one-line EdgekitError."""
    from dataclasses import asdict

    from edgekit.errors import EdgekitError
    from edgekit.export.pipeline import Exporter, ExportOptions

    loaded = loaded_model(model, path.stem.removesuffix(".fp32"), seq_len, example)
    exporter = Exporter(loaded, path.parent / path.stem, ExportOptions(formats=("onnx",), reuse=False))
    exporter.out_dir.mkdir(parents=True, exist_ok=True)
    art = exporter.export_one("onnx", "fp32")
    exporter.record(art)
    if art.status != "ok" or not art.path:
        raise EdgekitError(f"the study's ONNX export of {loaded.name} failed: {art.error}",
                           "see `edgekit export --help`; the same exporter runs here")
    return exporter.out_dir / art.path, asdict(art.parity) if art.parity else {}


def calibration_feeds(data: Mapping[str, DomainData], per_domain: int = 16, batch: int = 16,
                      seed: int = 0) -> list[dict[str, np.ndarray]]:
    """Static-int8 calibration inputs: real validation-split texts of every domain (never test texts)."""
    rng = np.random.default_rng(seed)
    ids = []
    for d in data.values():
        pool = d.val_ids if len(d.val_ids) else d.train_ids
        take = rng.choice(len(pool), size=min(per_domain, len(pool)), replace=False)
        ids.append(pool[np.sort(take)])
    all_ids = np.concatenate(ids)
    return [{"input_ids": np.ascontiguousarray(all_ids[i : i + batch])} for i in range(0, len(all_ids), batch)]


def torch_onnx_max_diff(model, path: Path, ids: np.ndarray) -> float:
    """Parity: max |logit difference| between PyTorch and the ONNX file on `ids`."""
    import torch

    from edgekit.evalsuite.evaluate import call_model
    from edgekit.runtime import runtime_for_format

    session = runtime_for_format("onnx").load(path)
    out = np.asarray(session.run({"input_ids": ids})[0], dtype=np.float32)
    with torch.inference_mode():
        ref = call_model(model.eval(), torch.from_numpy(ids)).float().numpy()
    return float(np.max(np.abs(out - ref)))


def compress_and_evaluate(model, name: str, compressions: list[Compression], out_dir: Path,
                          data: Mapping[str, DomainData], space: LabelSpace, seq_len: int,
                          calibration: list[dict[str, np.ndarray]], threads: int | None = None,
                          on_variant=None) -> list[CompressedVariant]:
    """Export, compress and evaluate `model` once per compression (in the given order). `on_variant(variant)` is
    called as each one is scored, so a caller can store it before the next starts."""
    from edgekit.evalsuite.evaluate import evaluate_artifact
    from edgekit.export.capture import captured_output
    from edgekit.export.quantize import quantize_onnx
    from edgekit.formats import get_format

    onnx = get_format("onnx").suffix
    keep = list(model.high_precision_modules()) if hasattr(model, "high_precision_modules") else []
    example = next(iter(data.values())).test_ids
    fp32_path: Path | None = None
    out: list[CompressedVariant] = []
    for comp in compressions:
        details: dict = {}
        if comp.sparsity > 0:
            pruned, sparsity = magnitude_prune(model, comp.sparsity, keep)
            path, details["parity"] = export_fp32(pruned, out_dir / f"{name}.{comp.name}{onnx}", seq_len, example)
            details["parity_max_abs_logit"] = torch_onnx_max_diff(pruned, path, example[:8])
            bits = 32.0
        else:
            sparsity = 0.0
            if fp32_path is None:
                fp32_path, details["parity"] = export_fp32(model, out_dir / f"{name}.fp32{onnx}", seq_len, example)
                details["parity_max_abs_logit"] = torch_onnx_max_diff(model, fp32_path, example[:8])
            if comp.precision == "fp32":
                path = fp32_path
            else:
                path = out_dir / f"{name}.{comp.name}{onnx}"
                with captured_output():
                    details.update(quantize_onnx(fp32_path, path, comp.precision, calibration, keep))
            bits = {"fp32": 32.0, "fp16": 16.0, "int8": 8.0, "int8-static": 8.0, "int4": 4.0}[comp.precision]
        result = evaluate_artifact(path, data, name=f"{name} {comp.name}", trained=True, space=space, threads=threads)
        variant = CompressedVariant(comp, path, sparsity, compression_intensity(bits, sparsity),
                                    path.stat().st_size, result, details)
        out.append(variant)
        if on_variant is not None:
            on_variant(variant)
    return out
