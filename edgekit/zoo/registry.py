"""Model registry in the style of timm: `@register_model`, `create_model(name, **cfg)`, `list_models(pattern)`.

Architectures live one per file in edgekit/zoo/ and are imported lazily, on the first lookup, so the CLI starts fast.
"""

from __future__ import annotations

import fnmatch
import importlib
import warnings
from collections.abc import Callable
from dataclasses import dataclass

from torch import nn

from edgekit.errors import EdgekitError

# Architecture modules under edgekit.zoo; each registers its factories when imported.
ARCHITECTURE_MODULES: tuple[str, ...] = (
    "gem",
    "crossvit",
    "crossformer",
    "biformer",
    "moh",
    "infnet",
    "catanet",
    "transnormer",
    "fit",
    "dfir_detr",
    "minilm",
)


@dataclass(frozen=True)
class RegisteredModel:
    name: str
    factory: Callable[..., nn.Module]
    module: str


class ModelRegistry:
    """Name -> factory. One instance (`REGISTRY`) backs the module-level helpers."""

    def __init__(self, modules: tuple[str, ...]) -> None:
        self._entries: dict[str, RegisteredModel] = {}
        self._modules = modules
        self._loaded = False

    def register(self, fn: Callable[..., nn.Module], name: str | None = None) -> Callable[..., nn.Module]:
        key = name or fn.__name__.replace("_", "-")
        if key in self._entries:
            warnings.warn(f"model {key!r} registered twice; the later definition wins", stacklevel=3)
        self._entries[key] = RegisteredModel(key, fn, fn.__module__)
        return fn

    def _load(self) -> None:
        if self._loaded:
            return
        self._loaded = True
        for mod in self._modules:
            try:
                importlib.import_module(f"edgekit.zoo.{mod}")
            except ModuleNotFoundError as exc:
                if exc.name != f"edgekit.zoo.{mod}":
                    raise

    def names(self, pattern: str = "*") -> list[str]:
        self._load()
        return sorted(n for n in self._entries if fnmatch.fnmatch(n, pattern))

    def get(self, name: str) -> RegisteredModel:
        self._load()
        if name not in self._entries:
            raise EdgekitError(
                f"unknown model {name!r}", f"pick one of `edgekit models list` ({', '.join(sorted(self._entries))})"
            )
        return self._entries[name]


REGISTRY = ModelRegistry(ARCHITECTURE_MODULES)


def register_model(fn: Callable[..., nn.Module] | None = None, *, name: str | None = None):
    """Decorator: `@register_model` (name = function name with - for _) or `@register_model(name="x")`."""
    if fn is None:
        return lambda f: REGISTRY.register(f, name)
    return REGISTRY.register(fn, name)


def create_model(name: str, **cfg) -> nn.Module:
    """Build a registered model in eval mode. `cfg` overrides the factory's defaults."""
    entry = REGISTRY.get(name)
    model = entry.factory(**cfg)
    if not isinstance(model, nn.Module):
        raise EdgekitError(f"zoo factory {name!r} returned {type(model).__name__}, not an nn.Module", "fix the factory")
    return model.eval()


def list_models(pattern: str = "*") -> list[str]:
    return REGISTRY.names(pattern)
