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


class ShardSampler(torch.utils.data.Sampler):
    """Every ``num_replicas``-th index from ``rank``, in order and without padding: evaluation
    shards that together hold each item exactly once (DistributedSampler pads with repeats)."""

    def __init__(self, dataset: Dataset, num_replicas: int = 1, rank: int = 0) -> None:
        self.indices = list(range(rank, len(dataset), num_replicas))

    def __iter__(self):
        return iter(self.indices)

    def __len__(self) -> int:
        return len(self.indices)


class ResumableSampler(DistributedSampler):
    """A DistributedSampler whose next pass can begin some items in, for a run resumed in the
    middle of an epoch: the order is the epoch's as ever, the first ``items`` of it are left
    out once (:meth:`skip_next`), and later passes are whole again."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._skip = 0

    def skip_next(self, items: int) -> None:
        self._skip = int(items)

    def __iter__(self):
        indices = list(super().__iter__())
        skip, self._skip = self._skip, 0
        return iter(indices[skip:])


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

    Shuffled loaders always draw through a DistributedSampler (one replica outside a process
    group): its order is a function of (seed, epoch) alone, set by ``loader.sampler.set_epoch``,
    so a resumed run sees the batches an uninterrupted one saw (one stopped mid-epoch skips
    the batches it trained: :class:`ResumableSampler`), and N processes with batch b
    together see exactly the batches of one process with batch N x b. Unshuffled loaders shard
    without padding (:class:`ShardSampler`).

    num_workers: None = `default_workers()`. Workers are re-created each epoch (not
        persistent) so they pick up the dataset's epoch, which seeds the augmentations.
    distributed: shard across the ranks of the initialised process group.
    drop_last: None = `shuffle` (training drops a last partial batch, which
        would give BatchNorm a batch of one).
    pin_memory: None = on when CUDA is available.
    """
    workers = default_workers() if num_workers is None else int(num_workers)
    drop_last = shuffle if drop_last is None else drop_last
    generator = torch.Generator().manual_seed(seed)
    replicas, rank = 1, 0
    if distributed and dist.is_available() and dist.is_initialized():
        replicas, rank = dist.get_world_size(), dist.get_rank()
    if shuffle:
        sampler = ResumableSampler(dataset, num_replicas=replicas, rank=rank, shuffle=True,
                                   seed=seed, drop_last=drop_last)
    else:
        sampler = ShardSampler(dataset, replicas, rank)
    return DataLoader(
        dataset,
        batch_size=batch_size,
        sampler=sampler,
        num_workers=workers,
        pin_memory=torch.cuda.is_available() if pin_memory is None else pin_memory,
        drop_last=drop_last,
        persistent_workers=False,
        prefetch_factor=2 if workers > 0 else None,
        worker_init_fn=seed_worker,
        generator=generator,
    )
