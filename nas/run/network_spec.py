"""Self-describing checkpoints: the inference description every retrain writes into ``best.pt``
and ``checkpoint.pt`` under ``"spec"``, and the one way to rebuild a network from a checkpoint.

Prediction (``lwnas predict``) and export (``lwnas export``) read this block and the weights,
nothing else. It is plain JSON types (loaded with ``torch.load(weights_only=True)``)::

    {"format": 1, "lwnas_version": "0.1.0", "dataset": "dsb2018", "spatial_dims": 2,
     "network": {"kind": "genotype", "name": "genotype", "genotype": {...genotype file...},
                 "in_channels": 3, "num_classes": 1}
             or {"kind": "model", "name": "unet2d" | "mfsnet" ..., "kwargs": {...},
                 "in_channels": 4, "num_classes": 4},
     "input": {"channels": [...names, in order...], "size": [64, 64]},   # training size / crop
     "preprocessing": {...data.preprocessing_spec...},                     # how images are made
     "labels": {...data.label_spec...},                                    # values, names, decision
     "training": {"config": {...RetrainConfig...}, "seed": 0, "splits": {...}, "data_root": "..."}}

The preprocessing and the label map come from the data layer (``data.describe_dataset`` of the
training split), so the numbers in a checkpoint are the ones the readers used.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping, Sequence

import torch
from torch import nn

import data
import nas
from nas.train import load_checkpoint
from nas.train.settings import one_line

from . import networks
from .networks import BASELINE_BUILDERS, genotype_network, model_network

SPEC_KEY = "spec"
SPEC_FORMAT = 1
#: Fields of the inference description, each required.
SPEC_FIELDS = ("format", "lwnas_version", "dataset", "spatial_dims", "network", "input", "preprocessing",
               "labels", "training")
NETWORK_KINDS = ("genotype", "model")


class CheckpointSpecError(ValueError):
    """A checkpoint whose inference description is missing or unusable; one line naming the file."""


def training_entry(config: Mapping[str, Any], splits: Mapping[str, Any], data_root: str | Path | None,
                   **extra: Any) -> dict[str, Any]:
    """The training entry: the run's settings, its seed, the case lists it was trained and tested on."""
    return {"config": dict(config), "seed": config.get("seed"), "splits": dict(splits),
            "data_root": str(data_root or ""), **extra}


def build_spec(network: Mapping[str, Any], train_set: Any, input_size: Sequence[int],
               training: Mapping[str, Any]) -> dict[str, Any]:
    """The inference description of a network trained on ``train_set`` (a ``data.get_dataset``
    split: its effective options describe the preprocessing) at ``input_size`` (2D side per axis,
    or the 3D crop). Checked before it is returned, so a run never writes an unusable one."""
    preprocessing, labels = data.describe_dataset(train_set)
    spec = data.jsonable({
        "format": SPEC_FORMAT, "lwnas_version": nas.__version__, "dataset": preprocessing["dataset"],
        "spatial_dims": preprocessing["spatial_dims"], "network": dict(network),
        "input": {"channels": preprocessing["channels"], "size": [int(v) for v in input_size]},
        "preprocessing": preprocessing, "labels": labels, "training": dict(training)})
    problems = spec_problems(spec, "<new checkpoint>")
    if problems:
        raise ValueError("; ".join(problems))
    return spec


def spec_problems(spec: Any, source: str) -> list[str]:
    """Every problem of an inference description, one line each (empty when usable)."""
    if not isinstance(spec, dict):
        return [f"{source}: no inference description; missing fields "
                + ", ".join(f"{SPEC_KEY}.{name}" for name in SPEC_FIELDS)]
    missing = [f"{SPEC_KEY}.{name}" for name in SPEC_FIELDS if name not in spec]
    if missing:
        return [f"{source}: inference description lacks fields {', '.join(missing)}"]
    if not isinstance(spec["format"], int) or spec["format"] > SPEC_FORMAT:
        return [f"{source}: inference description format {spec['format']!r}; this lwnas "
                f"({nas.__version__}) reads format {SPEC_FORMAT} (written by a newer version?)"]
    problems = data.check_preprocessing(spec["preprocessing"], source) + data.check_label_map(spec["labels"], source)
    network = spec["network"]
    if not isinstance(network, dict) or network.get("kind") not in NETWORK_KINDS:
        problems.append(f"{source}: network entry of unknown kind "
                        f"{network.get('kind') if isinstance(network, dict) else network!r}; expected one of "
                        f"{', '.join(NETWORK_KINDS)}")
        return problems
    needed = ("genotype",) if network["kind"] == "genotype" else ("name", "kwargs")
    lacking = [key for key in (*needed, "in_channels", "num_classes") if key not in network]
    if lacking:
        problems.append(f"{source}: network entry lacks {', '.join(lacking)}")
        return problems
    if problems:
        return problems
    channels = spec["preprocessing"]["channels"]
    if network["in_channels"] != len(channels):
        problems.append(f"{source}: the network takes {network['in_channels']} input channel(s), its preprocessing "
                        f"gives {len(channels)} ({', '.join(channels)})")
    size, side = spec["input"].get("size"), spec["preprocessing"]["image_size"]
    if spec["spatial_dims"] == 2 and size != [side, side]:
        problems.append(f"{source}: input size {size} differs from the preprocessing's image size {side}")
    outputs = data.output_channels(spec["labels"])
    if network["num_classes"] != outputs:
        problems.append(f"{source}: the network has {network['num_classes']} output channel(s), its label map's "
                        f"{spec['labels']['decision']} decision needs {outputs}")
    return problems


def spec_of(state: Mapping[str, Any], path: str | Path) -> dict[str, Any]:
    """The inference description of a loaded checkpoint; an old checkpoint without it, or with an
    unusable one, is one line naming the file and the missing fields."""
    spec = state.get(SPEC_KEY)
    problems = spec_problems(spec, str(path))
    if problems:
        hint = (" (a checkpoint written before checkpoints described themselves; retrain it with "
                f"lwnas {nas.__version__})" if not isinstance(spec, dict) or "format" not in spec else "")
        raise CheckpointSpecError(problems[0] + hint)
    return dict(spec)


def read_spec(path: str | Path, map_location: Any = "cpu") -> tuple[dict[str, Any], dict[str, Any]]:
    """(inference description, whole checkpoint) of ``path`` (see :func:`spec_of`)."""
    state = load_checkpoint(path, map_location=map_location)
    return spec_of(state, path), state


def network_name(spec: Mapping[str, Any]) -> str:
    """``genotype``, a baseline's or a registered model's name."""
    return str(spec["network"]["name"])


def build_network(spec: Mapping[str, Any], source: str = "<checkpoint>") -> nn.Module:
    """A fresh network of the description (weights not loaded)."""
    entry = spec["network"]
    try:
        return networks.build_network(entry, source=source)
    except ValueError as error:
        if str(error).startswith(source):
            raise CheckpointSpecError(str(error)) from None
        raise CheckpointSpecError(f"{source}: cannot rebuild the {entry.get('name')} network from its "
                                  f"description ({one_line(error)})") from None
    except (TypeError, KeyError) as error:  # constructor arguments of another version
        raise CheckpointSpecError(f"{source}: cannot rebuild the {entry.get('name')} network from its "
                                  f"description ({one_line(error)})") from None


def load_network(path: str | Path, device: torch.device | str = "cpu", expected_model: str | None = None
                 ) -> tuple[nn.Module, dict[str, Any]]:
    """The checkpoint's network, rebuilt from its description alone, weights loaded, in eval mode
    on ``device``, with the description. Refuses (one line naming the file) a checkpoint without a
    usable description, of another network than ``expected_model``, or whose weights do not fit."""
    path = Path(path)
    spec, state = read_spec(path)
    return restore_network(state, spec, path, device, expected_model), spec


def restore_network(state: Mapping[str, Any], spec: Mapping[str, Any], path: str | Path,
                    device: torch.device | str = "cpu", expected_model: str | None = None) -> nn.Module:
    """The network of a loaded checkpoint (``state``, its description ``spec``), weights loaded, in
    eval mode on ``device``; refuses another network than ``expected_model`` and weights that do
    not fit, in one line naming ``path``."""
    name = network_name(spec)
    if expected_model is not None and name != expected_model:
        raise CheckpointSpecError(f"{path}: holds a {name} network; expected {expected_model}")
    network = build_network(spec, str(path))
    try:
        network.load_state_dict(state["model"])
    except Exception as error:  # missing / unexpected keys, shape mismatches
        raise CheckpointSpecError(f"{path}: weights do not fit the {name} network its description names "
                                  f"({one_line(error)})") from None
    return network.to(device).eval()


__all__ = ["BASELINE_BUILDERS", "CheckpointSpecError", "NETWORK_KINDS", "SPEC_FIELDS", "SPEC_FORMAT", "SPEC_KEY",
           "build_network", "build_spec", "genotype_network", "load_network", "model_network", "network_name",
           "read_spec", "restore_network", "spec_of", "spec_problems", "training_entry"]
