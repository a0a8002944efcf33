"""Intensity normalisations shared by the readers."""

from __future__ import annotations

import numpy as np


def window(array: np.ndarray, low: float, high: float) -> np.ndarray:
    """Clip to [low, high] and map linearly onto [0, 1] (CT Hounsfield windows)."""
    return ((np.clip(array, low, high) - low) / (high - low)).astype(np.float32)


def scale_percentiles(array: np.ndarray, percentiles: tuple[float, float] = (0.5, 99.5)) -> np.ndarray:
    """Map the given percentiles onto 0 and 1 and clip (MR, whose units vary by scanner)."""
    low, high = np.percentile(array, percentiles)
    return np.clip((array - low) / max(float(high - low), 1e-6), 0.0, 1.0).astype(np.float32)


def zscore_nonzero(image: np.ndarray) -> np.ndarray:
    """Per channel (C, ...) z-score over the nonzero (brain) voxels; the background stays 0."""
    out = np.zeros_like(image, dtype=np.float32)
    for channel, values in enumerate(image):
        brain = values != 0
        if brain.any():
            selected = values[brain]
            std = selected.std()
            out[channel][brain] = (selected - selected.mean()) / (std if std > 0 else 1.0)
    return out


def standardise(image: np.ndarray, mean: float | None, std: float | None) -> np.ndarray:
    """(image - mean) / std, the preset's last step on 2D items (after augmentation); None = none."""
    if mean is None:
        return image
    return (image - mean) / std
