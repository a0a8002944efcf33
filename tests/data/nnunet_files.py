"""Writers of synthetic nnU-Net v2 / Decathlon data sets for the tests, each file written with
its own library (nibabel, SimpleITK, PIL) and its geometry built here, independently of the
reader under test."""

from __future__ import annotations

import json
from pathlib import Path

import nibabel as nib
import numpy as np
import SimpleITK as sitk
from PIL import Image

# A proper rotation (x -> -y, y -> x) so that axis mix-ups change the affine.
DIRECTION = np.array([[0.0, 1.0, 0.0], [-1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])
ORIGIN = (10.0, -20.0, 5.0)
SPACING_ZYX = (3.0, 0.8, 1.2)  # a different spacing per axis: mixing axes changes it
LABELS = {"background": 0, "liver": 1, "spleen": 2}
VOLUME_ENDINGS = (".nii.gz", ".nii", ".mha", ".nrrd", ".mhd")
PLANAR_ENDINGS = (".png", ".bmp", ".tif", ".tiff")


def expected_affine(spacing_zyx=SPACING_ZYX, direction=DIRECTION, origin=ORIGIN) -> np.ndarray:
    """index (z, y, x) -> LPS mm: ITK's direction x spacing with its columns in z, y, x order."""
    columns = np.asarray(direction) * np.asarray(spacing_zyx[::-1])  # column a = axis a of (x, y, z)
    affine = np.eye(4)
    affine[:3, :3] = columns[:, ::-1]
    affine[:3, 3] = origin
    return affine


def write_image(path: Path, zyx: np.ndarray, spacing_zyx=SPACING_ZYX, direction=DIRECTION, origin=ORIGIN) -> Path:
    """Write a (z, y, x) volume, a (z, y, x, c) 4D NIfTI, or a (y, x[, c]) 2D image by `path`'s ending."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    name = path.name
    if name.endswith((".png", ".bmp", ".tif", ".tiff")):
        Image.fromarray(np.ascontiguousarray(zyx)).save(path)
    elif name.endswith((".nii", ".nii.gz")):
        lps = np.eye(4)
        lps[:3, :3] = np.asarray(direction) * np.asarray(spacing_zyx[::-1])
        lps[:3, 3] = origin
        ras = np.diag([-1.0, -1.0, 1.0, 1.0]) @ lps
        voxels = np.swapaxes(zyx, 0, 2) if zyx.ndim == 4 else zyx.T  # (x, y, z[, c])
        nib.save(nib.Nifti1Image(np.ascontiguousarray(voxels), ras), str(path))
    else:
        image = sitk.GetImageFromArray(zyx)
        image.SetSpacing([float(s) for s in spacing_zyx[::-1]])
        image.SetDirection(np.asarray(direction, dtype=float).ravel().tolist())
        image.SetOrigin(origin)
        sitk.WriteImage(image, str(path))
    return path


def synthetic_case(seed: int, shape=(6, 10, 12), channels: int = 2) -> tuple[np.ndarray, np.ndarray]:
    """image (C, *shape) float32 and label (*shape) uint8 with labels 1 and 2 in two boxes."""
    rng = np.random.default_rng(seed)
    label = np.zeros(shape, np.uint8)
    label[1:4, 2:6, 2:6] = 1
    label[2:5, 5:9, 7:11] = 2
    image = np.stack([label * 40.0 * (c + 1) + rng.normal(0, 5, shape) for c in range(channels)])
    return image.astype(np.float32), label


def write_nnunet_v2(root: Path, cases: dict[str, tuple[np.ndarray, np.ndarray]], ending: str = ".nii.gz",
                    channels=("CT", "T2"), labels=LABELS, spacing_zyx=SPACING_ZYX, **extra) -> Path:
    """imagesTr/<case>_XXXX<ending>, labelsTr/<case><ending> and dataset.json."""
    root.mkdir(parents=True, exist_ok=True)
    for name, (image, label) in cases.items():
        for index, values in enumerate(image):
            write_image(root / "imagesTr" / f"{name}_{index:04d}{ending}", values, spacing_zyx)
        write_image(root / "labelsTr" / f"{name}{ending}", label, spacing_zyx)
    description = {"channel_names": {str(i): c for i, c in enumerate(channels)}, "labels": labels,
                   "numTraining": len(cases), "file_ending": ending, **extra}
    (root / "dataset.json").write_text(json.dumps(description))
    return root


def write_decathlon(root: Path, cases: dict[str, tuple[np.ndarray, np.ndarray]], channels=("CT", "T2"),
                    labels=LABELS, spacing_zyx=SPACING_ZYX) -> Path:
    """imagesTr/<case>.nii.gz as 4D NIfTI (channels last), labelsTr/<case>.nii.gz, dataset.json."""
    for name, (image, label) in cases.items():
        write_image(root / "imagesTr" / f"{name}.nii.gz", np.moveaxis(image, 0, -1), spacing_zyx)
        write_image(root / "labelsTr" / f"{name}.nii.gz", label, spacing_zyx)
    description = {
        "name": "Test", "tensorImageSize": "4D", "modality": {str(i): c for i, c in enumerate(channels)},
        "labels": {str(v): k for k, v in labels.items()}, "numTraining": len(cases), "numTest": 0,
        "training": [{"image": f"./imagesTr/{n}.nii.gz", "label": f"./labelsTr/{n}.nii.gz"} for n in cases],
        "test": [],
    }
    (root / "dataset.json").write_text(json.dumps(description))
    return root
