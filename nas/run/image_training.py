"""The one training flow of every 2D network (a searched genotype's, a baseline's), so that a
searched network and its baseline differ in the network only: run directory, splits, data, the
training loop, the test evaluation with the best weights and ``metrics.json``."""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any, Callable, Mapping

import pandas as pd
import torch
from torch import nn

import data
from nas import losses
from nas.metrics import OverlapRule, overlap_summary, write_tables
from nas.train import (
    RetrainConfig,
    atomic_write_text,
    load_checkpoint,
    make_loader,
    resolve_precision,
    run_retrain,
    wrap_model,
)
from nas.train.distributed import barrier, say
from nas.train.evaluation import scoring_rule, segmentation_scores
from nas.train.loop import RESUME_MAY_CHANGE
from nas.train.run_dir import start_run

from .data_setup import (
    prepare_splits,
    record_skipped,
    run_data_identity,
    skipped_note,
    verify_data,
    write_fingerprint,
)
from .folds import cross_validate, folds_requested
from .networks import SPEC_KEY, build_spec, training_entry
from .tensorboard import tensorboard_callback


def test_overlap(test: Mapping[str, float], cases: pd.DataFrame, rule: OverlapRule) -> dict[str, Any]:
    """The overlap part of a 2D run's ``metrics.json`` from the test scores and the per-case
    table: ``dsc`` and ``miou`` under the data set's rule (``scoring``, ``metric_definitions``),
    per class with the cases that left it out (``empty_per_class``), the number of cases, and
    under the per-case rule the per-slice figures (``dsc_per_slice``, ``miou_per_slice``: both
    empty = 1, the rule 2D volumes were scored by before)."""
    classes = [str(name)[len("dsc/"):] for name in cases.columns if str(name).startswith("dsc/")]
    summary = overlap_summary(cases, classes)
    scores: dict[str, Any] = {"dsc": summary["dsc"], "miou": summary["iou"], "scoring": rule.name,
                              "metric_definitions": rule.definition, "test_cases": summary["cases"]}
    if len(classes) > 1:
        scores["dsc_per_class"] = {name: summary[f"dsc/{name}"] for name in classes}
        scores["iou_per_class"] = {name: summary[f"iou/{name}"] for name in classes}
    scores["empty_per_class"] = {name: summary[f"empty/{name}"] for name in classes}
    if "val_dsc_per_slice" in test:
        scores["dsc_per_slice"], scores["miou_per_slice"] = test["val_dsc_per_slice"], test["val_miou_per_slice"]
    scores["tables"] = ["test_cases.csv", "test_summary.csv"]
    return scores


def overlap_note(metrics: Mapping[str, Any]) -> str:
    """The printed line's statement of the rule: ``per case; empty in both left out: liver 2;
    per-slice DSC 0.9100; 5 cases``."""
    empty = {name: count for name, count in (metrics.get("empty_per_class") or {}).items() if count}
    parts = [str(metrics.get("scoring", "per image"))]
    if empty:
        parts.append("empty in both left out: " + ", ".join(f"{name} {count}" for name, count in empty.items()))
    if "dsc_per_slice" in metrics:
        parts.append(f"per-slice DSC {metrics['dsc_per_slice']:.4f}")
    return f"{'; '.join(parts)}; {metrics.get('test_cases')} cases"


@dataclasses.dataclass(frozen=True)
class TrainedNetwork:
    """What differs between the 2D networks a retrain trains (a genotype's, a baseline's)."""

    run_kind: str  # first part of the default run directory's name
    identity: dict[str, str]  # what metrics.json names the network by ({"genotype": FILE} / {"model": NAME})
    spatial_dims: int
    in_channels: int
    build: Callable[[RetrainConfig], nn.Module]  # the network to train, from the run's settings
    complexity: Callable[[int], dict]  # params and FLOPs at an image side
    spec_network: dict[str, Any]  # the "network" entry of best.pt's spec
    checkpoint_metadata: dict[str, Any] = dataclasses.field(default_factory=dict)


def train_and_score(network: TrainedNetwork, config: RetrainConfig, dataset: str,
                    data_root: str | Path | None, out: str | Path | None, context: Any, *,
                    resume: bool, seed: int, splits_file: str | Path | Mapping[str, Any] | None,
                    val_fraction: float | None, skip_bad: bool, tensorboard: bool, data_options: dict[str, Any],
                    verify: bool = True) -> dict[str, Any]:
    """The one retrain flow of every 2D network, so a searched network and its baseline differ
    in the network only: run directory, splits, data, loop, test evaluation and ``metrics.json``.
    ``config.image_size`` None: the size planned from the training cases. ``splits_file``: a file
    or the splits themselves (a fold's); ``verify`` False: the data set was checked already (the
    folds of a cross-validation)."""
    out_dir, resume = start_run(network.run_kind, dataset, out, context, resume,
                                dataclasses.asdict(config), RESUME_MAY_CHANGE)
    if verify:
        verify_data(dataset, data_root, context, skip_bad, **data_options)
    options = dict(image_size=config.image_size, skip_bad=skip_bad, **data_options)
    splits = prepare_splits(dataset, data_root, out_dir, seed, val_fraction, context, splits_file,
                            resume=resume, **options)
    data_identity = run_data_identity(dataset, data_root, splits, out_dir, context, resume, **data_options)
    sets = {split: data.get_dataset(dataset, data_root, split, seed, splits_file=splits,
                                    augment=split == "train", **options)
            for split in ("train", "val", "test")}
    side = int(sets["train"].image_size)  # the size asked for, or planned from the training cases
    write_fingerprint(out_dir, sets["train"], context)
    skipped = record_skipped(out_dir, sets, context)
    torch.manual_seed(seed)
    module = network.build(config)
    model = wrap_model(module, context)
    precision = resolve_precision(config.precision, context.device, module)
    loaders = {split: make_loader(sets[split], config.batch_size, shuffle=False,
                                  drop_last=False, num_workers=config.num_workers,
                                  distributed=context.enabled, seed=seed)
               for split in ("val", "test")}
    eval_loss = losses.build(config.loss, **config.loss_options)

    def scores(net: nn.Module, split: str = "val") -> tuple[dict[str, float], Any]:
        return segmentation_scores(net, loaders[split], eval_loss, context.device, context,
                                   precision, sets[split].class_names)

    def evaluate(net: nn.Module) -> dict[str, float]:
        return scores(net)[0]

    say(context, f"{network.run_kind} {dataset}: {len(sets['train'])} / {len(sets['val'])} / "
                 f"{len(sets['test'])} train / val / test images -> {out_dir}")
    input_shape = [network.in_channels] + [side] * network.spatial_dims
    spec = build_spec(network.spec_network, sets["train"], input_shape[1:],
                      training_entry(dataclasses.asdict(config), sets["train"].splits, data_root,
                                     **network.identity))
    with tensorboard_callback(tensorboard, out_dir, context) as on_epoch_end:
        result = run_retrain(model, config, sets["train"], out_dir, evaluate,
                             context=context, resume=resume,
                             metadata={**network.checkpoint_metadata, SPEC_KEY: spec},
                             on_epoch_end=on_epoch_end, data=data_identity)
    barrier(context)  # rank 0 may still be renaming the last best.pt into place
    best = load_checkpoint(out_dir / "best.pt", map_location=context.device)
    module.load_state_dict(best["model"])
    test, cases = scores(model, "test")
    complexity = network.complexity(side)
    metrics = {"dataset": dataset, **network.identity,
               **test_overlap(test, cases, scoring_rule(sets["test"], planar=True)),
               "test_loss": test["val_loss"],
               "best_epoch": best["epoch"], "best_val": result["best"].get("metrics", {}),
               "first_epoch_val": result["history"][0] if result["history"] else {},
               "params": complexity["params"], "flops": complexity["flops"],
               "input_shape": input_shape, "test_images": len(sets["test"])}
    if context.is_main:
        write_tables(cases, out_dir, "test")
        atomic_write_text(out_dir / "metrics.json", json.dumps(metrics, indent=2) + "\n")
    say(context, f"test DSC {metrics['dsc']:.4f}, MIoU {metrics['miou']:.4f} ({overlap_note(metrics)}) "
                 f"(best epoch {metrics['best_epoch']}); {metrics['params'] / 1e6:.3f}M params, "
                 f"{metrics['flops'] / 1e9:.3f} GFLOPs -> {out_dir / 'metrics.json'}"
                 f"{skipped_note(skipped)}")
    return {**result, "metrics": metrics}


def image_runs(network: TrainedNetwork, config: RetrainConfig, dataset: str, data_root: str | Path | None,
               out: str | Path | None, context: Any, *, resume: bool, seed: int,
               splits_file: str | Path | None, val_fraction: float | None, skip_bad: bool, tensorboard: bool,
               data_options: dict[str, Any], folds: int | None, fold: int | None) -> dict[str, Any]:
    """:func:`train_and_score` once, or for the folds of a folds run (``folds`` K or ``fold`` given,
    a ``splits_file`` with folds, or ``resume`` of a folds run: ``nas.run.folds``)."""
    def train(folder: str | Path | None, splits: Any, again: bool, verify: bool = True) -> dict[str, Any]:
        return train_and_score(network, config, dataset, data_root, folder, context, resume=again, seed=seed,
                               splits_file=splits, val_fraction=val_fraction, skip_bad=skip_bad,
                               tensorboard=tensorboard, data_options=data_options, verify=verify)

    if not folds_requested(folds, fold, splits_file, out, resume):
        return train(out, splits_file, resume)
    return cross_validate(network.run_kind, dataset, data_root, out, context,
                          lambda folder, splits, again: train(folder, splits, again, verify=False),
                          folds=folds, fold=fold, seed=seed, resume=resume, splits_file=splits_file,
                          val_fraction=val_fraction, data_options=data_options,
                          prepare_options=dict(image_size=config.image_size, skip_bad=skip_bad))


__all__ = ["TrainedNetwork", "image_runs", "overlap_note", "test_overlap", "train_and_score"]
