"""New images of an nnU-Net v2 / Decathlon data set read for a network trained on it
(`NNUNET_INPUTS`): `imagesTs/<case>_XXXX<ending>` (one file per channel) or one multi-channel file
per case (Decathlon), `labelsTs/<case><ending>` beside scoring it (`labelsTr/` beside
`imagesTr/`), served by the training cases' own `prepare_nnunet_arrays`."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from data.errors import DataError, checked_labels, data_error, require_finite
from data.interfaces import InputReader, PredictionInput
from data.io.geometry import grid_difference
from data.io.images import PLANAR_ENDINGS, listed_files, read_image_file, read_label_file
from data.nnunet.prepare import prepare_nnunet_arrays
from data.nnunet.reader import ONE_GRID, fewer_channels, slice_axis
from data.prediction.outputs import output_shape

_CHANNEL_FILE = re.compile(r"^(?P<case>.+)_(?P<index>\d{4})$")
# nnU-Net's own layout: the folder of the labels beside a folder of images.
_LABELS_BESIDE = {"imagesTs": "labelsTs", "imagesTr": "labelsTr"}


def _find_inputs(path: Path, preprocessing: dict) -> list[PredictionInput]:
    ending = preprocessing["file_ending"]
    if path.is_file():
        folder = path.parent
        match = _CHANNEL_FILE.match(path.name[: -len(ending)]) if path.name.lower().endswith(ending.lower()) else None
        wanted = match["case"] if match else None
        files = [file for file in listed_files(folder, (ending,))
                 if file == path or (wanted is not None and _channel_of(file, ending)[0] == wanted)]
    else:
        folder = path / "imagesTs" if (path / "imagesTs").is_dir() else path
        files = listed_files(folder, (ending,))
    cases: dict[str, list[Path]] = {}
    for file in files:
        cases.setdefault(_channel_of(file, ending)[0], []).append(file)
    beside = _LABELS_BESIDE.get(folder.name)
    labels = folder.parent / beside if beside else None
    items = []
    for case, case_files in sorted(cases.items()):
        label = labels / f"{case}{ending}" if labels is not None else None
        items.append(PredictionInput(case, tuple(sorted(case_files, key=lambda f: _channel_of(f, ending)[1])),
                                     f"{case}{ending}", label if label is not None and label.is_file() else None))
    return items


def _channel_of(file: Path, ending: str) -> tuple[str, int]:
    """(case id, channel file index) of an nnU-Net v2 file; (name, 0) of a Decathlon one."""
    stem = file.name[: len(file.name) - len(ending)]
    match = _CHANNEL_FILE.match(stem)
    return (match["case"], int(match["index"])) if match else (stem, 0)


def _read_input(item: PredictionInput, preprocessing: dict) -> tuple[np.ndarray, dict]:
    channels, options, ending = tuple(preprocessing["channels"]), preprocessing["options"], preprocessing["file_ending"]
    indices = [_channel_of(file, ending)[1] for file in item.files]
    for expected, index in enumerate(indices):
        if index != expected:
            missing = item.source.parent / f"{item.case}_{expected:04d}{ending}"
            raise data_error(missing, f"missing channel file {expected} of case {item.case}; expected "
                             f"{item.case}_0000{ending} ... for the channel(s) {', '.join(channels)}")
    arrays, reference = [], None
    for file in item.files:
        array, geometry = read_image_file(file)
        if reference is None:
            reference = geometry
        else:
            difference = grid_difference(geometry, reference, item.source.name)
            if difference is not None:
                raise data_error(file, f"{difference}; {ONE_GRID}")
        arrays.append(array)
    image = np.concatenate(arrays)
    if len(item.files) == 1 and ending.lower() in PLANAR_ENDINGS and len(image) < len(channels):
        raise DataError(fewer_channels(item.source, len(image), channels,
                                       [f"{item.case}_{index:04d}{ending}" for index in range(len(channels))]))
    if len(image) != len(channels):
        raise data_error(item.source, f"case {item.case} holds {len(image)} channel(s); expected {len(channels)} "
                         f"({', '.join(channels)})")
    for index, values in enumerate(image):
        require_finite(item.source, values, f"channel {index} ({channels[index]})")
    meta = {"spacing": np.asarray(reference["spacing"]), "affine": np.asarray(reference["affine"])}
    # the first channel's grid, which the label beside is checked against
    grid = {"spacing": meta["spacing"].tolist(), "affine": meta["affine"].tolist(), "reference": str(item.source)}
    volume = image.ndim == 4
    if volume and options.get("spatial_dims") == 3:  # a 3D network: the whole volume, as read
        volume_image, _, _ = prepare_nnunet_arrays(image, None, meta, channels, options)
        return volume_image, {"served_shape": list(image.shape[1:]), "to_output": "volume", **grid}
    if volume:
        meta["slice_axis"] = slice_axis(reference["spacing"])
    stack, _, served = prepare_nnunet_arrays(image, None, meta, channels, options)
    shape = served["original_shape"].tolist()
    return stack, {"served_shape": shape if volume else [1, *shape], "to_output": "axes" if volume else "first",
                   "axes": served["axes"], **grid}


def _read_input_label(item: PredictionInput, preprocessing: dict, meta: dict) -> np.ndarray:
    values = preprocessing["label_values"]
    shape = tuple(output_shape(meta))
    labels, geometry = read_label_file(item.label, shape)
    difference = grid_difference(geometry, {"shape": shape, "spacing": meta["spacing"], "affine": meta["affine"]},
                                 Path(meta["reference"]).name)
    if difference is not None:
        raise data_error(item.label, f"{difference}; {ONE_GRID}")
    return checked_labels(item.label, labels, set(values), ", ".join(map(str, values)) + " (the data set's labels)")


NNUNET_INPUTS = InputReader(
    "nnunet", _find_inputs, _read_input, _read_input_label,
    lambda preprocessing: f"<case>_XXXX{preprocessing['file_ending']} files (or imagesTs/ holding them)")
