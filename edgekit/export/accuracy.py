"""Accuracy of exported artifacts on labelled data, and accuracy-aware int8 (docs/export.md "Accuracy per artifact").

`--eval-data FILE.npz` holds one array per model input (keyed by input name, samples on axis 0) and `labels` (int,
one per sample); `--eval-data suite` is the 8-domain suite's validation split for a model with the suite's joint
head (each example is read over its own domain's slice of the logits). Top-1 accuracy is measured for PyTorch and
for every artifact that runs here, with its format's runtime.

`--max-accuracy-drop D` with int8: plain int8 first; when it loses more than D against the fp32 reference, a
sensitivity pass quantizes the model once per candidate layer with that layer alone kept in float (the layers are
the leaf modules that hold a weight matrix: Linear, Conv, Embedding, LSTM, ...), ranks the layers by how much
accuracy keeping each one float gives back (ties: by how close the outputs come to fp32's), then keeps layers in
float in that order, re-measuring after each, until the drop is within D. Quantizing with some layers left float
is onnxruntime's `nodes_to_exclude` (ONNX) and ai-edge-quantizer's `no_quantize` recipe entries (TFLite), the same
mechanism that keeps GEM's routers float. Cost: (layers + 1) quantize-and-evaluate passes, plus one per kept layer.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgekit.errors import EdgekitError

SUITE = "suite"
LABELS_KEY = "labels"
MAX_SAMPLES = 5000  # more are not needed to tell a 1 % drop; the first ones are used
WEIGHT_MODULES = ("Linear", "Conv1d", "Conv2d", "Conv3d", "ConvTranspose1d", "ConvTranspose2d", "Embedding",
                  "LSTM", "GRU", "Bilinear")


@dataclass
class EvalData:
    """Labelled samples for top-1 accuracy. `inputs`: input name -> array [N, ...]; `labels`: int64 [N];
    `bias`: optional [N, classes] added to the logits before the argmax (-inf outside an example's domain slice)."""

    inputs: dict[str, np.ndarray]
    labels: np.ndarray
    source: str
    bias: np.ndarray | None = None

    @property
    def n(self) -> int:
        return int(len(self.labels))

    def describe(self) -> dict:
        return {"source": self.source, "n": self.n, "metric": "top1"}


def load_eval_data(ref: str | Path, specs) -> EvalData:
    """--eval-data: an .npz (input arrays by name + `labels`), or `suite`. Anything unusable is one EdgekitError."""
    if str(ref) == SUITE:
        return suite_eval_data(specs)
    path = Path(ref)
    if path.suffix != ".npz" or not path.is_file():
        raise EdgekitError(f"--eval-data {path}: not an .npz file", "give an .npz with one array per input (by "
                           "input name) and `labels`, or `suite` for a model with the 8-domain suite's head")
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: np.asarray(z[k]) for k in z.files}
    except Exception as exc:
        raise EdgekitError(f"cannot read --eval-data {path} ({type(exc).__name__}: {exc})",
                           "write it with numpy.savez(path, NAME=array, labels=array)") from exc
    if LABELS_KEY not in arrays:
        raise EdgekitError(f"--eval-data {path} has no `labels` array (it has {', '.join(sorted(arrays)) or 'none'})",
                           "add labels=array of int class indices, one per sample")
    labels = arrays.pop(LABELS_KEY).astype(np.int64).reshape(-1)
    inputs = {}
    for spec in specs:
        if spec.name not in arrays:
            raise EdgekitError(f"--eval-data {path} has no array for input {spec.name!r} (it has "
                               f"{', '.join(sorted(arrays)) or 'none'})", "key each input's samples by its name")
        x = arrays[spec.name]
        if x.shape[1:] != tuple(spec.shape[1:]) or len(x) != len(labels):
            raise EdgekitError(f"--eval-data {path}: {spec.name} has shape {x.shape}, expected "
                               f"[{len(labels)}, {', '.join(map(str, spec.shape[1:]))}] (samples x the input's shape "
                               "without its batch axis), one per label", "stack the samples on axis 0")
        inputs[spec.name] = x.astype(spec.dtype)[:MAX_SAMPLES]
    return EvalData(inputs, labels[:MAX_SAMPLES], f"{path.name} ({min(len(labels), MAX_SAMPLES)} samples)")


def suite_eval_data(specs) -> EvalData:
    """The suite's validation split (never its test split) for a token-id model with the joint head."""
    from edgekit.evalsuite import SuiteConfig, full_label_space, load_suite

    ids = [s for s in specs if s.dtype.startswith("int")]
    if len(ids) != 1 or len(ids[0].shape) != 2:
        raise EdgekitError("--eval-data suite needs a model whose one input is token ids [batch, seq]",
                           "give an .npz with the inputs and labels instead")
    cfg = SuiteConfig(seq_len=int(ids[0].shape[1]))
    data = load_suite(None, cfg)
    space = full_label_space(cfg)
    x = np.concatenate([d.val_ids for d in data.values()])
    labels = np.concatenate([d.val_labels + space.offset(name) for name, d in data.items()])
    bias = np.full((len(x), space.total), -np.inf, dtype=np.float32)
    row = 0
    for name, d in data.items():
        bias[row:row + len(d.val_ids), space.slice(name)] = 0.0
        row += len(d.val_ids)
    return EvalData({ids[0].name: x.astype(ids[0].dtype)}, labels, f"suite validation split ({len(x)} texts)", bias)


def top1(logits: np.ndarray, data: EvalData) -> float:
    logits = np.asarray(logits, dtype=np.float32).reshape(data.n, -1)
    if data.bias is not None:
        if data.bias.shape[1] != logits.shape[1]:
            raise EdgekitError(f"the model outputs {logits.shape[1]} logits; the suite's joint head has "
                               f"{data.bias.shape[1]}", "export a card with the suite's head (gem-tiny-suite)")
        logits = logits + data.bias
    return float(np.mean(np.argmax(logits, axis=1) == data.labels))


def torch_logits(module, specs, data: EvalData, batch: int = 256) -> np.ndarray:
    import torch

    from edgekit.modelsource import flatten_outputs

    outs = []
    with torch.inference_mode():
        for i in range(0, data.n, batch):
            args = [torch.from_numpy(np.ascontiguousarray(data.inputs[s.name][i:i + batch])) for s in specs]
            outs.append(flatten_outputs(module(*args))[0].float().numpy())
    return np.concatenate(outs)


def artifact_logits(fmt: str, path: Path, specs, data: EvalData) -> np.ndarray:
    """The first output of the artifact on every sample, fed in chunks of its batch size (a static batch gets its
    last chunk padded; ONNX with a dynamic batch axis gets 256 at a time)."""
    from edgekit.runtime import runtime_for_format

    session = runtime_for_format(fmt).load(path)
    first = specs[0]
    dynamic = fmt == "onnx" and 0 in first.dynamic
    batch = 256 if dynamic else int(first.shape[0])
    outs = []
    for i in range(0, data.n, batch):
        feeds = {s.name: data.inputs[s.name][i:i + batch] for s in specs}
        n = len(next(iter(feeds.values())))
        if not dynamic and n < batch:
            feeds = {k: np.concatenate([v, np.repeat(v[-1:], batch - n, axis=0)]) for k, v in feeds.items()}
        out = np.asarray(session.run(feeds)[0], dtype=np.float32)
        outs.append(out.reshape(batch if not dynamic else n, -1)[:n])
    return np.concatenate(outs)


def candidate_layers(module, keep_float: list[str]) -> list[str]:
    """Leaf modules holding a weight matrix (the quantizers' targets), in module order, minus those kept float."""
    names = []
    for name, mod in module.named_modules():
        if not name or type(mod).__name__ not in WEIGHT_MODULES:
            continue
        if any(name == k or name.startswith(k + ".") for k in keep_float):
            continue
        names.append(name)
    return names


def accuracy_aware(quantize: Callable[[list[str], Path], None], measure: Callable[[Path], np.ndarray],
                   data: EvalData, reference: float, reference_logits: np.ndarray, candidates: list[str],
                   max_drop: float, path: Path) -> dict:
    """Quantize into `path`, keeping the fewest layers float that bring top-1 within `max_drop` of `reference`.
    `quantize(keep, out)` writes a variant with the layers `keep` in float; `measure(out)` returns its logits.
    Returns the manifest record; an unreachable budget is an EdgekitError."""
    start = time.perf_counter()
    trials = 0

    def trial(keep: list[str], out: Path) -> tuple[float, float]:
        nonlocal trials
        trials += 1
        quantize(keep, out)
        logits = measure(out)
        return top1(logits, data), float(np.mean((logits - reference_logits) ** 2))

    plain, _ = trial([], path)
    record = {"max_drop": max_drop, "reference_top1": reference, "plain_top1": plain,
              "plain_drop": reference - plain, "kept_float": [], "candidates": len(candidates)}
    if reference - plain <= max_drop:
        return {**record, "top1": plain, "drop": reference - plain, "trials": trials,
                "seconds": round(time.perf_counter() - start, 2), "note": "plain int8 is within the budget"}
    scratch = path.with_name(path.stem + ".trial" + path.suffix)
    sensitivity = {}
    try:
        for layer in candidates:
            acc, err = trial([layer], scratch)
            sensitivity[layer] = {"top1": acc, "mse": err}
        ranked = sorted(candidates, key=lambda c: (-sensitivity[c]["top1"], sensitivity[c]["mse"]))
        kept: list[str] = []
        acc = plain
        for layer in ranked:
            kept.append(layer)
            acc, _ = trial(kept, scratch)
            if reference - acc <= max_drop:
                scratch.replace(path)
                break
        else:
            raise EdgekitError(
                f"int8 cannot meet --max-accuracy-drop {max_drop:g}: top-1 {acc:.4f} vs {reference:.4f} even with "
                f"all {len(candidates)} quantizable layers in float", "raise --max-accuracy-drop, or use fp16")
    finally:
        for p in scratch.parent.glob(scratch.name + "*"):
            p.unlink(missing_ok=True)
        scratch.unlink(missing_ok=True)
    return {**record, "top1": acc, "drop": reference - acc, "kept_float": kept,
            "sensitivity": {k: round(v["top1"], 4) for k, v in sensitivity.items()}, "trials": trials,
            "seconds": round(time.perf_counter() - start, 2),
            "note": f"kept {len(kept)} of {len(candidates)} layers float: {', '.join(kept)}"}


EVAL_DOMAIN = "eval-data"  # the one "domain" of an --eval-data evaluation in the results store


def macro_f1_of(logits: np.ndarray, data: EvalData) -> float:
    """Macro-F1 of the artifact's top-1 predictions over `data`'s labels (edgekit.evalsuite's definition)."""
    from edgekit.evalsuite.evaluate import macro_f1

    logits = np.asarray(logits, dtype=np.float32).reshape(data.n, -1)
    if data.bias is not None:
        logits = logits + data.bias
    return macro_f1(data.labels, np.argmax(logits, axis=1), logits.shape[1])


def record_accuracy_run(model: str, fmt: str, precision: str, path: Path, data: EvalData,
                        logits: np.ndarray) -> int | None:
    """Store an artifact's --eval-data result as an eval run (kind "eval", its file hash, scores `macro_f1` and
    `accuracy` = top-1), the shape `edgekit eval ARTIFACT` stores, so `edgekit report` finds it for the artifact's
    benchmark rows. The suite (`--eval-data suite`, its validation split) is not stored: `edgekit eval ARTIFACT`
    stores the suite's test-split scores for the same file. Returns the run id (None: not stored)."""
    if data.bias is not None:
        return None
    from edgekit.evalsuite.evaluate import DomainScore, EvalResult
    from edgekit.evalsuite.persist import EvalRun, log_eval
    from edgekit.files import file_sha256
    from edgekit.store import ResultsStore

    width = int(np.asarray(logits).reshape(data.n, -1).shape[1])
    score = DomainScore(domain=EVAL_DOMAIN, task=data.source.split(" (")[0], macro_f1=macro_f1_of(logits, data),
                        accuracy=top1(logits, data), n_test=data.n, n_classes=width)
    # trained=True: these are the weights the export was given, measured on the user's own labelled data
    result = EvalResult(model=model, kind=fmt, trained=True, seed=0, seq_len=0, vocab_size=0, scores=[score],
                        runtime={"runtime": fmt}, artifact_sha256=file_sha256(path))
    run = EvalRun(result, artifact_path=str(path), precision=precision, source=f"edgekit export --eval-data "
                  f"{data.source}", extra_config={"eval_data": data.source})
    with ResultsStore(None) as store:
        return log_eval(store, run)


def stored_accuracy(model: str, fmt: str, precision: str, path: Path, data: EvalData, logits: np.ndarray) -> dict:
    """The artifact's macro-F1 and the id of the eval run that stores its figures (record_accuracy_run), for its
    manifest record; a store that cannot take the run is said there, never an export failure."""
    out: dict = {"macro_f1": macro_f1_of(logits, data)}
    try:
        run_id = record_accuracy_run(model, fmt, precision, path, data, logits)
    except Exception as exc:  # the figures stay in the manifest
        return {**out, "store_error": f"{type(exc).__name__}: {str(exc)[:160]}"}
    return {**out, "eval_run": run_id} if run_id is not None else out
