"""`edgekit study fragility`: the quick study end to end on the real suite (skipped, with the package named, when a
text source is missing), what it stores, and the command's one-line errors. `--backbone minilm`: its one-line
error without the optional extra (the import patched away), its configuration, and a tiny-budget run (skipped with a
reason where `make setup-minilm` was not run, as in CI)."""

from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path

import pytest

from edgekit.errors import EdgekitError


@pytest.fixture(scope="module")
def suite_cache(tmp_path_factory) -> Path:
    """The suite built once for this module; skip with the source's own message when a package is missing."""
    from edgekit.evalsuite import SuiteConfig, load_suite

    cache = tmp_path_factory.mktemp("study-suite")
    try:
        load_suite(None, SuiteConfig(seq_len=32, cache_dir=cache))
    except EdgekitError as exc:
        pytest.skip(f"the 8-domain suite cannot be built here: {exc.one_line()}")
    return cache


@pytest.fixture(scope="module")
def quick(suite_cache, tmp_path_factory):
    from edgekit.study import StudyConfig, run_study

    db = tmp_path_factory.mktemp("study-db") / "study.db"
    return run_study(StudyConfig.quick_config(), db=db, cache_dir=suite_cache), db


def test_quick_study_runs_end_to_end(quick):
    result, _db = quick
    methods = {(r.method, r.kind) for r in result.records}
    assert {("base", "torch"), ("ft", "torch"), ("kd", "torch"), ("ft", "onnx"), ("kd", "onnx")} <= methods
    assert {r.arch for r in result.records} == {"gem", "dense"}
    # every variant scored on all eight domains, scores are fractions
    for r in result.records:
        assert len(r.scores) == 8
        assert all(0.0 <= s <= 1.0 for s in r.scores.values())
    # the exported fp32 artifact computes what PyTorch computes, so it scores the same
    for method in ("ft", "kd"):
        torch_rec = next(r for r in result.records if r.method == method and r.kind == "torch")
        onnx_rec = next(r for r in result.records if r.method == method and r.compression == "fp32")
        assert onnx_rec.details["parity_max_abs_logit"] < 1e-3
        assert onnx_rec.scores == pytest.approx(torch_rec.scores, abs=0.02)


def test_quick_study_metrics_are_finite(quick):
    result, _ = quick
    assert len(result.metrics) == 2 * 3  # two methods x fp32, int8, prune50
    for m in result.metrics:
        for v in (m.c, m.s_target, m.mean_off, m.dsi, m.gg, m.cdtr):
            assert math.isfinite(v)
        assert -1.0 <= m.dsi <= 1.0
    cs = {m.compression: m.c for m in result.metrics}
    assert cs["fp32"] == 0.0 and cs["int8"] == 0.75
    assert 0.45 < cs["prune50"] <= 0.5  # measured sparsity over all parameters (routers, norms, biases kept)
    assert "all:gg" in result.correlations and "all:1-cdtr" in result.correlations
    # rho(c, GG) over the variants is Spearman's rho of the metrics above (None only when c or GG is constant)
    from scipy.stats import spearmanr

    cs, ggs = [m.c for m in result.metrics], [m.gg for m in result.metrics]
    rho = result.correlations["all:gg"]["rho"]
    if len(set(ggs)) == 1:
        assert rho is None
    else:
        assert rho == pytest.approx(spearmanr(cs, ggs).statistic, abs=1e-9)


def test_quick_study_has_a_verdict_per_claim(quick):
    result, _ = quick
    assert [c.key for c in result.claims] == ["specialisation", "forgetting", "gem_vs_dense", "cross_domain_f1"]
    for c in result.claims:
        assert c.verdict in ("reproduced", "not reproduced")
        assert c.measured and c.paper and c.criterion
    # the verdict follows the stated criterion from the measured number
    cd = result.claims[3].numbers["cross_domain_f1"]["value"]
    assert (result.claims[3].verdict == "reproduced") == (cd >= 0.89)


def test_quick_study_stores_scores(quick):
    from edgekit.evalsuite.persist import store_score_rows
    from edgekit.store import ResultsStore

    result, db = quick
    with ResultsStore(db) as store:
        evals = store.list_runs(kind="eval", group=result.group)
        studies = store.list_runs(kind="study")
        assert len(evals) == len(result.records)
        int8 = next(r for r in evals if r.precision == "int8")
        assert int8.config["compression_intensity"] == 0.75 and int8.artifact_sha256
        assert store.scores(run_id=int8.id, metric="macro_f1")
    assert studies and studies[0].result["claims"]
    rows = store_score_rows(db)
    assert {r.model for r in rows} >= {r.model for r in result.records}


def test_config_errors():
    from edgekit.study import StudyConfig

    with pytest.raises(EdgekitError, match="unknown compression"):
        StudyConfig(compressions=("int3",))
    with pytest.raises(EdgekitError, match="unknown study size"):
        StudyConfig(size="huge")
    with pytest.raises(EdgekitError, match="repeat"):
        StudyConfig(seeds=(0, 0))


@pytest.mark.parametrize("args, needle", [
    (["--targets", "astrology"], "unknown domain"),
    (["--seeds", "a,b"], "cannot read --seeds"),
    (["--compressions", "int3"], "unknown compression"),
    (["--size", "huge"], "unknown study size"),
])
def test_cli_errors_are_one_line(args, needle):
    proc = subprocess.run([sys.executable, "-m", "edgekit.cli", "study", "fragility", "--quick", *args],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert needle in proc.stderr + proc.stdout
    assert "Traceback" not in proc.stderr


# ------------------------------------------------------------------------------------ --backbone minilm
def _minilm_available() -> bool:
    from edgekit.zoo import minilm

    return minilm.available()


needs_minilm = pytest.mark.skipif(not _minilm_available(),
                                  reason="pretrained MiniLM not installed (make setup-minilm; CI has no minilm extra)")


def test_minilm_not_installed_is_one_line(monkeypatch, capsys):
    """Without the optional extra, `--backbone minilm` fails with one line and exit 2 (the import is patched away)."""
    from edgekit import cli
    from edgekit.zoo import minilm

    real = minilm.importlib.util.find_spec
    monkeypatch.setattr(minilm.importlib.util, "find_spec",
                        lambda name, *a: None if name == minilm.PACKAGE else real(name, *a))
    monkeypatch.setattr(sys, "argv", ["edgekit", "study", "fragility", "--backbone", "minilm", "--no-store"])
    with pytest.raises(SystemExit) as exc:
        cli.main()
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert err.strip() == "error: MiniLM not installed — fix: make setup-minilm"
    # the library says the same when called directly
    from edgekit.study import StudyConfig, run_study

    with pytest.raises(EdgekitError, match="MiniLM not installed"):
        run_study(StudyConfig.minilm_config(quick=True), store=False)


def test_minilm_config_states_its_budget():
    from edgekit.evalsuite import DOMAINS
    from edgekit.study import StudyConfig
    from edgekit.study.config import COMPRESSIONS, MINILM_BUDGET_S

    cfg = StudyConfig.minilm_config()
    assert cfg.backbone == "minilm" and cfg.gem_model == "gem-minilm" and cfg.dense_overrides == {"router": False}
    assert cfg.budget_s == MINILM_BUDGET_S <= 30 * 60
    assert cfg.compressions == tuple(COMPRESSIONS) and len(cfg.targets) * len(cfg.seeds) >= 4
    assert set(cfg.targets) <= set(DOMAINS)
    quick = StudyConfig.minilm_config(quick=True, targets=("finance",))
    assert quick.quick and quick.backbone == "minilm" and quick.targets == ("finance",) and quick.budget_s == 300
    with pytest.raises(EdgekitError, match="unknown backbone"):
        StudyConfig(backbone="bert")


def test_minilm_rejects_size():
    proc = subprocess.run([sys.executable, "-m", "edgekit.cli", "study", "fragility", "--backbone", "minilm",
                           "--size", "small"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and "--size applies to --backbone scratch only" in proc.stderr
    assert "Traceback" not in proc.stderr


@pytest.fixture(scope="module")
def minilm_quick(suite_cache, tmp_path_factory):
    from edgekit.study import StudyConfig, run_study

    if not _minilm_available():
        pytest.skip("pretrained MiniLM not installed (make setup-minilm)")
    db = tmp_path_factory.mktemp("study-minilm") / "study.db"
    cfg = StudyConfig.minilm_config(quick=True, base_max_per_domain=24, feature_max_train=24, spec_max_train=24,
                                    max_test_per_domain=24)
    return run_study(cfg, db=db, cache_dir=suite_cache), db


@needs_minilm
def test_minilm_study_end_to_end(minilm_quick):
    """A tiny budget of the pretrained-backbone study: every part runs and the deployed pipeline matches PyTorch."""
    result, db = minilm_quick
    assert result.config["backbone"] == "minilm" and result.reference == "gem-minilm base"
    assert {r.arch for r in result.records} == {"gem", "dense"}
    assert {(r.method, r.kind) for r in result.records} >= {("base", "torch"), ("ft", "torch"), ("kd", "torch"),
                                                             ("ft", "onnx"), ("kd", "onnx")}
    for r in result.records:
        assert len(r.scores) == 8 and all(0.0 <= s <= 1.0 for s in r.scores.values())
    for method in ("ft", "kd"):
        torch_rec = next(r for r in result.records if r.method == method and r.kind == "torch" and r.arch == "gem")
        onnx_rec = next(r for r in result.records if r.method == method and r.compression == "fp32")
        assert onnx_rec.details["parity_max_abs_logit"] < 1e-3
        assert onnx_rec.scores == pytest.approx(torch_rec.scores, abs=0.05)
    for r in result.records:  # every ONNX top, exported or patched from the exported graph, computes PyTorch's logits
        if "top_parity_max_abs_logit" in r.details:
            assert r.details["top_parity_max_abs_logit"] < 1e-3, r.model
    assert any("backbone_parity_max_abs" in r.details for r in result.records)  # the pruned backbone, too
    assert len(result.metrics) == 2 * 3
    cs = {m.compression: m.c for m in result.metrics}
    assert cs["fp32"] == 0.0 and cs["int8"] == 0.75 and 0.45 < cs["prune50"] <= 0.5
    assert all(math.isfinite(v) for m in result.metrics for v in (m.dsi, m.gg, m.cdtr))
    assert [c.key for c in result.claims] == ["specialisation", "forgetting", "gem_vs_dense", "cross_domain_f1"]
    assert "all:gg" in result.correlations
    assert result.timings_s["features"] > 0
    # the figures a claims table shows beside the paper's: real cross-domain F1 and measured latency
    head = result.to_dict()["headline"]
    assert head["cross_domain_f1"]["base"] == pytest.approx(result.claims[3].numbers["cross_domain_f1"]["value"])
    assert set(head["cross_domain_f1"]["deployed"]) == {r.model for r in result.records if r.kind == "onnx"}
    lat = head["latency_ms"]["local"]["per_compression"]
    assert set(lat) == {"fp32", "int8", "prune50"} and all(0 < v["p50"] <= v["p90"] for v in lat.values())

    from edgekit.store import ResultsStore

    with ResultsStore(db) as store:
        assert len(store.list_runs(kind="eval", group=result.group)) == len(result.records)
