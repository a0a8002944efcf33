"""The torch Datasets: 2D slices/images and 3D volumes served from the cache.

Construction prepares every case of the split once (read, validate,
preprocess, store as .npy); afterwards items are read from memory maps, so no
DICOM, NIfTI or MetaImage file is opened again. Bad cases raise `DataError`,
or with `skip_bad` are left out and listed in `dataset.skipped`.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch.utils.data import Dataset
from tqdm import tqdm

from data.brats import brats_labels_to_index, brats_labels_to_regions
from data.cache import CaseCache
from data.errors import DataError
from data.interfaces import Source
from data.presets import Augment2D, Augment3D
from data.transforms.augment2d import apply_augment_2d, build_augment_2d
from data.transforms.augment3d import RandomAugment3D
from data.transforms.intensity import standardise


def _progress_disabled() -> bool | None:
    """tqdm's ``disable``: None (a bar on a terminal) in a plain process and on global rank 0
    of a launcher's job (torchrun sets RANK), off on every other rank and node, so N
    processes do not draw N preparation bars."""
    return None if os.environ.get("RANK", "0") == "0" else True


# Foreground voxels kept per case for foreground-biased crops (nnU-Net keeps 10k).
_FOREGROUND_SAMPLES = 10_000


class CaseDataset(Dataset):
    """Shared part: prepare the split's cases into the cache and keep their meta."""

    spatial_dims = 0
    in_channels = 0
    num_classes = 0

    def __init__(self, name: str, split: str, case_paths: dict[str, Path], source: Source, options: dict,
                 cache: CaseCache, skip_bad: bool = False):
        self.name = name
        self.split = split
        self.options = options
        self.cache = cache
        self.cases: list[str] = []
        self.skipped: list[tuple[str, str]] = []
        self.splits: dict = {}  # all three case lists, set by get_dataset
        self.root: Path | None = None
        self._folders: dict[str, Path] = {}
        self._meta: dict[str, dict] = {}
        self.seed = 0  # with the epoch and the item index, it fixes every random draw
        self.epoch = 0
        progress = tqdm(case_paths.items(), desc=f"{name} {split}: preparing", unit="case",
                        disable=_progress_disabled(), leave=False)
        for case, path in progress:
            try:
                folder = cache.case_folder(case, source.files(path, options))
                meta = cache.read_meta(folder)
                if meta is None:
                    image, label, meta = source.prepare(path, options)
                    meta = {**meta, "foreground_voxels": int(np.count_nonzero(label))}
                    cache.write(folder, self._arrays_to_cache(image, label), meta)
                    meta = cache.read_meta(folder)
            except DataError as exc:
                if not skip_bad:
                    raise
                self.skipped.append((case, str(exc)))
                continue
            self.cases.append(case)
            self._folders[case] = folder
            self._meta[case] = meta
        if self.cases and not any(self.foreground_voxels(case) for case in self.cases):
            # every mask empty: a search or retrain would score a perfect Dice of 1 on nothing
            first = next(iter(case_paths.values()))
            raise DataError(f"{first.parent}: no case of the {split} split ({len(self.cases)} cases) has "
                            "foreground (every label is 0); expected labelled cases")

    def case_meta(self, case: str) -> dict:
        """The cached meta of a case (the served grid's spacing, affine, original_shape, source...)."""
        return dict(self._meta[case])

    def foreground_voxels(self, case: str) -> int:
        """Labelled (non-zero) voxels of a case, from the cache."""
        count = self._meta[case].get("foreground_voxels")
        if count is None:  # a cache written before the count was kept
            count = int(np.count_nonzero(self._array(case, "label")))
            self._meta[case]["foreground_voxels"] = count
        return int(count)

    def _arrays_to_cache(self, image: np.ndarray, label: np.ndarray) -> dict[str, np.ndarray]:
        return {"image": image.astype(np.float32, copy=False), "label": label.astype(np.uint8, copy=False)}

    def _array(self, case: str, name: str) -> np.ndarray:
        return self.cache.array(self._folders[case], name)

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch whose augmentations the next items get (the training loops call
        this before each epoch; loader workers are re-created per epoch, so they see it)."""
        self.epoch = int(epoch)

    def _item_generator(self, index: int) -> np.random.Generator:
        """The random stream of one item in one epoch: a pure function of (seed, epoch, index).

        So augmentations do not depend on the number of loader workers, and a run resumed at
        epoch k draws exactly what an uninterrupted run draws.
        """
        sequence = np.random.SeedSequence([int(self.seed), self.epoch, int(index)])
        self._reseed(int(sequence.generate_state(1)[0]))
        return np.random.default_rng(sequence)

    def _reseed(self, seed: int) -> None:
        """Hook for augmenters with their own random state."""

    def case_of(self, index: int) -> str:
        """The case (patient) an item belongs to."""
        return self.items[index][0]

    def __len__(self) -> int:
        return len(self.items)


class SliceDataset(CaseDataset):
    """2D items: slices of CHAOS / PROMISE12 / nnunet volumes, or DSB2018 / nnunet images.

    `items[i]` is (case, slice index); single images have slice index -1. `to_target` turns
    a label map into the served target (default: binary float mask for one class, class
    indices otherwise).
    """

    spatial_dims = 2

    def __init__(self, *args, in_channels: int, image_size: int, augment: Augment2D | None,
                 mean: float | None, std: float | None, num_classes: int = 1, from_volumes: bool = True,
                 to_target: Callable[[np.ndarray], torch.Tensor] | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.in_channels = in_channels
        self.num_classes = num_classes
        self.to_target = to_target
        self.image_size = image_size
        self.mean, self.std = mean, std
        self.augment = build_augment_2d(augment) if augment is not None else None
        self.items: list[tuple[str, int]] = []
        for case in self.cases:
            count = int(self._meta[case]["original_shape"][0]) if from_volumes else 1
            self.items += [(case, s if from_volumes else -1) for s in range(count)]

    def _reseed(self, seed: int) -> None:
        if self.augment is not None:
            self.augment.set_random_seed(seed)

    def __getitem__(self, index: int) -> dict:
        case, slice_index = self.items[index]
        position = max(slice_index, 0)
        image = np.array(self._array(case, "image")[position], dtype=np.float32)
        label = np.array(self._array(case, "label")[position])
        if self.augment is not None:
            self._item_generator(index)  # reseeds the albumentations pipeline for this item
            image, label = apply_augment_2d(self.augment, image, label)
        image = standardise(image, self.mean, self.std)
        if self.to_target is not None:
            target = self.to_target(label)
        elif self.num_classes == 1:
            # Binary tasks: class 1 (liver, prostate, nucleus) for sigmoid/BCE.
            target = torch.from_numpy((label == 1).astype(np.float32)[None])
        else:
            target = torch.from_numpy(label.astype(np.int64))
        meta = self._meta[case]
        source = meta["source"]
        return {
            "image": torch.from_numpy(np.ascontiguousarray(image, dtype=np.float32)),
            "label": target,
            "case": case,
            "meta": {
                "spacing": np.asarray(meta["spacing"][-2:], dtype=np.float64),
                "affine": np.asarray(meta["affine"], dtype=np.float64),
                "original_shape": np.asarray(meta["original_shape"][-2:], dtype=np.int64),
                "source": source[position] if isinstance(source, list) else str(source),
                "slice_index": slice_index,
            },
        }


class VolumeDataset(CaseDataset):
    """3D items (BraTS, nnunet): random crops (training, and a search's validation crops) or
    whole volumes; with `crops_per_case` > 1, each case is served that many times per epoch.

    `target` is one of BraTS's TARGETS, unless `to_target` (a label map -> target) is given.
    """

    spatial_dims = 3
    TARGETS = ("labels", "index", "regions")

    def __init__(self, *args, in_channels: int, num_classes: int, augment: Augment3D, crop: bool,
                 random_augment: bool, target: str = "labels",
                 to_target: Callable[[np.ndarray], torch.Tensor] | None = None, crops_per_case: int = 1,
                 **kwargs):
        if target not in self.TARGETS:
            raise ValueError(f"unknown target {target!r}: expected one of {', '.join(self.TARGETS)}")
        super().__init__(*args, **kwargs)
        self.in_channels = in_channels
        self.target = target
        self.to_target = to_target
        self.num_classes = num_classes
        self.crop_size = augment.crop_size if crop else None
        self.transform = RandomAugment3D(augment, crop=crop, augment=random_augment)
        # each case `crops_per_case` times: every item draws its own crop (its own random stream)
        self.crops_per_case = int(crops_per_case)
        self.items = [(case, -1) for case in self.cases for _ in range(self.crops_per_case)]

    def _arrays_to_cache(self, image: np.ndarray, label: np.ndarray) -> dict[str, np.ndarray]:
        arrays = super()._arrays_to_cache(image, label)
        foreground = np.argwhere(label > 0).astype(np.int32)
        if len(foreground) > _FOREGROUND_SAMPLES:
            # Evenly spaced rather than random: the cache stays deterministic.
            foreground = foreground[np.linspace(0, len(foreground) - 1, _FOREGROUND_SAMPLES).astype(int)]
        arrays["foreground"] = foreground.reshape(-1, 3)
        return arrays

    def __getitem__(self, index: int) -> dict:
        case = self.items[index][0]
        image, label = self._array(case, "image"), self._array(case, "label")
        if self.transform.crop or self.transform.augment:
            image, label = self.transform(image, label, self._item_generator(index),
                                          self._array(case, "foreground"))
        # Copies only what is still a read-only memory map or a flipped view.
        image = np.require(image, np.float32, ["C", "W"])
        label = np.require(label, None, ["C", "W"])
        if self.to_target is not None:
            target = self.to_target(label)
        elif self.target == "labels":
            target = torch.from_numpy(label.astype(np.int64)[None])
        elif self.target == "index":
            target = torch.from_numpy(brats_labels_to_index(label))
        else:
            target = torch.from_numpy(brats_labels_to_regions(label))
        meta = self._meta[case]
        return {
            "image": torch.from_numpy(image),
            "label": target,
            "case": case,
            "meta": {
                "spacing": np.asarray(meta["spacing"], dtype=np.float64),
                "affine": np.asarray(meta["affine"], dtype=np.float64),
                "original_shape": np.asarray(meta["original_shape"], dtype=np.int64),
                "source": str(meta["source"]),
                "slice_index": -1,
            },
        }
