"""``retrain.py --model`` / ``lwnas retrain --model``: train a hand-designed 3D network on BraTS
with its seed's settings (``nas.presets``), validate on whole volumes, keep the best checkpoint
and score it on the test split (the 3D training flow, ``nas.run.volume_training``)."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping, Sequence

import data
from nas.train import init_distributed
from nas.train.run_dir import holding_run_directory
from nas.train.stopping import stop_on_signals

from .data_setup import check_val_fraction
from .tensorboard import check_tensorboard
from .volume_training import volume_runs


@stop_on_signals()  # SIGTERM: a checkpoint at the next step, then StopRequested
@holding_run_directory()  # RUN/.lock until the command returns
def retrain_model(model_name: str, dataset: str = "brats", data_root: str | Path | None = None,
                  out: str | Path | None = None, *, device: str = "auto", resume: bool = False,
                  seed: int = 0, splits_file: str | Path | None = None,
                  val_fraction: float | None = None, skip_bad: bool = False, progress: bool = True,
                  crop_size: int | Sequence[int] | None = None,
                  model_kwargs: Mapping[str, Any] | None = None, overlap: float | None = None,
                  data_options: Mapping[str, Any] | None = None,
                  et_threshold: int = data.ET_THRESHOLD, tensorboard: bool = False,
                  folds: int | None = None, fold: int | None = None,
                  **overrides: Any) -> dict[str, Any]:
    """Train the registered 3D network ``model_name`` from scratch on ``dataset`` (BraTS); a 3D
    genotype's network trains through ``nas.run.retrain_genotype``.

    Settings: ``nas.presets`` (the seed's), then ``overrides`` (``RetrainConfig`` fields:
    epochs, lr, batch_size, weight_decay, loss, precision, ...; None = preset). ``crop_size``:
    the training crop, also the sliding window of validation and prediction (default: the
    preset's; 32^3 on the sample data), windows overlapping by ``overlap`` (None:
    ``nas.presets.WINDOW_OVERLAP``). ``model_kwargs`` go to the network's constructor.

    Writes ``splits.json``, ``log.csv`` (with ``val_dice_wt/tc/et/mean`` per epoch),
    ``best.pt`` (best ``val_dice_mean``), ``checkpoint.pt`` (exact resume), and, for the best
    checkpoint on the test split with ``et_threshold`` post-processing, ``test_cases.csv``,
    ``test_summary.csv`` and ``metrics.json`` (Dice and HD95 per region). The checkpoints
    describe themselves (``spec``), so ``lwnas predict`` rebuilds the network from them alone.

    ``folds`` K: K networks on a case-level K-fold split into ``out/fold_i/`` and the
    cross-validated scores at ``out`` (``nas.run.folds``); ``fold``: that fold only. A
    ``splits_file`` with folds (another network's folds run), or ``resume`` of a folds run, is a
    folds run too.
    """
    # every setting is checked before any data is read or anything is written
    context = init_distributed(device)
    check_val_fraction(val_fraction)
    check_tensorboard(tensorboard)
    return volume_runs(model_name, dataset, data_root, out, context=context, resume=resume, seed=seed,
                       splits_file=splits_file, val_fraction=val_fraction, skip_bad=skip_bad,
                       progress=progress, crop_size=crop_size, model_kwargs=model_kwargs,
                       overlap=overlap, data_options=data_options, et_threshold=et_threshold,
                       tensorboard=tensorboard, genotype=None, folds=folds, fold=fold,
                       **overrides)


__all__ = ["retrain_model"]
