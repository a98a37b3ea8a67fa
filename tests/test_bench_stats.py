"""Benchmark statistics against numpy/scipy on known samples, and the hyperfine-style warnings."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats as sps

from edgekit.bench.stats import (
    EXACT_BOOTSTRAP_ABOVE,
    OUTLIER_THRESHOLD,
    NoiseWarning,
    ProbeSnapshot,
    bootstrap_median_ci,
    exact_bootstrap_median_ci,
    modified_zscores,
    noise_warnings,
    summarize,
)


@pytest.fixture
def gamma_sample() -> np.ndarray:
    return np.random.default_rng(42).gamma(shape=9.0, scale=0.5, size=1000) + 3.0  # ms, right-skewed like latency


def test_summary_matches_numpy_and_scipy(gamma_sample):
    s = summarize(gamma_sample)
    desc = sps.describe(gamma_sample)
    assert s.n == 1000
    assert s.mean == pytest.approx(desc.mean, rel=1e-12)
    assert s.std == pytest.approx(np.sqrt(desc.variance), rel=1e-12)  # sample std, ddof=1
    assert (s.min, s.max) == pytest.approx(desc.minmax)
    for q, value in zip((50, 90, 95, 99), (s.p50, s.p90, s.p95, s.p99), strict=True):
        assert value == pytest.approx(np.percentile(gamma_sample, q), rel=1e-12)
        assert value == pytest.approx(sps.scoreatpercentile(gamma_sample, q), rel=1e-12)
    assert s.mad == pytest.approx(sps.median_abs_deviation(gamma_sample, scale=1.0), rel=1e-12)
    assert s.cv == pytest.approx(s.std / s.mean)
    assert s.total_s == pytest.approx(gamma_sample.sum() / 1000)


def test_known_small_sample_by_hand():
    s = summarize([1.0, 2.0, 3.0, 4.0, 100.0])
    assert s.p50 == 3.0 and s.mean == 22.0 and s.min == 1.0 and s.max == 100.0
    assert s.p90 == pytest.approx(4.0 + 0.6 * 96.0)  # linear interpolation between 4 and 100
    assert s.mad == 1.0  # |x - 3| = 2, 1, 0, 1, 97
    assert s.outliers == 1  # (100 - 3) / 1 = 97 > 14.826


def num_outliers(xs: list[float]) -> int:
    """hyperfine's num_outliers (src/outlier_detection.rs), on edgekit's scores."""
    return int(np.count_nonzero(np.abs(modified_zscores(xs)) > OUTLIER_THRESHOLD)) if xs else 0


def test_modified_zscores_follow_hyperfine():
    xs = np.array([10.0, 10.5, 9.5, 10.2, 9.8, 30.0])
    z = modified_zscores(xs)
    med = np.median(xs)
    mad = sps.median_abs_deviation(xs, scale=1.0)
    np.testing.assert_allclose(z, (xs - med) / mad)
    assert OUTLIER_THRESHOLD == pytest.approx(14.826)
    assert np.abs(z).argmax() == 5
    # hyperfine's test_detect_outliers, case by case
    assert num_outliers([]) == 0 and num_outliers([50.0]) == 0 and num_outliers([1000.0, 0.0]) == 0
    assert num_outliers([-0.2, 0.0, 0.2]) == 0  # low variance
    assert num_outliers([-0.2, 0.0, 0.2, 4.0]) == 1
    assert num_outliers([0.5, 0.30, 0.29, 0.31, 0.30]) == 1
    normal = [2.33269488, 1.42195907, -0.57527698, -0.31293437, 2.2948158, 0.75813273, -1.0712388, -0.96394741,
              -1.15897446, 1.10976285]
    assert num_outliers(normal) == 0
    assert num_outliers([*normal, 20.0, -500.0]) == 2
    # hyperfine's test_detect_outliers_if_mad_becomes_0: over half the values identical, MAD = 0
    assert num_outliers([10.0] * 7 + [100.0]) == 1
    assert num_outliers([10.0] * 7 + [100.0, 100.0]) == 2
    assert not modified_zscores([2.0, 2.0, 2.0]).any()  # nothing differs: no outlier, no division by zero
    assert summarize([10.0] * 7 + [100.0]).outliers == 1
    assert NoiseWarning.OUTLIERS in {w.kind for w in noise_warnings([10.0] * 7 + [100.0])}


def test_bootstrap_ci_is_seeded_and_matches_scipy(gamma_sample):
    ci = bootstrap_median_ci(gamma_sample, seed=7)
    assert ci == bootstrap_median_ci(gamma_sample, seed=7)
    assert ci[0] <= np.median(gamma_sample) <= ci[1]
    ref = sps.bootstrap((gamma_sample,), np.median, confidence_level=0.95, n_resamples=4000, method="percentile",
                        rng=np.random.default_rng(7)).confidence_interval
    width = ref.high - ref.low
    assert ci[0] == pytest.approx(ref.low, abs=0.25 * width)
    assert ci[1] == pytest.approx(ref.high, abs=0.25 * width)
    narrow = bootstrap_median_ci(gamma_sample, level=0.5, seed=7)
    assert ci[0] <= narrow[0] <= narrow[1] <= ci[1]


def test_exact_bootstrap_agrees_with_resampling():
    xs = np.random.default_rng(3).lognormal(1.0, 0.3, size=1501)
    mc = bootstrap_median_ci(xs, n_resamples=20000, seed=1)
    exact = exact_bootstrap_median_ci(xs)
    width = mc[1] - mc[0]
    assert exact == pytest.approx(mc, abs=0.1 * width)
    big = np.random.default_rng(4).lognormal(1.0, 0.3, size=EXACT_BOOTSTRAP_ABOVE + 1)
    assert bootstrap_median_ci(big) == exact_bootstrap_median_ci(big)  # long runs take the exact path


def test_quiet_sample_raises_no_warning():
    xs = 5.0 + 0.01 * np.random.default_rng(0).standard_normal(200)
    snap = ProbeSnapshot(freq_mhz={"cpu0": 2400.0}, temp_c={"zone0": 50.0})
    assert noise_warnings(xs, before=snap, after=snap, requested_runs=200) == []


def test_each_warning_fires_on_its_condition():
    rng = np.random.default_rng(1)
    base = 5.0 + 0.01 * rng.standard_normal(200)
    slow_first = base.copy()
    slow_first[0] = 50.0
    kinds = {w.kind for w in noise_warnings(slow_first)}
    assert NoiseWarning.FIRST_RUN_SLOWER in kinds and NoiseWarning.OUTLIERS in kinds
    noisy = rng.gamma(1.0, 5.0, size=200)
    assert NoiseWarning.HIGH_CV in {w.kind for w in noise_warnings(noisy)}
    before = ProbeSnapshot(freq_mhz={"cpu0": 3000.0}, temp_c={"x86_pkg_temp": 45.0})
    after = ProbeSnapshot(freq_mhz={"cpu0": 2200.0}, temp_c={"x86_pkg_temp": 71.0})
    kinds = {w.kind for w in noise_warnings(base, before=before, after=after)}
    assert {NoiseWarning.CPU_FREQUENCY_CHANGED, NoiseWarning.THERMAL_STATE_CHANGED} <= kinds
    capped = noise_warnings(base, requested_runs=1000)
    assert [w.kind for w in capped] == [NoiseWarning.TIME_CAP_REACHED]
    assert "200 of 1000" in capped[0].detail


def test_every_warning_has_an_actionable_hint():
    """Each hint names something to do: an option `edgekit bench` really has, or a command in backticks."""
    import re

    import typer

    from edgekit.cli import app

    bench = typer.main.get_command(app).commands["bench"]  # type: ignore[attr-defined]
    options = {o for p in bench.params for o in p.opts}
    hints = {kind: kind.hint() for kind in NoiseWarning}
    assert len(set(hints.values())) == len(hints)
    for kind, hint in hints.items():
        named = set(re.findall(r"--[a-z][a-z-]*", hint))
        assert named or re.search(r"`[^`]+`", hint), (kind, hint)
        assert named <= options, (kind, named - options)
    assert "--warmup" in NoiseWarning.FIRST_RUN_SLOWER.hint()
    assert noise_warnings([1.0]) == []  # one sample: nothing to warn about, and no crash
