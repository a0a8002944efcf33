"""Training settings of each hand-designed 3D BraTS network (SPEC section 2), as data.

``retrain.py --model NAME`` starts from ``MODEL_PRESETS[NAME]`` and overrides only the flags
the user set (None = unset). Every value says where it comes from; where the seeds are silent
the choice is marked as ours.

Sources: seed 000 (MFS-Net) and its public code
(``easthorse/brain-tumor-segmentation-based-on-group-convolution``,
``experiments/MFNet_mixLoss.yaml``, ``train_all.py``); DMFNet's public code
(``China-LiuXiaopeng/BraTS-DMFNet``, ``experiments/{DMFNet,MFNet}_GDL_all.yaml``,
``train_all.py``); seed 001 (Myronenko, section 3.5-3.6); seed 004 (MF-RES2Net, section 3.1).
Both public codes anneal the learning rate per epoch as ``lr0 * (1 - epoch / epochs) ** 0.9``
(their ``adjust_learning_rate``), which is our ``scheduler="poly"``; they use Adam with
``amsgrad=True``, which our optimiser factory does not offer (plain Adam here).
"""
from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Mapping

Crop = tuple[int, int, int]


@dataclass(frozen=True)
class ModelPreset:
    """What a seed trains one network with; ``RetrainConfig`` fields plus the crop and the
    constructor arguments."""

    loss: str
    epochs: int
    batch_size: int
    lr: float = 1e-3
    weight_decay: float = 1e-5
    optimizer: str = "adam"
    scheduler: str = "poly"
    crop_size: Crop = (128, 128, 128)
    loss_options: Mapping[str, Any] = field(default_factory=dict)
    #: constructor keyword arguments on top of the network's defaults
    model_kwargs: Mapping[str, Any] = field(default_factory=dict)
    #: constructor argument that must equal the training crop (vae_unet's dense VAE layers
    #: are sized for it); set from the crop actually used, so sample data's small crops work
    crop_argument: str | None = None


MODEL_PRESETS: Mapping[str, ModelPreset] = MappingProxyType({
    # Seed 000: 128^3 crops, Adam lr0 1e-3, the weighted mixed Dice/Jaccard loss, "400 epochs
    # until convergence". Batch 8 and weight decay 1e-5 from its public config (which says
    # 500 epochs; the paper's 400 is kept).
    "mfsnet": ModelPreset(loss="mixed_dice_jaccard", epochs=400, batch_size=8),
    # DMFNet / MFNet public configs: Adam 1e-3, wd 1e-5, generalised Dice ("GDL"), batch 8,
    # 500 epochs, 128^3 crops.
    "dmfnet": ModelPreset(loss="generalised_dice", epochs=500, batch_size=8),
    "mfnet": ModelPreset(loss="generalised_dice", epochs=500, batch_size=8),
    # Seed 004: 128^3 crops, Adam lr0 1e-3, L2 1e-5, weighted Tversky. It gives no batch size,
    # epochs or schedule: ours are seed 000's (same lab, same 4 x 2080Ti set-up).
    "mf_res2net": ModelPreset(loss="tversky_weighted", epochs=400, batch_size=8),
    # Seed 001: Adam 1e-4 with poly 0.9, L2 1e-5, crop 160x192x128, batch 1, 300 epochs,
    # L = Dice + 0.1 L2 + 0.1 KL.
    "vae_unet": ModelPreset(loss="vae", epochs=300, batch_size=1, lr=1e-4,
                            crop_size=(160, 192, 128), crop_argument="input_size"),
    # The plain 3D U-Net peer of seed 000's table; no seed trains it. Ours: Dice (foreground
    # classes), seed 000's optimiser and epochs, batch 2 at 128^3 as Isensee et al. 2018 (the
    # U-Net entry seed 001 cites): 16M parameters leave room for no more on an 11 GB card.
    "unet3d": ModelPreset(loss="dice", epochs=400, batch_size=2),
})

#: A searched 3D network (``retrain.py --genotype`` of a 3D search) trains as the hand-designed
#: ones do: seed 000's recipe (MFS-Net, the network it is compared with: 128^3 crops, Adam 1e-3,
#: wd 1e-5, poly, batch 8, 400 epochs), with the loss of the preset network whose output it
#: shares: a softmax over classes MFS-Net's weighted Dice/Jaccard, sigmoid channels (regions,
#: or one binary mask) the soft Dice per channel of Myronenko's sigmoid WT/TC/ET network (its
#: ``vae`` loss without the VAE terms). Keyed by the target its search trained on (its
#: genotype file's ``data.target``); drop-path is seed 002's retrain rate (``RetrainPreset``).
GENOTYPE_PRESETS_3D: Mapping[str, ModelPreset] = MappingProxyType({
    "index": ModelPreset(loss="mixed_dice_jaccard", epochs=400, batch_size=8),
    "regions": ModelPreset(loss="dice_sigmoid", epochs=400, batch_size=8),
    "binary": ModelPreset(loss="dice_sigmoid", epochs=400, batch_size=8),
})

#: The label form each output activation trains on (``data.get_dataset(target=...)``):
#: softmax networks on class indices 0..3 (3 = BraTS label 4), sigmoid ones on WT/TC/ET masks.
TRAINING_TARGETS: Mapping[str, str] = MappingProxyType({"softmax": "index",
                                                        "sigmoid": "regions"})

#: 2D baselines (``retrain.py --model NAME --dataset DATASET``): trained on a 2D data set's splits
#: with the same retrain preset as genotype networks (``RETRAIN_PRESETS``), so a searched network
#: and its baseline differ in the network only. ``unet2d``: ``models.plain_unet``, the U-Net of
#: seed 002's comparison (the complexity reports' baseline too).
BASELINE_MODELS_2D = ("unet2d",)

#: On the bundled sample data (two training cases) the batch holds both of them.
SAMPLE_BATCH_SIZE = 2

#: Overlap of the Gaussian-weighted sliding windows that segment a whole volume (the validation
#: and test of 3D runs, ``lwnas predict``): half a window, so every voxel away from the border is
#: seen by 2^3 windows (ours; MONAI's default is 0.25, nnU-Net's step 0.5 is this overlap).
WINDOW_OVERLAP = 0.5

#: ``RetrainConfig`` fields a preset sets.
TRAINING_FIELDS = ("epochs", "lr", "batch_size", "weight_decay", "optimizer", "scheduler", "loss",
                   "loss_options")


def model_preset(name: str) -> ModelPreset:
    """The preset of a registered network; unknown names fail with close matches."""
    if name not in MODEL_PRESETS:
        close = difflib.get_close_matches(str(name), list(MODEL_PRESETS), n=3)
        hint = f" Did you mean {', '.join(close)}?" if close else ""
        raise ValueError(f"no training preset for model {name!r}.{hint} "
                         f"Valid: {', '.join(sorted(MODEL_PRESETS))}")
    return MODEL_PRESETS[name]


def training_values(name: str, overrides: Mapping[str, Any], sample: bool = False,
                    preset: ModelPreset | None = None) -> dict[str, Any]:
    """The preset's (``name``'s, or ``preset`` itself) ``RetrainConfig`` fields with every
    override that is not None applied (sample data: batch :data:`SAMPLE_BATCH_SIZE` unless set)."""
    preset = preset or model_preset(name)
    values = {key: getattr(preset, key) for key in TRAINING_FIELDS}
    values["loss_options"] = dict(values["loss_options"])
    if sample:
        values["batch_size"] = SAMPLE_BATCH_SIZE
    values.update({key: value for key, value in overrides.items() if value is not None})
    return values


def network_kwargs(name: str, crop: Crop, given: Mapping[str, Any] | None = None
                   ) -> dict[str, Any]:
    """Constructor arguments: the preset's, then ``given`` (None values dropped), then the crop
    argument (e.g. ``input_size``) set to ``crop``."""
    preset = model_preset(name)
    kwargs = {**preset.model_kwargs,
              **{key: value for key, value in (given or {}).items() if value is not None}}
    if preset.crop_argument is not None:
        kwargs[preset.crop_argument] = tuple(int(size) for size in crop)
    return kwargs


def defaults_table() -> str:
    """The presets as the Markdown table of ``docs/brats.md`` (a test keeps the two equal)."""
    lines = ["| model | loss | optimiser | lr | weight decay | schedule | crop | batch | epochs |",
             "|---|---|---|---|---|---|---|---|---|"]
    for name in sorted(MODEL_PRESETS):
        p = MODEL_PRESETS[name]
        lines.append(f"| `{name}` | `{p.loss}` | {p.optimizer} | {p.lr:g} | {p.weight_decay:g} | "
                     f"{p.scheduler} | {'x'.join(map(str, p.crop_size))} | {p.batch_size} | "
                     f"{p.epochs} |")
    return "\n".join(lines)
