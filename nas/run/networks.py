"""The network a 3D run trains and a checkpoint rebuilds: a registered model (``models``) or the
fixed network of a searched genotype, described by one plain-JSON entry.

    {"kind": "model", "name": "mfsnet", "kwargs": {...}, "in_channels": 4, "num_classes": 4,
     "output_activation": "softmax"}                                       # a registered model
    {"name": "genotype", "kind": "genotype", "genotype": {...genotype file...}, "kwargs": {},
     "in_channels": 4, "num_classes": 3, "output_activation": "sigmoid"}   # a searched network

``build_network`` is the one way from such an entry to a module (training, the test count,
``nas.run.network_spec`` for prediction and export, and the complexity table all call it), so a
genotype network is rebuilt with the output activation its search trained (sigmoid regions are
not a fact of the genotype itself).
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, Callable, Mapping

from torch import nn

import models
from nas.presets import ACTIVATION_FOR_TARGET, GENOTYPE_PRESETS_3D, ModelPreset, RetrainPreset
from nas.search import genotype_from_dict, genotype_to_dict, load_genotype_file
from supernet import Genotype, from_genotype, output_activation_for

#: ``name`` of a genotype network's entry.
GENOTYPE = "genotype"
#: Builders of the 2D baselines (``nas.presets.BASELINE_MODELS_2D``), outside the 3D network registry.
BASELINE_BUILDERS: Mapping[str, Callable[..., nn.Module]] = {"unet2d": models.plain_unet}
#: Genotype-file fields that are metadata of the search, left out of a checkpoint's entry (the
#: alphas alone are thousands of numbers).
_SEARCH_RECORDS = ("alphas", "edge_weights", "search", "decision_margins")


def genotype_output_activation(genotype: Genotype, metadata: Mapping[str, Any]) -> str:
    """The activation a genotype's network ends in: what its search recorded
    (``output_activation``; older files: the activation of ``data.target``), else the default
    of its class count (a sigmoid for one channel, a softmax over several)."""
    recorded = metadata.get("output_activation")
    if recorded is None:
        recorded = ACTIVATION_FOR_TARGET.get((metadata.get("data") or {}).get("target"))
    return output_activation_for(genotype.num_classes, recorded)


def genotype_entry(genotype: Genotype, metadata: Mapping[str, Any]) -> dict[str, Any]:
    """The entry of the fixed network of ``genotype`` (metadata: its genotype file's)."""
    activation = genotype_output_activation(genotype, metadata)
    kept = {key: value for key, value in metadata.items()
            if key not in _SEARCH_RECORDS and key not in genotype_to_dict(genotype)}
    kept["output_activation"] = activation
    return {"name": GENOTYPE, "kind": "genotype", "genotype": genotype_to_dict(genotype, **kept),
            "kwargs": {}, "in_channels": genotype.in_channels,
            "num_classes": genotype.num_classes, "output_activation": activation}


def genotype_target(genotype: Genotype, metadata: Mapping[str, Any]) -> str:
    """The kind of target a genotype's network trains on: ``index`` (softmax), ``regions``
    (several sigmoid channels) or ``binary`` (one)."""
    if genotype_output_activation(genotype, metadata) == "softmax":
        return "index"
    return "regions" if genotype.num_classes > 1 else "binary"


@dataclass(frozen=True)
class SearchedNetwork:
    """A 3D genotype to train: the genotype, its file's metadata, its training preset (by its
    target, ``GENOTYPE_PRESETS_3D``) and the drop-path rate of seed 002's retraining."""

    genotype: Genotype
    metadata: dict[str, Any]
    preset: ModelPreset
    drop_path: float

    def entry(self) -> dict[str, Any]:
        return genotype_entry(self.genotype, self.metadata)


def searched_network(model_name: str, genotype: str | Path | None,
                     model_kwargs: Mapping[str, Any] | None = None) -> SearchedNetwork | None:
    """The 3D genotype file a 3D run trains (``model_name`` ``"genotype"``), or None for a
    registered model; a 2D genotype, constructor arguments for a genotype, or a model name with
    a genotype file are refused in one line."""
    if genotype is None:
        if model_name == GENOTYPE:
            raise ValueError("model 'genotype' needs the genotype file (--genotype FILE)")
        return None
    if model_name != GENOTYPE:
        raise ValueError(f"--model {model_name} and --genotype {genotype}: give one of them")
    if model_kwargs:
        raise ValueError(f"--model-option {', '.join(model_kwargs)}: constructor arguments apply "
                         f"to --model networks; the genotype {genotype} fixes its network")
    arch, metadata = load_genotype_file(genotype)
    if arch.spatial_dims != 3:
        raise ValueError(f"{genotype}: a {arch.spatial_dims}D genotype; the 3D training path "
                         "takes 3D genotypes (retrain.py --genotype trains 2D ones on images)")
    return SearchedNetwork(arch, metadata, GENOTYPE_PRESETS_3D[genotype_target(arch, metadata)],
                           RetrainPreset().drop_path)


def genotype_network(genotype: Genotype) -> dict[str, Any]:
    """The entry of a 2D genotype's network (its activation follows the data's label map)."""
    return {"kind": "genotype", "name": GENOTYPE, "genotype": genotype_to_dict(genotype),
            "in_channels": genotype.in_channels, "num_classes": genotype.num_classes}


def model_network(name: str, kwargs: Mapping[str, Any], in_channels: int, num_classes: int | None,
                  **extra: Any) -> dict[str, Any]:
    """The entry of a named network (a 2D baseline or a registered 3D model); ``num_classes``
    None: the network's default."""
    return {"kind": "model", "name": name, "kwargs": dict(kwargs), "in_channels": int(in_channels),
            "num_classes": None if num_classes is None else int(num_classes), **extra}


def is_genotype(entry: Mapping[str, Any]) -> bool:
    return entry.get("name") == GENOTYPE


def build_network(entry: Mapping[str, Any], drop_path_rate: float = 0.0,
                  source: str | Path = "<network>") -> nn.Module:
    """A fresh network (weights initialised) of an entry: a 2D baseline or a registered model
    with its constructor arguments, or a genotype's fixed network with its recorded output
    activation and ``drop_path_rate`` (genotype networks only)."""
    if is_genotype(entry):
        genotype = genotype_from_dict(entry["genotype"], f"{source} (genotype)")
        return from_genotype(genotype, drop_path_rate=drop_path_rate,
                             output_activation=entry.get("output_activation"))
    name, kwargs = entry["name"], dict(entry.get("kwargs") or {})
    builder = BASELINE_BUILDERS.get(name, partial(models.build, name))
    return builder(in_channels=entry["in_channels"], num_classes=entry.get("num_classes"), **kwargs)


__all__ = ["BASELINE_BUILDERS", "GENOTYPE", "SearchedNetwork", "build_network", "genotype_entry",
           "genotype_network", "genotype_output_activation", "genotype_target", "is_genotype",
           "model_network", "searched_network"]
