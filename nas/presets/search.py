"""Per-dataset search and retrain settings of seed 002 (SPEC section 1), as data.

The 2D image size of the sample data is the data set's fact (``data.get_preset(name)``).

Command lines start from a preset and override only the flags the user set (None = unset),
the timm ``create_model`` convention.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Mapping, Sequence


@dataclass(frozen=True)
class SearchPreset:
    layout: str
    epochs: int
    lambda_params: float
    lambda_flops: float
    weight_lr: float = 0.005
    weight_lr_min: float = 0.0
    weight_momentum: float = 0.9
    weight_weight_decay: float = 3e-4
    arch_lr: float = 6e-4
    # Adam moves an alpha by at most about its lr per step, so lr x architecture steps bounds
    # how far the search can move from the uniform start. Seed 002's smallest search (DSB2018:
    # ~352 training images / batch 2 x 25 epochs ~ 4,400 steps at 6e-4) travels 2.6, as DARTS'
    # CIFAR search does (3e-4 x ~9,750). On fewer steps (sample data, small data sets) the lr is
    # raised so that lr x steps reaches this travel; 0 keeps --arch-lr as it is.
    arch_travel: float = 2.6
    arch_weight_decay: float = 1e-3
    batch_size: int = 2
    drop_path: float = 0.3
    channels: int = 16
    # cell widths per level: channels * width_growth ** level (see MACROS)
    width_growth: float = 2.0
    grad_clip: float = 5.0
    loss: str = "bce_dice"


@dataclass(frozen=True)
class RetrainPreset:
    epochs: int = 30
    lr: float = 0.006
    batch_size: int = 4
    weight_decay: float = 2e-4
    drop_path: float = 0.15
    optimizer: str = "adam"
    scheduler: str = "cosine"
    loss: str = "bce_dice"


#: Seed 002's settings; "all" rows of its text apply to every dataset.
SEARCH_PRESETS: dict[str, SearchPreset] = {
    "dsb2018": SearchPreset(layout="2/3/2", epochs=25, lambda_params=0.015, lambda_flops=0.005),
    "chaos": SearchPreset(layout="3/3/3", epochs=35, lambda_params=0.025, lambda_flops=0.015,
                          weight_lr=0.008),
    "promise12": SearchPreset(layout="3/2/3", epochs=30, lambda_params=0.02, lambda_flops=0.01),
}
#: Macro settings a search can start from (``--macro NAME``), applied before the flags.
#: "default": seed 002's 16 channels doubling per level (the U-Net rule; the seed gives no
#: width rule). "seed": where derived networks land at seed 002's reported cost point (0.56-0.61M
#: params, 15.0-16.0 GFLOPs at 256x256, about 78% of its U-Net's FLOPs): found by profiling
#: random genotypes of layout 2/3/2 over a grid of widths and growths (README, "Cost point").
MACROS: dict[str, dict[str, Any]] = {
    "default": {"channels": 16, "width_growth": 2.0},
    "seed": {"channels": 96, "width_growth": 0.75},
}
RETRAIN_PRESETS: dict[str, RetrainPreset] = {
    name: RetrainPreset() for name in SEARCH_PRESETS
}

#: Seed 002's reported results of its searched networks (SPEC section 1): test DSC and MIoU
#: (as fractions), params (M) and GFLOPs at 256x256, for the comparison picture.
SEED_RESULTS: dict[str, dict[str, float]] = {
    "dsb2018": {"dsc": 0.9211, "miou": 0.8575, "params_M": 0.57, "flops_G": 15.76},
    "chaos": {"dsc": 0.9786, "miou": 0.9317, "params_M": 0.56, "flops_G": 15.03},
    "promise12": {"dsc": 0.7271, "miou": 0.6688, "params_M": 0.61, "flops_G": 15.98},
}

#: The loss of each kind of target when --loss is not given: seed 002's BCE + Dice for its binary
#: masks (and for sigmoid regions), nnU-Net's CE + Dice for a softmax over several classes.
LOSS_FOR_TARGET: dict[str, str] = {"binary": "bce_dice", "index": "ce_dice", "regions": "bce_dice"}


def closest_seed_dataset(channels: Sequence[str], planar: bool) -> str:
    """Whose preset (layout, lambdas, learning rates) a data set of the user's starts from:
    2D image files (photographs, microscopy) are DSB2018's kind; volumes with a CT channel
    CHAOS's (abdominal CT); other volumes (MR and the rest) PROMISE12's (prostate MR)."""
    if planar:
        return "dsb2018"
    if any(name.strip().lower() == "ct" for name in channels):
        return "chaos"
    return "promise12"


def search_preset(dataset: str) -> SearchPreset:
    if dataset not in SEARCH_PRESETS:
        raise ValueError(f"no search preset for dataset {dataset!r}; the search runs on "
                         f"{', '.join(SEARCH_PRESETS)}")
    return SEARCH_PRESETS[dataset]


def retrain_preset(dataset: str) -> RetrainPreset:
    if dataset not in RETRAIN_PRESETS:
        raise ValueError(f"no retrain preset for dataset {dataset!r}; valid: "
                         f"{', '.join(RETRAIN_PRESETS)}")
    return RETRAIN_PRESETS[dataset]


def merge(preset: Any, overrides: Mapping[str, Any]) -> dict[str, Any]:
    """The preset's fields with every override that is not None applied."""
    values = dataclasses.asdict(preset)
    values.update({k: v for k, v in overrides.items() if v is not None})
    return values
