"""A network's output as BraTS labels: probabilities or region channels -> labels 0/1/2/4, seed
000's removal of small enhancing tumours, and labels written in a release's own convention (ET 3
from 2023)."""

from __future__ import annotations

from typing import Union

import numpy as np
import torch

from data.brats import BRATS_REGION_ORDER, ENHANCING_LABEL, ET_THRESHOLD, LAYOUTS
from data.prediction.label_maps import THRESHOLD, paint_regions

ArrayLike = Union[torch.Tensor, np.ndarray]


def _as_tensor(array: ArrayLike) -> tuple[torch.Tensor, bool]:
    if isinstance(array, np.ndarray):
        return torch.from_numpy(np.ascontiguousarray(array)), True
    return array, False


def _like_input(labels: torch.Tensor, was_numpy: bool) -> ArrayLike:
    return labels.cpu().numpy() if was_numpy else labels


def brats_regions_to_labels(regions: np.ndarray, threshold: float = THRESHOLD) -> np.ndarray:
    """Region channels (3, ...) WT/TC/ET (probabilities or masks) -> uint8 labels 0/1/2/4.

    Nested by construction: ET wins over TC, TC over WT, as in the challenge's
    own conversion (`BRATS_REGION_ORDER`).
    """
    return paint_regions(np.asarray(regions), BRATS_REGION_ORDER, threshold)


def brats_probabilities_to_labels(probabilities: ArrayLike, activation: str = "softmax",
                                  channel_dim: int = 0, threshold: float = THRESHOLD,
                                  enhancing_label: int = ENHANCING_LABEL) -> ArrayLike:
    """BraTS label map (uint8) from a network's per-channel output; the channel axis goes.

    - ``"softmax"``: channels are classes 0 background, 1 necrosis/non-enhancing core,
      2 oedema, 3 enhancing tumour; the argmax becomes labels 0/1/2/``enhancing_label``
      (4 up to BraTS 2021, 3 from 2023).
    - ``"sigmoid"``: channels are the nested regions WT, TC, ET, each present above
      ``threshold``; a voxel takes the label of the innermost region it is in: ET ->
      ``enhancing_label``, else TC -> 1, else WT -> 2 (nnU-Net's region order), so the regions
      read back from the labels are nested (ET inside TC inside WT).

    Accepts a torch tensor or numpy array and returns the same kind.
    """
    probabilities, was_numpy = _as_tensor(probabilities)
    if activation == "softmax":
        if probabilities.shape[channel_dim] != 4:
            raise ValueError(f"softmax output needs 4 class channels, got "
                             f"{probabilities.shape[channel_dim]}")
        lookup = torch.tensor([0, 1, 2, enhancing_label], dtype=torch.uint8,
                              device=probabilities.device)
        labels = lookup[probabilities.argmax(dim=channel_dim)]
    elif activation == "sigmoid":
        if probabilities.shape[channel_dim] != 3:
            raise ValueError(f"sigmoid output needs 3 region channels (WT, TC, ET), got "
                             f"{probabilities.shape[channel_dim]}")
        order = tuple(enhancing_label if value == ENHANCING_LABEL else value for value in BRATS_REGION_ORDER)
        labels = paint_regions(probabilities.movedim(channel_dim, 0), order, threshold)
    else:
        raise ValueError(f"activation must be 'softmax' or 'sigmoid', got {activation!r}")
    return _like_input(labels, was_numpy)


def remove_small_enhancing_tumour(labels: ArrayLike, min_voxels: int = ET_THRESHOLD,
                                  replace_with: int = 1,
                                  enhancing_label: int = ENHANCING_LABEL) -> ArrayLike:
    """Seed 000's post-processing of one case's label map (spatial axes only).

    "When the number of predicted enhancing-tumour voxels of a case is below the threshold
    (400), these voxels are merged into the tumour core": if 0 < #ET < ``min_voxels``, every
    ET voxel becomes ``replace_with`` (1, necrosis/non-enhancing core, so the voxels stay in
    TC and WT); a case with ``min_voxels`` or more ET voxels is unchanged. The rationale is
    BraTS' scoring: a case without ET in the reference scores ET Dice 1 only with an empty ET
    prediction. Returns a new array of the input's kind; the input is not modified.
    """
    labels, was_numpy = _as_tensor(labels)
    enhancing = labels == enhancing_label
    count = int(enhancing.sum())
    result = labels.clone()
    if 0 < count < min_voxels:
        result[enhancing] = replace_with
    return _like_input(result, was_numpy)


def release_labels(labels: np.ndarray, layout: str) -> np.ndarray:
    """Labels in the convention of release ``layout`` ("2018" ... "2023"): enhancing tumour 4,
    or 3 from 2023, as the release's own files store it."""
    enhancing = next((lay.enhancing_label for lay in LAYOUTS if lay.name == layout), ENHANCING_LABEL)
    if enhancing == ENHANCING_LABEL:
        return labels
    relabelled = labels.copy()
    relabelled[labels == ENHANCING_LABEL] = enhancing
    return relabelled
