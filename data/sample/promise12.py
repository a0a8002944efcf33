"""Synthetic PROMISE12: T2-like prostate MR volumes as CaseNN.mhd/.raw with
CaseNN_segmentation.mhd/.raw, with the challenge's anisotropic spacing."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from data.io.lazy import sitk
from data.sample.shapes import ellipsoid, texture

SPACING_XYZ = (0.625, 0.625, 3.6)  # close to the data set's median 0.61 x 0.61 x 3.6 mm


def write_promise12(out: Path, seed: int = 0, cases: int = 5, shape_zyx: tuple[int, int, int] = (12, 80, 80),
                    parts: bool = False) -> Path:
    """Write CaseNN files flat in `out`, or under TrainingData_Part1/2/3 with `parts`."""
    rng = np.random.default_rng(seed)
    for number in range(cases):
        folder = out / f"TrainingData_Part{number * 3 // cases + 1}" if parts else out
        write_promise12_case(folder, f"Case{number:02d}", rng, shape_zyx)
    return out


def write_promise12_case(folder: Path, name: str, rng: np.random.Generator, shape_zyx: tuple[int, int, int]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    depth, height, width = shape_zyx
    centre = np.array([depth / 2 - 0.5, height * 0.55, width / 2]) + rng.uniform(-0.06, 0.06, 3) * shape_zyx
    # A gland over about a third of the slices and a quarter of the field of view.
    radii = np.array(shape_zyx) * [rng.uniform(0.28, 0.36), rng.uniform(0.18, 0.24), rng.uniform(0.2, 0.27)]
    prostate = ellipsoid(shape_zyx, centre, radii)
    body = ellipsoid(shape_zyx, (depth / 2, height / 2, width / 2), (depth * 2, height * 0.48, width * 0.48))
    image = np.where(body, 250.0, 10.0)
    image[prostate] = 480.0
    image += texture(shape_zyx, rng, 30.0, 1.5) * body
    # Magnitude of complex Gaussian noise: the Rician noise that the
    # preprocessing's denoising step is there for.
    image = np.hypot(image + rng.normal(0, 25.0, shape_zyx), rng.normal(0, 25.0, shape_zyx))
    _write(np.round(image).astype(np.int16), folder / f"{name}.mhd")
    _write(prostate.astype(np.uint8), folder / f"{name}_segmentation.mhd")


def _write(array: np.ndarray, path: Path) -> None:
    image = sitk.GetImageFromArray(array)
    image.SetSpacing(SPACING_XYZ)
    image.SetOrigin((-25.0, -25.0, -20.0))
    sitk.WriteImage(image, str(path), useCompression=False)
