"""Writers of synthetic nnU-Net v2 / Decathlon data sets for the tests, each file written with
its own library (`tests.data.io.writers`), independently of the reader under test."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from tests.data.io.writers import SPACING_ZYX, write_image

LABELS = {"background": 0, "liver": 1, "spleen": 2}


def synthetic_case(seed: int, shape=(6, 10, 12), channels: int = 2) -> tuple[np.ndarray, np.ndarray]:
    """image (C, *shape) float32 and label (*shape) uint8 with labels 1 and 2 in two boxes."""
    rng = np.random.default_rng(seed)
    label = np.zeros(shape, np.uint8)
    label[1:4, 2:6, 2:6] = 1
    label[2:5, 5:9, 7:11] = 2
    image = np.stack([label * 40.0 * (c + 1) + rng.normal(0, 5, shape) for c in range(channels)])
    return image.astype(np.float32), label


def write_nnunet_v2(root: Path, cases: dict[str, tuple[np.ndarray, np.ndarray]], ending: str = ".nii.gz",
                    channels=("CT", "T2"), labels=LABELS, spacing_zyx=SPACING_ZYX, **extra) -> Path:
    """imagesTr/<case>_XXXX<ending>, labelsTr/<case><ending> and dataset.json."""
    root.mkdir(parents=True, exist_ok=True)
    for name, (image, label) in cases.items():
        for index, values in enumerate(image):
            write_image(root / "imagesTr" / f"{name}_{index:04d}{ending}", values, spacing_zyx)
        write_image(root / "labelsTr" / f"{name}{ending}", label, spacing_zyx)
    description = {"channel_names": {str(i): c for i, c in enumerate(channels)}, "labels": labels,
                   "numTraining": len(cases), "file_ending": ending, **extra}
    (root / "dataset.json").write_text(json.dumps(description))
    return root


def write_decathlon(root: Path, cases: dict[str, tuple[np.ndarray, np.ndarray]], channels=("CT", "T2"),
                    labels=LABELS, spacing_zyx=SPACING_ZYX) -> Path:
    """imagesTr/<case>.nii.gz as 4D NIfTI (channels last), labelsTr/<case>.nii.gz, dataset.json."""
    for name, (image, label) in cases.items():
        write_image(root / "imagesTr" / f"{name}.nii.gz", np.moveaxis(image, 0, -1), spacing_zyx)
        write_image(root / "labelsTr" / f"{name}.nii.gz", label, spacing_zyx)
    description = {
        "name": "Test", "tensorImageSize": "4D", "modality": {str(i): c for i, c in enumerate(channels)},
        "labels": {str(v): k for k, v in labels.items()}, "numTraining": len(cases), "numTest": 0,
        "training": [{"image": f"./imagesTr/{n}.nii.gz", "label": f"./labelsTr/{n}.nii.gz"} for n in cases],
        "test": [],
    }
    (root / "dataset.json").write_text(json.dumps(description))
    return root
