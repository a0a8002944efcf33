"""``retrain.py --model`` / ``lwnas retrain --model``: train a hand-designed 3D network on
BraTS with its seed's settings (``nas.presets``), validate on whole volumes, keep the best
checkpoint and score it on the test split. ``retrain.py --genotype`` of a 3D search trains its
network the same way (``genotype=``; settings ``nas.presets.GENOTYPE_PRESETS_3D``).

Its checkpoints describe themselves (``nas.run.network_spec``: network name, constructor
arguments, channels, classes, the crop, preprocessing and label map), so ``nas.run.prediction``
rebuilds the network from the checkpoint alone.
"""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any, Mapping, Sequence

import torch
from torch import nn

import data
from nas import complexity
from nas.metrics import case_table, write_tables
from nas.presets import TRAINING_TARGETS, model_preset, network_kwargs, training_values
from nas.train import (
    RetrainConfig,
    atomic_write_text,
    init_distributed,
    load_checkpoint,
    resolve_precision,
    run_retrain,
    wrap_model,
)
from nas.train.distributed import barrier, say
from nas.train.run_dir import start_run
from nas.train.settings import require_crop
from nas.train.stopping import stop_on_signals

from .brats_evaluation import VALIDATION_METRIC, evaluate_volumes, make_validator, region_means
from .data_setup import check_val_fraction, prepare_splits, record_skipped, skipped_note, uses_sample
from .network_spec import SPEC_KEY, build_spec, training_entry
from .networks import build_network, model_network, searched_network
from .tensorboard import check_tensorboard, tensorboard_callback

#: ``kind`` entry of every checkpoint ``retrain_model`` writes.
CHECKPOINT_KIND = "lwnas.brats3d-model"
#: Scores of the final test evaluation (per region WT/TC/ET, mm).
TEST_METRICS = ("dice", "hd95")


def _saved_network(out_dir: Path) -> dict[str, Any]:
    """The network entry of a run's ``checkpoint.pt`` (for ``--resume``)."""
    if not (out_dir / "checkpoint.pt").is_file():
        raise FileNotFoundError(f"{out_dir}: nothing to resume (no checkpoint.pt)")
    state = load_checkpoint(out_dir / "checkpoint.pt")
    if state.get("kind") != CHECKPOINT_KIND:
        raise ValueError(f"{out_dir / 'checkpoint.pt'}: not a 3D model run; resume it with the "
                         "command that started it")
    return {"network": state["network"], "roi_size": tuple(state["roi_size"])}


@stop_on_signals()  # SIGTERM: a checkpoint at the next step, then StopRequested
def retrain_model(model_name: str, dataset: str = "brats", data_root: str | Path | None = None,
                  out: str | Path | None = None, *, device: str = "auto", resume: bool = False,
                  seed: int = 0, splits_file: str | Path | None = None,
                  val_fraction: float = 0.25, skip_bad: bool = False, progress: bool = True,
                  crop_size: int | Sequence[int] | None = None,
                  model_kwargs: Mapping[str, Any] | None = None, overlap: float = 0.5,
                  data_options: Mapping[str, Any] | None = None,
                  et_threshold: int = data.ET_THRESHOLD, tensorboard: bool = False,
                  genotype: str | Path | None = None, **overrides: Any) -> dict[str, Any]:
    """Train the registered 3D network ``model_name`` from scratch on ``dataset`` (BraTS), or
    with ``model_name="genotype"`` the network of the 3D genotype file ``genotype``.

    Settings: ``nas.presets`` (the seed's), then ``overrides`` (``RetrainConfig`` fields:
    epochs, lr, batch_size, weight_decay, loss, precision, ...; None = preset). ``crop_size``:
    the training crop, also the sliding window of validation and prediction (default: the
    preset's; 32^3 on the sample data). ``model_kwargs`` go to the network's constructor.

    Writes ``splits.json``, ``log.csv`` (with ``val_dice_wt/tc/et/mean`` per epoch),
    ``best.pt`` (best ``val_dice_mean``), ``checkpoint.pt`` (exact resume), and, for the best
    checkpoint on the test split with ``et_threshold`` post-processing, ``test_cases.csv``,
    ``test_summary.csv`` and ``metrics.json`` (Dice and HD95 per region).
    """
    # every setting is checked before any data is read or anything is written
    context = init_distributed(device)
    check_val_fraction(val_fraction)
    check_tensorboard(tensorboard)
    searched = searched_network(model_name, genotype, model_kwargs)  # None: a registered model
    preset = searched.preset if searched else model_preset(model_name)
    if data.get_preset(dataset).spatial_dims != 3:
        raise ValueError(f"{model_name} is a 3D network; dataset {dataset!r} is 2D "
                         "(train genotypes on it with --genotype)")
    drop_path = overrides.pop("drop_path", None) if searched else None
    for flag, hint in (("image_size", "pass crop_size (--crop-size) for 3D crops"),
                       ("drop_path", "drop-path applies to genotype networks only")):
        if overrides.pop(flag, None) is not None:
            raise ValueError(f"{flag} does not apply to --model {model_name}: {hint}")
    sample = uses_sample(dataset, data_root)
    saved = _saved_network(Path(out)) if resume and out is not None else None
    if crop_size is None:
        crop_size = (saved["roi_size"] if saved else
                     data.get_preset(dataset).sample_crop_size if sample else preset.crop_size)
    crop = require_crop("crop_size", crop_size)
    if model_kwargs is None and saved:
        model_kwargs = saved["network"]["kwargs"]
    kwargs = {} if searched else network_kwargs(model_name, crop, model_kwargs)

    values = training_values(model_name, overrides, sample=sample, preset=preset)
    config = RetrainConfig(dataset=dataset, model=model_name, seed=seed, progress=progress,
                           image_size=crop, select_metric=VALIDATION_METRIC,
                           drop_path=(searched.drop_path if drop_path is None else drop_path)
                           if searched else 0.0, **values)
    out_dir, resume = start_run(f"retrain-{model_name}", dataset, out, context, resume,
                                dataclasses.asdict(config))
    torch.manual_seed(seed)  # the initial weights depend on the seed only
    built = (searched.entry() if searched else
             model_network(model_name, kwargs, len(data.MODALITIES), num_classes=None))
    network = build_network(built, config.drop_path)
    activation = getattr(network, "output_activation", None)
    if activation not in TRAINING_TARGETS:
        raise ValueError(f"{model_name}: output_activation {activation!r}; expected one of "
                         f"{', '.join(TRAINING_TARGETS)}")
    target = TRAINING_TARGETS[activation]

    options = dict(crop_size=crop, skip_bad=skip_bad, **(data_options or {}))
    splits = prepare_splits(dataset, data_root, out_dir, seed, val_fraction, context,
                            splits_file, resume=resume, **options)
    sets = {split: data.get_dataset(dataset, data_root, split, seed, splits_file=splits,
                                    target=target if split == "train" else "labels", **options)
            for split in ("train", "val", "test")}
    skipped = record_skipped(out_dir, sets, context)
    model = wrap_model(network, context)
    precision = resolve_precision(config.precision, context.device)
    evaluate = make_validator(sets["val"], crop, context, precision=precision, overlap=overlap)
    # the entry --resume and the test count rebuild from; prediction reads the description
    entry = built if searched else model_network(model_name, kwargs, len(data.MODALITIES),
                                                 int(network.num_classes),
                                                 output_activation=activation)
    metadata = {
        "kind": CHECKPOINT_KIND,
        "network": entry,
        "roi_size": list(crop),
        "data": {"dataset": dataset, "target": target, "crop_size": list(crop),
                 "modalities": list(data.MODALITIES), "normalise": "z-score on nonzero voxels",
                 "data_root": str(data_root or ""), "splits": "splits.json"},
        SPEC_KEY: build_spec(entry, sets["train"], crop,
                             training_entry(dataclasses.asdict(config), sets["train"].splits, data_root,
                                            overlap=overlap, et_threshold=et_threshold)),
    }
    say(context, f"retrain {model_name} on {dataset}: {len(sets['train'])} / "
                  f"{len(sets['val'])} / {len(sets['test'])} train / val / test cases, crop "
                  f"{'x'.join(map(str, crop))}, batch {config.batch_size}, {config.epochs} "
                  f"epochs, loss {config.loss} -> {out_dir}")
    with tensorboard_callback(tensorboard, out_dir, context) as on_epoch_end:
        result = run_retrain(model, config, sets["train"], out_dir, evaluate, context=context,
                             resume=resume, metadata=metadata, on_epoch_end=on_epoch_end)

    barrier(context)  # rank 0 may still be renaming the last best.pt into place
    best = load_checkpoint(out_dir / "best.pt", map_location=context.device)
    network.load_state_dict(best["model"])
    rows = evaluate_volumes(network, sets["test"], crop, context=context, metrics=TEST_METRICS,
                            et_threshold=et_threshold, precision=precision, overlap=overlap)
    metrics = _test_metrics(model_name, dataset, rows, best, result, crop, overlap,
                            et_threshold, network)
    if searched:
        metrics["genotype"] = str(genotype)
    if context.is_main:
        if rows:
            write_tables(case_table(rows), out_dir, "test")
        atomic_write_text(out_dir / "metrics.json", json.dumps(metrics, indent=2) + "\n")
    dice = metrics["dice"]
    say(context, f"test Dice WT {dice['WT']:.4f}, TC {dice['TC']:.4f}, ET {dice['ET']:.4f} "
                  f"({metrics['test_cases']} cases, best epoch {metrics['best_epoch']}) -> "
                  f"{out_dir / 'metrics.json'}{skipped_note(skipped)}")
    return {**result, "metrics": metrics}


def _test_metrics(model_name: str, dataset: str, rows: list[dict], best: dict, result: dict,
                  crop: tuple[int, ...], overlap: float, et_threshold: int,
                  network: nn.Module) -> dict[str, Any]:
    spec = best["network"]
    with torch.device("meta"):  # counts without memory or time
        counted = build_network(spec)
    counts = complexity.profile(counted, (1, spec["in_channels"]) + tuple(crop))
    metrics: dict[str, Any] = {"dataset": dataset, "model": model_name, "checkpoint": "best.pt",
                               "best_epoch": best["epoch"],
                               "best_val": result["best"].get("metrics", {}),
                               "test_cases": len(rows)}
    for name in TEST_METRICS:
        means = region_means(rows, name, prefix="")
        metrics[name] = {region: means[f"{name}_{region.lower()}"] for region in data.BRATS_REGIONS}
        metrics[name]["mean"] = means[f"{name}_mean"]
    metrics.update({
        "metric_definitions": "per-case Dice and HD95 (mm) of WT={1,2,4}, TC={1,4}, ET={4}, "
                              "averaged over the test cases; empty prediction and truth score "
                              "Dice 1 / HD95 0, exactly one empty Dice 0 / HD95 the image "
                              "diagonal",
        "et_threshold": et_threshold, "roi_size": list(crop), "overlap": overlap,
        "params": sum(p.numel() for p in network.parameters()),
        "macs_per_window": counts["macs"], "tables": ["test_cases.csv", "test_summary.csv"],
        # for the report (nas.pictures.comparison): MACs at one training crop, as 2D runs'
        "flops": counts["macs"], "input_shape": [spec["in_channels"], *crop]})
    return metrics
