"""Predictions of new inputs (`data.prediction.inputs`) written back in each input's geometry and format:
label values (binary masks of PNG/BMP/TIFF inputs as 0/255) and, on request, float32
probability maps, in the input's own array order."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from data.interfaces import PredictionInput
from data.io.images import PLANAR_ENDINGS, ending_of, write_float_tiff, write_like, write_nifti_geometry
from data.nnunet.prepare import volume_from_slices
from data.prediction.label_maps import probability_names


def in_output_order(stack: np.ndarray, meta: dict) -> np.ndarray:
    """A served stack (S, H0, W0) in the written file's array order (a whole volume of a 3D
    network, ``to_output`` "volume", is in it already)."""
    if meta["to_output"] == "first":
        return np.asarray(stack)[0]
    if meta["to_output"] == "axes":
        return volume_from_slices(stack, meta)
    return np.asarray(stack)


def output_shape(meta: dict) -> list[int]:
    """The array shape of the written file: `in_output_order` of a stack of `served_shape`."""
    served = list(meta["served_shape"])
    if meta["to_output"] == "first":
        return served[1:]
    if meta["to_output"] == "axes":
        return [served[index] for index in np.argsort(meta["axes"])]
    return served


def _write(array: np.ndarray, meta: dict, out: Path) -> Path:
    if meta["reference"] is None:
        return write_nifti_geometry(array, np.asarray(meta["affine"]), out)
    if array.dtype.kind == "f" and ending_of(out) in PLANAR_ENDINGS:
        return write_float_tiff(array, out)
    return write_like(array, meta["reference"], out)


def write_prediction(labels: np.ndarray, item: PredictionInput, meta: dict, label_map: dict, out_dir: Path
                     ) -> Path:
    """Write the label values (S, H0, W0) as `out_dir/<item.output>` in the input's geometry; binary
    masks in PNG/BMP/TIFF files as 0/`png_foreground` (255)."""
    array = in_output_order(np.asarray(labels, dtype=np.uint8), meta)
    out = Path(out_dir) / item.output
    if label_map["decision"] == "threshold" and ending_of(out) in PLANAR_ENDINGS:
        array = np.where(array == label_map["foreground"], label_map["png_foreground"], 0).astype(np.uint8)
    return _write(array, meta, out)


def write_probabilities(probabilities: np.ndarray, item: PredictionInput, meta: dict, label_map: dict,
                        out_dir: Path) -> list[Path]:
    """Write each probability map (K, S, H0, W0) as `out_dir/<case>_prob_<name><ending>`: float32 in
    the input's geometry (2D images: 32-bit TIFF)."""
    ending = ending_of(item.output)
    ending = ".tif" if ending in PLANAR_ENDINGS else ending
    paths = []
    for name, maps in zip(probability_names(label_map), np.asarray(probabilities, dtype=np.float32)):
        safe = re.sub(r"[^A-Za-z0-9]+", "_", name).strip("_") or "class"
        paths.append(_write(in_output_order(maps, meta), meta, Path(out_dir) / f"{item.case}_prob_{safe}{ending}"))
    return paths


__all__ = ["in_output_order", "output_shape", "write_prediction", "write_probabilities"]
