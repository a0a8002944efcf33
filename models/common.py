"""What every network of the package shares: any-size inputs and the fiber nets' initialisation."""
from __future__ import annotations

import torch
from torch import nn
from torch.nn.modules.conv import _ConvNd

#: The activation that turns each network's logits into probabilities.
OUTPUT_ACTIVATIONS = ("softmax", "sigmoid")


def pad_to_multiple(x: torch.Tensor, multiple: int) -> torch.Tensor:
    """Zero-pad every spatial axis at its end up to a multiple of ``multiple``.

    An encoder that halves the size k times needs multiples of 2^k for its decoder's
    upsampled maps to line up with the skips; networks pad, run, then crop the logits back
    with ``ops.pad_to_match`` so any input size works. Zero is the background value of
    z-scored MRI, so the padding reads as empty space.
    """
    pad: list[int] = []
    for size in reversed(x.shape[2:]):
        pad += [0, -size % multiple]
    return nn.functional.pad(x, pad) if any(pad) else x


def kaiming_initialise(module: nn.Module) -> nn.Module:
    """He-normal conv weights and unit/zero norm affines, as DMFNet's and MFS-Net's code do
    (their pre-activation units start from unit-variance signals at every ReLU)."""
    for layer in module.modules():
        if isinstance(layer, _ConvNd):
            nn.init.kaiming_normal_(layer.weight)
            if layer.bias is not None:
                nn.init.zeros_(layer.bias)
        elif isinstance(layer, (nn.modules.batchnorm._NormBase, nn.GroupNorm)):
            if layer.weight is not None:
                nn.init.ones_(layer.weight)
                nn.init.zeros_(layer.bias)
    return module
