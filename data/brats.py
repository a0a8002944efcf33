"""BraTS readers and label facts: the 2018-2023 folder layouts, four modalities
in a fixed order, labels 0/1/2/4 (ET 3 from 2023) and their names, the regions
WT/TC/ET and the order they are painted back in, the label/region/index
conversions of training targets. A prediction's labels: `data.prediction.brats`.

Spatial axes stay in the NIfTI voxel order (i, j, k), so a prediction can be
written back with the reference file's affine without any transposition.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from data.errors import checked_labels, data_error, require_data_root, require_finite
from data.io.geometry import grid_difference
from data.io.nifti import nifti_paths, read_nifti, spacing_of
from data.transforms.intensity import zscore_nonzero

# The fixed channel order of every BraTS image tensor.
MODALITIES = ("flair", "t1", "t1ce", "t2")
# The label values of a served label map, and their names.
LABELS = (0, 1, 2, 4)
BRATS_LABEL_NAMES = ("background", "necrosis / non-enhancing core", "oedema", "enhancing tumour")
# Arrays are served with ET = 4 whatever the release; 2023+ files store it as 3.
ENHANCING_LABEL = 4
# Labels per region in the official BraTS data (seed 004's "TC = label 1" is wrong).
BRATS_REGIONS: dict[str, tuple[int, ...]] = {"WT": (1, 2, 4), "TC": (1, 4), "ET": (4,)}
# The label each region is painted with when region channels become labels again, in
# BRATS_REGIONS' order, later over earlier (nnU-Net's regions_class_order): the one label of the
# region that no later region holds, so the regions read back from the labels are nested.
BRATS_REGION_ORDER = (2, 1, ENHANCING_LABEL)
# Seed 000: a predicted enhancing tumour of fewer voxels is merged into the core.
ET_THRESHOLD = 400


@dataclass(frozen=True)
class BratsLayout:
    name: str
    case_pattern: re.Pattern
    separator: str  # between the case id and the modality in file names
    # File suffixes of flair, t1, t1ce, t2 (MODALITIES order) in this release.
    modalities: tuple[str, str, str, str]
    segmentation: str
    enhancing_label: int  # 4 up to 2021, 3 from 2023
    example: str


LAYOUTS = (
    BratsLayout("2018", re.compile(r"Brats18_.+"), "_", MODALITIES, "seg", 4,
                "{HGG,LGG}/Brats18_*/<case>_{flair,t1,t1ce,t2,seg}.nii.gz"),
    BratsLayout("2019", re.compile(r"BraTS19_.+"), "_", MODALITIES, "seg", 4,
                "{HGG,LGG}/BraTS19_*/<case>_{flair,t1,t1ce,t2,seg}.nii.gz"),
    BratsLayout("2020", re.compile(r"BraTS20_(Training|Validation)_\d{3}"), "_", MODALITIES, "seg", 4,
                "BraTS20_Training_NNN/<case>_{flair,t1,t1ce,t2,seg}.nii.gz"),
    BratsLayout("2021", re.compile(r"BraTS2021_\d{5}"), "_", MODALITIES, "seg", 4,
                "BraTS2021_NNNNN/<case>_{flair,t1,t1ce,t2,seg}.nii.gz"),
    BratsLayout("2023", re.compile(r"BraTS-[A-Z]+-\d{5}-\d{3}"), "-", ("t2f", "t1n", "t1c", "t2w"), "seg", 3,
                "BraTS-GLI-NNNNN-NNN/<case>-{t2f,t1n,t1c,t2w,seg}.nii.gz"),
)

# Known misnamed files of the official releases: case -> segmentation file name.
MISNAMED_SEGMENTATIONS = {"BraTS20_Training_355": "W39_1998.09.19_Segm.nii"}

_LAYOUT_LIST = "; ".join(f"{layout.name}: {layout.example}" for layout in LAYOUTS)
# Case folders sit at most this deep under the data root (2018: root/MICCAI.../HGG/case).
_MAX_DEPTH = 4


def layout_of(case_dir: str | os.PathLike) -> BratsLayout:
    """The release layout a case folder belongs to, from its name."""
    name = Path(case_dir).name
    for layout in LAYOUTS:
        if layout.case_pattern.fullmatch(name):
            return layout
    raise data_error(case_dir, f"folder name matches no BraTS layout; looked for {_LAYOUT_LIST}")


def find_brats_cases(root: str | os.PathLike) -> list[Path]:
    """Case folders under `root`, sorted by name, with the release layout detected.

    All cases must belong to one release; a mixture is refused rather than
    silently combining label conventions.
    """
    root = require_data_root(root)
    found: dict[str, list[Path]] = {}
    for folder, subfolders, files in os.walk(root):
        folder_path = Path(folder)
        depth = len(folder_path.relative_to(root).parts)
        layout = next((lay for lay in LAYOUTS if lay.case_pattern.fullmatch(folder_path.name)), None)
        if layout is not None and any(f.endswith((".nii", ".nii.gz")) for f in files):
            found.setdefault(layout.name, []).append(folder_path)
            subfolders[:] = []  # a case folder holds no further cases
        elif depth >= _MAX_DEPTH:
            subfolders[:] = []
        subfolders.sort()
    if not found:
        raise data_error(root, f"no BraTS case folders found; looked for {_LAYOUT_LIST}")
    if len(found) > 1:
        raise data_error(root, f"holds cases of several BraTS layouts ({', '.join(sorted(found))}); "
                         "expected one release per data root")
    (cases,) = found.values()
    names = [case.name for case in cases]
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        raise data_error(root, f"case folder {duplicates[0]} occurs more than once; expected unique case ids")
    return sorted(cases, key=lambda case: case.name)


def brats_case_files(case_dir: str | os.PathLike) -> tuple[list[Path], Path | None]:
    """The four modality files (fixed order) and the segmentation file (None if absent)."""
    case_dir = Path(case_dir)
    layout = layout_of(case_dir)
    images = []
    for canonical, suffix in zip(MODALITIES, layout.modalities):
        stem = f"{case_dir.name}{layout.separator}{suffix}"
        candidates = nifti_paths(case_dir, stem)
        if not candidates:
            raise data_error(case_dir, f"missing modality {canonical}; expected {stem}.nii.gz")
        images.append(candidates[0])
    stem = f"{case_dir.name}{layout.separator}{layout.segmentation}"
    candidates = nifti_paths(case_dir, stem)
    misnamed = MISNAMED_SEGMENTATIONS.get(case_dir.name)
    if not candidates and misnamed and (case_dir / misnamed).is_file():
        candidates = [case_dir / misnamed]
    return images, (candidates[0] if candidates else None)


def read_brats_case(
    case_dir: str | os.PathLike, normalise: bool = True, require_label: bool = False, read_label: bool = True
) -> tuple[np.ndarray, np.ndarray | None, dict]:
    """Read one case: image (4, I, J, K) float32, label (I, J, K) uint8 in 0/1/2/4 or None, meta.

    `normalise` applies the z-score on nonzero voxels per modality (the
    training preprocessing). The 2023 enhancing label 3 is returned as 4.
    `read_label=False` leaves the segmentation unread (prediction reads it
    apart with `read_brats_label`, so a bad one does not stop the prediction).
    meta: spacing, affine, original_shape, source (the flair file: the
    geometry reference for `write_nifti_like`), layout.
    """
    case_dir = Path(case_dir)
    layout = layout_of(case_dir)
    image_paths, label_path = brats_case_files(case_dir)
    if label_path is None and require_label:
        raise data_error(case_dir, f"missing segmentation; expected "
                         f"{case_dir.name}{layout.separator}{layout.segmentation}.nii.gz")
    channels = []
    reference = None  # (path, geometry) of the flair file
    for modality, path in zip(MODALITIES, image_paths):
        array, image = read_nifti(path)
        require_finite(path, array, f"modality {modality}")
        grid = _grid(array, image)
        if reference is None:
            reference = (path, grid)
        else:
            _check_same_grid(path, grid, reference)
        channels.append(array)
    image = np.stack(channels)
    label = _read_label(label_path, reference, layout) if read_label and label_path is not None else None
    if normalise:
        image = zscore_nonzero(image)
    source, grid = reference
    meta = {
        "spacing": grid["spacing"],
        "affine": grid["affine"],
        "original_shape": np.asarray(grid["shape"], dtype=np.int64),
        "source": str(source),
        "layout": layout.name,
    }
    return image, label, meta


def read_brats_label(case_dir: str | os.PathLike, meta: dict) -> np.ndarray | None:
    """A case's segmentation (labels 0/1/2/4) checked against the grid of its image (`meta` of
    `read_brats_case`), or None if the case has none; a DataError names the file when its
    values or grid are wrong."""
    case_dir = Path(case_dir)
    _, label_path = brats_case_files(case_dir)
    if label_path is None:
        return None
    reference = (Path(meta["source"]), {"shape": tuple(meta["original_shape"]), "spacing": meta["spacing"],
                                        "affine": meta["affine"]})
    return _read_label(label_path, reference, layout_of(case_dir))


def _read_label(label_path: Path, reference: tuple, layout: BratsLayout) -> np.ndarray:
    raw, label_image = read_nifti(label_path, dtype=np.float32)
    _check_same_grid(label_path, _grid(raw, label_image), reference)
    return _canonical_labels(label_path, raw, layout)


def brats_regions(labels: np.ndarray, enhancing_label: int = ENHANCING_LABEL) -> dict[str, np.ndarray]:
    """Boolean WT, TC, ET masks of a label map. ``enhancing_label=3`` reads BraTS 2023+ maps."""
    if enhancing_label not in (3, 4):
        raise ValueError(f"enhancing_label must be 4 (BraTS <= 2021) or 3 (BraTS 2023+), got {enhancing_label}")
    labels = np.asarray(labels.cpu() if hasattr(labels, "cpu") else labels)
    return {name: np.isin(labels, [enhancing_label if v == ENHANCING_LABEL else v for v in members])
            for name, members in BRATS_REGIONS.items()}


def brats_labels_to_regions(labels: np.ndarray) -> np.ndarray:
    """Labels 0/1/2/4 (any shape) -> float32 (3, *shape) channels WT={1,2,4}, TC={1,4}, ET={4}."""
    return np.stack(list(brats_regions(labels).values())).astype(np.float32)


def brats_labels_to_index(labels: np.ndarray) -> np.ndarray:
    """Labels 0/1/2/4 -> class indices 0/1/2/3 (int64), for softmax training."""
    labels = np.asarray(labels)
    index = labels.astype(np.int64)
    index[labels == ENHANCING_LABEL] = 3
    return index


def brats_index_to_labels(index: np.ndarray) -> np.ndarray:
    """Class indices 0/1/2/3 -> labels 0/1/2/4 (uint8), for writing NIfTI."""
    index = np.asarray(index)
    labels = index.astype(np.uint8)
    labels[index == 3] = ENHANCING_LABEL
    return labels


def _canonical_labels(path: Path, raw: np.ndarray, layout: BratsLayout) -> np.ndarray:
    allowed = (0, 1, 2, layout.enhancing_label)
    labels = checked_labels(path, raw, set(allowed), f"{', '.join(map(str, allowed))} (BraTS {layout.name})")
    if layout.enhancing_label != 4:
        labels[labels == layout.enhancing_label] = 4
    return labels


def _grid(array: np.ndarray, image) -> dict:
    """The voxel grid of a NIfTI file as read (voxel order i, j, k; its RAS affine)."""
    return {"shape": array.shape, "spacing": spacing_of(image).astype(np.float64),
            "affine": np.asarray(image.affine, dtype=np.float64)}


def _check_same_grid(path: Path, grid: dict, reference: tuple) -> None:
    """nnU-Net's check: every modality and the segmentation on the first modality's grid (shape,
    spacing, origin, direction)."""
    reference_path, reference_grid = reference
    difference = grid_difference(grid, reference_grid, reference_path.name)
    if difference is not None:
        raise data_error(path, f"{difference}; expected all modalities and the segmentation on one grid")
