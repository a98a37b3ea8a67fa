"""Issue 11 (export side): output paths stay inside --out, links in --out are replaced not followed, inputs larger
than memory are refused, the manifest keeps what earlier exports made, and malformed cards, manifests and output
folders end in one clear line. Real files, real converters (a two-layer model, ONNX only), real subprocesses."""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
from pathlib import Path

import pytest

from edgekit.errors import EdgekitError
from edgekit.export.artifact import Manifest
from edgekit.export.pipeline import export_model
from edgekit.files import file_sha256
from edgekit.modelsource import load_model
from edgekit.specs import load_card, parse_input_option

TINY_MODEL = '''
import torch
from torch import nn


def build():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(8, {width}), nn.ReLU(), nn.Linear({width}, 4))


def example_inputs():
    torch.manual_seed(1)
    return (torch.randn(1, 8),)
'''


def tiny_model(tmp_path: Path, width: int = 16) -> str:
    """A two-layer model file in tmp_path; its model name is `tiny-build`."""
    path = tmp_path / "tiny.py"
    path.write_text(TINY_MODEL.format(width=width))
    return f"{path}:build"


def run_cli(*args: str, env: dict | None = None, preexec=None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "edgekit.cli", *args], capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, timeout=600, preexec_fn=preexec)


def one_error_line(result: subprocess.CompletedProcess, code: int = 2) -> str:
    assert result.returncode == code, (result.returncode, result.stderr)
    assert "Traceback" not in result.stderr, result.stderr
    lines = [ln for ln in result.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ") and " — fix: " in lines[0], lines[0]
    return lines[0]


def leftovers(directory: Path) -> list[str]:
    """Temporary files or staging folders edgekit left in an output folder."""
    return sorted(p.name for p in directory.iterdir() if p.name.startswith(".") or p.name.endswith(".tmp"))


def write_card(path: Path, name: str, config: str = "") -> Path:
    path.write_text(f'name = "{name}"\nmodel = "gem-tiny"\n{config}\n'
                    '[[inputs]]\nname = "input_ids"\nshape = [1, 16]\ndtype = "int64"\nhigh = 100\n')
    return path


# --- item 2: nothing is written outside --out -------------------------------------------------------------------

@pytest.mark.parametrize("name", ["../../escaped", "{tmp}/abs-escaped", "sub/escaped", "..", "Upper Case"])
def test_card_name_that_is_not_a_plain_name_is_refused(tmp_path, name):
    name = name.format(tmp=tmp_path)
    card = write_card(tmp_path / "card.toml", name)
    with pytest.raises(EdgekitError, match="not a valid model name"):
        load_card(card)


def test_export_of_card_with_escaping_name_writes_nothing_outside_out(tmp_path):
    card = write_card(tmp_path / "card.toml", "../../escaped")
    out = tmp_path / "a" / "b" / "out"
    line = one_error_line(run_cli("export", str(card), "--formats", "onnx", "--out", str(out)))
    assert "'../../escaped'" in line
    assert not list(tmp_path.rglob("escaped*"))


def test_exporter_refuses_a_model_name_that_leaves_the_output_folder(tmp_path):
    loaded = load_model(tiny_model(tmp_path))
    out = tmp_path / "out"
    for bad in ("../escaped", str(tmp_path / "abs"), "a/../../b"):
        loaded.name = bad
        with pytest.raises(EdgekitError, match="outside the output folder"):
            export_model(loaded, out, ("onnx",))
    assert not list(tmp_path.rglob("escaped*")) and not list(tmp_path.rglob("abs*")) and not (tmp_path / "b").exists()


# --- item 3: a link planted in --out is replaced, not followed ---------------------------------------------------

def test_symlinks_planted_in_out_are_replaced_not_followed(tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    victim, victim_manifest = outside / "victim.bin", outside / "victim.json"
    victim.write_text("precious")
    victim_manifest.write_text("also precious")
    out = tmp_path / "out"
    out.mkdir()
    (out / "tiny-build.fp32.onnx").symlink_to(victim)
    (out / "manifest.json").symlink_to(victim_manifest)
    manifest = export_model(tiny_model(tmp_path), out, ("onnx",))
    assert victim.read_text() == "precious" and victim_manifest.read_text() == "also precious"
    assert not (out / "tiny-build.fp32.onnx").is_symlink() and not (out / "manifest.json").is_symlink()
    art = manifest.find("onnx", "fp32")
    assert art.status == "ok" and art.parity.verdict == "pass"
    assert art.sha256 == file_sha256(out / art.path)
    assert leftovers(out) == []


def test_install_replaces_a_linked_or_existing_package_folder(tmp_path):
    """A .mlpackage is a folder: a link at its name (to a folder outside) and an older package are both replaced."""
    from edgekit.files import install, staging

    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "keep.txt").write_text("keep")
    out = tmp_path / "out"
    out.mkdir()
    (out / "m.fp32.mlpackage").symlink_to(outside, target_is_directory=True)
    for round_ in ("first", "second"):
        with staging(out) as stage:
            pkg = stage / "m.fp32.mlpackage"
            (pkg / "Data").mkdir(parents=True)
            (pkg / "Data" / "weights.bin").write_text(round_)
            install(pkg, out / "m.fp32.mlpackage")
        assert (out / "m.fp32.mlpackage" / "Data" / "weights.bin").read_text() == round_
        assert not (out / "m.fp32.mlpackage").is_symlink()
    assert sorted(p.name for p in outside.iterdir()) == ["keep.txt"] and (outside / "keep.txt").read_text() == "keep"
    assert leftovers(out) == []


# --- item 8: inputs larger than memory are refused before anything is allocated ----------------------------------

def test_input_larger_than_available_memory_is_refused():
    with pytest.raises(EdgekitError) as info:
        parse_input_option("pixels:1000000x1000000:float32")
    line = info.value.one_line()
    assert "'pixels'" in line and "GiB" in line and "available" in line
    assert parse_input_option("x:1x8:float32").shape == (1, 8)  # ordinary sizes still pass


@pytest.mark.parametrize("command", ["export", "bench"])
def test_huge_input_is_one_line_for_export_and_bench(tmp_path, command):
    result = run_cli(command, tiny_model(tmp_path), "--input", "x:1000000x1000000:float32",
                     *(["--out", str(tmp_path / "out")] if command == "export" else []))
    line = one_error_line(result)
    assert "'x'" in line and "GiB" in line


def test_card_input_larger_than_memory_is_refused(tmp_path):
    card = tmp_path / "huge.toml"
    card.write_text('name = "huge"\nmodel = "gem-tiny"\n[[inputs]]\nname = "input_ids"\n'
                    'shape = [1000000, 1000000]\ndtype = "int64"\n')
    with pytest.raises(EdgekitError, match="'input_ids'.*GiB"):
        load_model(str(card))


# --- item 10: the manifest keeps what earlier exports made -------------------------------------------------------

def test_reexporting_one_format_keeps_the_other_formats(tmp_path):
    model, out = tiny_model(tmp_path), tmp_path / "out"
    export_model(model, out, ("onnx", "torch"))
    again = export_model(model, out, ("onnx",), reuse=False)
    assert {a.key for a in again.artifacts} == {"onnx/fp32", "torch/fp32"}
    on_disk = Manifest.read(out)
    torch_art = on_disk.find("torch", "fp32")
    assert torch_art is not None and torch_art.status == "ok"
    assert torch_art.sha256 == file_sha256(out / torch_art.path)


def test_failed_reexport_keeps_the_good_entry_and_reports_the_failure(tmp_path):
    model, out = tiny_model(tmp_path), tmp_path / "out"
    first = export_model(model, out, ("onnx",))
    good = first.find("onnx", "fp32")
    shadow = tmp_path / "shadow"  # onnxslim "not installed": the ONNX export fails
    shadow.mkdir()
    (shadow / "onnxslim.py").write_text("raise ImportError('onnxslim is not installed', name='onnxslim')\n")
    result = run_cli("export", model, "--formats", "onnx", "--out", str(out), "--no-cache",
                     env={"PYTHONPATH": str(shadow)})
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    assert "error: onnx fp32:" in result.stderr and "earlier artifact is kept" in result.stderr
    kept = Manifest.read(out).find("onnx", "fp32")
    assert kept.status == "ok" and kept.sha256 == good.sha256 == file_sha256(out / kept.path)
    assert leftovers(out) == []


def test_interrupted_export_keeps_earlier_entries(tmp_path):
    model, out = tiny_model(tmp_path), tmp_path / "out"
    export_model(model, out, ("onnx", "torch"))
    before = Manifest.read(out).find("torch", "fp32")

    def interrupt(fmt: str, precision: str, phase: str) -> None:
        if fmt == "torch" and phase == "convert":
            raise KeyboardInterrupt  # Ctrl-C while the second format converts

    with pytest.raises(KeyboardInterrupt):
        export_model(model, out, ("onnx", "torch"), reuse=False, progress=interrupt)
    after = Manifest.read(out)
    assert after.find("onnx", "fp32").status == "ok"
    assert after.find("torch", "fp32").sha256 == before.sha256 == file_sha256(out / before.path)
    assert leftovers(out) == []


# --- item 16: malformed cards, manifests and output folders ------------------------------------------------------

def test_card_config_unknown_key_names_the_nearest_known_one(tmp_path):
    card = write_card(tmp_path / "card.toml", "gem-typo", "[config]\nnum_classez = 8\n")
    with pytest.raises(EdgekitError) as info:
        load_model(str(card))
    assert "num_classez" in info.value.problem and "num_classes" in info.value.one_line()
    line = one_error_line(run_cli("export", str(card), "--formats", "onnx", "--out", str(tmp_path / "out")))
    assert "num_classez" in line and "'num_classes'" in line


@pytest.mark.parametrize(("config", "expected"), [
    ('num_classes = "eight"', "int"),
    ("threshold = true", "float"),
    ("unit_widths = 64", "list of int"),
    ('unit_widths = [64, "x"]', "list of int"),
    ("router = 1", "bool"),
])
def test_card_config_wrong_type_names_the_expected_type(tmp_path, config, expected):
    card = write_card(tmp_path / "card.toml", "gem-bad", f"[config]\n{config}\n")
    with pytest.raises(EdgekitError) as info:
        load_model(str(card))
    key = config.split(" ")[0]
    assert key in info.value.problem and f"expected {expected}" in info.value.problem


def test_card_config_value_the_model_rejects_is_one_error(tmp_path):
    card = write_card(tmp_path / "card.toml", "gem-bad", "[config]\ntop_k = 9\n")
    with pytest.raises(EdgekitError, match="gem-tiny.*top_k"):
        load_model(str(card))


def _manifest_with(tmp_path: Path, change) -> Path:
    folder = tmp_path / "m"
    folder.mkdir(exist_ok=True)
    data = {"model": "m", "source": "file:x", "edgekit_version": "0", "created": "now", "inputs": [],
            "outputs": ["output"], "artifacts": [{"model": "m", "format": "onnx", "precision": "fp32",
                                                  "path": "m.fp32.onnx", "inputs": [{"name": "x", "shape": [1, 8]}],
                                                  "parity": {"verdict": "pass"}}]}
    change(data)
    (folder / "manifest.json").write_text(json.dumps(data))
    return folder


BAD_MANIFESTS = {
    "artifacts is a string": lambda d: d.update(artifacts="x"),
    "artifact is a number": lambda d: d.update(artifacts=[5]),
    "format is a number": lambda d: d["artifacts"][0].update(format=5),
    "path is a number": lambda d: d["artifacts"][0].update(path=7),
    "parity is a string": lambda d: d["artifacts"][0].update(parity="x"),
    "parity max_abs is text": lambda d: d["artifacts"][0].update(parity={"verdict": "pass", "max_abs": "tiny"}),
    "model is a list": lambda d: d.update(model=["a"]),
    "inputs is a string": lambda d: d["artifacts"][0].update(inputs="x"),
    "input shape is text": lambda d: d["artifacts"][0].update(inputs=[{"name": "x", "shape": "abc"}]),
    "size_bytes is text": lambda d: d["artifacts"][0].update(size_bytes="big"),
    "size_bytes is a bool": lambda d: d["artifacts"][0].update(size_bytes=True),
    "details is a list": lambda d: d["artifacts"][0].update(details=[1]),
}


@pytest.mark.parametrize("case", sorted(BAD_MANIFESTS))
def test_manifest_with_wrong_types_is_one_clear_error(tmp_path, case):
    folder = _manifest_with(tmp_path, BAD_MANIFESTS[case])
    with pytest.raises(EdgekitError, match="manifest"):
        Manifest.read(folder)


def test_manifest_unknown_parity_key_is_ignored(tmp_path):
    """A newer edgekit may add parity fields: they are skipped, as unknown artifact fields already are."""
    folder = _manifest_with(tmp_path, lambda d: d["artifacts"][0]["parity"].update(new_metric=1.0))
    assert Manifest.read(folder).artifacts[0].parity.verdict == "pass"


def test_bench_of_a_folder_with_a_mistyped_manifest_is_one_line(tmp_path):
    folder = _manifest_with(tmp_path, BAD_MANIFESTS["parity is a string"])
    line = one_error_line(run_cli("bench", str(folder), "--runs", "3"))
    assert "artifacts[0].parity" in line


@pytest.mark.parametrize("where", ["a file", "below a file"])
def test_unwritable_out_is_one_line(tmp_path, where):
    blocker = tmp_path / "blocker"
    blocker.write_text("x")
    out = blocker if where == "a file" else blocker / "sub"
    line = one_error_line(run_cli("export", tiny_model(tmp_path), "--formats", "onnx", "--out", str(out)))
    assert str(out) in line and "--out" in line
    assert blocker.read_text() == "x"


# --- item 17: operator message, manifest mode, no temporary files after a failed write ---------------------------

def _onnx_with_operator(path: Path, op: str, domain: str) -> Path:
    import onnx
    from onnx import TensorProto, helper

    node = helper.make_node(op, ["x"], ["y"], domain=domain)
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])])
    opsets = [helper.make_opsetid("", 18)] + ([helper.make_opsetid(domain, 1)] if domain else [])
    onnx.save(helper.make_model(graph, opset_imports=opsets), str(path))
    return path


@pytest.mark.parametrize(("op", "domain"), [("NoSuchOp", ""), ("MyOp", "com.example")])
def test_unknown_onnx_operator_is_named_not_called_corrupt(tmp_path, op, domain):
    from edgekit.runtime.onnxruntime import OnnxRuntime

    path = _onnx_with_operator(tmp_path / "m.onnx", op, domain)
    with pytest.raises(EdgekitError) as info:
        OnnxRuntime().load(path)
    line = info.value.one_line()
    assert op in line and "not supported by the installed onnxruntime" in line
    assert "truncated" not in line


def test_manifest_mode_follows_the_umask_like_the_artifacts(tmp_path):
    old = os.umask(0o022)
    try:
        manifest = export_model(tiny_model(tmp_path), tmp_path / "out", ("onnx",))
    finally:
        os.umask(old)
    art_mode = (tmp_path / "out" / manifest.find("onnx", "fp32").path).stat().st_mode & 0o777
    assert (tmp_path / "out" / "manifest.json").stat().st_mode & 0o777 == art_mode == 0o644


def _file_size_limit(limit: int):
    """A preexec_fn: writes past `limit` bytes fail with EFBIG, as on a full disk (Python ignores SIGXFSZ)."""
    return lambda: resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))


def test_failed_manifest_write_leaves_no_temporary_file(tmp_path):
    script = ("import sys\nfrom pathlib import Path\nfrom edgekit.errors import EdgekitError\n"
              "from edgekit.export.artifact import Manifest\n"
              "m = Manifest(model='m', source='s', edgekit_version='0', created='now', inputs=[], "
              "outputs=['x' * 100000])\n"
              "try:\n    m.write(Path(sys.argv[1]))\nexcept EdgekitError as exc:\n    print(exc.one_line())\n")
    out = tmp_path / "out"
    out.mkdir()
    result = subprocess.run([sys.executable, "-c", script, str(out)], capture_output=True, text=True, timeout=120,
                            preexec_fn=_file_size_limit(20_000))
    assert "Traceback" not in result.stderr, result.stderr
    assert "manifest.json" in result.stdout and "fix:" in result.stdout
    assert list(out.iterdir()) == []


def test_export_that_runs_out_of_space_leaves_no_temporary_files(tmp_path):
    model, out = tiny_model(tmp_path, width=512), tmp_path / "out"  # ~20 KB of weights: more than the limit allows
    result = run_cli("export", model, "--formats", "onnx,torch", "--out", str(out), "--json",
                     preexec=_file_size_limit(12_000))
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    manifest = json.loads(result.stdout)
    assert {a["status"] for a in manifest["artifacts"]} == {"failed"}
    assert sorted(p.name for p in out.iterdir()) == ["manifest.json"]


def test_onnx_declaring_an_input_larger_than_memory_is_refused_by_bench(tmp_path):
    import onnx
    from onnx import TensorProto, helper

    from edgekit.bench.inputs import model_input_specs

    graph = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1000000, 1000000])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1000000, 1000000])])
    path = tmp_path / "huge.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)]), str(path))
    with pytest.raises(EdgekitError, match="'x'.*GiB"):
        model_input_specs(path, "onnx")
    line = one_error_line(run_cli("bench", str(path), "--runs", "3"))
    assert "GiB" in line


def test_install_replaces_a_folder_planted_at_a_file_name(tmp_path):
    from edgekit.files import install, staging

    out = tmp_path / "out"
    (out / "m.fp32.onnx").mkdir(parents=True)
    (out / "m.fp32.onnx" / "inside.txt").write_text("planted")
    with staging(out) as stage:
        (stage / "m.fp32.onnx").write_bytes(b"model")
        install(stage / "m.fp32.onnx", out / "m.fp32.onnx")
    assert (out / "m.fp32.onnx").read_bytes() == b"model" and leftovers(out) == []


def test_atomic_writers_never_replace_a_device(tmp_path):
    """Renaming a temporary file over /dev/null as root swaps the device for a regular file (seen while the CLI
    fuzz test passed /dev/null as --out). Every atomic writer refuses a device, FIFO or socket in one line."""
    import os as _os
    import stat as _stat

    from edgekit.errors import EdgekitError as _Err
    from edgekit.files import write_text
    from edgekit.store import write_text_atomic

    fifo = tmp_path / "pipe"
    _os.mkfifo(fifo)
    for writer in (write_text, write_text_atomic):
        with pytest.raises(_Err, match="device, pipe or socket"):
            writer(fifo, "x")
        assert _stat.S_ISFIFO(_os.lstat(fifo).st_mode)
    assert [p.name for p in tmp_path.iterdir()] == ["pipe"]  # no temporary file left
    proc = subprocess.run([sys.executable, "-m", "edgekit.cli", "runs", "export", "--out", str(fifo)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert _stat.S_ISFIFO(_os.lstat(fifo).st_mode)
