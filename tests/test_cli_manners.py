"""The CLI's manners (issue 14, item 5), through the real CLI in a subprocess: `--version`, one vocabulary for
formats and precisions (`--format/--precision`, old `--formats/--quantize` kept as hidden aliases), global
`-q/--quiet` and `-v/--verbose`, tables that fit 80 and 120 columns (names and provenance never folded, piped output
not forced wider), hints once per kind, third-party warnings filtered, `models list` without building models."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

TINY = '''
import warnings

import torch
from torch import nn


def build():
    warnings.warn("a third-party library complains about its internals", FutureWarning)
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 4))


def example_inputs():
    torch.manual_seed(1)
    return (torch.randn(1, 8),)
'''
FAST = ["--runs", "5", "--min-time", "0.01", "--warmup", "1", "--max-time", "1", "--energy", "none"]


def edgekit(*args: str, columns: int | None = 120, store: Path | None = None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "PYTHONWARNINGS")}
    if store is not None:  # a module fixture runs outside the autouse fixture that isolates the store and cache
        env.update(EDGEKIT_DB=str(store / "edgekit.db"), EDGEKIT_CACHE=str(store / "cache"))
    if columns is not None:
        env["COLUMNS"] = str(columns)
    return subprocess.run([sys.executable, "-m", "edgekit.cli", *args], capture_output=True, text=True, env=env,
                          timeout=600)


@pytest.fixture(scope="module")
def exported(tmp_path_factory) -> Path:
    """tiny.py exported to ONNX fp32 + int8 with the new spelling: tmp/out (its model name is `tiny-build`)."""
    root = tmp_path_factory.mktemp("manners")
    (root / "tiny.py").write_text(TINY)
    proc = edgekit("export", f"{root / 'tiny.py'}:build", "--format", "onnx", "--precision", "fp32,int8",
                   "--out", str(root / "out"), "--json", store=root)
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert sorted((a["format"], a["precision"]) for a in doc["artifacts"]) == [("onnx", "fp32"), ("onnx", "int8")]
    return root


def test_version() -> None:
    proc = edgekit("--version")
    assert proc.returncode == 0, proc.stderr
    assert re.fullmatch(r"edgekit \d+\.\d+\S*\n", proc.stdout)


def test_export_old_spellings_are_hidden_aliases(exported: Path, tmp_path: Path) -> None:
    proc = edgekit("export", f"{exported / 'tiny.py'}:build", "--formats", "onnx", "--quantize", "int8",
                   "--out", str(tmp_path / "old"), "--json")
    assert proc.returncode == 0, proc.stderr
    assert sorted(a["precision"] for a in json.loads(proc.stdout)["artifacts"]) == ["fp32", "int8"]
    helptext = edgekit("export", "--help").stdout
    assert "--format" in helptext and "--precision" in helptext
    assert "--formats" not in helptext and "--quantize" not in helptext


def test_q_is_quiet_not_quantize(exported: Path, tmp_path: Path) -> None:
    proc = edgekit("export", f"{exported / 'tiny.py'}:build", "-q", "int8", "--out", str(tmp_path / "q"))
    assert proc.returncode == 2 and "No such option" in proc.stderr, proc.stderr
    assert "-q" in edgekit("--help").stdout and "--quiet" in edgekit("--help").stdout


def test_bench_format_precision_short_and_long(exported: Path) -> None:
    for args in (["--format", "onnx", "--precision", "int8"], ["-f", "onnx", "-p", "int8"]):
        proc = edgekit("bench", str(exported / "out"), *args, *FAST, "--json")
        assert proc.returncode == 0, proc.stderr
        assert [(r["format"], r["precision"]) for r in json.loads(proc.stdout)] == [("onnx", "int8")]


def _table_lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.startswith("│")]


@pytest.mark.parametrize("columns", [80, 120])
def test_bench_table_fits_and_keeps_names_whole(exported: Path, columns: int) -> None:
    proc = edgekit("bench", str(exported / "out"), *FAST, columns=columns)
    assert proc.returncode == 0, proc.stderr
    rows = _table_lines(proc.stdout)
    assert len(rows) == 2, proc.stdout  # one line per artifact: nothing wrapped
    for row, prec in zip(rows, ("fp32", "int8"), strict=True):
        assert "tiny-build" in row and f"onnx/{prec}" in row and "measured" in row, proc.stdout
    assert max(len(line) for line in proc.stdout.splitlines()) <= columns


def test_bench_piped_without_columns_is_120_wide_and_wide_shows_everything(exported: Path) -> None:
    proc = edgekit("bench", str(exported / "out"), *FAST, columns=None)
    assert proc.returncode == 0, proc.stderr
    assert max(len(line) for line in proc.stdout.splitlines()) <= 120
    wide = edgekit("bench", str(exported / "out"), *FAST, "--wide", columns=80)
    assert wide.returncode == 0, wide.stderr
    rows = _table_lines(wide.stdout)
    assert len(rows) == 2
    assert "peak RSS MB" in wide.stdout and not re.search(r"\S… *│", wide.stdout), wide.stdout  # nothing cut


def test_hints_once_per_kind_and_quiet_verbose(exported: Path) -> None:
    capped = ["--runs", "100000", "--min-time", "0.01", "--max-time", "0.2", "--warmup", "0", "--energy", "none"]
    proc = edgekit("bench", str(exported / "out"), *capped)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.count("time_cap_reached —") == 2, proc.stdout  # each artifact's warning ...
    assert proc.stdout.count("hint (time_cap_reached)") == 1, proc.stdout  # ... one hint
    quiet = edgekit("-q", "bench", str(exported / "out"), *FAST)
    assert quiet.returncode == 0 and len(_table_lines(quiet.stdout)) == 2
    assert "stored as run" not in quiet.stdout and "hint" not in quiet.stdout and not quiet.stderr.strip()
    verbose = edgekit("--verbose", "bench", str(exported / "out"), *FAST)
    assert verbose.returncode == 0 and verbose.stdout.count("CI [") == 2, verbose.stdout


def test_third_party_warnings_are_filtered_unless_verbose(exported: Path, tmp_path: Path) -> None:
    ref = f"{exported / 'tiny.py'}:build"
    plain = edgekit("export", ref, "--format", "onnx", "--out", str(tmp_path / "a"))
    assert plain.returncode == 0, plain.stderr
    assert "complains about its internals" not in plain.stderr + plain.stdout
    verbose = edgekit("-v", "export", ref, "--format", "onnx", "--out", str(tmp_path / "b"), "--no-cache")
    assert "complains about its internals" in verbose.stderr


LONG = ["gem-tiny.kd-law.s0.int8.onnx", "gem-dense-tiny kd-law prune50", "base"]  # as long as the study's
DOMAINS = ["healthcare", "law", "finance", "stem", "commonsense", "conversational", "multilingual", "domain_adaptive"]


@pytest.mark.parametrize("columns", [80, 120])
def test_metrics_tables_fit_without_splitting_names(tmp_path: Path, columns: int) -> None:
    rows = ["model,domain,task,score"] + [f"{m},{d},{d}-task,{0.5 + 0.01 * i + 0.03 * j:.3f}"
                                          for j, m in enumerate(LONG) for i, d in enumerate(DOMAINS)]
    (tmp_path / "s.csv").write_text("\n".join(rows) + "\n")
    proc = edgekit("metrics", str(tmp_path / "s.csv"), "--reference", "base", "--target", f"{LONG[0]}=law",
                   columns=columns)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert max(len(line) for line in lines) <= columns, proc.stdout
    for name in LONG:  # every row that names the model names it whole, on one line
        assert sum(name in line for line in lines) >= 2, proc.stdout
    assert "…" not in proc.stdout, proc.stdout
    wide = edgekit("metrics", str(tmp_path / "s.csv"), "--reference", "base", "--wide", columns=columns)
    assert wide.returncode == 0 and "domain_adaptive" in wide.stdout and "conversational" in wide.stdout


def test_models_list_builds_no_model_unless_asked() -> None:
    proc = edgekit("models", "list", "gem-*")
    assert proc.returncode == 0, proc.stderr
    assert "gem-tiny" in proc.stdout and "MACs" not in _table_lines(proc.stdout)[0] and "--macs" in proc.stdout
    macs = edgekit("models", "list", "gem-tiny", "--macs")
    assert macs.returncode == 0 and "MACs" in macs.stdout and "sparse" in macs.stdout, macs.stderr
