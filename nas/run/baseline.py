"""``retrain.py --model unet2d --dataset NAME``: train a 2D baseline (the plain U-Net of seed
002's comparison, ``models.plain_unet``) exactly as a genotype network is retrained: the data
set's retrain preset (``nas.presets.RETRAIN_PRESETS``), the same splits (``--splits`` a search's
``splits.json``, else the data set's seeded default), loaders, loss, loop, evaluation and
``metrics.json`` form, so "searched network vs U-Net" is one command each and the two differ in
the network only.
"""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import torch

import data
from nas import losses
from nas.presets import BASELINE_MODELS_2D, merge, retrain_preset
from nas.search import network_complexity
from nas.train import (
    RetrainConfig,
    atomic_write_text,
    evaluate_binary,
    init_distributed,
    load_checkpoint,
    make_loader,
    resolve_precision,
    run_retrain,
    wrap_model,
)
from nas.train.distributed import barrier

from .common import (
    check_tensorboard,
    check_val_fraction,
    default_image_size,
    prepare_splits,
    record_skipped,
    run_directory,
    say,
    skipped_note,
    tensorboard_callback,
)
from .network_spec import BASELINE_BUILDERS, SPEC_KEY, build_spec, model_network, training_entry


def retrain_baseline(model_name: str, dataset: str | None, data_root: str | Path | None = None,
                     out: str | Path | None = None, *, device: str = "auto", resume: bool = False,
                     seed: int = 0, splits_file: str | Path | None = None, val_fraction: float = 0.25,
                     skip_bad: bool = False, progress: bool = True, tensorboard: bool = False,
                     **overrides: Any) -> dict[str, Any]:
    """Train the 2D baseline ``model_name`` from scratch on ``dataset`` and write ``metrics.json``
    (test DSC/MIoU of the best checkpoint, params, FLOPs, input shape, ``model``) beside a
    self-describing ``best.pt``. ``overrides``: ``RetrainConfig`` fields (None = preset)."""
    # every setting is checked before any data is read or anything is written
    context = init_distributed(device)
    check_val_fraction(val_fraction)
    check_tensorboard(tensorboard)
    if model_name not in BASELINE_MODELS_2D:
        raise ValueError(f"--model {model_name}: not a 2D baseline; valid: {', '.join(BASELINE_MODELS_2D)}")
    if not dataset:
        raise ValueError(f"--model {model_name} needs --dataset (a 2D data set: "
                         f"{', '.join(_two_d_datasets())})")
    facts = data.dataset_facts(dataset, data_root)
    if facts.spatial_dims != 2:
        raise ValueError(f"--model {model_name} is a 2D network; dataset {dataset!r} is {facts.spatial_dims}D "
                         "(train a 3D network on it, e.g. --model unet3d)")
    if overrides.pop("drop_path", None) is not None:
        raise ValueError(f"--drop-path does not apply to --model {model_name}: drop-path applies to genotype "
                         "networks only")
    if overrides.get("image_size") is None:
        overrides["image_size"] = default_image_size(dataset, data_root)
    values = {**merge(retrain_preset(dataset), overrides), "drop_path": 0.0}
    config = RetrainConfig(dataset=dataset, seed=seed, progress=progress, model=model_name, **values)
    out_dir = run_directory(f"retrain-{model_name}", dataset, out, context, resume)
    options = dict(image_size=config.image_size, skip_bad=skip_bad)
    splits = prepare_splits(dataset, data_root, out_dir, seed, val_fraction, context, splits_file,
                            resume=resume, **options)
    sets = {split: data.get_dataset(dataset, data_root, split, seed, splits_file=splits,
                                    augment=split == "train", **options)
            for split in ("train", "val", "test")}
    skipped = record_skipped(out_dir, sets, context)
    torch.manual_seed(seed)
    kwargs = {"spatial_dims": 2}
    network = BASELINE_BUILDERS[model_name](in_channels=facts.in_channels, num_classes=facts.num_classes, **kwargs)
    model = wrap_model(network, context)
    precision = resolve_precision(config.precision, context.device)
    loaders = {split: make_loader(sets[split], config.batch_size, shuffle=False, drop_last=False,
                                  num_workers=config.num_workers, distributed=context.enabled, seed=seed)
               for split in ("val", "test")}
    eval_loss = losses.build(config.loss, **config.loss_options)

    def evaluate(net):
        return evaluate_binary(net, loaders["val"], eval_loss, context.device, context, precision)

    input_shape = [facts.in_channels, config.image_size, config.image_size]
    spec = build_spec(model_network(model_name, kwargs, facts.in_channels, facts.num_classes), sets["train"],
                      input_shape[1:], training_entry(dataclasses.asdict(config), sets["train"].splits, data_root))
    say(context, f"retrain {model_name} on {dataset}: {len(sets['train'])} / {len(sets['val'])} / "
                 f"{len(sets['test'])} train / val / test images -> {out_dir}")
    with tensorboard_callback(tensorboard, out_dir, context) as on_epoch_end:
        result = run_retrain(model, config, sets["train"], out_dir, evaluate, context=context, resume=resume,
                             metadata={SPEC_KEY: spec}, on_epoch_end=on_epoch_end)
    barrier(context)  # rank 0 may still be renaming the last best.pt into place
    best = load_checkpoint(out_dir / "best.pt", map_location=context.device)
    network.load_state_dict(best["model"])
    test = evaluate_binary(model, loaders["test"], eval_loss, context.device, context, precision)
    with torch.device("meta"):  # counts without memory or time
        counted = BASELINE_BUILDERS[model_name](in_channels=facts.in_channels, num_classes=facts.num_classes,
                                                **kwargs)
    complexity = network_complexity(counted, input_shape)
    metrics = {"dataset": dataset, "model": model_name,
               "dsc": test["val_dsc"], "miou": test["val_miou"], "test_loss": test["val_loss"],
               "metric_definitions": "per-image foreground Dice / IoU averaged over the test images (seed 002)",
               "best_epoch": best["epoch"], "best_val": result["best"].get("metrics", {}),
               "first_epoch_val": result["history"][0] if result["history"] else {},
               "params": complexity["params"], "flops": complexity["flops"], "input_shape": input_shape,
               "test_images": len(sets["test"])}
    if context.is_main:
        atomic_write_text(out_dir / "metrics.json", json.dumps(metrics, indent=2) + "\n")
    say(context, f"test DSC {metrics['dsc']:.4f}, MIoU {metrics['miou']:.4f} (best epoch "
                 f"{metrics['best_epoch']}); {metrics['params'] / 1e6:.3f}M params, "
                 f"{metrics['flops'] / 1e9:.3f} GFLOPs -> {out_dir / 'metrics.json'}{skipped_note(skipped)}")
    return {**result, "metrics": metrics}


def _two_d_datasets() -> list[str]:
    from nas.presets import RETRAIN_PRESETS

    return sorted(RETRAIN_PRESETS)


__all__ = ["retrain_baseline"]
