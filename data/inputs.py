"""New images for a trained 2D network: found in the layouts the readers know, preprocessed by
the training readers' own functions with the options the network was trained with (so training
and prediction cannot drift). Predictions go back in each input's geometry and format through
`data.outputs`.

Every function takes the preprocessing description a checkpoint carries (`data.preprocessing_spec`);
its `inputs` entry names the format:

- "images" (DSB2018): PNG, TIFF or BMP files; one file, a folder of them, or a DSB2018 tree
  `<id>/images/<id>.png` (also under `stage1_test/` or `stage1_train/`), whose `<id>/masks/*.png`
  score the prediction. Writes `<case>.png` (the input's ending) of the image's size.
- "dicom" (CHAOS): a DICOM series folder (`*.dcm`), a patient folder (its series folder, with the
  mask PNGs of `Ground/` scoring it) or a folder of patients. Writes `<case>.nii.gz` in the
  series' geometry (`read_image_file` reads back the series' array order and LPS affine).
- "volumes" (PROMISE12): `.mhd`, `.mha`, `.nii.gz`, `.nii`, `.nrrd` volumes (a file or a folder);
  `<case>_segmentation<ending>` beside one scores it. Writes `<case><ending>` with the input's
  spacing, origin and direction (NIfTI: its affine and header).
- "nnunet": the data set's own files, `imagesTs/<case>_XXXX<ending>` (one per channel) or one
  multi-channel file per case (Decathlon); `labelsTs/<case><ending>` beside scores (`labelsTr/`
  beside `imagesTr/`). Writes
  `<case><ending>` in the first channel file's geometry.

A stack to predict is (S, C, size, size) float32: S slices along the axis the network was trained
on (one for 2D images), normalised as in training; for a 3D network of nnU-Net volumes
(`spatial_dims` 3) the whole volume (C, *spatial) as read and normalised. Probabilities and labels come back as
(S, H0, W0) at the input's own in-plane size (`restore_probabilities`) and are written in the
input's array order.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from data.chaos import (
    dicom_series_files,
    find_chaos_cases,
    mask_files,
    preprocess_chaos_image,
    read_chaos_masks,
    read_chaos_series,
)
from data.dsb2018 import preprocess_dsb2018_image, read_dsb2018_image, read_dsb2018_masks
from data.errors import DataError, checked_labels, data_error, millimetres, require_finite
from data.io.images import (
    PLANAR_ENDINGS,
    VOLUME_ENDINGS,
    ending_of,
    read_image_file,
)
from data.nnunet.prepare import prepare_nnunet_arrays
from data.nnunet.reader import slice_axis
from data.promise12 import SEGMENTATION_SUFFIX, preprocess_promise12_image, read_promise12_volume
from data.transforms.intensity import standardise

_CHANNEL_FILE = re.compile(r"^(?P<case>.+)_(?P<index>\d{4})$")


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
class _Format:
    find: Callable[[Path, dict], list[PredictionInput]]
    read: Callable[[PredictionInput, dict], tuple[np.ndarray, dict]]
    read_label: Callable[[PredictionInput, dict, dict], np.ndarray]
    looked: Callable[[dict], str]


def _stem(path: Path) -> str:
    ending = ending_of(path) or path.suffix
    return path.name[: len(path.name) - len(ending)]


def _listed(folder: Path, endings: tuple[str, ...]) -> list[Path]:
    """Visible files of `folder` with one of `endings`, sorted by name (macOS `._*` files skipped)."""
    return sorted((path for path in folder.iterdir() if path.is_file() and not path.name.startswith(".")
                   and ending_of(path) in endings), key=lambda path: path.name)


# -- images (DSB2018) ------------------------------------------------------------------------------


def _image_item(path: Path) -> PredictionInput:
    return PredictionInput(_stem(path), (path,), f"{_stem(path)}{ending_of(path)}")


def _dsb2018_tree(path: Path) -> list[PredictionInput]:
    def case_of(folder: Path) -> Path | None:
        image = folder / "images" / f"{folder.name}.png"
        return image if image.is_file() else None

    if case_of(path) is not None:
        cases = [path]
    else:
        cases = []
        for parent in (path, path / "stage1_test", path / "stage1_train"):
            if parent.is_dir():
                cases = sorted((d for d in parent.iterdir() if d.is_dir() and case_of(d) is not None),
                               key=lambda d: d.name)
                if cases:
                    break
    return [PredictionInput(case.name, (case_of(case),), f"{case.name}.png",
                            label=case / "masks" if mask_files(case / "masks") else None) for case in cases]


def _find_images(path: Path, preprocessing: dict) -> list[PredictionInput]:
    if path.is_file():
        return [_image_item(path)] if ending_of(path) in PLANAR_ENDINGS else []
    return _dsb2018_tree(path) or [_image_item(file) for file in _listed(path, PLANAR_ENDINGS)]


def _read_image(item: PredictionInput, preprocessing: dict) -> tuple[np.ndarray, dict]:
    image = read_dsb2018_image(item.source)
    stack = preprocess_dsb2018_image(image, preprocessing["image_size"])[None]
    return standardise(stack, preprocessing["mean"], preprocessing["std"]), {
        "served_shape": [1, *image.shape[1:]], "to_output": "first", "spacing": [1.0, 1.0],
        "reference": str(item.source)}


def _read_image_label(item: PredictionInput, preprocessing: dict, meta: dict) -> np.ndarray:
    return read_dsb2018_masks(item.label.parent, tuple(meta["served_shape"][1:]))


# -- DICOM series (CHAOS) --------------------------------------------------------------------------


def _series_item(patient: Path, series_folder: str, mask_folder: str) -> PredictionInput:
    masks = patient / mask_folder
    return PredictionInput(patient.name, (patient / series_folder,), f"{patient.name}.nii.gz",
                           label=masks if mask_files(masks) else None)


def _find_series(path: Path, preprocessing: dict) -> list[PredictionInput]:
    if path.is_file():
        return []
    series_folder, mask_folder = preprocessing["series_folder"], preprocessing["mask_folder"]
    if any(path.glob("*.dcm")):
        depth = len(Path(series_folder).parts)
        if path.parts[-depth:] == Path(series_folder).parts and len(path.parts) > depth:
            return [_series_item(path.parents[depth - 1], series_folder, mask_folder)]  # a patient's series
        return [PredictionInput(path.name, (path,), f"{path.name}.nii.gz")]
    if (path / series_folder).is_dir():
        return [_series_item(path, series_folder, mask_folder)]
    options = preprocessing["options"]
    try:
        patients = find_chaos_cases(path, options["modality"], options["sequence"])
    except DataError:
        return []
    return [_series_item(patient, series_folder, mask_folder) for patient in patients]


def _read_series(item: PredictionInput, preprocessing: dict) -> tuple[np.ndarray, dict]:
    options = preprocessing["options"]
    dicoms = dicom_series_files(item.source)
    image, meta = read_chaos_series(dicoms, options["modality"])
    stack, _ = preprocess_chaos_image(image, meta, preprocessing["image_size"], options["modality"],
                                      tuple(options["hu_window"]))
    return standardise(stack, preprocessing["mean"], preprocessing["std"]), {
        "served_shape": list(image.shape), "to_output": "stack", "spacing": meta["spacing"].tolist(),
        "reference": None, "affine": meta["affine"].tolist(), "slices": [str(path) for path in dicoms]}


def _read_series_label(item: PredictionInput, preprocessing: dict, meta: dict) -> np.ndarray:
    masks = mask_files(item.label)
    slices = [Path(path) for path in meta["slices"]]
    if len(masks) != len(slices):
        raise data_error(item.label, f"{len(masks)} mask PNGs for {len(slices)} DICOM files in {item.source.name}/; "
                         "expected one mask per slice")
    return read_chaos_masks(masks, preprocessing["options"]["modality"], tuple(meta["served_shape"][1:]), slices)


# -- volumes (PROMISE12) ---------------------------------------------------------------------------


def _segmentation_beside(path: Path) -> Path | None:
    case, ending = _stem(path), ending_of(path)
    for candidate in (path.with_name(f"{case}{SEGMENTATION_SUFFIX}{ending}"),
                      path.with_name(f"{case}{SEGMENTATION_SUFFIX}.mhd")):
        if candidate.is_file():
            return candidate
    return None


def _find_volumes(path: Path, preprocessing: dict) -> list[PredictionInput]:
    files = [path] if path.is_file() else _listed(path, VOLUME_ENDINGS)
    return [PredictionInput(_stem(file), (file,), f"{_stem(file)}{ending_of(file)}", _segmentation_beside(file))
            for file in files if ending_of(file) in VOLUME_ENDINGS and not _stem(file).endswith(SEGMENTATION_SUFFIX)]


def _read_volume(item: PredictionInput, preprocessing: dict) -> tuple[np.ndarray, dict]:
    options = preprocessing["options"]
    image = read_promise12_volume(item.source)
    array, meta = preprocess_promise12_image(
        image, item.source, preprocessing["image_size"], options["denoise"], options["denoise_time_step"],
        options["denoise_iterations"], tuple(options["intensity_percentiles"]))
    return standardise(array[:, None], preprocessing["mean"], preprocessing["std"]), {
        "served_shape": meta["original_shape"].tolist(), "to_output": "stack",
        "spacing": meta["original_spacing"].tolist(), "reference": str(item.source)}


def _read_volume_label(item: PredictionInput, preprocessing: dict, meta: dict) -> np.ndarray:
    labels = _read_label_file(item.label, meta)
    return checked_labels(item.label, labels, {0, 1}, "0 and 1 (prostate)")


def _read_label_file(path: Path, meta: dict) -> np.ndarray:
    array, _ = read_image_file(path, dtype=None)
    if len(array) != 1:
        raise data_error(path, f"holds {len(array)} channels; expected one label map")
    shape = tuple(_output_shape(meta))
    if array.shape[1:] != shape:
        raise data_error(path, f"shape {array.shape[1:]} differs from the image's {shape}; expected the image's grid")
    return array[0]


# -- nnU-Net v2 / Decathlon ------------------------------------------------------------------------


def _find_nnunet(path: Path, preprocessing: dict) -> list[PredictionInput]:
    ending = preprocessing["file_ending"]
    if path.is_file():
        folder = path.parent
        match = _CHANNEL_FILE.match(path.name[: -len(ending)]) if path.name.lower().endswith(ending.lower()) else None
        wanted = match["case"] if match else None
        files = [file for file in _listed(folder, (ending,))
                 if file == path or (wanted is not None and _channel_of(file, ending)[0] == wanted)]
    else:
        folder = path / "imagesTs" if (path / "imagesTs").is_dir() else path
        files = _listed(folder, (ending,))
    cases: dict[str, list[Path]] = {}
    for file in files:
        cases.setdefault(_channel_of(file, ending)[0], []).append(file)
    beside = {"imagesTs": "labelsTs", "imagesTr": "labelsTr"}.get(folder.name)  # nnU-Net's own layout
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


def _read_nnunet(item: PredictionInput, preprocessing: dict) -> tuple[np.ndarray, dict]:
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
        elif tuple(geometry["shape"]) != tuple(reference["shape"]) or not np.allclose(
                geometry["spacing"], reference["spacing"], rtol=1e-3):
            raise data_error(file, f"grid {tuple(geometry['shape'])} at {millimetres(geometry['spacing'])} differs "
                             f"from {item.source.name} {tuple(reference['shape'])} at "
                             f"{millimetres(reference['spacing'])}; expected the channels on one grid")
        arrays.append(array)
    image = np.concatenate(arrays)
    if len(image) != len(channels):
        raise data_error(item.source, f"case {item.case} holds {len(image)} channel(s); expected {len(channels)} "
                         f"({', '.join(channels)})")
    for index, values in enumerate(image):
        require_finite(item.source, values, f"channel {index} ({channels[index]})")
    meta = {"spacing": np.asarray(reference["spacing"]), "affine": np.asarray(reference["affine"])}
    volume = image.ndim == 4
    if volume and options.get("spatial_dims") == 3:  # a 3D network: the whole volume, as read
        volume_image, _, _ = prepare_nnunet_arrays(image, None, meta, channels, options)
        return volume_image, {"served_shape": list(image.shape[1:]), "to_output": "volume",
                              "spacing": np.asarray(reference["spacing"]).tolist(),
                              "reference": str(item.source)}
    if volume:
        meta["slice_axis"] = slice_axis(reference["spacing"])
    stack, _, served = prepare_nnunet_arrays(image, None, meta, channels, options)
    shape = served["original_shape"].tolist()
    return stack, {"served_shape": shape if volume else [1, *shape], "to_output": "axes" if volume else "first",
                   "axes": served["axes"], "spacing": np.asarray(reference["spacing"]).tolist(),
                   "reference": str(item.source)}


def _read_nnunet_label(item: PredictionInput, preprocessing: dict, meta: dict) -> np.ndarray:
    values = preprocessing["label_values"]
    return checked_labels(item.label, _read_label_file(item.label, meta), set(values),
                          ", ".join(map(str, values)) + " (the data set's labels)")


_FORMATS: dict[str, _Format] = {
    "images": _Format(_find_images, _read_image, _read_image_label,
                      lambda p: "PNG/TIFF/BMP files, or a DSB2018 tree <id>/images/<id>.png"),
    "dicom": _Format(_find_series, _read_series, _read_series_label,
                     lambda p: f"a folder of .dcm files, a patient folder with {p['series_folder']}/, or a folder "
                               "of such patients"),
    "volumes": _Format(_find_volumes, _read_volume, _read_volume_label,
                       lambda p: "volumes ending in " + ", ".join(VOLUME_ENDINGS)),
    "nnunet": _Format(_find_nnunet, _read_nnunet, _read_nnunet_label,
                      lambda p: f"<case>_XXXX{p['file_ending']} files (or imagesTs/ holding them)"),
}


def _format_of(preprocessing: dict) -> _Format:
    kind = preprocessing.get("inputs")
    if kind not in _FORMATS:
        raise ValueError(f"networks trained on {preprocessing.get('dataset')} take no 2D image inputs "
                         f"(input format {kind!r}); 2D formats: {', '.join(_FORMATS)}")
    return _FORMATS[kind]


# -- the interface ---------------------------------------------------------------------------------


def find_prediction_inputs(path: str | Path, preprocessing: dict) -> list[PredictionInput]:
    """Every case under `path` (a file or a folder) in the format of `preprocessing`, sorted; a
    DataError naming `path` and what was looked for when there is none."""
    path = Path(path).expanduser()
    found = _format_of(preprocessing)
    if not path.exists():
        raise data_error(path, "no such file or folder; expected the images to segment")
    items = found.find(path, preprocessing)
    if not items:
        raise data_error(path, f"no input for a {preprocessing['dataset']} network found; looked for "
                         f"{found.looked(preprocessing)}")
    outputs = [item.output for item in items]
    repeated = sorted({name for name in outputs if outputs.count(name) > 1})
    if repeated:
        raise data_error(path, f"several inputs would be written as {repeated[0]}; expected one file per case name")
    return items


def read_prediction_input(item: PredictionInput, preprocessing: dict) -> tuple[np.ndarray, dict]:
    """The stack (S, C, size, size) float32 the network sees and the meta of the case: served_shape
    (S, H0, W0), spacing (mm per output axis) and how to write in its geometry."""
    return _format_of(preprocessing).read(item, preprocessing)


def read_prediction_label(item: PredictionInput, preprocessing: dict, label_map: dict, meta: dict
                          ) -> np.ndarray | None:
    """The ground truth beside a case, in the written prediction's array order and label values (a
    binary task scores its foreground label only), or None; a DataError names a bad file."""
    if item.label is None:
        return None
    truth = np.asarray(_format_of(preprocessing).read_label(item, preprocessing, meta))
    if label_map["decision"] == "threshold":
        foreground = label_map["foreground"]
        truth = np.where(truth == foreground, foreground, 0).astype(np.uint8)
    return truth


def _output_shape(meta: dict) -> list[int]:
    served = list(meta["served_shape"])
    if meta["to_output"] == "first":
        return served[1:]
    if meta["to_output"] == "axes":
        return [served[index] for index in np.argsort(meta["axes"])]
    return served


def input_formats() -> tuple[str, ...]:
    """The 2D input formats (`preprocessing["inputs"]`) this module reads."""
    return tuple(_FORMATS)


__all__ = ["PredictionInput", "find_prediction_inputs", "input_formats", "read_prediction_input",
           "read_prediction_label"]
