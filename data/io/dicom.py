"""DICOM series: the slice files of one folder read with pydicom into one volume, and the rule a
folder must meet to be one volume (`series_geometry`).

The rule: the files belong to one patient (PatientID) and one series (SeriesInstanceUID), share
one orientation, and their ImagePositionPatient steps along the slice normal are uniform. A
missing slice would otherwise be stacked as if it were there (every slice after the gap a step
off), and two series in one folder would become one volume. Every reader of DICOM series reads
through `read_dicom_series`, so training, `lwnas check` and prediction refuse the same folders.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from data.errors import data_error, reason, require_finite
from data.io.geometry import GRID_TOLERANCE
from data.io.lazy import pydicom

# How far an ImagePositionPatient step along the slice normal may stray from the series' median
# step, as a fraction of it. Scanners write positions to about 0.01 mm, under 1 % of any slice
# spacing in use; a missing slice makes one step twice the median (100 % off).
SLICE_STEP_TOLERANCE = 0.1
# Header fields kept per slice: the geometry and the series' identity. The rest (and the pixel
# bytes) is let go, so a 250-slice series does not hold two copies.
SERIES_TAGS = ("PixelSpacing", "ImageOrientationPatient", "ImagePositionPatient", "SliceThickness",
               "SeriesInstanceUID", "PatientID")
# The orientation of a file without ImageOrientationPatient: rows along x, columns along y.
_AXIAL = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0)


def read_dicom_series(files: list[Path], modality: str) -> tuple[np.ndarray, dict]:
    """Read one DICOM series (files in slice order): image (S, H, W) float32 (CT in Hounsfield
    units, other modalities in scanner units) and `series_geometry`'s geometry. A DataError names
    the file or folder when a file is unreadable, of another modality or slice size, or the
    folder breaks the series rule."""
    slices, headers = zip(*(_read_slice(Path(path), modality) for path in files))
    first_shape = slices[0].shape
    for path, pixels in zip(files, slices):
        if pixels.shape != first_shape:
            raise data_error(path, f"slice shape {pixels.shape} differs from {Path(files[0]).name} {first_shape}; "
                             "expected one in-plane size per series")
    geometry = series_geometry([Path(path) for path in files], headers, first_shape)
    return np.stack(slices).astype(np.float32), geometry


def series_geometry(files: list[Path], headers: list[dict] | tuple[dict, ...], shape: tuple[int, int]) -> dict:
    """The rule a folder of slices (`files` in slice order, their `SERIES_TAGS` headers) must meet to
    be one volume, and the volume's geometry: spacing (slice, row, column) in mm, affine from
    (slice, row, column) indices to DICOM patient coordinates (LPS), original_shape, source (the
    files). A DataError names the folder and the files that break it."""
    folder = files[0].parent
    _one_of(folder, files, headers, "PatientID", "holds DICOM files of {count} patients (PatientID {groups}); "
            "expected one patient's series per folder")
    _one_of(folder, files, headers, "SeriesInstanceUID", "holds {count} DICOM series (SeriesInstanceUID {groups}); "
            "expected one series per folder")
    first = headers[0]
    if first["PixelSpacing"] is None:
        raise data_error(files[0], "missing PixelSpacing; expected a DICOM image header")
    row_spacing, column_spacing = (float(v) for v in first["PixelSpacing"])
    orientation = np.asarray(first["ImageOrientationPatient"] or _AXIAL, dtype=np.float64)
    for path, header in zip(files, headers):
        other = np.asarray(header["ImageOrientationPatient"] or _AXIAL, dtype=np.float64)
        if np.abs(other - orientation).max() > GRID_TOLERANCE:
            raise data_error(folder, f"{path.name} is oriented otherwise than {files[0].name} (ImageOrientationPatient "
                             f"{_numbers(other)} against {_numbers(orientation)}); expected one orientation per series")
    along_row, along_column = orientation[:3], orientation[3:]
    normal = np.cross(along_row, along_column)
    positions = [header["ImagePositionPatient"] for header in headers]
    given = [position is not None for position in positions]
    if any(given) and not all(given):
        missing = files[given.index(False)]
        raise data_error(missing, "missing ImagePositionPatient; expected it on every slice of the series "
                         "(its folder's other files have it)")
    if all(given) and len(positions) > 1:
        positions = np.asarray(positions, dtype=np.float64)
        # Slice spacing from the positions (SliceThickness may differ from it).
        step = _uniform_step(folder, files, positions @ normal)
        origin = positions[0]
    else:  # one slice, or no positions at all: the thickness is all there is
        step = float(first["SliceThickness"] or 1.0)
        origin = np.asarray(positions[0] if given[0] else [0.0, 0.0, 0.0], dtype=np.float64)
    affine = np.eye(4)
    affine[:3, 0] = normal * step
    affine[:3, 1] = along_column * row_spacing  # one row down moves along the column direction
    affine[:3, 2] = along_row * column_spacing
    affine[:3, 3] = origin
    return {
        "spacing": np.array([abs(step), row_spacing, column_spacing]),
        "affine": affine,
        "original_shape": np.array([len(files), *shape], dtype=np.int64),
        "source": [str(path) for path in files],
    }


def _uniform_step(folder: Path, files: list[Path], heights: np.ndarray) -> float:
    """The step between slices along the normal, or a DataError naming the step that strays."""
    steps = np.diff(heights)
    median = float(np.median(steps))
    if abs(median) < 1e-6:  # positions are written to about 0.01 mm: a step this small is none
        raise data_error(folder, f"the slices lie at one position ({len(files)} files, median step 0 mm along the "
                         "slice normal); expected one slice per position")
    strays = np.abs(steps - median) > SLICE_STEP_TOLERANCE * abs(median)
    if strays.any():
        worst = int(np.argmax(np.abs(steps - median)))
        raise data_error(folder, f"slice positions are not evenly spaced: {files[worst].name} to "
                         f"{files[worst + 1].name} steps {steps[worst]:.3g} mm along the slice normal, the series' "
                         f"median step {median:.3g} mm ({int(strays.sum())} step(s) off by more than "
                         f"{SLICE_STEP_TOLERANCE:.0%}); expected uniform steps (a missing or extra slice?)")
    return median


def _one_of(folder: Path, files: list[Path], headers, tag: str, problem: str) -> None:
    """A DataError when the files carry several values of `tag`, listing each with its file count
    and first file (in file order)."""
    groups: dict[str, list[Path]] = {}
    for path, header in zip(files, headers):
        groups.setdefault(str(header.get(tag) or ""), []).append(path)
    if len(groups) > 1:
        listed = "; ".join(f"{value or '(none)'}: {len(paths)} files from {paths[0].name}"
                           for value, paths in groups.items())
        raise data_error(folder, problem.format(count=len(groups), groups=listed))


def _numbers(values: np.ndarray) -> str:
    return "\\".join(f"{v:.3g}" for v in values)


def _read_slice(path: Path, modality: str) -> tuple[np.ndarray, dict]:
    try:
        header = pydicom.dcmread(str(path))
        pixels = header.pixel_array
    except Exception as exc:  # pydicom raises many types for broken files
        raise data_error(path, f"unreadable or truncated DICOM ({reason(exc)})") from None
    found = str(getattr(header, "Modality", modality))
    if found != modality:
        raise data_error(path, f"DICOM modality {found}; expected {modality}")
    if pixels.ndim != 2:
        raise data_error(path, f"pixel data of shape {pixels.shape}; expected one 2D slice per file")
    pixels = pixels.astype(np.float32)
    if modality == "CT":
        # Stored values to Hounsfield units.
        slope = float(getattr(header, "RescaleSlope", 1.0))
        intercept = float(getattr(header, "RescaleIntercept", 0.0))
        pixels = pixels * slope + intercept
    require_finite(path, pixels, f"{modality} slice")
    return pixels, {tag: header.get(tag) for tag in SERIES_TAGS}


__all__ = ["SERIES_TAGS", "SLICE_STEP_TOLERANCE", "read_dicom_series", "series_geometry"]
