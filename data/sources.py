"""The registry of data sets, `DATA_SETS`: per data set, how it is trained on (its `Source`: how to
find its cases, name them, list their files, read them as stored for `data.check` and preprocess
them for the cache) and how new images of it are read for a trained network (its `InputReader`).

The dataset classes, the checker, the fingerprint and prediction only talk to these, so adding a
data set means one reader module and one entry here. Data sets that describe themselves (nnunet:
its dataset.json) get an adapter built for their data root (`source_for`). `extract_fingerprint`
reads the cases of a data set given by name; `data_identity` tells its files from other ones.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Mapping

from data.brats import (
    BRATS_LABEL_NAMES,
    BRATS_REGIONS,
    LABELS,
    MODALITIES,
    brats_case_files,
    find_brats_cases,
    read_brats_case,
)
from data.chaos import (
    CHAOS_INPUTS,
    ORGANS,
    SERIES,
    chaos_case_files,
    find_chaos_cases,
    preprocess_chaos_case,
    read_chaos_case,
    series_of,
)
from data.dsb2018 import DSB2018_INPUTS, find_dsb2018_cases, preprocess_dsb2018_case, read_dsb2018_case
from data.dsb2018 import LABEL_NAMES as DSB2018_LABELS
from data.errors import data_error
from data.interfaces import Arrays, InputReader, Source
from data.io.images import UNIT_RANGE_RULE
from data.nnunet.fingerprint import FOREGROUND_SAMPLES, fingerprint_of
from data.nnunet.inputs import NNUNET_INPUTS
from data.nnunet.source import nnunet_source
from data.prediction.label_maps import class_label_map, region_label_map
from data.presets import get_preset
from data.promise12 import LABEL_NAMES as PROMISE12_LABELS
from data.promise12 import (
    PROMISE12_INPUTS,
    find_promise12_cases,
    preprocess_promise12_case,
    read_promise12_case,
    segmentation_path,
)
from data.sample import sample_root
from data.splits import SPLITS
from data.transforms.resize import RESIZE_DESCRIPTION


@dataclass(frozen=True)
class DataSetEntry:
    """One data set: how it is trained on and how new images of it are read."""

    # Its adapter, the same for every data root ...
    source: Source | None
    # ... or, for a data set that describes itself, the adapter built for a data root.
    root_source: Callable[[Path, dict], Source] | None
    # How new images are found and read for a network trained on it; None: not as 2D inputs (BraTS
    # case folders are read whole by the 3D predictor).
    inputs: InputReader | None


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




def _chaos_label_map(options: dict) -> dict:
    if options["modality"] == "MR" and options["organs"]:
        return class_label_map(ORGANS, num_classes=len(ORGANS))
    return class_label_map(ORGANS[:2], num_classes=1)


def _chaos_prediction(options: dict) -> dict:
    series = series_of(options["modality"], options["sequence"])
    intensity = (f"Hounsfield units (RescaleSlope/Intercept) windowed {list(options['hu_window'])} onto [0, 1]"
                 if options["modality"] == "CT" else "scanner units, per-series percentiles 0.5/99.5 onto [0, 1]")
    return {"inputs": CHAOS_INPUTS.name, "series_folder": SERIES[series][0], "mask_folder": SERIES[series][1],
            "slice_axis": "files", "slice_axis_rule": "one slice per DICOM file, in natural order of the file names",
            "steps": [f"read the {series} DICOM series ({options['modality']} modality checked; one series "
                      "per folder, uniform slice steps)", intensity,
                      "each slice " + RESIZE_DESCRIPTION]}


def _brats_label_map(options: dict) -> dict:
    if options["target"] == "regions":
        return region_label_map(BRATS_LABEL_NAMES, LABELS, BRATS_REGIONS, painting="brats")
    return class_label_map(BRATS_LABEL_NAMES, LABELS, num_classes=len(LABELS))


def _dsb2018_prepare(case: Path, options: dict) -> Arrays:
    image, label, meta = preprocess_dsb2018_case(case, options["image_size"])
    return image[None], label[None], meta  # a stack of one slice


def _promise12_prepare(case: Path, options: dict) -> Arrays:
    image, label, meta = preprocess_promise12_case(
        case, options["image_size"], options["denoise"], options["denoise_time_step"],
        options["denoise_iterations"], tuple(options["intensity_percentiles"]))
    return image[:, None], label, meta


DSB2018 = Source(
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
        "inputs": DSB2018_INPUTS.name, "slice_axis": None,
        "steps": ["read the image (PNG, TIFF, BMP)", "grey repeated to RGB, alpha dropped",
                  f"onto [0, 1]: {UNIT_RANGE_RULE}", RESIZE_DESCRIPTION]},
)

CHAOS = Source(
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
)

PROMISE12 = Source(
    kind="slices",
    find=lambda root, options: find_promise12_cases(root),
    case_id=lambda case: case.stem,
    files=_promise12_files,
    read=lambda case, options: read_promise12_case(case),
    prepare=_promise12_prepare,
    channels=lambda options: ("T2",),
    num_classes=lambda options: 1,
    label_map=lambda options: class_label_map(PROMISE12_LABELS, num_classes=1),
    prediction=lambda options: {
        "inputs": PROMISE12_INPUTS.name, "slice_axis": "first",
        "slice_axis_rule": "axis 0 of the (z, y, x) array: one slice per z",
        "steps": ["read the volume (MetaImage, NIfTI, MHA, NRRD) as float32",
                  "SimpleITK CurvatureFlow denoising" if options["denoise"] else "no denoising",
                  "resampled in-plane to image_size x image_size over the same extent (linear)",
                  f"percentiles {list(options['intensity_percentiles'])} of the volume onto [0, 1]"]},
)

BRATS = Source(
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
)


DATA_SETS: dict[str, DataSetEntry] = {
    "dsb2018": DataSetEntry(DSB2018, None, DSB2018_INPUTS),
    "chaos": DataSetEntry(CHAOS, None, CHAOS_INPUTS),
    "promise12": DataSetEntry(PROMISE12, None, PROMISE12_INPUTS),
    "brats": DataSetEntry(BRATS, None, None),
    "nnunet": DataSetEntry(None, nnunet_source, NNUNET_INPUTS),
}

# Data sets whose adapter depends on the data root (it reads the data set's own description).
ROOT_SOURCES: dict[str, Callable[[Path, dict], Source]] = {
    name: entry.root_source for name, entry in DATA_SETS.items() if entry.root_source is not None}


def source_for(name: str, root: Path, options: dict) -> Source:
    """The adapter of data set `name` at `root` with these options."""
    entry = DATA_SETS[name]
    return entry.source if entry.root_source is None else entry.root_source(Path(root), options)


def extract_fingerprint(
    dataset: str | Source,
    root: str | os.PathLike | None = None,
    cases: list[str] | None = None,
    *,
    options: dict | None = None,
    samples_per_case: int = FOREGROUND_SAMPLES,
    skip_bad: bool = False,
) -> dict:
    """The fingerprint (`data.nnunet.fingerprint`) of `cases` (None: every case) of a data set given
    by name (its preset's options updated by `options`; root None: its sample data) or by its
    source adapter. A bad case raises its DataError, or with `skip_bad` is left out and listed
    under "skipped"."""
    if isinstance(dataset, str):
        options = {**get_preset(dataset).options, **(options or {})}
        root = sample_root(dataset) if root is None else Path(root).expanduser()
        source = source_for(dataset, root, options)
    else:
        source, options = dataset, dict(options or {})
        if root is None:
            raise ValueError("extract_fingerprint needs the data root when given a source")
        root = Path(root).expanduser()
    found = source.case_paths(root, options)
    chosen = sorted(found) if cases is None else list(cases)
    unknown = [case for case in chosen if case not in found]
    if unknown:
        raise data_error(root, f"case {unknown[0]} ({len(unknown)} in all) is not in the data set; "
                         "expected case ids of this data root")
    return fingerprint_of(source, {case: found[case] for case in chosen}, options, samples_per_case, skip_bad)


#: Bytes of each end of a file that `data_identity` hashes: another image differs there (headers hold
#: UIDs and sizes, compressed data differs from its first block), and reading them costs little
#: even for thousands of files.
IDENTITY_BYTES = 4096


def _file_identity(path: Path, root: Path) -> bytes:
    size = path.stat().st_size
    with open(path, "rb") as stream:
        head = stream.read(IDENTITY_BYTES)
        stream.seek(max(size - IDENTITY_BYTES, len(head)))
        tail = stream.read(IDENTITY_BYTES)
    name = path.relative_to(root).as_posix() if path.is_relative_to(root) else path.name
    return f"{name}\0{size}\0".encode() + hashlib.sha256(head + tail).digest()


def data_identity(dataset: str, root: str | os.PathLike | None, splits: Mapping, **options) -> dict:
    """What a run's data is, to tell other files from the same files moved: the data root and, per
    case `splits` names (every split), a hash of its files (each one's path below the root, size,
    and first and last `IDENTITY_BYTES` bytes). `root` None: the sample data; `options`: the data
    set's (`get_dataset`'s). A case not under `root` gets the hash "missing"."""
    options = {**get_preset(dataset).options, **{key: value for key, value in options.items() if value is not None}}
    root = (sample_root(dataset) if root is None else Path(root).expanduser()).resolve()
    source = source_for(dataset, root, options)
    found = source.case_paths(root, options)
    cases = {}
    for case in sorted({case for split in SPLITS for case in splits.get(split, ())}):
        if case not in found:
            cases[case] = "missing"
            continue
        files = sorted(Path(file).resolve() for file in source.files(found[case], options))
        cases[case] = hashlib.sha256(b"".join(_file_identity(file, root) for file in files)).hexdigest()[:16]
    return {"root": str(root), "cases": cases}
