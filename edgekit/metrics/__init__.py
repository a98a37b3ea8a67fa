"""Robustness metrics: DSI, GG, CDTR, compression intensity, Spearman rho with bootstrap CIs (robustness.py), and
the loaders that turn CSV files, lm-evaluation-harness results, `edgekit eval` output and the results store into
score rows (sources.py). Formulas and a worked example: docs/metrics.md."""

from edgekit.metrics.robustness import (
    Correlation,
    RobustnessMetrics,
    ScoreRow,
    ScoreTable,
    brittleness,
    cdtr,
    compression_intensity,
    compression_intensity_of,
    dsi,
    gg,
    mean_off,
    model_metrics,
    robustness,
    spearman,
    spearman_ci,
)

__all__ = [
    "Correlation",
    "RobustnessMetrics",
    "ScoreRow",
    "ScoreTable",
    "brittleness",
    "cdtr",
    "compression_intensity",
    "compression_intensity_of",
    "dsi",
    "gg",
    "mean_off",
    "model_metrics",
    "robustness",
    "spearman",
    "spearman_ci",
]
