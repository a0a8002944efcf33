"""CHAOS readers: DICOM series paired with their PNG masks; new series read for a trained
network (`CHAOS_INPUTS`).

Slice k's DICOM pairs with slice k's mask by the natural sort of the file
NAMES. Sorting by ImagePositionPatient would reverse many CT cases (their z
decreases with the file index) and silently misalign every mask. The series are read
through `data.io.dicom`, whose rule (one series of one patient per folder, uniform slice
steps) training, `lwnas check` and prediction share.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np

from data.errors import DataError, checked_labels, data_error, require_data_root
from data.interfaces import InputReader, PredictionInput
from data.io.dicom import read_dicom_series
from data.io.png import read_png
from data.transforms.intensity import scale_percentiles, standardise, window
from data.transforms.resize import resize_images, resize_labels, resized_affine

MODALITIES = ("CT", "MR")
# Series name -> (DICOM folder, mask folder), relative to the patient folder.
SERIES = {
    "CT": ("DICOM_anon", "Ground"),
    "T2SPIR": ("T2SPIR/DICOM_anon", "T2SPIR/Ground"),
    # T1 in- and out-phase share one Ground folder.
    "T1DUAL_InPhase": ("T1DUAL/DICOM_anon/InPhase", "T1DUAL/Ground"),
    "T1DUAL_OutPhase": ("T1DUAL/DICOM_anon/OutPhase", "T1DUAL/Ground"),
}
ORGANS = ("background", "liver", "right kidney", "left kidney", "spleen")
# MR mask grey levels are 63/126/189/252; the challenge's own evaluation
# accepts these ranges around them. (low, high, class index)
MR_GREY_LEVELS = ((55, 70, 1), (110, 135, 2), (175, 200, 3), (240, 255, 4))


def series_of(modality: str, sequence: str = "T2SPIR") -> str:
    """The SERIES key for a modality ("CT" or "MR") and, for MR, its sequence."""
    if modality not in MODALITIES:
        raise ValueError(f"unknown CHAOS modality {modality!r}: expected one of {', '.join(MODALITIES)}")
    if modality == "CT":
        return "CT"
    if sequence not in SERIES or sequence == "CT":
        choices = ", ".join(name for name in SERIES if name != "CT")
        raise ValueError(f"unknown CHAOS MR sequence {sequence!r}: expected one of {choices}")
    return sequence


def natural_key(path: Path) -> list:
    """Sort key that orders i2.dcm before i10.dcm (digit runs compared as numbers)."""
    return [int(token) if token.isdigit() else token.lower() for token in re.split(r"(\d+)", path.name)]


def find_chaos_cases(root: str | os.PathLike, modality: str = "CT", sequence: str = "T2SPIR") -> list[Path]:
    """Patient folders of one modality, in natural order of their names.

    Accepts the data root itself, `<root>/<modality>` or the official
    `<root>/Train_Sets/<modality>`.
    """
    root = require_data_root(root)
    dicom_folder = SERIES[series_of(modality, sequence)][0]
    for parent in (root / "Train_Sets" / modality, root / modality, root):
        if parent.is_dir():
            patients = [d for d in parent.iterdir() if (d / dicom_folder).is_dir()]
            if patients:
                return sorted(patients, key=natural_key)
    looked = (f"Train_Sets/{modality}/<patient>/{dicom_folder}/*.dcm, {modality}/<patient>/{dicom_folder}/*.dcm "
              f"or <patient>/{dicom_folder}/*.dcm")
    raise data_error(root, f"no CHAOS {modality} patients found; looked for {looked}")


def chaos_case_files(patient_dir: str | os.PathLike, series: str = "CT") -> tuple[list[Path], list[Path]]:
    """DICOM files and mask PNGs of one series, paired by index (natural sort of names)."""
    dicoms, masks = _listed_series(patient_dir, series)
    _check_pairs(patient_dir, series, dicoms, masks)
    return dicoms, masks


def _listed_series(patient_dir: str | os.PathLike, series: str) -> tuple[list[Path], list[Path]]:
    patient_dir = Path(patient_dir)
    dicom_folder, mask_folder = (patient_dir / part for part in SERIES[series])
    if not dicom_folder.is_dir():
        raise data_error(patient_dir, f"missing {SERIES[series][0]}/; expected the {series} DICOM folder")
    return dicom_series_files(dicom_folder), mask_files(mask_folder)


def _check_pairs(patient_dir: str | os.PathLike, series: str, dicoms: list[Path], masks: list[Path]) -> None:
    if len(dicoms) != len(masks):
        raise data_error(patient_dir, f"{len(dicoms)} DICOM files in {SERIES[series][0]}/ but {len(masks)} "
                         f"mask PNGs in {SERIES[series][1]}/; expected one mask per slice")


def dicom_series_files(folder: str | os.PathLike) -> list[Path]:
    """The .dcm files of one series folder in slice order (natural sort of the names)."""
    folder = Path(folder)
    dicoms = sorted(folder.glob("*.dcm"), key=natural_key)
    if not dicoms:
        raise data_error(folder, "holds no .dcm files; expected one DICOM file per slice")
    return dicoms


def mask_files(folder: str | os.PathLike) -> list[Path]:
    """The mask PNGs of a series (a `Ground/` folder) in slice order; none if there is no folder."""
    folder = Path(folder)
    return sorted(folder.glob("*.png"), key=natural_key) if folder.is_dir() else []


def read_chaos_masks(masks: list[Path], modality: str, shape: tuple[int, int],
                     dicoms: list[Path] | None = None) -> np.ndarray:
    """The label stack (S, H, W) uint8 of a series' mask PNGs: CT 0/1 (liver), MR 0..4 (ORGANS)."""
    labels = []
    for index, mask_path in enumerate(masks):
        mask = read_png(mask_path)
        if mask.ndim == 3:  # some tools save grey masks as RGB(A)
            mask = mask[..., 0]
        if mask.shape != tuple(shape):
            of = f"its DICOM {dicoms[index].name}" if dicoms else "the series"
            raise data_error(mask_path, f"mask shape {mask.shape} differs from {of} {tuple(shape)}; "
                             "expected image and mask of one size")
        labels.append(_ct_mask(mask_path, mask) if modality == "CT" else _mr_mask(mask_path, mask))
    return np.stack(labels)


def read_chaos_case(
    patient_dir: str | os.PathLike, modality: str = "CT", sequence: str = "T2SPIR"
) -> tuple[np.ndarray, np.ndarray, dict]:
    """Read one patient's series: image (S, H, W) float32, label (S, H, W) uint8, meta.

    CT images are in Hounsfield units, MR images in scanner units. CT labels
    are 0/1 (liver), MR labels 0..4 (ORGANS). meta: spacing (slice, row,
    column) in mm, affine from (slice, row, column) indices to DICOM patient
    coordinates (LPS), original_shape, source (per-slice DICOM paths).
    """
    series = series_of(modality, sequence)
    dicoms, masks = _listed_series(patient_dir, series)
    # the series rule first: two series in one folder also break the mask count, less clearly
    image, meta = read_dicom_series(dicoms, modality)
    _check_pairs(patient_dir, series, dicoms, masks)
    return image, read_chaos_masks(masks, modality, image.shape[1:], dicoms), meta


def preprocess_chaos_image(
    image: np.ndarray, meta: dict, image_size: int, modality: str = "CT",
    hu_window: tuple[float, float] = (-1024.0, 1024.0),
) -> tuple[np.ndarray, dict]:
    """SPEC's preprocessing of a series (S, H, W) as read: intensities to [0, 1] (CT: the
    Hounsfield window; MR: per-patient percentiles), slices resized to image_size^2. Returns
    (S, 1, size, size) float32 and the meta of the resized grid (spacing, affine) with the
    original shape; what the network sees in training and prediction alike."""
    image = window(image, *hu_window) if modality == "CT" else scale_percentiles(image)
    in_plane = image.shape[1:]
    meta = dict(meta)
    meta["spacing"] = meta["spacing"] * np.array([1.0, in_plane[0] / image_size, in_plane[1] / image_size])
    meta["affine"] = resized_affine(meta["affine"], in_plane, image_size)
    return resize_images(image[:, None], image_size), meta


def preprocess_chaos_case(
    patient_dir: str | os.PathLike,
    image_size: int,
    modality: str = "CT",
    sequence: str = "T2SPIR",
    hu_window: tuple[float, float] = (-1024.0, 1024.0),
) -> tuple[np.ndarray, np.ndarray, dict]:
    """SPEC's preprocessing (`preprocess_chaos_image`) of one patient with its labels: image
    (S, 1, size, size) float32, label (S, size, size) uint8 and the meta of the resized grid."""
    image, label, meta = read_chaos_case(patient_dir, modality, sequence)
    image, meta = preprocess_chaos_image(image, meta, image_size, modality, hu_window)
    return image, resize_labels(label, image_size), meta


def _ct_mask(path: Path, mask: np.ndarray) -> np.ndarray:
    # 1-bit masks read as 0/255; some exports use 0/1.
    return (checked_labels(path, mask, {0, 1, 255}, "0 and 255 (liver > 0)") > 0).astype(np.uint8)


def _mr_mask(path: Path, mask: np.ndarray) -> np.ndarray:
    lookup = np.full(256, 255, dtype=np.uint8)
    lookup[0] = 0
    for low, high, index in MR_GREY_LEVELS:
        lookup[low:high + 1] = index
    labels = lookup[checked_labels(path, mask, set(range(256)), "0..255")]
    if (labels == 255).any():
        unknown = np.unique(mask[labels == 255])[:5]
        raise data_error(path, f"unknown label values {', '.join(map(str, unknown))}; expected 0 and the "
                         "organ grey levels 63, 126, 189, 252")
    return labels


# -- new series for a trained network ----------------------------------------------------------


def _series_item(patient: Path, series_folder: str, mask_folder: str) -> PredictionInput:
    masks = patient / mask_folder
    return PredictionInput(patient.name, (patient / series_folder,), f"{patient.name}.nii.gz",
                           label=masks if mask_files(masks) else None)


def _find_inputs(path: Path, preprocessing: dict) -> list[PredictionInput]:
    if path.is_file():
        return []
    series_folder, mask_folder = preprocessing["series_folder"], preprocessing["mask_folder"]
    if any(path.glob("*.dcm")):
        depth = len(Path(series_folder).parts)
        if path.parts[-depth:] == Path(series_folder).parts and len(path.parts) > depth:
            return [_series_item(path.parents[depth - 1], series_folder, mask_folder)]  # a patient's series
        return [PredictionInput(path.name, (path,), f"{path.name}.nii.gz")]
    if (path / series_folder).is_dir():
        return [_series_item(path, series_folder, mask_folder)]
    options = preprocessing["options"]
    try:
        patients = find_chaos_cases(path, options["modality"], options["sequence"])
    except DataError:
        return []
    return [_series_item(patient, series_folder, mask_folder) for patient in patients]


def _read_input(item: PredictionInput, preprocessing: dict) -> tuple[np.ndarray, dict]:
    options = preprocessing["options"]
    dicoms = dicom_series_files(item.source)
    image, meta = read_dicom_series(dicoms, options["modality"])
    stack, _ = preprocess_chaos_image(image, meta, preprocessing["image_size"], options["modality"],
                                      tuple(options["hu_window"]))
    return standardise(stack, preprocessing["mean"], preprocessing["std"]), {
        "served_shape": list(image.shape), "to_output": "stack", "spacing": meta["spacing"].tolist(),
        "reference": None, "affine": meta["affine"].tolist(), "slices": [str(path) for path in dicoms]}


def _read_input_label(item: PredictionInput, preprocessing: dict, meta: dict) -> np.ndarray:
    masks = mask_files(item.label)
    slices = [Path(path) for path in meta["slices"]]
    if len(masks) != len(slices):
        raise data_error(item.label, f"{len(masks)} mask PNGs for {len(slices)} DICOM files in {item.source.name}/; "
                         "expected one mask per slice")
    return read_chaos_masks(masks, preprocessing["options"]["modality"], tuple(meta["served_shape"][1:]), slices)


CHAOS_INPUTS = InputReader(
    "dicom", _find_inputs, _read_input, _read_input_label,
    lambda preprocessing: f"a folder of .dcm files, a patient folder with {preprocessing['series_folder']}/, "
                          "or a folder of such patients")
