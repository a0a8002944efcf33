"""The hand-written surface distances against MONAI's (a test-only dependency): HD, HD95 and
ASSD of random blobs, anisotropic spacing, 2D and 3D, blobs touching the array border."""
from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from monai import metrics as monai_metrics
from scipy import ndimage

from nas import metrics


def _blobs(rng: np.random.Generator, shape: tuple[int, ...], seeds: float) -> np.ndarray:
    mask = ndimage.binary_dilation(rng.random(shape) > 1.0 - seeds, iterations=2)
    assert mask.any() and not mask.all()
    return mask


def _monai_scores(pred: np.ndarray, truth: np.ndarray, spacing: tuple[float, ...]) -> dict[str, float]:
    as_batch = lambda mask: torch.from_numpy(mask)[None, None].float()  # noqa: E731
    pair = dict(y_pred=as_batch(pred), y=as_batch(truth), include_background=True, spacing=spacing)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # MONAI's deprecation notes are not ours
        return {"hd": monai_metrics.compute_hausdorff_distance(**pair).item(),
                "hd95": monai_metrics.compute_hausdorff_distance(percentile=95, **pair).item(),
                "assd": monai_metrics.compute_average_surface_distance(symmetric=True, **pair).item()}


@pytest.mark.parametrize("shape, spacing", [((24, 20, 16), (1.0, 0.7, 2.5)), ((40, 36), (0.5, 1.5)),
                                            ((12, 12, 12), (1.0, 1.0, 1.0))])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_surface_distances_match_monai(shape, spacing, seed) -> None:
    rng = np.random.default_rng(seed)
    # dense seeds on the small volume put blobs against the array border
    density = 0.02 if np.prod(shape) < 2000 else 0.005
    pred, truth = _blobs(rng, shape, density), _blobs(rng, shape, density)
    ours = metrics.surface_distance_scores(pred, truth, spacing)
    theirs = _monai_scores(pred, truth, spacing)
    for name in ("hd", "hd95", "assd"):
        # MONAI computes in float32
        assert ours[name] == pytest.approx(theirs[name], rel=1e-5, abs=1e-5), name
    assert ours["hd"] > ours["hd95"] > ours["assd"] > 0  # blobs that differ: none collapses
