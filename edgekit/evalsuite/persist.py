"""Evaluation results <-> the results store (edgekit/store.py, SQLite).

An evaluation is one run of kind "eval" (its config: seed, sequence length, vocabulary, trained or not, label
space; its result: the whole EvalResult) and one `scores` row per domain and metric (macro_f1, accuracy), so
`edgekit metrics` can read them back as (model, domain, task, score, seed) rows.
"""

from __future__ import annotations

from pathlib import Path

from edgekit.evalsuite.evaluate import EvalResult
from edgekit.metrics.robustness import ScoreRow

EVAL_METRICS = ("macro_f1", "accuracy")


def record_eval(result: EvalResult, db: Path | None = None, artifact_path: str | None = None,
                group: str | None = None) -> int:
    """Write one evaluation to the store; returns the run id. `group`: the run group it joins (a report of that
    group takes its scores from it)."""
    from edgekit.store import ResultsStore, StoredScore

    scores = [
        StoredScore(
            model=result.model,
            metric=metric,
            score=float(getattr(s, metric)),
            domain=s.domain,
            task=s.task,
            n=s.n_test,
            seed=result.seed,
            source=f"edgekit eval ({result.kind})",
            details={"n_classes": s.n_classes, "trained": result.trained},
        )
        for s in result.scores
        for metric in EVAL_METRICS
    ]
    with ResultsStore(db) as store:  # run, scores and result in one write; kept in a fallback file if it fails
        run_id = store.record_run(
            "eval",
            "ok",
            result=result.to_dict(),
            scores=scores,
            model=result.model,
            format=result.kind,
            runtime=str(result.runtime.get("runtime", result.kind)),
            artifact_path=artifact_path,
            artifact_sha256=result.artifact_sha256,
            group=group,
            env={"runtime": result.runtime},
            config={
                "seed": result.seed,
                "seq_len": result.seq_len,
                "vocab_size": result.vocab_size,
                "trained": result.trained,
                "label_space": result.label_space,
                "domains": [s.domain for s in result.scores],
            },
        )
    return run_id


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
