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

from data.brats import BRATS_REGIONS, MODALITIES, brats_case_files, find_brats_cases, read_brats_case
from data.chaos import ORGANS, chaos_case_files, find_chaos_cases, preprocess_chaos_case, read_chaos_case, series_of
from data.dsb2018 import find_dsb2018_cases, preprocess_dsb2018_case, read_dsb2018_case
from data.errors import data_error
from data.image_io import companion_files
from data.nnunet import dataset_problems, find_nnunet_cases, inspect_nnunet_case, read_nnunet_case
from data.nnunet_prepare import label_targets, plan_nnunet, prepare_nnunet_case
from data.nnunet_spec import read_dataset_json
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
    # The classes the metrics report, one per foreground output: the label (binary), the
    # foreground classes after the background (softmax), or the regions (sigmoid channels).
    class_names: Callable[[dict], tuple[str, ...]] = lambda options: ("foreground",)
    # How the target is served: "binary" (one sigmoid mask), "index" (class indices for a
    # softmax over background + classes) or "regions" (one sigmoid channel per region).
    target_kind: Callable[[dict], str] = lambda options: "binary"

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


def _chaos_organs(options: dict) -> bool:
    """CHAOS MR with its four organs: a softmax over background + liver, kidneys, spleen."""
    return options["modality"] == "MR" and options["organs"]


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
        class_names=lambda options: ("nucleus",),
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
        num_classes=lambda options: len(ORGANS) if _chaos_organs(options) else 1,
        class_names=lambda options: ORGANS[1:] if _chaos_organs(options) else ("liver",),
        target_kind=lambda options: "index" if _chaos_organs(options) else "binary",
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
        class_names=lambda options: ("prostate",),
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
        class_names=lambda options: (tuple(BRATS_REGIONS) if options["target"] == "regions"
                                     else ("necrosis/core", "oedema", "enhancing tumour")),
        target_kind=lambda options: "regions" if options["target"] == "regions" else "index",
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
        class_names=lambda options: tuple(spec.foreground),
        target_kind=lambda options: label_targets(spec).kind,
        inspect=lambda label, options: inspect_nnunet_case(spec, spec.case_id(label)),
        audit=lambda cases, options: dataset_problems(spec),
        target=label_targets(spec),
        plan=lambda cases, options, folder, skip_bad: plan_nnunet(spec, source, cases, options, folder, skip_bad),
    )
    return source


# Data sets whose adapter depends on the data root (it reads the data set's own description).
ROOT_SOURCES: dict[str, Callable[[Path, dict], Source]] = {"nnunet": nnunet_source}


def source_for(name: str, root: Path, options: dict) -> Source:
    """The adapter of data set `name` at `root` with these options."""
    if name in ROOT_SOURCES:
        return ROOT_SOURCES[name](Path(root), options)
    return SOURCES[name]
