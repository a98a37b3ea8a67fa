"""Accuracy per artifact (docs/export.md "Accuracy per artifact"): `export --checkpoint` and a card's `checkpoint`
load trained weights; `--eval-data` measures top-1 per artifact; `--max-accuracy-drop` keeps the sensitive layers of
int8 float until the drop is within budget. Tiny models: seconds each."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch

from edgekit.errors import EdgekitError
from edgekit.export.pipeline import export_model
from edgekit.modelsource import load_checkpoint, load_model

# An MLP whose second layer reads one huge activation and weights it tiny: dynamic int8 quantizes that layer's
# input per tensor, so the other 31 features lose their resolution and plain int8 loses ~20 % top-1.
OUTLIER_MLP = textwrap.dedent('''
    import torch
    from torch import nn


    class Outlier(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc1 = nn.Linear(16, 32)
            self.fc2 = nn.Linear(32, 32)
            self.head = nn.Linear(32, 4)
            with torch.no_grad():
                self.fc1.weight[0] *= 400.0
                self.fc1.bias[0] = 400.0
                self.fc2.weight[:, 0] /= 400.0

        def forward(self, x):
            return self.head(torch.relu(self.fc2(torch.relu(self.fc1(x)))))


    def build():
        torch.manual_seed(0)
        return Outlier()
''')
INPUT = ["x:1x16:float32"]


@pytest.fixture
def outlier(tmp_path):
    """(model ref, eval .npz): labels are the float model's own top-1 on 512 random inputs (fp32 top-1 = 1.0)."""
    src = tmp_path / "outlier.py"
    src.write_text(OUTLIER_MLP)
    ref = f"{src}:build"
    model = load_model(ref, INPUT).module
    x = np.random.default_rng(1).standard_normal((512, 16)).astype(np.float32)
    with torch.no_grad():
        labels = model(torch.from_numpy(x)).argmax(1).numpy()
    data = tmp_path / "eval.npz"
    np.savez(data, x=x, labels=labels)
    return ref, data


def _cli(*args):
    env = {**os.environ, "COLUMNS": "400"}  # a table row on one line
    return subprocess.run([sys.executable, "-m", "edgekit.cli", *args], capture_output=True, text=True, timeout=300,
                          env=env)


def test_checkpoint_weights_are_exported_and_recorded(outlier, tmp_path):
    ref, _ = outlier
    trained = load_model(ref, INPUT).module
    with torch.no_grad():
        for p in trained.parameters():
            p.mul_(-0.5)  # any weights other than the factory's
    ckpt = tmp_path / "w.pt"
    torch.save(trained.state_dict(), ckpt)
    loaded = load_model(ref, INPUT, checkpoint=ckpt)
    x = torch.randn(3, 16)
    with torch.no_grad():
        assert torch.equal(loaded.module(x), trained(x))
    manifest = export_model(loaded, tmp_path / "out", ("onnx",))
    art = manifest.find("onnx", "fp32")
    assert art.parity.verdict == "pass"
    assert art.details["weights"]["checkpoint"] == str(ckpt) and len(art.details["weights"]["sha256"]) == 64
    import onnxruntime as ort

    out = ort.InferenceSession(str(tmp_path / "out" / art.path)).run(None, {"x": x[:1].numpy()})[0]
    np.testing.assert_allclose(out, trained(x[:1]).detach().numpy(), atol=1e-5)  # the trained weights, not the factory's


def test_mismatched_checkpoint_is_one_line_naming_keys(outlier, tmp_path):
    ref, _ = outlier
    state = load_model(ref, INPUT).module.state_dict()
    state["fc2.weight"] = torch.zeros(8, 32)
    del state["head.bias"]
    state["extra.weight"] = torch.zeros(1)
    ckpt = tmp_path / "bad.pt"
    torch.save(state, ckpt)
    with pytest.raises(EdgekitError) as exc:
        load_checkpoint(load_model(ref, INPUT).module, ckpt)
    msg = exc.value.problem
    assert "fc2.weight 8x32 vs 32x32" in msg and "1 missing (head.bias)" in msg and "1 unexpected (extra.weight)" in msg
    proc = _cli("export", ref, "--input", INPUT[0], "-f", "onnx", "--checkpoint", str(ckpt), "--out", str(tmp_path / "o"))
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and "fc2.weight" in proc.stderr


def test_card_checkpoint_is_loaded_relative_to_the_card(tmp_path):
    card = tmp_path / "tiny-gem.toml"
    card.write_text(textwrap.dedent('''
        name = "tiny-gem"
        model = "gem-tiny"
        outputs = ["logits"]
        checkpoint = "weights/tiny.pt"
        [config]
        num_classes = 5
        vocab_size = 256
        max_len = 16
        dim = 32
        depth = 1
        [[inputs]]
        name = "input_ids"
        shape = [1, 16]
        dtype = "int64"
        dynamic = { "0" = "batch" }
        high = 256
    '''))
    from edgekit.zoo import create_model

    torch.manual_seed(7)
    trained = create_model("gem-tiny", num_classes=5, vocab_size=256, max_len=16, dim=32, depth=1).eval()
    (tmp_path / "weights").mkdir()
    torch.save(trained.state_dict(), tmp_path / "weights" / "tiny.pt")
    loaded = load_model(str(card))
    assert loaded.weights["checkpoint"] == str(tmp_path / "weights" / "tiny.pt")
    ids = torch.randint(0, 256, (2, 16))
    with torch.no_grad():
        assert torch.equal(loaded.module(ids), trained(ids))


def test_eval_data_gives_top1_per_artifact_and_plain_int8_exceeds_the_budget(outlier, tmp_path):
    ref, data = outlier
    proc = _cli("export", ref, "--input", INPUT[0], "-f", "onnx", "-p", "int8", "--eval-data", str(data),
                "--out", str(tmp_path / "o"), "--json")
    manifest = json.loads(proc.stdout)
    acc = {a["precision"]: a["details"]["accuracy"] for a in manifest["artifacts"]}
    assert acc["fp32"]["value"] == 1.0 and acc["fp32"]["n"] == 512 and acc["fp32"]["pytorch"] == 1.0
    assert acc["int8"]["delta_vs"] == "onnx fp32" and acc["int8"]["delta"] < -0.05  # far beyond a 0.01 budget
    table = _cli("export", ref, "--input", INPUT[0], "-f", "onnx", "-p", "int8", "--eval-data", str(data),
                 "--out", str(tmp_path / "o"))
    assert "top-1 (Δ fp32)" in table.stdout and f"({acc['int8']['delta']:+.4f})" in table.stdout


def test_max_accuracy_drop_keeps_the_sensitive_layer_float(outlier, tmp_path):
    ref, data = outlier
    manifest = export_model(ref, tmp_path / "o", ("onnx", "tflite"), ("int8",), input_options=INPUT,
                            eval_data=data, max_accuracy_drop=0.01)
    for fmt in ("onnx", "tflite"):
        art = manifest.find(fmt, "int8")
        control = art.details["accuracy_control"]
        assert art.status == "ok" and control["plain_drop"] > 0.01, control
        assert control["kept_float"] == ["fc2"] and control["drop"] <= 0.01
        assert art.details["accuracy"]["value"] >= 0.99 and art.parity.verdict == "pass"
    import onnx

    graph = onnx.load(str(tmp_path / "o" / manifest.find("onnx", "int8").path)).graph
    ops = {n.name.split("/")[0]: n.op_type for n in graph.node if n.op_type in ("MatMulInteger", "Gemm", "MatMul")}
    assert ops["fc1"] == "MatMulInteger" and ops["head"] == "MatMulInteger" and ops["fc2"] in ("Gemm", "MatMul")
    assert not list((tmp_path / "o").glob("*.trial*"))


def test_max_accuracy_drop_needs_eval_data_and_bad_data_is_one_line(outlier, tmp_path):
    ref, _ = outlier
    proc = _cli("export", ref, "--input", INPUT[0], "-f", "onnx", "-p", "int8", "--max-accuracy-drop", "0.01",
                "--out", str(tmp_path / "o"))
    assert proc.returncode == 2 and "needs labelled data" in proc.stderr and "--eval-data" in proc.stderr
    bad = tmp_path / "nolabels.npz"
    np.savez(bad, x=np.zeros((4, 16), np.float32))
    proc = _cli("export", ref, "--input", INPUT[0], "-f", "onnx", "--eval-data", str(bad), "--out", str(tmp_path / "o"))
    assert proc.returncode == 2 and "no `labels` array" in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "o").exists()  # refused before any export


def test_artifacts_of_a_checkpoint_count_as_trained_and_tflite_batch_comes_from_the_file(tmp_path):
    from edgekit.commands.evaluate import _exported_from_checkpoint
    from edgekit.evalsuite.evaluate import artifact_inputs
    from edgekit.zoo import create_model

    cfg = {"num_classes": 5, "vocab_size": 256, "max_len": 16, "dim": 32, "depth": 1}
    ckpt = tmp_path / "w.pt"
    torch.save(create_model("gem-tiny", **cfg).state_dict(), ckpt)
    card = tmp_path / "tiny-gem.toml"
    card.write_text(textwrap.dedent('''
        name = "tiny-gem"
        model = "gem-tiny"
        outputs = ["logits"]
        [config]
        num_classes = 5
        vocab_size = 256
        max_len = 16
        dim = 32
        depth = 1
        [[inputs]]
        name = "input_ids"
        shape = [1, 16]
        dtype = "int64"
        dynamic = { "0" = "batch" }
        high = 256
    '''))
    out = tmp_path / "o"
    export_model(load_model(str(card), checkpoint=ckpt), out, ("onnx", "tflite"))
    assert _exported_from_checkpoint(out / "tiny-gem.fp32.onnx")
    plain = tmp_path / "plain"
    export_model(str(card), plain, ("onnx",))
    assert not _exported_from_checkpoint(plain / "tiny-gem.fp32.onnx")
    info = artifact_inputs(out / "tiny-gem.fp32.tflite", "tflite")  # the card says dynamic batch; the file is static
    assert info.batch == 1 and info.seq_len == 16
    assert Path(out / "manifest.json").is_file()


def test_eval_data_figures_reach_the_report_per_artifact(outlier, tmp_path):
    """--eval-data stores each artifact's figures as an eval run of that file (scores macro_f1 and accuracy = top-1,
    the shape `edgekit eval ARTIFACT` stores), so `edgekit report` shows both per artifact, each with its delta vs
    the fp32 twin, beside latency and size (Markdown table and CSV)."""
    from edgekit.files import file_sha256
    from edgekit.store import ResultsStore

    ref, data = outlier
    out = tmp_path / "o"
    manifest = export_model(ref, out, ("onnx",), ("int8",), input_options=INPUT, eval_data=data)
    acc = {a.precision: a.details["accuracy"] for a in manifest.artifacts}
    with ResultsStore(None, read_only=True) as store:
        for precision, figures in acc.items():
            art = manifest.find("onnx", precision)
            run = next(r for r in store.list_runs(kind="eval") if r.id == figures["eval_run"])
            assert run.artifact_sha256 == file_sha256(out / art.path) and run.precision == precision
            scores = {s.metric: s.score for s in store.scores(run_id=run.id)}
            assert scores == pytest.approx({"accuracy": figures["value"], "macro_f1": figures["macro_f1"]})
    assert acc["int8"]["macro_f1"] < acc["fp32"]["macro_f1"] - 0.1  # the outlier layer costs int8 dearly
    bench = _cli("bench", str(out), "--runs", "3", "--warmup", "1", "--max-time", "1", "--threads", "1",
                 "--energy", "none")
    assert bench.returncode == 0, bench.stderr
    rep = _cli("report", "--last", "2", "--format", "md,csv", "--out", str(tmp_path / "rep"))
    assert rep.returncode == 0, rep.stderr
    lines = (tmp_path / "rep.md").read_text().splitlines()
    head = [c.strip() for c in next(ln for ln in lines if ln.startswith("| target |")).strip("|").split("|")]
    rows = {}
    for line in lines:
        if line.startswith("| local | onnx |"):
            cells = dict(zip(head, (c.strip() for c in line.strip("|").split("|")), strict=True))
            rows[cells["precision"]] = cells
    f1 = {p: acc[p]["macro_f1"] for p in acc}
    top1 = {p: acc[p]["value"] for p in acc}
    assert top1["int8"] < top1["fp32"] - 0.05  # a delta the table can show at 3 decimals
    assert rows["fp32"]["macro-F1"] == f"{f1['fp32']:.3f} (variant)"
    assert rows["int8"]["macro-F1"] == f"{f1['int8']:.3f} (variant)"
    assert rows["int8"]["Δ macro-F1 vs fp32"] == f"{f1['int8'] - f1['fp32']:+.3f}"
    assert rows["fp32"]["top-1"] == f"{top1['fp32']:.3f} (variant)"
    assert rows["int8"]["top-1"] == f"{top1['int8']:.3f} (variant)"
    assert rows["int8"]["Δ top-1 vs fp32"] == f"{top1['int8'] - top1['fp32']:+.3f}"
    assert rows["fp32"]["Δ top-1 vs fp32"] == "—"  # no PyTorch evaluation stored: the fp32 row claims no delta
    import csv

    by = {r["precision"]: r for r in csv.DictReader((tmp_path / "rep.csv").open())}
    assert float(by["int8"]["top1"]) == pytest.approx(top1["int8"]) and by["int8"]["top1_scope"] == "variant"
    assert float(by["int8"]["accuracy"]) == pytest.approx(f1["int8"]) and by["int8"]["accuracy_metric"] == "macro_f1"
