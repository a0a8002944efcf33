"""What ``search.py`` and ``retrain.py`` do, as functions a test can call.

The scripts only parse flags; everything here takes explicit arguments (no argparse
namespaces), resolves presets, prepares the data and the run directory, and calls the loops.
"""
from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import torch

import data
from supernet import from_genotype

from . import losses
from .checkpoint import atomic_write_text, load_checkpoint
from .costs import network_complexity
from .distributed import (DistributedContext, barrier, broadcast_object, init_distributed,
                          wrap_model)
from .engine import evaluate_binary, resolve_precision
from .genotype import load_genotype_file
from .presets import SAMPLE_IMAGE_SIZE, merge, retrain_preset
from .retrain_loop import RetrainConfig, run_retrain
from .search_loop import SearchConfig, run_search


def default_run_dir(kind: str, dataset: str) -> Path:
    return Path("runs") / dataset / f"{kind}-{time.strftime('%Y%m%d-%H%M%S')}"


def run_directory(kind: str, dataset: str, out: str | Path | None, context: DistributedContext,
             resume: bool) -> Path:
    """The run directory (rank 0's choice on every rank). A fresh run refuses a directory that
    already holds a run, so nothing computed is overwritten by accident."""
    path = Path(broadcast_object(str(out or default_run_dir(kind, dataset)), context))
    if resume and not (path / "checkpoint.pt").is_file():
        raise FileNotFoundError(f"{path}: nothing to resume (no checkpoint.pt)")
    if not resume and (path / "checkpoint.pt").exists():
        raise FileExistsError(f"{path}: already holds a run; resume it with --resume {path} "
                              "or choose another --out")
    return path


def _log(context: DistributedContext, message: str) -> None:
    if context.is_main:
        print(message, flush=True)


def prepare_splits(dataset: str, data_root, out_dir: Path, seed: int, val_fraction: float,
                   context: DistributedContext, splits_file: str | Path | None = None,
                   **options: Any) -> Path:
    """Write the run's ``splits.json`` (case lists, seeded) on rank 0, or copy the given one,
    so that every later step (and a later retrain) uses exactly these cases."""
    target = out_dir / "splits.json"
    if context.is_main and not target.exists():
        if splits_file is not None:
            splits = data.load_splits(splits_file)
        else:
            splits = data.get_dataset(dataset, data_root, "train", seed,
                                      val_fraction=val_fraction, **options).splits
        out_dir.mkdir(parents=True, exist_ok=True)
        data.save_splits(target, splits)
    barrier(context)
    return target


def search(dataset: str, data_root: str | Path | None = None, out: str | Path | None = None,
           *, device: str = "auto", resume: bool = False, seed: int = 0,
           val_fraction: float = 0.25, skip_bad: bool = False, progress: bool = True,
           pictures: bool = True, **overrides: Any) -> dict[str, Any]:
    """Search a genotype for ``dataset``; ``overrides`` are SearchConfig fields (None = preset)."""
    context = init_distributed(device)
    if overrides.get("image_size") is None and data_root is None:
        overrides["image_size"] = SAMPLE_IMAGE_SIZE
    config = SearchConfig.from_preset(dataset, seed=seed, progress=progress, **overrides)
    out_dir = run_directory("search", dataset, out, context, resume)
    options = dict(image_size=config.image_size, skip_bad=skip_bad)
    splits = prepare_splits(dataset, data_root, out_dir, seed, val_fraction, context, **options)
    train_set = data.get_dataset(dataset, data_root, "train", seed, splits_file=splits, **options)
    val_set = data.get_dataset(dataset, data_root, "val", seed, splits_file=splits,
                               augment=False, **options)
    _log(context, f"search {dataset}: {len(train_set)} training / {len(val_set)} validation "
                  f"images, layout {config.layout}, {config.epochs} epochs -> {out_dir}")
    result = run_search(config, train_set, val_set, out_dir, context=context, resume=resume,
                        metadata={"splits": "splits.json", "data_root": str(data_root or "")})
    if context.is_main and pictures:
        draw_search_pictures(out_dir)
    last = result["history"][-1] if result["history"] else {}
    _log(context, f"{result['stop_reason']}; derived network {last.get('derived_params_M', 0):.3f}"
                  f"M params, {last.get('derived_flops_G', 0):.3f} GFLOPs; genotype "
                  f"{out_dir / 'genotype.json'}")
    return result


def draw_search_pictures(run_dir: Path) -> list[Path]:
    """Cell DAGs, the macro layout, the alpha heat map and the training curves; a picture
    that cannot be drawn is reported, not fatal (the search's results are already saved)."""
    from . import visualize

    paths, problems = visualize.draw_run(run_dir)
    for problem in problems:
        print(f"picture not drawn: {problem}", flush=True)
    return paths


def _genotype_splits(genotype_path: Path) -> Path | None:
    candidate = genotype_path.parent / "splits.json"
    return candidate if candidate.is_file() else None


def retrain_genotype(genotype: str | Path, dataset: str | None = None,
                     data_root: str | Path | None = None, out: str | Path | None = None, *,
                     device: str = "auto", resume: bool = False, seed: int = 0,
                     splits_file: str | Path | None = None, val_fraction: float = 0.25,
                     skip_bad: bool = False, progress: bool = True,
                     **overrides: Any) -> dict[str, Any]:
    """Train the network of a genotype file from scratch with seed 002's retrain settings and
    write ``metrics.json`` (test DSC/MIoU with the best checkpoint, params, FLOPs)."""
    context = init_distributed(device)
    genotype_path = Path(genotype)
    arch, metadata = load_genotype_file(genotype_path)
    dataset = dataset or metadata.get("dataset")
    if not dataset:
        raise ValueError(f"{genotype_path}: names no dataset; pass --dataset")
    if overrides.get("image_size") is None:
        # retrain at the size the search ran at (the genotype's costs were measured there)
        searched_size = (metadata.get("search") or {}).get("image_size")
        overrides["image_size"] = searched_size or (SAMPLE_IMAGE_SIZE if data_root is None
                                                    else None)
    values = merge(retrain_preset(dataset), overrides)
    config = RetrainConfig(dataset=dataset, seed=seed, progress=progress, model="genotype",
                           **values)
    out_dir = run_directory("retrain", dataset, out, context, resume)
    options = dict(image_size=config.image_size, skip_bad=skip_bad)
    splits = prepare_splits(dataset, data_root, out_dir, seed, val_fraction, context,
                            splits_file or _genotype_splits(genotype_path), **options)
    sets = {split: data.get_dataset(dataset, data_root, split, seed, splits_file=splits,
                                    augment=split == "train", **options)
            for split in ("train", "val", "test")}
    torch.manual_seed(seed)
    network = from_genotype(arch, drop_path_rate=config.drop_path)
    model = wrap_model(network, context)
    precision = resolve_precision(config.precision, context.device)
    loaders = {split: data.make_loader(sets[split], config.batch_size, shuffle=False,
                                       drop_last=False, num_workers=config.num_workers,
                                       distributed=context.enabled, seed=seed)
               for split in ("val", "test")}
    eval_loss = losses.build(config.loss, **config.loss_options)

    def evaluate(net):
        return evaluate_binary(net, loaders["val"], eval_loss, context.device, context, precision)

    _log(context, f"retrain {dataset}: {len(sets['train'])} / {len(sets['val'])} / "
                  f"{len(sets['test'])} train / val / test images -> {out_dir}")
    result = run_retrain(model, config, sets["train"], out_dir, evaluate, context=context,
                         resume=resume, metadata={"genotype": json.dumps(metadata)})
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
    _log(context, f"test DSC {metrics['dsc']:.4f}, MIoU {metrics['miou']:.4f} (best epoch "
                  f"{metrics['best_epoch']}); {metrics['params'] / 1e6:.3f}M params, "
                  f"{metrics['flops'] / 1e9:.3f} GFLOPs -> {out_dir / 'metrics.json'}")
    return {**result, "metrics": metrics}
