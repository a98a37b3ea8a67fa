"""The sparse export of SCAR (GEMConfig.scar_export = "sparse", card gem-tiny-sparse): a graph whose cost follows the
routing. Tiny configs, a few seconds each."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from edgekit.export.pipeline import export_model
from edgekit.modelsource import load_model
from edgekit.specs import find_card
from edgekit.zoo import create_model
from edgekit.zoo.gem import GEMConfig

TINY = {"vocab_size": 256, "max_len": 16, "dim": 32, "depth": 2, "heads": 2, "unit_widths": [8, 16, 32, 64],
        "key_dim": 8, "num_classes": 4}


def _card(tmp_path, export: str = "sparse", **config) -> str:
    """A card for a tiny gem-tiny with the given SCAR export form."""
    cfg = {**TINY, "scar_export": export, **config}
    lines = [f"{k} = {json.dumps(v)}" for k, v in cfg.items()]
    path = tmp_path / f"gem-{export}.toml"
    path.write_text("\n".join([
        f'name = "gem-{export}"', 'model = "gem-tiny"', 'task = "classification"', 'paper = "arXiv:2503.22698"',
        'outputs = ["logits"]', "", "[config]", *lines, "", "[[inputs]]", 'name = "input_ids"', "shape = [1, 16]",
        'dtype = "int64"', 'dynamic = { "0" = "batch" }', "low = 0", "high = 256", ""]))
    return str(path)


def _session(path, profile: bool = False):
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.enable_profiling = profile
    opts.profile_file_prefix = str(path.parent / "ort_profile")  # beside the artifact, not in the working directory
    opts.intra_op_num_threads = 1
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])


def test_sparse_onnx_exports_and_matches_the_eager_sparse_and_static_paths(tmp_path):
    loaded = load_model(_card(tmp_path))
    manifest = export_model(loaded, tmp_path / "out", ("onnx",), reuse=False)
    art = manifest.find("onnx", "fp32")
    assert art.status == "ok" and art.parity.verdict == "pass", (art.error, art.parity)
    session = _session(tmp_path / "out" / art.path)
    ops = {n.op_type for n in __import__("onnx").load(str(tmp_path / "out" / art.path)).graph.node}
    assert {"NonZero", "ScatterND"} <= ops, "the SCAR units run on gathered rows"
    model = loaded.module
    ids = torch.randint(0, 256, (3, 16), generator=torch.Generator().manual_seed(1))
    got = session.run(None, {"input_ids": ids.numpy()})[0]  # batch 3: the dynamic axis
    with torch.no_grad():
        sparse = model(ids).numpy()
        model.static = True
        static = model(ids).numpy()
        model.static = False
    np.testing.assert_allclose(got, sparse, atol=1e-6, rtol=0)
    np.testing.assert_allclose(got, static, atol=1e-6, rtol=0)


def _unit_rows(profile_file: str) -> dict[tuple[int, int], list[int]]:
    """(block, unit) -> rows each of the unit's fc1 Gemm/MatMul saw, from onnxruntime's profile."""
    rows: dict[tuple[int, int], list[int]] = {}
    for event in json.loads(open(profile_file).read()):
        name = event.get("name", "")
        if event.get("cat") != "Node" or ".fc1/" not in name or not name.endswith("_kernel_time") \
                or event["args"].get("op_name") not in ("Gemm", "MatMul"):
            continue
        parts = name.split("/")[0].split(".")  # blocks.B.ffn.units.U.fc1
        shape = next(iter(event["args"]["input_type_shape"][0].values()))
        rows.setdefault((int(parts[1]), int(parts[4])), []).append(int(np.prod(shape[:-1])))
    return rows


@pytest.mark.parametrize("export", ["sparse", "static"])
def test_executed_cost_follows_the_routing(tmp_path, export):
    """Every token routed to one unit per layer: in the sparse artifact the other units' MatMuls see zero rows (read
    from onnxruntime's profile); in the static one every unit sees every row."""
    loaded = load_model(_card(tmp_path, export, top_k=1))
    model = loaded.module
    for block in model.blocks:  # a constant SCAR input: every token picks the same unit
        torch.nn.init.zeros_(block.norm2.weight)
        torch.nn.init.normal_(block.norm2.bias, generator=torch.Generator().manual_seed(3))
    manifest = export_model(loaded, tmp_path / "out", ("onnx",), reuse=False)
    art = manifest.find("onnx", "fp32")
    assert art.status == "ok" and art.parity.verdict == "pass", (art.error, art.parity)
    ids = torch.randint(0, 256, (2, 16), generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        model(ids)
    chosen = [int(np.argmax(s.unit_fraction)) for s in model.routing_stats()]
    assert all(max(s.unit_fraction) == 1.0 for s in model.routing_stats())
    session = _session(tmp_path / "out" / art.path, profile=True)
    session.run(None, {"input_ids": ids.numpy()})
    rows = _unit_rows(session.end_profiling())
    assert len(rows) == 2 * 4, rows
    for (block, unit), seen in rows.items():
        expected = 32 if export == "static" or unit == chosen[block] else 0
        assert seen == [expected], (block, unit, seen)


def test_tflite_refuses_the_sparse_graph_in_one_line_and_coreml_converts(tmp_path):
    manifest = export_model(_card(tmp_path), tmp_path / "out", ("tflite", "coreml"), reuse=False)
    tfl = manifest.find("tflite", "fp32")
    assert tfl.status == "failed" and "\n" not in tfl.error
    assert tfl.error.startswith("tflite cannot express operator aten.nonzero") and "fix:" in tfl.error
    coreml = manifest.find("coreml", "fp32")
    assert coreml.status == "ok", coreml.error
    assert coreml.parity.verdict in ("pass", "not-executed")


def test_card_and_config():
    card = find_card("gem-tiny-sparse")
    assert card is not None and card.model == "gem-tiny" and card.config["scar_export"] == "sparse"
    assert "onnx" in card.formats and "tflite" in card.unsupported and "aten.nonzero" in card.unsupported["tflite"]
    torch.manual_seed(0)
    sparse = create_model(card.model, **card.config)
    torch.manual_seed(0)
    static = create_model("gem-tiny")
    assert sparse.scar_export == "sparse" and static.scar_export == "static"
    for a, b in zip(sparse.state_dict().values(), static.state_dict().values(), strict=True):
        assert torch.equal(a, b), "same seed, same weights: only the exported graph differs"
    static.scar_export = "sparse"
    assert all(layer.export == "sparse" for layer in static.scar_layers())
    with pytest.raises(ValueError, match="scar_export"):
        GEMConfig(scar_export="dense")
    with pytest.raises(ValueError, match="scar_export"):
        static.scar_export = "fast"
