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
    # PC-DARTS: 1/K of each edge's channels through its ops (1: all of them)
    partial_channels: int = 1


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
    # The 3D search (BraTS, and every data set searched as volumes), seed 002's recipe carried to
    # volumes by one rule: what seed 002 fixes for all its data sets stays (batch 2, weight lr
    # 0.005 SGD cosine, arch lr 6e-4 Adam raised by the arch-travel rule, drop-path 0.3): the
    # batch is the seed's batch of 2 and the learning rates are per step, as in every seed
    # search; what it fixes per data set comes from the seed data set closest to BraTS (MR
    # volumes: PROMISE12, ``closest_seed_dataset``'s rule): 30 epochs, lambda1 0.02, lambda2
    # 0.01. The macro is the one 3D change: 8 channels doubling per level on 2/2/2 cells
    # (PROMISE12's 3/2/3 at 16 channels costs 3D networks of ~100 GFLOPs at 128^3; at 8 / 2/2/2
    # random genotypes cost 0.04-0.09M params and 10-21 GMACs, mean 14.6, against MFS-Net's
    # 3.19M / 20.02 G), and a budget (``VOLUME_SEARCH_PRESETS``) keeps the derived network
    # under MFS-Net's cost; crops and targets there too. Memory: PC-DARTS' partial channels
    # K=2 with the fused cells, so that a step at 2 x 4 x 64^3 fits 24 GiB of CPU memory with
    # room (BENCHMARKS.md, "search_step 3D": fused + K=2 measured at 64^3; all of each edge's
    # channels, K=1, needs about 23 GiB there, per-edge cells about 29 GiB, scaled from 48^3).
    "brats": SearchPreset(layout="2/2/2", epochs=30, lambda_params=0.02, lambda_flops=0.01,
                          channels=8, partial_channels=2),
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
#: The 2D genotypes' retrain settings (3D genotypes train as the 3D networks do:
#: ``nas.presets.GENOTYPE_PRESETS_3D``).
RETRAIN_PRESETS: dict[str, RetrainPreset] = {
    name: RetrainPreset() for name in ("dsb2018", "chaos", "promise12")
}

#: Seed 002's reported results of its searched networks (SPEC section 1): test DSC and MIoU
#: (as fractions), params (M) and GFLOPs at 256x256, for the comparison picture.
SEED_RESULTS: dict[str, dict[str, float]] = {
    "dsb2018": {"dsc": 0.9211, "miou": 0.8575, "params_M": 0.57, "flops_G": 15.76},
    "chaos": {"dsc": 0.9786, "miou": 0.9317, "params_M": 0.56, "flops_G": 15.03},
    "promise12": {"dsc": 0.7271, "miou": 0.6688, "params_M": 0.61, "flops_G": 15.98},
}

@dataclass(frozen=True)
class VolumeSearchPreset:
    """What a 3D search adds to its :class:`SearchPreset`: the random crops it trains and steps
    the architecture on, the target it trains (a data set option, where the data set has one),
    and the budget of the derived network (``--budget-params``, ``--budget-flops``)."""

    # Random crops of every training and validation case; the sample data's own smaller crop
    # (``data.get_preset(name).sample_crop_size``, 32^3 for BraTS) replaces it there. 64^3: the
    # largest power-of-two cube whose search step (2 x 4 x 64^3, 8 channels, 2/2/2, fused)
    # fits 24 GiB of CPU memory (bench.search_step --spatial-dims 3, BENCHMARKS.md), 1/8 of the
    # hand-designed networks' 128^3 training crop.
    crop_size: tuple[int, int, int] = (64, 64, 64)
    # The ``target`` option of data sets that have one (BraTS): WT/TC/ET as sigmoid channels,
    # the regions every BraTS score is of ("index": a softmax over 0/1/2/4, as MFS-Net's).
    target: str | None = "regions"
    # The derived network is to be no heavier than this registered 3D network: its params are
    # the params budget, its conv MACs at ``budget_size`` scaled to the crop by the voxel count
    # (their convolutions scale with it on sizes divisible by 2^levels; only the SK attention
    # MLPs do not: 1e-5 of the total at 32^3, 2e-6 at 64^3) the FLOPs budget.
    budget_like: str | None = "mfsnet"
    budget_size: tuple[int, int, int] = (128, 128, 128)

    def budget_flops_g(self, model_flops_g: float, crop: Sequence[int]) -> float:
        """The FLOPs budget at ``crop`` of a network costing ``model_flops_g`` at budget_size."""
        scale = 1.0
        for crop_side, size in zip(crop, self.budget_size):
            scale *= crop_side / size
        return model_flops_g * scale


#: Per 3D search preset (``SEARCH_PRESETS`` key).
VOLUME_SEARCH_PRESETS: dict[str, VolumeSearchPreset] = {"brats": VolumeSearchPreset()}

#: The loss of each kind of target when --loss is not given: seed 002's BCE + Dice for its binary
#: masks (and for sigmoid regions), nnU-Net's CE + Dice for a softmax over several classes.
LOSS_FOR_TARGET: dict[str, str] = {"binary": "bce_dice", "index": "ce_dice", "regions": "bce_dice"}
#: The output activation of a network trained on each kind of target: one sigmoid per channel
#: (a binary mask, or overlapping regions) or a softmax over the classes.
ACTIVATION_FOR_TARGET: dict[str, str] = {"binary": "sigmoid", "index": "softmax",
                                         "regions": "sigmoid"}


def closest_seed_dataset(channels: Sequence[str], planar: bool, spatial_dims: int = 2) -> str:
    """Whose preset (layout, lambdas, learning rates) a data set of the user's starts from:
    2D image files (photographs, microscopy) are DSB2018's kind; volumes with a CT channel
    CHAOS's (abdominal CT); other volumes (MR and the rest) PROMISE12's (prostate MR); volumes
    searched in 3D (``spatial_dims=3``) BraTS's, the one 3D search preset."""
    if spatial_dims == 3:
        return "brats"
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
