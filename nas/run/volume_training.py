"""The one 3D training flow, for a hand-designed 3D network (``retrain.py --model``) and for the
network of a 3D genotype (``retrain.py --genotype``) alike: random crops of the training cases,
whole-volume validation by sliding windows of the crop (``val_dice_mean`` selects ``best.pt``),
the test cases segmented whole with the best weights and scored into ``metrics.json``.

BraTS volumes are scored by the regions WT/TC/ET of labels 0/1/2/4 (``nas.run.brats``; the test
segmentations post-processed by ``et_threshold``, Dice and HD95 per case in ``test_cases.csv``
and ``test_summary.csv``, the BraTS challenge's rule for empty regions); any other data set of
volumes by the Dice and IoU of each class it serves, per case, a class empty in both prediction
and truth left out of the mean (``nas.metrics.PER_CASE``; ``test_cases.csv`` too).
The checkpoints describe themselves once, in ``spec`` (``nas.run.networks``): ``lwnas predict``
rebuilds the network from it and ``--resume`` reads its network and crop from it.
"""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import pandas as pd
import torch
from torch import nn

import data
from nas.metrics import PER_CASE, case_table, overlap_summary, write_tables
from nas.presets import TRAINING_TARGETS, WINDOW_OVERLAP, model_preset, network_kwargs, training_values
from nas.search import network_complexity
from nas.train import RetrainConfig, atomic_write_text, load_checkpoint, resolve_precision, run_retrain, wrap_model
from nas.train.distributed import DistributedContext, barrier, say
from nas.train.evaluation import VAL_DICE_MEAN, class_scorer, region_means
from nas.train.loop import RESUME_MAY_CHANGE
from nas.train.run_dir import start_run
from nas.train.settings import require_crop

from .brats import BRATS, evaluate_volumes, volume_validator
from .data_setup import (
    crops_per_case,
    prepare_splits,
    record_skipped,
    run_data_identity,
    skipped_note,
    verify_data,
    write_fingerprint,
)
from .folds import cross_validate, folds_requested
from .image_training import overlap_note
from .networks import SPEC_KEY, build_network, build_spec, model_network, read_spec, searched_network, training_entry
from .tensorboard import tensorboard_callback

#: Scores of the final test evaluation of BraTS (per region WT/TC/ET, mm).
BRATS_TEST_METRICS = ("dice", "hd95")


def _saved_network(out_dir: Path) -> tuple[dict[str, Any], tuple[int, ...]]:
    """The network entry and the crop of a run's ``checkpoint.pt`` (for ``--resume``), read from
    its description as ``lwnas predict`` reads it."""
    spec, _ = read_spec(out_dir / "checkpoint.pt")
    if spec["spatial_dims"] != 3:
        raise ValueError(f"{out_dir / 'checkpoint.pt'}: not a 3D run; resume it with the command "
                         "that started it")
    return spec["network"], tuple(spec["input"]["size"])


def train_volumes(model_name: str, dataset: str, data_root: str | Path | None,
                  out: str | Path | None, *, context: DistributedContext, resume: bool, seed: int,
                  splits_file: str | Path | Mapping[str, Any] | None, val_fraction: float | None, skip_bad: bool,
                  progress: bool, crop_size: int | Sequence[int] | None,
                  model_kwargs: Mapping[str, Any] | None, overlap: float | None,
                  data_options: Mapping[str, Any] | None, et_threshold: int, tensorboard: bool,
                  genotype: str | Path | None, verify: bool = True, **overrides: Any) -> dict[str, Any]:
    """Train the registered 3D network ``model_name``, or with ``model_name="genotype"`` the
    network of the 3D genotype file ``genotype``, from scratch on ``dataset``'s volumes.

    Settings: the network's preset (``nas.presets``; a genotype's by the target its search
    trained), then ``overrides`` (``RetrainConfig`` fields; None = preset). ``crop_size``: the
    training crop, also the sliding window of validation and test (default: a resumed run's, the
    sample data's, else the preset's). ``model_kwargs`` go to the network's constructor.
    """
    searched = searched_network(model_name, genotype, model_kwargs)  # None: a registered model
    preset = searched.preset if searched else model_preset(model_name)
    options = dict(data_options or {})
    facts = data.dataset_facts(dataset, data_root, **options)
    if facts.spatial_dims != 3:
        raise ValueError(f"{model_name} is a 3D network; dataset {dataset!r} is {facts.spatial_dims}D "
                         "(train genotypes on it with --genotype)")
    drop_path = overrides.pop("drop_path", None) if searched else None
    for flag, hint in (("image_size", "pass crop_size (--crop-size) for 3D crops"),
                       ("drop_path", "drop-path applies to genotype networks only")):
        if overrides.pop(flag, None) is not None:
            raise ValueError(f"{flag} does not apply to --model {model_name}: {hint}")
    saved, saved_crop = _saved_network(Path(out)) if resume and out is not None else (None, None)
    crop = require_crop("crop_size", crop_size or saved_crop or facts.crop_size or preset.crop_size)
    if model_kwargs is None and saved:
        model_kwargs = saved["kwargs"]
    kwargs = {} if searched else network_kwargs(model_name, crop, model_kwargs)
    overlap = WINDOW_OVERLAP if overlap is None else overlap
    brats = dataset == BRATS  # labels 0/1/2/4 scored by the regions WT/TC/ET

    values = training_values(model_name, overrides, sample=facts.sample, preset=preset)
    config = RetrainConfig(dataset=dataset, model=model_name, seed=seed, progress=progress,
                           image_size=crop, select_metric=VAL_DICE_MEAN,
                           drop_path=(searched.drop_path if drop_path is None else drop_path)
                           if searched else 0.0, **values)
    out_dir, resume = start_run(_run_kind(model_name), dataset, out, context, resume, dataclasses.asdict(config),
                                RESUME_MAY_CHANGE)
    if verify:  # False: checked already (the folds of a cross-validation)
        verify_data(dataset, data_root, context, skip_bad, **options)
    torch.manual_seed(seed)  # the initial weights depend on the seed only
    built = (searched.entry() if searched else
             model_network(model_name, kwargs, facts.in_channels, num_classes=None))
    network = build_network(built, config.drop_path)
    activation = getattr(network, "output_activation", None)
    if activation not in TRAINING_TARGETS:
        raise ValueError(f"{model_name}: output_activation {activation!r}; expected one of "
                         f"{', '.join(TRAINING_TARGETS)}")
    # the target of the network's output, where the data set serves several (BraTS)
    targets = {split: {} for split in ("train", "val", "test")}
    if "target" in data.get_preset(dataset).options:
        options.pop("target", None)
        targets = {split: {"target": TRAINING_TARGETS[activation] if split == "train" else "labels"}
                   for split in targets}

    options.update(crop_size=crop, skip_bad=skip_bad)
    splits = prepare_splits(dataset, data_root, out_dir, seed, val_fraction, context,
                            splits_file, resume=resume, **options)
    data_identity = run_data_identity(dataset, data_root, splits, out_dir, context, resume, **(data_options or {}))
    if "crops_per_case" not in options:  # the user's own count wins
        targets["train"]["crops_per_case"] = crops_per_case(
            config.batch_size, context, len(data.load_splits(splits)["train"]))
    sets = {split: data.get_dataset(dataset, data_root, split, seed, splits_file=splits,
                                    **targets[split], **options)
            for split in ("train", "val", "test")}
    write_fingerprint(out_dir, sets["train"], context)
    skipped = record_skipped(out_dir, sets, context)
    model = wrap_model(network, context)
    precision = resolve_precision(config.precision, context.device, network)
    evaluate = volume_validator(dataset, sets["val"], crop, context, precision=precision,
                                overlap=overlap)
    score_test = _test_scorer(dataset, sets["test"], crop, context, precision=precision, overlap=overlap,
                              et_threshold=et_threshold)  # refuses an empty test split now
    # the entry --resume and the test count rebuild from; prediction reads the description
    entry = built if searched else model_network(model_name, kwargs, facts.in_channels,
                                                 int(network.num_classes), output_activation=activation)
    identity = {"genotype": str(genotype)} if searched else {}
    extra = {"et_threshold": et_threshold} if brats else {}
    metadata = {SPEC_KEY: build_spec(entry, sets["train"], crop,
                                     training_entry(dataclasses.asdict(config), sets["train"].splits,
                                                    data_root, **identity, overlap=overlap, **extra))}
    if searched:  # the genotype file's search records (alphas, margins), as a 2D retrain keeps them
        metadata["genotype"] = json.dumps(searched.metadata)
    crops = sets["train"].crops_per_case
    crops = f" ({crops} per case and epoch)" if crops > 1 else ""
    say(context, f"retrain {genotype if searched else model_name} on {dataset}: {len(sets['train'].cases)} / "
                 f"{len(sets['val'].cases)} / {len(sets['test'].cases)} train / val / test cases, crop "
                 f"{'x'.join(map(str, crop))}{crops}, batch {config.batch_size}, {config.epochs} "
                 f"epochs, loss {config.loss} -> {out_dir}")
    with tensorboard_callback(tensorboard, out_dir, context) as on_epoch_end:
        result = run_retrain(model, config, sets["train"], out_dir, evaluate, context=context,
                             resume=resume, metadata=metadata, on_epoch_end=on_epoch_end,
                             data=data_identity)

    barrier(context)  # rank 0 may still be renaming the last best.pt into place
    best = load_checkpoint(out_dir / "best.pt", map_location=context.device)
    network.load_state_dict(best["model"])
    with torch.device("meta"):  # counts without memory or time
        counted = network_complexity(build_network(entry), (facts.in_channels, *crop))
    metrics: dict[str, Any] = {"dataset": dataset, "model": model_name, **identity,
                               "best_epoch": best["epoch"],
                               "best_val": result["best"].get("metrics", {})}
    scores, rows = score_test(network)
    metrics.update(scores)
    metrics.update({"params": counted["params"], "flops": counted["flops"],
                    "input_shape": [facts.in_channels, *crop], "roi_size": list(crop),
                    "overlap": overlap})
    if context.is_main:
        if rows:
            write_tables(case_table(rows), out_dir, "test")
        atomic_write_text(out_dir / "metrics.json", json.dumps(metrics, indent=2) + "\n")
    summary = (", ".join(f"{region} {metrics['dice'][region]:.4f}" for region in data.BRATS_REGIONS)
               + f" ({metrics['test_cases']} cases" if brats else
               f"{metrics['dsc']:.4f} ({overlap_note(metrics)}")
    say(context, f"test Dice {summary}, best epoch {metrics['best_epoch']}); "
                 f"{metrics['params'] / 1e6:.3f}M params, {metrics['flops'] / 1e9:.3f} GFLOPs per crop "
                 f"-> {out_dir / 'metrics.json'}{skipped_note(skipped)}")
    return {**result, "metrics": metrics}


def volume_runs(model_name: str, dataset: str, data_root: str | Path | None, out: str | Path | None, *,
                context: DistributedContext, folds: int | None, fold: int | None, resume: bool, seed: int,
                splits_file: str | Path | None, val_fraction: float | None, skip_bad: bool,
                data_options: Mapping[str, Any] | None, **settings: Any) -> dict[str, Any]:
    """:func:`train_volumes` once, or for the folds of a folds run (``folds`` K or ``fold`` given,
    a ``splits_file`` with folds, or ``resume`` of a folds run: ``nas.run.folds``)."""
    common = dict(context=context, seed=seed, val_fraction=val_fraction, skip_bad=skip_bad,
                  data_options=data_options, **settings)
    if not folds_requested(folds, fold, splits_file, out, resume):
        return train_volumes(model_name, dataset, data_root, out, resume=resume, splits_file=splits_file, **common)
    return cross_validate(
        _run_kind(model_name), dataset, data_root, out, context,
        lambda folder, splits, again: train_volumes(model_name, dataset, data_root, folder, resume=again,
                                                    splits_file=splits, verify=False, **common),
        folds=folds, fold=fold, seed=seed, resume=resume, splits_file=splits_file, val_fraction=val_fraction,
        data_options=dict(data_options or {}), prepare_options={"skip_bad": skip_bad})


def _run_kind(model_name: str) -> str:
    """The first part of a run directory's default name."""
    return "retrain" if model_name == "genotype" else f"retrain-{model_name}"


def _test_scorer(dataset: str, test_set, crop: Sequence[int], context: DistributedContext, *,
                 precision: torch.dtype | None, overlap: float, et_threshold: int
                 ) -> Callable[[nn.Module], tuple[dict[str, Any], list[dict[str, Any]]]]:
    """``score(network)``: the ``metrics.json`` scores of the test cases, and the per-case rows
    of ``test_cases.csv`` (BraTS: Dice and HD95 per region of the post-processed segmentations;
    other volumes: Dice and IoU per class, the per-case rule)."""
    if dataset != BRATS:
        score_classes = class_scorer(test_set, crop, context, precision=precision, overlap=overlap)

        def score_volumes(network: nn.Module) -> tuple[dict[str, Any], list[dict[str, Any]]]:
            test, cases = score_classes(network)
            return _class_scores(test, cases), cases.to_dict("records")

        return score_volumes

    def score(network: nn.Module) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        rows = evaluate_volumes(network, test_set, crop, context=context, metrics=BRATS_TEST_METRICS,
                                et_threshold=et_threshold, precision=precision, overlap=overlap)
        return _brats_scores(rows, et_threshold), rows

    return score


def _brats_scores(rows: list[dict[str, Any]], et_threshold: int) -> dict[str, Any]:
    """The test cases' Dice and HD95 per region (and their mean over the regions)."""
    scores: dict[str, Any] = {"test_cases": len(rows)}
    for name in BRATS_TEST_METRICS:
        means = region_means(rows, data.BRATS_REGIONS, name, prefix="")
        scores[name] = {region: means[f"{name}_{region.lower()}"] for region in data.BRATS_REGIONS}
        scores[name]["mean"] = means[f"{name}_mean"]
    scores.update({
        "metric_definitions": "per-case Dice and HD95 (mm) of WT={1,2,4}, TC={1,4}, ET={4}, "
                              "averaged over the test cases; empty prediction and truth score "
                              "Dice 1 / HD95 0, exactly one empty Dice 0 / HD95 the image "
                              "diagonal",
        "et_threshold": et_threshold, "tables": ["test_cases.csv", "test_summary.csv"]})
    return scores


def _class_scores(test: Mapping[str, float], cases: pd.DataFrame) -> dict[str, Any]:
    """The test cases' Dice per class (``dsc_per_class``), their mean (``dsc``), the cases that
    left each class out (empty in both prediction and truth) and the rule."""
    classes = [str(name)[len("dsc/"):] for name in cases.columns if str(name).startswith("dsc/")]
    summary = overlap_summary(cases, classes)
    return {"dsc": test[VAL_DICE_MEAN], "miou": summary["iou"],
            "dsc_per_class": {name: summary[f"dsc/{name}"] for name in classes},
            "iou_per_class": {name: summary[f"iou/{name}"] for name in classes},
            "empty_per_class": {name: summary[f"empty/{name}"] for name in classes},
            "scoring": PER_CASE.name,
            "metric_definitions": PER_CASE.definition + " (sliding windows of the crop)",
            "test_cases": test["val_cases"], "tables": ["test_cases.csv", "test_summary.csv"]}


__all__ = ["BRATS_TEST_METRICS", "train_volumes", "volume_runs"]
