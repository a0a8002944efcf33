"""Name registry of the 3D segmentation networks (timm's ``register_model`` / ``create_model``).

A network class or builder is filed once under a unique name and constructed through
:func:`build`. Keyword arguments that are ``None`` are dropped before the call, so an unset
command-line flag never overrides a network's own default (``num_classes`` included: softmax
networks default to 4 classes, region-sigmoid ones to 3).
"""
from __future__ import annotations

import difflib
import fnmatch
from typing import Any, Callable

from torch import nn

ModelBuilder = Callable[..., nn.Module]
_MODELS: dict[str, ModelBuilder] = {}


def register_model(name: str) -> Callable[[ModelBuilder], ModelBuilder]:
    """Decorator filing a network class or builder under ``name``; duplicates are an error."""

    def decorator(builder: ModelBuilder) -> ModelBuilder:
        if name in _MODELS:
            raise ValueError(f"model {name!r} is already registered (by {_MODELS[name]!r})")
        _MODELS[name] = builder
        return builder

    return decorator


def list_models(pattern: str = "*") -> list[str]:
    """Registered network names matching a shell-style pattern, sorted."""
    return sorted(name for name in _MODELS if fnmatch.fnmatch(name, pattern))


def build(name: str, in_channels: int = 4, num_classes: int | None = None,
          **kwargs: Any) -> nn.Module:
    """Build the network ``name`` for ``in_channels`` input modalities.

    ``num_classes=None`` keeps the network's default; every other keyword goes to its
    constructor (``None`` values are dropped). The network returns logits and exposes
    ``output_activation`` ("softmax" or "sigmoid") and ``num_classes``.
    """
    if name not in _MODELS:
        close = difflib.get_close_matches(str(name), list(_MODELS), n=3)
        hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
        raise ValueError(f"unknown model {name!r}.{hint} Valid: {', '.join(list_models())}")
    kwargs = {key: value for key, value in kwargs.items() if value is not None}
    if num_classes is not None:
        kwargs["num_classes"] = num_classes
    return _MODELS[name](in_channels=in_channels, **kwargs)
