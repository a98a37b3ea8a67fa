"""The model zoo: one file per architecture, registered with `@register_model`."""

from edgekit.zoo.registry import create_model, list_models, register_model

__all__ = ["create_model", "list_models", "register_model"]
