"""Loader reproducibility: augmentations depend on (seed, epoch, index) only; batches of a cached
data set collate with their meta."""
import torch

import data
from data.sample.chaos import write_chaos
from nas.train.loader import ShardSampler, default_workers, make_loader


def _epoch_batches(dataset, workers, epoch):
    loader = make_loader(dataset, 2, shuffle=True, num_workers=workers, seed=3)
    loader.sampler.set_epoch(epoch)
    dataset.set_epoch(epoch)
    return [batch["image"] for batch in loader]


def test_augmented_batches_do_not_depend_on_worker_count():
    dataset = data.get_dataset("dsb2018", split="train", image_size=32, augment=True)
    single = _epoch_batches(dataset, 0, epoch=1)
    parallel = _epoch_batches(dataset, 2, epoch=1)
    assert len(single) == len(parallel) > 0
    assert all(torch.equal(a, b) for a, b in zip(single, parallel))
    # another epoch reshuffles and re-augments
    other = _epoch_batches(dataset, 0, epoch=2)
    assert not all(torch.equal(a, b) for a, b in zip(single, other))


def test_shard_sampler_covers_each_item_once():
    items = list(range(7))
    shards = [list(ShardSampler(items, 3, rank)) for rank in range(3)]
    assert sorted(sum(shards, [])) == items and shards[0] == [0, 3, 6]


def test_loader_defaults():
    dataset = torch.utils.data.TensorDataset(torch.zeros(5, 1))
    loader = make_loader(dataset, batch_size=2, shuffle=True, num_workers=0)
    assert loader.drop_last and len(loader) == 2
    assert make_loader(dataset, batch_size=2, shuffle=False, num_workers=0).drop_last is False
    assert 0 <= default_workers() <= 4


def test_loader_collates_items_and_seeds_workers(tmp_path):
    chaos_root = write_chaos(tmp_path / "chaos", ct_patients=("1", "2", "5", "6"), mr_patients=(), slices=3,
                             ct_size=32)
    dataset = data.get_dataset("chaos", chaos_root, "train", image_size=16, cache_dir=tmp_path / "cache")

    def first_batch(seed, workers):
        loader = make_loader(dataset, batch_size=2, shuffle=True, num_workers=workers, seed=seed)
        return next(iter(loader))

    batch = first_batch(0, 2)
    assert batch["image"].shape == (2, 1, 16, 16) and batch["label"].shape == (2, 1, 16, 16)
    assert batch["meta"]["affine"].shape == (2, 4, 4) and len(batch["meta"]["source"]) == 2
    assert batch["meta"]["slice_index"].dtype == torch.int64
    # Same seed, same batch (order and augmentation); another seed, another batch.
    torch.testing.assert_close(first_batch(0, 2)["image"], batch["image"])
    assert not torch.equal(first_batch(1, 2)["image"], batch["image"])
