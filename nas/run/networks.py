"""The network a run trains and a checkpoint rebuilds: a registered model (``models``), a 2D
baseline or the fixed network of a searched genotype, described by one plain-JSON entry,

    {"kind": "model", "name": "mfsnet", "kwargs": {...}, "in_channels": 4, "num_classes": 4,
     "output_activation": "softmax"}                                       # a registered model
    {"name": "genotype", "kind": "genotype", "genotype": {...genotype file...}, "kwargs": {},
     "in_channels": 4, "num_classes": 3, "output_activation": "sigmoid"}   # a searched network

and the self-describing checkpoint: the inference description every retrain writes into
``best.pt`` and ``checkpoint.pt`` under ``"spec"``. Prediction (``lwnas predict``), export
(``lwnas export``) and a resumed 3D run read this block and the weights, nothing else. It is
plain JSON types (loaded with ``torch.load(weights_only=True)``)::

    {"format": 1, "lwnas_version": "0.1.0", "dataset": "dsb2018", "spatial_dims": 2,
     "network": {...the entry above...},
     "input": {"channels": [...names, in order...], "size": [64, 64]},   # training size / crop
     "preprocessing": {...data.preprocessing_spec...},                     # how images are made
     "labels": {...data.label_spec...},                                    # values, names, decision
     "training": {"config": {...RetrainConfig...}, "seed": 0, "splits": {...}, "data_root": "..."}}

``build_network`` is the one way from an entry to a module (training, the test count, prediction,
export and the complexity table all call it), so a genotype network is rebuilt with the output
activation its search trained (sigmoid regions are not a fact of the genotype itself). The
preprocessing and the label map come from the data layer (``data.describe_dataset`` of the
training split), so the numbers in a checkpoint are the ones the readers used.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import torch
from torch import nn

import data
import models
import nas
from nas.inference import FoldEnsemble
from nas.presets import ACTIVATION_FOR_TARGET, GENOTYPE_PRESETS_3D, ModelPreset, RetrainPreset
from nas.search import genotype_from_dict, genotype_to_dict, load_genotype_file
from nas.train import load_checkpoint
from nas.train.settings import one_line
from supernet import Genotype, from_genotype, output_activation_for

from .fold_layout import fold_checkpoints, is_folds_run

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


# The checkpoint's inference description -------------------------------------------------------

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
    if spec is None and "alphas_history" in state:  # what only a search's checkpoint.pt records
        raise CheckpointSpecError(
            f"{path}: a search checkpoint (the supernet's weights and op weights); predict and export take a "
            f"trained network: retrain its genotype first (lwnas retrain --genotype "
            f"{Path(path).parent / 'genotype.json'}) and give that run's best.pt")
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


def load_network(path: str | Path, device: torch.device | str = "cpu", expected_model: str | None = None
                 ) -> tuple[nn.Module, dict[str, Any]]:
    """The checkpoint's network, rebuilt from its description alone, weights loaded, in eval mode
    on ``device``, with the description. Refuses (one line naming the file) a checkpoint without a
    usable description, of another network than ``expected_model``, or whose weights do not fit."""
    path = Path(path)
    spec, state = read_spec(path)
    return restore_network(state, spec, path, device, expected_model), spec


def load_fold_ensemble(run: str | Path, device: torch.device | str = "cpu", expected_model: str | None = None,
                       folds: Sequence[int] | None = None,
                       load: Callable[..., tuple[nn.Module, dict[str, Any]]] | None = None
                       ) -> tuple[FoldEnsemble, dict[str, Any]]:
    """The networks of ``folds`` (default: all) of the folds run ``run`` as one
    :class:`nas.inference.FoldEnsemble` (the mean of their probabilities), on ``device``, with the
    first fold's description and an ``ensemble`` entry (folds, checkpoints, rule). ``load(path,
    device, expected_model)`` loads one fold (default :func:`load_network`). Folds whose network
    or inputs differ (another architecture, preprocessing or label map) are refused in one line."""
    load = load or load_network
    paths = fold_checkpoints(run, folds)
    members, specs = zip(*(load(path, device, expected_model) for path in paths))
    first = {key: value for key, value in specs[0].items() if key != "training"}
    for path, spec in zip(paths[1:], specs[1:]):
        differing = sorted(key for key, value in first.items() if spec.get(key) != value)
        if differing:
            raise CheckpointSpecError(f"{path}: differs from {paths[0]} in {', '.join(differing)}; the folds of an "
                                      "ensemble must share the network, its inputs and its label map")
    chosen = [int(path.parent.name.rsplit("_", 1)[1]) for path in paths]
    spec = {**specs[0], "ensemble": {"run": str(run), "folds": chosen, "checkpoints": [str(path) for path in paths],
                                     "rule": "the mean of the folds' probabilities (each fold's own TTA first); "
                                             "its logits are logit(p) for a sigmoid, log(p) for a softmax"}}
    return FoldEnsemble(list(members)).to(device).eval(), spec


def load_predictor(checkpoint: str | Path, device: torch.device | str = "cpu", expected_model: str | None = None,
                   folds: Sequence[int] | None = None,
                   load: Callable[..., tuple[nn.Module, dict[str, Any]]] | None = None
                   ) -> tuple[nn.Module, dict[str, Any]]:
    """The network of a checkpoint file (``load``, default :func:`load_network`), or of a folds
    run's directory the ensemble of its ``folds`` (:func:`load_fold_ensemble`), with the
    description."""
    if is_folds_run(checkpoint):
        return load_fold_ensemble(checkpoint, device, expected_model, folds, load)
    if folds is not None:
        raise ValueError(f"--folds: {checkpoint} is a single checkpoint; --folds picks the folds of a folds run's "
                         "directory (retrain.py --folds)")
    return (load or load_network)(checkpoint, device, expected_model)


def run_network(run: Any) -> nn.Module | None:
    """A retrained run's network (``run.path``: its directory) rebuilt from its self-describing
    ``best.pt``, for the reports' latency (baselines and 3D models have no genotype to rebuild
    from); None where there is none or it is unusable."""
    best = Path(run.path) / "best.pt"
    if not best.is_file():
        return None
    try:
        return load_network(best)[0]
    except ValueError:  # an old checkpoint without a description: the genotype, if any
        return None


def restore_network(state: Mapping[str, Any], spec: Mapping[str, Any], path: str | Path,
                    device: torch.device | str = "cpu", expected_model: str | None = None) -> nn.Module:
    """The network of a loaded checkpoint (``state``, its description ``spec``), weights loaded, in
    eval mode on ``device``; refuses another network than ``expected_model`` and weights that do
    not fit, in one line naming ``path``."""
    name = network_name(spec)
    if expected_model is not None and name != expected_model:
        raise CheckpointSpecError(f"{path}: holds a {name} network; expected {expected_model}")
    network = _rebuild(spec["network"], str(path))
    try:
        network.load_state_dict(state["model"])
    except Exception as error:  # missing / unexpected keys, shape mismatches
        raise CheckpointSpecError(f"{path}: weights do not fit the {name} network its description names "
                                  f"({one_line(error)})") from None
    return network.to(device).eval()


def _rebuild(entry: Mapping[str, Any], source: str) -> nn.Module:
    """:func:`build_network` of a checkpoint's entry, its failures one line naming the file."""
    try:
        return build_network(entry, source=source)
    except ValueError as error:
        if str(error).startswith(source):
            raise CheckpointSpecError(str(error)) from None
        raise CheckpointSpecError(f"{source}: cannot rebuild the {entry.get('name')} network from its "
                                  f"description ({one_line(error)})") from None
    except (TypeError, KeyError) as error:  # constructor arguments of another version
        raise CheckpointSpecError(f"{source}: cannot rebuild the {entry.get('name')} network from its "
                                  f"description ({one_line(error)})") from None


__all__ = ["BASELINE_BUILDERS", "CheckpointSpecError", "GENOTYPE", "NETWORK_KINDS", "SPEC_FIELDS", "SPEC_FORMAT",
           "SPEC_KEY", "SearchedNetwork", "build_network", "build_spec", "genotype_entry", "genotype_network",
           "genotype_output_activation", "genotype_target", "is_genotype", "load_fold_ensemble", "load_network",
           "load_predictor", "model_network", "network_name", "read_spec", "restore_network", "run_network",
           "searched_network", "spec_of", "spec_problems", "training_entry"]
