"""Small runs on the sample data shared by the prediction, export and baseline tests (each
trained once per session, on first use): a genotype network retrained for one epoch per data
set, and a checkpoint of an untrained network on any data set (its description built from the
data set's training split, as a retrain builds it)."""
from __future__ import annotations

import dataclasses
from pathlib import Path

import torch

import data
from nas import run as commands
from nas.presets import RetrainPreset
from nas.run.network_spec import SPEC_KEY, build_spec, genotype_network, model_network, training_entry
from nas.search import save_genotype
from nas.train import save_checkpoint
from supernet import from_genotype

#: The sample data's 2D side (data.get_preset(name).sample_image_size) for the 2D sets used here.
SIZE = 64
_RUNS: dict[str, Path] = {}


def retrained_genotype(tmp_path_factory, make_genotype, dataset: str) -> Path:
    """The run directory of a tiny genotype network retrained for one epoch on ``dataset``."""
    if dataset not in _RUNS:
        root = tmp_path_factory.mktemp(f"retrain-{dataset}")
        facts = data.dataset_facts(dataset)
        genotype = make_genotype(in_channels=facts.in_channels, num_classes=facts.num_classes)
        path = save_genotype(root / "search" / "genotype.json", genotype, dataset=dataset,
                             search={"image_size": SIZE})
        commands.retrain_genotype(path, out=root / "run", device="cpu", epochs=1, batch_size=4,
                                  num_workers=0, progress=False)
        _RUNS[dataset] = root / "run"
    return _RUNS[dataset]


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
