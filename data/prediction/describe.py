"""What a network trained on a data set needs to know to be given new images: the preprocessing
(channels and their order, intensity normalisation, image size, the slicing axis rule of volumes,
the reader options that decide them) and the label map (values, names, how outputs become them).

Both are JSON-ready dicts built from the data set's own adapter (`data.sources`) and preset, so a
checkpoint can carry them and prediction (`data.prediction.inputs`) re-runs exactly the training readers'
functions with exactly these options; no number is written twice.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from data.prediction.label_maps import check_label_map
from data.presets import SAMPLING_OPTIONS, get_preset
from data.sample import sample_root
from data.sources import ROOT_SOURCES, source_for

#: Keys every preprocessing description has (`check_preprocessing` requires them).
PREPROCESSING_KEYS = ("dataset", "kind", "spatial_dims", "channels", "image_size", "mean", "std", "options",
                      "inputs", "slice_axis", "steps")


def _source(name: str, root: str | os.PathLike | None, options: dict):
    preset = get_preset(name)
    options = {**preset.options, **options}
    if root is None and name in ROOT_SOURCES:
        root = sample_root(name)
    return preset, options, source_for(name, Path(root).expanduser() if root is not None else None, options)


def jsonable(value: Any) -> Any:
    """`value` as plain JSON types (tuples to lists, numpy scalars and arrays to numbers and lists)."""
    def convert(item):
        if isinstance(item, np.ndarray):
            return item.tolist()
        if isinstance(item, np.generic):
            return item.item()
        if isinstance(item, os.PathLike):
            return str(item)
        raise TypeError(f"{type(item).__name__} is not JSON-ready")
    return json.loads(json.dumps(value, default=convert))


def preprocessing_spec(name: str, root: str | os.PathLike | None = None, **options: Any) -> dict:
    """How the 2D/3D items of data set `name` are made from its files, with these (effective)
    options: a dataset's `options` after planning (`dataset.options`: image_size, nnU-Net's CT
    statistics, ...). Keys: PREPROCESSING_KEYS, plus per data set what its inputs need
    (nnunet: file_ending, normalisation per channel; chaos: the series and mask folders)."""
    preset, options, source = _source(name, root, options)
    described = dict(source.prediction(options)) if source.prediction is not None else {
        "inputs": None, "slice_axis": None, "steps": []}
    steps = list(described.pop("steps", []))
    if source.spatial_dims == 2 and preset.mean is not None:
        steps.append(f"(x - {preset.mean}) / {preset.std}")
    spec = {"dataset": name, "kind": source.kind, "spatial_dims": source.spatial_dims,
            "channels": list(source.channels(options)),
            "image_size": options.get("image_size") if source.spatial_dims == 2 else None,
            "mean": preset.mean if source.spatial_dims == 2 else None,
            "std": preset.std if source.spatial_dims == 2 else None,
            "options": {key: value for key, value in options.items() if key not in SAMPLING_OPTIONS},
            **described, "steps": steps}
    return jsonable(spec)


def label_spec(name: str, root: str | os.PathLike | None = None, **options: Any) -> dict:
    """The label map (`data.prediction.label_maps`) of data set `name`'s served target with these options."""
    _, options, source = _source(name, root, options)
    if source.label_map is None:
        raise ValueError(f"data set {name!r} describes no label map")
    return jsonable(source.label_map(options))


def describe_dataset(dataset) -> tuple[dict, dict]:
    """(preprocessing, label map) of a dataset made by `data.get_dataset` (its effective options)."""
    return (preprocessing_spec(dataset.name, dataset.root, **dataset.options),
            label_spec(dataset.name, dataset.root, **dataset.options))


def check_preprocessing(preprocessing: object, source: str) -> list[str]:
    """Problems of a stored preprocessing description, one line each (empty when usable)."""
    if not isinstance(preprocessing, dict):
        return [f"{source}: preprocessing is not an object"]
    missing = [key for key in PREPROCESSING_KEYS if key not in preprocessing]
    if missing:
        return [f"{source}: preprocessing lacks {', '.join(missing)}"]
    problems = []
    try:
        get_preset(preprocessing["dataset"])
    except ValueError as error:
        problems.append(f"{source}: preprocessing names {error}")
    if preprocessing["spatial_dims"] == 2 and not isinstance(preprocessing["image_size"], int):
        problems.append(f"{source}: preprocessing image_size is {preprocessing['image_size']!r}; expected the "
                        "2D side the network was trained at")
    return problems


__all__ = ["PREPROCESSING_KEYS", "check_label_map", "check_preprocessing", "describe_dataset", "jsonable",
           "label_spec", "preprocessing_spec"]
