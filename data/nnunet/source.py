"""The adapter of an nnU-Net v2 / Decathlon data set, built for its data root (its dataset.json
read once): how its cases are found, read, checked, planned and served, its label map and how
new images are given to a network trained on it."""

from __future__ import annotations

from pathlib import Path

from data.errors import data_error
from data.interfaces import Source
from data.io.images import companion_files
from data.nnunet.inputs import NNUNET_INPUTS
from data.nnunet.prepare import label_targets, normalisation_of, plan_nnunet, prepare_nnunet_case
from data.nnunet.reader import dataset_problems, find_nnunet_cases, inspect_nnunet_case, read_nnunet_case
from data.nnunet.spec import NnunetSpec, read_dataset_json
from data.prediction.label_maps import class_label_map, region_label_map
from data.transforms.resize import RESIZE_DESCRIPTION


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
        label_map=lambda options: _label_map(spec),
        prediction=lambda options: _prediction(spec, kind, options),
    )
    return source


def _label_map(spec: NnunetSpec) -> dict:
    names = list(spec.labels)
    if spec.has_regions:
        return region_label_map(names, spec.label_values, spec.foreground, spec.regions_class_order)
    values = [spec.labels[name][0] for name in names]
    return class_label_map(names, values, num_classes=spec.num_classes)


def _prediction(spec: NnunetSpec, kind: str, options: dict) -> dict:
    schemes = {name: normalisation_of(name) for name in spec.channels}
    described = {"slice_axis": "coarsest",
                 "slice_axis_rule": "the axis of the coarsest spacing (the first on ties), per volume"
                 } if kind == "slices" else {"slice_axis": None}
    return {"inputs": NNUNET_INPUTS.name, "file_ending": spec.file_ending, "layout": spec.layout, **described,
            "label_values": list(spec.label_values),
            "normalisation": schemes,
            "steps": [f"read {len(spec.channels)} channel(s) {', '.join(spec.channels)} ({spec.file_ending}; "
                      "imagesTs/<case>_XXXX files or one multi-channel file)",
                      "per channel: " + ", ".join(f"{name} {scheme}" for name, scheme in schemes.items())
                      + " (nnU-Net's schemes; CT with the training cases' foreground statistics)",
                      *(["slices cut along the coarsest axis"] if kind == "slices" else []),
                      *([RESIZE_DESCRIPTION] if kind != "volumes" else [])]}
