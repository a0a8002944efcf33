"""New images for a trained 2D network: found in the layouts the readers know, preprocessed by
the training readers' own functions with the options the network was trained with (so training
and prediction cannot drift). Predictions go back in each input's geometry and format through
`data.prediction.outputs`.

Every function takes the preprocessing description a checkpoint carries (`data.preprocessing_spec`);
its `inputs` entry names the format, and the registry (`data.sources`) the data set's reader of it
(`InputReader`, beside the data set's training reader):

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

from pathlib import Path

import numpy as np

from data.errors import data_error
from data.interfaces import InputReader, PredictionInput
from data.sources import DATA_SETS

#: The input format -> its reader, of every data set that has one, in the registry's order.
_READERS: dict[str, InputReader] = {
    data_set.inputs.name: data_set.inputs for data_set in DATA_SETS.values() if data_set.inputs is not None}


def _reader_of(preprocessing: dict) -> InputReader:
    kind, readers = preprocessing.get("inputs"), _READERS
    if kind not in readers:
        raise ValueError(f"networks trained on {preprocessing.get('dataset')} take no 2D image inputs "
                         f"(input format {kind!r}); 2D formats: {', '.join(readers)}")
    return readers[kind]


def find_prediction_inputs(path: str | Path, preprocessing: dict) -> list[PredictionInput]:
    """Every case under `path` (a file or a folder) in the format of `preprocessing`, sorted; a
    DataError naming `path` and what was looked for when there is none."""
    path = Path(path).expanduser()
    reader = _reader_of(preprocessing)
    if not path.exists():
        raise data_error(path, "no such file or folder; expected the images to segment")
    items = reader.find(path, preprocessing)
    if not items:
        raise data_error(path, f"no input for a {preprocessing['dataset']} network found; looked for "
                         f"{reader.looked(preprocessing)}")
    outputs = [item.output for item in items]
    repeated = sorted({name for name in outputs if outputs.count(name) > 1})
    if repeated:
        raise data_error(path, f"several inputs would be written as {repeated[0]}; expected one file per case name")
    return items


def read_prediction_input(item: PredictionInput, preprocessing: dict) -> tuple[np.ndarray, dict]:
    """The stack (S, C, size, size) float32 the network sees and the meta of the case: served_shape
    (S, H0, W0), spacing (mm per output axis) and how to write in its geometry."""
    return _reader_of(preprocessing).read(item, preprocessing)


def read_prediction_label(item: PredictionInput, preprocessing: dict, label_map: dict, meta: dict
                          ) -> np.ndarray | None:
    """The ground truth beside a case, in the written prediction's array order and label values (a
    binary task scores its foreground label only), or None; a DataError names a bad file."""
    if item.label is None:
        return None
    truth = np.asarray(_reader_of(preprocessing).read_label(item, preprocessing, meta))
    if label_map["decision"] == "threshold":
        foreground = label_map["foreground"]
        truth = np.where(truth == foreground, foreground, 0).astype(np.uint8)
    return truth


def input_formats() -> tuple[str, ...]:
    """The 2D input formats (`preprocessing["inputs"]`) the registered readers read."""
    return tuple(_READERS)


__all__ = ["PredictionInput", "find_prediction_inputs", "input_formats", "read_prediction_input",
           "read_prediction_label"]
