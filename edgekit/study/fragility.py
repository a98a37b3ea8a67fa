"""The fragility study: general base -> specialise (plain fine-tuning; GEM distillation) -> compress -> evaluate
every variant per domain -> DSI / GG / CDTR, compression intensity, Spearman rho with bootstrap CIs -> the paper's
claims. Each evaluation is written to the results store as it is produced (an `eval` run with its scores), and the
whole study as one `study` run at the end.

    from edgekit.study import StudyConfig, run_study
    result = run_study(StudyConfig.quick_config())
    result.claims  # -> [Claim(verdict="reproduced" | "not reproduced", ...)]
"""

from __future__ import annotations

import datetime as dt
import shutil
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from edgekit.errors import EdgekitError
from edgekit.evalsuite.evaluate import EvalResult
from edgekit.study.claims import Claim, Unit, evaluate_claims
from edgekit.study.config import COMPRESSIONS, STUDY_SCHEMA_VERSION, StudyConfig

Progress = Callable[[str], None]


@dataclass
class VariantRecord:
    """One evaluated model. method: base | ft (plain fine-tuning) | kd (GEM distillation); kind: torch | onnx;
    c: compression intensity; scores: domain -> macro-F1 on the test split; size_bytes: the ONNX file (bytes)."""

    model: str
    arch: str
    method: str
    target: str | None
    compression: str
    precision: str
    sparsity: float
    c: float
    seed: int
    kind: str
    scores: dict[str, float]
    accuracy: dict[str, float]
    size_bytes: int | None = None
    run_id: int | None = None
    details: dict[str, Any] = field(default_factory=dict)


@dataclass
class VariantMetrics:
    """DSI / GG / CDTR of one variant (scores averaged over seeds) against the uncompressed GEM base."""

    model: str
    method: str
    target: str
    compression: str
    c: float
    s_target: float
    mean_off: float
    dsi: float
    gg: float
    cdtr: float
    seeds: int


@dataclass
class StudyResult:
    config: dict[str, Any]
    reference: str
    group: str
    wall_s: float
    created: str
    records: list[VariantRecord]
    metrics: list[VariantMetrics]
    correlations: dict[str, dict[str, Any]]
    claims: list[Claim]
    timings_s: dict[str, float]
    store: str | None
    out_dir: str | None
    notes: list[str] = field(default_factory=list)
    schema_version: int = STUDY_SCHEMA_VERSION
    # The figures a claims table puts beside the paper's (0.89 cross-domain F1, under 100 ms): cross-domain F1 of
    # the base and of each deployed variant, latency (ms, batch 1, with provenance). Filled by --backbone minilm.
    headline: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["claims"] = [c.to_dict() for c in self.claims]
        return d


def _scores(result: EvalResult) -> tuple[dict[str, float], dict[str, float]]:
    return ({s.domain: float(s.macro_f1) for s in result.scores}, {s.domain: float(s.accuracy) for s in result.scores})


class _Recorder:
    """Writes each evaluation to the store as an `eval` run of the study's group (or keeps it in memory only)."""

    def __init__(self, db: Path | None, store: bool, group: str) -> None:
        self.db, self.enabled, self.group = db, store, group

    def record(self, rec: VariantRecord, result: EvalResult, artifact_path: str | None) -> None:
        if not self.enabled:
            return
        from edgekit.evalsuite.persist import EvalRun, log_eval
        from edgekit.store import ResultsStore

        run = EvalRun(result, artifact_path=artifact_path, precision=rec.precision, model=rec.model,
                      source=f"edgekit study fragility ({rec.kind})",
                      score_details={"compression": rec.compression, "compression_intensity": rec.c},
                      extra_result={"precision": rec.precision, "sparsity": rec.sparsity, "compression_intensity": rec.c,
                                    "compression": rec.compression, "method": rec.method, "target": rec.target},
                      extra_config={"trained": True, "study": "fragility", "arch": rec.arch, "method": rec.method,
                                    "target": rec.target, "compression": rec.compression, "precision": rec.precision,
                                    "sparsity": rec.sparsity, "compression_intensity": rec.c,
                                    "training_seed": rec.seed})
        with ResultsStore(self.db) as store:  # one write; kept in a fallback file if the store cannot take it
            rec.run_id = log_eval(store, run, self.group)


def _torch_record(model, name: str, arch: str, method: str, target: str | None, seed: int, data, space,
                  recorder: _Recorder) -> VariantRecord:
    from edgekit.evalsuite.evaluate import evaluate_model

    result = evaluate_model(model, data, name=name, trained=True, space=space)
    f1, acc = _scores(result)
    rec = VariantRecord(name, arch, method, target, "none", "fp32", 0.0, 0.0, seed, "torch", f1, acc)
    recorder.record(rec, result, None)
    return rec


def new_study_group() -> str:
    """The run group of one study invocation: its eval rows and its summary row share it."""
    return f"study-{dt.datetime.now(dt.UTC).strftime('%Y%m%dT%H%M%S')}-{uuid.uuid4().hex[:6]}"


def run_study(config: StudyConfig, *, db: Path | None = None, store: bool = True, out_dir: Path | None = None,
              cache_dir: Path | None = None, progress: Progress | None = None) -> StudyResult:
    """Run the whole study (see the module docstring) and return its result; artifacts go to `out_dir` (kept) or
    a temporary directory (deleted at the end). `config.backbone == "minilm"`: edgekit.study.pretrained. With
    `store`, the study's summary row is inserted `running` before the work and finished by it (or `failed`)."""
    from edgekit.study.record import running_study

    body = _run_scratch_study
    if config.backbone == "minilm":
        from edgekit.study.pretrained import require_minilm, run_pretrained_study

        require_minilm()  # a missing extra is a usage error: no row
        body = run_pretrained_study
    group = new_study_group()
    with running_study(db, f"{config.gem_model} base", group, config.to_dict(), enabled=store) as running:
        return body(config, db=db, store=store, out_dir=out_dir, cache_dir=cache_dir, progress=progress,
                    group=group, running=running)


def _run_scratch_study(config: StudyConfig, *, db: Path | None = None, store: bool = True,
                       out_dir: Path | None = None, cache_dir: Path | None = None, progress: Progress | None = None,
                       group: str | None = None, running: Any = None) -> StudyResult:
    """The from-scratch study (GEM-tiny and its dense twin trained here); `running`: the summary row to finish."""
    import torch

    from edgekit.evalsuite import SuiteConfig, full_label_space, load_suite, parse_domains
    from edgekit.study.compress import calibration_feeds, compress_and_evaluate
    from edgekit.study.train import build_model, specialise_kd, specialise_plain, train_base

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
    timings: dict[str, float] = {"load": 0.0, "train": 0.0, "evaluate_torch": 0.0, "compress_evaluate": 0.0}
    records: list[VariantRecord] = []
    units: list[Unit] = []
    notes: list[str] = []
    gem, dense = config.gem_model, config.dense_model
    dense_label = dense if dense != gem else f"{gem}-dense"
    try:
        t0 = time.perf_counter()
        say("loading the 8-domain suite")
        suite_cfg = SuiteConfig(seed=config.split_seed, seq_len=config.seq_len, vocab_size=config.vocab_size,
                                cache_dir=cache_dir)
        data = load_suite(None, suite_cfg)
        if config.max_test_per_domain:
            data = {d: _cap_test(dd, config.max_test_per_domain) for d, dd in data.items()}
            notes.append(f"test splits capped at {config.max_test_per_domain} examples per domain (seeded sample)")
        space = full_label_space(suite_cfg)
        calibration = calibration_feeds(data)
        timings["load"] += time.perf_counter() - t0
        comps = [COMPRESSIONS[c] for c in config.compressions]
        for seed in config.seeds:
            bases = {}
            archs = [("gem", gem, {})] + ([("dense", dense, config.dense_overrides)] if config.dense_baseline else [])
            for arch, zoo_name, overrides in archs:
                label = gem if arch == "gem" else dense_label
                say(f"seed {seed}: training the general {label} base on all 8 domains")
                t0 = time.perf_counter()
                model = build_model(zoo_name, space, config.seq_len, config.vocab_size, seed, overrides)
                train_base(model, data, space, epochs=config.base_epochs, seed=seed, lr=config.lr,
                           batch_size=config.batch_size, max_per_domain=config.base_max_per_domain)
                timings["train"] += time.perf_counter() - t0
                t0 = time.perf_counter()
                rec = _torch_record(model, f"{label} base", arch, "base", None, seed, data, space, recorder)
                timings["evaluate_torch"] += time.perf_counter() - t0
                records.append(rec)
                bases[arch] = (model, rec)
            gem_base, base_rec = bases["gem"]
            for target in targets:
                spec: dict[str, Any] = {}
                kd_args = dict(epochs=config.spec_epochs, seed=seed, lr=config.spec_lr, batch_size=config.batch_size,
                               max_train=config.spec_max_train, alpha=config.kd_alpha,
                               temperature=config.kd_temperature, general_weight=config.kd_general_weight,
                               transfer_per_domain=config.kd_transfer_per_domain)
                say(f"seed {seed}: specialising on {target} (plain fine-tuning, GEM distillation)")
                t0 = time.perf_counter()
                spec["ft"], _ = specialise_plain(gem_base, data[target], space, epochs=config.spec_epochs, seed=seed,
                                                 lr=config.spec_lr, batch_size=config.batch_size,
                                                 max_train=config.spec_max_train)
                spec["kd"], _ = specialise_kd(gem_base, data[target], data, space, **kd_args)
                dense_kd = None
                if "dense" in bases:
                    dense_kd, _ = specialise_kd(bases["dense"][0], data[target], data, space, **kd_args)
                timings["train"] += time.perf_counter() - t0
                t0 = time.perf_counter()
                torch_recs = {m: _torch_record(spec[m], f"{gem} {m}-{target}", "gem", m, target, seed, data, space,
                                               recorder) for m in ("ft", "kd")}
                dense_rec = (_torch_record(dense_kd, f"{dense_label} kd-{target}", "dense", "kd", target, seed, data,
                                           space, recorder) if dense_kd is not None else None)
                timings["evaluate_torch"] += time.perf_counter() - t0
                records.extend(torch_recs.values())
                if dense_rec is not None:
                    records.append(dense_rec)
                units.append(Unit(target, seed, base_rec.scores, torch_recs["ft"].scores, torch_recs["kd"].scores,
                                  dense_rec.scores if dense_rec else None))
                t0 = time.perf_counter()
                for method in ("ft", "kd"):
                    name = f"{gem} {method}-{target}"
                    say(f"seed {seed}: compressing and evaluating {name} ({', '.join(c.name for c in comps)})")

                    def on_variant(v, method=method, name=name, target=target, seed=seed):
                        f1, acc = _scores(v.result)
                        rec = VariantRecord(f"{name} {v.compression.name}", "gem", method, target, v.compression.name,
                                            v.compression.precision, v.sparsity, v.c, seed, "onnx", f1, acc,
                                            v.size_bytes, details=v.details)
                        recorder.record(rec, v.result, str(v.path) if keep_dir else None)
                        records.append(rec)

                    compress_and_evaluate(spec[method], f"{gem}.{method}-{target}.s{seed}", comps, work, data, space,
                                          config.seq_len, calibration, threads=config.threads, on_variant=on_variant)
                timings["compress_evaluate"] += time.perf_counter() - t0
        say("computing DSI / GG / CDTR, correlations and claims")
        reference = f"{gem} base"
        metrics, correlations = _metrics(records, reference, config, notes)
        claims = evaluate_claims(units, n_boot=config.n_boot, seed=0)
    finally:
        torch.set_num_threads(threads_before)
        if not keep_dir:
            shutil.rmtree(work, ignore_errors=True)
    result = StudyResult(
        config=config.to_dict(), reference=reference, group=group, wall_s=time.perf_counter() - start,
        created=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"), records=records, metrics=metrics,
        correlations=correlations, claims=claims, timings_s=timings, store=None, out_dir=str(work) if keep_dir else None,
        notes=notes,
    )
    if store:
        result.store = str(_store_summary(result, db, running))
    return result


def _cap_test(d, n: int):
    """A copy of `d` whose test split keeps a seeded sample of at most `n` examples (quick runs only)."""
    import dataclasses

    import numpy as np

    if len(d.test_labels) <= n:
        return d
    idx = np.sort(np.random.default_rng(0).choice(len(d.test_labels), size=n, replace=False))
    return dataclasses.replace(d, test_ids=d.test_ids[idx], test_labels=d.test_labels[idx])


def _metrics(records: list[VariantRecord], reference: str, config: StudyConfig,
             notes: list[str]) -> tuple[list[VariantMetrics], dict[str, dict[str, Any]]]:
    """DSI / GG / CDTR per compressed variant (seeds averaged), and Spearman rho(c, GG), rho(c, 1 - CDTR) with
    bootstrap CIs over tasks and seeds (edgekit.metrics.brittleness), pooled and per method."""
    from edgekit.metrics import ScoreTable, brittleness, model_metrics

    rows = [(r.model, d, d, s, r.seed) for r in records for d, s in r.scores.items()]
    table = ScoreTable.from_rows(rows)
    compressed = {}
    for r in records:
        if r.kind == "onnx" and r.target is not None:
            compressed.setdefault(r.model, r)
    out: list[VariantMetrics] = []
    for name, r in compressed.items():
        try:
            m = model_metrics(table, name, reference, r.target)
        except EdgekitError as exc:
            notes.append(f"{name}: metrics undefined ({exc.one_line()})")
            continue
        seeds = len({x.seed for x in records if x.model == name})
        out.append(VariantMetrics(name, r.method, r.target or "", r.compression, r.c, m.s_target or 0.0, m.mean_off,
                                  m.dsi or 0.0, m.gg, m.cdtr or 0.0, seeds))
    correlations: dict[str, dict[str, Any]] = {}
    valid = {m.model for m in out}
    for scope in ("all", "ft", "kd"):
        variants = {name: (r.c, r.target) for name, r in compressed.items()
                    if name in valid and (scope == "all" or r.method == scope)}
        for metric in ("gg", "1-cdtr"):
            key = f"{scope}:{metric}"
            if len(variants) < 3 or len({c for c, _ in variants.values()}) < 2:
                notes.append(f"rho(c, {metric}) for {scope}: fewer than 3 variants or one compression intensity")
                continue
            try:
                corr = brittleness(table, reference, variants, metric=metric, n_boot=config.n_boot, seed=0)
            except EdgekitError as exc:
                notes.append(f"rho(c, {metric}) for {scope}: {exc.one_line()}")
                continue
            correlations[key] = corr.to_dict()
    if len(config.seeds) == 1:
        notes.append("one seed and one task per domain: the bootstrap over tasks and seeds has nothing to resample, "
                     "so the rho intervals are degenerate; use --seeds 0,1 or more")
    return out, correlations


def _store_summary(result: StudyResult, db: Path | None, running: Any = None) -> Path:
    """Write the study's summary: finishes the `running` row of edgekit.study.record.running_study when given."""
    from edgekit.store import ResultsStore
    from edgekit.study.record import StudyRecord, log_study

    with ResultsStore(db) as st:
        record = StudyRecord.of(result)
        if running is not None:
            record.run_id = running.run_id
            running.status = record.status
        log_study(st, record)
        return st.path
