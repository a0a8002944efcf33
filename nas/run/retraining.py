"""``retrain.py --genotype`` / ``lwnas retrain --genotype``: train a searched network from
scratch on the search's splits and score it on the test split."""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any, Callable, Sequence

import torch
from torch import nn

import data
from nas import losses
from nas.presets import RETRAIN_PRESETS, merge, retrain_preset, training_values
from nas.search import load_genotype_file, network_complexity
from nas.train import (
    RetrainConfig,
    atomic_write_text,
    evaluate_segmentation,
    init_distributed,
    load_checkpoint,
    make_loader,
    resolve_precision,
    run_retrain,
    wrap_model,
)
from nas.train.distributed import barrier, say
from nas.train.run_dir import start_run
from nas.train.settings import require_crop
from nas.train.stopping import stop_on_signals
from supernet import Genotype, from_genotype

from .data_setup import (
    PLANNED_SIZE,
    check_loss_fits,
    check_val_fraction,
    data_settings,
    default_image_size,
    prepare_splits,
    record_skipped,
    skipped_note,
    uses_sample,
    verify_data,
    write_fingerprint,
)
from .network_spec import SPEC_KEY, build_spec, training_entry
from .networks import build_network, genotype_network, genotype_target, searched_network
from .tensorboard import check_tensorboard, tensorboard_callback
from .training_3d import retrain_model
from .volume_evaluation import MEAN_METRIC, make_volume_validator


def per_class_scores(scores: dict[str, float]) -> dict[str, dict[str, float]]:
    """``dsc_per_class`` and ``iou_per_class`` (by class name) of a multi-class evaluation."""
    result: dict[str, dict[str, float]] = {}
    for prefix, name in (("val_dsc_", "dsc_per_class"), ("val_iou_", "iou_per_class")):
        values = {key[len(prefix):]: value for key, value in scores.items() if key.startswith(prefix)}
        if values:
            result[name] = values
    return result


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


@stop_on_signals()  # SIGTERM: a checkpoint at the next step, then StopRequested
def retrain_genotype(genotype: str | Path, dataset: str | None = None,
                     data_root: str | Path | None = None, out: str | Path | None = None, *,
                     device: str = "auto", resume: bool = False, seed: int = 0,
                     splits_file: str | Path | None = None, val_fraction: float = 0.25,
                     skip_bad: bool = False, progress: bool = True, tensorboard: bool = False,
                     data_options: dict[str, Any] | None = None,
                     crop_size: int | Sequence[int] | None = None, overlap: float = 0.5,
                     et_threshold: int = data.ET_THRESHOLD,
                     **overrides: Any) -> dict[str, Any]:
    """Train the network of a genotype file from scratch with seed 002's retrain settings and
    write ``metrics.json`` (test DSC/MIoU with the best checkpoint, params, FLOPs); ``best.pt``
    describes itself (``nas.run.network_spec``). ``tensorboard``: log epochs to RUN/tensorboard/.

    A 3D genotype trains as the hand-designed 3D networks do (random crops of ``crop_size``,
    whole-volume validation with ``overlap``, ``best.pt`` by the mean Dice, the test split
    segmented whole; ``nas.presets.GENOTYPE_PRESETS_3D``): on BraTS through the very path of
    ``retrain.py --model`` (``training_3d.retrain_model``, ``et_threshold`` post-processing
    of the test segmentations, checkpoints ``lwnas predict`` reads), on other volumes with the
    per-class whole-volume Dice."""
    # every setting, and the genotype against the data, is checked before any data is read
    context = init_distributed(device)
    check_val_fraction(val_fraction)
    check_tensorboard(tensorboard)
    genotype_path = Path(genotype)
    arch, metadata = load_genotype_file(genotype_path)
    dataset = dataset or metadata.get("dataset")
    if not dataset:
        raise ValueError(f"{genotype_path}: names no dataset; pass --dataset")
    # the data set's options as the search had them, unless given
    data_options = dict(data_options if data_options is not None
                        else metadata.get("data_options") or {})
    if arch.spatial_dims == 3:
        return _retrain_volumes(arch, metadata, genotype_path, dataset, data_root, out,
                                context=context, resume=resume, seed=seed,
                                splits_file=splits_file, val_fraction=val_fraction,
                                skip_bad=skip_bad, progress=progress, data_options=data_options,
                                crop_size=crop_size, overlap=overlap, tensorboard=tensorboard,
                                et_threshold=et_threshold, overrides=overrides)
    if crop_size is not None:
        raise ValueError(f"--crop-size applies to 3D networks; {genotype_path} is a 2D genotype "
                         "(its size is --image-size)")
    facts, preset = data_settings(dataset, data_root, overrides, RETRAIN_PRESETS, data_options)
    check_genotype_fits(arch, genotype_path, facts)
    # retrain at the size the search ran at (the genotype's costs were measured there)
    size = (overrides.get("image_size") or _searched_size(metadata, genotype_path)
            or default_image_size(dataset, data_root))
    values = merge(retrain_preset(preset), {**overrides, "image_size": size or PLANNED_SIZE})
    config = RetrainConfig(dataset=dataset, seed=seed, progress=progress, model="genotype",
                           **values)
    network = TrainedNetwork(
        run_kind="retrain", identity={"genotype": str(genotype_path)}, spatial_dims=arch.spatial_dims,
        build=lambda config: from_genotype(arch, drop_path_rate=config.drop_path),
        complexity=lambda size: network_complexity(arch, (arch.in_channels,) + (size,) * arch.spatial_dims),
        spec_network=genotype_network(arch), in_channels=arch.in_channels,
        checkpoint_metadata={"genotype": json.dumps(metadata)})
    return train_and_score(network, config, dataset, data_root, out, context, resume=resume, seed=seed,
                           splits_file=splits_file or _genotype_splits(genotype_path, metadata),
                           val_fraction=val_fraction, skip_bad=skip_bad, tensorboard=tensorboard,
                           data_options=data_options, image_size=size)


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
                    resume: bool, seed: int, splits_file: str | Path | None, val_fraction: float,
                    skip_bad: bool, tensorboard: bool, data_options: dict[str, Any],
                    image_size: int | None) -> dict[str, Any]:
    """The one retrain flow of every 2D network, so a searched network and its baseline differ
    in the network only: run directory, splits, data, loop, test evaluation and ``metrics.json``.
    ``image_size`` None: the data set's planned size."""
    out_dir, resume = start_run(network.run_kind, dataset, out, context, resume,
                                dataclasses.asdict(config))
    verify_data(dataset, data_root, context, **data_options)
    options = dict(image_size=image_size, skip_bad=skip_bad, **data_options)
    splits = prepare_splits(dataset, data_root, out_dir, seed, val_fraction, context, splits_file,
                            resume=resume, **options)
    sets = {split: data.get_dataset(dataset, data_root, split, seed, splits_file=splits,
                                    augment=split == "train", **options)
            for split in ("train", "val", "test")}
    if image_size is None:
        config = dataclasses.replace(config, image_size=int(sets["train"].image_size))
    write_fingerprint(out_dir, sets["train"], context)
    skipped = record_skipped(out_dir, sets, context)
    torch.manual_seed(seed)
    module = network.build(config)
    model = wrap_model(module, context)
    precision = resolve_precision(config.precision, context.device)
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
    input_shape = [network.in_channels] + [config.image_size] * network.spatial_dims
    spec = build_spec(network.spec_network, sets["train"], input_shape[1:],
                      training_entry(dataclasses.asdict(config), sets["train"].splits, data_root,
                                     **network.identity))
    with tensorboard_callback(tensorboard, out_dir, context) as on_epoch_end:
        result = run_retrain(model, config, sets["train"], out_dir, evaluate,
                             context=context, resume=resume,
                             metadata={**network.checkpoint_metadata, SPEC_KEY: spec},
                             on_epoch_end=on_epoch_end)
    barrier(context)  # rank 0 may still be renaming the last best.pt into place
    best = load_checkpoint(out_dir / "best.pt", map_location=context.device)
    module.load_state_dict(best["model"])
    test = evaluate(model, "test")
    complexity = network.complexity(config.image_size)
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


def _retrain_volumes(arch: Genotype, metadata: dict, genotype_path: Path, dataset: str,
                     data_root: str | Path | None, out: str | Path | None, *,
                     context, resume: bool, seed: int, splits_file: str | Path | None,
                     val_fraction: float, skip_bad: bool, progress: bool,
                     data_options: dict[str, Any], crop_size: int | Sequence[int] | None,
                     overlap: float, tensorboard: bool, et_threshold: int,
                     overrides: dict[str, Any]) -> dict[str, Any]:
    """A 3D genotype's training (see :func:`retrain_genotype`), checked against the data first."""
    target = genotype_target(arch, metadata)
    options = dict(data_options)
    if "target" in data.get_preset(dataset).options:  # BraTS: the target its search trained
        options["target"] = target
    facts = data.dataset_facts(dataset, data_root, **options)
    check_genotype_fits(arch, genotype_path, facts)
    preset = searched_network("genotype", genotype_path).preset
    check_loss_fits(overrides.get("loss") or preset.loss, target)
    splits = splits_file or _genotype_splits(genotype_path, metadata)
    common = dict(device=str(context.device), resume=resume, seed=seed, splits_file=splits,
                  val_fraction=val_fraction, skip_bad=skip_bad, progress=progress,
                  crop_size=crop_size, overlap=overlap, tensorboard=tensorboard)
    if dataset == "brats":  # the hand-designed networks' path: labels 0/1/2/4, WT/TC/ET
        options.pop("target", None)  # retrain_model serves the target of the network's output
        return retrain_model("genotype", dataset, data_root, out, genotype=genotype_path,
                             data_options=options or None, et_threshold=et_threshold, **common,
                             **overrides)
    return retrain_volumes(arch, genotype_path, dataset, data_root, out, context=context,
                           data_options=options, **{**common, "device": None}, **overrides)


def retrain_volumes(arch: Genotype, genotype_path: Path, dataset: str,
                    data_root: str | Path | None, out: str | Path | None, *, context,
                    device: str | None = None, resume: bool = False, seed: int = 0,
                    splits_file: str | Path | None = None, val_fraction: float = 0.25,
                    skip_bad: bool = False, progress: bool = True,
                    data_options: dict[str, Any] | None = None,
                    crop_size: int | Sequence[int] | None = None, overlap: float = 0.5,
                    tensorboard: bool = False, **overrides: Any) -> dict[str, Any]:
    """A 3D genotype on a data set of volumes other than BraTS (nnU-Net / Decathlon data with
    ``spatial_dims=3``): random crops, whole-volume validation by the per-class Dice
    (``val_dice_<class>``, ``val_dice_mean`` selects ``best.pt``), the test volumes scored the
    same way into ``metrics.json`` (``dsc`` = their mean, ``dsc_per_class``)."""
    searched = searched_network("genotype", genotype_path)
    sample = uses_sample(dataset, data_root)
    if overrides.pop("image_size", None) is not None:
        raise ValueError("--image-size applies to 2D networks; a 3D genotype trains on crops: "
                         "pass --crop-size N or NxNxN")
    crop = crop_size or (data.get_preset(dataset).sample_crop_size if sample
                         else searched.preset.crop_size)
    crop = require_crop("crop_size", crop)
    drop_path = overrides.pop("drop_path", None)
    values = training_values("genotype", overrides, sample=sample, preset=searched.preset)
    config = RetrainConfig(dataset=dataset, model="genotype", seed=seed, progress=progress,
                           image_size=crop, select_metric=MEAN_METRIC,
                           drop_path=searched.drop_path if drop_path is None else drop_path,
                           **values)
    out_dir, resume = start_run("retrain", dataset, out, context, resume,
                                dataclasses.asdict(config))
    verify_data(dataset, data_root, context, **(data_options or {}))
    options = dict(crop_size=crop, skip_bad=skip_bad, **(data_options or {}))
    splits = prepare_splits(dataset, data_root, out_dir, seed, val_fraction, context,
                            splits_file, resume=resume, **options)
    sets = {split: data.get_dataset(dataset, data_root, split, seed, splits_file=splits,
                                    **options)
            for split in ("train", "val", "test")}
    write_fingerprint(out_dir, sets["train"], context)
    skipped = record_skipped(out_dir, sets, context)
    torch.manual_seed(seed)
    entry = searched.entry()
    network = build_network(entry, config.drop_path)
    model = wrap_model(network, context)
    precision = resolve_precision(config.precision, context.device)
    validators = {split: make_volume_validator(sets[split], crop, context, precision=precision,
                                               overlap=overlap) for split in ("val", "test")}
    say(context, f"retrain {genotype_path} on {dataset}: {len(sets['train'])} / "
                 f"{len(sets['val'])} / {len(sets['test'])} train / val / test cases, crop "
                 f"{'x'.join(map(str, crop))}, batch {config.batch_size}, {config.epochs} "
                 f"epochs, loss {config.loss} -> {out_dir}")
    spec = build_spec(entry, sets["train"], crop,
                      training_entry(dataclasses.asdict(config), sets["train"].splits, data_root,
                                     genotype=str(genotype_path), overlap=overlap))
    with tensorboard_callback(tensorboard, out_dir, context) as on_epoch_end:
        result = run_retrain(model, config, sets["train"], out_dir, validators["val"],
                             context=context, resume=resume,
                             metadata={"genotype": json.dumps(searched.metadata), "network": entry,
                                       "roi_size": list(crop), SPEC_KEY: spec},
                             on_epoch_end=on_epoch_end)
    barrier(context)  # rank 0 may still be renaming the last best.pt into place
    best = load_checkpoint(out_dir / "best.pt", map_location=context.device)
    network.load_state_dict(best["model"])
    test = validators["test"](network)
    counted = network_complexity(arch, (arch.in_channels,) + crop)
    per_class = {key[len("val_dice_"):]: value for key, value in test.items()
                 if key.startswith("val_dice_") and key != MEAN_METRIC}
    metrics = {"dataset": dataset, "genotype": str(genotype_path), "model": "genotype",
               "dsc": test[MEAN_METRIC], "dsc_per_class": per_class,
               "metric_definitions": "per-case whole-volume Dice per class (sliding windows of "
                                     "the crop), averaged over the test cases",
               "best_epoch": best["epoch"], "best_val": result["best"].get("metrics", {}),
               "params": counted["params"], "flops": counted["flops"],
               "input_shape": [arch.in_channels, *crop], "roi_size": list(crop),
               "overlap": overlap, "test_cases": test["val_cases"]}
    if context.is_main:
        atomic_write_text(out_dir / "metrics.json", json.dumps(metrics, indent=2) + "\n")
    say(context, f"test Dice {metrics['dsc']:.4f} ({metrics['test_cases']} cases, best epoch "
                 f"{metrics['best_epoch']}); {metrics['params'] / 1e6:.3f}M params, "
                 f"{metrics['flops'] / 1e9:.3f} GFLOPs per crop -> {out_dir / 'metrics.json'}"
                 f"{skipped_note(skipped)}")
    return {**result, "metrics": metrics}
