"""The fragility study on a pretrained backbone: `edgekit study fragility --backbone minilm` (docs/study.md).

GEM-minilm = the six pretrained all-MiniLM-L6-v2 layers + two SCAR blocks (edgekit.zoo.minilm); the dense baseline is
the same model with one FFN of width 2496 per block instead of SCAR (same size). The backbone is **frozen**: its token
features are computed once per example (train, test and calibration texts; each batch cut to its longest text, so
the cost follows real lengths) and kept in memory as float16 [tokens, 384]. Every training step and every PyTorch
evaluation then runs only the two blocks, the final norm and the head ("the top"). That is what makes the study fit
on 2 CPU cores: the six backbone layers run once per text, not once per text per epoch per model.

Compression covers the whole deployed model, applied part by part: the backbone once per compression (it is the same
frozen backbone under every specialised variant) and the top once per variant. A variant is the pipeline
`backbone.<c>.onnx -> top.<variant>.<c>.onnx`, both run in onnxruntime on every test text. Per-tensor magnitude
pruning, fp16 conversion and weight-only / dynamic int8 and int4 quantization are per-operator transforms, so
applying them to each part equals applying them to one merged graph; static int8 calibrates the top's input on the
fp32 backbone's features, as a merged graph's calibration would. The fp32 pipeline's max |logit - PyTorch logit| is
recorded (parity).

Everything else - the units behind the claims, DSI / GG / CDTR, the Spearman correlations, what is stored - is the
from-scratch study's own (edgekit.study.fragility).
"""

from __future__ import annotations

import copy
import datetime as dt
import shutil
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edgekit.errors import EdgekitError
from edgekit.evalsuite.data import DomainData, LabelSpace
from edgekit.evalsuite.evaluate import DomainScore, EvalResult, accuracy, macro_f1
from edgekit.formats import get_format
from edgekit.study.claims import Unit, evaluate_claims
from edgekit.study.config import COMPRESSIONS, MINILM_NOT_INSTALLED, Compression, StudyConfig

BITS = {"fp32": 32.0, "fp16": 16.0, "int8": 8.0, "int8-static": 8.0, "int4": 4.0}
Run = Callable[[np.ndarray], np.ndarray]


def require_minilm() -> None:
    """Raise the one-line 'MiniLM not installed' error when the optional extra is absent."""
    from edgekit.zoo import minilm

    if not minilm.available():
        raise EdgekitError(*MINILM_NOT_INSTALLED)


# --------------------------------------------------------------------------------------------- features
@dataclass
class FeatureSplit:
    """Frozen-backbone features of one split of one domain. feats[i]: float16 [n_i, 384] for the n_i non-padding
    tokens of example i; ids: the int64 ids [N, seq_len] they came from; labels: int64 [N] (the domain's own)."""

    ids: np.ndarray
    labels: np.ndarray
    feats: list[np.ndarray]


def token_lengths(ids: np.ndarray) -> np.ndarray:
    """Non-padding tokens per row (WordPiece ids are left-aligned: [CLS] ... [SEP] then 0s); at least 1."""
    return np.maximum((np.asarray(ids) != 0).sum(axis=1), 1)


def length_batches(lengths: np.ndarray, batch_size: int, rng: np.random.Generator | None = None) -> list[np.ndarray]:
    """Index batches of similar length (so padding costs little): sorted by length, chunked; with `rng`, ties are
    broken at random and the batches come in random order (training)."""
    n = len(lengths)
    order = np.argsort(lengths, kind="stable") if rng is None else np.lexsort((rng.random(n), lengths))
    batches = [order[i : i + batch_size] for i in range(0, n, batch_size)]
    if rng is not None:
        batches = [batches[i] for i in rng.permutation(len(batches))]
    return batches


def pad(feats: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Variable-length features -> (hidden float32 [B, L, d], attention_mask int64 [B, L]), L = the longest."""
    width = max(len(f) for f in feats)
    hidden = np.zeros((len(feats), width, feats[0].shape[1]), dtype=np.float32)
    mask = np.zeros((len(feats), width), dtype=np.int64)
    for i, f in enumerate(feats):
        hidden[i, : len(f)] = f
        mask[i, : len(f)] = 1
    return hidden, mask


def encode_features(run: Run, ids: np.ndarray, batch_size: int = 64) -> list[np.ndarray]:
    """Backbone features of every row of `ids` (run: ids [B, L] -> hidden [B, L, d]), batches cut to their longest
    text; returned trimmed to each row's tokens, float16."""
    lengths = token_lengths(ids)
    out: list[np.ndarray] = [np.zeros((0, 0), np.float16)] * len(ids)
    for b in length_batches(lengths, batch_size):
        hidden = np.asarray(run(np.ascontiguousarray(ids[b, : int(lengths[b].max())])))
        for j, i in enumerate(b):
            out[i] = hidden[j, : lengths[i]].astype(np.float16)
    return out


def torch_runner(encoder) -> Run:
    """The PyTorch backbone as a Run (no grad, padding found from the ids)."""
    import torch

    def run(ids: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            t = torch.from_numpy(ids)
            return encoder(t, (t != 0).to(torch.float32)).numpy()

    return run


# ------------------------------------------------------------------------------------------------ modules
def _modules():
    """The two nn.Module classes (built lazily so that importing this module does not import torch)."""
    import torch
    from torch import nn

    from edgekit.zoo.gem import GEM, NEG_INF
    from edgekit.zoo.minilm import PAD_ID, mean_pool

    class Backbone(nn.Module):
        """The frozen MiniLM as a deployable part: input_ids [B, L] int64 -> token features [B, L, 384]."""

        def __init__(self, encoder: nn.Module) -> None:
            super().__init__()
            self.backbone = encoder

        def forward(self, input_ids):
            return self.backbone(input_ids, (input_ids != PAD_ID).to(torch.float32))

    class FeatureTop(GEM):
        """The trained part of a GEMMiniLM (its blocks, final norm and head) reading backbone features:
        (hidden [B, L, 384] float32, attention_mask [B, L] int64) -> logits [B, num_classes]. A GEM (routing
        statistics, load-balancing loss, routers kept float by quantizers); GEM.__init__ is not called."""

        def __init__(self, model: nn.Module) -> None:
            nn.Module.__init__(self)
            self.cfg = model.cfg
            self.blocks, self.norm, self.head = model.blocks, model.norm, model.head

        def forward(self, hidden, attention_mask):
            valid = attention_mask.to(hidden.dtype)
            bias = (1.0 - valid)[:, None, None, :] * NEG_INF
            x = hidden
            for block in self.blocks:
                x = block(x, bias, valid)
            return self.head(mean_pool(self.norm(x), valid))

    return Backbone, FeatureTop


def build_top(space: LabelSpace, seed: int, overrides: Mapping[str, Any] | None = None):
    """A fresh gem-minilm (router=False: the dense baseline) with the suite's joint head, seeded; returns its top
    (the pretrained backbone it was built with is dropped: the study's one frozen backbone stands in for it)."""
    import torch

    from edgekit.zoo import create_model

    torch.manual_seed(seed)
    model = create_model("gem-minilm", num_classes=space.total, **dict(overrides or {}))
    return _modules()[1](model)


def top_logits(top, feats: Sequence[np.ndarray], batch_size: int = 128) -> np.ndarray:
    """The top's logits [N, W] over features, in eval mode, batches cut to their longest text."""
    import torch

    top.eval()
    out: np.ndarray | None = None
    lengths = np.array([len(f) for f in feats])
    with torch.inference_mode():
        for b in length_batches(lengths, batch_size):
            hidden, mask = pad([feats[i] for i in b])
            logits = top(torch.from_numpy(hidden), torch.from_numpy(mask)).float().numpy()
            if out is None:
                out = np.zeros((len(feats), logits.shape[1]), dtype=np.float32)
            out[b] = logits
    return out if out is not None else np.zeros((0, 0), np.float32)


# ----------------------------------------------------------------------------------------------- training
@dataclass
class _Pool:
    """Labelled training examples over one or more domains: features, joint-head labels, and the index of each
    example's domain in `space.domains` (its logit slice)."""

    feats: list[np.ndarray]
    labels: np.ndarray
    domains: np.ndarray


def _pool(splits: Mapping[str, FeatureSplit], space: LabelSpace, cap: int, rng: np.random.Generator) -> _Pool:
    feats: list[np.ndarray] = []
    labels, doms = [], []
    for d, s in splits.items():
        idx = np.arange(len(s.labels))
        if len(idx) > cap:
            idx = np.sort(rng.choice(idx, size=cap, replace=False))
        feats.extend(s.feats[i] for i in idx)
        labels.append(s.labels[idx] + space.offset(d))
        doms.append(np.full(len(idx), space.domains.index(d), dtype=np.int64))
    return _Pool(feats, np.concatenate(labels), np.concatenate(doms))


def _slice_bias(space: LabelSpace):
    """[n_domains, W]: 0 on each domain's slice of the joint head, MASKED_LOGIT elsewhere."""
    import torch

    from edgekit.evalsuite.train import MASKED_LOGIT

    bias = torch.full((len(space.domains), space.total), MASKED_LOGIT)
    for i, d in enumerate(space.domains):
        bias[i, space.slice(d)] = 0.0
    return bias


def fit_top(top, pool: _Pool, space: LabelSpace, *, epochs: int, seed: int, lr: float, batch_size: int,
            aux_loss_weight: float = 0.01) -> list[float]:
    """Cross-entropy on each example's slice of the joint head (+ SCAR's load-balancing loss), AdamW; batches of
    similar length in random order. Returns the mean loss per epoch."""
    import torch
    import torch.nn.functional as F

    from edgekit.evalsuite.train import with_load_balancing

    rng = np.random.default_rng(seed)
    torch.manual_seed(seed)
    bias = _slice_bias(space)
    opt = torch.optim.AdamW(top.parameters(), lr=lr, weight_decay=0.01)
    lengths = np.array([len(f) for f in pool.feats])
    losses: list[float] = []
    top.train()
    for _ in range(epochs):
        batches = length_batches(lengths, batch_size, rng)
        running = 0.0
        for b in batches:
            hidden, mask = pad([pool.feats[i] for i in b])
            logits = top(torch.from_numpy(hidden), torch.from_numpy(mask)) + bias[torch.from_numpy(pool.domains[b])]
            loss = with_load_balancing(top, F.cross_entropy(logits, torch.from_numpy(pool.labels[b])), aux_loss_weight)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            running += float(loss.detach())
        losses.append(running / max(len(batches), 1))
    top.eval()
    return losses


def specialise_kd_top(base, target: str, splits: Mapping[str, FeatureSplit], space: LabelSpace, config: StudyConfig,
                      seed: int, aux_loss_weight: float = 0.01):
    """A copy of the `base` top specialised on `target` with knowledge-preserving distillation, as
    edgekit.study.train.specialise_kd does on the whole model: each step a target batch ((1 - alpha) x
    cross-entropy on its slice) plus an equally large batch of unlabelled transfer texts from the other domains
    (at most kd_transfer_per_domain each), alpha x T^2 KL(teacher || student) over the whole joint head on both
    (transfer examples weighted kd_general_weight). The frozen base is the teacher."""
    import torch
    import torch.nn.functional as F

    from edgekit.evalsuite.train import MASKED_LOGIT, with_load_balancing
    from edgekit.zoo.gem import knowledge_preserving_loss

    rng = np.random.default_rng(seed)
    torch.manual_seed(seed)
    tpool = _pool({target: splits[target]}, space, config.spec_max_train, rng)
    gfeats: list[np.ndarray] = []
    for d, s in splits.items():
        if d != target:
            gi = np.arange(len(s.feats))
            if len(gi) > config.kd_transfer_per_domain:
                gi = np.sort(rng.choice(gi, size=config.kd_transfer_per_domain, replace=False))
            gfeats.extend(s.feats[i] for i in gi)
    t_teach = torch.from_numpy(top_logits(base, tpool.feats))
    g_teach = torch.from_numpy(top_logits(base, gfeats)) if gfeats else None
    model = copy.deepcopy(base)
    slice_mask = torch.full((space.total,), MASKED_LOGIT)
    slice_mask[space.slice(target)] = 0.0
    opt = torch.optim.AdamW(model.parameters(), lr=config.spec_lr, weight_decay=0.01)
    lengths = np.array([len(f) for f in tpool.feats])
    model.train()
    for _ in range(config.spec_epochs):
        for b in length_batches(lengths, config.batch_size, rng):
            feats = [tpool.feats[i] for i in b]
            teach, weights = t_teach[b], torch.ones(len(b))
            if g_teach is not None:
                gsel = rng.integers(0, len(gfeats), len(b))
                feats += [gfeats[i] for i in gsel]
                teach = torch.cat([teach, g_teach[gsel]])
                weights = torch.cat([weights, torch.full((len(b),), config.kd_general_weight)])
            hidden, mask = pad(feats)
            logits = model(torch.from_numpy(hidden), torch.from_numpy(mask))
            kd = knowledge_preserving_loss(logits, teach, None, alpha=1.0, temperature=config.kd_temperature,
                                           weights=weights)
            ce = F.cross_entropy(logits[: len(b)] + slice_mask, torch.from_numpy(tpool.labels[b]))
            loss = with_load_balancing(model, config.kd_alpha * kd + (1.0 - config.kd_alpha) * ce, aux_loss_weight)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
    model.eval()
    return model


# --------------------------------------------------------------------------------------------- evaluation
def eval_result(name: str, kind: str, logits: Mapping[str, np.ndarray], data: Mapping[str, DomainData],
                space: LabelSpace, runtime: dict[str, Any], sha256: str | None = None,
                wall_s: float | None = None) -> EvalResult:
    """Score logits [N_d, W] per domain (argmax over the domain's slice): macro-F1 and accuracy per domain."""
    scores = []
    for d, dd in data.items():
        pred = np.argmax(logits[d][:, space.slice(d)], axis=1)
        scores.append(DomainScore(d, dd.task, macro_f1(dd.test_labels, pred, dd.n_classes),
                                  accuracy(dd.test_labels, pred), len(dd.test_labels), dd.n_classes))
    first = next(iter(data.values()))
    return EvalResult(model=name, kind=kind, trained=True, seed=first.seed, seq_len=int(first.test_ids.shape[1]),
                      vocab_size=first.vocab_size, scores=scores, label_space=space.to_dict(), runtime=runtime,
                      artifact_sha256=sha256, wall_s=wall_s)


# -------------------------------------------------------------------------------------------- compression
@dataclass
class BackboneVariant:
    """The backbone under one compression: its ONNX file, the weights pruning zeroed (count), and the test texts'
    features it computes (domain -> per-example float16 [n_i, 384])."""

    compression: Compression
    path: Path
    zeroed: int
    test: dict[str, list[np.ndarray]]
    details: dict[str, Any] = field(default_factory=dict)


def _export(module, path: Path, inputs, examples: dict[str, np.ndarray], outputs: list[str]) -> Path:
    from edgekit.export.capture import captured_output
    from edgekit.export.onnx import export_onnx
    from edgekit.modelsource import LoadedModel

    path.parent.mkdir(parents=True, exist_ok=True)
    loaded = LoadedModel(name=path.stem, module=module.eval(), inputs=inputs, outputs=outputs,
                         source=f"study:{path.stem}", examples=[examples])
    with captured_output():
        export_onnx(loaded, path)
    return path


def export_backbone(module, path: Path, example_ids: np.ndarray) -> Path:
    """The backbone part -> fp32 ONNX, input_ids [batch, seq] (both dynamic) -> hidden [batch, seq, 384]."""
    from edgekit.specs import TensorSpec

    spec = TensorSpec("input_ids", tuple(example_ids.shape), "int64", dynamic={0: "batch", 1: "seq"}, low=0,
                      high=30522)
    return _export(module, path, [spec], {"input_ids": np.ascontiguousarray(example_ids)}, ["hidden"])


def export_top(top, path: Path, example: dict[str, np.ndarray]) -> Path:
    """The top part -> fp32 ONNX: (hidden [batch, seq, 384] float32, attention_mask [batch, seq] int64) -> logits
    (SCAR in its static export form)."""
    from edgekit.specs import TensorSpec

    h, m = example["hidden"], example["attention_mask"]
    specs = [TensorSpec("hidden", tuple(h.shape), "float32", dynamic={0: "batch", 1: "seq"}, low=-1, high=1),
             TensorSpec("attention_mask", tuple(m.shape), "int64", dynamic={0: "batch", 1: "seq"}, low=0, high=2)]
    return _export(top, path, specs, example, ["logits"])


def state_arrays(module) -> dict[str, np.ndarray]:
    """A module's parameters and buffers as numpy arrays (copies)."""
    return {k: v.detach().cpu().numpy().copy() for k, v in module.state_dict().items()}


def retarget_onnx(template: Path, template_state: Mapping[str, np.ndarray], state: Mapping[str, np.ndarray],
                  path: Path) -> bool:
    """Write `template`'s graph to `path` with the weights of `state` (same module structure, other values: another
    trained top, or a pruned copy) instead of exporting again (an export of the top takes 10-20 s here). The
    exporter renames and transposes weights, so each weight that differs is found by value (as stored, or
    transposed); returns False - and writes nothing - when one cannot be found unambiguously (e.g. folded into a
    constant), and the caller exports instead. Callers check parity against PyTorch."""
    import onnx
    from onnx import numpy_helper

    model = onnx.load(str(template))
    differing = {k for k, v in state.items() if k in template_state and not np.array_equal(template_state[k], v)}
    found: set[str] = set()
    for init in model.graph.initializer:
        stored = numpy_helper.to_array(init)
        hits = []
        for k in differing:
            w = template_state[k]
            if stored.shape == w.shape and np.array_equal(stored, w):
                hits.append(np.asarray(state[k]))
            elif w.ndim == 2 and stored.shape == w.T.shape and np.array_equal(stored, w.T):
                hits.append(np.asarray(state[k]).T)
            else:
                continue
            found.add(k)
        if not hits:
            continue
        if any(not np.array_equal(h, hits[0]) for h in hits[1:]):
            return False
        init.CopyFrom(numpy_helper.from_array(np.ascontiguousarray(hits[0]).astype(stored.dtype), init.name))
    if found != differing:
        return False
    onnx.save(model, str(path))
    return True


def _session(path: Path, threads: int):
    from edgekit.runtime import RuntimeOptions, runtime_for_format

    return runtime_for_format("onnx").load(path, RuntimeOptions(threads=threads))


def _quantize(fp32: Path, path: Path, precision: str, calibration, keep: list[str]) -> dict[str, Any]:
    from edgekit.export.capture import captured_output
    from edgekit.export.quantize import quantize_onnx

    with captured_output():
        return dict(quantize_onnx(fp32, path, precision, calibration, keep))


def _prune(module, fraction: float, keep: list[str]):
    """(pruned copy, number of weights zeroed) - edgekit.study.compress.magnitude_prune."""
    from edgekit.study.compress import magnitude_prune

    pruned, sparsity = magnitude_prune(module, fraction, keep)
    return pruned, int(round(sparsity * sum(p.numel() for p in pruned.parameters())))


def top_onnx_logits(session, feats: Sequence[np.ndarray], batch_size: int = 128) -> np.ndarray:
    out: np.ndarray | None = None
    lengths = np.array([len(f) for f in feats])
    for b in length_batches(lengths, batch_size):
        hidden, mask = pad([feats[i] for i in b])
        logits = np.asarray(session.run({"hidden": hidden, "attention_mask": mask})[0], dtype=np.float32)
        if out is None:
            out = np.zeros((len(feats), logits.shape[1]), dtype=np.float32)
        out[b] = logits
    return out if out is not None else np.zeros((0, 0), np.float32)


def pipeline_latency_ms(backbone_session, top_session, ids: np.ndarray, runs: int = 30,
                        warmup: int = 3) -> dict[str, Any]:
    """Wall time (ms) of one deployed inference, backbone then top in onnxruntime, on `ids` [1, L]: mean, p50 and
    p90 over `runs` runs after `warmup` (provenance: measured on this host)."""
    mask = (ids != 0).astype(np.int64)
    times = []
    for i in range(warmup + runs):
        t = time.perf_counter()
        hidden = backbone_session.run({"input_ids": ids})[0]
        top_session.run({"hidden": hidden, "attention_mask": mask})
        if i >= warmup:
            times.append(1000.0 * (time.perf_counter() - t))
    return {"mean": float(np.mean(times)), "p50": float(np.percentile(times, 50)),
            "p90": float(np.percentile(times, 90)), "runs": runs, "batch": 1, "tokens": int(mask.sum()),
            "provenance": "measured", "target": "local"}


def headline(records, reference: str, latency: Mapping[str, dict[str, Any]], threads: int) -> dict[str, Any]:
    """The figures a claims table shows beside the paper's: cross-domain F1 (mean macro-F1 over the domains) of the
    reference base per seed and of every deployed variant (mean over seeds), and the measured latency per
    compression."""
    base = {r.seed: float(np.mean(list(r.scores.values()))) for r in records
            if r.model == reference and r.kind == "torch"}
    deployed: dict[str, list[float]] = {}
    for r in records:
        if r.kind == "onnx":
            deployed.setdefault(r.model, []).append(float(np.mean(list(r.scores.values()))))
    return {
        "paper": {"cross_domain_f1": 0.89, "latency_ms_below": 100.0, "targets": ["rpi4", "pixel6", "iphone13", "npu"]},
        "cross_domain_f1": {"reference": reference, "base": float(np.mean(list(base.values()))) if base else None,
                            "base_per_seed": base, "deployed": {k: float(np.mean(v)) for k, v in deployed.items()}},
        "latency_ms": {"local": {"threads": threads, "pipeline": "backbone.onnx -> top.onnx (onnxruntime)",
                                 "per_compression": dict(latency)}},
        "not_computed": ["latency predicted for the four seed devices (edgekit.targets.predictor) and its error"],
    }


# ------------------------------------------------------------------------------------------------- the study
def run_pretrained_study(config: StudyConfig, *, db: Path | None = None, store: bool = True,
                         out_dir: Path | None = None, cache_dir: Path | None = None,
                         progress: Callable[[str], None] | None = None, group: str | None = None,
                         running: Any = None):
    """The fragility study with the frozen MiniLM backbone (module docstring); returns a StudyResult. `group` and
    `running` (the summary row edgekit.study.fragility.run_study inserted) come from run_study."""
    require_minilm()
    import torch

    from edgekit.evalsuite import SuiteConfig, load_suite, parse_domains
    from edgekit.files import file_sha256
    from edgekit.metrics.robustness import compression_intensity
    from edgekit.study.compress import calibration_feeds
    from edgekit.study.fragility import (
        StudyResult,
        VariantRecord,
        _cap_test,
        _metrics,
        _Recorder,
        _scores,
        _store_summary,
        new_study_group,
    )
    from edgekit.zoo.minilm import load_encoder

    say = progress or (lambda msg: None)
    start = time.perf_counter()
    targets = parse_domains(list(config.targets))
    threads_before = torch.get_num_threads()
    torch.set_num_threads(max(1, config.threads))
    group = group or new_study_group()
    recorder = _Recorder(db, store, group)
    keep_dir = out_dir is not None
    work = Path(out_dir) if keep_dir else Path(tempfile.mkdtemp(prefix="edgekit-study-"))
    work.mkdir(parents=True, exist_ok=True)
    timings = {"load": 0.0, "features": 0.0, "train": 0.0, "evaluate_torch": 0.0, "compress_evaluate": 0.0}
    records: list[VariantRecord] = []
    units: list[Unit] = []
    notes: list[str] = [
        "backbone: all-MiniLM-L6-v2, frozen (features computed once per text); trained: 2 blocks + norm + head; "
        "a compressed variant = backbone.<c>.onnx -> top.<variant>.<c>.onnx in onnxruntime"]
    gem = config.gem_model
    dense_label = f"{gem}-dense"
    rt = {"runtime": "torch", "version": torch.__version__, "backbone": "frozen, cached features"}
    try:
        t0 = time.perf_counter()
        say("loading the 8-domain suite (WordPiece)")
        suite_cfg = SuiteConfig(seed=config.split_seed, seq_len=config.seq_len, cache_dir=cache_dir,
                                tokenizer_name="minilm")
        data = load_suite(None, suite_cfg)
        if config.max_test_per_domain:
            data = {d: _cap_test(dd, config.max_test_per_domain) for d, dd in data.items()}
            notes.append(f"test splits capped at {config.max_test_per_domain} examples per domain (seeded sample)")
        space = LabelSpace.of(data)
        calibration = calibration_feeds(data)
        rng = np.random.default_rng(config.split_seed)
        train_idx = {d: (np.sort(rng.choice(len(dd.train_labels), size=config.feature_max_train, replace=False))
                         if len(dd.train_labels) > config.feature_max_train else np.arange(len(dd.train_labels)))
                     for d, dd in data.items()}
        timings["load"] += time.perf_counter() - t0

        t0 = time.perf_counter()
        n_texts = sum(len(i) + len(dd.test_labels) for i, dd in zip(train_idx.values(), data.values(), strict=True))
        say(f"computing the frozen MiniLM's token features of {n_texts} texts (once)")
        encoder = load_encoder().eval()
        for p in encoder.parameters():
            p.requires_grad_(False)
        run = torch_runner(encoder)
        train = {d: FeatureSplit(dd.train_ids[train_idx[d]], dd.train_labels[train_idx[d]],
                                 encode_features(run, dd.train_ids[train_idx[d]])) for d, dd in data.items()}
        test = {d: encode_features(run, dd.test_ids) for d, dd in data.items()}
        calib_top = []
        for feed in calibration:
            hidden, mask = pad(encode_features(run, feed["input_ids"]))
            calib_top.append({"hidden": hidden, "attention_mask": mask})
        timings["features"] += time.perf_counter() - t0

        def torch_record(top, name: str, arch: str, method: str, target: str | None, seed: int) -> VariantRecord:
            t = time.perf_counter()
            result = eval_result(name, "torch", {d: top_logits(top, test[d]) for d in data}, data, space, rt,
                                 wall_s=time.perf_counter() - t)
            f1, acc = _scores(result)
            rec = VariantRecord(name, arch, method, target, "none", "fp32", 0.0, 0.0, seed, "torch", f1, acc)
            recorder.record(rec, result, None)
            records.append(rec)
            return rec

        to_compress: list[tuple[str, str, int, Any]] = []  # (method, target, seed, top)
        for seed in config.seeds:
            bases: dict[str, tuple[Any, VariantRecord]] = {}
            archs = [("gem", {})] + ([("dense", config.dense_overrides)] if config.dense_baseline else [])
            for arch, overrides in archs:
                label = gem if arch == "gem" else dense_label
                say(f"seed {seed}: training the general {label} base (top) on all 8 domains")
                t0 = time.perf_counter()
                top = build_top(space, seed, overrides)
                fit_top(top, _pool(train, space, config.base_max_per_domain, np.random.default_rng(seed)), space,
                        epochs=config.base_epochs, seed=seed, lr=config.lr, batch_size=config.batch_size)
                timings["train"] += time.perf_counter() - t0
                t0 = time.perf_counter()
                bases[arch] = (top, torch_record(top, f"{label} base", arch, "base", None, seed))
                timings["evaluate_torch"] += time.perf_counter() - t0
            gem_base, base_rec = bases["gem"]
            for target in targets:
                say(f"seed {seed}: specialising on {target} (plain fine-tuning, GEM distillation)")
                t0 = time.perf_counter()
                ft = copy.deepcopy(gem_base)
                fit_top(ft, _pool({target: train[target]}, space, config.spec_max_train, np.random.default_rng(seed)),
                        space, epochs=config.spec_epochs, seed=seed, lr=config.spec_lr, batch_size=config.batch_size)
                spec = {"ft": ft, "kd": specialise_kd_top(gem_base, target, train, space, config, seed)}
                dense_kd = (specialise_kd_top(bases["dense"][0], target, train, space, config, seed)
                            if "dense" in bases else None)
                timings["train"] += time.perf_counter() - t0
                t0 = time.perf_counter()
                recs = {m: torch_record(spec[m], f"{gem} {m}-{target}", "gem", m, target, seed) for m in ("ft", "kd")}
                dense_rec = (torch_record(dense_kd, f"{dense_label} kd-{target}", "dense", "kd", target, seed)
                             if dense_kd is not None else None)
                timings["evaluate_torch"] += time.perf_counter() - t0
                units.append(Unit(target, seed, base_rec.scores, recs["ft"].scores, recs["kd"].scores,
                                  dense_rec.scores if dense_rec else None))
                to_compress += [(m, target, seed, spec[m]) for m in ("ft", "kd")]

        t0 = time.perf_counter()
        backbone_module = _modules()[0](encoder).eval()
        bb_params = sum(p.numel() for p in backbone_module.parameters())
        example_ids = next(iter(data.values())).test_ids[:2]
        bb_fp32: Path | None = None
        top_fp32: dict[int, Path] = {}
        template: tuple[Path, dict[str, np.ndarray]] | None = None  # the one exported top; the others are patched
        exports = {"exported": 0, "patched": 0}
        onnx_suffix = get_format("onnx").suffix
        latency: dict[str, dict[str, Any]] = {}
        all_test = np.concatenate([dd.test_ids for dd in data.values()])
        lat_ids = np.ascontiguousarray(all_test[int(np.argmax(token_lengths(all_test)))][None, :])  # the longest

        def write_top(module, path: Path) -> Path:
            nonlocal template
            if template is not None and retarget_onnx(template[0], template[1], state_arrays(module), path):
                exports["patched"] += 1
                return path
            export_top(module, path, calib_top[0])
            exports["exported"] += 1
            if template is None:
                template = (path, state_arrays(module))
            return path

        def parity(module, path: Path, feats: Sequence[np.ndarray]) -> float:
            """max |logit| difference, PyTorch vs the ONNX top, on the same backbone features."""
            return float(np.max(np.abs(top_onnx_logits(_session(path, config.threads), feats) - top_logits(module, feats))))
        for comp in (COMPRESSIONS[c] for c in config.compressions):
            say(f"compressing: the backbone to {comp.name}, then {len(to_compress)} specialised tops")
            details: dict[str, Any] = {}
            if bb_fp32 is None:
                bb_fp32 = export_backbone(backbone_module, work / f"minilm-backbone.fp32{onnx_suffix}", example_ids)
                bb_state = state_arrays(backbone_module)
            if comp.sparsity > 0:
                pruned, bb_zeroed = _prune(backbone_module, comp.sparsity, [])
                bb_path = work / f"minilm-backbone.{comp.name}{onnx_suffix}"
                if not retarget_onnx(bb_fp32, bb_state, state_arrays(pruned), bb_path):
                    export_backbone(pruned, bb_path, example_ids)
                ids8 = example_ids
                details["backbone_parity_max_abs"] = float(np.max(np.abs(
                    _session(bb_path, config.threads).run({"input_ids": ids8})[0] - torch_runner(pruned.backbone)(ids8))))
                del pruned
            else:
                bb_zeroed = 0
                bb_path = bb_fp32
                if comp.precision != "fp32":
                    bb_path = work / f"minilm-backbone.{comp.name}{onnx_suffix}"
                    details["backbone"] = _quantize(bb_fp32, bb_path, comp.precision, calibration, [])
            session = _session(bb_path, config.threads)
            bb_run: Run = lambda ids, s=session: s.run({"input_ids": ids})[0]  # noqa: E731
            bb_test = {d: encode_features(bb_run, dd.test_ids) for d, dd in data.items()}
            for method, target, seed, top in to_compress:
                name = f"{gem} {method}-{target}"
                stem = f"{gem}.{method}-{target}.s{seed}"
                keep = list(top.high_precision_modules())
                vdetails = dict(details)
                probe = [f for d in data for f in bb_test[d][:2]]
                if comp.sparsity > 0:
                    pruned_top, top_zeroed = _prune(top, comp.sparsity, keep)
                    path = write_top(pruned_top, work / f"{stem}.top.{comp.name}{onnx_suffix}")
                    vdetails["top_parity_max_abs_logit"] = parity(pruned_top, path, probe)
                else:
                    top_zeroed = 0
                    if id(top) not in top_fp32:
                        top_fp32[id(top)] = write_top(top, work / f"{stem}.top.fp32{onnx_suffix}")
                        vdetails["top_parity_max_abs_logit"] = parity(top, top_fp32[id(top)], probe)
                    path = top_fp32[id(top)]
                    if comp.precision != "fp32":
                        path = work / f"{stem}.top.{comp.name}{onnx_suffix}"
                        vdetails["top"] = _quantize(top_fp32[id(top)], path, comp.precision, calib_top, keep)
                t = time.perf_counter()
                tsess = _session(path, config.threads)
                if comp.name not in latency:
                    latency[comp.name] = pipeline_latency_ms(session, tsess, lat_ids)
                logits = {d: top_onnx_logits(tsess, bb_test[d]) for d in data}
                if comp.name == "fp32":  # the deployed pipeline vs the PyTorch model on 8 test texts
                    ids = next(iter(data.values())).test_ids[:8]
                    mask = (ids != 0).astype(np.int64)
                    with torch.inference_mode():
                        ref = top(torch.from_numpy(run(ids)), torch.from_numpy(mask)).numpy()
                    out = tsess.run({"hidden": bb_run(ids), "attention_mask": mask})[0]
                    vdetails["parity_max_abs_logit"] = float(np.max(np.abs(out - ref)))
                total_params = bb_params + sum(p.numel() for p in top.parameters())
                sparsity = (bb_zeroed + top_zeroed) / total_params
                c = compression_intensity(BITS[comp.precision], sparsity)
                size = bb_path.stat().st_size + path.stat().st_size
                vdetails.update({"backbone_artifact": bb_path.name, "backbone_sha256": file_sha256(bb_path),
                                 "top_artifact": path.name})
                result = eval_result(f"{name} {comp.name}", "onnx", logits, data, space,
                                     dict(tsess.describe()), file_sha256(path), time.perf_counter() - t)
                f1, acc = _scores(result)
                rec = VariantRecord(f"{name} {comp.name}", "gem", method, target, comp.name, comp.precision,
                                    sparsity, c, seed, "onnx", f1, acc, size, details=vdetails)
                recorder.record(rec, result, str(path) if keep_dir else None)
                records.append(rec)
            del bb_test, session
        timings["compress_evaluate"] += time.perf_counter() - t0
        if to_compress:
            notes.append(f"ONNX tops: {exports['exported']} exported, {exports['patched']} written by patching the "
                         "exported graph's weights (parity against PyTorch recorded per variant)")
        say("computing DSI / GG / CDTR, correlations and claims")
        reference = f"{gem} base"
        metrics, correlations = _metrics(records, reference, config, notes)
        claims = evaluate_claims(units, n_boot=config.n_boot, seed=0)
    finally:
        torch.set_num_threads(threads_before)
        if not keep_dir:
            shutil.rmtree(work, ignore_errors=True)
    wall = time.perf_counter() - start
    if config.budget_s and wall > config.budget_s:
        notes.append(f"wall time {wall:.0f} s exceeded the stated budget of {config.budget_s:.0f} s")
    result = StudyResult(
        config=config.to_dict(), reference=reference, group=group, wall_s=wall,
        created=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"), records=records, metrics=metrics,
        correlations=correlations, claims=claims, timings_s=timings, store=None, out_dir=str(work) if keep_dir else None,
        notes=notes, headline=headline(records, reference, latency, config.threads),
    )
    if store:
        result.store = str(_store_summary(result, db, running))
    return result
