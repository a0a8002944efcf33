"""The one training flow of every 2D network (a searched genotype's, a baseline's), so that a
searched network and its baseline differ in the network only: run directory, splits, data, the
training loop, the test evaluation with the best weights and ``metrics.json``."""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any, Callable

import torch
from torch import nn

import data
from nas import losses
from nas.train import (
    RetrainConfig,
    atomic_write_text,
    evaluate_segmentation,
    load_checkpoint,
    make_loader,
    resolve_precision,
    run_retrain,
    wrap_model,
)
from nas.train.distributed import barrier, say
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
from .networks import SPEC_KEY, build_spec, training_entry
from .tensorboard import tensorboard_callback


def per_class_scores(scores: dict[str, float]) -> dict[str, dict[str, float]]:
    """``dsc_per_class`` and ``iou_per_class`` (by class name) of a multi-class evaluation."""
    result: dict[str, dict[str, float]] = {}
    for prefix, name in (("val_dsc_", "dsc_per_class"), ("val_iou_", "iou_per_class")):
        values = {key[len(prefix):]: value for key, value in scores.items() if key.startswith(prefix)}
        if values:
            result[name] = values
    return result


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
                    resume: bool, seed: int, splits_file: str | Path | None, val_fraction: float | None,
                    skip_bad: bool, tensorboard: bool, data_options: dict[str, Any]) -> dict[str, Any]:
    """The one retrain flow of every 2D network, so a searched network and its baseline differ
    in the network only: run directory, splits, data, loop, test evaluation and ``metrics.json``.
    ``config.image_size`` None: the size planned from the training cases."""
    out_dir, resume = start_run(network.run_kind, dataset, out, context, resume,
                                dataclasses.asdict(config), RESUME_MAY_CHANGE)
    verify_data(dataset, data_root, context, **data_options)
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

    def evaluate(net: nn.Module, split: str = "val") -> dict[str, float]:
        return evaluate_segmentation(net, loaders[split], eval_loss, context.device, context,
                                     precision, sets[split].class_names)

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
    test = evaluate(model, "test")
    complexity = network.complexity(side)
    metrics = {"dataset": dataset, **network.identity,
               "dsc": test["val_dsc"], "miou": test["val_miou"], "test_loss": test["val_loss"],
               "metric_definitions": "per-image foreground Dice / IoU averaged over the test "
                                     "images (seed 002)",
               "best_epoch": best["epoch"], "best_val": result["best"].get("metrics", {}),
               "first_epoch_val": result["history"][0] if result["history"] else {},
               "params": complexity["params"], "flops": complexity["flops"],
               "input_shape": input_shape, "test_images": len(sets["test"]),
               **per_class_scores(test)}
    if context.is_main:
        atomic_write_text(out_dir / "metrics.json", json.dumps(metrics, indent=2) + "\n")
    say(context, f"test DSC {metrics['dsc']:.4f}, MIoU {metrics['miou']:.4f} (best epoch "
                 f"{metrics['best_epoch']}); {metrics['params'] / 1e6:.3f}M params, "
                 f"{metrics['flops'] / 1e9:.3f} GFLOPs -> {out_dir / 'metrics.json'}"
                 f"{skipped_note(skipped)}")
    return {**result, "metrics": metrics}


__all__ = ["TrainedNetwork", "per_class_scores", "train_and_score"]
