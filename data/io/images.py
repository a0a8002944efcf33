"""Image files by ending, read to one canonical array order and written back.

Every file reads to `(C, *spatial)` in SimpleITK's array order, the reverse of
the file's index order: (z, y, x) for volumes, (row, column) for 2D images,
the order nnU-Net uses too. So a NIfTI volume (read with nibabel, whose
arrays run (i, j, k)) and the same volume saved as .mha or .nrrd read to the
same array, spacing and affine. Geometry:

- `spacing`: mm per array axis, in that order;
- `affine`: 4x4 from array index to patient coordinates in LPS mm (the
  ITK/DICOM convention; a NIfTI file's RAS affine has its first two rows
  negated). 2D images map (0, row, column), the first column being a unit
  normal, as the other 2D readers do.

Channels: a 4D NIfTI's last axis (the Decathlon layout), the components of a
vector MetaImage/NRRD, and the colours of an RGB(A) PNG/BMP/TIFF.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from data.errors import DataError, data_error, reason
from data.io.lazy import nib, sitk
from data.io.nifti import load_nifti_header, write_nifti_like

# Each ending nnU-Net reads, with the library that reads it here. The one list of endings.
ENDINGS: dict[str, str] = {
    ".nii.gz": "nibabel",
    ".nii": "nibabel",
    ".mha": "simpleitk",
    ".mhd": "simpleitk",
    ".nrrd": "simpleitk",
    ".png": "pil",
    ".bmp": "pil",
    ".tif": "pil",
    ".tiff": "pil",
}
# Endings that hold 2D images (natural-image formats, one file per image).
PLANAR_ENDINGS = tuple(ending for ending, library in ENDINGS.items() if library == "pil")
# Endings that hold volumes (NIfTI, MetaImage, MHA, NRRD).
VOLUME_ENDINGS = tuple(ending for ending in ENDINGS if ending not in PLANAR_ENDINGS)
_LPS_FROM_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])


def ending_of(path: str | os.PathLike) -> str | None:
    """The ENDINGS entry a file name ends with (the longest, so .nii.gz before .nii), or None."""
    name = Path(path).name.lower()
    matches = [ending for ending in ENDINGS if name.endswith(ending)]
    return max(matches, key=len) if matches else None


def endings_text() -> str:
    return ", ".join(ENDINGS)


def _library(path: Path) -> str:
    ending = ending_of(path)
    if ending is None:
        raise data_error(path, f"unsupported file ending; expected one of {endings_text()}")
    return ENDINGS[ending]


def companion_files(path: str | os.PathLike) -> list[Path]:
    """Files a reader opens besides `path`: the data file a .mhd header names."""
    path = Path(path)
    if ending_of(path) != ".mhd" or not path.is_file():
        return []
    match = re.search(r"^\s*ElementDataFile\s*=\s*(.+?)\s*$", path.read_text(errors="replace"), re.MULTILINE)
    if match is None or match.group(1) == "LOCAL":
        return []
    data_file = path.parent / match.group(1)
    return [data_file] if data_file.is_file() else []


def stem_of(path: str | os.PathLike) -> str:
    """The file name without its ENDINGS entry (or, for other files, its last suffix)."""
    path = Path(path)
    ending = ending_of(path) or path.suffix
    return path.name[: len(path.name) - len(ending)]


def listed_files(folder: str | os.PathLike, endings: tuple[str, ...]) -> list[Path]:
    """Visible files of `folder` with one of `endings`, sorted by name (macOS `._*` files skipped)."""
    return sorted((path for path in Path(folder).iterdir() if path.is_file() and not path.name.startswith(".")
                   and ending_of(path) in endings), key=lambda path: path.name)


def image_dimension(path: str | os.PathLike) -> int:
    """Spatial dimensions (2 or 3) of an image file, from its header only."""
    path = Path(path)
    library = _library(path)
    if library == "pil":
        return 2
    if library == "nibabel":
        shape = load_nifti_header(path).shape
        return 2 if len(shape) == 2 else 3
    return _itk_information(path).GetDimension()


def read_image_file(path: str | os.PathLike, dtype: type | None = np.float32) -> tuple[np.ndarray, dict]:
    """Read one file: array (C, *spatial) in canonical order (`dtype`, or as stored if None) and
    geometry {spacing, affine, shape} (spatial shape)."""
    path = Path(path)
    library = _library(path)
    if not path.is_file():
        raise data_error(path, "no such file; expected an image file")
    reader = {"nibabel": _read_nibabel, "simpleitk": _read_simpleitk, "pil": _read_pil}[library]
    array, spacing, affine = reader(path, dtype)
    if dtype is not None:
        array = array.astype(dtype, copy=False)
    return array, {"spacing": spacing, "affine": affine, "shape": np.asarray(array.shape[1:], dtype=np.int64)}


def read_label_file(path: str | os.PathLike, shape: tuple[int, ...]) -> tuple[np.ndarray, dict]:
    """A label map file (one channel, values as stored) that must lie on a grid of `shape`, and its
    geometry (`read_image_file`'s)."""
    array, geometry = read_image_file(path, dtype=None)
    if len(array) != 1:
        raise data_error(path, f"holds {len(array)} channels; expected one label map")
    shape = tuple(shape)
    if array.shape[1:] != shape:
        raise data_error(path, f"shape {array.shape[1:]} differs from the image's {shape}; expected the image's grid")
    return array[0], geometry


def _read_nibabel(path: Path, dtype: type | None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    image = load_nifti_header(path)
    if len(image.shape) not in (2, 3, 4):
        raise data_error(path, f"has shape {image.shape}; expected a 2D or 3D image, or 4D with channels last")
    try:
        # in `dtype` directly: a scaled int16 CT would otherwise pass through float64
        array = np.asarray(image.dataobj, dtype=dtype)
    except Exception as exc:  # truncated gzip streams raise EOFError, zlib.error, ValueError...
        raise data_error(path, f"unreadable or truncated NIfTI data ({reason(exc)})") from None
    # (i, j[, k]) or (i, j, k, c) -> (c, [k,] j, i): channels first, spatial axes reversed
    array = np.moveaxis(array, -1, 0) if array.ndim == 4 else array[None]
    spatial = array.ndim - 1
    array = np.ascontiguousarray(array.transpose(0, *range(spatial, 0, -1)))
    zooms = np.asarray(image.header.get_zooms()[:spatial], dtype=np.float64)
    lps = _LPS_FROM_RAS @ np.asarray(image.affine, dtype=np.float64)
    # index (k, j, i) or 2D (0, j, i): the (i, j, k) columns reversed
    affine = np.column_stack([lps[:, [2, 1, 0]], lps[:, 3]])
    if spatial == 2:  # k is no axis of the array: keep it as the unit normal
        affine[:3, 0] /= np.linalg.norm(affine[:3, 0]) or 1.0
    return array, zooms[::-1].copy(), affine


def _itk_information(path: Path) -> sitk.ImageFileReader:
    reader = sitk.ImageFileReader()
    reader.SetFileName(str(path))
    try:
        reader.ReadImageInformation()
    except RuntimeError as exc:
        raise data_error(path, f"unreadable image header ({reason(exc)})") from None
    return reader


def _read_simpleitk(path: Path, dtype: type | None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    try:
        image = sitk.ReadImage(str(path))
    except RuntimeError as exc:
        raise data_error(path, f"unreadable or truncated image ({reason(exc)})") from None
    dimension = image.GetDimension()
    if dimension not in (2, 3):
        raise data_error(path, f"has {dimension} dimensions; expected a 2D or 3D image")
    array = sitk.GetArrayFromImage(image)  # (z, y, x) or (z, y, x, components)
    array = np.moveaxis(array, -1, 0) if image.GetNumberOfComponentsPerPixel() > 1 else array[None]
    spacing = np.asarray(image.GetSpacing(), dtype=np.float64)
    affine = itk_affine(spacing, image.GetDirection(), image.GetOrigin())
    return np.ascontiguousarray(array), spacing[::-1].copy(), affine


def itk_affine(spacing_xyz, direction, origin) -> np.ndarray:
    """The canonical-order affine of an ITK geometry (2D or 3D; 2D maps (0, row, column))."""
    spacing_xyz = np.asarray(spacing_xyz, dtype=np.float64)
    dimension = len(spacing_xyz)
    matrix = np.eye(3)
    matrix[:dimension, :dimension] = np.asarray(direction, dtype=np.float64).reshape(dimension, dimension)
    full_spacing = np.ones(3)
    full_spacing[:dimension] = spacing_xyz
    affine = np.eye(4)
    # index (z, y, x) maps like ITK's (x, y, z): columns reversed
    affine[:3, :3] = (matrix * full_spacing)[:, ::-1]
    affine[:dimension, 3] = origin
    return affine


def _read_pil(path: Path, dtype: type | None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    try:
        with Image.open(path) as image:
            frames = getattr(image, "n_frames", 1)
            if frames > 1:
                raise data_error(path, f"holds {frames} pages; expected a 2D image (one page)")
            bits = image.tag_v2.get(258) if hasattr(image, "tag_v2") else None
            if image.mode in ("RGB", "RGBA") and bits is not None and max(bits) > 8:
                # PIL reads 16-bit colour TIFFs as 8-bit, silently losing precision
                raise data_error(path, f"{max(bits)}-bit colour TIFF, which PIL cannot read without loss; "
                                 "expected 8-bit colour or one grey file per channel")
            array = np.asarray(image)
    except DataError:
        raise
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        raise data_error(path, f"unreadable image or an image variant PIL cannot read ({reason(exc)})") from None
    if array.dtype == bool:  # 1-bit images: labels 0/1
        array = array.astype(np.uint8)
    array = np.moveaxis(array, -1, 0) if array.ndim == 3 else array[None]
    return np.ascontiguousarray(array), np.ones(2), np.eye(4)


# How the pixels of a natural image (PNG, TIFF, BMP) become intensities in [0, 1], one rule for
# training and prediction: integers over their type's maximum; floats as they are, so they must
# lie in [0, 1] already (a float TIFF of 0..255 would reach the network 255 times too bright).
UNIT_RANGE_RULE = "integer pixels divided by their type's maximum, float pixels kept (refused outside [0, 1])"


def unit_range(path: str | os.PathLike, pixels: np.ndarray) -> np.ndarray:
    """`pixels` of the image file `path` as float32 intensities in [0, 1] (`UNIT_RANGE_RULE`), or a
    DataError naming the file and the range of float pixels outside it."""
    pixels = np.asarray(pixels)
    if pixels.dtype.kind in "ui":
        return pixels.astype(np.float32) / np.float32(np.iinfo(pixels.dtype).max)
    if pixels.dtype == bool:
        return pixels.astype(np.float32)
    if pixels.size:
        low, high = float(np.nanmin(pixels)), float(np.nanmax(pixels))
        if low < 0.0 or high > 1.0:
            raise data_error(path, f"{pixels.dtype} pixels in {low:.4g}..{high:.4g}; expected float pixels in [0, 1] "
                             "(integer pixels are divided by their type's maximum): rescale the image or save it "
                             "with integer pixels")
    return pixels.astype(np.float32)


def write_like(array: np.ndarray, reference: str | os.PathLike, out: str | os.PathLike) -> Path:
    """Write a spatial array in canonical order (`(*spatial)`, e.g. a prediction) with the geometry
    of `reference`, in the reference's format; `out` must have the reference's ending.

    Integer and boolean arrays (label maps) are written as uint8, others as float32 (2D natural
    images: uint8 only, except TIFF).
    """
    reference, out = Path(reference), Path(out)
    array = np.asarray(array)
    if ending_of(out) != ending_of(reference):
        raise data_error(out, f"ending differs from the reference {reference.name}; expected {ending_of(reference)}")
    labels = array.dtype == bool or np.issubdtype(array.dtype, np.integer)
    if labels and array.size and (array.min() < 0 or array.max() > 255):
        raise data_error(out, "label values outside 0..255; expected a uint8 label map")
    array = array.astype(np.uint8 if labels else np.float32)
    library = _library(reference)
    out.parent.mkdir(parents=True, exist_ok=True)
    if library == "nibabel":
        return write_nifti_like(array.T, reference, out)  # canonical order back to (i, j, k)
    if library == "simpleitk":
        info = _itk_information(reference)
        size = tuple(info.GetSize())
        if array.shape != size[::-1]:
            raise data_error(out, f"array shape {array.shape} differs from the reference {reference.name} "
                             f"shape {size[::-1]}; expected the reference's voxel grid")
        image = sitk.GetImageFromArray(array)
        image.SetSpacing(info.GetSpacing())
        image.SetOrigin(info.GetOrigin())
        image.SetDirection(info.GetDirection())
        sitk.WriteImage(image, str(out), useCompression=True)
        return out
    with Image.open(reference) as image:
        size = image.size[::-1]
    if array.shape != size:
        raise data_error(out, f"array shape {array.shape} differs from the reference {reference.name} "
                         f"shape {size}; expected the reference's pixel grid")
    if array.dtype != np.uint8 and ending_of(out) not in (".tif", ".tiff"):
        raise data_error(out, f"{ending_of(out)} holds 8-bit pixels; expected a label map, or a .tif reference")
    Image.fromarray(array).save(out)
    return out


def write_nifti_geometry(array: np.ndarray, affine: np.ndarray, out: str | os.PathLike) -> Path:
    """Write a 3D array in canonical order with its canonical affine (array index -> LPS mm, as
    the readers give it, e.g. a DICOM series') as NIfTI, so `read_image_file` reads back the same
    array and affine. Integer and boolean arrays are written as uint8, others as float32."""
    out = Path(out)
    array = np.asarray(array)
    if array.ndim != 3:
        raise data_error(out, f"array of shape {array.shape}; expected a 3D volume")
    labels = array.dtype == bool or np.issubdtype(array.dtype, np.integer)
    if labels and array.size and (array.min() < 0 or array.max() > 255):
        raise data_error(out, "label values outside 0..255; expected a uint8 label map")
    lps = np.asarray(affine, dtype=np.float64)
    # canonical index (k, j, i) -> NIfTI voxel (i, j, k): columns reversed; LPS -> RAS
    ras = _LPS_FROM_RAS @ np.column_stack([lps[:, [2, 1, 0]], lps[:, 3]])
    image = nib.Nifti1Image(np.ascontiguousarray(array.T.astype(np.uint8 if labels else np.float32)), ras)
    image.set_qform(ras, code=1)
    image.set_sform(ras, code=1)
    image.header.set_xyzt_units("mm")
    out.parent.mkdir(parents=True, exist_ok=True)
    nib.save(image, str(out))
    return out


def write_float_tiff(array: np.ndarray, out: str | os.PathLike) -> Path:
    """A 2D float map (probabilities) as a 32-bit float TIFF of the array's size."""
    out = Path(out)
    array = np.asarray(array, dtype=np.float32)
    if array.ndim != 2:
        raise data_error(out, f"array of shape {array.shape}; expected a 2D map")
    out.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.ascontiguousarray(array)).save(out)
    return out


__all__ = ["ENDINGS", "PLANAR_ENDINGS", "UNIT_RANGE_RULE", "VOLUME_ENDINGS", "companion_files", "ending_of",
           "image_dimension", "itk_affine", "read_image_file", "unit_range", "write_float_tiff", "write_like",
           "write_nifti_geometry"]
