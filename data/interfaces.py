"""What a data set implements: a `Source` (how its cases are found, read and served for
training) and an `InputReader` (how new images are found and read for a trained network).

`data.sources` registers one of each per data set; the dataset classes, the checker, the
fingerprint and prediction only talk to these. A leaf: imports nothing of the project.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np

#: (image, label or None, meta) of one case, as a reader returns it.
Arrays = tuple[np.ndarray, np.ndarray | None, dict]


@dataclass(frozen=True)
class Source:
    """How a data set is trained on: its cases found, named, listed, read as stored (for
    `data.check`) and preprocessed (for the cache), its channels, classes and label map."""

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
    # The label map of the served target (`data.prediction.label_maps`): values, names, how outputs
    # become them.
    label_map: Callable[[dict], dict] | None = None
    # How new images are given to a network trained on this data (`data.prediction.inputs`): the
    # input format, the slicing axis rule of volumes, and the preprocessing steps in words.
    prediction: Callable[[dict], dict] | None = None

    @property
    def spatial_dims(self) -> int:
        return 3 if self.kind == "volumes" else 2

    def case_paths(self, root: Path, options: dict) -> dict[str, Path]:
        """Case id -> path of every case found under ``root``, in ``find``'s order."""
        return {self.case_id(path): path for path in self.find(root, options)}


@dataclass(frozen=True)
class PredictionInput:
    """One case to segment: its image file(s) (one per channel file; for a DICOM series the series
    folder), the file name its mask is written under, and its ground truth where the data set's
    layout puts one beside it (a file, or a folder: DSB2018 `masks/`, CHAOS `Ground/`)."""

    case: str
    files: tuple[Path, ...]
    output: str
    label: Path | None = None

    @property
    def source(self) -> Path:
        """The file or folder a problem with this case is reported against."""
        return self.files[0]


@dataclass(frozen=True)
class InputReader:
    """How new images of a data set are read (`data.prediction.inputs`), given the preprocessing
    description a checkpoint carries (`data.preprocessing_spec`)."""

    # The input format, recorded as the description's "inputs".
    name: str
    # Every case under a file or folder, sorted.
    find: Callable[[Path, dict], list[PredictionInput]]
    # The stack the network sees and the case's meta: served_shape, to_output (how the stack
    # becomes the written file's array: "first", "stack", "axes" or "volume"), spacing, reference.
    read: Callable[[PredictionInput, dict], tuple[np.ndarray, dict]]
    # The ground truth beside a case, on the written prediction's grid: (item, preprocessing, meta).
    read_label: Callable[[PredictionInput, dict, dict], np.ndarray]
    # What `find` looks for, in words (the error when it finds nothing).
    looked: Callable[[dict], str]
