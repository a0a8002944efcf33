"""Users' own data read: the cases of an nnU-Net v2 or Decathlon data set (`data.nnunet.spec`).

A case reads to image (C, *spatial) float32, label (*spatial) uint8 (the label values
themselves) and meta, in the canonical axis order of `data.io.images`. `inspect_nnunet_case`
collects every problem of a case, one line each naming the file, for `data.check`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from data.errors import DataError, checked_labels, data_error, require_finite
from data.io.geometry import grid_difference
from data.io.images import ending_of, read_image_file
from data.nnunet.spec import (
    DATASET_JSON,
    DECATHLON,
    NNUNET_V2,
    NnunetSpec,
)

# What a file off its case's grid is expected to be (training cases and new images alike).
ONE_GRID = "expected every channel and the label on one grid"


def find_nnunet_cases(spec: NnunetSpec) -> list[Path]:
    """The label path of every training case, sorted by case id (a case without a label file
    keeps the path it should have, so reading it names the missing file)."""
    if not spec.cases:
        raise data_error(spec.root / "imagesTr", f"no training cases found; looked for {_layout_text(spec)}"
                         f"{_ending_hint(spec)}")
    return [spec.cases[case].label for case in sorted(spec.cases)]


def read_nnunet_case(spec: NnunetSpec, case: str) -> tuple[np.ndarray, np.ndarray, dict]:
    """Read one case: image (C, *spatial) float32, label (*spatial) uint8, meta; the first
    problem raises a DataError (`inspect_nnunet_case` lists them all)."""
    arrays, problems = inspect_nnunet_case(spec, case)
    if problems:
        raise DataError(problems[0])
    return arrays


def inspect_nnunet_case(spec: NnunetSpec, case: str) -> tuple[tuple | None, list[str]]:
    """Every problem of one case (one line each, naming the file), and its arrays if there is none.

    meta: spacing (mm per array axis), affine (array index -> LPS mm), original_shape, source
    (the first channel's file: the geometry of a prediction written back), channels, labels
    (name -> values), files, and for volumes slice_axis (the coarsest axis, cut into 2D items).
    """
    files = spec.cases[case]
    problems: list[str] = []
    channels: list[np.ndarray] = []
    reference: tuple | None = None  # (path, geometry) of the first readable file
    expected, found = len(spec.channels), 0
    last_index = max([*files.images, expected - 1]) if spec.layout == NNUNET_V2 else 0
    for index in range(last_index + 1):
        path = files.images.get(index, spec.channel_file(case, index))
        if not path.is_file():
            if found < expected:
                what = (f"image of case {case}; expected the 4D NIfTI listed in {DATASET_JSON} training"
                        if spec.layout == DECATHLON else f"channel {found} ({spec.channels[found]}) of case {case}; "
                        f"expected the file {path.name} in {path.parent.name}/")
                problems.append(str(data_error(path, f"missing {what}")))
                found += 1
            continue
        if found >= expected:
            problems.append(str(data_error(path, f"channel file beyond the {expected} channel(s) of "
                                           f"{DATASET_JSON}; expected {expected} file(s) per case")))
            continue
        try:
            array, geometry = read_image_file(path)
        except DataError as exc:
            problems.append(str(exc))
            found += 1
            continue
        count = len(array)
        if spec.planar and len(files.images) == 1 and count < expected:
            # a grey image where RGB is declared: one problem, not "missing channel G, B"
            names = [spec.channel_file(case, i).name for i in range(expected)]
            problems.append(fewer_channels(path, count, spec.channels, names))
            found = expected
            continue
        wanted = expected if spec.layout == DECATHLON else (
            count if spec.planar and count <= expected - found else 1)
        if count != wanted:
            problems.append(str(data_error(path, f"holds {count} channel(s); expected {wanted} "
                                           f"({_channel_rule(spec)})")))
            found += 1
            continue
        problem = _grid_problem(path, geometry, reference, spec.dims)
        if problem:
            problems.append(problem)
            found += count
            continue
        reference = reference or (path, geometry)
        for offset, values in enumerate(array):
            try:
                require_finite(path, values, f"channel {found + offset} ({spec.channels[found + offset]})")
            except DataError as exc:
                problems.append(str(exc))
        channels.append(array)
        found += count
    label = _read_label(spec, case, files.label, reference, problems)
    if problems:
        return None, problems
    source, geometry = reference
    shape, spacing = tuple(geometry["shape"]), geometry["spacing"]
    meta = {
        "spacing": np.asarray(spacing, dtype=np.float64),
        "affine": np.asarray(geometry["affine"], dtype=np.float64),
        "original_shape": np.asarray(shape, dtype=np.int64),
        "source": str(source),
        "channels": list(spec.channels),
        "labels": {name: list(values) for name, values in spec.labels.items()},
        "files": [str(p) for p in files.images.values()] + [str(files.label)],
    }
    if len(shape) == 3:
        meta["slice_axis"] = slice_axis(spacing)
    return (np.concatenate(channels).astype(np.float32, copy=False), label, meta), problems


def dataset_problems(spec: NnunetSpec) -> list[str]:
    """Problems of the data set as a whole: misnamed files, numTraining against the cases found."""
    problems = list(spec.stray)
    found = len(spec.cases)
    if spec.num_training is None:
        problems.append(str(data_error(spec.path, f"no numTraining; expected the number of training cases "
                                       f"({found} found)")))
    elif spec.num_training != found:
        problems.append(str(data_error(spec.path, f"numTraining is {spec.num_training} but {found} training "
                                       f"case(s) were found; expected numTraining to count the cases of "
                                       f"{_layout_text(spec)}")))
    return problems


def fewer_channels(path: Path, count: int, channels: tuple[str, ...], channel_files: list[str]) -> str:
    """The problem of a 2D image that is its case's only file but holds fewer than the data set's
    channels (a grey PNG where RGB is declared), naming the two layouts that hold them all."""
    what = "grey image" if count == 1 else f"holds {count} channels"
    return str(data_error(path, f"{what}; expected {len(channels)} channels ({', '.join(channels)}): one image "
                          f"holding them (RGB), or one file per channel ({', '.join(channel_files)})"))


def slice_axis(spacing: np.ndarray | tuple[float, ...]) -> int:
    """The axis 2D items are cut along: the coarsest spacing (the first such axis on ties)."""
    return int(np.argmax(np.round(np.asarray(spacing, dtype=np.float64), 6)))


# -- dataset.json of each layout ---------------------------------------------------------------


def _read_label(spec: NnunetSpec, case: str, path: Path, reference, problems: list[str]) -> np.ndarray | None:
    if not path.is_file():
        problems.append(str(data_error(path, f"missing label of case {case}; expected the segmentation "
                                       f"{path.name} in {path.parent.name}/")))
        return None
    try:
        array, geometry = read_image_file(path, dtype=None)
    except DataError as exc:
        problems.append(str(exc))
        return None
    if len(array) != 1:
        problems.append(str(data_error(path, f"holds {len(array)} channels; expected one label map")))
        return None
    problem = _grid_problem(path, geometry, reference, spec.dims)
    if problem:
        problems.append(problem)
        return None
    values = ", ".join(f"{v} ({name})" for name, vs in spec.labels.items() for v in vs if len(vs) == 1) \
        if not spec.has_regions else ", ".join(map(str, spec.label_values))
    try:
        return checked_labels(path, array[0], set(spec.label_values), f"the labels of {DATASET_JSON}: {values}")
    except DataError as exc:
        problems.append(str(exc))
        return None


def _grid_problem(path: Path, geometry: dict, reference: tuple | None, dims: int) -> str | None:
    """A one-line problem when `path` is not on the grid of the case's first file (nnU-Net's check)."""
    spatial = len(geometry["shape"])
    if spatial != dims:
        return str(data_error(path, f"is a {spatial}D image; expected {dims}D like the data set's other files"))
    if reference is None:
        return None
    reference_path, reference_geometry = reference
    difference = grid_difference(geometry, reference_geometry, reference_path.name)
    return None if difference is None else str(data_error(path, f"{difference}; {ONE_GRID}"))


def _channel_rule(spec: NnunetSpec) -> str:
    if spec.layout == DECATHLON:
        return f"the {len(spec.channels)} modalities of {DATASET_JSON} on the last axis of one 4D NIfTI"
    if spec.planar:
        return f"{len(spec.channels)} channel(s) in all per case; an RGB file counts 3"
    return "one channel per file, <case>_XXXX with XXXX the channel index"


def _layout_text(spec: NnunetSpec) -> str:
    if spec.layout == DECATHLON:
        return f"the training list of {DATASET_JSON}"
    return f"imagesTr/<case>_XXXX{spec.file_ending} with labelsTr/<case>{spec.file_ending}"


def _ending_hint(spec: NnunetSpec) -> str:
    folder = spec.root / "imagesTr"
    found = sorted({ending_of(p) for p in folder.iterdir() if ending_of(p)} if folder.is_dir() else set())
    others = [e for e in found if e != spec.file_ending]
    return f" (imagesTr holds {', '.join(others)} files; is file_ending right?)" if others else ""
