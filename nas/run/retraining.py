"""``retrain.py --genotype`` / ``lwnas retrain --genotype``: train a searched network from
scratch on the search's splits and score it on the test split."""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import torch

import data
from nas import losses
from nas.presets import merge, retrain_preset
from nas.search import load_genotype_file, network_complexity
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
from supernet import Genotype, from_genotype

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
from .network_spec import SPEC_KEY, build_spec, genotype_network, training_entry


def check_genotype_fits(genotype: Genotype, source: Path, facts: data.DatasetFacts) -> None:
    """The genotype's network against the data set it is to be trained on: input channels,
    output classes and dimensionality, each named with both sides."""
    problems = []
    if genotype.in_channels != facts.in_channels:
        problems.append(f"{genotype.in_channels} input channel(s), the {facts.name} data "
                        f"{facts.in_channels} ({', '.join(facts.channels)})")
    if genotype.num_classes != facts.num_classes:
        problems.append(f"{genotype.num_classes} output class channel(s), the {facts.name} data "
                        f"{facts.num_classes}")
    if genotype.spatial_dims != facts.spatial_dims:
        problems.append(f"{genotype.spatial_dims}D, the {facts.name} data {facts.spatial_dims}D")
    if problems:
        raise ValueError(f"{source}: the genotype does not fit the {facts.name} data: it has "
                         f"{'; '.join(problems)}; retrain it on the data set it was searched on "
                         "(--dataset) or search on this one")


def _searched_size(metadata: dict, source: Path) -> int | None:
    size = (metadata.get("search") or {}).get("image_size")
    if size is not None and (not isinstance(size, int) or isinstance(size, bool) or size < 1):
        raise ValueError(f"{source}: 'search.image_size' must be a positive integer, got "
                         f"{size!r}")
    return size


def _genotype_splits(genotype_path: Path, metadata: dict) -> Path | None:
    """The splits the genotype was searched on: ``splits.json`` beside it, or the file its
    metadata names (a random baseline names its searched run's)."""
    candidate = genotype_path.parent / "splits.json"
    if candidate.is_file():
        return candidate
    named = metadata.get("splits")
    if named:
        named = Path(named) if Path(named).is_absolute() else genotype_path.parent / named
        if named.is_file():
            return named
    return None


def retrain_genotype(genotype: str | Path, dataset: str | None = None,
                     data_root: str | Path | None = None, out: str | Path | None = None, *,
                     device: str = "auto", resume: bool = False, seed: int = 0,
                     splits_file: str | Path | None = None, val_fraction: float = 0.25,
                     skip_bad: bool = False, progress: bool = True, tensorboard: bool = False,
                     **overrides: Any) -> dict[str, Any]:
    """Train the network of a genotype file from scratch with seed 002's retrain settings and
    write ``metrics.json`` (test DSC/MIoU with the best checkpoint, params, FLOPs); ``best.pt``
    describes itself (``nas.run.network_spec``). ``tensorboard``: log epochs to RUN/tensorboard/."""
    # every setting, and the genotype against the data, is checked before any data is read
    context = init_distributed(device)
    check_val_fraction(val_fraction)
    check_tensorboard(tensorboard)
    genotype_path = Path(genotype)
    arch, metadata = load_genotype_file(genotype_path)
    dataset = dataset or metadata.get("dataset")
    if not dataset:
        raise ValueError(f"{genotype_path}: names no dataset; pass --dataset")
    check_genotype_fits(arch, genotype_path, data.dataset_facts(dataset, data_root))
    if overrides.get("image_size") is None:
        # retrain at the size the search ran at (the genotype's costs were measured there)
        overrides["image_size"] = (_searched_size(metadata, genotype_path)
                                   or default_image_size(dataset, data_root))
    values = merge(retrain_preset(dataset), overrides)
    config = RetrainConfig(dataset=dataset, seed=seed, progress=progress, model="genotype",
                           **values)
    out_dir = run_directory("retrain", dataset, out, context, resume)
    options = dict(image_size=config.image_size, skip_bad=skip_bad)
    splits = prepare_splits(dataset, data_root, out_dir, seed, val_fraction, context,
                            splits_file or _genotype_splits(genotype_path, metadata), resume=resume,
                            **options)
    sets = {split: data.get_dataset(dataset, data_root, split, seed, splits_file=splits,
                                    augment=split == "train", **options)
            for split in ("train", "val", "test")}
    skipped = record_skipped(out_dir, sets, context)
    torch.manual_seed(seed)
    network = from_genotype(arch, drop_path_rate=config.drop_path)
    model = wrap_model(network, context)
    precision = resolve_precision(config.precision, context.device)
    loaders = {split: make_loader(sets[split], config.batch_size, shuffle=False,
                                  drop_last=False, num_workers=config.num_workers,
                                  distributed=context.enabled, seed=seed)
               for split in ("val", "test")}
    eval_loss = losses.build(config.loss, **config.loss_options)

    def evaluate(net):
        return evaluate_binary(net, loaders["val"], eval_loss, context.device, context, precision)

    say(context, f"retrain {dataset}: {len(sets['train'])} / {len(sets['val'])} / "
                 f"{len(sets['test'])} train / val / test images -> {out_dir}")
    spec = build_spec(genotype_network(arch), sets["train"], (config.image_size,) * arch.spatial_dims,
                      training_entry(dataclasses.asdict(config), sets["train"].splits, data_root,
                                     genotype=str(genotype_path)))
    with tensorboard_callback(tensorboard, out_dir, context) as on_epoch_end:
        result = run_retrain(model, config, sets["train"], out_dir, evaluate, context=context,
                             resume=resume, metadata={"genotype": json.dumps(metadata), SPEC_KEY: spec},
                             on_epoch_end=on_epoch_end)
    barrier(context)  # rank 0 may still be renaming the last best.pt into place
    best = load_checkpoint(out_dir / "best.pt", map_location=context.device)
    network.load_state_dict(best["model"])
    test = evaluate_binary(model, loaders["test"], eval_loss, context.device, context, precision)
    complexity = network_complexity(arch, (arch.in_channels,) + (config.image_size,)
                                    * arch.spatial_dims)
    metrics = {"dataset": dataset, "genotype": str(genotype_path),
               "dsc": test["val_dsc"], "miou": test["val_miou"], "test_loss": test["val_loss"],
               "metric_definitions": "per-image foreground Dice / IoU averaged over the test "
                                     "images (seed 002)",
               "best_epoch": best["epoch"], "best_val": result["best"].get("metrics", {}),
               "first_epoch_val": result["history"][0] if result["history"] else {},
               "params": complexity["params"], "flops": complexity["flops"],
               "input_shape": [arch.in_channels] + [config.image_size] * arch.spatial_dims,
               "test_images": len(sets["test"])}
    if context.is_main:
        atomic_write_text(out_dir / "metrics.json", json.dumps(metrics, indent=2) + "\n")
    say(context, f"test DSC {metrics['dsc']:.4f}, MIoU {metrics['miou']:.4f} (best epoch "
                 f"{metrics['best_epoch']}); {metrics['params'] / 1e6:.3f}M params, "
                 f"{metrics['flops'] / 1e9:.3f} GFLOPs -> {out_dir / 'metrics.json'}"
                 f"{skipped_note(skipped)}")
    return {**result, "metrics": metrics}
