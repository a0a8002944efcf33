"""The hand-written sliding window against MONAI's ``sliding_window_inference`` (a test-only
dependency). The two place windows alike where the volume is a whole number of steps plus one
window; elsewhere ours spreads the windows evenly (nnU-Net), MONAI packs them from the start,
so the comparison is made on such volumes, and the difference is shown where they part."""
from __future__ import annotations

import warnings

import pytest
import torch
from monai.data.utils import compute_importance_map
from monai.inferers import sliding_window_inference as monai_sliding_window

from nas import inference

ROI = (17, 17, 17)  # odd: both centre the Gaussian on the middle voxel


def _position_dependent(batch: torch.Tensor) -> torch.Tensor:
    """Two output channels that depend on where the window lies (its mean) and nonlinearly
    on the voxel, so a different window layout gives a different result."""
    window_mean = batch.mean(dim=(2, 3, 4), keepdim=True)
    return torch.cat([(batch - window_mean).sum(1, keepdim=True) ** 2, 3 * batch[:, :1] * window_mean[:, 1:]],
                     dim=1)


def _monai(volume: torch.Tensor, roi, mode: str, sw_batch_size: int = 1) -> torch.Tensor:
    # MONAI weighs windows with our importance map, so the windowing and the weighted average
    # are compared exactly; the two Gaussians themselves are compared below
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return monai_sliding_window(volume, roi, sw_batch_size, _position_dependent, overlap=0.5,
                                    mode=mode, roi_weight_map=inference.importance_map(roi, mode))


@pytest.mark.parametrize("mode", ["constant", "gaussian"])
@pytest.mark.parametrize("sw_batch_size", [1, 3])
def test_matches_monai_where_the_window_layouts_agree(mode, sw_batch_size) -> None:
    generator = torch.Generator().manual_seed(0)
    # 41 = 17 + 3 * 8, 33 = 17 + 2 * 8, 25 = 17 + 8: MONAI's step int(17 * 0.5) = 8 fits exactly
    volume = torch.randn(2, 2, 41, 33, 25, generator=generator)
    assert inference.window_starts(41, 17, 0.5) == [0, 8, 16, 24]
    ours = inference.sliding_window_inference(volume, ROI, _position_dependent, overlap=0.5,
                                              mode=mode, sw_batch_size=sw_batch_size)
    theirs = _monai(volume, ROI, mode, sw_batch_size)
    assert ours.shape == theirs.shape == (2, 2, 41, 33, 25)
    assert torch.allclose(ours, theirs, rtol=1e-5, atol=1e-5)


def test_gaussian_importance_matches_monai_to_a_fifth_of_a_percent() -> None:
    # MONAI filters a delta, ours samples the density: they differ slightly
    ours = inference.importance_map(ROI, "gaussian", sigma_scale=0.125)
    theirs = compute_importance_map(ROI, mode="gaussian", sigma_scale=0.125)
    assert ours.argmax() == theirs.argmax()
    assert (ours - theirs).abs().max() < 2e-3


def test_where_layouts_part_both_still_cover_every_voxel_but_differ() -> None:
    # 45 = 16 + 29: 29 is not a multiple of MONAI's step 8
    starts = inference.window_starts(45, 16, 0.5)
    assert starts == [0, 7, 14, 22, 29]  # evenly spread (29 / 4 apart, rounded)
    volume = torch.randn(1, 2, 45, 16, 16, generator=torch.Generator().manual_seed(1))
    ours = inference.sliding_window_inference(volume, (16, 16, 16), _position_dependent,
                                              mode="constant")
    theirs = _monai(volume, (16, 16, 16), "constant")
    assert torch.isfinite(ours).all() and torch.isfinite(theirs).all()
    assert not torch.allclose(ours, theirs, atol=1e-3)  # the layouts do differ here
