"""Packaging: a wheel ships the model cards and target profiles (edgekit/data/...), and works from a fresh venv outside
the checkout; data folders and the cache root are resolved in one place each (edgekit.paths)."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

from edgekit import paths

REPO = Path(__file__).resolve().parent.parent
SOURCES = ("pyproject.toml", "setup.py", "MANIFEST.in", "README.md", "edgekit", "models", "targets")


def _run(argv: list[str], cwd: Path, env: dict[str, str], timeout: int = 300) -> subprocess.CompletedProcess:
    proc = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, f"{' '.join(map(str, argv))} failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n" \
                                 f"{proc.stderr[-3000:]}"
    return proc


# The extras' top-level modules (pyproject.toml: tflite, coreml, eval): absent from a core install.
EXTRA_MODULES = ("litert_torch", "ai_edge_litert", "ai_edge_quantizer", "coremltools", "simple_icd_10_cm",
                 "chatterbot_corpus")


def _requires(metadata: str) -> tuple[set[str], set[str], set[str]]:
    """(core requirement names, extra requirement names, declared extras) of a wheel's METADATA."""
    core, extra, provides = set(), set(), set()
    for line in metadata.splitlines():
        if line.startswith("Provides-Extra:"):
            provides.add(line.split(":", 1)[1].strip())
        elif line.startswith("Requires-Dist:"):
            req = line.split(":", 1)[1].strip()
            name = re.split(r"[<>=!~;\[ (]", req, maxsplit=1)[0].lower().replace("_", "-")
            (extra if "extra ==" in req else core).add(name)
    return core, extra, provides


@pytest.mark.slow  # about 40 s on 2 busy cores: build, install, `models list`, `targets list`, two exports
def test_wheel_ships_cards_and_profiles_and_runs_outside_the_checkout(tmp_path):
    """Build the wheel (no network: --no-build-isolation), install it with --no-deps into a fresh venv whose
    dependencies come from this environment's site-packages through a .pth file (a plain path entry: the editable
    edgekit's own .pth finder is not run there), with the extras' modules made unimportable (a core install), then,
    from a folder outside the repository, list the models, export gem-tiny to ONNX, and see the TFLite export name
    the extra to install."""
    pytest.importorskip("setuptools")
    pytest.importorskip("pip")
    src = tmp_path / "src"  # a copy: the in-tree build would leave build/ and egg-info in the checkout
    src.mkdir()
    for name in SOURCES:
        if (REPO / name).is_dir():
            shutil.copytree(REPO / name, src / name,
                            ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info", "build"))
        else:
            shutil.copy2(REPO / name, src / name)
    env = {k: v for k, v in os.environ.items()
           if k not in ("PYTHONPATH", "PYTHONHOME", "EDGEKIT_MODELS", "EDGEKIT_TARGETS")}
    dist = tmp_path / "dist"
    _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", str(src), "-w", str(dist)],
         tmp_path, env)
    (wheel,) = dist.glob("edgekit-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for kind in ("models", "targets"):
        shipped = {Path(n).stem for n in names if n.startswith(f"edgekit/data/{kind}/") and n.endswith(".toml")}
        assert shipped == {p.stem for p in (src / kind).glob("*.toml")}, kind
    assert "edgekit/report/templates/report.html.j2" in names
    (meta,) = [n for n in names if n.endswith(".dist-info/METADATA")]
    core, extra, provides = _requires(zipfile.ZipFile(wheel).read(meta).decode())
    assert {"tflite", "coreml", "eval", "all"} <= provides
    assert {"torch", "onnx", "onnxruntime", "onnxscript", "pluggy"} <= core
    assert {"litert-torch", "ai-edge-litert", "ai-edge-quantizer", "coremltools", "simple-icd-10-cm",
            "chatterbot-corpus"} <= extra and not extra & core - {"edgekit"}

    venv = tmp_path / "venv"
    _run([sys.executable, "-m", "venv", "--without-pip", str(venv)], tmp_path, env)
    py = venv / "bin" / "python"
    purelib = Path(_run([str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                        tmp_path, env).stdout.strip())
    (purelib / "reuse-test-env.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    for module in EXTRA_MODULES:  # found before the reused site-packages: the core install has none of them
        (purelib / f"{module}.py").write_text(f"raise ImportError('not in the core install', name={module!r})\n")
    _run([sys.executable, "-m", "pip", "--python", str(py), "install", "--no-deps", "--no-index", "-q", str(wheel)],
         tmp_path, env)

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    where = _run([str(py), "-c", "import edgekit.paths as p; print(p.__file__); print(p.builtin_dir('models'))"],
                 elsewhere, env).stdout.split()
    assert all(w.startswith(str(purelib)) for w in where), where  # the wheel's edgekit, not the checkout's

    edgekit = str(venv / "bin" / "edgekit")
    listed = json.loads(_run([edgekit, "models", "list", "--json"], elsewhere, env).stdout)
    assert "gem-tiny" in {m["name"] for m in listed}
    assert all(m["source"].startswith(str(purelib)) for m in listed)
    targets = json.loads(_run([edgekit, "targets", "list", "--json"], elsewhere, env).stdout)
    assert {"rpi4", "pixel6", "local"} <= {t["name"] for t in targets}

    _run([edgekit, "export", "gem-tiny", "-f", "onnx", "--out", "OUT"], elsewhere, env)
    manifest = json.loads((elsewhere / "OUT" / "manifest.json").read_text())
    arts = manifest["artifacts"]
    assert [(a["format"], a["status"]) for a in arts] == [("onnx", "ok")], arts
    assert (elsewhere / "OUT" / Path(arts[0]["path"]).name).is_file()
    proc = subprocess.run([edgekit, "export", "gem-tiny", "-f", "tflite", "--out", "OUT2"], cwd=elsewhere, env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 1 and "fix: pip install 'edgekit[tflite]'" in proc.stderr, proc.stderr


def _card(name: str, description: str) -> str:
    text = (REPO / "models" / "gem-tiny.toml").read_text()
    text = re.sub(r'(?m)^name = "gem-tiny"$', f'name = "{name}"', text, count=1)
    return re.sub(r"(?m)^description = .*$", f'description = "{description}"', text, count=1)


def test_user_model_folder_overrides_and_extends_the_shipped_cards(tmp_path, monkeypatch):
    from edgekit.specs import find_card, list_cards
    from edgekit.zoo.catalog import resolve_card

    builtin = {c.name for c in list_cards()}
    (tmp_path / "gem-tiny.toml").write_text(_card("gem-tiny", "my own gem-tiny"))
    (tmp_path / "my-model.toml").write_text(_card("my-model", "mine"))
    monkeypatch.setenv("EDGEKIT_MODELS", str(tmp_path))
    cards = {c.name: c for c in list_cards()}
    assert set(cards) == builtin | {"my-model"}
    assert cards["gem-tiny"].description == "my own gem-tiny" and cards["gem-tiny"].source == str(tmp_path / "gem-tiny.toml")
    assert find_card("my-model").description == "mine" and resolve_card("my-model").name == "my-model"
    assert paths.data_dirs("models")[0] == tmp_path and paths.builtin_dir("models") == REPO / "models"


def test_one_cache_root_for_every_cache(tmp_path, monkeypatch):
    from edgekit.bench.jobs import export_cache_dir
    from edgekit.evalsuite.data import SUITE_VERSION, SuiteConfig
    from edgekit.targets.emulate import cache_dir as emulate_cache

    monkeypatch.delenv("EDGEKIT_EMULATE_CACHE", raising=False)
    monkeypatch.setenv("EDGEKIT_CACHE", str(tmp_path / "c"))
    assert paths.cache_root() == tmp_path / "c"
    monkeypatch.delenv("EDGEKIT_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    root = tmp_path / "xdg" / "edgekit"
    assert paths.cache_root() == root
    assert export_cache_dir("gem-tiny") == root / "exports" / "gem-tiny"
    assert SuiteConfig().cache_root() == root / "evalsuite" / f"v{SUITE_VERSION}"
    assert emulate_cache() == root / "emulate" / "aarch64"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert paths.cache_root() == tmp_path / "home" / ".cache" / "edgekit"
