"""PROMISE12 readers: MetaImage (.mhd/.raw) cases read, denoised and resampled
with SimpleITK; new volumes read for a trained network (`PROMISE12_INPUTS`).

Arrays come out in SimpleITK's (z, y, x) order: slice, row, column.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np

from data.errors import checked_labels, data_error, millimetres, reason, require_data_root, require_finite
from data.interfaces import InputReader, PredictionInput
from data.io.images import VOLUME_ENDINGS, ending_of, listed_files, read_label_file, stem_of
from data.io.lazy import sitk
from data.transforms.intensity import scale_percentiles, standardise

_CASE = re.compile(r"Case\d{2}\.mhd")
_LAYOUTS = "CaseNN.mhd with CaseNN_segmentation.mhd, flat or under TrainingData_Part1/2/3"
# The label map of a case: the prostate is label 1.
LABEL_NAMES = ("background", "prostate")
SEGMENTATION_SUFFIX = "_segmentation"


def find_promise12_cases(root: str | os.PathLike) -> list[Path]:
    """The CaseNN.mhd files under `root` (searched recursively), sorted by case name."""
    root = require_data_root(root)
    cases = sorted((p for p in root.rglob("Case*.mhd") if _CASE.fullmatch(p.name)), key=lambda p: p.name)
    if not cases:
        raise data_error(root, f"no PROMISE12 cases found; looked for {_LAYOUTS}")
    names = [case.name for case in cases]
    for name in names:
        if names.count(name) > 1:
            raise data_error(root, f"{name} occurs more than once; expected unique case names")
    return cases


def segmentation_path(case_path: str | os.PathLike) -> Path:
    case_path = Path(case_path)
    return case_path.with_name(f"{case_path.stem}{SEGMENTATION_SUFFIX}.mhd")


def load_promise12_images(case_path: str | os.PathLike) -> tuple[sitk.Image, sitk.Image]:
    """The image (float32) and its segmentation as SimpleITK images, checked to share one grid."""
    case_path = Path(case_path)
    label_path = segmentation_path(case_path)
    if not label_path.is_file():
        raise data_error(case_path, f"missing segmentation; expected {label_path.name} beside it")
    image = _read_mhd(case_path, sitk.sitkFloat32)
    label = _read_mhd(label_path, sitk.sitkUInt8)
    if image.GetDimension() != 3:
        raise data_error(case_path, f"has {image.GetDimension()} dimensions; expected a 3D volume")
    require_finite(case_path, sitk.GetArrayViewFromImage(image), "T2 image")
    if image.GetSize() != label.GetSize():
        raise data_error(label_path, f"size {label.GetSize()} differs from {case_path.name} {image.GetSize()}; "
                         "expected image and segmentation on one grid")
    if not np.allclose(image.GetSpacing(), label.GetSpacing(), rtol=1e-3):
        raise data_error(label_path, f"spacing {millimetres(label.GetSpacing())} differs from {case_path.name} "
                         f"{millimetres(image.GetSpacing())}; expected image and segmentation on one grid")
    # Segmentations are sometimes written with a slightly different origin
    # (rounding); the voxel grid is what pairs them.
    label.CopyInformation(image)
    return image, label


def read_promise12_case(case_path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray, dict]:
    """Read one case as stored: image (S, H, W) float32, label (S, H, W) uint8 in {0, 1}, meta."""
    image, label = load_promise12_images(case_path)
    labels = _checked_labels(segmentation_path(case_path), sitk.GetArrayViewFromImage(label))
    return sitk.GetArrayFromImage(image), labels, geometry(image, case_path)


def preprocess_promise12_case(
    case_path: str | os.PathLike,
    image_size: int,
    denoise: bool = True,
    denoise_time_step: float = 0.125,
    denoise_iterations: int = 5,
    intensity_percentiles: tuple[float, float] = (0.5, 99.5),
) -> tuple[np.ndarray, np.ndarray, dict]:
    """SPEC's preprocessing: denoise, resample in-plane to image_size^2, scale to [0, 1].

    Returns image (S, image_size, image_size) float32, label of the same shape
    (uint8 0/1) and the meta of the resampled grid.
    """
    image, label = load_promise12_images(case_path)
    _checked_labels(segmentation_path(case_path), sitk.GetArrayViewFromImage(label))
    array, meta = preprocess_promise12_image(image, case_path, image_size, denoise, denoise_time_step,
                                             denoise_iterations, intensity_percentiles)
    label = _resample_in_plane(label, image_size, sitk.sitkNearestNeighbor)
    return array, sitk.GetArrayFromImage(label), meta


def preprocess_promise12_image(
    image: sitk.Image,
    source: str | os.PathLike,
    image_size: int,
    denoise: bool = True,
    denoise_time_step: float = 0.125,
    denoise_iterations: int = 5,
    intensity_percentiles: tuple[float, float] = (0.5, 99.5),
) -> tuple[np.ndarray, dict]:
    """SPEC's preprocessing of one float32 volume (training and prediction alike): denoise,
    resample in-plane to image_size^2, scale to [0, 1]. Returns (S, size, size) float32 and the
    meta of the resampled grid with the original shape and spacing."""
    original = geometry(image, source)
    if denoise:
        image = sitk.CurvatureFlow(image, timeStep=denoise_time_step, numberOfIterations=denoise_iterations)
    image = _resample_in_plane(image, image_size, sitk.sitkLinear)
    array = scale_percentiles(sitk.GetArrayFromImage(image), intensity_percentiles)
    meta = geometry(image, source)
    meta["original_shape"] = original["original_shape"]
    meta["original_spacing"] = original["spacing"]
    return array, meta


def read_promise12_volume(path: str | os.PathLike) -> sitk.Image:
    """A T2 volume to segment (MetaImage, NIfTI, MHA, NRRD: what SimpleITK reads) as float32,
    checked to be 3D and finite."""
    path = Path(path)
    image = _read_mhd(path, sitk.sitkFloat32)
    if image.GetDimension() != 3:
        raise data_error(path, f"has {image.GetDimension()} dimensions; expected a 3D volume")
    require_finite(path, sitk.GetArrayViewFromImage(image), "T2 image")
    return image


def geometry(image: sitk.Image, case_path: str | os.PathLike) -> dict:
    """spacing (z, y, x), affine from (z, y, x) indices to ITK physical (LPS) mm, shape, source."""
    spacing_xyz = np.asarray(image.GetSpacing(), dtype=np.float64)
    direction = np.asarray(image.GetDirection(), dtype=np.float64).reshape(3, 3)
    affine = np.eye(4)
    # Columns reversed so that index (z, y, x) maps like SimpleITK's (x, y, z).
    affine[:3, :3] = (direction * spacing_xyz)[:, ::-1]
    affine[:3, 3] = image.GetOrigin()
    return {
        "spacing": spacing_xyz[::-1].copy(),
        "affine": affine,
        "original_shape": np.asarray(image.GetSize()[::-1], dtype=np.int64),
        "source": str(case_path),
    }


def _checked_labels(path: str | os.PathLike, labels: np.ndarray) -> np.ndarray:
    return checked_labels(path, labels, set(range(len(LABEL_NAMES))), "0 and 1 (prostate)")


def _resample_in_plane(image: sitk.Image, size: int, interpolator: int) -> sitk.Image:
    """Resample x and y to `size` pixels over the same physical extent; z unchanged."""
    old_size = np.asarray(image.GetSize())
    old_spacing = np.asarray(image.GetSpacing())
    new_size = np.array([size, size, old_size[2]])
    new_spacing = old_spacing * old_size / new_size
    direction = np.asarray(image.GetDirection()).reshape(3, 3)
    # Keep the outer edges of the grid fixed: the first pixel centre moves by
    # half the change of pixel size.
    origin = np.asarray(image.GetOrigin()) + direction @ ((new_spacing - old_spacing) / 2)
    return sitk.Resample(image, [int(v) for v in new_size], sitk.Transform(), interpolator,
                         origin.tolist(), new_spacing.tolist(), image.GetDirection(), 0.0,
                         image.GetPixelID())


def _read_mhd(path: Path, pixel_type: int) -> sitk.Image:
    try:
        return sitk.ReadImage(str(path), pixel_type)
    except RuntimeError as exc:
        what = "MetaImage" if path.suffix.lower() == ".mhd" else "image"
        raise data_error(path, f"unreadable or truncated {what} ({reason(exc)})") from None


# -- new volumes for a trained network ---------------------------------------------------------


def _segmentation_beside(path: Path) -> Path | None:
    case, ending = stem_of(path), ending_of(path)
    for candidate in (path.with_name(f"{case}{SEGMENTATION_SUFFIX}{ending}"),
                      path.with_name(f"{case}{SEGMENTATION_SUFFIX}.mhd")):
        if candidate.is_file():
            return candidate
    return None


def _find_inputs(path: Path, preprocessing: dict) -> list[PredictionInput]:
    files = [path] if path.is_file() else listed_files(path, VOLUME_ENDINGS)
    return [PredictionInput(stem_of(file), (file,), f"{stem_of(file)}{ending_of(file)}", _segmentation_beside(file))
            for file in files if ending_of(file) in VOLUME_ENDINGS and not stem_of(file).endswith(SEGMENTATION_SUFFIX)]


def _read_input(item: PredictionInput, preprocessing: dict) -> tuple[np.ndarray, dict]:
    options = preprocessing["options"]
    image = read_promise12_volume(item.source)
    array, meta = preprocess_promise12_image(
        image, item.source, preprocessing["image_size"], options["denoise"], options["denoise_time_step"],
        options["denoise_iterations"], tuple(options["intensity_percentiles"]))
    return standardise(array[:, None], preprocessing["mean"], preprocessing["std"]), {
        "served_shape": meta["original_shape"].tolist(), "to_output": "stack",
        "spacing": meta["original_spacing"].tolist(), "reference": str(item.source)}


def _read_input_label(item: PredictionInput, preprocessing: dict, meta: dict) -> np.ndarray:
    # "stack": the written volume has the served shape
    labels, _ = read_label_file(item.label, tuple(meta["served_shape"]))
    return _checked_labels(item.label, labels)


PROMISE12_INPUTS = InputReader("volumes", _find_inputs, _read_input, _read_input_label,
                               lambda preprocessing: "volumes ending in " + ", ".join(VOLUME_ENDINGS))
