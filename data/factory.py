"""`get_dataset`: the one constructor of every dataset, from presets and options."""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from pathlib import Path

from torch.utils.data import Dataset

from data.cache import CaseCache, cache_root
from data.datasets import SliceDataset, VolumeDataset
from data.errors import data_error
from data.prediction.label_maps import metric_class_names, target_kind
from data.presets import get_preset
from data.sample import is_sample, sample_root
from data.sources import ROOT_SOURCES, source_for
from data.splits import SPLITS, load_splits, make_splits


def get_dataset(
    name: str,
    root: str | os.PathLike | None = None,
    split: str = "train",
    seed: int = 0,
    *,
    splits_file: str | os.PathLike | None = None,
    val_fraction: float | None = None,
    augment: bool | None = None,
    image_size: int | None = None,
    cache_dir: str | os.PathLike | None = None,
    skip_bad: bool = False,
    **dataset_options,
) -> Dataset:
    """A torch Dataset of one split of `name` ("dsb2018", "chaos", "promise12", "brats", "nnunet").

    root: the data root (layouts in docs/data.md); None uses the bundled
        sample data, written into the cache on first use. Sample data sets
        default to small sizes (2D 64, 3D crops 32^3) instead of SPEC's.
    split: "train", "val" or "test", cut by case with `seed` (see
        `data.make_splits`; `val_fraction` None: the preset's), or read from `splits_file` (a
        saved splits.json).
    augment: random augmentation; None = on for "train" only.
    image_size: 2D side length (default: the preset's 256; 64 for sample data; nnunet: planned
        from the training cases, `data.plan_2d_size`, 48 for its sample data).
    cache_dir: root of the sample data and preprocessed-array cache
        (default $LWNAS_CACHE or ~/.cache/lwnas).
    skip_bad: leave out cases that fail to read and list them in
        `dataset.skipped` instead of raising `DataError`.
    dataset_options: chaos: modality ("CT"/"MR"), sequence, organs,
        hu_window; promise12: denoise, ...; brats: target ("labels", "index",
        "regions"), crop_size, foreground_prob; nnunet: spatial_dims (2: slices along the
        coarsest axis, 3: volumes), crop_size, foreground_prob. 3D data sets also: random_crop
        (None: crops on "train" only; True: random crops on this split too, e.g. the validation
        crops of a search's architecture step), crops_per_case (items per case and epoch, each
        its own crop). Defaults in data/presets.py.

    The dataset has attributes in_channels, num_classes, spatial_dims, cases,
    items (item index -> (case, slice index)), splits, skipped, class_names, target_kind and
    planar (each case one 2D image, scored per image; else a volume, scored per case).
    """
    preset = get_preset(name)
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}: expected one of {', '.join(SPLITS)}")
    options = _options(name, preset.options, dataset_options)
    root = sample_root(name, cache_dir) if root is None else Path(root).expanduser()
    # Sample data (also when written with `python -m data.sample --out DIR`)
    # gets its own small default sizes.
    default_size, default_crop = preset.sizes(is_sample(root, name))
    source = source_for(name, root, options)
    if source.spatial_dims == 3 and image_size is not None:
        raise ValueError(f"image_size applies to 2D datasets; {name} is 3D: pass crop_size instead")
    if source.spatial_dims == 2:
        size = image_size or default_size
        options["image_size"] = None if size is None else int(size)  # None: the source's plan sets it
    case_paths = source.case_paths(root, options)

    if splits_file is not None:
        splits = load_splits(splits_file)
        if splits.get("dataset") not in ("", None, name):
            raise data_error(splits_file, f"holds splits of {splits['dataset']}; expected {name}")
        missing = [case for part in SPLITS for case in splits[part] if case not in case_paths]
        if missing:
            raise data_error(splits_file, f"case {missing[0]} ({len(missing)} in all) is not under {root}; "
                             "expected the data root the splits were made from")
    else:
        splits = _seeded_splits(name, list(case_paths), seed, val_fraction)

    cache_folder = cache_root(cache_dir) / "preprocessed" / name
    fingerprint = None
    if source.plan is not None:  # settings the training cases decide (the same for every split)
        planned = splits.get("plan_cases") or splits["train"]  # a fold: every case of its cross-validation
        options = source.plan({case: case_paths[case] for case in planned}, options, cache_folder, skip_bad)
        fingerprint = options.pop("fingerprint", None)
    settings = {"dataset": name, **{k: v for k, v in options.items() if k not in preset.item_options}}
    cache = CaseCache(cache_folder, settings)
    chosen = {case: case_paths[case] for case in splits[split]}
    in_channels = preset.in_channels or len(source.channels(options))
    common = dict(name=name, split=split, case_paths=chosen, source=source, options=options, cache=cache,
                  skip_bad=skip_bad, in_channels=in_channels, num_classes=source.num_classes(options),
                  to_target=source.target)
    augment = split == "train" if augment is None else augment
    if source.kind != "volumes":
        dataset = SliceDataset(
            **common, image_size=options["image_size"], augment=preset.augment_2d if augment else None,
            mean=preset.mean, std=preset.std, from_volumes=source.kind == "slices")
    else:
        settings_3d = preset.augment_3d
        crop_size = options["crop_size"] or default_crop or settings_3d.crop_size
        crop_size = (crop_size,) * 3 if isinstance(crop_size, int) else tuple(int(v) for v in crop_size)
        foreground_prob = options["foreground_prob"]
        settings_3d = dataclasses.replace(
            settings_3d, crop_size=crop_size,
            foreground_prob=settings_3d.foreground_prob if foreground_prob is None else float(foreground_prob))
        random_crop = split == "train" if options["random_crop"] is None else bool(options["random_crop"])
        crops_per_case = options["crops_per_case"]
        if not isinstance(crops_per_case, int) or isinstance(crops_per_case, bool) or crops_per_case < 1:
            raise ValueError(f"crops_per_case must be an integer >= 1, got {crops_per_case!r}")
        if crops_per_case > 1 and not random_crop:
            raise ValueError(f"crops_per_case={crops_per_case} needs random crops; the {split} split serves "
                             "whole volumes (set random_crop=True)")
        # BraTS names its target; sources with their own `target` rule need none
        dataset = VolumeDataset(**common, target=options.get("target", "labels"), augment=settings_3d,
                                crop=random_crop, random_augment=augment, crops_per_case=crops_per_case)
    dataset.splits = splits
    dataset.root = root
    dataset.seed = seed
    dataset.fingerprint = fingerprint  # of the training cases (data sets with a plan), else None
    dataset.class_names, dataset.target_kind = _class_facts(source, options)
    dataset.planar = _planar(source)
    return dataset


def default_splits(name: str, root: str | os.PathLike | None = None, seed: int = 0,
                   val_fraction: float | None = None, **dataset_options) -> dict:
    """The seeded splits `get_dataset` cuts when given no splits file, from the case ids alone
    (no case is read or prepared)."""
    preset = get_preset(name)
    options = _options(name, preset.options, dataset_options)
    root = sample_root(name) if root is None else Path(root).expanduser()
    source = source_for(name, root, options)
    return _seeded_splits(name, list(source.case_paths(root, options)), seed,
                          val_fraction)


def _seeded_splits(name: str, cases: list[str], seed: int, val_fraction: float | None) -> dict:
    preset = get_preset(name)
    return make_splits(cases, preset.test_fraction, preset.val_fraction if val_fraction is None else val_fraction,
                       seed, dataset=name)


@dataclass(frozen=True)
class DatasetFacts:
    """What a network trained on a data set must match, known without reading any case."""

    name: str
    spatial_dims: int
    in_channels: int
    num_classes: int  # output channels: 1 for a binary (sigmoid) task
    channels: tuple[str, ...]  # names of the input channels, in order
    class_names: tuple[str, ...] = ("foreground",)  # what the metrics report, per class
    target: str = "binary"  # "binary", "index" (softmax classes) or "regions" (sigmoid)
    planar: bool = False  # the cases are 2D image files (photographs, microscopy), not volumes
    # The size the data is served at unless a run sets its own (`DatasetPreset.sizes`): the 2D
    # side (None: planned from the training cases; 3D data: None), and the 3D crop of the sample
    # data (None: the training's own crop; 2D data: None).
    image_size: int | None = None
    crop_size: tuple[int, int, int] | None = None
    sample: bool = False  # the bundled sample data (no root, or a root `data.sample` wrote)


def dataset_facts(name: str, root: str | os.PathLike | None = None, **dataset_options) -> DatasetFacts:
    """Channels, classes and dimensionality of `name` with these options (no case is read;
    nnunet reads its dataset.json, the sample data's when root is None)."""
    preset = get_preset(name)
    options = _options(name, preset.options, dataset_options)
    sample = root is None or is_sample(Path(root).expanduser(), name)
    if root is None and name in ROOT_SOURCES:
        root = sample_root(name)
    source = source_for(name, Path(root).expanduser() if root is not None else None, options)
    channels = tuple(source.channels(options))
    side, crop = preset.sizes(sample)
    return DatasetFacts(name, source.spatial_dims, preset.in_channels or len(channels), source.num_classes(options),
                        channels, *_class_facts(source, options), _planar(source),
                        image_size=side if source.spatial_dims == 2 else None,
                        crop_size=crop if source.spatial_dims == 3 else None, sample=sample)


def _planar(source) -> bool:
    """Whether each case is one 2D image (photographs, microscopy) rather than a volume, sliced
    or whole: its scores are taken per image, a volume's per case (the metrics' two rules)."""
    return source.kind == "images"


def _class_facts(source, options: dict) -> tuple[tuple[str, ...], str]:
    """The classes the metrics report and the kind of target, both read off the label map."""
    if source.label_map is None:
        return ("foreground",), "binary"
    label_map = source.label_map(options)
    return metric_class_names(label_map), target_kind(label_map)


def _options(name: str, defaults: dict, given: dict) -> dict:
    unknown = sorted(set(given) - set(defaults))
    if unknown:
        valid = ", ".join(defaults) or "none"
        raise TypeError(f"get_dataset({name!r}) got unknown option(s) {', '.join(unknown)}; valid: {valid}")
    return {**defaults, **{key: value for key, value in given.items() if value is not None}}
