"""Per-dataset constants as data: split ratios, sizes, channels, normalisation
and augmentation defaults. Code reads these; it never branches on a dataset
name to find a number.

Sources: SPEC.md section 1 (2D tasks), section 2 (BraTS training recipes) and
section 4b (users' own data in the nnU-Net v2 / Decathlon layouts: `nnunet`).
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Mapping

from data.splits import VAL_FRACTION


@dataclass(frozen=True)
class Augment2D:
    """Albumentations pipeline settings for one 2D dataset."""

    horizontal_flip: float = 0.5
    vertical_flip: float = 0.5
    rotate_degrees: float = 15.0
    scale: tuple[float, float] = (0.9, 1.1)
    affine_prob: float = 0.5
    # Cutout (DeVries & Taylor 2017): one square hole of this side, 0 = off.
    cutout: int = 0


@dataclass(frozen=True)
class Augment3D:
    """Random crop, flips, rotation and intensity jitter for 3D volumes."""

    crop_size: tuple[int, int, int] = (128, 128, 128)
    # Probability that a crop is centred on a random foreground voxel
    # (nnU-Net's oversampling); 0 gives the papers' uniform random crop.
    foreground_prob: float = 0.0
    flip_prob: float = 0.5
    rotate_degrees: float = 10.0
    rotate_prob: float = 0.5
    # Myronenko 2018: shift by U(-0.1, 0.1) * std, scale by U(0.9, 1.1), per channel.
    intensity_shift: float = 0.1
    intensity_scale: tuple[float, float] = (0.9, 1.1)


@dataclass(frozen=True)
class DatasetPreset:
    name: str
    spatial_dims: int  # the default; nnunet's spatial_dims option may change it
    in_channels: int | None  # None: from the data set's own description (nnunet: dataset.json)
    # Held-out test share of the cases (SPEC train:test ratios).
    test_fraction: float
    # 2D: side of the square slices/images after preprocessing (None: planned from the
    # training cases' fingerprint, `data.plan_2d_size`). 3D: unused.
    image_size: int | None
    # The bundled sample data is smaller than the real data; these sizes
    # replace image_size / crop_size when it is used.
    sample_image_size: int | None
    sample_crop_size: tuple[int, int, int] | None
    # Normalisation applied after augmentation: (x - mean) / std, None = none.
    mean: float | None
    std: float | None
    augment_2d: Augment2D | None
    augment_3d: Augment3D | None
    # Defaults of the dataset-specific options of `get_dataset(**options)`.
    options: Mapping[str, Any] = field(default_factory=dict)
    # Options that only change how an item is served, not the cached arrays.
    item_options: tuple[str, ...] = ()
    # Share of the cases not held out for testing that validate (a search: update the alphas).
    val_fraction: float = VAL_FRACTION

    def sizes(self, sample: bool) -> tuple[int | None, tuple[int, int, int] | None]:
        """(2D side, 3D crop) the data is served at unless a caller sets its own: the bundled
        sample data is smaller than the real data, so its own small sizes replace the preset's;
        else the preset's side (None: planned from the training cases) and no crop (None: the
        training's own)."""
        if sample:
            return self.sample_image_size, self.sample_crop_size
        return self.image_size, None


#: How 3D items are served, on any split (options of `get_dataset`, not cached).
_CROP_OPTIONS = {
    # None: random crops on the train split, whole volumes on the others (training and
    # whole-volume validation); True: random crops on this split too (a search's architecture
    # step draws its batches from the validation cases); False: whole volumes.
    "random_crop": None,
    # Items per case and epoch: each draws its own random crop (a split of few cases still fills
    # a batch; nnU-Net samples several patches per case alike). 1 with whole volumes.
    "crops_per_case": 1,
}

#: Options that only choose which training crops are drawn (where, how many per case, how often
#: around foreground): not how an image is preprocessed, so a network's description leaves them
#: out and the folds of one ensemble, drawn differently, still share one description.
SAMPLING_OPTIONS = (*_CROP_OPTIONS, "foreground_prob")

PRESETS: Mapping[str, DatasetPreset] = MappingProxyType({
    "dsb2018": DatasetPreset(
        name="dsb2018",
        spatial_dims=2,
        in_channels=3,
        test_fraction=0.3,  # SPEC: 7:3
        image_size=256,
        sample_image_size=64,
        sample_crop_size=None,
        mean=None,  # RGB scaled to [0, 1]
        std=None,
        augment_2d=Augment2D(cutout=16),  # SPEC: cutout 16
        augment_3d=None,
    ),
    "chaos": DatasetPreset(
        name="chaos",
        spatial_dims=2,
        in_channels=1,
        test_fraction=0.5,  # SPEC: 1:1
        image_size=256,  # SPEC: 512 -> 256
        sample_image_size=64,
        sample_crop_size=None,
        mean=0.3667,  # SPEC: applied to the [0, 1] image
        std=0.3533,
        augment_2d=Augment2D(),
        augment_3d=None,
        options={
            "modality": "CT",
            # MR series: "T2SPIR", "T1DUAL_InPhase" or "T1DUAL_OutPhase".
            "sequence": "T2SPIR",
            # MR only: True serves the four organ labels, False the liver alone.
            "organs": True,
            # CT: Hounsfield window mapped linearly onto [0, 1]. The seed says
            # only "pixel range 0-1"; a fixed window keeps slices comparable.
            "hu_window": (-1024.0, 1024.0),
        },
        item_options=("organs",),
    ),
    "promise12": DatasetPreset(
        name="promise12",
        spatial_dims=2,
        in_channels=1,
        test_fraction=0.4,  # SPEC: 3:2
        image_size=256,  # SPEC: resample in-plane to 256 x 256
        sample_image_size=64,
        sample_crop_size=None,
        mean=None,  # per-case percentile scaling to [0, 1] instead
        std=None,
        augment_2d=Augment2D(),
        augment_3d=None,
        options={
            "denoise": True,  # SPEC: SimpleITK denoising
            # SimpleITK CurvatureFlow: edge-preserving, the filter of its own
            # denoising examples.
            "denoise_time_step": 0.125,
            "denoise_iterations": 5,
            "intensity_percentiles": (0.5, 99.5),
        },
    ),
    "brats": DatasetPreset(
        name="brats",
        spatial_dims=3,
        in_channels=4,
        # SPEC gives no ratio for BraTS (the papers use the challenge's own
        # validation server); 4:1 is the common local split.
        test_fraction=0.2,
        image_size=None,
        sample_image_size=None,
        sample_crop_size=(32, 32, 32),
        mean=None,  # z-score on nonzero voxels per modality instead
        std=None,
        augment_2d=None,
        augment_3d=Augment3D(),
        options={
            # "labels": (1, *spatial) int64 0/1/2/4; "index": (*spatial) int64
            # 0..3; "regions": (3, *spatial) float32 WT/TC/ET.
            "target": "labels",
            "crop_size": None,  # None: augment_3d.crop_size (sample: sample_crop_size)
            "foreground_prob": None,  # None: augment_3d.foreground_prob
            **_CROP_OPTIONS,
        },
        item_options=("target", "crop_size", "foreground_prob", *_CROP_OPTIONS),
    ),
    "nnunet": DatasetPreset(
        name="nnunet",
        spatial_dims=2,
        in_channels=None,  # len(channel_names) / len(modality) of dataset.json
        # nnU-Net cross-validates in 5 folds: one fifth held out.
        test_fraction=0.2,
        image_size=None,  # the median in-plane size as a power of two, at most 256
        sample_image_size=48,  # the sample's own in-plane size: no resampling
        sample_crop_size=(8, 32, 32),
        mean=None,  # per channel by its name (nnU-Net): CT from the fingerprint, others z-scored
        std=None,
        augment_2d=Augment2D(),
        augment_3d=Augment3D(),
        options={
            # 2: slices along each volume's coarsest axis (2D files as they are); 3: whole
            # volumes / random crops.
            "spatial_dims": 2,
            "crop_size": None,  # 3D: None = augment_3d.crop_size (sample: sample_crop_size)
            "foreground_prob": None,  # 3D: None = augment_3d.foreground_prob
            **_CROP_OPTIONS,
        },
        item_options=("crop_size", "foreground_prob", *_CROP_OPTIONS),
    ),
})


def get_preset(name: str) -> DatasetPreset:
    """The preset of a dataset; an unknown name fails with the close matches."""
    try:
        return PRESETS[name]
    except KeyError:
        close = difflib.get_close_matches(str(name), PRESETS, n=3)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        raise ValueError(f"unknown dataset {name!r}: expected one of {', '.join(PRESETS)}{hint}") from None


def list_datasets() -> list[str]:
    """Names accepted by `get_dataset`."""
    return list(PRESETS)
