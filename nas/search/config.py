"""The settings of one search: seed 002's preset for the dataset, with the flags a user set."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from nas.presets import merge, search_preset

#: Settings that must match for ``--resume`` to continue a run (the rest may change).
RESUME_KEYS = ("dataset", "space", "layout", "channels", "image_size", "partial_channels",
               "edge_normalization", "alpha_sharing", "order", "seed", "batch_size", "fused")


@dataclass
class SearchConfig:
    dataset: str
    layout: str
    epochs: int
    lambda_params: float
    lambda_flops: float
    weight_lr: float
    weight_lr_min: float
    weight_momentum: float
    weight_weight_decay: float
    arch_lr: float
    arch_weight_decay: float
    batch_size: int
    drop_path: float
    channels: int
    grad_clip: float
    image_size: int
    loss: str
    space: str = "unet"
    order: int = 1
    partial_channels: int = 1
    edge_normalization: bool = False
    alpha_sharing: str = "type"
    max_parameter_free: int | None = None
    early_stop_skip: int | None = None
    warmup_epochs: int = 0
    shrink_below: float | None = None
    seed: int = 0
    precision: str = "auto"
    fused: bool = True
    channels_last: bool = False
    compile: bool = False
    deterministic: bool = False
    num_workers: int | None = None
    progress: bool = True

    @classmethod
    def from_preset(cls, dataset: str, **overrides: Any) -> "SearchConfig":
        """Seed 002's settings for ``dataset``, with every override that is not None."""
        values = merge(search_preset(dataset), overrides)
        values["dataset"] = dataset
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = set(values) - names
        if unknown:
            raise ValueError(f"unknown search setting(s): {', '.join(sorted(unknown))}")
        return cls(**values)


