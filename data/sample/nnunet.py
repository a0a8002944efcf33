"""Synthetic abdomen data in the layouts users bring their own data in.

- `variant="nifti"` (default): nnU-Net v2 raw, `imagesTr/abdomen_NNN_0000.nii.gz` (CT, HU)
  and `_0001` (PET), `labelsTr/abdomen_NNN.nii.gz` (0 background, 1 liver, 2 spleen),
  8 training cases of 8 x 48 x 48 voxels at 3 x 1 x 1 mm (z, y, x) and 2 in `imagesTs/`.
- `variant="png"`: nnU-Net v2 raw with 2D RGB `_0000.png` images (channels R, G, B, as
  nnU-Net's natural-image data sets) and grey label PNGs, 12 of 48 x 48 pixels.
- `variant="decathlon"`: the Medical Segmentation Decathlon layout, the same cases as
  `nifti` (one seed gives the same arrays) as 4D NIfTI with CT and PET on the last axis,
  and macOS `._*` files beside some of them, as in the published archives.

The liver is bright in CT, the spleen in PET, so both channels carry signal and a small
network learns every class within a few CPU epochs.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image

from data.io.lazy import nib
from data.sample.shapes import ellipsoid, texture

VARIANTS = ("nifti", "png", "decathlon")
CHANNELS = ("CT", "PET")
LABELS = {"background": 0, "liver": 1, "spleen": 2}
SPACING_ZYX = (3.0, 1.0, 1.0)
# Stored intensities (CT in HU, PET in Bq/ml as int16) of air, body, liver, spleen.
CT_VALUES = (-1000.0, 20.0, 130.0, 60.0)
PET_VALUES = (0.0, 1000.0, 2200.0, 6000.0)
# The first bytes of a macOS AppleDouble file (what `._name` files hold).
_APPLE_DOUBLE = b"\x00\x05\x16\x07\x00\x02\x00\x00Mac OS X        " + bytes(56)


def write_nnunet(out: Path, seed: int = 0, variant: str = "nifti", cases: int | None = None,
                 test_cases: int = 2, shape: tuple[int, int, int] = (8, 48, 48)) -> Path:
    """Write the sample data set (`variant` one of VARIANTS) into `out`; returns `out`.

    `shape` is (z, y, x) for volumes; the PNG variant draws (y, x) images of its last two sides.
    """
    if variant not in VARIANTS:
        raise ValueError(f"unknown nnunet sample variant {variant!r}: expected one of {', '.join(VARIANTS)}")
    rng = np.random.default_rng(seed)
    count = cases if cases is not None else (12 if variant == "png" else 8)
    names = [f"abdomen_{n:03d}" for n in range(1, count + test_cases + 1)]
    drawn = [_case(rng, shape if variant != "png" else (1, *shape[1:])) for _ in names]
    for folder in ("imagesTr", "labelsTr", "imagesTs"):
        (out / folder).mkdir(parents=True, exist_ok=True)
    if variant == "decathlon":
        _write_decathlon(out, names[:count], names[count:], drawn)
    else:
        _write_nnunet_v2(out, variant, names[:count], names[count:], drawn)
    return out


def _write_nnunet_v2(out: Path, variant: str, train: list[str], test: list[str], drawn: list) -> None:
    ending = ".png" if variant == "png" else ".nii.gz"
    channels = ("R", "G", "B") if variant == "png" else CHANNELS
    for number, name in enumerate(train + test):
        ct, pet, label = drawn[number]
        folder = "imagesTr" if name in train else "imagesTs"
        if variant == "png":
            write_png(out / folder / f"{name}_0000.png", _rgb(ct[0], pet[0]))
            if name in train:
                write_png(out / "labelsTr" / f"{name}.png", label[0])
            continue
        for index, volume in enumerate((ct, pet)):
            _write_nifti(out / folder / f"{name}_{index:04d}.nii.gz", volume.astype(np.int16))
        if name in train:
            _write_nifti(out / "labelsTr" / f"{name}.nii.gz", label)
    description = {
        "name": "LwnasSample",
        "description": "synthetic abdomen (lwnas sample data)",
        "channel_names": {str(i): c for i, c in enumerate(channels)},
        "labels": LABELS,
        "numTraining": len(train),
        "file_ending": ending,
    }
    (out / "dataset.json").write_text(json.dumps(description, indent=4) + "\n")


def _write_decathlon(out: Path, train: list[str], test: list[str], drawn: list) -> None:
    for number, name in enumerate(train + test):
        ct, pet, label = drawn[number]
        folder = "imagesTr" if name in train else "imagesTs"
        _write_nifti(out / folder / f"{name}.nii.gz", np.stack([ct, pet], axis=-1).astype(np.int16))
        if name in train:
            _write_nifti(out / "labelsTr" / f"{name}.nii.gz", label)
    for name in train[:2]:  # the archives' macOS resource forks, beside the real files
        (out / "imagesTr" / f"._{name}.nii.gz").write_bytes(_APPLE_DOUBLE)
        (out / "labelsTr" / f"._{name}.nii.gz").write_bytes(_APPLE_DOUBLE)
    description = {
        "name": "LwnasSample",
        "description": "synthetic abdomen (lwnas sample data)",
        "tensorImageSize": "4D",
        "modality": {str(i): c for i, c in enumerate(CHANNELS)},
        "labels": {str(value): name for name, value in LABELS.items()},
        "numTraining": len(train),
        "numTest": len(test),
        "training": [{"image": f"./imagesTr/{n}.nii.gz", "label": f"./labelsTr/{n}.nii.gz"} for n in train],
        "test": [f"./imagesTs/{n}.nii.gz" for n in test],
    }
    (out / "dataset.json").write_text(json.dumps(description, indent=4) + "\n")


def _case(rng: np.random.Generator, shape: tuple[int, int, int]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """CT (HU), PET and labels of one case, (z, y, x) arrays."""
    depth, height, width = shape
    body = ellipsoid(shape, (depth / 2, height / 2, width / 2), (depth * 4, height * 0.42, width * 0.46))
    jitter = rng.uniform(-0.05, 0.05, (2, 2)) * (height, width)
    scale = rng.uniform(0.85, 1.15, 2)
    depths = rng.uniform(0.35, 0.6), rng.uniform(0.4, 0.6)
    liver_centre = (depth * depths[0], height * 0.47 + jitter[0, 0], width * 0.34 + jitter[0, 1])
    liver_radii = (max(depth * 0.55, 0.8), height * 0.2 * scale[0], width * 0.17 * scale[0])
    liver = ellipsoid(shape, liver_centre, liver_radii, angle=0.3) & body
    spleen_centre = (depth * depths[1], height * 0.42 + jitter[1, 0], width * 0.72 + jitter[1, 1])
    spleen_radii = (max(depth * 0.45, 0.8), height * 0.12 * scale[1], width * 0.09 * scale[1])
    spleen = ellipsoid(shape, spleen_centre, spleen_radii) & body & ~liver
    label = np.zeros(shape, np.uint8)
    label[liver], label[spleen] = LABELS["liver"], LABELS["spleen"]
    tissue = np.where(body, 1, 0) + (label > 0) * label  # 0 air, 1 body, 2 liver, 3 spleen
    ct = np.take(CT_VALUES, tissue) + (texture(shape, rng, 10.0, 1.0) + rng.normal(0, 12.0, shape)) * body
    pet = np.take(PET_VALUES, tissue) + (texture(shape, rng, 120.0, 1.0) + rng.normal(0, 150.0, shape)) * body
    return np.round(ct), np.round(np.clip(pet, 0, None)), label


def _rgb(ct: np.ndarray, pet: np.ndarray) -> np.ndarray:
    """An 8-bit colour picture of one slice: CT in red, PET in green, their mean in blue."""
    red = np.clip((ct + 200.0) / 400.0, 0, 1)
    green = np.clip(pet / 7000.0, 0, 1)
    return np.round(np.stack([red, green, (red + green) / 2], axis=-1) * 255).astype(np.uint8)


def _write_nifti(path: Path, zyx: np.ndarray) -> None:
    """A (z, y, x[, c]) array as NIfTI voxels (i, j, k[, c]) = (x, y, z[, c]), SPACING_ZYX mm."""
    spatial = np.swapaxes(zyx, 0, 2) if zyx.ndim == 4 else zyx.T
    affine = np.diag([*SPACING_ZYX[::-1], 1.0])
    affine[:3, 3] = [-24.0, -24.0, -12.0]
    nib.save(nib.Nifti1Image(np.ascontiguousarray(spatial), affine), str(path))


def write_png(path: Path, array: np.ndarray) -> None:
    Image.fromarray(np.ascontiguousarray(array)).save(path)
