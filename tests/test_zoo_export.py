"""Every model card exports through the export pipeline (`edgekit export`) to each format it declares, with parity;
formats a card marks unsupported fail with the clear unsupported-operator message."""

from __future__ import annotations

import pytest

from edgekit.export.pipeline import export_model
from edgekit.specs import list_cards

CARDS = {c.name: c for c in list_cards()}


def _check_declared_formats(name: str, out_dir) -> None:
    card = CARDS[name]
    manifest = export_model(name, out_dir, tuple(card.formats), reuse=False)
    for fmt in card.formats:
        art = manifest.find(fmt, "fp32")
        assert art is not None and art.status == "ok", f"{name} {fmt}: {art and art.error}"
        if fmt == "coreml":  # converted and validated; CoreML executes only on macOS
            assert art.parity.verdict in ("pass", "not-executed"), art.parity.note
        else:
            assert art.parity.verdict == "pass", f"{name} {fmt}: {art.parity}"
            assert art.parity.n_inputs >= 1


def test_gem_tiny_exports_to_every_format_with_parity(tmp_path):
    _check_declared_formats("gem-tiny", tmp_path)


def test_card_unsupported_formats_fail_with_the_operator_named(tmp_path):
    card = CARDS["dfir-detr-fft"]
    assert set(card.unsupported) == {"tflite", "coreml"}
    manifest = export_model("dfir-detr-fft", tmp_path, tuple(card.unsupported), reuse=False)
    for fmt in card.unsupported:
        art = manifest.find(fmt, "fp32")
        assert art.status == "failed"
        assert f"{fmt} cannot express operator aten.fft_rfft2" in art.error and "fix:" in art.error
        assert art.details.get("card_note") == card.unsupported[fmt]


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(CARDS))
def test_every_card_exports_to_its_formats_with_parity(name, tmp_path):
    _check_declared_formats(name, tmp_path)
