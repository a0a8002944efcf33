"""What ``lwnas run`` knows of its training stages before they run: their settings checked (a bad
``--retrain-*`` flag is refused before the search, not hours later) and their epochs, and from the
epochs measured so far the time the rest will take."""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Sequence

import pandas as pd
import torch

import models
from nas.presets import RETRAIN_PRESETS, SEARCH_PRESETS, merge, retrain_preset, search_preset, training_values
from nas.train import RetrainConfig
from nas.train.settings import flag

from .data_setup import check_loss_fits, data_settings
from .pipeline_stages import Pipeline

_RETRAIN_FIELDS = {field.name for field in dataclasses.fields(RetrainConfig)}
#: retraining settings of 3D networks only (the crop, its windows, BraTS post-processing, the
#: 3D baseline's constructor)
VOLUME_ONLY = ("crop_size", "overlap", "et_threshold", "model_kwargs")


def planned_epochs(p: Pipeline) -> dict[str, int]:
    """The epochs of one search and of one fold's retraining, from the flags given and the
    presets the commands start from; the retraining's settings are checked as its command will
    check them."""
    search = p.search.get("epochs") or search_preset(
        data_settings(p.dataset, p.data_root, {}, SEARCH_PRESETS, p.data_options)[1]).epochs
    if p.spatial_dims == 2:
        volume_only = [key for key in VOLUME_ONLY if p.retrain.get(key) is not None]
        if volume_only:
            raise ValueError(f"{', '.join(flag('retrain_' + key) for key in volume_only)}: applies to "
                             f"3D data sets; {p.dataset} is 2D")
    overrides = {key: value for key, value in p.retrain.items() if key in _RETRAIN_FIELDS}
    facts, preset = data_settings(p.dataset, p.data_root, overrides, RETRAIN_PRESETS, p.data_options)
    if p.spatial_dims == 2:
        values = {"image_size": None, **merge(retrain_preset(preset), overrides)}
    else:
        values = {**training_values(p.baseline, overrides, sample=facts.sample),
                  "image_size": None, "drop_path": 0.0}
    try:
        config = RetrainConfig(**{"dataset": p.dataset, "seed": p.seed, **values})
        check_loss_fits(config.loss, facts.target)
    except ValueError as error:
        raise ValueError(f"retrain settings: {error}") from None
    if p.retrain.get("model_kwargs"):
        try:
            with torch.device("meta"):  # the baseline's constructor takes them: no memory, no time
                models.build(p.baseline, in_channels=facts.in_channels, **p.retrain["model_kwargs"])
        except (TypeError, ValueError) as error:
            raise ValueError(f"--retrain-model-option: {p.baseline}: {error}") from None
    return {"search": int(search), "retrain": int(config.epochs)}


def _logs(p: Pipeline, stage: str) -> list[Path]:
    return sorted(p.folder(stage).rglob("log.csv")) if p.folder(stage).is_dir() else []


def _epochs_done(logs: list[Path]) -> tuple[int, float]:
    """Epochs written to ``logs`` and their seconds."""
    count, seconds = 0, 0.0
    for log in logs:
        try:
            frame = pd.read_csv(log)
        except (OSError, ValueError):  # being written, or empty
            continue
        if "seconds" in frame:
            count, seconds = count + len(frame), seconds + float(frame["seconds"].sum())
    return count, seconds


def remaining_seconds(p: Pipeline, pending: Sequence[str]) -> float | None:
    """Seconds the epochs of the ``pending`` stages still take, each kind of epoch (search,
    retraining) at its own rate measured so far, or the other kind's while it has none; None
    before any epoch was measured."""
    epochs = p.epochs
    total = {"search": epochs["search"] * len(p.search_seeds), "retrain": epochs["retrain"] * p.folds * 3}
    measured = {stage: _epochs_done(_logs(p, stage)) for stage in total}
    rates = {stage: seconds / count for stage, (count, seconds) in measured.items() if count}
    if not rates:
        return None
    remaining = 0.0
    for stage in total:
        if stage in pending:
            rate = rates.get(stage, next(iter(rates.values())))
            remaining += max(total[stage] - measured[stage][0], 0) * rate
    return remaining


__all__ = ["planned_epochs", "remaining_seconds"]
