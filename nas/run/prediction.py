"""``lwnas predict``: segment new cases with any checkpoint. A 2D network (a genotype network or a
2D baseline) segments images, DICOM series and volumes slice by slice, as it was trained; a 3D
network of nnU-Net volumes segments them whole; each prediction is written in its input's
geometry. A 3D BraTS checkpoint segments BraTS cases (``nas.run.brats_prediction``).

The network, its preprocessing and its label map come from the checkpoint's inference
description alone (``nas.run.networks``); finding, reading and writing the inputs is the data
layer's (``data.prediction.inputs``), with the training readers' own functions. Here: batches of
slices through the network (precision auto: ``nas.train.runtime.AUTO_PRECISION_RULE``; optional
flip TTA), probabilities resampled back to each input's own size, labels, scores where labels lie
beside the inputs.

:func:`predict_checkpoint` is the command: it sends a 3D BraTS checkpoint to
:func:`nas.run.brats_prediction.predict` and any other to :func:`predict_images`.
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

import data
from nas.inference import ACTIVATIONS, flip_axes_subsets, predict_probabilities, predict_with_flips
from nas.metrics import evaluate_case
from nas.presets import WINDOW_OVERLAP
from nas.train import check_output_dir, resolve_device, resolve_precision
from nas.train.runtime import autocast
from nas.train.settings import require_crop, require_int

from .brats_prediction import predict
from .fold_layout import fold_checkpoints, is_folds_run
from .networks import load_predictor, read_spec
from .prediction_cases import PredictionReport, predict_cases

#: Scores of a 2D prediction per foreground class (distances in mm of the input's spacing).
PREDICT_METRICS_2D = ("dice", "iou", "hd95")


@torch.no_grad()
def slice_probabilities(network: nn.Module, stack: np.ndarray, activation: str, *, tta: bool = False,
                        batch_size: int = 8, device: torch.device | str = "cpu",
                        precision: torch.dtype | None = None) -> torch.Tensor:
    """Probabilities (S, K, h, w) float32 on the CPU of a stack (S, C, h, w), ``batch_size`` slices
    per forward; ``tta`` averages the 4 flips of each slice (probabilities, each flipped back)."""
    device = torch.device(device)
    apply = ACTIVATIONS[activation]
    flips = flip_axes_subsets(2) if tta else [()]

    def predictor(batch: torch.Tensor) -> torch.Tensor:
        with autocast(device, precision):
            logits = network(batch)
        return apply(logits.float())

    outputs = []
    for start in range(0, len(stack), batch_size):
        batch = torch.from_numpy(np.ascontiguousarray(stack[start:start + batch_size], dtype=np.float32))
        outputs.append(predict_with_flips(predictor, batch.to(device), flips).cpu())
    return torch.cat(outputs)


def _scores(labels: np.ndarray, truth: np.ndarray, meta: dict, label_map: dict) -> dict[str, float]:
    options: dict[str, Any] = {}
    if label_map["decision"] == "argmax":
        options["classes"] = [value for value in label_map["values"][1:]]
    elif label_map["decision"] == "regions":
        options["regions"] = label_map["regions"]
    return evaluate_case(labels, truth, meta["spacing"], metrics=PREDICT_METRICS_2D, **options)


def _write_case(item: data.PredictionInput, labels: np.ndarray, maps: np.ndarray | None, meta: dict,
                label_map: dict, output_dir: Path) -> Path:
    """Write a case's files into a hidden folder of ``output_dir``, then move them into place: no
    half-written file is left under its final name (a MetaImage is a header and its data file)."""
    with tempfile.TemporaryDirectory(dir=output_dir, prefix=".partial-") as temporary:
        folder = Path(temporary)
        written = data.write_prediction(labels, item, meta, label_map, folder)
        if maps is not None:
            data.write_probabilities(maps, item, meta, label_map, folder)
        for path in sorted(folder.iterdir()):
            os.replace(path, output_dir / path.name)
    return output_dir / written.name


def predict_images(checkpoint: str | Path, input_path: str | Path, output_dir: str | Path, *,
                   device: str = "auto", tta: bool = False, probabilities: bool = False, batch_size: int = 8,
                   precision: str = "auto", model: str | None = None, progress: bool = True,
                   roi_size: int | Sequence[int] | None = None, overlap: float | None = None,
                   folds: Sequence[int] | None = None) -> PredictionReport:
    """Segment every case under ``input_path`` (formats: ``data.inputs``) with a 2D checkpoint, or a
    3D one of nnU-Net volumes, or the ensemble of a folds run's ``folds`` (default all; the mean of
    their probabilities, ``nas.run.networks.load_fold_ensemble``) into ``output_dir``: a mask per
    case in the input's geometry and
    format, ``--probabilities`` the probability maps beside it, and where labels lie beside the
    inputs ``metrics_cases.csv`` and ``metrics_summary.csv`` (Dice, IoU, HD95 per foreground class).

    2D networks see batches of ``batch_size`` slices; 3D ones each whole volume through Gaussian
    sliding windows of their training crop (``roi_size`` overrides it) with ``overlap``,
    ``batch_size`` windows per forward. A case that cannot be read is reported in one line naming
    its file and the others are still predicted; a bad checkpoint, a bad flag or an input without
    any case raises ``ValueError`` before anything is written.
    """
    require_int("batch_size", batch_size)
    target_device = resolve_device(device)
    network, spec = load_predictor(checkpoint, target_device, model, folds)
    volumes = spec["spatial_dims"] == 3
    if volumes and spec["preprocessing"].get("inputs") != "nnunet":
        raise ValueError(f"{checkpoint}: holds a 3D network of {spec['dataset']}; whole-volume prediction "
                         "reads BraTS cases (nas.run.brats_prediction) and nnU-Net volumes")
    roi = require_crop("crop_size", roi_size if roi_size is not None else spec["input"]["size"]) if volumes else None
    overlap = WINDOW_OVERLAP if overlap is None else overlap
    preprocessing, label_map = spec["preprocessing"], spec["labels"]
    dtype = resolve_precision(precision, target_device, network)
    items = data.find_prediction_inputs(input_path, preprocessing)  # DataError (one line) without any case
    output_dir = check_output_dir(output_dir, min_free_mb=1.0)

    def segment(stack: np.ndarray, meta: dict) -> tuple[np.ndarray, np.ndarray]:
        """(labels, probabilities (K, ...)) on the input's own grid."""
        if volumes:  # (K, *spatial) of the whole volume
            maps = predict_probabilities(network, torch.from_numpy(stack), roi, overlap=overlap, tta=tta,
                                         sw_batch_size=batch_size, device=target_device,
                                         precision=dtype).cpu().numpy()
        else:
            maps = slice_probabilities(network, stack, label_map["activation"], tta=tta,
                                       batch_size=batch_size, device=target_device, precision=dtype)
            maps = data.restore_probabilities(maps, meta["served_shape"]).transpose(0, 1).numpy()  # (K, S, H0, W0)
        return data.probabilities_to_labels(maps, label_map), maps

    def write(item: data.PredictionInput, segmentation: tuple, meta: dict) -> Path:
        labels, maps = segmentation
        return _write_case(item, labels, maps if probabilities else None, meta, label_map, output_dir)

    def score(segmentation: tuple, truth: np.ndarray, meta: dict) -> dict[str, float]:
        return _scores(data.in_output_order(segmentation[0], meta), truth, meta, label_map)

    def summary(scores: dict[str, float]) -> str:
        return f"Dice {np.mean([value for key, value in scores.items() if key.split('/')[0] == 'dice']):.3f}"

    with tqdm(items, desc="predict", unit="case", disable=not progress) as bar:
        return predict_cases(bar, output_dir, name=lambda item: item.case,
                             read=lambda item: data.read_prediction_input(item, preprocessing),
                             read_label=lambda item, meta: data.read_prediction_label(item, preprocessing,
                                                                                      label_map, meta),
                             segment=segment, target=lambda item: output_dir / item.output, write=write,
                             score=score, summary=summary, say=tqdm.write if progress else None)


def predict_checkpoint(checkpoint: str | Path, input_path: str | Path, output_dir: str | Path, *,
                       device: str = "auto", tta: bool = False, probabilities: bool = False,
                       batch_size: int | None = None, precision: str = "auto", model: str | None = None,
                       progress: bool = True, et_threshold: int = data.ET_THRESHOLD,
                       roi_size: int | Sequence[int] | None = None, overlap: float | None = None,
                       folds: Sequence[int] | None = None) -> PredictionReport:
    """``lwnas predict``: a 3D checkpoint segments BraTS cases (``nas.run.brats_prediction.predict``:
    sliding windows, ``et_threshold``, ``roi_size``, ``overlap``; ``batch_size`` windows per
    forward) or, trained on nnU-Net volumes, those volumes whole; a 2D one images, series and
    volumes slice by slice (:func:`predict_images`). ``checkpoint`` may be a folds run's directory
    (``retrain.py --folds``): the ensemble of its ``folds`` (default all) predicts, each fold's
    TTA first, then the mean of the folds' probabilities."""
    if batch_size is not None:
        require_int("batch_size", batch_size)
    spec, _ = read_spec(fold_checkpoints(checkpoint, folds)[0] if is_folds_run(checkpoint) else checkpoint)
    if spec["spatial_dims"] == 3 and spec["preprocessing"].get("inputs") == "nnunet":
        return predict_images(checkpoint, input_path, output_dir, device=device, tta=tta,
                              probabilities=probabilities, batch_size=1 if batch_size is None else batch_size,
                              precision=precision, model=model, progress=progress, roi_size=roi_size,
                              overlap=overlap, folds=folds)
    if spec["spatial_dims"] == 3:
        if probabilities:
            raise ValueError(f"--probabilities: not available for 3D checkpoints ({checkpoint}); "
                             "it writes the maps of 2D networks")
        return predict(checkpoint, input_path, output_dir, device=device, model=model, tta=tta,
                       et_threshold=et_threshold, roi_size=roi_size, overlap=overlap,
                       sw_batch_size=1 if batch_size is None else batch_size, precision=precision,
                       progress=progress, folds=folds)
    ignored = [flag for flag, given in (("--crop-size", roi_size is not None), ("--overlap", overlap is not None),
                                        ("--et-threshold", et_threshold != data.ET_THRESHOLD)) if given]
    if ignored:
        raise ValueError(f"{', '.join(ignored)}: applies to 3D BraTS checkpoints; {checkpoint} holds a 2D "
                         f"{spec['network']['name']} network")
    return predict_images(checkpoint, input_path, output_dir, device=device, tta=tta, probabilities=probabilities,
                          batch_size=8 if batch_size is None else batch_size, precision=precision, model=model,
                          progress=progress, folds=folds)


__all__ = ["PREDICT_METRICS_2D", "predict_checkpoint", "predict_images", "slice_probabilities"]
