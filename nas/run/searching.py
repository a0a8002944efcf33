"""``search.py`` / ``lwnas search``: search a genotype for a 2D data set."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import data
from nas.search import SearchConfig, run_search
from nas.train.distributed import init_distributed, resolve_device

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


def search(dataset: str, data_root: str | Path | None = None, out: str | Path | None = None,
           *, device: str = "auto", resume: bool = False, seed: int = 0,
           val_fraction: float = 0.25, skip_bad: bool = False, progress: bool = True,
           pictures: bool = True, tensorboard: bool = False, **overrides: Any) -> dict[str, Any]:
    """Search a genotype for ``dataset``; ``overrides`` are SearchConfig fields (None = preset).
    ``tensorboard``: also log every epoch to ``RUN/tensorboard/`` (``nas.pictures.tensorboard``)."""
    # every setting is checked before any data is read or anything is written
    context = init_distributed(device)
    check_val_fraction(val_fraction)
    check_tensorboard(tensorboard)
    if overrides.get("image_size") is None:
        overrides["image_size"] = default_image_size(dataset, data_root)
    if overrides.get("latency_device"):
        resolve_device(overrides["latency_device"])  # a bad or absent device: one line, now
        overrides["latency_cache"] = str(data.cache_root() / "latency")
    config = SearchConfig.from_preset(dataset, seed=seed, progress=progress, **overrides)
    out_dir = run_directory("search", dataset, out, context, resume)
    options = dict(image_size=config.image_size, skip_bad=skip_bad)
    splits = prepare_splits(dataset, data_root, out_dir, seed, val_fraction, context,
                            resume=resume, **options)
    train_set = data.get_dataset(dataset, data_root, "train", seed, splits_file=splits, **options)
    val_set = data.get_dataset(dataset, data_root, "val", seed, splits_file=splits,
                               augment=False, **options)
    skipped = record_skipped(out_dir, {"train": train_set, "val": val_set}, context)
    say(context, f"search {dataset}: {len(train_set)} training / {len(val_set)} validation "
                 f"images, layout {config.layout}, {config.epochs} epochs -> {out_dir}")
    with tensorboard_callback(tensorboard, out_dir, context) as on_epoch_end:
        result = run_search(config, train_set, val_set, out_dir, context=context, resume=resume,
                            metadata={"splits": "splits.json", "data_root": str(data_root or "")},
                            on_epoch_end=on_epoch_end)
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
