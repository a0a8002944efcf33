"""`make_loader`: a DataLoader with the defaults training wants."""

from __future__ import annotations

import os
import random

import numpy as np
import torch
import torch.distributed as dist
from torch.utils.data import DataLoader, Dataset, DistributedSampler


def default_workers() -> int:
    """min(4, CPUs - 1): leave one core to the training process; 0 on a single core."""
    available = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(0, min(4, available - 1))


def seed_worker(worker_id: int) -> None:
    """Seed python and numpy from the worker's torch seed (itself derived from the loader's generator)."""
    seed = torch.initial_seed() % 2**32
    np.random.seed(seed)
    random.seed(seed)


def make_loader(
    dataset: Dataset,
    batch_size: int,
    shuffle: bool,
    num_workers: int | None = None,
    distributed: bool = False,
    seed: int = 0,
    drop_last: bool | None = None,
    pin_memory: bool | None = None,
) -> DataLoader:
    """A reproducible DataLoader.

    num_workers: None = `default_workers()`; workers persist across epochs.
    distributed: shard with a DistributedSampler when a process group is
        initialised (otherwise a plain single-process loader); call
        `loader.sampler.set_epoch(epoch)` each epoch to reshuffle.
    drop_last: None = `shuffle` (training drops a last partial batch, which
        would give BatchNorm a batch of one).
    pin_memory: None = on when CUDA is available.
    """
    workers = default_workers() if num_workers is None else int(num_workers)
    drop_last = shuffle if drop_last is None else drop_last
    generator = torch.Generator().manual_seed(seed)
    sampler = None
    if distributed and dist.is_available() and dist.is_initialized():
        sampler = DistributedSampler(dataset, shuffle=shuffle, seed=seed, drop_last=drop_last)
        shuffle = False  # the sampler shuffles
    return DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=shuffle,
        sampler=sampler,
        num_workers=workers,
        pin_memory=torch.cuda.is_available() if pin_memory is None else pin_memory,
        drop_last=drop_last,
        persistent_workers=workers > 0,
        prefetch_factor=2 if workers > 0 else None,
        worker_init_fn=seed_worker,
        generator=generator,
    )
