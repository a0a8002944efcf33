"""``search.py`` / ``lwnas search``: search a genotype for a 2D data set."""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import data
from nas.presets import SEARCH_PRESETS
from nas.search import SearchConfig, run_search
from nas.train.distributed import init_distributed, resolve_device
from nas.train.stopping import stop_on_signals

from .common import (
    PLANNED_SIZE,
    check_tensorboard,
    check_val_fraction,
    data_settings,
    default_image_size,
    prepare_splits,
    record_skipped,
    say,
    skipped_note,
    start_run,
    tensorboard_callback,
    verify_data,
    write_fingerprint,
)


@stop_on_signals()  # SIGTERM: a checkpoint at the next step, then StopRequested
def search(dataset: str, data_root: str | Path | None = None, out: str | Path | None = None,
           *, device: str = "auto", resume: bool = False, seed: int = 0,
           val_fraction: float = 0.25, skip_bad: bool = False, progress: bool = True,
           pictures: bool = True, tensorboard: bool = False,
           data_options: dict[str, Any] | None = None,
           **overrides: Any) -> dict[str, Any]:
    """Search a genotype for ``dataset``; ``overrides`` are SearchConfig fields (None = preset),
    ``data_options`` the data set's (``data.get_dataset``'s, e.g. CHAOS ``modality="MR"``)."""
    # every setting is checked before any data is read or anything is written
    context = init_distributed(device)
    check_val_fraction(val_fraction)
    check_tensorboard(tensorboard)
    data_options = dict(data_options or {})
    facts, preset = data_settings(dataset, data_root, overrides, SEARCH_PRESETS, data_options)
    if facts.spatial_dims != 2:
        raise ValueError(f"--dataset {dataset}: the search runs on 2D slices or images; "
                         f"{dataset} serves {facts.spatial_dims}D volumes")
    size = overrides.get("image_size") or default_image_size(dataset, data_root)
    if overrides.get("latency_device"):
        resolve_device(overrides["latency_device"])  # a bad or absent device: one line, now
        overrides["latency_cache"] = str(data.cache_root() / "latency")
    config = SearchConfig.from_preset(dataset, preset=preset, seed=seed, progress=progress,
                                      **{**overrides, "image_size": size or PLANNED_SIZE})
    out_dir, resume = start_run("search", dataset, out, context, resume,
                                dataclasses.asdict(config))
    verify_data(dataset, data_root, context, **data_options)
    options = dict(image_size=size, skip_bad=skip_bad, **data_options)  # size None: planned
    splits = prepare_splits(dataset, data_root, out_dir, seed, val_fraction, context,
                            resume=resume, **options)
    train_set = data.get_dataset(dataset, data_root, "train", seed, splits_file=splits, **options)
    val_set = data.get_dataset(dataset, data_root, "val", seed, splits_file=splits,
                               augment=False, **options)
    if size is None:
        config = dataclasses.replace(config, image_size=int(train_set.image_size))
    write_fingerprint(out_dir, train_set, context)
    skipped = record_skipped(out_dir, {"train": train_set, "val": val_set}, context)
    say(context, f"search {dataset}: {len(train_set)} training / {len(val_set)} validation "
                 f"images, layout {config.layout}, {config.epochs} epochs -> {out_dir}")
    metadata = {"splits": "splits.json", "data_root": str(data_root or ""),
                "preset": preset, "data_options": data_options,
                "data": {"channels": list(facts.channels),
                                           "class_names": list(facts.class_names),
                                           "target": facts.target}}
    with tensorboard_callback(tensorboard, out_dir, context) as on_epoch_end:
        result = run_search(config, train_set, val_set, out_dir, context=context, resume=resume,
                            metadata=metadata, on_epoch_end=on_epoch_end)
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
