"""DSI, GG, CDTR, compression intensity and rank correlation (edgekit.metrics), their loaders and `edgekit metrics`.

The worked example is the one docs/metrics.md computes by hand.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edgekit.errors import EdgekitError
from edgekit.evalsuite.score_files import (
    DomainMap,
    load_scores,
    read_csv_scores,
    read_lm_eval,
    write_csv_scores,
)
from edgekit.metrics import (
    ScoreRow,
    ScoreTable,
    brittleness,
    cdtr,
    compression_intensity,
    compression_intensity_of,
    dsi,
    gg,
    model_metrics,
    robustness,
    spearman_ci,
)

# The worked example of docs/metrics.md: four domains, law has two tasks.
WORKED = [
    ("base", "law", "law-a", 0.60),
    ("base", "law", "law-b", 0.70),
    ("base", "finance", "fin", 0.70),
    ("base", "stem", "stem", 0.80),
    ("base", "commonsense", "cs", 0.75),
    ("base-law-int8", "law", "law-a", 0.85),
    ("base-law-int8", "law", "law-b", 0.75),
    ("base-law-int8", "finance", "fin", 0.56),
    ("base-law-int8", "stem", "stem", 0.64),
    ("base-law-int8", "commonsense", "cs", 0.60),
]


def test_worked_example_by_hand():
    table = ScoreTable.from_rows(WORKED)
    assert table.domain_score("base", "law") == pytest.approx(0.65)  # tasks averaged first
    m = model_metrics(table, "base-law-int8", "base", target="law")
    assert m.s_target == pytest.approx(0.80)
    assert m.mean_off == pytest.approx(0.60)  # (0.56 + 0.64 + 0.60) / 3
    assert m.ref_mean_off == pytest.approx(0.75)  # (0.70 + 0.80 + 0.75) / 3
    assert m.dsi == pytest.approx(0.20 / 1.40)  # 0.142857
    assert m.gg == pytest.approx(0.20)  # (0.75 - 0.60) / 0.75
    assert m.cdtr == pytest.approx(0.65)  # (0.60 / 0.75) / (0.80 / 0.65)
    ref = model_metrics(table, "base", "base")  # no target: DSI for every t, its maximum
    assert ref.dsi is None and ref.cdtr is None and ref.gg == 0.0
    assert ref.dsi_by_target["law"] == pytest.approx((0.65 - 0.75) / 1.40)
    assert ref.dsi_argmax == "stem" and ref.dsi_max == pytest.approx(0.10 / 1.50)
    assert compression_intensity_of("int8") == 0.75


def test_compression_intensity_table():
    assert compression_intensity(32) == 0.0
    assert compression_intensity(16) == 0.5
    assert compression_intensity(8) == 0.75
    assert compression_intensity(4) == 0.875
    assert compression_intensity(8, sparsity=0.5) == 0.875
    assert compression_intensity_of("int8-static", 0.3) == pytest.approx(1 - 0.25 * 0.7)
    with pytest.raises(EdgekitError, match="outside"):
        compression_intensity(0)
    with pytest.raises(EdgekitError, match="sparsity"):
        compression_intensity(8, 1.5)
    with pytest.raises(EdgekitError, match="unknown precision"):
        compression_intensity_of("int3")


# --------------------------------------------------------------------------------------------- properties
unit = st.floats(min_value=0.0, max_value=1.0, allow_nan=False)
positive = st.floats(min_value=0.01, max_value=1.0, allow_nan=False)
DOMS = [
    "healthcare",
    "law",
    "finance",
    "stem",
    "commonsense",
    "conversational",
    "multilingual",
    "domain_adaptive",
]


@given(unit, unit)
def test_dsi_is_bounded(s_t, off):
    if s_t + off == 0:
        with pytest.raises(EdgekitError, match="DSI"):
            dsi(s_t, off)
    else:
        assert -1.0 <= dsi(s_t, off) <= 1.0


@given(st.lists(positive, min_size=8, max_size=8), st.sampled_from(DOMS))
def test_model_equal_to_reference_has_no_gap(scores, target):
    rows = [(name, d, f"{d}-task", s) for name in ("m", "r") for d, s in zip(DOMS, scores, strict=True)]
    m = model_metrics(ScoreTable.from_rows(rows), "m", "r", target=target)
    assert m.gg == pytest.approx(0.0, abs=1e-12)
    assert m.cdtr == pytest.approx(1.0)
    assert -1.0 <= m.dsi <= 1.0


@settings(max_examples=50)
@given(
    st.dictionaries(
        st.tuples(st.sampled_from(DOMS[:4]), st.integers(0, 3)), positive, min_size=4, max_size=16
    ),
    st.randoms(use_true_random=False),
)
def test_metrics_do_not_depend_on_task_order(items, rnd):
    rows = [
        (model, d, f"t{k}", s if model == "m" else 1.0 - s / 2)
        for (d, k), s in items.items()
        for model in ("m", "r")
    ]
    domains = sorted({d for d, _ in items})
    if len(domains) < 2:
        return
    target = domains[0]
    a = model_metrics(ScoreTable.from_rows(rows), "m", "r", target=target)
    shuffled = list(rows)
    rnd.shuffle(shuffled)
    b = model_metrics(ScoreTable.from_rows(shuffled), "m", "r", target=target)
    assert (a.dsi, a.gg, a.cdtr) == pytest.approx((b.dsi, b.gg, b.cdtr))


def test_domain_with_many_tasks_does_not_dominate():
    rows = [("m", "law", f"t{i}", 1.0) for i in range(10)] + [("m", "stem", "s", 0.0)]
    table = ScoreTable.from_rows(rows)
    assert table.domain_score("m", "law") == 1.0
    assert np.mean(list(table.domain_scores("m").values())) == 0.5


def test_seeds_are_averaged_within_a_task():
    table = ScoreTable.from_rows(
        [("m", "law", "t", 0.4, 0), ("m", "law", "t", 0.6, 1), ("m", "law", "u", 0.2, 0)]
    )
    assert table.domain_score("m", "law") == pytest.approx((0.5 + 0.2) / 2)


# -------------------------------------------------------------------------------------------------- errors
def test_errors_name_model_and_domain():
    table = ScoreTable.from_rows(WORKED)
    with pytest.raises(EdgekitError, match="reference model 'nope' has no scores"):
        robustness(table, "nope")
    with pytest.raises(EdgekitError, match="model 'ghost' has no scores"):
        robustness(table, "base", {"ghost": "law"})
    partial = ScoreTable.from_rows([r for r in WORKED if not (r[0] == "base-law-int8" and r[1] == "stem")])
    with pytest.raises(EdgekitError, match="'base-law-int8' has no scores in domain 'stem'"):
        model_metrics(partial, "base-law-int8", "base", "law")
    with pytest.raises(EdgekitError, match="target domain 'medicine'"):
        model_metrics(table, "base-law-int8", "base", "medicine")
    zero_target = ScoreTable.from_rows(
        [
            *WORKED,
            ("z", "law", "law-a", 0.0),
            ("z", "finance", "fin", 0.5),
            ("z", "stem", "stem", 0.5),
            ("z", "commonsense", "cs", 0.5),
        ]
    )
    with pytest.raises(EdgekitError, match="CDTR of z is undefined: z's score in law is 0"):
        model_metrics(zero_target, "z", "base", "law")
    zero_ref = ScoreTable.from_rows(
        [(m, d, "t", 0.0 if m == "r" else 0.5) for m in ("r", "m") for d in ("law", "stem")]
    )
    with pytest.raises(EdgekitError, match="GG is undefined"):
        model_metrics(zero_ref, "m", "r")
    with pytest.raises(EdgekitError, match="not in \\[0, 1\\]"):
        ScoreRow("m", "law", "t", 83.0)
    with pytest.raises(EdgekitError, match="4 or 5 fields"):
        ScoreTable.from_rows([("m", "law", 0.5)])
    with pytest.raises(EdgekitError, match="DSI of m is undefined"):
        dsi(0.0, 0.0, "m")
    with pytest.raises(EdgekitError, match="undefined"):
        gg(0.5, 0.0)
    with pytest.raises(EdgekitError, match="undefined"):
        cdtr(0.5, 0.5, 0.0, 0.5)


# --------------------------------------------------------------------------------------------- correlation
def test_spearman_ci_monotone_and_constant():
    perfect = spearman_ci([0, 0.5, 0.75, 0.875], [0.01, 0.05, 0.10, 0.20], n_boot=300)
    assert perfect.rho == pytest.approx(1.0) and perfect.ci_low == pytest.approx(1.0) and perfect.n == 4
    assert perfect.n_valid_boot > 0
    flat = spearman_ci([0, 0.5, 0.75], [0.1, 0.1, 0.1], n_boot=50)
    assert flat.rho is None
    with pytest.raises(EdgekitError, match="at least 3"):
        spearman_ci([0, 1], [0, 1])


def _variants_table(noise: float, seed: int = 0):
    """A reference and four compressed variants of it: the stronger the compression, the more the off-target
    domains lose; three seeds and two tasks per domain with small noise."""
    rng = np.random.default_rng(seed)
    cs = {"fp16": 0.5, "int8": 0.75, "int4": 0.875, "int4-p50": 0.9375}
    rows = []
    for model, loss in (("ref", 0.0), ("fp16", 0.01), ("int8", 0.05), ("int4", 0.12), ("int4-p50", 0.25)):
        for d in ("law", "finance", "stem"):
            for task in ("a", "b"):
                for seed_ in range(3):
                    base = 0.8 if d != "law" or model == "ref" else 0.85
                    score = base * (1 - loss if d != "law" else 1.0) + rng.normal(0, noise)
                    rows.append((model, d, f"{d}-{task}", float(np.clip(score, 0, 1)), seed_))
    return ScoreTable.from_rows(rows), {m: (c, "law") for m, c in cs.items()}


def test_brittleness_rank_correlation_with_bootstrap_over_tasks_and_seeds():
    table, variants = _variants_table(noise=0.005)
    res = brittleness(table, "ref", variants, metric="gg", n_boot=200, seed=1)
    assert res.rho == pytest.approx(1.0) and res.n == 4 and res.y == "GG"
    assert res.n_valid_boot == 200 and res.ci_low is not None and res.ci_low > 0.5
    cd = brittleness(table, "ref", variants, metric="1-cdtr", n_boot=100)
    assert cd.rho == pytest.approx(1.0) and cd.y == "1 - CDTR"
    noisy, _ = _variants_table(noise=0.1)
    wide = brittleness(noisy, "ref", variants, n_boot=200, seed=1)
    assert wide.ci_low < res.ci_low  # more noise across seeds and tasks -> a wider interval
    with pytest.raises(EdgekitError, match="unknown brittleness metric"):
        brittleness(table, "ref", variants, metric="dsi")
    with pytest.raises(EdgekitError, match="needs a target"):
        brittleness(table, "ref", {m: (c, None) for m, (c, _) in variants.items()}, metric="1-cdtr")


# ------------------------------------------------------------------------------------------------ loaders
def test_csv_roundtrip_and_errors(tmp_path):
    path = write_csv_scores(tmp_path / "s.csv", [ScoreRow(*r) for r in WORKED[:5]], append=False)
    write_csv_scores(path, [ScoreRow(*r) for r in WORKED[5:]])  # appends without a second header
    rows = read_csv_scores(path)
    assert [(r.model, r.domain, r.task, r.score) for r in rows] == [tuple(r) for r in WORKED]
    bad = tmp_path / "bad.csv"
    bad.write_text("model,domain,score\nm,law,0.5\n")
    with pytest.raises(EdgekitError, match="lacks the column\\(s\\) task"):
        read_csv_scores(bad)
    bad.write_text("model,domain,task,score\nm,law,t,high\n")
    with pytest.raises(EdgekitError, match="bad.csv:2"):
        read_csv_scores(bad)
    bad.write_text("task,score,domain,model\nt,0.5,law,m\n")  # any column order
    assert read_csv_scores(bad)[0] == ScoreRow("m", "law", "t", 0.5)
    with pytest.raises(EdgekitError, match="does not exist"):
        read_csv_scores(tmp_path / "none.csv")


LM_EVAL = {
    "results": {
        "mmlu": {"acc,none": 0.5, "alias": "mmlu"},  # a group aggregate: not in the map, left out
        "mmlu_professional_law": {"acc,none": 0.41, "acc_stderr,none": 0.01, "alias": " - professional_law"},
        "mmlu_jurisprudence": {"acc,none": 0.52, "acc_norm,none": 0.55},
        "medqa_4options": {"acc_norm,none": 0.33},
        "boolq_f1": {"acc,none": 0.7, "f1,none": 0.66, "f1,strict": 0.1},
        "drop": {"em,none": 0.2},
    },
    "config": {"model": "hf", "model_args": "pretrained=EleutherAI/pythia-160m,dtype=float32"},
}
MAP_TOML = """
[domains]
law = ["mmlu_professional_law", "mmlu_jurisprudence"]
healthcare = ["medqa*"]
commonsense = ["boolq*", "drop"]
"""


def test_lm_eval_import_picks_f1_then_acc_then_acc_norm(tmp_path):
    (tmp_path / "map.toml").write_text(MAP_TOML)
    res_path = tmp_path / "results_2025.json"
    res_path.write_text(json.dumps(LM_EVAL))
    dmap = DomainMap.load(tmp_path / "map.toml")
    got = read_lm_eval(res_path, dmap)
    by_task = {r.task: (r.model, r.domain, r.score) for r in got.rows}
    assert by_task == {
        "mmlu_professional_law": ("EleutherAI/pythia-160m", "law", 0.41),
        "mmlu_jurisprudence": ("EleutherAI/pythia-160m", "law", 0.52),  # acc before acc_norm
        "medqa_4options": ("EleutherAI/pythia-160m", "healthcare", 0.33),  # acc_norm when alone
        "boolq_f1": ("EleutherAI/pythia-160m", "commonsense", 0.66),  # f1 (filter none) before acc
    }
    assert got.unmapped == ["mmlu"] and got.no_metric == ["drop"]
    named = read_lm_eval(res_path, dmap, model="pythia")
    assert {r.model for r in named.rows} == {"pythia"}
    warnings: list[str] = []
    table = load_scores([f"p160={res_path}"], tmp_path / "map.toml", warnings=warnings)
    assert table.models() == ["p160"] and table.domain_score("p160", "law") == pytest.approx(
        (0.41 + 0.52) / 2
    )
    assert any("mmlu" in w for w in warnings) and any("drop" in w for w in warnings)
    with pytest.raises(EdgekitError, match="lm-evaluation-harness results file") as info:
        load_scores([str(res_path)])
    assert "--task-map" in info.value.fix


def test_domain_map_errors(tmp_path):
    path = tmp_path / "m.toml"
    path.write_text('[domains]\nlaw = ["mmlu_*"]\nfinance = ["mmlu_econ*"]\n')
    with pytest.raises(EdgekitError, match="several domains"):
        DomainMap.load(path).domain_of("mmlu_econometrics")
    assert DomainMap.load(path).domain_of("mmlu_jurisprudence") == "law"
    path.write_text("[domains\n")
    with pytest.raises(EdgekitError, match="not valid TOML"):
        DomainMap.load(path)
    path.write_text("[other]\nx = 1\n")
    with pytest.raises(EdgekitError, match="maps no task"):
        DomainMap.load(path)
    path.write_text('[tasks]\nmmlu_jurisprudence = "law"\n')
    assert DomainMap.load(path).domain_of("mmlu_jurisprudence") == "law"
    not_lm = tmp_path / "x.json"
    not_lm.write_text(json.dumps({"foo": 1}))
    with pytest.raises(EdgekitError, match="no 'results' table"):
        read_lm_eval(not_lm, DomainMap.load(path))


def test_load_scores_dispatch(tmp_path):
    eval_json = tmp_path / "eval.json"
    eval_json.write_text(
        json.dumps(
            {
                "model": "gem",
                "seed": 2,
                "scores": [{"domain": "law", "task": "legal-concept", "macro_f1": 0.4, "accuracy": 0.5}],
            }
        )
    )
    table = load_scores([str(eval_json)])
    assert table.rows() == [ScoreRow("gem", "law", "legal-concept", 0.4, 2)]
    assert load_scores([str(eval_json)], metric="accuracy").rows()[0].score == 0.5
    with pytest.raises(EdgekitError, match="cannot read scores from"):
        load_scores([str(tmp_path / "scores.txt")])
    empty = tmp_path / "e.csv"
    empty.write_text("model,domain,task,score\n")
    with pytest.raises(EdgekitError, match="no scores"):
        load_scores([str(empty)])


def test_store_source(tmp_path):
    store = pytest.importorskip("edgekit.store")
    db = tmp_path / "scores.db"
    with store.ResultsStore(db) as s:
        s.add_scores(
            [
                store.StoredScore(model=m, metric="macro_f1", score=v, domain=d, task=t, seed=0)
                for m, d, t, v in WORKED
            ]
        )
        s.add_scores([store.StoredScore(model="base", metric="latency_ms", score=3.0)])  # not a domain score
    table = load_scores([str(db)])
    assert model_metrics(table, "base-law-int8", "base", "law").gg == pytest.approx(0.2)


# ---------------------------------------------------------------------------------------------------- CLI
def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "edgekit.cli", *args],
        capture_output=True,
        text=True,
        env={**os.environ, "COLUMNS": "160"},
        timeout=120,
    )


def test_cli_metrics_on_csv(tmp_path):
    path = write_csv_scores(tmp_path / "s.csv", [ScoreRow(*r) for r in WORKED], append=False)
    out = _cli("metrics", str(path), "--reference", "base", "--target", "base-law-int8=law", "--json")
    assert out.returncode == 0, out.stderr
    doc = json.loads(out.stdout)
    m = {r["model"]: r for r in doc["metrics"]}["base-law-int8"]
    assert (m["dsi"], m["gg"], m["cdtr"]) == pytest.approx((1 / 7, 0.2, 0.65))
    assert doc["scores"]["base"]["law"] == pytest.approx(0.65)
    out = _cli("metrics", str(path), "--reference", "base", "--target", "base-law-int8=law")
    assert out.returncode == 0 and "0.143" in out.stdout and "0.650" in out.stdout and "S[t]" in out.stdout


def test_cli_metrics_errors(tmp_path):
    path = write_csv_scores(tmp_path / "s.csv", [ScoreRow(*r) for r in WORKED], append=False)
    out = _cli("metrics", str(path), "--reference", "nobody")
    assert out.returncode == 2 and out.stderr.startswith("error: reference model 'nobody' has no scores")
    assert "Traceback" not in out.stderr
    out = _cli("metrics", str(path), "--reference", "base", "--target", "law")
    assert out.returncode == 2 and "MODEL=DOMAIN" in out.stderr
    out = _cli("metrics", "--reference", "base", "--db", str(tmp_path / "missing.db"))
    assert out.returncode == 2 and "no results store at" in out.stderr  # a read-only command creates no store
    assert not (tmp_path / "missing.db").exists()
    from edgekit.store import ResultsStore

    ResultsStore(tmp_path / "empty.db").close()
    out = _cli("metrics", "--reference", "base", "--db", str(tmp_path / "empty.db"))
    assert out.returncode == 2 and "no scores" in out.stderr


def test_random_table_roundtrip_through_rows():
    rnd = random.Random(0)
    rows = [(f"m{i}", d, "t", rnd.random()) for i in range(3) for d in DOMS]
    table = ScoreTable.from_rows(rows)
    assert ScoreTable.from_rows(table.rows()).domain_scores("m1") == table.domain_scores("m1")
