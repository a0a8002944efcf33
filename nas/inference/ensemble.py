"""An ensemble of networks of one output (the folds of a cross-validation): the mean of their
probabilities, served as a network.

``FoldEnsemble`` returns, in place of logits, the logits of that mean (sigmoid: ``logit(p)``,
softmax: ``log(p)``), so whatever turns a network's logits into probabilities (sliding
windows, flip TTA, prediction, an exported file's user) gets the mean of the members'
probabilities back, and everything written for one network serves the ensemble unchanged.
Averaging is linear, so TTA composes: the mean over the flips of the ensemble is the mean over
the members of each member's flip-averaged probabilities, as nnU-Net ensembles its folds.
"""
from __future__ import annotations

import math
from typing import Sequence

import torch
from torch import nn

from .volume import ACTIVATIONS, output_activation

#: Probabilities are kept this far from 0 and 1 before their logits are taken (float32's
#: resolution near 1 is 6e-8): the activation gives the mean back within 1e-7.
PROBABILITY_FLOOR = 1e-7


def probabilities_to_logits(probabilities: torch.Tensor, activation: str) -> torch.Tensor:
    """Logits whose ``activation`` is ``probabilities`` (channel axis 1): the inverse of
    :data:`ACTIVATIONS`, up to :data:`PROBABILITY_FLOOR`."""
    floor = PROBABILITY_FLOOR if probabilities.dtype != torch.float64 else 1e-300
    if activation == "sigmoid":
        clamped = probabilities.clamp(floor, 1 - floor)
        return torch.log(clamped) - torch.log1p(-clamped)
    if activation == "softmax":
        return torch.log(probabilities.clamp_min(floor))
    raise ValueError(f"unknown activation {activation!r}; expected one of {', '.join(ACTIVATIONS)}")


class FoldEnsemble(nn.Module):
    """The mean of ``members``' probabilities (each its own network of the same inputs and
    outputs), returned as logits (:func:`probabilities_to_logits`). ``output_activation`` and
    ``num_classes`` are the members'; ``size_multiple`` the least common multiple of theirs."""

    def __init__(self, members: Sequence[nn.Module]) -> None:
        super().__init__()
        if not members:
            raise ValueError("an ensemble needs at least one network")
        activations = {output_activation(member) for member in members}
        if len(activations) != 1:
            raise ValueError(f"the networks end in different activations ({', '.join(sorted(activations))}); "
                             "an ensemble averages probabilities of one kind")
        self.members = nn.ModuleList(members)
        self.output_activation = activations.pop()
        self.num_classes = getattr(members[0], "num_classes", None)
        self.spatial_dims = getattr(members[0], "spatial_dims", None)
        self.size_multiple = math.lcm(*(int(getattr(member, "size_multiple", 1)) for member in members))

    def member_probabilities(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Each member's probabilities of ``x`` (float32, or the input's float64)."""
        activation = ACTIVATIONS[self.output_activation]
        dtype = torch.float64 if x.dtype == torch.float64 else torch.float32
        return [activation(member(x).to(dtype)) for member in self.members]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        probabilities = self.member_probabilities(x)
        mean = torch.stack(probabilities).mean(0)
        return probabilities_to_logits(mean, self.output_activation)


__all__ = ["PROBABILITY_FLOOR", "FoldEnsemble", "probabilities_to_logits"]
