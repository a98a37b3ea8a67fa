"""Build a Report from the results store: choose the runs, read their records and samples, attach parity (run record
or the manifest beside the artifact), accuracy (scores), compression intensity and robustness metrics
(edgekit.metrics), and check the model cards' budgets.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from edgekit.bench.energy import EnergyResult
from edgekit.bench.runner import BenchResult, MemoryRecord
from edgekit.bench.stats import LatencySummary
from edgekit.errors import EdgekitError
from edgekit.report.budgets import (
    on_target_check,
    parity_check,
    run_budget_checks,
    run_status_check,
    score_budget_checks,
)
from edgekit.report.records import (
    AccuracyFigures,
    Check,
    EnergyFigures,
    LatencyFigures,
    MemoryFigures,
    MetricPoint,
    ParityFigures,
    Report,
    ReportRow,
)
from edgekit.runlog import schema_of

# Runs of these kinds hold no latency figures of an artifact: they feed scores, not rows.
NON_BENCH_KINDS = ("eval", "export", "study", "profile")
ACCURACY_METRIC = "macro_f1"  # the report's accuracy column (ReportRow.accuracy)
TOP1_METRIC = "accuracy"  # top-1 (ReportRow.top1): `edgekit eval` and `export --eval-data` store it beside macro_f1


@dataclass
class Selection:
    """Which runs a report covers. At most one of: run_ids, last, all_runs, group, last_group; none = last_group."""

    run_ids: list[int] = field(default_factory=list)
    last: int | None = None
    all_runs: bool = False
    group: str | None = None
    last_group: bool = False
    since: str | None = None  # ISO 8601 time; naive times are UTC

    def to_dict(self) -> dict[str, Any]:
        if self.run_ids:
            return {"run_ids": list(self.run_ids)}
        if self.last:
            return {"last": self.last}
        if self.all_runs:
            return {"all": True}
        if self.group:
            return {"group": self.group}
        if self.since:
            return {"since": self.since}
        return {"last_group": True}


def open_store(db: Path | str | None) -> Any:
    """Open an existing results store for reading, read-only (edgekit/store.py): a path that does not exist is an
    error (a report never creates an empty store as a side effect), and a read-only store file works."""
    from edgekit.store import ResultsStore

    return ResultsStore(db, read_only=True)


def _bench_runs(store: Any) -> list[Any]:
    return [r for r in store.list_runs() if r.kind not in NON_BENCH_KINDS]


def select_runs(store: Any, sel: Selection) -> list[Any]:
    """The store's runs chosen by `sel`, oldest first. Unknown run ids, unknown groups and an empty store raise
    one EdgekitError naming them."""
    chosen = [bool(sel.run_ids), bool(sel.last), sel.all_runs, bool(sel.group), sel.last_group, bool(sel.since)]
    if sum(chosen) > 1:
        raise EdgekitError("give only one of RUN_IDS, --last, --all, --group, --last-group, --since",
                           "pick one way to choose the runs")
    since = _parse_time(sel.since) if sel.since else None
    if sel.last is not None and sel.last < 1:
        raise EdgekitError(f"--last {sel.last} must be a positive number of runs", "e.g. --last 5")
    if sel.run_ids:
        found, missing = [], []
        for rid in sel.run_ids:
            try:
                found.append(store.get_run(rid))
            except EdgekitError:
                missing.append(rid)
        if missing:
            raise EdgekitError(f"run id(s) {', '.join(map(str, missing))} not in the results store {store.path}",
                               "list the stored runs with `edgekit runs list`")
        bench = [r for r in found if r.kind not in NON_BENCH_KINDS]
        if not bench:
            wrong = found[0]
            raise EdgekitError(f"run {wrong.id} is an {wrong.kind} run, not a benchmark, and no benchmark run was "
                               "given", "give the ids of benchmark runs too (`edgekit runs list`); eval and "
                               "study ids given beside them supply the report's scores")
        return sorted(bench, key=lambda r: r.id)
    runs = _bench_runs(store)
    if not runs:
        raise EdgekitError(f"the results store {store.path} holds no benchmark runs",
                           "run `edgekit bench MODEL` first, or point --db at another store")
    if sel.all_runs:
        picked = runs
    elif since is not None:
        picked = [r for r in runs if _parse_time(r.created) >= since]
        if not picked:
            raise EdgekitError(f"no benchmark run in {store.path} started at or after {sel.since}",
                               "check the time (ISO 8601, UTC unless it has an offset), or use --last N")
    elif sel.last:
        picked = runs[: sel.last]
    elif sel.group:
        picked = [r for r in runs if r.group == sel.group]
        if not picked:
            groups = sorted({r.group for r in runs if r.group}, reverse=True)[:5]
            raise EdgekitError(f"group {sel.group!r} has no benchmark runs in {store.path}",
                               f"use one of the stored groups ({', '.join(groups) or 'none'}) or --all")
    else:  # last group (the default)
        newest = runs[0]
        picked = [r for r in runs if r.group == newest.group] if newest.group else [newest]
    return sorted(picked, key=lambda r: r.id)


def select_companions(store: Any, sel: Selection, bench_runs: list[Any]) -> list[Any]:
    """The eval, study and profile runs that belong to the selection, by the same rule as its benchmark runs: the ids given,
    every run (--all), runs started since --since, or the groups of the chosen benchmark runs (--group,
    --last-group, --last N). A report takes its scores and study figures from these only, so runs stored later or
    elsewhere (another configuration of the same model) cannot change it."""
    others = [r for r in store.list_runs() if r.kind in ("eval", "study", "profile")]
    if sel.run_ids:
        wanted = set(sel.run_ids)
        return [r for r in others if r.id in wanted]
    if sel.all_runs:
        return others
    if sel.since:
        since = _parse_time(sel.since)
        return [r for r in others if _parse_time(r.created) >= since]
    groups = {r.group for r in bench_runs if r.group}
    return [r for r in others if r.group and r.group in groups]


def _parse_time(text: str) -> datetime:
    """An ISO 8601 time; a time without an offset is taken as UTC."""
    try:
        t = datetime.fromisoformat(text.strip())
    except ValueError as exc:
        raise EdgekitError(f"--since {text!r} is not an ISO 8601 time", "write it like 2025-06-01T14:30:00") from exc
    return t if t.tzinfo else t.replace(tzinfo=UTC)


# -- one row -------------------------------------------------------------------------------------------------------


def _num(v: Any) -> float | None:
    """A finite float, or None (missing / NaN / not a number) — never a made-up 0."""
    if v is None or isinstance(v, bool):
        return None
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) else None


def _latency(lat: LatencySummary | None, samples: list[float], provenance: str, load_ms: Any,
             first_ms: Any) -> LatencyFigures | None:
    """The report's latency figures (ms) of a stored summary (figures it lacks are NaN there, None here)."""
    load_ms, first_ms = _num(load_ms), _num(first_ms)
    if lat is None and load_ms is None and first_ms is None:
        return None
    ci = lat.ci_median if lat is not None else None
    ci_t = (float(ci[0]), float(ci[1])) if ci and all(_num(x) is not None for x in ci) else None
    n = _num(lat.n) if lat is not None else None

    def get(name: str) -> float | None:
        return _num(getattr(lat, name)) if lat is not None else None

    return LatencyFigures(
        provenance=provenance, n=int(n) if n is not None else (len(samples) or None), mean_ms=get("mean"),
        std_ms=get("std"), min_ms=get("min"), max_ms=get("max"), p50_ms=get("p50"), p90_ms=get("p90"),
        p95_ms=get("p95"), p99_ms=get("p99"), cv=get("cv"), ci_median_ms=ci_t, ci_level=get("ci_level"),
        load_ms=load_ms, first_ms=first_ms, samples_ms=list(samples))


def _memory(mem: MemoryRecord | None) -> MemoryFigures | None:
    if mem is None:
        return None
    before, after = _int_or_none(mem.rss_before_load), _int_or_none(mem.rss_after_load)
    return MemoryFigures(provenance=mem.provenance, peak_rss_bytes=_int_or_none(mem.peak_rss_inference),
                         model_rss_bytes=after - before if before is not None and after is not None else None,
                         scope=mem.peak_rss_scope)


def _energy(en: EnergyResult | None) -> EnergyFigures | None:
    if en is None:
        return None
    return EnergyFigures(provenance=str(en.provenance), j_per_inference=_num(en.j_per_inference),
                         error_band_j=_num(en.error_band_j), source=en.source, assumption=en.assumption)


def _parity_figures(p: Any, source: str) -> ParityFigures:
    return ParityFigures(verdict=str(p.verdict or "unknown"), source=source, max_abs=_num(p.max_abs),
                         cosine=_num(p.cosine), top1_agreement=_num(p.top1_agreement), note=str(p.note or ""))


def _parity(run: Any, bench: BenchResult, manifests: dict[Path, Any]) -> ParityFigures:
    """Parity vs PyTorch: the export's manifest record of this very file (same hash), which the benchmark's job
    carried into the run record, so a moved artifact keeps it; rows written before the typed records (v0) read the
    manifest.json beside the artifact instead. Plus the on-target check of remote/emulated runs (the target's outputs vs this host's runtime, in
    result.runtime.parity)."""
    v0 = schema_of(run.result) == 0
    if bench.parity is not None:  # the export's manifest record, carried with the run (a v0 record's own: "run")
        parity = _parity_figures(bench.parity, "run" if v0 else "manifest")
    elif v0:
        parity = _parity_from_manifest(run, manifests)
    else:
        parity = ParityFigures(note="the export recorded no parity for this artifact (no edgekit manifest listed it)")
    dev = bench.runtime.get("parity")
    if isinstance(dev, dict) and dev.get("verdict"):
        parity.on_target = str(dev["verdict"])
        bits = []
        if _num(dev.get("max_abs")) is not None:
            bits.append(f"max abs err {float(dev['max_abs']):.2e}")
        if _num(dev.get("cosine")) is not None:
            bits.append(f"cosine {float(dev['cosine']):.6f}")
        if dev.get("reference"):
            bits.append(f"vs {dev['reference']}")
        if dev.get("note"):
            bits.append(str(dev["note"]))
        parity.on_target_note = ", ".join(bits)
    return parity


def _parity_from_manifest(run: Any, manifests: dict[Path, Any]) -> ParityFigures:
    """v0 rows only: the parity of the manifest.json beside the artifact, when it lists this very file."""
    if not run.artifact_path:
        return ParityFigures(note="the run records no artifact path")
    from edgekit.export.artifact import MANIFEST_NAME, Manifest

    art_path = Path(run.artifact_path)
    mpath = art_path.parent / MANIFEST_NAME
    if mpath not in manifests:
        try:
            manifests[mpath] = Manifest.read(mpath) if mpath.is_file() else None
        except EdgekitError:
            manifests[mpath] = None
    manifest = manifests[mpath]
    if manifest is None:
        return ParityFigures(note=f"no readable {MANIFEST_NAME} beside {art_path.name}")
    for art in manifest.artifacts:
        if not art.path or (mpath.parent / art.path).resolve() != art_path.resolve():
            continue
        if run.artifact_sha256 and art.sha256 and run.artifact_sha256 != art.sha256:
            return ParityFigures(note="the manifest describes another build of this file (hash differs)")
        if art.parity is None:
            return ParityFigures(note="the manifest holds no parity record for this artifact")
        return _parity_figures(art.parity, "manifest")
    return ParityFigures(note=f"{MANIFEST_NAME} beside the artifact does not list {art_path.name}")


def row_from_run(store: Any, run: Any, manifests: dict[Path, Any] | None = None) -> ReportRow:
    """One ReportRow from a stored run, read through its typed record (BenchResult.from_row, or
    PredictionRun.from_row for kind "predict") with its steady-state samples."""
    samples = store.samples(run.id, "steady")
    if run.kind == "predict":
        return _prediction_row(run, samples)
    bench = BenchResult.from_row(run, {"steady": samples})
    env = bench.env.to_dict() if bench.env else {}
    runtime_info = bench.runtime
    warnings = [f"{w.kind}: {w.detail}" if w.kind else w.detail for w in bench.warnings]
    return ReportRow(
        run_id=run.id, model=bench.model, format=bench.format, precision=bench.precision,
        target=run.target or "local", status=run.status, kind=run.kind, group=run.group, created=run.created,
        error=run.error, runtime=bench.runtime_name or env.get("runtime"),
        runtime_version=env.get("runtime_version") or runtime_info.get("version"),
        artifact_path=run.artifact_path, artifact_sha256=run.artifact_sha256,
        latency=_latency(bench.latency, samples, bench.provenance, bench.load_ms, bench.first_ms),
        memory=_memory(bench.memory), energy=_energy(bench.energy),
        parity=_parity(run, bench, manifests if manifests is not None else {}), warnings=warnings,
        env={k: env.get(k) for k in ("cpu_model", "machine", "host_os", "cpu_count", "threads", "provider",
                                     "runtime", "runtime_version", "edgekit_version") if env.get(k) is not None}
        | ({"governor": env["cpufreq"].get("governor")} if (env.get("cpufreq") or {}).get("governor") else {}),
        threads=_int_or_none(runtime_info.get("threads", env.get("threads"))),
        sweep={k: n for k, v in (bench.config.get("sweep") or {}).items() if (n := _int_or_none(v)) is not None},
        size_bytes=_int_or_none(bench.size_bytes),
    )


def _prediction_row(run: Any, samples: list[float]) -> ReportRow:
    """A cost-model prediction's row: p50/p90 (ms) labelled predicted, with the calibration's held-out error."""
    from edgekit.targets.results import PredictionRun

    pred = PredictionRun.from_row(run)
    p = pred.prediction
    provenance = run.provenance or (p.provenance if p else None) or "predicted"
    lat = LatencyFigures(provenance, n=len(samples) or None, p50_ms=_num(p.p50_ms), p90_ms=_num(p.p90_ms),
                         calibration_error=p.calibration.median_abs_error, samples_ms=list(samples)) if p else None
    return ReportRow(
        run_id=run.id, model=pred.model, format=pred.format, precision=pred.precision, target=run.target or "local",
        status=run.status, kind=run.kind, group=run.group, created=run.created, error=run.error,
        runtime=run.runtime, artifact_path=run.artifact_path, artifact_sha256=run.artifact_sha256, latency=lat,
        parity=ParityFigures(note="the run records no artifact path"),
        warnings=[f"prediction: {p.note}"] if p is not None and p.note else [])


def _int_or_none(v: Any) -> int | None:
    """A stored count (threads, a sweep value, bytes) as an int, or None."""
    f = _num(v)
    return int(f) if f is not None else None


# -- scores, accuracy and robustness metrics -----------------------------------------------------------------------


def domain_mean(scores: Sequence[Any]) -> tuple[float | None, int]:
    """Mean over the tasks of each domain, then over domains (so a domain with many tasks does not dominate);
    seeds of one task are averaged first. Returns (score, number of domains)."""
    by_task: dict[tuple[str, str], list[float]] = {}
    for s in scores:
        v = _num(s.score)
        if v is not None:
            by_task.setdefault((s.domain or "-", s.task or "-"), []).append(v)
    by_domain: dict[str, list[float]] = {}
    for (dom, _task), vals in by_task.items():
        by_domain.setdefault(dom, []).append(sum(vals) / len(vals))
    if not by_domain:
        return None, 0
    means = [sum(v) / len(v) for v in by_domain.values()]
    return sum(means) / len(means), len(means)


@dataclass
class ScoreSet:
    """The scores of one evaluation (or of imported scores), with where they came from."""

    scores: list[Any]
    source: str
    trained: bool | None = None

    def label(self) -> str:
        return self.source + (" — untrained weights, chance level" if self.trained is False else "")


class ScoreIndex:
    """Evaluation scores in the store, found for a benchmark row: the artifact's own evaluation (an eval run whose
    artifact hash equals the benchmarked file's), else the model's PyTorch evaluation (an eval run of the same
    model name, format torch), else scores of that model name stored without a run (imports). Newest wins."""

    def __init__(self, store: Any, selected: list[Any] | None = None, imports: bool = True) -> None:
        """`selected`: the eval runs of the selection (None = every eval run). Model-level scores come only from
        them; an artifact's own evaluation is found anywhere by its file hash. `imports`: also use scores stored
        without a run (imported files)."""
        self.store = store
        self.evals = [r for r in store.list_runs(kind="eval") if r.status == "ok"]  # newest first
        self.selected = None if selected is None else {r.id for r in selected if r.kind == "eval"}
        self.imports = imports
        self._cache: dict[tuple[int | None, str, str], ScoreSet | None] = {}

    def outside(self, model: str) -> list[Any]:
        """PyTorch evaluations of `model` stored outside the selection (their scores are not used)."""
        if self.selected is None:
            return []
        return [r for r in self.evals if r.model == model and (r.format or "torch") in ("torch", "pytorch")
                and r.id not in self.selected]

    def _set(self, run: Any, metric: str) -> ScoreSet | None:
        key = (run.id, "", metric)
        if key not in self._cache:
            from edgekit.evalsuite.persist import EvalRun

            rows = self.store.scores(run_id=run.id, metric=metric)
            self._cache[key] = ScoreSet(rows, f"eval run {run.id} ({run.format or '?'})",
                                        EvalRun.from_row(run).result.trained) if rows else None
        return self._cache[key]

    def variant(self, sha256: str | None, metric: str) -> ScoreSet | None:
        if not sha256:
            return None
        for run in self.evals:
            if run.artifact_sha256 == sha256:
                found = self._set(run, metric)
                if found is not None:
                    return found
        return None

    def model(self, model: str, metric: str) -> ScoreSet | None:
        for run in self.evals:
            if self.selected is not None and run.id not in self.selected:
                continue
            if run.model == model and (run.format or "torch") in ("torch", "pytorch"):
                found = self._set(run, metric)
                if found is not None:
                    return found
        if not self.imports:
            return None
        key = (None, model, metric)
        if key not in self._cache:
            rows = [s for s in self.store.scores(model=model, metric=metric) if s.run_id is None]
            srcs = sorted({s.source for s in rows if s.source})
            self._cache[key] = ScoreSet(rows, ", ".join(srcs) or "stored scores") if rows else None
        return self._cache[key]


def accuracy_figures(index: ScoreIndex, model: str, row: ReportRow, metric: str) -> AccuracyFigures | None:
    """A row's `metric` scores: the artifact's own evaluation (scope "variant", found by its file hash), else the
    model's PyTorch evaluation (scope "model"); None when the store has neither."""
    vs = index.variant(row.artifact_sha256, metric)
    chosen, scope = (vs, "variant") if vs is not None else (index.model(model, metric), "model")
    if chosen is None:
        return None
    value, nd = domain_mean(chosen.scores)
    return AccuracyFigures(metric, value, nd, scope, chosen.label())


def compression_intensity_or_none(precision: str) -> float | None:
    """c for a precision name (edgekit.metrics.compression_intensity_of, no sparsity); None for a precision it does
    not know. Not edgekit.metrics.compression_intensity, which takes bits per weight and a sparsity."""
    from edgekit.metrics import compression_intensity_of

    try:
        return compression_intensity_of(precision)
    except EdgekitError:
        return None


def robustness_points(model: str, domain: str | None, reference: ScoreSet,
                      variants: dict[str, tuple[str, ScoreSet]]) -> tuple[list[MetricPoint], list[str]]:
    """DSI / GG / CDTR (edgekit.metrics) of each evaluated variant of `model` against its PyTorch evaluation (the
    uncompressed reference), over the domains every one of them was scored on. `variants`: label -> (precision,
    scores). DSI uses the card's target domain, else its maximum over targets."""
    from edgekit.metrics import ScoreTable, compression_intensity_of, model_metrics

    ref_name = f"{model} PyTorch"
    rows = [(ref_name, s.domain, s.task, float(s.score), int(s.seed or 0)) for s in reference.scores
            if s.domain and s.task and s.score is not None]
    for label, (_prec, ss) in variants.items():
        rows += [(label, s.domain, s.task, float(s.score), int(s.seed or 0)) for s in ss.scores
                 if s.domain and s.task and s.score is not None]
    try:
        table = ScoreTable.from_rows(rows)
    except EdgekitError as exc:
        return [], [f"{model}: robustness metrics not computed ({exc.one_line()})"]
    names = [ref_name, *variants]
    common = set(table.domains())
    for name in names:
        if name in table:
            common &= {r.domain for r in table.rows() if r.model == name}
    doms = [d for d in table.domains() if d in common]
    if len(doms) < 2:
        return [], [f"{model}: robustness metrics need scores on at least two common domains"]
    target = domain if domain in doms else None
    points, notes = [], []
    for name, prec in [(ref_name, "fp32"), *((lab, p) for lab, (p, _s) in variants.items())]:
        try:
            m = model_metrics(table, name, ref_name, target, doms)
            c = compression_intensity_of(prec)
        except EdgekitError as exc:
            notes.append(f"{name}: robustness metrics not computed ({exc.one_line()})")
            continue
        points.append(MetricPoint(model=model, variant="PyTorch fp32 (reference)" if name == ref_name else
                                  name.removeprefix(model + " "), compression_intensity=c,
                                  dsi=m.dsi if m.dsi is not None else m.dsi_max, gg=m.gg, cdtr=m.cdtr,
                                  reference="PyTorch fp32", target_domain=target or m.dsi_argmax))
    return points, notes


def study_points(companions: list[Any]) -> tuple[list[MetricPoint], list[str]]:
    """DSI / GG / CDTR of every variant of the fragility studies (`edgekit study fragility`) in the selection
    (select_companions), and each study's verdicts on the paper's claims as notes."""
    from edgekit.study.record import StudyRecord

    points: list[MetricPoint] = []
    notes: list[str] = []
    for run in sorted((r for r in companions if r.kind == "study"), key=lambda r: r.id):
        if run.status != "ok":
            continue
        study = StudyRecord.from_row(run)
        name = f"study {study.group or study.run_id}"
        points += [MetricPoint(model=name, variant=m.model, compression_intensity=m.c, dsi=m.dsi, gg=m.gg,
                               cdtr=m.cdtr, reference=study.reference or None, target_domain=m.target)
                   for m in study.metrics]
        notes += [f"{name}: claim \"{c.claim}\" (paper: {c.paper}) — {c.verdict}: {c.measured}" for c in study.claims]
        notes.extend(f"{name}: {n}" for n in study.notes)
    return points, notes


# -- the report ----------------------------------------------------------------------------------------------------


def build_report(store: Any, sel: Selection, budgets_from_cards: bool = True) -> Report:
    """The report over the runs `sel` chooses: rows, budget/parity checks, accuracy, robustness metrics, notes."""
    from edgekit import __version__
    from edgekit.report.budgets import ENERGY_BUDGETS, LATENCY_BUDGETS, MEMORY_BUDGETS
    from edgekit.specs import find_card

    runs = select_runs(store, sel)
    manifests: dict[Path, Any] = {}
    rows = [row_from_run(store, r, manifests) for r in runs]
    companions = select_companions(store, sel, runs)
    index = ScoreIndex(store, companions, imports=sel.all_runs)
    notes: list[str] = []
    checks: list[Check] = []
    metrics: list[MetricPoint] = []
    all_budgets: dict[str, dict[str, float]] = {}
    figure_keys = set(LATENCY_BUDGETS) | set(MEMORY_BUDGETS) | set(ENERGY_BUDGETS)
    for model in sorted({r.model for r in rows}):
        mrows = [r for r in rows if r.model == model]
        card = find_card(model) if budgets_from_cards else None
        budgets = dict(card.budgets) if card else {}
        if budgets:
            all_budgets[model] = budgets
        if card is None and budgets_from_cards:
            notes.append(f"{model}: no model card (models/{model}.toml), so no budgets are checked")
        model_scores: dict[str, tuple[float | None, str]] = {}
        for metric in sorted({ACCURACY_METRIC} | (set(budgets) - figure_keys)):
            ms = index.model(model, metric)
            if ms is not None:
                model_scores[metric] = (domain_mean(ms.scores)[0], ms.label())
        for r in mrows:
            r.accuracy = accuracy_figures(index, model, r, ACCURACY_METRIC)
            r.top1 = accuracy_figures(index, model, r, TOP1_METRIC)
        outside = index.outside(model)
        if outside and ACCURACY_METRIC not in model_scores:
            ids = ", ".join(str(r.id) for r in outside[:3])
            notes.append(f"{model}: PyTorch eval run(s) {ids} lie outside this selection, so their scores are not "
                         f"used — include them by id (`edgekit report RUN_IDS,{outside[0].id}`) or with --since")
        if not any(r.accuracy for r in mrows):
            notes.append(f"{model}: no {ACCURACY_METRIC} scores in the store (`edgekit eval {model}`, and "
                         "`edgekit eval ARTIFACT` per exported file), so no accuracy is shown for it")
        for r in mrows:
            r.compression_intensity = compression_intensity_or_none(r.precision)
            status = run_status_check(r)
            if status is not None:
                checks.append(status)
            if r.status != "skipped":
                checks.append(parity_check(r))
            if r.parity.on_target is not None:
                checks.append(on_target_check(r))
            checks.extend(run_budget_checks(r, budgets))
        checks.extend(score_budget_checks(model, mrows, budgets, model_scores))
        reference = index.model(model, ACCURACY_METRIC)
        variants: dict[str, tuple[str, ScoreSet]] = {}
        for r in mrows:
            vs = index.variant(r.artifact_sha256, ACCURACY_METRIC)
            if vs is not None:
                variants.setdefault(f"{model} {r.artifact_label}", (r.precision, vs))
        if reference is not None and variants:
            pts, mnotes = robustness_points(model, card.domain if card else None, reference, variants)
            metrics.extend(pts)
            notes.extend(mnotes)
    pts, snotes = study_points(companions)
    metrics.extend(pts)
    notes.extend(snotes)
    for r in rows:
        if r.status == "ok" and r.latency is not None and not r.latency.samples_ms:
            notes.append(f"run {r.run_id}: no latency samples stored, so no distribution plot or comparison CI")
        if r.accuracy is not None and "untrained" in r.accuracy.source:
            notes.append(f"{r.label}: {r.accuracy.metric} comes from untrained weights (chance level)")
    return Report(generated=datetime.now(UTC).isoformat(timespec="seconds"), edgekit_version=__version__,
                  store=str(store.path), selection=sel.to_dict(), rows=rows, checks=checks, metrics=metrics,
                  notes=list(dict.fromkeys(notes)), budgets=all_budgets, profiles=_profiles(companions),
                  claims=_claims(companions))


def _claims(companions: list[Any]) -> list[dict[str, Any]]:
    """"Paper claims": each study's claims and headline figures (edgekit/report/claims.py)."""
    from edgekit.report.claims import claim_sections

    return claim_sections(companions)


def _profiles(companions: list[Any]) -> list[dict[str, Any]]:
    """"Where the time goes": the profile runs of the selection (edgekit/report/profiles.py)."""
    from edgekit.report.profiles import profile_sections

    return profile_sections(companions)
