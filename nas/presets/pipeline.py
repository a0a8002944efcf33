"""What ``lwnas run`` does where a flag is not given: how many folds and search seeds, which
random draw is the cost-matched baseline, which hand-designed network it is compared with, and
how the chosen network is exported. Each stage's own settings are its command's presets."""
from __future__ import annotations

from dataclasses import dataclass
from types import MappingProxyType
from typing import Mapping

from .models import BASELINE_MODELS_2D


@dataclass(frozen=True)
class RunPreset:
    # nnU-Net's five folds: every case outside the search's validation cases is tested once
    folds: int = 5
    # one search; with several the genotype of the best validation DSC is retrained
    search_seeds: int = 1
    # the draw of ``lwnas random-genotype`` (seed 1, as the demo has always drawn it)
    random_seed: int = 1
    export_format: str = "onnx"


RUN_PRESET = RunPreset()

#: The hand-designed network each run compares the searched one with, by the data's spatial dims:
#: seed 002's plain U-Net in 2D, the plain 3D U-Net peer of seed 000's table in 3D.
RUN_BASELINES: Mapping[int, str] = MappingProxyType({2: BASELINE_MODELS_2D[0], 3: "unet3d"})
