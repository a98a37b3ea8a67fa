"""Score a model on the suite's test splits: macro-F1 and accuracy per domain, for a PyTorch module or for an
exported artifact (ONNX, TFLite) run by its runtime, so the metrics describe what is deployed.

The model's output convention: `LabelSpace.total` logits (a joint head over all eight domains, each domain reading
its own slice), or, when one domain is evaluated, exactly that domain's class count.

    from edgekit.evalsuite import load_suite
    from edgekit.evalsuite.evaluate import evaluate_model, evaluate_artifact
    data = load_suite()
    result = evaluate_model(model, data, name="gem-tiny", trained=True)
    result.score_rows()  # -> rows (model, domain, task, score) for edgekit.metrics
"""

from __future__ import annotations

import datetime as _dt
import inspect
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edgekit.errors import EdgekitError
from edgekit.evalsuite.data import DomainData, LabelSpace, SuiteConfig, full_label_space
from edgekit.evalsuite.tokenizer import HashTokenizer
from edgekit.formats import format_for_suffix

EVAL_SCHEMA_VERSION = 1

Predict = Callable[
    [np.ndarray, np.ndarray], np.ndarray
]  # (ids [N, L] int64, mask [N, L] int64) -> logits [N, W]


@dataclass(frozen=True)
class DomainScore:
    """Test-split scores of one domain task. macro_f1 and accuracy are fractions in [0, 1]."""

    domain: str
    task: str
    macro_f1: float
    accuracy: float
    n_test: int
    n_classes: int


@dataclass
class EvalResult:
    """A model's scores on the suite. kind: "torch" | "onnx" | "tflite". trained=False: the weights never saw the
    suite's training split (expect chance-level scores)."""

    model: str
    kind: str
    trained: bool
    seed: int
    seq_len: int
    vocab_size: int
    scores: list[DomainScore]
    label_space: dict[str, Any] = field(default_factory=dict)
    runtime: dict[str, Any] = field(default_factory=dict)
    artifact_sha256: str | None = None
    wall_s: float | None = None
    created: str = field(default_factory=lambda: _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"))
    schema_version: int = EVAL_SCHEMA_VERSION

    def score_rows(self, metric: str = "macro_f1") -> list[tuple[str, str, str, float, int]]:
        """(model, domain, task, score, seed) per domain: the input edgekit.metrics expects."""
        if metric not in ("macro_f1", "accuracy"):
            raise EdgekitError(f"unknown metric {metric!r}", "use macro_f1 or accuracy")
        return [(self.model, s.domain, s.task, float(getattr(s, metric)), self.seed) for s in self.scores]

    @property
    def mean_macro_f1(self) -> float:
        return float(np.mean([s.macro_f1 for s in self.scores])) if self.scores else float("nan")

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["mean_macro_f1"] = self.mean_macro_f1
        return d


# ----------------------------------------------------------------------------------------------- scoring
def macro_f1(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int) -> float:
    """Unweighted mean of per-class F1 = 2TP / (2TP + FP + FN) over classes that occur in y_true or y_pred."""
    y_true = np.asarray(y_true, dtype=np.int64)
    y_pred = np.asarray(y_pred, dtype=np.int64)
    if y_true.shape != y_pred.shape or y_true.size == 0:
        raise ValueError("y_true and y_pred must be non-empty and of equal length")
    f1s = []
    for c in range(n_classes):
        tp = int(np.sum((y_true == c) & (y_pred == c)))
        fp = int(np.sum((y_true != c) & (y_pred == c)))
        fn = int(np.sum((y_true == c) & (y_pred != c)))
        if tp + fp + fn == 0:
            continue
        f1s.append(2 * tp / (2 * tp + fp + fn))
    return float(np.mean(f1s))


def accuracy(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    return float(np.mean(np.asarray(y_true) == np.asarray(y_pred)))


def _head_slices(
    width: int, data: Mapping[str, DomainData], space: LabelSpace | None
) -> tuple[dict[str, slice], LabelSpace | None]:
    """Which logits each domain reads: its slice of a joint head, or all of them for a one-domain head."""
    if len(data) == 1:
        only = next(iter(data.values()))
        if width == only.n_classes and (space is None or width != space.total):
            return {only.domain: slice(0, width)}, None
    if space is None:
        first = next(iter(data.values()))
        space = full_label_space(SuiteConfig(seed=first.seed, seq_len=first.test_ids.shape[1]))
    if width == space.total:
        return {d: space.slice(d) for d in data}, space
    sizes = ", ".join(f"{d} {n}" for d, n in zip(space.domains, space.sizes, strict=True))
    raise EdgekitError(
        f"the model outputs {width} logits per example; the suite needs {space.total} (a joint head over "
        f"{sizes}) or, when one domain is evaluated, that domain's class count",
        f"build the model with num_classes={space.total} (edgekit eval does this for zoo models)",
    )


def evaluate_predictor(
    predict: Predict,
    data: Mapping[str, DomainData],
    *,
    name: str,
    kind: str,
    trained: bool,
    space: LabelSpace | None = None,
    runtime: dict[str, Any] | None = None,
    artifact_sha256: str | None = None,
) -> EvalResult:
    """Run `predict` on every domain's test split and score it."""
    import time

    if not data:
        raise EdgekitError("no domains to evaluate", "pass at least one domain")
    start = time.perf_counter()
    scores: list[DomainScore] = []
    slices: dict[str, slice] | None = None
    used: LabelSpace | None = None
    first = next(iter(data.values()))
    for domain, d in data.items():
        logits = np.asarray(predict(d.test_ids, HashTokenizer.attention_mask(d.test_ids)))
        if logits.ndim != 2 or logits.shape[0] != len(d.test_ids):
            raise EdgekitError(
                f"{name} returned an output of shape {tuple(logits.shape)} for {len(d.test_ids)} examples",
                "the model must return logits [batch, classes] (a sequence classifier, not an LM head)",
            )
        if slices is None:
            slices, used = _head_slices(logits.shape[1], data, space)
        pred = np.argmax(logits[:, slices[domain]], axis=1)
        scores.append(
            DomainScore(
                domain=domain,
                task=d.task,
                macro_f1=macro_f1(d.test_labels, pred, d.n_classes),
                accuracy=accuracy(d.test_labels, pred),
                n_test=len(d.test_labels),
                n_classes=d.n_classes,
            )
        )
    return EvalResult(
        model=name,
        kind=kind,
        trained=trained,
        seed=first.seed,
        seq_len=int(first.test_ids.shape[1]),
        vocab_size=first.vocab_size,
        scores=scores,
        label_space=used.to_dict() if used else {},
        runtime=runtime or {},
        artifact_sha256=artifact_sha256,
        wall_s=time.perf_counter() - start,
    )


# ------------------------------------------------------------------------------------------------- torch
def call_model(model, ids, mask=None):
    """Run a torch module on ids, plus `attention_mask=mask` when a mask is given and forward() names it;
    returns the logits tensor (first output of a tuple, `logits` of a dict or output object)."""
    params = inspect.signature(model.forward).parameters
    out = model(ids, attention_mask=mask) if mask is not None and "attention_mask" in params else model(ids)
    if isinstance(out, Mapping):
        out = out.get("logits", next(iter(out.values())))
    elif isinstance(out, tuple | list):
        out = out[0]
    elif hasattr(out, "logits"):
        out = out.logits
    return out


def torch_predictor(model, batch_size: int = 256, use_attention_mask: bool = False) -> Predict:
    """A PyTorch module as a predictor (eval mode, no grad, CPU).

    By default only the token ids are fed, as the zoo's model cards (and so the exported artifacts) take only
    `input_ids`: the PyTorch scores then describe the same function the artifacts compute. With
    `use_attention_mask` the mask goes in too (for models trained and exported with it)."""
    import torch

    def predict(ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
        model.eval()
        outs = []
        with torch.inference_mode():
            for i in range(0, len(ids), batch_size):
                t_ids = torch.from_numpy(np.ascontiguousarray(ids[i : i + batch_size]))
                t_mask = (
                    torch.from_numpy(np.ascontiguousarray(mask[i : i + batch_size]))
                    if use_attention_mask
                    else None
                )
                outs.append(call_model(model, t_ids, t_mask).float().cpu().numpy())
        return np.concatenate(outs, axis=0)

    return predict


def evaluate_model(
    model,
    data: Mapping[str, DomainData],
    *,
    name: str,
    trained: bool,
    space: LabelSpace | None = None,
    batch_size: int = 256,
    use_attention_mask: bool = False,
) -> EvalResult:
    """Macro-F1 and accuracy per domain of a PyTorch module (run on CPU in eval mode)."""
    return evaluate_predictor(
        torch_predictor(model, batch_size, use_attention_mask),
        data,
        name=name,
        kind="torch",
        trained=trained,
        space=space,
        runtime={"runtime": "torch", "version": _torch_version()},
    )


def _torch_version() -> str:
    import torch

    return torch.__version__


# ---------------------------------------------------------------------------------------------- artifacts
def artifact_format(path: Path) -> str:
    known = format_for_suffix(path)  # any registered format; artifact_inputs says which ones evaluate here
    if known is None:
        raise EdgekitError(
            f"{path} is not an artifact edgekit can evaluate (suffix {path.suffix or 'none'})",
            "point at an exported .onnx or .tflite file",
        )
    return known.name


@dataclass(frozen=True)
class InputInfo:
    """An artifact's inputs: names, and the static batch / sequence length when the graph fixes them."""

    names: tuple[str, ...]
    batch: int | None
    seq_len: int | None
    dtype: str = "int64"


TOKEN_DTYPES = ("int64", "int32")


def _token_inputs(path: Path, inputs: list[tuple[str, str]]) -> None:
    """The suite feeds token ids (and optionally an attention mask): every input must be an int64/int32 tensor.
    `inputs` = (name, dtype name) per input."""
    if not inputs:
        raise EdgekitError(
            f"{path} has no inputs; the suite feeds token ids",
            "export a sequence classifier whose input is input_ids [batch, seq] (int64)",
        )
    for name, dtype in inputs:
        if dtype not in TOKEN_DTYPES:
            raise EdgekitError(
                f"{path} takes input `{name}` as a {dtype} tensor; the suite feeds token ids (int64 or int32)",
                "evaluate a text classifier exported with integer token-id inputs (e.g. `edgekit export gem-tiny`)",
            )


def _onnx_inputs(path: Path) -> InputInfo:
    import onnx

    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as exc:
        raise EdgekitError(
            f"cannot read ONNX file {path} ({exc})", "export it again with `edgekit export`"
        ) from exc
    if not model.graph.node and not model.graph.input and not model.graph.output:
        raise EdgekitError(f"{path} is not an ONNX model (it holds no graph)", "export it again with `edgekit export`")
    inits = {i.name for i in model.graph.initializer}
    inputs = [i for i in model.graph.input if i.name not in inits]
    kinds = []
    for i in inputs:
        elem = i.type.tensor_type.elem_type if i.type.HasField("tensor_type") else 0
        kinds.append((i.name, onnx.TensorProto.DataType.Name(elem).lower() if elem else "non-tensor"))
    _token_inputs(path, kinds)
    dims = [d.dim_value if d.HasField("dim_value") else None for d in inputs[0].type.tensor_type.shape.dim]
    return InputInfo(
        tuple(i.name for i in inputs),
        dims[0] if dims else None,
        dims[1] if len(dims) > 1 else None,
        kinds[0][1],
    )


def artifact_inputs(path: Path, fmt: str) -> InputInfo:
    """Read the input signature: from manifest.json beside the file when it lists the artifact, else from the
    file itself (ONNX graph inputs; TFLite signature). An empty or unreadable file, a graph without inputs, or an
    input that is not an integer token-id tensor (a string or float tensor) is one EdgekitError."""
    from edgekit.export.artifact import MANIFEST_NAME, Manifest

    if path.is_file() and path.stat().st_size == 0:
        raise EdgekitError(f"{fmt} file {path} is empty (0 bytes)", "export it again with `edgekit export`")
    manifest = path.parent / MANIFEST_NAME
    specs = None
    if manifest.is_file():
        try:
            for art in Manifest.read(manifest).artifacts:
                if art.path and Path(art.path).name == path.name and art.inputs:
                    specs = art.input_specs()
                    break
        except EdgekitError:
            specs = None  # an unreadable manifest: read the file itself
    if specs and fmt != "tflite":  # a .tflite has a static batch whatever the card declares: read the file
        _token_inputs(path, [(s.name, str(s.dtype)) for s in specs])
        first = specs[0]
        batch = None if 0 in first.dynamic else first.shape[0]
        seq = first.shape[1] if len(first.shape) > 1 and 1 not in first.dynamic else None
        return InputInfo(tuple(s.name for s in specs), batch, seq, first.dtype)
    if fmt == "onnx":
        return _onnx_inputs(path)
    if fmt == "tflite":
        from ai_edge_litert import interpreter as tfl

        try:
            interp = tfl.Interpreter(model_path=str(path))
        except (ValueError, RuntimeError) as exc:
            raise EdgekitError(
                f"cannot read TFLite file {path} ({exc})", "export it again with `edgekit export`"
            ) from exc
        sigs = interp.get_signature_list()
        if sigs:
            key = next(iter(sigs))
            by_name = interp.get_signature_runner(key).get_input_details()
            details = [{**by_name[n], "name": n} for n in sigs[key]["inputs"]]
        else:
            details = list(interp.get_input_details())
        _token_inputs(path, [(d["name"], np.dtype(d["dtype"]).name) for d in details])
        names = tuple(d["name"] for d in details)
        first = details[0]
        sig = list(first.get("shape_signature", first["shape"]))
        shape = list(first["shape"])
        batch = None if sig and sig[0] == -1 else int(shape[0])
        seq = None if len(sig) < 2 or sig[1] == -1 else int(shape[1])
        return InputInfo(names, batch, seq, np.dtype(first["dtype"]).name)
    raise EdgekitError(
        f"evaluating {fmt} artifacts is not supported here", "evaluate the .onnx or .tflite artifact"
    )


def artifact_predictor(
    path: Path, info: InputInfo, threads: int | None = None
) -> tuple[Predict, dict[str, Any]]:
    """Load an artifact with its format's runtime; returns (predict, runtime description)."""
    from edgekit.runtime import RuntimeOptions, runtime_for_format

    fmt = artifact_format(path)
    runtime = runtime_for_format(fmt)
    if not runtime.available():
        from edgekit.formats import install_fix

        raise EdgekitError(f"the {runtime.name} runtime is not installed", install_fix(fmt))
    session = runtime.load(path, RuntimeOptions(threads=threads))
    names = list(session.input_names)
    mask_name = next((n for n in names if "mask" in n.lower()), None)
    id_names = [n for n in names if n != mask_name]
    if len(id_names) != 1:
        raise EdgekitError(
            f"{path} takes inputs {names}; the suite feeds token ids (and optionally an attention mask)",
            "export a sequence classifier whose inputs are input_ids [batch, seq] (+ attention_mask)",
        )
    dtype = np.dtype(info.dtype) if info.dtype in ("int64", "int32") else np.dtype(np.int64)
    batch = info.batch or 64

    def predict(ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
        outs = []
        for i in range(0, len(ids), batch):
            chunk, chunk_mask = ids[i : i + batch], mask[i : i + batch]
            n = len(chunk)
            if info.batch and n < batch:  # static batch: pad the last chunk, drop the padding's outputs
                pad = np.zeros((batch - n, chunk.shape[1]), dtype=chunk.dtype)
                chunk, chunk_mask = np.concatenate([chunk, pad]), np.concatenate([chunk_mask, pad])
            feeds = {id_names[0]: chunk.astype(dtype)}
            if mask_name:
                feeds[mask_name] = chunk_mask.astype(dtype)
            out = session.run(feeds)[0]
            outs.append(np.asarray(out, dtype=np.float32)[:n])
        return np.concatenate(outs, axis=0)

    return predict, session.describe()


def evaluate_artifact(
    path: Path,
    data: Mapping[str, DomainData],
    *,
    name: str | None = None,
    trained: bool,
    space: LabelSpace | None = None,
    threads: int | None = None,
) -> EvalResult:
    """Macro-F1 and accuracy per domain of an exported artifact, run by its format's runtime.

    `data` must be tokenized at the artifact's sequence length (see `artifact_inputs(path, fmt).seq_len`)."""
    from edgekit.files import file_sha256

    path = Path(path)
    if not path.exists():
        raise EdgekitError(
            f"artifact {path} does not exist", "check the path (see manifest.json of the export)"
        )
    fmt = artifact_format(path)
    info = artifact_inputs(path, fmt)
    seq = next(iter(data.values())).test_ids.shape[1] if data else None
    if info.seq_len is not None and seq is not None and info.seq_len != seq:
        raise EdgekitError(
            f"{path} takes sequences of {info.seq_len} tokens, the suite was tokenized to {seq}",
            f"use --seq-len {info.seq_len}",
        )
    predict, described = artifact_predictor(path, info, threads)
    return evaluate_predictor(
        predict,
        data,
        name=name or path.name,
        kind=fmt,
        trained=trained,
        space=space,
        runtime=described,
        artifact_sha256=file_sha256(path),
    )
