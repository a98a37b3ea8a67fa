"""Evaluation results <-> the results store (edgekit/store.py, SQLite).

An evaluation is one run of kind "eval" (its config: seed, sequence length, vocabulary, trained or not, label
space; its result: the whole EvalResult) and one `scores` row per domain and metric (macro_f1, accuracy), so
`edgekit metrics` can read them back as (model, domain, task, score, seed) rows.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edgekit.evalsuite.evaluate import DomainScore, EvalResult
from edgekit.metrics.robustness import ScoreRow
from edgekit.runlog import ROW_SCHEMA, Row, log

EVAL_METRICS = ("macro_f1", "accuracy")


@dataclass
class EvalRun:
    """One evaluation as the store keeps it (kind "eval"): the EvalResult, the artifact evaluated (path; its hash is
    the result's), and what the caller adds — `source` of its scores, `extra_config` / `extra_result` (a study's
    variant: method, compression, ...), `score_details` added to each score's details. Scores are fractions."""

    result: EvalResult
    artifact_path: str | None = None
    precision: str | None = None
    source: str = ""
    extra_config: dict[str, Any] = field(default_factory=dict)
    extra_result: dict[str, Any] = field(default_factory=dict)
    score_details: dict[str, Any] = field(default_factory=dict)
    model: str | None = None  # the name it is stored under (a study's variant name); default: the result's model
    status: str = "ok"
    run_id: int | None = None
    error: str | None = None  # why a failed evaluation failed (one line)

    @property
    def name(self) -> str:
        return self.model or self.result.model

    def scores(self) -> list[Any]:
        from edgekit.store import StoredScore

        r = self.result
        return [StoredScore(model=self.name, metric=metric, score=float(getattr(s, metric)), domain=s.domain,
                            task=s.task, n=s.n_test, seed=r.seed, source=self.source or f"edgekit eval ({r.kind})",
                            details={"n_classes": s.n_classes, **(self.score_details or {"trained": r.trained})})
                for s in r.scores for metric in EVAL_METRICS]

    def to_row(self) -> Row:
        r = self.result
        config = {"seed": r.seed, "seq_len": r.seq_len, "vocab_size": r.vocab_size, "trained": r.trained,
                  "label_space": r.label_space, "domains": [s.domain for s in r.scores], **self.extra_config}
        return Row("eval", self.status, model=self.name, format=r.kind, precision=self.precision,
                   runtime=str(r.runtime.get("runtime", r.kind)), artifact_path=self.artifact_path,
                   artifact_sha256=r.artifact_sha256, env={"runtime": r.runtime}, config=config,
                   result=None if self.status == "running" else {**r.to_dict(), **self.extra_result,
                                                                   "schema": ROW_SCHEMA},
                   error=self.error, scores=self.scores() if self.status == "ok" else [])

    @classmethod
    def from_row(cls, run: Any, scores: list[Any] | None = None) -> EvalRun:
        """The evaluation a stored run holds (schema 1 and v0 rows alike: the result is EvalResult.to_dict());
        `scores`: its stored scores (store.scores(run_id=...)), which give back `source` and `score_details`."""
        res = dict(run.result or {})
        fields = EvalResult.__dataclass_fields__
        domains = [DomainScore(**{k: s.get(k) for k in DomainScore.__dataclass_fields__})
                   for s in res.get("scores", []) if isinstance(s, dict)]
        base = {"model": run.model, "kind": run.format or "torch", "trained": (run.config or {}).get("trained"),
                "seed": 0, "seq_len": 0, "vocab_size": 0}
        result = EvalResult(**{**base, **{k: v for k, v in res.items() if k in fields and k != "scores"},
                               "scores": domains})
        config_keys = ("seed", "seq_len", "vocab_size", "trained", "label_space", "domains")
        extra = {k: v for k, v in res.items() if k not in fields and k not in ("mean_macro_f1", "schema")}
        first = scores[0] if scores else None
        details = {k: v for k, v in (first.details if first else {}).items() if k != "n_classes"}
        if details == {"trained": result.trained}:
            details = {}  # the default details, not the caller's
        return cls(result, artifact_path=run.artifact_path, precision=run.precision, status=run.status,
                   model=run.model if run.model != result.model else None,
                   source=first.source if first else "", score_details=details,
                   extra_config={k: v for k, v in (run.config or {}).items() if k not in config_keys},
                   extra_result=extra, run_id=run.id, error=run.error)


def log_eval(store: Any, record: EvalRun, group: str | None = None) -> int:
    """The one writer of evaluations (kind "eval"): the run, its scores and its result in one write (kept in a
    fallback file when the store cannot take it). Returns the run id."""
    return log(store, record, group)


@contextmanager
def running_eval(db: Path | None, record: EvalRun, group: str | None = None) -> Iterator[EvalRun]:
    """The store's row of an evaluation while it works (`edgekit eval`): `record` (its result holding what is known
    before the work: model, kind, seed, sequence length, trained, the artifact's hash; no scores) is inserted as
    `running` on entry; the block sets `record.result` to the real result, and on exit the same row is finished
    `ok` with it and its scores. An exception in the block finishes it `failed` with the error's one line (and
    passes on); Ctrl-C / SIGTERM marks it `interrupted` (edgekit.lifecycle); a process killed outright leaves it
    `running`, which is what the store then knows."""
    from edgekit.errors import EdgekitError
    from edgekit.lifecycle import interruptible
    from edgekit.store import ResultsStore

    with ResultsStore(db) as store, interruptible(store):
        record.status, record.run_id, record.error = "running", None, None
        log_eval(store, record, group)
        try:
            yield record
        except Exception as exc:
            record.status = "failed"
            record.error = exc.one_line() if isinstance(exc, EdgekitError) else f"{type(exc).__name__}: {exc}"
            log_eval(store, record)
            raise
        record.status = "ok"
        log_eval(store, record)


def record_eval(result: EvalResult, db: Path | None = None, artifact_path: str | None = None,
                group: str | None = None) -> int:
    """Write one evaluation to the store at `db`; returns the run id. `group`: the run group it joins (a report of
    that group takes its scores from it)."""
    from edgekit.store import ResultsStore

    with ResultsStore(db) as store:
        return log_eval(store, EvalRun(result, artifact_path=artifact_path), group)


def store_score_rows(db: Path | None = None, metric: str = "macro_f1") -> list[ScoreRow]:
    """Every stored score of `metric` that names a domain and a task, as metric rows (later rows win)."""
    from edgekit.store import ResultsStore

    with ResultsStore(db, read_only=True) as store:  # reading never creates a store
        stored = store.scores(metric=metric)
    return [
        ScoreRow(r.model, r.domain, r.task, float(r.score), int(r.seed or 0))
        for r in stored
        if r.domain and r.task and r.score is not None
    ]
