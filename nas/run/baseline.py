"""``retrain.py --model unet2d --dataset NAME``: train a 2D baseline (the plain U-Net of seed
002's comparison, ``models.plain_unet``) exactly as a genotype network is retrained: the data
set's retrain preset (``nas.presets.RETRAIN_PRESETS``), the same splits (``--splits`` a search's
``splits.json``, else the data set's seeded default), loaders, loss, loop, evaluation and
``metrics.json`` form, so "searched network vs U-Net" is one command each and the two differ in
the network only.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from nas.presets import BASELINE_MODELS_2D, RETRAIN_PRESETS, merge, retrain_preset
from nas.search import network_complexity
from nas.train import RetrainConfig, init_distributed
from nas.train.stopping import stop_on_signals

from .data_setup import check_val_fraction, data_settings
from .image_training import TrainedNetwork, image_runs
from .networks import BASELINE_BUILDERS, model_network
from .tensorboard import check_tensorboard


@stop_on_signals()  # SIGTERM: a checkpoint at the next step, then StopRequested
def retrain_baseline(model_name: str, dataset: str | None, data_root: str | Path | None = None,
                     out: str | Path | None = None, *, device: str = "auto", resume: bool = False,
                     seed: int = 0, splits_file: str | Path | None = None, val_fraction: float | None = None,
                     skip_bad: bool = False, progress: bool = True, tensorboard: bool = False,
                     data_options: dict[str, Any] | None = None, folds: int | None = None,
                     fold: int | None = None, **overrides: Any) -> dict[str, Any]:
    """Train the 2D baseline ``model_name`` from scratch on ``dataset`` and write ``metrics.json``
    (test DSC/MIoU of the best checkpoint, params, FLOPs, input shape, ``model``) beside a
    self-describing ``best.pt``. ``overrides``: ``RetrainConfig`` fields (None = preset).

    ``folds`` K: K networks on a case-level K-fold split into ``out/fold_i/`` and the
    cross-validated scores at ``out`` (``nas.run.folds``); ``fold``: that fold only. With a
    ``splits_file`` holding folds (a searched network's folds run) it trains on those folds."""
    # every setting is checked before any data is read or anything is written
    context = init_distributed(device)
    check_val_fraction(val_fraction)
    check_tensorboard(tensorboard)
    if model_name not in BASELINE_MODELS_2D:
        raise ValueError(f"--model {model_name}: not a 2D baseline; valid: {', '.join(BASELINE_MODELS_2D)}")
    if not dataset:
        raise ValueError(f"--model {model_name} needs --dataset (a 2D data set, e.g. "
                         f"{', '.join(sorted(RETRAIN_PRESETS))} or nnunet)")
    data_options = dict(data_options or {})
    facts, preset = data_settings(dataset, data_root, overrides, RETRAIN_PRESETS, data_options)
    if facts.spatial_dims != 2:
        raise ValueError(f"--model {model_name} is a 2D network; dataset {dataset!r} is {facts.spatial_dims}D "
                         "(train a 3D network on it, e.g. --model unet3d)")
    if overrides.pop("drop_path", None) is not None:
        raise ValueError(f"--drop-path does not apply to --model {model_name}: drop-path applies to genotype "
                         "networks only")
    # the data set's size unless --image-size; None: planned from the training cases
    values = {**merge(retrain_preset(preset), {**overrides, "image_size": overrides.get("image_size")
                                                or facts.image_size}), "drop_path": 0.0}
    config = RetrainConfig(dataset=dataset, seed=seed, progress=progress, model=model_name, **values)
    build = BASELINE_BUILDERS[model_name]
    kwargs = {"spatial_dims": 2}
    shape = dict(in_channels=facts.in_channels, num_classes=facts.num_classes, **kwargs)

    def complexity(side: int) -> dict:
        with torch.device("meta"):  # counts without memory or time
            counted = build(**shape)
        return network_complexity(counted, [facts.in_channels, side, side])

    network = TrainedNetwork(
        run_kind=f"retrain-{model_name}", identity={"model": model_name}, spatial_dims=2,
        in_channels=facts.in_channels, build=lambda config: build(**shape), complexity=complexity,
        spec_network=model_network(model_name, kwargs, facts.in_channels, facts.num_classes))
    return image_runs(network, config, dataset, data_root, out, context, resume=resume, seed=seed,
                      splits_file=splits_file, val_fraction=val_fraction, skip_bad=skip_bad, tensorboard=tensorboard,
                      data_options=data_options, folds=folds, fold=fold)


__all__ = ["retrain_baseline"]
