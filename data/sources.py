"""One adapter per dataset: how to find its cases, name them, list their files,
read them as stored (for `data.check`) and preprocess them (for the cache).

The dataset classes and the checker only talk to these adapters, so adding a
dataset means one reader module and one entry here.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from data.brats import MODALITIES, brats_case_files, find_brats_cases, read_brats_case
from data.chaos import ORGANS, chaos_case_files, find_chaos_cases, preprocess_chaos_case, read_chaos_case, series_of
from data.dsb2018 import find_dsb2018_cases, preprocess_dsb2018_case, read_dsb2018_case
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
    ),
}


def _promise12_prepare(case: Path, options: dict) -> Arrays:
    image, label, meta = preprocess_promise12_case(
        case, options["image_size"], options["denoise"], options["denoise_time_step"],
        options["denoise_iterations"], tuple(options["intensity_percentiles"]))
    return image[:, None], label, meta
