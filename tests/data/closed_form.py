"""Closed-form float64 classifiers for "the sample data is learnable" tests.

A trained network's output after a few steps depends on the CPU's float rounding (which vector
kernels oneDNN and the BLAS pick): a BatchNorm net left "all background" after 60 Adam steps on
one processor and not on another. These classifiers have no training loop: a Dice-best intensity
threshold (one channel, either direction) and the nearest class mean. Their fits are argmax/argmin
choices over float64 sums whose margins dwarf any rounding difference, so a test built on them
asserts the same thing on every CPU."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

#: Candidate thresholds: these quantiles of a channel's training intensities.
QUANTILES = np.linspace(0.01, 0.99, 99)


def dice(predicted: np.ndarray, truth: np.ndarray) -> float:
    """Dice of two boolean arrays over all their elements (1.0 where both are empty)."""
    total = int(predicted.sum()) + int(truth.sum())
    return 2.0 * int((predicted & truth).sum()) / total if total else 1.0


def chance_dice(truth: np.ndarray) -> float:
    """The Dice of predicting everything foreground: 2p / (1 + p) for a foreground share p,
    the best any prediction independent of the image reaches in expectation."""
    share = float(truth.mean())
    return 2 * share / (1 + share)


@dataclass(frozen=True)
class Threshold:
    """Foreground where ``sign * image[channel] > sign * value``."""

    channel: int
    sign: int
    value: float

    def predict(self, images: np.ndarray) -> np.ndarray:
        return self.sign * images[:, self.channel] > self.sign * self.value


def fit_threshold(images: np.ndarray, truth: np.ndarray) -> Threshold:
    """The Dice-best threshold on ``images`` (N, C, *spatial; float64) for the boolean ``truth``
    (N, *spatial), over every channel, both directions and :data:`QUANTILES` of the channel."""
    best, best_dice = None, -1.0
    for channel in range(images.shape[1]):
        values = images[:, channel]
        for value in np.quantile(values, QUANTILES):
            for sign in (1, -1):
                candidate = Threshold(channel, sign, float(value))
                score = dice(candidate.predict(images), truth)
                if score > best_dice:
                    best, best_dice = candidate, score
    return best


def fit_class_means(images: np.ndarray, labels: np.ndarray, classes: int) -> np.ndarray:
    """Each class's mean intensity vector (classes, C) over the pixels of ``labels`` (N, *spatial)."""
    features = np.moveaxis(images, 1, -1)
    return np.stack([features[labels == k].mean(0) for k in range(classes)])


def nearest_class_mean(means: np.ndarray, images: np.ndarray) -> np.ndarray:
    """The class whose mean is nearest each pixel's intensity vector (Euclidean)."""
    features = np.moveaxis(images, 1, -1)
    return np.argmin(((features[..., None, :] - means) ** 2).sum(-1), -1)


def shuffled_pixels(labels: np.ndarray, seed: int = 0) -> np.ndarray:
    """``labels`` with their pixels permuted over the whole split: the same foreground share,
    no relation to the images. The negative control; another case's mask would not do, since the
    organs sit at the same place in every case (in the sample as in real scans) and overlap."""
    return np.random.default_rng(seed).permutation(labels.ravel()).reshape(labels.shape)


def split_arrays(dataset) -> tuple[np.ndarray, np.ndarray]:
    """(images as float64, labels) of every item of a data set, stacked."""
    images = np.stack([dataset[i]["image"].numpy().astype(np.float64) for i in range(len(dataset))])
    labels = np.stack([dataset[i]["label"].numpy() for i in range(len(dataset))])
    return images, labels
