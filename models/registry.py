"""Name registry of the 3D segmentation networks (timm's ``register_model`` / ``create_model``).

A network class or builder is filed once under a unique name and constructed through
:func:`build`. Keyword arguments that are ``None`` are dropped before the call, so an unset
command-line flag never overrides a network's own default (``num_classes`` included: softmax
networks default to 4 classes, region-sigmoid ones to 3).
"""
from __future__ import annotations

from typing import Any, Callable

from torch import nn

from ops import Registry

ModelBuilder = Callable[..., nn.Module]
MODELS: Registry[ModelBuilder] = Registry("model")
register_model = MODELS.register
list_models = MODELS.names


def build(name: str, in_channels: int = 4, num_classes: int | None = None,
          **kwargs: Any) -> nn.Module:
    """Build the network ``name`` for ``in_channels`` input modalities.

    ``num_classes=None`` keeps the network's default; every other keyword goes to its
    constructor (``None`` values are dropped). The network returns logits and exposes
    ``output_activation`` ("softmax" or "sigmoid") and ``num_classes``.
    """
    builder = MODELS.lookup(name)
    kwargs = {key: value for key, value in kwargs.items() if value is not None}
    if num_classes is not None:
        kwargs["num_classes"] = num_classes
    return builder(in_channels=in_channels, **kwargs)
