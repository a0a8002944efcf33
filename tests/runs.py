"""What the shared runs of ``tests/conftest.py`` train (``brats_run``: a tiny MFS-Net on the
sample BraTS data, :func:`train_tiny_mfsnet`; ``retrained_2d``: a genotype network retrained for
an epoch), and checkpoints of untrained networks on any data set, their description built from
the data set's training split as a retrain builds it."""
from __future__ import annotations

import dataclasses
from pathlib import Path

import torch

import data
from nas.presets import RetrainPreset
from nas.run import retrain_model
from nas.run.networks import SPEC_KEY, build_spec, genotype_network, model_network, training_entry
from nas.train import save_checkpoint
from supernet import from_genotype

#: The sample data's 2D side (data.get_preset(name).sample_image_size) for the 2D sets used here.
SIZE = 64
#: The smallest MFS-Net the grouped convs allow at a useful width (76k parameters).
TINY_MFSNET = {"base_channels": 8, "channels": 16, "groups": 8}
#: 40, not 20: at 20 epochs one seed in six had barely learnt (tests/nas/run/test_retrain_model.py)
MFSNET_EPOCHS = 40
# A tiny network on two training cases learns within seconds at lr 1e-2 (1e-3, the preset,
# needs minutes); everything else is the mfsnet preset.
MFSNET_LR = 1e-2


def train_tiny_mfsnet(out: Path, seed: int = 0) -> dict:
    """The result of ``retrain_model`` training the tiny MFS-Net (:data:`TINY_MFSNET`,
    :data:`MFSNET_EPOCHS` epochs at :data:`MFSNET_LR`, batch 1) with ``seed`` on the CPU on the
    sample BraTS data, into ``out``."""
    return retrain_model("mfsnet", out=out, device="cpu", epochs=MFSNET_EPOCHS, batch_size=1, lr=MFSNET_LR,
                         num_workers=0, progress=False, model_kwargs=TINY_MFSNET, seed=seed)


def untrained_checkpoint(path: Path, dataset: str, network_entry: dict, network: torch.nn.Module,
                         input_size=None, **options) -> Path:
    """A checkpoint as a retrain writes it, of ``network`` described for ``dataset``'s training
    split with ``options`` (``input_size``: default the split's 2D side)."""
    train = data.get_dataset(dataset, split="train", augment=False, **options)
    config = {**dataclasses.asdict(RetrainPreset()), "dataset": dataset, "seed": 0}
    size = input_size or (train.options["image_size"],) * 2
    spec = build_spec(network_entry, train, size, training_entry(config, train.splits, None))
    return save_checkpoint(path, {"epoch": 0, "config": config, "model": network.state_dict(), SPEC_KEY: spec})


def untrained_genotype_checkpoint(path: Path, genotype, dataset: str, **options) -> Path:
    """A checkpoint of ``genotype``'s network with seeded initial weights."""
    torch.manual_seed(0)
    return untrained_checkpoint(path, dataset, genotype_network(genotype), from_genotype(genotype).eval(),
                                **options)


def untrained_model_checkpoint(path: Path, name: str, network: torch.nn.Module, kwargs: dict, in_channels: int,
                               dataset: str, input_size=None, **options) -> Path:
    """A checkpoint of a named network (a 2D baseline or a 3D model) as its retrain writes it."""
    entry = model_network(name, kwargs, in_channels, network.num_classes)
    return untrained_checkpoint(path, dataset, entry, network.eval(), input_size, **options)
