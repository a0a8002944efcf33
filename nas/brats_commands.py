"""What ``retrain.py --model`` and ``retrain.py --predict`` do, as functions a test can call.

``retrain_model`` trains a hand-designed 3D network on BraTS with its seed's settings
(``nas.model_presets``), validates on whole volumes, keeps the best checkpoint and scores it
on the test split. Its checkpoints describe themselves (network name, constructor arguments,
channels, classes, activation, crop and data options), so ``predict`` rebuilds the network
from the checkpoint alone and segments a folder of BraTS cases into NIfTI files.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import torch
from torch import nn

import data
import models
from data.brats import LAYOUTS, MODALITIES
from data.sample import is_sample

from . import complexity
from .checkpoint import atomic_write_text, load_checkpoint
from .commands import prepare_splits, run_directory
from .distributed import (DistributedContext, barrier, init_distributed, resolve_device,
                          wrap_model)
from .engine import check_output_dir, resolve_precision
from .metrics import BRATS_REGIONS, case_table, evaluate_case, write_tables
from .model_presets import (TRAINING_TARGETS, model_preset, network_kwargs,
                            training_values)
from .retrain_loop import RetrainConfig, run_retrain
from .volume_evaluation import (VALIDATION_METRIC, evaluate_volumes, make_validator,
                                region_means, segment_volume)

#: ``kind`` entry of every checkpoint ``retrain_model`` writes.
CHECKPOINT_KIND = "lwnas.brats3d-model"
#: Scores of the final test evaluation and of ``predict`` (per region WT/TC/ET, mm).
TEST_METRICS = ("dice", "hd95")
PREDICT_METRICS = ("dice", "hd95", "sensitivity", "specificity")
#: Seed 000: enhancing tumour predicted with fewer voxels is merged into the core.
ET_THRESHOLD = 400


def _say(context: DistributedContext, message: str) -> None:
    if context.is_main:
        print(message, flush=True)


def _one_line(error: BaseException) -> str:
    text = " ".join(str(error).split())
    text = f"{type(error).__name__}: {text}" if text else type(error).__name__
    return text if len(text) <= 300 else text[:297] + "..."


def _uses_sample(dataset: str, data_root: str | Path | None) -> bool:
    return data_root is None or is_sample(Path(data_root).expanduser(), dataset)


def _saved_network(out_dir: Path) -> dict[str, Any]:
    """The network entry of a run's ``checkpoint.pt`` (for ``--resume``)."""
    state = load_checkpoint(out_dir / "checkpoint.pt")
    if state.get("kind") != CHECKPOINT_KIND:
        raise ValueError(f"{out_dir / 'checkpoint.pt'}: not a 3D model run; resume it with the "
                         "command that started it")
    return {"network": state["network"], "roi_size": tuple(state["roi_size"])}


def retrain_model(model_name: str, dataset: str = "brats", data_root: str | Path | None = None,
                  out: str | Path | None = None, *, device: str = "auto", resume: bool = False,
                  seed: int = 0, splits_file: str | Path | None = None,
                  val_fraction: float = 0.25, skip_bad: bool = False, progress: bool = True,
                  crop_size: int | Sequence[int] | None = None,
                  model_kwargs: Mapping[str, Any] | None = None, overlap: float = 0.5,
                  et_threshold: int = ET_THRESHOLD, **overrides: Any) -> dict[str, Any]:
    """Train the registered 3D network ``model_name`` from scratch on ``dataset`` (BraTS).

    Settings: ``nas.model_presets`` (the seed's), then ``overrides`` (``RetrainConfig`` fields:
    epochs, lr, batch_size, weight_decay, loss, precision, ...; None = preset). ``crop_size``:
    the training crop, also the sliding window of validation and prediction (default: the
    preset's; 32^3 on the sample data). ``model_kwargs`` go to the network's constructor.

    Writes ``splits.json``, ``log.csv`` (with ``val_dice_wt/tc/et/mean`` per epoch),
    ``best.pt`` (best ``val_dice_mean``), ``checkpoint.pt`` (exact resume), and, for the best
    checkpoint on the test split with ``et_threshold`` post-processing, ``test_cases.csv``,
    ``test_summary.csv`` and ``metrics.json`` (Dice and HD95 per region).
    """
    context = init_distributed(device)
    preset = model_preset(model_name)
    if data.get_preset(dataset).spatial_dims != 3:
        raise ValueError(f"{model_name} is a 3D network; dataset {dataset!r} is 2D "
                         "(train genotypes on it with --genotype)")
    for flag, hint in (("image_size", "pass crop_size (--crop-size) for 3D crops"),
                       ("drop_path", "drop-path applies to genotype networks only")):
        if overrides.pop(flag, None) is not None:
            raise ValueError(f"{flag} does not apply to --model {model_name}: {hint}")
    out_dir = run_directory(f"retrain-{model_name}", dataset, out, context, resume)
    sample = _uses_sample(dataset, data_root)
    saved = _saved_network(out_dir) if resume else None
    if crop_size is None:
        crop_size = (saved["roi_size"] if saved else
                     data.get_preset(dataset).sample_crop_size if sample else preset.crop_size)
    crop = (int(crop_size),) * 3 if isinstance(crop_size, int) else tuple(map(int, crop_size))
    if len(crop) != 3 or min(crop) < 1:
        raise ValueError(f"crop_size must be one or three positive sizes, got {crop_size}")
    if model_kwargs is None and saved:
        model_kwargs = saved["network"]["kwargs"]
    kwargs = network_kwargs(model_name, crop, model_kwargs)

    values = training_values(model_name, overrides, sample=sample)
    config = RetrainConfig(dataset=dataset, model=model_name, seed=seed, progress=progress,
                           image_size=crop, drop_path=0.0, select_metric=VALIDATION_METRIC,
                           **values)
    torch.manual_seed(seed)  # the initial weights depend on the seed only
    network = models.build(model_name, in_channels=len(MODALITIES), **kwargs)
    activation = getattr(network, "output_activation", None)
    if activation not in TRAINING_TARGETS:
        raise ValueError(f"{model_name}: output_activation {activation!r}; expected one of "
                         f"{', '.join(TRAINING_TARGETS)}")
    target = TRAINING_TARGETS[activation]

    options = dict(crop_size=crop, skip_bad=skip_bad)
    splits = prepare_splits(dataset, data_root, out_dir, seed, val_fraction, context,
                            splits_file, **options)
    sets = {split: data.get_dataset(dataset, data_root, split, seed, splits_file=splits,
                                    target=target if split == "train" else "labels", **options)
            for split in ("train", "val", "test")}
    # torch's SyncBatchNorm runs on CUDA only; gloo (CPU) processes keep per-process BN
    model = wrap_model(network, context)
    precision = resolve_precision(config.precision, context.device)
    evaluate = make_validator(sets["val"], crop, context, precision=precision, overlap=overlap)
    metadata = {
        "kind": CHECKPOINT_KIND,
        "network": {"name": model_name, "kwargs": kwargs, "in_channels": len(MODALITIES),
                    "num_classes": int(network.num_classes), "output_activation": activation},
        "roi_size": list(crop),
        "data": {"dataset": dataset, "target": target, "crop_size": list(crop),
                 "modalities": list(MODALITIES), "normalise": "z-score on nonzero voxels",
                 "data_root": str(data_root or ""), "splits": "splits.json"},
    }
    _say(context, f"retrain {model_name} on {dataset}: {len(sets['train'])} / "
                  f"{len(sets['val'])} / {len(sets['test'])} train / val / test cases, crop "
                  f"{'x'.join(map(str, crop))}, batch {config.batch_size}, {config.epochs} "
                  f"epochs, loss {config.loss} -> {out_dir}")
    result = run_retrain(model, config, sets["train"], out_dir, evaluate, context=context,
                         resume=resume, metadata=metadata)

    barrier(context)  # rank 0 may still be renaming the last best.pt into place
    best = load_checkpoint(out_dir / "best.pt", map_location=context.device)
    network.load_state_dict(best["model"])
    rows = evaluate_volumes(network, sets["test"], crop, context=context, metrics=TEST_METRICS,
                            et_threshold=et_threshold, precision=precision, overlap=overlap)
    metrics = _test_metrics(model_name, dataset, rows, best, result, crop, overlap,
                            et_threshold, network)
    if context.is_main:
        if rows:
            write_tables(case_table(rows), out_dir, "test")
        atomic_write_text(out_dir / "metrics.json", json.dumps(metrics, indent=2) + "\n")
    dice = metrics["dice"]
    _say(context, f"test Dice WT {dice['WT']:.4f}, TC {dice['TC']:.4f}, ET {dice['ET']:.4f} "
                  f"({metrics['test_cases']} cases, best epoch {metrics['best_epoch']}) -> "
                  f"{out_dir / 'metrics.json'}")
    return {**result, "metrics": metrics}


def _test_metrics(model_name: str, dataset: str, rows: list[dict], best: dict, result: dict,
                  crop: tuple[int, ...], overlap: float, et_threshold: int,
                  network: nn.Module) -> dict[str, Any]:
    spec = best["network"]
    with torch.device("meta"):  # counts without memory or time
        counted = models.build(spec["name"], in_channels=spec["in_channels"], **spec["kwargs"])
    counts = complexity.profile(counted, (1, spec["in_channels"]) + tuple(crop))
    metrics: dict[str, Any] = {"dataset": dataset, "model": model_name, "checkpoint": "best.pt",
                               "best_epoch": best["epoch"],
                               "best_val": result["best"].get("metrics", {}),
                               "test_cases": len(rows)}
    for name in TEST_METRICS:
        means = region_means(rows, name, prefix="")
        metrics[name] = {region: means[f"{name}_{region.lower()}"] for region in BRATS_REGIONS}
        metrics[name]["mean"] = means[f"{name}_mean"]
    metrics.update({
        "metric_definitions": "per-case Dice and HD95 (mm) of WT={1,2,4}, TC={1,4}, ET={4}, "
                              "averaged over the test cases; empty prediction and truth score "
                              "Dice 1 / HD95 0, exactly one empty Dice 0 / HD95 the image "
                              "diagonal",
        "et_threshold": et_threshold, "roi_size": list(crop), "overlap": overlap,
        "params": sum(p.numel() for p in network.parameters()),
        "macs_per_window": counts["macs"], "tables": ["test_cases.csv", "test_summary.csv"]})
    return metrics


# ------------------------------------------------------------------ prediction

@dataclass(frozen=True)
class PredictionReport:
    """What ``predict`` did: the NIfTI files written, one line per case that failed (naming
    its file), and the metrics tables (empty when no case had a segmentation)."""

    predictions: list[Path]
    failures: list[str]
    metrics_files: tuple[Path, ...] = ()


def load_model_checkpoint(path: str | Path, device: torch.device | str = "cpu",
                          expected_model: str | None = None) -> tuple[nn.Module, dict[str, Any]]:
    """Rebuild the network of a ``retrain_model`` checkpoint from its metadata alone.

    Returns ``(network in eval mode on device, checkpoint dict)``. Refuses, in one line naming
    the file, a checkpoint of another kind (a genotype network), of another network than
    ``expected_model``, of a channel count other than the 4 modalities, or whose weights do
    not fit the network its metadata describes.
    """
    path = Path(path)
    state = load_checkpoint(path, map_location="cpu")
    if state.get("kind") != CHECKPOINT_KIND:
        what = ("a genotype network (retrain.py --genotype)" if "genotype" in state
                else "no 3D network description")
        raise ValueError(f"{path}: holds {what}; expected a checkpoint written by "
                         "retrain.py --model (best.pt or checkpoint.pt)")
    spec = state.get("network") or {}
    name = spec.get("name")
    if expected_model is not None and name != expected_model:
        raise ValueError(f"{path}: holds a {name} network; expected {expected_model}")
    if spec.get("in_channels") != len(MODALITIES):
        raise ValueError(f"{path}: the {name} network takes {spec.get('in_channels')} input "
                         f"channels; expected {len(MODALITIES)} (the BraTS modalities "
                         f"{', '.join(MODALITIES)})")
    try:
        network = models.build(name, in_channels=spec["in_channels"],
                               num_classes=spec.get("num_classes"), **spec.get("kwargs", {}))
    except Exception as error:  # unknown name or constructor arguments of another version
        raise ValueError(f"{path}: cannot rebuild the {name} network from its metadata "
                         f"({_one_line(error)})") from None
    try:
        network.load_state_dict(state["model"])
    except Exception as error:  # missing / unexpected keys, shape mismatches
        raise ValueError(f"{path}: weights do not fit the {name} network its metadata "
                         f"describes ({_one_line(error)})") from None
    return network.to(device).eval(), state


def _write_atomically(labels: np.ndarray, reference: str | Path, out_path: Path) -> Path:
    """``data.write_nifti_like`` into a temporary name beside ``out_path``, then a rename: a
    crash never leaves a half-written NIfTI under the final name."""
    temporary = out_path.with_name(f".{out_path.name[:-len('.nii.gz')]}.{os.getpid()}.partial"
                                   ".nii.gz")
    try:
        data.write_nifti_like(labels, reference, temporary)
        os.replace(temporary, out_path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    return out_path


def _release_labels(labels: np.ndarray, layout: str) -> np.ndarray:
    """Labels in the input release's convention (enhancing tumour 4, or 3 from 2023)."""
    enhancing = next((lay.enhancing_label for lay in LAYOUTS if lay.name == layout), 4)
    if enhancing == 4:
        return labels
    relabelled = labels.copy()
    relabelled[labels == 4] = enhancing
    return relabelled


def predict(checkpoint: str | Path, input_dir: str | Path, output_dir: str | Path, *,
            device: str = "auto", model: str | None = None, tta: bool = False,
            et_threshold: int = ET_THRESHOLD, roi_size: int | Sequence[int] | None = None,
            overlap: float = 0.5, sw_batch_size: int = 1, precision: str = "auto",
            progress: bool = True) -> PredictionReport:
    """Segment every BraTS case under ``input_dir`` into ``output_dir/<case>.nii.gz``.

    Sliding windows of the checkpoint's training crop (or ``roi_size``) with Gaussian-weighted
    ``overlap``, optionally the 8-flip ``tta``, labels 0/1/2/4 (3 for ET in a 2023-layout
    input), then seed 000's post-processing (fewer than ``et_threshold`` ET voxels become
    label 1; 0 switches it off). Each file has the affine and header of the case's FLAIR.
    Cases with a segmentation are scored (Dice, HD95, sensitivity, specificity per WT/TC/ET,
    mm) into ``metrics_cases.csv`` and ``metrics_summary.csv``.

    A case that cannot be read (missing modality, modalities of different shapes, corrupt
    file) is skipped and reported in one line naming the file; the others are still
    predicted. A bad checkpoint or an input folder without cases raises ``ValueError``
    before anything is written. Runs in one process.
    """
    target_device = resolve_device(device)
    network, state = load_model_checkpoint(checkpoint, target_device, model)
    roi = roi_size if roi_size is not None else state["roi_size"]
    roi = (int(roi),) * 3 if isinstance(roi, int) else tuple(int(r) for r in roi)
    dtype = resolve_precision(precision, target_device)
    cases = data.find_brats_cases(input_dir)  # DataError (one line) without any case
    output_dir = check_output_dir(output_dir, min_free_mb=1.0)
    written: list[Path] = []
    failures: list[str] = []
    rows: list[dict[str, Any]] = []
    metrics_files: tuple[Path, ...] = ()
    try:
        for case_dir in cases:
            try:
                image, truth, meta = data.read_brats_case(case_dir, normalise=True,
                                                          require_label=False)
            except data.DataError as error:
                failures.append(str(error))
                continue
            labels = segment_volume(network, torch.from_numpy(image), roi,
                                    et_threshold=et_threshold, overlap=overlap, tta=tta,
                                    sw_batch_size=sw_batch_size, device=target_device,
                                    precision=dtype)
            out_path = output_dir / f"{case_dir.name}.nii.gz"
            try:
                _write_atomically(_release_labels(labels, meta["layout"]), meta["source"],
                                  out_path)
            except (OSError, data.DataError) as error:
                failures.append(f"{out_path}: could not be written ({_one_line(error)})")
                continue
            written.append(out_path)
            line = f"{case_dir.name}: {out_path}"
            if truth is not None:
                scores = evaluate_case(labels, truth, meta["spacing"], regions=BRATS_REGIONS,
                                       metrics=PREDICT_METRICS)
                rows.append({"case": case_dir.name, **scores})
                line += " (Dice WT/TC/ET " + "/".join(
                    f"{scores[f'dice/{region}']:.3f}" for region in BRATS_REGIONS) + ")"
            if progress:
                print(line, flush=True)
    finally:  # the scores of the cases done so far are kept even if a case crashes
        if rows:
            metrics_files = write_tables(case_table(rows), output_dir, "metrics")
    return PredictionReport(written, failures, metrics_files)
