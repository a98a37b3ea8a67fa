"""The Format registry (edgekit.formats) is the one place that lists artifact suffixes; the stdlib-only device
agent keeps its own table of loaders, which must agree with it."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from edgekit import formats
from edgekit.errors import EdgekitError
from edgekit.formats import Format, all_formats, format_for_suffix, format_names, get_format, register_format

PACKAGE = Path(formats.__file__).resolve().parent
REGISTRY = PACKAGE / "formats.py"
# The agent is shipped to devices and never imports edgekit: it may name formats itself (checked below).
ALLOWED = {PACKAGE / "targets" / "agent.py"}


def _constants(path: Path) -> list[str]:
    return [n.value for n in ast.walk(ast.parse(path.read_text())) if isinstance(n, ast.Constant)
            and isinstance(n.value, str)]


def test_registry_is_the_only_module_that_lists_suffixes():
    suffixes = {s for f in all_formats().values() for s in f.suffixes}
    assert {".onnx", ".tflite", ".mlpackage", ".mlmodel", ".pt2", ".pte"} <= suffixes
    offenders = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if path == REGISTRY or path in ALLOWED:
            continue
        offenders += [f"{path.relative_to(PACKAGE.parent)}: {c!r}" for c in _constants(path) if c.lower() in suffixes]
    assert offenders == [], "suffix literals outside edgekit/formats.py (use format_for_suffix / get_format)"


def test_agent_agrees_with_the_registry():
    tree = ast.parse((PACKAGE / "targets" / "agent.py").read_text())
    loaders = next(n.value for n in tree.body if isinstance(n, ast.Assign)
                   and any(isinstance(t, ast.Name) and t.id == "LOADERS" for t in n.targets))
    names = [k.value for k in loaders.keys]
    assert names and set(names) <= set(format_names())
    suffixes = {s: f.name for f in all_formats().values() for s in f.suffixes}
    for c in _constants(PACKAGE / "targets" / "agent.py"):  # any suffix the agent names is one of its formats'
        if c.lower() in suffixes:
            assert suffixes[c.lower()] in names, c


def test_agent_names_every_format_it_loads_when_refusing_one(tmp_path):
    """The agent's unknown-format hint lists its LOADERS (executorch included), not a hand-written subset."""
    import argparse

    from edgekit.targets import agent

    args = argparse.Namespace(format="nope", model=str(tmp_path / "m.bin"))
    with pytest.raises(agent.AgentError) as err:
        agent.bench(args, None)
    assert err.value.fix == "use one of " + ", ".join(agent.LOADERS) and "executorch" in err.value.fix

def test_builtin_formats_are_complete():
    from edgekit.runtime import all_runtimes

    runtimes = all_runtimes()
    for fmt in all_formats().values():
        assert fmt.suffix.startswith(".") and fmt.precisions[0] == "fp32" and fmt.converter_packages
        assert fmt.runtime in runtimes and fmt.name in runtimes[fmt.runtime].formats
        for attr in ("exporter", "quantizer", "spec_version"):  # named functions exist (read, not imported)
            target = getattr(fmt, attr)
            if target is None:
                continue
            module, _, func = target.partition(":")
            source = PACKAGE.parent / (module.replace(".", "/") + ".py")
            defs = {n.name for n in ast.parse(source.read_text()).body if isinstance(n, ast.FunctionDef)}
            assert func in defs, target


def test_lookups():
    assert get_format("coreml").suffix == ".mlpackage"
    assert format_for_suffix("a/b/gem-tiny.fp16.TFLITE").name == "tflite"
    assert format_for_suffix(Path("m.int8.onnx")).name == "onnx"
    assert format_for_suffix("model.json") is None and format_for_suffix("artifacts/gem-tiny") is None
    with pytest.raises(EdgekitError, match="unknown format 'nope'"):
        get_format("nope")


def test_mlmodel_is_coreml_everywhere():
    from edgekit.bench.inputs import format_for_path
    from edgekit.evalsuite.evaluate import artifact_format

    assert format_for_path(Path("m.mlmodel")) == "coreml" == artifact_format(Path("m.mlmodel"))


def test_registering_a_toy_format_round_trips(monkeypatch):
    monkeypatch.setattr(formats, "_LOCAL", [])  # forgotten after the test
    toy = register_format(Format("toy", ("TOY",), ("fp32",), ("numpy",), "onnxruntime", "toy.export:write"))
    assert toy.suffixes == (".toy",) and get_format("toy") == toy and "toy" in format_names()
    assert format_for_suffix("m.fp32.toy") == toy

    from edgekit.bench.inputs import format_for_path
    from edgekit.export.pipeline import artifact_filename

    assert format_for_path(Path("m.fp32.toy")) == "toy"
    assert artifact_filename("m", "toy", "fp32") == "m.fp32.toy"
    with pytest.raises(EdgekitError, match="claims suffix .onnx"):
        register_format(Format("onnx2", (".onnx",), ("fp32",), (), "onnxruntime", "x:y"))


# -- converters as extras (pyproject.toml) -------------------------------------------------------------------------

def _pyproject() -> dict:
    import tomllib

    return tomllib.loads((PACKAGE.parent / "pyproject.toml").read_text())["project"]


def _names(requirements: list[str]) -> set[str]:
    import re

    return {re.split(r"[<>=!~;\[ ]", r, maxsplit=1)[0].lower() for r in requirements}


@pytest.mark.parametrize(("fmt", "module", "extra"), [
    ("tflite", "litert_torch", "tflite"), ("tflite", "ai_edge_quantizer", "tflite"),
    ("tflite", "ai_edge_litert.interpreter", "tflite"), ("coreml", "coremltools", "coreml"),
    ("executorch", "executorch", "executorch"), ("onnx", "onnxscript", None)])
def test_a_missing_converter_names_the_extra_that_installs_it(fmt, module, extra):
    """The one line of a missing converter: the package that is missing, and `pip install 'edgekit[EXTRA]'` with
    the extra whose requirements hold that package (pyproject.toml); a core format's fix names the package."""
    from edgekit.export.failures import explain_failure

    err = explain_failure(fmt, ImportError(f"No module named {module!r}", name=module))
    package = module.split(".")[0].replace("_", "-")
    assert err.problem == f"the {fmt} converter is not installed (Python package {package!r} is missing)"
    extras = _pyproject()["optional-dependencies"]
    if extra is None:
        assert err.fix == f"pip install {package}" and package in _names(_pyproject()["dependencies"])
    else:
        assert err.fix == f"pip install 'edgekit[{extra}]'" and package in _names(extras[extra])
    assert "\n" not in err.one_line()


def test_extras_split_the_converters_from_the_core_install():
    """Core: ONNX export and bench; every format's converter packages are in the core or in the format's extra;
    `all` is tflite + coreml + eval; `make setup` installs `.[all,dev]`."""
    project = _pyproject()
    core, extras = _names(project["dependencies"]), project["optional-dependencies"]
    assert set(get_format("onnx").converter_packages) <= core and get_format("onnx").extra is None
    for fmt in all_formats().values():
        wanted = set(fmt.converter_packages) - {"torch", "torchao"}  # torchao comes with executorch
        if fmt.extra is None:
            assert wanted <= core, fmt.name
        else:
            assert wanted <= _names(extras[fmt.extra]) and not wanted & core, fmt.name
    assert {"simple-icd-10-cm", "chatterbot-corpus"} <= _names(extras["eval"])
    assert not {"simple-icd-10-cm", "chatterbot-corpus", "coremltools", "litert-torch"} & core
    assert extras["all"] == ["edgekit[tflite,coreml,eval]"]
    makefile = (PACKAGE.parent / "Makefile").read_text()
    assert "pip install -q -e '.[all,dev]'" in makefile.split("$(STAMP): pyproject.toml", 1)[1].split("\n\n")[0]


def test_runtime_install_hints_name_the_extras():
    from edgekit.bench.inputs import RUNTIME_PACKAGES
    from edgekit.formats import install_fix

    for fmt in all_formats().values():
        if fmt.extra:
            assert install_fix(fmt.name) == f"pip install 'edgekit[{fmt.extra}]'"
            assert RUNTIME_PACKAGES[fmt.runtime].startswith(f"'edgekit[{fmt.extra}]'"), fmt.runtime
