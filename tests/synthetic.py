"""A tiny in-memory segmentation data set with the attributes the loops read, and the retrain
settings the tests start from."""
import dataclasses

import torch
from torch.utils.data import Dataset

from nas.presets import RetrainPreset
from nas.train import RetrainConfig


def retrain_config(**overrides) -> RetrainConfig:
    """Seed 002's retrain settings for a synthetic run (no workers, no progress bars), with
    ``overrides``."""
    values = {**dataclasses.asdict(RetrainPreset()), "dataset": "squares", "num_workers": 0,
              "progress": False, **overrides}
    return RetrainConfig(**values)


class SquaresDataset(Dataset):
    """Bright squares on noise; the label is the square. Deterministic per seed."""

    in_channels = 1
    num_classes = 1
    spatial_dims = 2

    def __init__(self, count: int = 8, size: int = 16, seed: int = 0) -> None:
        generator = torch.Generator().manual_seed(seed)
        self.images, self.labels = [], []
        for _ in range(count):
            label = torch.zeros(1, size, size)
            top, left = torch.randint(0, size // 2, (2,), generator=generator).tolist()
            side = size // 3
            label[:, top:top + side, left:left + side] = 1.0
            image = label * 2.0 + 0.5 * torch.randn(1, size, size, generator=generator)
            self.images.append(image)
            self.labels.append(label)
        self.poisoned = False

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> dict:
        image = self.images[index]
        if self.poisoned:
            image = image * float("nan")
        return {"image": image, "label": self.labels[index], "case": f"case{index}"}


class PlantedTask(Dataset):
    """Uniform noise images whose label a parameter-free op computes exactly: ``"identity"``
    (label = pixel > 0.5: what skip_connect passes for free, a pooling blurs away) or ``"max"``
    (label = some pixel of the 3x3 window > 0.9: what max_pool_3x3 computes, skip and average
    pooling do not)."""

    in_channels = 1
    num_classes = 1
    spatial_dims = 2

    def __init__(self, kind: str, count: int = 32, size: int = 16, seed: int = 0) -> None:
        generator = torch.Generator().manual_seed(seed)
        self.images = torch.rand(count, 1, size, size, generator=generator)
        if kind == "identity":
            self.labels = (self.images > 0.5).float()
        elif kind == "max":
            self.labels = (torch.nn.functional.max_pool2d(self.images, 3, 1, 1) > 0.9).float()
        else:
            raise ValueError(f"kind must be 'identity' or 'max', got {kind!r}")

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> dict:
        return {"image": self.images[index], "label": self.labels[index], "case": f"case{index}"}


class CubesDataset(Dataset):
    """3D: a bright cube (and a brighter core inside it) on noise. Binary (the cube, one
    sigmoid channel) or ``regions`` (cube and core as two overlapping sigmoid channels, the
    BraTS kind of target). Items are whole volumes of ``size``^3; deterministic per seed."""

    in_channels = 1
    spatial_dims = 3

    def __init__(self, count: int = 6, size: int = 8, seed: int = 0, regions: bool = False) -> None:
        generator = torch.Generator().manual_seed(seed)
        self.num_classes = 2 if regions else 1
        self.target_kind = "regions" if regions else "binary"
        self.class_names = ("cube", "core") if regions else ("cube",)
        self.images, self.labels = [], []
        for _ in range(count):
            cube = torch.zeros(1, size, size, size)
            corner = torch.randint(0, size // 2, (3,), generator=generator).tolist()
            side = max(size // 3, 2)
            window = tuple(slice(c, c + side) for c in corner)
            cube[(slice(None), *window)] = 1.0
            core = torch.zeros_like(cube)
            core[(slice(None), *(slice(c + side // 2 - 1, c + side // 2 + 1) for c in corner))] = 1.0
            image = cube * 2.0 + core + 0.5 * torch.randn(1, size, size, size, generator=generator)
            self.images.append(image)
            self.labels.append(torch.cat([cube, core]) if regions else cube)

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> dict:
        return {"image": self.images[index], "label": self.labels[index], "case": f"case{index}"}
