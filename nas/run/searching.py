"""``search.py`` / ``lwnas search``: search a genotype for a 2D data set, or a 3D one on random
crops of volumes (BraTS, or any data set given ``spatial_dims=3``)."""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Sequence

import torch

import data
import models
from nas import complexity
from nas.metrics import overlap_rule
from nas.presets import SEARCH_PRESETS, VOLUME_SEARCH_PRESETS, WINDOW_OVERLAP, VolumeSearchPreset
from nas.search import RESUME_MAY_CHANGE, SearchConfig, run_search
from nas.search.config import require_cuda_graph_device
from nas.train import resolve_precision
from nas.train.distributed import init_distributed, resolve_device, say
from nas.train.run_dir import holding_run_directory, start_run
from nas.train.runtime import autotuning_note
from nas.train.settings import require_crop, require_number
from nas.train.stopping import stop_on_signals

from .brats import BRATS, volume_validator
from .data_setup import (
    check_loss_fits,
    check_val_fraction,
    crops_per_case,
    data_settings,
    prepare_splits,
    record_skipped,
    run_data_identity,
    skipped_note,
    verify_data,
    write_fingerprint,
)
from .tensorboard import check_tensorboard, tensorboard_callback


@stop_on_signals()  # SIGTERM: a checkpoint at the next step, then StopRequested
@holding_run_directory()  # RUN/.lock until the command returns
def search(dataset: str, data_root: str | Path | None = None, out: str | Path | None = None,
           *, device: str = "auto", resume: bool = False, seed: int = 0,
           val_fraction: float | None = None, splits_file: str | Path | None = None,
           skip_bad: bool = False, progress: bool = True, pictures: bool = True, tensorboard: bool = False,
           data_options: dict[str, Any] | None = None,
           crop_size: int | Sequence[int] | None = None, overlap: float | None = None,
           **overrides: Any) -> dict[str, Any]:
    """Search a genotype for ``dataset``; ``overrides`` are SearchConfig fields (None = preset),
    ``data_options`` the data set's (``data.get_dataset``'s, e.g. CHAOS ``modality="MR"``).

    Volumes (BraTS; any data set with ``spatial_dims=3``) are searched in 3D: the weights on
    random crops of the training cases (``crop_size``, default the 3D preset's,
    ``nas.presets.VOLUME_SEARCH_PRESETS``; the sample data's own smaller crop), the
    architecture on random crops of the validation cases, and each epoch is validated on the
    whole validation volumes by sliding windows of the crop with ``overlap`` (None:
    ``nas.presets.WINDOW_OVERLAP``; BraTS: the regions' Dice ``val_dice_wt/tc/et/mean`` in
    ``log.csv``). ``val_fraction`` None: the data set's (``data.get_preset(name).val_fraction``);
    ``splits_file``: a ``splits.json`` whose cases the search uses instead (``lwnas run``'s
    searches of several seeds share one).
    A 2D search runs at ``image_size`` (an override), else at the data set's size, planned from
    the training cases where the data set has none."""
    # every setting is checked before any data is read or anything is written
    context = init_distributed(device)
    require_cuda_graph_device(overrides.get("cuda_graph"), context.device, context.world_size)
    check_val_fraction(val_fraction)
    check_tensorboard(tensorboard)
    overlap = WINDOW_OVERLAP if overlap is None else overlap
    require_number("overlap", overlap, below=1.0)
    data_options = dict(data_options or {})
    volumes = data.dataset_facts(dataset, data_root, **data_options).spatial_dims == 3
    if volumes and "target" in data.get_preset(dataset).options:  # BraTS: the preset's target
        if data_options.get("target") is None:
            data_options["target"] = _volume_preset(dataset).target
        if data_options["target"] == "labels":
            raise ValueError("--option target=labels serves BraTS label maps for scoring; a search "
                             "trains on target=regions (sigmoid WT/TC/ET) or target=index "
                             "(softmax over 0/1/2/4)")
    facts, preset = data_settings(dataset, data_root, overrides, SEARCH_PRESETS, data_options)
    if overrides.get("latency_device"):
        resolve_device(overrides["latency_device"])  # a bad or absent device: one line, now
        overrides["latency_cache"] = str(data.cache_root() / "latency")
    if volumes:
        if overrides.get("image_size") is not None:
            raise ValueError(f"--image-size applies to 2D searches; {dataset} is searched in 3D "
                             "on random crops: pass --crop-size N or NxNxN")
        crop = require_crop("crop_size", crop_size or facts.crop_size or _volume_preset(preset).crop_size)
        budgets = _budgets(_volume_preset(preset), facts.in_channels, crop, overrides)
        values = {**overrides, **budgets, "spatial_dims": 3, "crop_size": crop}
    else:
        if crop_size is not None:
            raise ValueError(f"--crop-size applies to 3D searches; {dataset} is searched on 2D "
                             "images (--image-size), or on volumes with --option spatial_dims=3")
        values = {**overrides, "image_size": overrides.get("image_size") or facts.image_size}
    config = SearchConfig.from_preset(dataset, preset=preset, seed=seed, progress=progress,
                                      **values)
    check_loss_fits(config.loss, facts.target)
    out_dir, resume = start_run("search", dataset, out, context, resume,
                                dataclasses.asdict(config), RESUME_MAY_CHANGE)
    verify_data(dataset, data_root, context, skip_bad, **data_options)
    if volumes:
        options = dict(crop_size=config.crop_size, skip_bad=skip_bad, **data_options)
    else:
        options = dict(image_size=config.image_size, skip_bad=skip_bad, **data_options)  # None: planned
    splits = prepare_splits(dataset, data_root, out_dir, seed, val_fraction, context, splits_file,
                            resume=resume, **options)
    identity = run_data_identity(dataset, data_root, splits, out_dir, context, resume, **data_options)
    evaluate = None
    if volumes:
        cases = data.load_splits(splits)
        train_set = data.get_dataset(dataset, data_root, "train", seed, splits_file=splits,
                                     crops_per_case=crops_per_case(config.batch_size, context, len(cases["train"])),
                                     **options)
        # the architecture's batches: random crops of the validation cases (not augmented)
        val_set = data.get_dataset(dataset, data_root, "val", seed, splits_file=splits,
                                   augment=False, random_crop=True,
                                   crops_per_case=crops_per_case(config.batch_size, context, len(cases["val"])),
                                   **options)
        volumes_set = data.get_dataset(dataset, data_root, "val", seed, splits_file=splits,
                                       augment=False, **options)
        evaluate = volume_validator(dataset, volumes_set, config.crop_size, context,
                                    precision=resolve_precision(config.precision, context.device),
                                    overlap=overlap)
        what = (f"cases ({train_set.crops_per_case} / {val_set.crops_per_case} random crops "
                f"{'x'.join(map(str, config.crop_size))} each per epoch)")
        counts = (len(train_set.cases), len(val_set.cases))
    else:
        train_set = data.get_dataset(dataset, data_root, "train", seed, splits_file=splits,
                                     **options)
        val_set = data.get_dataset(dataset, data_root, "val", seed, splits_file=splits,
                                   augment=False, **options)
        what, counts = "images", (len(train_set), len(val_set))
    write_fingerprint(out_dir, train_set, context)
    skipped = record_skipped(out_dir, {"train": train_set, "val": val_set}, context)
    say(context, f"search {dataset}: {counts[0]} training / {counts[1]} validation {what}, "
                 f"{config.spatial_dims}D, layout {config.layout}, {config.epochs} epochs -> "
                 f"{out_dir}{autotuning_note(context.device, config.deterministic)}")
    metadata = {"splits": "splits.json", "data_root": str(data_root or ""),
                "preset": preset, "data_options": data_options,
                "data": {"channels": list(facts.channels),
                         "class_names": list(facts.class_names),
                         "target": facts.target,
                         # how val_dsc / val_dice_mean is taken (BraTS: its regions, the challenge's rule)
                         **({} if dataset == BRATS else {"scoring": overlap_rule(facts.planar).name}),
                         **({"crop_size": list(config.crop_size), "overlap": overlap}
                            if volumes else {})}}
    with tensorboard_callback(tensorboard, out_dir, context) as on_epoch_end:
        result = run_search(config, train_set, val_set, out_dir, context=context, resume=resume,
                            metadata=metadata, evaluate=evaluate, on_epoch_end=on_epoch_end, data=identity)
    if context.is_main and pictures:
        draw_search_pictures(out_dir)
    for warning in result["warnings"]:
        say(context, f"warning: {warning}")
    last = result["history"][-1] if result["history"] else {}
    say(context, f"{result['stop_reason']}; derived network {last.get('derived_params_M', 0):.3f}"
                 f"M params, {last.get('derived_flops_G', 0):.3f} GFLOPs; genotype "
                 f"{out_dir / 'genotype.json'}{skipped_note(skipped)}")
    return result


def draw_search_pictures(run_dir: Path) -> list[Path]:
    """Cell DAGs, the macro layout, the alpha heat map and the training curves; a picture
    that cannot be drawn is reported, not fatal (the search's results are already saved)."""
    from nas.pictures import draw_run

    paths, problems = draw_run(run_dir)
    for problem in problems:
        print(f"picture not drawn: {problem}", flush=True)
    return paths


def _volume_preset(preset: str) -> VolumeSearchPreset:
    """The 3D settings of a search preset (crops, target, budget); the BraTS search's for a
    preset without its own."""
    return VOLUME_SEARCH_PRESETS.get(preset, VOLUME_SEARCH_PRESETS["brats"])


def _budgets(volume: VolumeSearchPreset, in_channels: int, crop: Sequence[int],
             overrides: dict[str, Any]) -> dict[str, float]:
    """``--budget-params`` / ``--budget-flops`` the preset sets where the user did not: the
    params (M) of the network the derived one is to stay under, and its conv MACs (G) at the
    preset's size scaled to the crop by the voxel count."""
    if volume.budget_like is None:
        return {}
    with torch.device("meta"):  # counted without memory or time
        like = models.build(volume.budget_like, in_channels=in_channels)
    counts = complexity.profile(like, (1, in_channels) + tuple(volume.budget_size))
    budgets = {"budget_params": counts["params"] / 1e6,
               "budget_flops": volume.budget_flops_g(counts["macs"] / 1e9, crop)}
    return {key: value for key, value in budgets.items() if overrides.get(key) is None}

