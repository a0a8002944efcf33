"""A fold ensemble's probabilities are the mean of its folds' own (float64, exactly), and with
flip TTA and sliding windows composed: each fold's TTA average, then the mean."""
import pytest
import torch
from torch import nn

from nas.inference import ACTIVATIONS, FoldEnsemble, predict_probabilities, probabilities_to_logits


class _Tiny(nn.Module):
    """A conv net of its own seed, asymmetric enough that flips change its output."""

    def __init__(self, seed, activation, classes, spatial_dims=2):
        super().__init__()
        torch.manual_seed(seed)
        conv = nn.Conv2d if spatial_dims == 2 else nn.Conv3d
        self.body = nn.Sequential(conv(2, 4, 3, padding=1), nn.Tanh(), conv(4, classes, 3, padding=1))
        self.output_activation, self.num_classes = activation, classes

    def forward(self, x):
        return 3.0 * self.body(x)


@pytest.mark.parametrize("activation, classes", [("sigmoid", 2), ("softmax", 3)])
def test_the_ensemble_returns_the_mean_of_its_members_probabilities(float64, activation, classes):
    members = [_Tiny(seed, activation, classes) for seed in range(3)]
    ensemble = FoldEnsemble(members).eval()
    x = torch.randn(2, 2, 12, 12)
    expected = torch.stack([ACTIVATIONS[activation](member(x)) for member in members]).mean(0)
    assert ensemble.output_activation == activation and ensemble.num_classes == classes
    assert torch.allclose(ACTIVATIONS[activation](ensemble(x)), expected, rtol=0, atol=1e-12)


@pytest.mark.parametrize("activation, classes", [("sigmoid", 1), ("softmax", 3)])
def test_tta_and_sliding_windows_compose_fold_by_fold(float64, activation, classes):
    members = [_Tiny(seed, activation, classes, spatial_dims=3).eval() for seed in range(3)]
    volume = torch.randn(2, 10, 9, 11)
    options = dict(overlap=0.5, tta=True)
    each = torch.stack([predict_probabilities(member, volume, (6, 6, 6), **options) for member in members])
    together = predict_probabilities(FoldEnsemble(members), volume, (6, 6, 6), **options)
    # the flips are averaged in float32 (nas.inference.predict_with_flips): equal to its rounding
    assert torch.allclose(together, each.mean(0), rtol=0, atol=1e-6)
    # and not what averaging the logits would give: the rule is the mean of probabilities
    logits = torch.stack([member(volume[None]) for member in members]).mean(0)
    assert not torch.allclose(ACTIVATIONS[activation](logits)[0], each.mean(0), atol=1e-3)


def test_logits_of_probabilities_invert_the_activation():
    probabilities = torch.tensor([[[0.0, 1e-9, 0.3, 1.0]]]).unsqueeze(1)
    back = torch.sigmoid(probabilities_to_logits(probabilities, "sigmoid"))
    assert torch.allclose(back, probabilities, atol=2e-7) and torch.isfinite(back).all()
    with pytest.raises(ValueError, match="different activations"):
        FoldEnsemble([_Tiny(0, "sigmoid", 1), _Tiny(1, "softmax", 2)])
