"""`edgekit export`: real converters and runtimes on a user's own small cross-attention model."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from edgekit.errors import EdgekitError
from edgekit.export.artifact import Manifest
from edgekit.export.failures import explain_failure
from edgekit.export.parity import compare
from edgekit.export.pipeline import export_model
from edgekit.files import file_sha256
from edgekit.modelsource import load_model
from edgekit.specs import DEFAULT_TOLERANCES, parse_input_option

FIXTURES = Path(__file__).parent / "fixtures"
USER_MODEL = f"{FIXTURES / 'tiny_xattn.py'}:build"
FFT_MODEL = f"{FIXTURES / 'fft_model.py'}:build"


def run_cli(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    import os

    full_env = {**os.environ, **(env or {})}
    return subprocess.run([sys.executable, "-m", "edgekit.cli", *args], capture_output=True, text=True, env=full_env,
                          timeout=600)


@pytest.fixture(scope="module")
def exported(tmp_path_factory) -> tuple[Path, Manifest]:
    out = tmp_path_factory.mktemp("export")
    manifest = export_model(USER_MODEL, out, ("onnx", "tflite", "coreml"), ("fp16", "int8"))
    return out, manifest


def test_every_format_and_variant_exports(exported):
    _, manifest = exported
    keys = {a.key for a in manifest.artifacts if a.status == "ok"}
    assert keys == {f"{f}/{p}" for f in ("onnx", "tflite", "coreml") for p in ("fp32", "fp16", "int8")}


def test_executable_artifacts_pass_parity(exported):
    _, manifest = exported
    for art in manifest.artifacts:
        if art.format == "coreml":
            continue
        assert art.parity is not None and art.parity.verdict == "pass", (art.key, art.parity)
        assert art.parity.n_inputs == 5  # the user's example + 4 seeded random inputs
        assert art.parity.top1_agreement == 1.0
    fp32 = manifest.find("onnx", "fp32").parity
    assert fp32.max_abs < 1e-5 and fp32.cosine > 0.999999
    int8 = manifest.find("onnx", "int8").parity
    assert int8.max_abs > fp32.max_abs  # quantization really changed the numbers


def test_coreml_is_validated_not_executed_on_linux(exported):
    _, manifest = exported
    parity = manifest.find("coreml", "fp32").parity
    if sys.platform == "darwin":
        assert parity.verdict == "pass"
    else:
        assert parity.verdict == "not-executed"
        assert "CoreML executes only on macOS" in parity.note


def test_manifest_records_what_downstream_needs(exported):
    out, manifest = exported
    again = Manifest.read(out / "manifest.json")
    assert again.to_dict() == json.loads((out / "manifest.json").read_text())
    onnx_art = again.find("onnx", "fp32")
    path = out / onnx_art.path
    assert onnx_art.sha256 == file_sha256(path)
    assert onnx_art.size_bytes == path.stat().st_size
    assert onnx_art.spec_version.startswith("ai.onnx:") and int(onnx_art.spec_version.split(":")[1]) >= 18
    assert onnx_art.inputs[0]["name"] == "x" and onnx_art.inputs[0]["shape"] == [1, 8, 16]
    assert onnx_art.converter["onnxruntime"] != "missing"
    assert onnx_art.export_seconds > 0
    int8 = again.find("onnx", "int8")
    assert int8.size_bytes < onnx_art.size_bytes


def test_second_export_reuses_cache(exported):
    out, _ = exported
    manifest = export_model(USER_MODEL, out, ("onnx",), ())
    assert manifest.find("onnx", "fp32").details.get("cache") == "hit"


def test_input_option_path(tmp_path):
    manifest = export_model(f"{FIXTURES / 'tiny_xattn.py'}:TinyCrossAttention", tmp_path, ("onnx",), (),
                            input_options=["x:2x6x16:float32"])
    art = manifest.find("onnx", "fp32")
    assert art.parity.verdict == "pass"
    assert art.inputs[0]["shape"] == [2, 6, 16]


def test_unsupported_operator_names_operator_and_format(tmp_path):
    manifest = export_model(FFT_MODEL, tmp_path, ("onnx", "tflite", "coreml"), ())
    assert manifest.find("onnx", "fp32").parity.verdict == "pass"  # ONNX has DFT
    for fmt in ("tflite", "coreml"):
        art = manifest.find(fmt, "fp32")
        assert art.status == "failed"
        assert f"{fmt} cannot express operator aten.fft_rfft2" in art.error
        assert "fix:" in art.error


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["missing_file.py:build"], "model file missing_file.py does not exist"),
        ([f"{FIXTURES / 'tiny_xattn.py'}:nope"], "has no callable 'nope'"),
        ([f"{FIXTURES / 'tiny_xattn.py'}:not_a_module"], "returned int, not a torch.nn.Module"),
        ([USER_MODEL, "--input", "x:1x8x15"], "failed on inputs [x:1x8x15:float32]"),
        ([USER_MODEL, "--input", "x=1x8x16"], "cannot read input spec"),
        ([USER_MODEL, "--formats", "onnx,savedmodel"], "unknown format savedmodel"),
        ([USER_MODEL, "--quantize", "int3"], "unknown precision int3"),
        (["no-such-model"], "unknown model 'no-such-model'"),
        ([str(FIXTURES / "broken_card.toml")], "is not valid TOML"),
    ],
)
def test_bad_input_gives_one_clear_line(args, message, tmp_path):
    result = run_cli("export", *args, "--out", str(tmp_path))
    assert result.returncode == 2, result.stderr
    lines = [ln for ln in result.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ") and message in lines[0] and "fix:" in lines[0]
    assert "Traceback" not in result.stderr


def test_missing_converter_is_named_and_other_formats_still_export(tmp_path):
    shadow = tmp_path / "shadow"
    shadow.mkdir()
    (shadow / "litert_torch.py").write_text("raise ImportError('litert_torch is not installed', name='litert_torch')\n")
    out = tmp_path / "out"
    result = run_cli("export", USER_MODEL, "--formats", "onnx,tflite", "--out", str(out), "--json",
                     env={"PYTHONPATH": str(shadow)})
    assert result.returncode == 1
    manifest = json.loads(result.stdout)
    arts = {f"{a['format']}/{a['precision']}": a for a in manifest["artifacts"]}
    assert arts["onnx/fp32"]["parity"]["verdict"] == "pass"
    assert arts["tflite/fp32"]["status"] == "failed"
    assert "converter is not installed" in arts["tflite/fp32"]["error"] and "litert-torch" in arts["tflite/fp32"]["error"]
    assert arts["tflite/fp32"]["error"].endswith("fix: pip install 'edgekit[tflite]'")  # the extra (pyproject.toml)
    assert "error: tflite fp32:" in result.stderr


def test_cli_json_is_the_manifest(exported, tmp_path):
    result = run_cli("export", USER_MODEL, "--formats", "onnx", "--out", str(tmp_path), "--json")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["model"] == "tiny_xattn-build" and data["artifacts"][0]["parity"]["verdict"] == "pass"
    assert (tmp_path / "manifest.json").is_file()


def test_parity_fails_when_outputs_differ():
    rng = np.random.default_rng(0)
    refs = [[rng.standard_normal((1, 5)).astype(np.float32)] for _ in range(3)]
    same = compare(refs, [[r[0].copy()] for r in refs], DEFAULT_TOLERANCES["fp32"], classifier=True)
    assert same.verdict == "pass" and same.max_abs == 0 and same.top1_agreement == 1.0
    noisy = compare(refs, [[r[0] + 0.5] for r in refs], DEFAULT_TOLERANCES["fp32"], classifier=True)
    assert noisy.verdict == "fail" and noisy.max_abs == pytest.approx(0.5, abs=1e-6)
    shaped = compare(refs, [[np.zeros((1, 4))] for _ in refs], DEFAULT_TOLERANCES["fp32"], classifier=True)
    assert shaped.verdict == "fail" and "shape" in shaped.note


def test_explain_failure_recognises_converter_messages():
    err = explain_failure("tflite", RuntimeError("error: failed to legalize operation 'tfl.custom_op' that was ..."))
    assert "tflite cannot express operator tfl.custom_op" in err.one_line()
    err = explain_failure("coreml", RuntimeError("PyTorch convert function for op 'grid_sampler' not implemented."))
    assert "operator aten.grid_sampler" in err.one_line()
    err = explain_failure("onnx", ImportError("no onnxscript", name="onnxscript"))
    assert "not installed" in err.one_line()


def test_input_spec_parsing():
    spec = parse_input_option("input_ids:1x128:int64")
    assert spec.shape == (1, 128) and spec.dtype == "int64"
    with pytest.raises(EdgekitError):
        parse_input_option("x:1x0x3")


def test_loaded_model_fingerprint_tracks_weights():
    a = load_model(USER_MODEL)
    b = load_model(USER_MODEL)
    assert a.fingerprint() == b.fingerprint()
    with __import__("torch").no_grad():
        next(b.module.parameters()).add_(1.0)
    assert a.fingerprint() != b.fingerprint()


def test_hybrid_quantization_keeps_gem_router_float_in_onnx(tmp_path):
    import onnx

    manifest = export_model("gem-tiny", tmp_path, ("onnx",), ("int8",))
    art = manifest.find("onnx", "int8")
    assert art.parity.verdict == "pass"
    assert int(art.details["kept_float_nodes"]) > 0
    graph = onnx.load(str(tmp_path / art.path)).graph
    router = [n for n in graph.node if ".router" in n.name]
    assert router and all(n.op_type not in ("MatMulInteger", "DynamicQuantizeMatMul") for n in router)
    assert any(n.op_type == "MatMulInteger" for n in graph.node)  # the bulk is int8


def test_int8_onnx_runs_when_a_matmul_has_a_batched_constant_weight(tmp_path):
    """CATANet folds a [1, heads, n, d] constant into a MatMul; dynamic int8 must leave it float or onnxruntime
    refuses the quantized graph at run time."""
    manifest = export_model("catanet-x2", tmp_path, ("onnx",), ("int8",))
    art = manifest.find("onnx", "int8")
    assert art.status == "ok" and art.parity.verdict == "pass", art.parity
    assert int(art.details["float_batched_matmuls"]) > 0
