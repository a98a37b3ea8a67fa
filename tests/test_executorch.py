"""ExecuTorch (.pte) as a format: registration, the one-line refusal without the optional `executorch` package, the
device agent's message, the zoo's statements, and — when executorch is installed (`make setup-executorch`) — export
(fp32, int8, int8-static) with a delegation audit, parity in the ExecuTorch runtime, and a benchmark in the child."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

from edgekit.bench.inputs import format_for_path
from edgekit.errors import EdgekitError
from edgekit.export.pipeline import export_model
from edgekit.formats import format_names, get_format
from edgekit.runtime import runtime_for_format
from edgekit.runtime.executorch import executorch_problem

PROBLEM = executorch_problem()
needs_executorch = pytest.mark.skipif(
    PROBLEM is not None, reason=f"{PROBLEM} — install the extra with `make setup-executorch` to run this test")

MODEL_SRC = '''
import torch


class Net(torch.nn.Module):
    """Conv + pooling + linear: XNNPACK takes the conv and the linear; a mean stays on portable kernels."""

    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 8, 3, padding=1)
        self.head = torch.nn.Linear(8, 4)

    def forward(self, pixels):
        return self.head(torch.relu(self.conv(pixels)).mean(dim=(2, 3)))


def build():
    torch.manual_seed(0)
    return Net().eval()


def example_inputs():
    return {"pixels": torch.randn(1, 3, 16, 16)}
'''


@pytest.fixture(scope="module")
def model_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("etmodel") / "small_net.py"
    path.write_text(MODEL_SRC)
    return path


# -- always: registration and the refusal without executorch ---------------------------------------------------------

def test_executorch_is_a_registered_format():
    assert "executorch" in format_names()
    assert get_format("executorch").suffix == ".pte"
    assert get_format("executorch").precisions == ("fp32", "int8", "int8-static")
    assert format_for_path(Path("m.fp32.pte")) == "executorch"
    assert runtime_for_format("executorch").name == "executorch"


def test_missing_executorch_is_one_line_naming_package_and_fix(model_file, tmp_path, monkeypatch):
    import edgekit.runtime.executorch as rt

    monkeypatch.setattr(rt, "dist_version", lambda name: None if name == "executorch" else "1")
    manifest = export_model(f"{model_file}:build", tmp_path / "out", ("executorch",), ("int8",))
    fp32, int8 = manifest.find("executorch", "fp32"), manifest.find("executorch", "int8")
    assert fp32.status == "failed" and int8.status == "failed"
    assert "\n" not in fp32.error
    assert "package 'executorch') is not installed" in fp32.error and "make setup-executorch" in fp32.error
    assert "torch==2.13.0" in fp32.error
    assert not rt.ExecuTorchRuntime().available()


def test_bench_without_executorch_fails_with_the_install_line(tmp_path, monkeypatch):
    import edgekit.runtime.executorch as rt
    from edgekit.bench.runner import BenchConfig, BenchJob, run_benchmark
    from edgekit.specs import TensorSpec

    monkeypatch.setattr(rt, "dist_version", lambda name: None)
    pte = tmp_path / "m.fp32.pte"
    pte.write_bytes(b"\0" * 64)
    job = BenchJob(model="m", format="executorch", precision="fp32", path=pte, runtime="executorch",
                   inputs=[TensorSpec("x", (1, 4))], size_bytes=64, sha256="0" * 64)
    result = run_benchmark(job, BenchConfig(warmup=0, runs=1, min_time_s=0.0, energy="none"))
    assert result.status == "failed"
    assert "runtime executorch is not installed" in result.error and "edgekit[executorch]" in result.error


def test_agent_without_executorch_runtime_says_so(monkeypatch, tmp_path):
    from edgekit.targets import agent

    monkeypatch.setitem(sys.modules, "executorch.runtime", None)  # `import executorch.runtime` raises ImportError
    pte = tmp_path / "m.pte"
    pte.write_bytes(b"\0" * 64)
    with pytest.raises(agent.AgentError) as err:
        agent.load_executorch(str(pte), agent.argparse.Namespace(threads=None))
    assert "executorch" in err.value.problem and "not" in err.value.problem
    assert "pip install executorch" in err.value.fix and "--format" in err.value.fix
    assert "executorch" in agent.LOADERS and "executorch" in agent.RUNTIMES


# The cards whose ExecuTorch export was checked (docs/zoo.md "ExecuTorch"); a new card adds its [executorch] table
# and its name here.
AUDITED_CARDS = ("biformer-tiny", "catanet-x2", "crossformer-tiny", "crossvit-tiny", "dfir-detr-fft", "dfir-detr-tiny",
                 "fit-tiny", "gem-dense-tiny", "gem-lm-tiny", "gem-minilm", "gem-small", "gem-tiny", "infnet-tiny",
                 "minilm-l6", "moh-vit-tiny", "transnormer-tiny")


def _executorch_table(card) -> dict:
    import tomllib

    return tomllib.loads(Path(card.source).read_text()).get("executorch", {})


def test_every_card_states_whether_it_exports_to_executorch():
    """Each card's [executorch] table: exports = true with the operators left on portable kernels, or false with the
    reason. (Not in `formats`: that list is exported with parity by the default suite, where executorch is absent.)"""
    from edgekit.specs import find_card

    for name in AUDITED_CARDS:
        card = find_card(name)
        table = _executorch_table(card)
        assert isinstance(table.get("exports"), bool), f"{card.name}: add an [executorch] table with exports = ..."
        if table["exports"]:
            assert isinstance(table.get("portable"), list), card.name
        else:
            assert len(table.get("reason", "")) > 20, card.name


def test_gem_cards_name_the_router_ops_left_on_portable_kernels():
    """GEM's static router does not lower fully to XNNPACK: the card says which ops stay on portable kernels."""
    from edgekit.specs import find_card

    for name in ("gem-tiny", "gem-small", "gem-lm-tiny", "gem-minilm"):
        table = _executorch_table(find_card(name))
        assert {"aten.topk", "aten.scatter.src", "aten.mm"} <= set(table["portable"]), name
        assert "topk" in table["router"] and "scatter" in table["router"] and "portable" in table["router"]


@needs_executorch
def test_gem_tiny_card_matches_its_delegation_audit(tmp_path):
    from edgekit.specs import find_card

    manifest = export_model("gem-tiny", tmp_path, ("executorch",), (), n_random=1)
    art = manifest.find("executorch", "fp32")
    assert art.status == "ok" and art.parity.verdict == "pass", art.error or art.parity.note
    assert sorted(art.details["delegation"]["portable"]) == sorted(_executorch_table(find_card("gem-tiny"))["portable"])
    assert art.details["delegation"]["portable_in"]["aten.topk"] == ["SCAR"]


# -- with executorch: export, parity in the ExecuTorch runtime, bench in the child -----------------------------------

@pytest.fixture(scope="module")
def exported(model_file, tmp_path_factory):
    if PROBLEM is not None:
        pytest.skip(PROBLEM)
    out = tmp_path_factory.mktemp("etexport")
    return out, export_model(f"{model_file}:build", out, ("executorch",), ("int8", "int8-static"), n_random=2)


@needs_executorch
def test_export_writes_pte_with_delegate_audit_and_passes_parity(exported):
    out, manifest = exported
    for precision in ("fp32", "int8", "int8-static"):
        art = manifest.find("executorch", precision)
        assert art.status == "ok", art.error
        assert art.path.endswith(f".{precision}.pte") and (out / art.path).is_file()
        assert art.spec_version and art.spec_version.startswith("ET")
        assert art.parity.verdict == "pass", art.parity.note
        assert art.parity.runtime == "executorch"
        audit = art.details["delegation"]
        assert art.details["delegate"] == audit["delegate"] == "XnnpackBackend"
        assert audit["delegated"].get("aten.convolution", 0) + audit["delegated"].get("aten.conv2d", 0) >= 1
        assert audit["delegated"].get("aten.linear", 0) + audit["delegated"].get("aten.addmm", 0) >= 1
        assert audit["portable_ops"] == sum(audit["portable"].values())
        assert set(audit["portable"]) == set(audit["portable_in"])
    assert manifest.find("executorch", "fp32").parity.max_abs < 1e-4
    static = manifest.find("executorch", "int8-static").details
    assert "static int8" in static["scheme"] and static["calibration_source"] == "random"
    assert "calibration_warning" in static
    # conv-heavy graph with calibration inputs: int8 is the static scheme too (what XNNPACK runs fastest)
    assert "static int8" in manifest.find("executorch", "int8").details["scheme"]
    saved = json.loads((out / "manifest.json").read_text())
    assert any(a["format"] == "executorch" and a["details"]["delegation"]["delegated_ops"] > 0
               for a in saved["artifacts"])


@needs_executorch
def test_runtime_reads_inputs_and_runs_like_pytorch(exported, model_file):
    import torch

    from edgekit.runtime.executorch import ExecuTorchRuntime, pte_input_specs

    out, manifest = exported
    path = out / manifest.find("executorch", "fp32").path
    (spec,) = pte_input_specs(path)
    assert spec.shape == (1, 3, 16, 16) and spec.dtype == "float32"
    session = ExecuTorchRuntime().load(path)
    x = np.random.default_rng(0).standard_normal((1, 3, 16, 16)).astype(np.float32)
    (y,) = session.run({"pixels": x})
    sys.path.insert(0, str(model_file.parent))
    try:
        import small_net
    finally:
        sys.path.remove(str(model_file.parent))
    with torch.no_grad():
        ref = small_net.build()(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(y, ref, atol=1e-5)
    assert session.describe()["runtime"] == "executorch"


@needs_executorch
def test_corrupt_pte_is_one_line(tmp_path):
    from edgekit.runtime.executorch import ExecuTorchRuntime

    bad = tmp_path / "bad.pte"
    bad.write_bytes(b"not a program" * 10)
    with pytest.raises(EdgekitError) as err:
        ExecuTorchRuntime().load(bad)
    assert "cannot load" in err.value.problem and "export it again" in err.value.fix


@needs_executorch
def test_bench_measures_pte_in_the_child(exported):
    from edgekit.bench.jobs import resolve_jobs
    from edgekit.bench.runner import BenchConfig, run_benchmark

    out, _ = exported
    jobs = resolve_jobs(str(out), formats=["executorch"], precisions=["fp32", "int8"])
    assert {j.precision for j in jobs} == {"fp32", "int8"} and all(j.runtime == "executorch" for j in jobs)
    for job in jobs:
        result = run_benchmark(job, BenchConfig(warmup=2, runs=5, min_time_s=0.05, energy="none", threads=1))
        assert result.status == "ok", result.error
        assert len(result.samples_ms) >= 5 and result.latency.p50 > 0
        assert result.runtime["runtime"] == "executorch" and result.runtime["threads"] == 1
        assert result.runtime["provider"] == "xnnpack"
