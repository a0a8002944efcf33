"""Segment BraTS cases with a 3D checkpoint (what ``lwnas predict`` does with one,
``nas.run.prediction``).

The network is rebuilt from the checkpoint alone (``nas.run.volume_training`` writes its
description); each case becomes ``<case>.nii.gz`` with the input's affine and header and the
release's labels, and cases with a segmentation are scored.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import torch
from torch import nn

import data
from nas.metrics import evaluate_case
from nas.presets import WINDOW_OVERLAP
from nas.train import atomic_path, check_output_dir, load_checkpoint, resolve_device, resolve_precision
from nas.train.settings import require_crop

from .brats import segment_volume
from .networks import SPEC_KEY, load_predictor, network_name, restore_network, spec_of
from .prediction_cases import PredictionReport, predict_cases

#: Scores of ``predict`` per region WT/TC/ET (distances in mm).
PREDICT_METRICS = ("dice", "hd95", "sensitivity", "specificity")


def load_model_checkpoint(path: str | Path, device: torch.device | str = "cpu",
                          expected_model: str | None = None) -> tuple[nn.Module, dict[str, Any]]:
    """Rebuild the network of a 3D BraTS checkpoint from its inference description alone.

    Returns ``(network in eval mode on device, inference description)``: a registered model, or
    the network of a 3D genotype (``retrain.py --genotype`` of a BraTS search; ``expected_model``
    "genotype"). Refuses, in one line naming the file, a checkpoint of another kind (a 2D
    network), one without a usable description (an old checkpoint: the missing fields named),
    of another network than ``expected_model``, of a channel count other than the 4 modalities,
    or whose weights do not fit the network described.
    """
    path = Path(path)
    state = load_checkpoint(path, map_location="cpu")
    spec = state.get(SPEC_KEY)
    entry = spec.get("network") if isinstance(spec, dict) else None
    brats = isinstance(spec, dict) and spec.get("spatial_dims") == 3 and spec.get("dataset") == "brats"
    if not brats and (isinstance(entry, dict) or "genotype" in state):
        name = entry.get("name") if isinstance(entry, dict) else None
        what = ("a genotype network (retrain.py --genotype)" if not name
                else f"a 3D {name} network of {spec.get('dataset')} volumes (lwnas predict segments "
                     "those volumes with it)" if spec.get("spatial_dims") == 3
                else f"a 2D {name} network (lwnas predict segments images with it)")
        raise ValueError(f"{path}: holds {what}; expected a checkpoint written by "
                         "retrain.py --model or by retrain.py --genotype of a 3D BraTS search "
                         "(best.pt or checkpoint.pt)")
    spec = spec_of(state, path)  # without a description: the missing fields, in one line
    if spec["network"]["in_channels"] != len(data.MODALITIES):
        raise ValueError(f"{path}: the {network_name(spec)} network takes {spec['network']['in_channels']} "
                         f"input channels; expected {len(data.MODALITIES)} (the BraTS modalities "
                         f"{', '.join(data.MODALITIES)})")
    return restore_network(state, spec, path, device, expected_model), spec


def predict(checkpoint: str | Path, input_dir: str | Path, output_dir: str | Path, *,
            device: str = "auto", model: str | None = None, tta: bool = False,
            et_threshold: int = data.ET_THRESHOLD, roi_size: int | Sequence[int] | None = None,
            overlap: float | None = None, sw_batch_size: int = 1, precision: str = "auto",
            progress: bool = True, folds: Sequence[int] | None = None) -> PredictionReport:
    """Segment every BraTS case under ``input_dir`` into ``output_dir/<case>.nii.gz``.

    Sliding windows of the checkpoint's training crop (or ``roi_size``) with Gaussian-weighted
    ``overlap`` (None: ``nas.presets.WINDOW_OVERLAP``), optionally the 8-flip ``tta``, labels
    0/1/2/4 (3 for ET in a 2023-layout input), then seed 000's post-processing (fewer than
    ``et_threshold`` ET voxels become label 1; 0 switches it off). Each file has the affine
    and header of the case's FLAIR. Cases with a segmentation are scored (Dice, HD95,
    sensitivity, specificity per WT/TC/ET, mm) into ``metrics_cases.csv`` and
    ``metrics_summary.csv``.

    A case that cannot be read (missing modality, modalities of different shapes, corrupt
    file) is skipped and reported in one line naming the file; the others are still
    predicted. A bad checkpoint or an input folder without cases raises ``ValueError``
    before anything is written. Runs in one process. ``checkpoint`` may be a folds run's
    directory: the ensemble of its ``folds`` (default all) segments, the mean of their
    probabilities (each fold's TTA first) made labels once.
    """
    target_device = resolve_device(device)
    overlap = WINDOW_OVERLAP if overlap is None else overlap
    network, spec = load_predictor(checkpoint, target_device, model, folds, load=load_model_checkpoint)
    roi = require_crop("crop_size", roi_size if roi_size is not None else spec["input"]["size"])
    dtype = resolve_precision(precision, target_device, network)
    cases = data.find_brats_cases(input_dir)  # DataError (one line) without any case
    output_dir = check_output_dir(output_dir, min_free_mb=1.0)

    def read(case_dir: Path) -> tuple[Any, dict]:
        image, _, meta = data.read_brats_case(case_dir, normalise=True, read_label=False)
        return image, meta

    def segment(image: Any, meta: dict) -> Any:
        return segment_volume(network, torch.from_numpy(image), roi, et_threshold=et_threshold, overlap=overlap,
                              tta=tta, sw_batch_size=sw_batch_size, device=target_device, precision=dtype)

    def target(case_dir: Path) -> Path:
        return output_dir / f"{case_dir.name}.nii.gz"

    def write(case_dir: Path, labels: Any, meta: dict) -> Path:
        with atomic_path(target(case_dir), suffix=".nii.gz") as temporary:
            data.write_nifti_like(data.release_labels(labels, meta["layout"]), meta["source"], temporary)
        return target(case_dir)

    def score(labels: Any, truth: Any, meta: dict) -> dict[str, float]:
        return evaluate_case(labels, truth, meta["spacing"], regions=data.BRATS_REGIONS, metrics=PREDICT_METRICS)

    def summary(scores: dict[str, float]) -> str:
        return "Dice WT/TC/ET " + "/".join(f"{scores[f'dice/{region}']:.3f}" for region in data.BRATS_REGIONS)

    return predict_cases(cases, output_dir, name=lambda case_dir: case_dir.name, read=read,
                         read_label=data.read_brats_label, segment=segment, target=target, write=write,
                         score=score, summary=summary,
                         say=(lambda line: print(line, flush=True)) if progress else None)
