"""What `edgekit models list/show` report: each model card with its parameters and MACs for the card's inputs."""

from __future__ import annotations

import fnmatch
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from edgekit.errors import EdgekitError
from edgekit.specs import ModelCard, card_files, find_card, list_cards, load_card


@dataclass
class ModelInfo:
    """One model card plus the figures measured by building the model (untrained weights, seeded).

    macs: multiply-accumulates of one forward pass on the card's inputs, as exported (for GEM: the static graph, which
    runs every SCAR unit on every token; with scar_export = "sparse", the routed units only). macs_sparse: GEM's eager
    sparse path on the same inputs (only the units each token kept); None for models without a router.
    units_per_token: GEM's mean units per token on that input.
    """

    name: str
    model: str
    task: str
    description: str
    paper: str
    params: int
    macs: int
    formats: list[str]
    unsupported: dict[str, str]
    inputs: list[dict[str, Any]]
    outputs: list[str]
    config: dict[str, Any] = field(default_factory=dict)
    budgets: dict[str, float] = field(default_factory=dict)
    domain: str | None = None
    labels: list[str] = field(default_factory=list)
    macs_sparse: int | None = None
    units_per_token: float | None = None
    high_precision_modules: list[str] = field(default_factory=list)
    source: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def resolve_card(name: str) -> ModelCard:
    """A card by name (models/NAME.toml) or by path; unknown names raise one EdgekitError listing the cards."""
    if name.endswith(".toml"):
        return load_card(Path(name))
    card = find_card(name)
    if card is not None:
        return card
    names = sorted(card_files())
    raise EdgekitError(
        f"no model card named {name!r}",
        f"pick one of: {', '.join(names)} (or pass a path to a .toml card)",
    )


def describe_card(card: ModelCard, seed: int = 0) -> ModelInfo:
    """Build the card's model (seeded) and measure its parameters, MACs and, for GEM, its routing."""
    from edgekit.zoo import create_model
    from edgekit.zoo.flops import count_macs, example_inputs

    torch.manual_seed(seed)
    model = create_model(card.model, **card.config)
    inputs = example_inputs(card.inputs, seed)
    macs_sparse = units = None
    hp: list[str] = []
    routed = callable(getattr(model, "units_per_token", None)) and bool(getattr(model, "scar_layers", list)())
    try:
        if routed:
            macs_sparse = count_macs(model, inputs).macs  # eager: the sparse path, records the routing
            units = model.units_per_token()
            model.static = getattr(model, "scar_export", "static") == "static"  # a sparse export runs the sparse path
        cost = count_macs(model, inputs)
    except Exception as exc:
        raise EdgekitError(
            f"model card {card.name} does not run on its own inputs ({type(exc).__name__}: {str(exc)[:160]})",
            f"fix [[inputs]] in {card.source or 'the card'} to match {card.model}'s forward()",
        ) from exc
    finally:
        if routed:
            model.static = False
    fn = getattr(model, "high_precision_modules", None)
    if callable(fn):
        hp = list(fn())
    return ModelInfo(
        name=card.name,
        model=card.model,
        task=card.task,
        description=card.description,
        paper=card.paper,
        params=cost.params,
        macs=cost.macs,
        formats=list(card.formats),
        unsupported=dict(card.unsupported),
        inputs=[s.to_dict() for s in card.inputs],
        outputs=list(card.outputs),
        config=dict(card.config),
        budgets=dict(card.budgets),
        domain=card.domain,
        labels=list(card.labels),
        macs_sparse=macs_sparse,
        units_per_token=units,
        high_precision_modules=hp,
        source=card.source,
    )


def list_infos(pattern: str = "*", seed: int = 0) -> list[ModelInfo]:
    """Every built-in card whose name matches the glob `pattern`, described."""
    from edgekit.zoo.minilm import needs_missing_extra  # cards of the optional pretrained MiniLM

    return [
        describe_card(c, seed)
        for c in list_cards()
        if fnmatch.fnmatch(c.name, pattern) and not needs_missing_extra(c.model)
    ]
