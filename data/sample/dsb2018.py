"""Synthetic DSB2018: fluorescence-like RGBA images of nuclei with one 0/255
PNG mask per nucleus, in the Kaggle `stage1_train/<id>/{images,masks}` layout."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
from scipy import ndimage

from data.io.png import write_png
from data.sample.shapes import ellipsoid, texture

SIZES = ((64, 64), (80, 96), (96, 96), (72, 88))  # the real images vary in size too


def write_dsb2018(out: Path, seed: int = 0, images: int = 12) -> Path:
    """Write `out/stage1_train/<id>/...` for `images` cases; returns `out`."""
    rng = np.random.default_rng(seed)
    for number in range(images):
        case = hashlib.sha256(f"lwnas-dsb2018-{seed}-{number}".encode()).hexdigest()
        write_dsb2018_case(out / "stage1_train" / case, rng, SIZES[number % len(SIZES)])
    return out


def write_dsb2018_case(folder: Path, rng: np.random.Generator, shape: tuple[int, int]) -> None:
    (folder / "images").mkdir(parents=True, exist_ok=True)
    (folder / "masks").mkdir(parents=True, exist_ok=True)
    brightness = np.zeros(shape)
    for nucleus in range(int(rng.integers(6, 13))):
        centre = rng.uniform(6, np.array(shape) - 6)
        radii = rng.uniform(3.5, 8.0, 2)
        mask = ellipsoid(shape, centre, radii, angle=rng.uniform(0, np.pi))
        # Overlapping nuclei occur in the real masks; the union must keep both.
        brightness = np.maximum(brightness, mask * rng.uniform(0.55, 1.0))
        mask_id = hashlib.sha256(f"{folder.name}-{nucleus}".encode()).hexdigest()
        write_png(folder / "masks" / f"{mask_id}.png", mask.astype(np.uint8) * 255)
    # Soft edges, chromatin texture and camera noise.
    signal = ndimage.gaussian_filter(brightness, 0.7) * (1 + 0.15 * texture(shape, rng, 1.0, 1.0))
    signal += 0.06 + rng.normal(0, 0.03, shape)
    tint = rng.uniform(0.6, 1.0, 3)  # stains differ in colour between images
    rgb = np.clip(signal[..., None] * tint * 255, 0, 255).astype(np.uint8)
    alpha = np.full(shape + (1,), 255, np.uint8)
    write_png(folder / "images" / f"{folder.name}.png", np.concatenate([rgb, alpha], axis=-1))
