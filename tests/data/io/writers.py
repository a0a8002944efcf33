"""Image files written for the tests, each with its own library (nibabel, SimpleITK, PIL) and
its geometry built here, independently of the reader under test."""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import SimpleITK as sitk
from PIL import Image

# A proper rotation (x -> -y, y -> x) so that axis mix-ups change the affine.
DIRECTION = np.array([[0.0, 1.0, 0.0], [-1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])
ORIGIN = (10.0, -20.0, 5.0)
SPACING_ZYX = (3.0, 0.8, 1.2)  # a different spacing per axis: mixing axes changes it
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
