"""Synthetic BraTS: four NIfTI modalities and a segmentation per case, in the
folder layout and file names of a chosen release (2018-2023)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from scipy import ndimage

from data.brats import LAYOUTS, MISNAMED_SEGMENTATIONS
from data.io.lazy import nib
from data.sample.shapes import ellipsoid, texture

YEARS = tuple(layout.name for layout in LAYOUTS)
# Intensity of (brain, oedema 2, enhancing 4, necrosis 1) per modality: each
# sub-region differs from its neighbours in at least one modality.
INTENSITIES = {
    "flair": (300.0, 750.0, 600.0, 420.0),
    "t1": (500.0, 400.0, 450.0, 200.0),
    "t1ce": (500.0, 450.0, 1100.0, 180.0),
    "t2": (350.0, 800.0, 600.0, 950.0),
}


def case_names(year: str, cases: int, first_case: int = 1) -> list[tuple[str, str]]:
    """(parent folder, case folder) names in the release's convention."""
    numbers = range(first_case, first_case + cases)
    if year in ("2018", "2019"):
        prefix = "Brats18" if year == "2018" else "BraTS19"
        root = f"MICCAI_BraTS_{year}_Data_Training"
        return [(f"{root}/{'HGG' if n % 2 else 'LGG'}", f"{prefix}_TCIA01_{100 + n}_1") for n in numbers]
    if year == "2020":
        return [("MICCAI_BraTS2020_TrainingData", f"BraTS20_Training_{n:03d}") for n in numbers]
    if year == "2021":
        return [("", f"BraTS2021_{n:05d}") for n in numbers]
    if year == "2023":
        return [("ASNR-MICCAI-BraTS2023-GLI-Challenge-TrainingData", f"BraTS-GLI-{n:05d}-000") for n in numbers]
    raise ValueError(f"unknown BraTS year {year!r}: expected one of {', '.join(YEARS)}")


def write_brats(out: Path, seed: int = 0, year: str = "2021", cases: int = 4,
                shape: tuple[int, int, int] = (48, 56, 40), first_case: int = 1) -> Path:
    """Write `cases` BraTS cases of `shape` (1 mm voxels) in the `year` layout; returns `out`."""
    year = str(year)
    names = case_names(year, cases, first_case)
    layout = next(layout for layout in LAYOUTS if layout.name == year)
    rng = np.random.default_rng(seed)
    for parent, case in names:
        folder = out / parent / case
        folder.mkdir(parents=True, exist_ok=True)
        images, labels = _volumes(rng, shape)
        # BraTS volumes are stored LPS-like: i and j run right-to-left, back-to-front.
        affine = np.diag([-1.0, -1.0, 1.0, 1.0])
        affine[:3, 3] = [0.0, shape[1] - 1.0, 0.0]
        for canonical, suffix in zip(INTENSITIES, layout.modalities):
            path = folder / f"{case}{layout.separator}{suffix}.nii.gz"
            nib.save(nib.Nifti1Image(images[canonical], affine), str(path))
        stored = labels.copy()
        stored[labels == 4] = layout.enhancing_label
        name = MISNAMED_SEGMENTATIONS.get(case, f"{case}{layout.separator}{layout.segmentation}.nii.gz")
        nib.save(nib.Nifti1Image(stored, affine), str(folder / name))
    return out


def _volumes(rng: np.random.Generator, shape) -> tuple[dict[str, np.ndarray], np.ndarray]:
    shape = tuple(shape)
    centre = np.array(shape) / 2
    brain = ellipsoid(shape, centre, np.array(shape) * 0.42)
    tumour_centre = centre + rng.uniform(-0.12, 0.12, 3) * np.array(shape)
    scale = rng.uniform(0.8, 1.2)
    labels = np.zeros(shape, np.uint8)
    # Nested: oedema around an enhancing rim around a necrotic core.
    labels[ellipsoid(shape, tumour_centre, np.array([9.0, 10.0, 8.0]) * scale) & brain] = 2
    labels[ellipsoid(shape, tumour_centre, np.array([5.5, 6.0, 5.0]) * scale) & brain] = 4
    labels[ellipsoid(shape, tumour_centre, np.array([3.0, 3.5, 2.5]) * scale) & brain] = 1
    images = {}
    for modality, (tissue, oedema, enhancing, necrosis) in INTENSITIES.items():
        volume = np.zeros(shape)
        volume[brain] = tissue
        for label, value in ((2, oedema), (4, enhancing), (1, necrosis)):
            volume[labels == label] = value
        volume = ndimage.gaussian_filter(volume, 0.6)
        volume += (texture(shape, rng, 0.05 * tissue, 1.5) + rng.normal(0, 0.04 * tissue, shape)) * brain
        # Skull-stripped: zero outside the brain, as in the released volumes.
        images[modality] = np.where(brain, np.clip(volume, 1, None), 0).astype(np.int16)
    return images, labels
