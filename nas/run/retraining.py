"""``retrain.py --genotype`` / ``lwnas retrain --genotype``: train a searched network from
scratch on the search's splits and score it on the test split."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Sequence

import data
from nas.presets import RETRAIN_PRESETS, merge, retrain_preset
from nas.search import load_genotype_file, network_complexity
from nas.train import RetrainConfig, init_distributed
from nas.train.distributed import DistributedContext
from nas.train.stopping import stop_on_signals
from supernet import Genotype, from_genotype

from .data_setup import check_loss_fits, check_val_fraction, data_settings
from .image_training import TrainedNetwork, image_runs
from .networks import genotype_network, genotype_target, searched_network
from .tensorboard import check_tensorboard
from .volume_training import volume_runs


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
                     splits_file: str | Path | None = None, val_fraction: float | None = None,
                     skip_bad: bool = False, progress: bool = True, tensorboard: bool = False,
                     data_options: dict[str, Any] | None = None,
                     crop_size: int | Sequence[int] | None = None, overlap: float | None = None,
                     et_threshold: int = data.ET_THRESHOLD, folds: int | None = None,
                     fold: int | None = None, **overrides: Any) -> dict[str, Any]:
    """Train the network of a genotype file from scratch with seed 002's retrain settings and
    write ``metrics.json`` (test DSC/MIoU with the best checkpoint, params, FLOPs); ``best.pt``
    describes itself (``nas.run.networks``). ``tensorboard``: log epochs to RUN/tensorboard/.

    ``folds`` K: K networks on a case-level K-fold split of the search's cases into
    ``out/fold_i/`` and the cross-validated scores at ``out`` (``nas.run.folds``); ``fold``: that
    fold only. A ``splits_file`` with folds, or ``resume`` of a folds run, is a folds run too.

    A 3D genotype trains as the hand-designed 3D networks do, through the same flow
    (``nas.run.volume_training``: random crops of ``crop_size``, whole-volume validation with
    ``overlap``, ``best.pt`` by the mean Dice, the test split segmented whole;
    ``nas.presets.GENOTYPE_PRESETS_3D``): BraTS scored by its regions with ``et_threshold``
    post-processing of the test segmentations, other volumes by the per-class Dice."""
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
    splits_file = splits_file or _genotype_splits(genotype_path, metadata)
    if arch.spatial_dims == 3:
        return _retrain_volumes(arch, metadata, genotype_path, dataset, data_root, out,
                                context=context, resume=resume, seed=seed,
                                splits_file=splits_file, val_fraction=val_fraction,
                                skip_bad=skip_bad, progress=progress, data_options=data_options,
                                crop_size=crop_size, overlap=overlap, tensorboard=tensorboard,
                                et_threshold=et_threshold, overrides=overrides, folds=folds, fold=fold)
    if crop_size is not None:
        raise ValueError(f"--crop-size applies to 3D networks; {genotype_path} is a 2D genotype "
                         "(its size is --image-size)")
    facts, preset = data_settings(dataset, data_root, overrides, RETRAIN_PRESETS, data_options)
    check_genotype_fits(arch, genotype_path, facts)
    # retrain at the size the search ran at (the genotype's costs were measured there); None:
    # the size planned from the training cases
    size = overrides.get("image_size") or _searched_size(metadata, genotype_path) or facts.image_size
    values = merge(retrain_preset(preset), {**overrides, "image_size": size})
    config = RetrainConfig(dataset=dataset, seed=seed, progress=progress, model="genotype",
                           **values)
    network = TrainedNetwork(
        run_kind="retrain", identity={"genotype": str(genotype_path)}, spatial_dims=arch.spatial_dims,
        build=lambda config: from_genotype(arch, drop_path_rate=config.drop_path),
        complexity=lambda size: network_complexity(arch, (arch.in_channels,) + (size,) * arch.spatial_dims),
        spec_network=genotype_network(arch), in_channels=arch.in_channels,
        checkpoint_metadata={"genotype": json.dumps(metadata)})
    return image_runs(network, config, dataset, data_root, out, context, resume=resume, seed=seed,
                      splits_file=splits_file, val_fraction=val_fraction, skip_bad=skip_bad, tensorboard=tensorboard,
                      data_options=data_options, folds=folds, fold=fold)


def _retrain_volumes(arch: Genotype, metadata: dict, genotype_path: Path, dataset: str,
                     data_root: str | Path | None, out: str | Path | None, *,
                     context: DistributedContext, splits_file: str | Path | None,
                     data_options: dict[str, Any], overrides: dict[str, Any],
                     **settings: Any) -> dict[str, Any]:
    """A 3D genotype's training (see :func:`retrain_genotype`), checked against the data first."""
    target = genotype_target(arch, metadata)
    options = dict(data_options)
    if "target" in data.get_preset(dataset).options:  # BraTS: the target its search trained
        options["target"] = target
    check_genotype_fits(arch, genotype_path, data.dataset_facts(dataset, data_root, **options))
    preset = searched_network("genotype", genotype_path).preset
    check_loss_fits(overrides.get("loss") or preset.loss, target)
    return volume_runs("genotype", dataset, data_root, out, context=context, splits_file=splits_file,
                       model_kwargs=None, data_options=options, genotype=genotype_path, **settings, **overrides)
