"""NIfTI reading with one-line errors, and writing a prediction in the
geometry of a reference file."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from data.errors import data_error, reason
from data.io.lazy import nib


def nifti_paths(folder: Path, stem: str) -> list[Path]:
    """Existing `stem.nii.gz` / `stem.nii` files in `folder` (both occur in BraTS releases)."""
    return [path for path in (folder / f"{stem}.nii.gz", folder / f"{stem}.nii") if path.is_file()]


def load_nifti_header(path: str | os.PathLike) -> nib.Nifti1Image:
    """Open a NIfTI file (header only; the voxels stay on disk until read)."""
    try:
        return nib.load(str(path))
    except Exception as exc:  # nibabel raises several types for broken headers
        raise data_error(path, f"unreadable NIfTI header ({reason(exc)})") from None


def read_nifti(path: str | os.PathLike, dtype: type = np.float32) -> tuple[np.ndarray, nib.Nifti1Image]:
    """Voxels (in the file's i, j, k order) and the image object of a 3D NIfTI file."""
    image = load_nifti_header(path)
    if len(image.shape) != 3:
        raise data_error(path, f"has shape {image.shape}; expected a 3D volume")
    try:
        array = np.asarray(image.dataobj, dtype=dtype)
    except Exception as exc:  # truncated gzip streams raise EOFError, zlib.error, ValueError...
        raise data_error(path, f"unreadable or truncated NIfTI data ({reason(exc)})") from None
    return array, image


def spacing_of(image: nib.Nifti1Image) -> np.ndarray:
    """Voxel size in mm along the array's axes."""
    return np.asarray(image.header.get_zooms()[:3], dtype=np.float64)


def write_nifti_like(
    array: np.ndarray, reference_path: str | os.PathLike, out_path: str | os.PathLike
) -> Path:
    """Write `array` with the affine and header of `reference_path`.

    Integer and boolean arrays (label maps) are written as uint8, others as
    float32. The array must be in the reference's voxel order and shape, which
    is the order every reader in this package returns.
    """
    array = np.asarray(array)
    reference = load_nifti_header(reference_path)
    if array.shape != tuple(reference.shape[:3]):
        raise data_error(
            out_path, f"array shape {array.shape} differs from the reference {Path(reference_path).name} "
            f"shape {tuple(reference.shape[:3])}; expected the reference's voxel grid")
    if array.dtype == bool or np.issubdtype(array.dtype, np.integer):
        if array.size and (array.min() < 0 or array.max() > 255):
            raise data_error(out_path, "label values outside 0..255; expected a uint8 label map")
        array = array.astype(np.uint8)
    else:
        array = array.astype(np.float32)
    header = reference.header.copy()
    header.set_data_dtype(array.dtype)
    # The reference's intensity scaling must not rescale the labels on reading.
    header.set_slope_inter(1.0, 0.0)
    out = nib.Nifti1Image(array, reference.affine, header)
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(out, str(out_path))
    return out_path
