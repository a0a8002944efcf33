"""One adapter per dataset: how to find its cases, name them, list their files,
read them as stored (for `data.check`) and preprocess them (for the cache).

The dataset classes and the checker only talk to these adapters, so adding a
dataset means one reader module and one entry here. Data sets that describe
themselves (nnunet: its dataset.json) get an adapter built for their data root
(`source_for`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np

from data.brats import BRATS_REGIONS, LABELS, MODALITIES, brats_case_files, find_brats_cases, read_brats_case
from data.chaos import (
    ORGANS,
    SERIES,
    chaos_case_files,
    find_chaos_cases,
    preprocess_chaos_case,
    read_chaos_case,
    series_of,
)
from data.dsb2018 import LABEL_NAMES as DSB2018_LABELS
from data.dsb2018 import find_dsb2018_cases, preprocess_dsb2018_case, read_dsb2018_case
from data.errors import data_error
from data.io.images import companion_files
from data.label_maps import class_label_map, region_label_map
from data.nnunet import dataset_problems, find_nnunet_cases, inspect_nnunet_case, read_nnunet_case
from data.nnunet_prepare import label_targets, normalisation_of, plan_nnunet, prepare_nnunet_case
from data.nnunet_spec import read_dataset_json
from data.promise12 import LABEL_NAMES as PROMISE12_LABELS
from data.promise12 import find_promise12_cases, preprocess_promise12_case, read_promise12_case, segmentation_path

Arrays = tuple[np.ndarray, np.ndarray | None, dict]


@dataclass(frozen=True)
class Source:
    # "slices": 2D items from 3D cases, cached per case as (S, C, H, W)
    # stacks; "images": one 2D item per case, cached as a stack of one;
    # "volumes": 3D items cached as (C, *spatial).
    kind: str
    find: Callable[[Path, dict], list[Path]]
    case_id: Callable[[Path], str]
    files: Callable[[Path, dict], list[Path]]
    read: Callable[[Path, dict], Arrays]
    prepare: Callable[[Path, dict], Arrays]
    # The names of the input channels, for summaries.
    channels: Callable[[dict], tuple[str, ...]]
    # Output channels a network needs for the served target (1 = binary, sigmoid).
    num_classes: Callable[[dict], int]
    # Optional. Every problem of a case, one line each, and its arrays when it has none
    # (without it, `data.check` reports the first DataError of `read`).
    inspect: Callable[[Path, dict], tuple[Arrays | None, list[str]]] | None = None
    # Optional. Problems of the data set as a whole, given its cases (one line each).
    audit: Callable[[list[Path], dict], list[str]] | None = None
    # Optional. The served target of a cached label map (default: the dataset classes' rule).
    target: Callable[[np.ndarray], Any] | None = None
    # Optional. `options` completed from the training cases before any case is prepared:
    # (train case id -> path, options, cache folder, skip_bad) -> options.
    plan: Callable[[dict[str, Path], dict, Path, bool], dict] | None = None
    # The label map of the served target (`data.label_maps`): values, names, how outputs become them.
    label_map: Callable[[dict], dict] | None = None
    # How new images are given to a network trained on this data (`data.inputs`): the input
    # format, the slicing axis rule of volumes, and the preprocessing steps in words.
    prediction: Callable[[dict], dict] | None = None

    @property
    def spatial_dims(self) -> int:
        return 3 if self.kind == "volumes" else 2


def _chaos_files(case: Path, options: dict) -> list[Path]:
    dicoms, masks = chaos_case_files(case, series_of(options["modality"], options["sequence"]))
    return dicoms + masks


def _promise12_files(case: Path, options: dict) -> list[Path]:
    label = segmentation_path(case)
    raw = sorted(case.parent.glob(f"{case.stem}.*raw")) + sorted(label.parent.glob(f"{label.stem}.*raw"))
    return [case, label] + raw


def _brats_files(case: Path, options: dict) -> list[Path]:
    images, label = brats_case_files(case)
    return images + ([label] if label is not None else [])


def _dsb2018_files(case: Path, options: dict) -> list[Path]:
    return [case / "images" / f"{case.name}.png"] + sorted((case / "masks").glob("*.png"))


# What the 2D readers do to an image, in words (the checkpoint's description for people); the
# functions that do it are the readers' own, called by training and prediction alike.
_RESIZE = "resized to image_size x image_size (bilinear, antialiased; labels nearest)"
BRATS_LABEL_NAMES = ("background", "necrosis / non-enhancing core", "oedema", "enhancing tumour")


def _chaos_label_map(options: dict) -> dict:
    if options["modality"] == "MR" and options["organs"]:
        return class_label_map(ORGANS, num_classes=len(ORGANS))
    return class_label_map(ORGANS[:2], num_classes=1)


def _chaos_prediction(options: dict) -> dict:
    series = series_of(options["modality"], options["sequence"])
    intensity = (f"Hounsfield units (RescaleSlope/Intercept) windowed {list(options['hu_window'])} onto [0, 1]"
                 if options["modality"] == "CT" else "scanner units, per-series percentiles 0.5/99.5 onto [0, 1]")
    return {"inputs": "dicom", "series_folder": SERIES[series][0], "mask_folder": SERIES[series][1],
            "slice_axis": "files", "slice_axis_rule": "one slice per DICOM file, in natural order of the file names",
            "steps": [f"read the {series} DICOM series ({options['modality']} modality checked)", intensity,
                      "each slice " + _RESIZE]}


def _brats_label_map(options: dict) -> dict:
    if options["target"] == "regions":
        return region_label_map(BRATS_LABEL_NAMES, LABELS, BRATS_REGIONS, painting="brats")
    return class_label_map(BRATS_LABEL_NAMES, LABELS, num_classes=len(LABELS))


def _dsb2018_prepare(case: Path, options: dict) -> Arrays:
    image, label, meta = preprocess_dsb2018_case(case, options["image_size"])
    return image[None], label[None], meta  # a stack of one slice


SOURCES: dict[str, Source] = {
    "dsb2018": Source(
        kind="images",
        find=lambda root, options: find_dsb2018_cases(root),
        case_id=lambda case: case.name,
        files=_dsb2018_files,
        read=lambda case, options: read_dsb2018_case(case),
        prepare=_dsb2018_prepare,
        channels=lambda options: ("red", "green", "blue"),
        num_classes=lambda options: 1,
        label_map=lambda options: class_label_map(DSB2018_LABELS, num_classes=1),
        prediction=lambda options: {
            "inputs": "images", "slice_axis": None,
            "steps": ["read the image (PNG, TIFF, BMP)", "grey repeated to RGB, alpha dropped",
                      "integer pixels divided by their type's maximum onto [0, 1]", _RESIZE]},
    ),
    "chaos": Source(
        kind="slices",
        find=lambda root, options: find_chaos_cases(root, options["modality"], options["sequence"]),
        case_id=lambda case: case.name,
        files=_chaos_files,
        read=lambda case, options: read_chaos_case(case, options["modality"], options["sequence"]),
        prepare=lambda case, options: preprocess_chaos_case(
            case, options["image_size"], options["modality"], options["sequence"], tuple(options["hu_window"])),
        channels=lambda options: (series_of(options["modality"], options["sequence"]),),
        num_classes=lambda options: len(ORGANS) if options["modality"] == "MR" and options["organs"] else 1,
        label_map=_chaos_label_map,
        prediction=_chaos_prediction,
    ),
    "promise12": Source(
        kind="slices",
        find=lambda root, options: find_promise12_cases(root),
        case_id=lambda case: case.stem,
        files=_promise12_files,
        read=lambda case, options: read_promise12_case(case),
        prepare=lambda case, options: _promise12_prepare(case, options),
        channels=lambda options: ("T2",),
        num_classes=lambda options: 1,
        label_map=lambda options: class_label_map(PROMISE12_LABELS, num_classes=1),
        prediction=lambda options: {
            "inputs": "volumes", "slice_axis": "first",
            "slice_axis_rule": "axis 0 of the (z, y, x) array: one slice per z",
            "steps": ["read the volume (MetaImage, NIfTI, MHA, NRRD) as float32",
                      "SimpleITK CurvatureFlow denoising" if options["denoise"] else "no denoising",
                      "resampled in-plane to image_size x image_size over the same extent (linear)",
                      f"percentiles {list(options['intensity_percentiles'])} of the volume onto [0, 1]"]},
    ),
    "brats": Source(
        kind="volumes",
        find=lambda root, options: find_brats_cases(root),
        case_id=lambda case: case.name,
        files=_brats_files,
        read=lambda case, options: read_brats_case(case, normalise=False, require_label=True),
        prepare=lambda case, options: read_brats_case(case, normalise=True, require_label=True),
        channels=lambda options: MODALITIES,
        # "regions": WT/TC/ET sigmoid channels; "labels"/"index": 4 classes.
        num_classes=lambda options: 3 if options["target"] == "regions" else 4,
        label_map=_brats_label_map,
        prediction=lambda options: {
            "inputs": "brats", "slice_axis": None,
            "steps": ["read the four modalities " + ", ".join(MODALITIES) + " of a case folder",
                      "z-score per modality over the nonzero (brain) voxels",
                      "sliding windows of the training crop"]},
    ),
}


def _promise12_prepare(case: Path, options: dict) -> Arrays:
    image, label, meta = preprocess_promise12_case(
        case, options["image_size"], options["denoise"], options["denoise_time_step"],
        options["denoise_iterations"], tuple(options["intensity_percentiles"]))
    return image[:, None], label, meta


def nnunet_source(root: Path, options: dict) -> Source:
    """The adapter of the nnU-Net v2 / Decathlon data set at `root` (its dataset.json read once)."""
    spec = read_dataset_json(root)
    dims = options["spatial_dims"]
    if dims not in (2, 3):
        raise ValueError(f"spatial_dims must be 2 or 3, got {dims!r}")
    if dims == 3 and spec.dims == 2:
        raise data_error(spec.path, f"describes 2D images ({spec.file_ending}); spatial_dims=3 needs 3D volumes")
    kind = "volumes" if dims == 3 else "images" if spec.dims == 2 else "slices"

    def files(label: Path, options: dict) -> list[Path]:
        case_files = spec.cases[spec.case_id(label)]
        paths = [path for path in [*case_files.images.values(), case_files.label] if path.is_file()]
        return paths + [extra for path in paths for extra in companion_files(path)]

    source = Source(
        kind=kind,
        find=lambda root, options: find_nnunet_cases(spec),
        case_id=spec.case_id,
        files=files,
        read=lambda label, options: read_nnunet_case(spec, spec.case_id(label)),
        prepare=lambda label, options: prepare_nnunet_case(spec, spec.case_id(label), options),
        channels=lambda options: spec.channels,
        num_classes=lambda options: spec.num_classes,
        inspect=lambda label, options: inspect_nnunet_case(spec, spec.case_id(label)),
        audit=lambda cases, options: dataset_problems(spec),
        target=label_targets(spec),
        plan=lambda cases, options, folder, skip_bad: plan_nnunet(spec, source, cases, options, folder, skip_bad),
        label_map=lambda options: _nnunet_label_map(spec),
        prediction=lambda options: _nnunet_prediction(spec, kind, options),
    )
    return source


def _nnunet_label_map(spec) -> dict:
    names = list(spec.labels)
    if spec.has_regions:
        return region_label_map(names, spec.label_values, spec.foreground, spec.regions_class_order)
    values = [spec.labels[name][0] for name in names]
    return class_label_map(names, values, num_classes=spec.num_classes)


def _nnunet_prediction(spec, kind: str, options: dict) -> dict:
    schemes = {name: normalisation_of(name) for name in spec.channels}
    described = {"slice_axis": "coarsest",
                 "slice_axis_rule": "the axis of the coarsest spacing (the first on ties), per volume"
                 } if kind == "slices" else {"slice_axis": None}
    return {"inputs": "nnunet", "file_ending": spec.file_ending, "layout": spec.layout, **described,
            "label_values": list(spec.label_values),
            "normalisation": schemes,
            "steps": [f"read {len(spec.channels)} channel(s) {', '.join(spec.channels)} ({spec.file_ending}; "
                      "imagesTs/<case>_XXXX files or one multi-channel file)",
                      "per channel: " + ", ".join(f"{name} {scheme}" for name, scheme in schemes.items())
                      + " (nnU-Net's schemes; CT with the training cases' foreground statistics)",
                      *(["slices cut along the coarsest axis"] if kind == "slices" else []),
                      *([_RESIZE] if kind != "volumes" else [])]}


# Data sets whose adapter depends on the data root (it reads the data set's own description).
ROOT_SOURCES: dict[str, Callable[[Path, dict], Source]] = {"nnunet": nnunet_source}


def source_for(name: str, root: Path, options: dict) -> Source:
    """The adapter of data set `name` at `root` with these options."""
    if name in ROOT_SOURCES:
        return ROOT_SOURCES[name](Path(root), options)
    return SOURCES[name]
